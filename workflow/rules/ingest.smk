# Stage 1: read and validate every sheet named in config `studies`.


rule ingest_sheets:
    input:
        sheets=STUDIES,
    output:
        rows=f"{PROC}/rows.parquet",
    log:
        f"{LOGS}/ingest_sheets.log",
    benchmark:
        f"{LOGS}/benchmarks/ingest_sheets.tsv"
    conda:
        "../envs/timecourse_meta.yaml"
    script:
        "../scripts/ingest_sheets.py"
