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
    params:
        # CSV dialect, time unit of plain `time` columns, arm-level sheets (docs/extraction_sheet.md)
        csv_separator=config.get("csv_separator", "auto"),
        decimal=config.get("decimal", "auto"),
        time_unit=config.get("time_unit"),
        control_arms=config.get("control_arms", []),
        stat_kind_default=config.get("stat_kind_default"),
    script:
        "../scripts/ingest_sheets.py"
