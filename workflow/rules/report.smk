# Stage 7: provenance of every effect and the software versions (the HTML report itself is
# built by `snakemake --report results/report.html` from the outputs marked with report()).


rule provenance:
    input:
        rows=f"{PROC}/rows.parquet",
        effects=f"{PROC}/effects.parquet",
    output:
        csv=report(
            f"{TABLES}/provenance.csv",
            caption="../report/provenance.rst",
            category="4. Provenance",
        ),
    log:
        f"{LOGS}/provenance.log",
    benchmark:
        f"{LOGS}/benchmarks/provenance.tsv"
    conda:
        "../envs/timecourse_meta.yaml"
    script:
        "../scripts/provenance.py"


rule software_versions:
    output:
        txt=report(
            f"{RES}/software_versions.txt",
            caption="../report/software_versions.rst",
            category="4. Provenance",
        ),
    log:
        f"{LOGS}/software_versions.log",
    benchmark:
        f"{LOGS}/benchmarks/software_versions.tsv"
    conda:
        "../envs/timecourse_meta.yaml"
    script:
        "../scripts/software_versions.py"
