# Validation (not part of `all`): simulation study of the coverage of the pooled-effect CI and of
# the prediction interval for DL / REML / PM with Wald z and Knapp-Hartung intervals.
#
#   snakemake --cores 2 coverage
#
# The grid (k, tau^2), replicate count and seed are fixed in timecourse_meta.simulation.coverage; the
# replicate count can be lowered here for a quick look (the CSV records it in n_rep).

COVERAGE_REPS = 10000
COVERAGE_SEED = 20240611
_COVERAGE_DIR = f"{RES}/validation" if "RES" in globals() else "results/validation"
_COVERAGE_LOG = f"{LOGS}/coverage.log" if "LOGS" in globals() else "logs/coverage.log"


rule coverage:
    output:
        csv=f"{_COVERAGE_DIR}/coverage.csv",
        png=f"{_COVERAGE_DIR}/coverage.png",
        pdf=f"{_COVERAGE_DIR}/coverage.pdf",
    log:
        _COVERAGE_LOG,
    benchmark:
        f"{LOGS}/benchmarks/coverage.tsv"
    conda:
        "../envs/timecourse_meta.yaml"
    params:
        n_rep=COVERAGE_REPS,
        seed=COVERAGE_SEED,
    script:
        "../scripts/coverage.py"
