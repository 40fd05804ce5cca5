# Stage 1: read and validate every sheet named in config `studies`.


rule ingest_sheets:
    input:
        sheets=STUDIES,
    output:
        rows=f"{PROC}/rows.parquet",
    conda:
        "../envs/timecourse_meta.yaml"
    log:
        f"{LOGS}/ingest_sheets.log",
    script:
        "../scripts/ingest_sheets.py"
