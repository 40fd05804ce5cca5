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


rule report_summary:
    input:
        pooled=f"{TABLES}/pooled_by_timepoint.csv",
        claims=f"{TABLES}/claims.csv",
        exclusions=f"{TABLES}/exclusions.csv",
        accounting=f"{TABLES}/row_accounting.csv",
        figure=f"{FIGURES}/timecourse.png",
    output:
        rst=report(
            f"{RES}/report_summary.rst",
            caption="../report/report_summary.rst",
            category="0. Overview",
        ),
    log:
        f"{LOGS}/report_summary.log",
    benchmark:
        f"{LOGS}/benchmarks/report_summary.tsv"
    conda:
        "../envs/timecourse_meta.yaml"
    params:
        timepoints=TIMEPOINTS,
        windows=WINDOW_SPECS,
        outcome=config["primary_outcome"],
        measure=config["primary_measure"],
        level=config["level"],
        labels=LABELS,
        time_unit=TIME_UNIT,
    script:
        "../scripts/report_summary.py"
