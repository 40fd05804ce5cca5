# Stage 6: what a review team publishes beside the pooled results: risk of bias (table,
# traffic-light and weighted summary figures), small-study effects (Egger's test, contour-
# enhanced funnel plots), the GRADE summary of findings and the PRISMA 2020 flow diagram.
# Every figure draws the tables it is given; nothing here refits a model.

FIT = dict(
    outcome=config["primary_outcome"],
    measure=config["primary_measure"],
    method=config["method"],
    method_fallback=config["method_fallback"],
    test=config["test"],
    level=config["level"],
)


if ROB:

    rule risk_of_bias:
        input:
            sheet=ROB,
            rows=f"{PROC}/rows.parquet",
            effects=f"{PROC}/effects.parquet",
            pooled=f"{PROC}/pooled.parquet",
        output:
            parquet=f"{PROC}/risk_of_bias.parquet",
            csv=report(
                f"{TABLES}/risk_of_bias.csv",
                caption="../report/risk_of_bias.rst",
                category="5. Review",
            ),
            summary=f"{TABLES}/risk_of_bias_summary.csv",
            traffic_png=report(
                f"{FIGURES}/risk_of_bias_traffic_light.png",
                caption="../report/risk_of_bias_traffic_light.rst",
                category="5. Review",
            ),
            traffic_pdf=f"{FIGURES}/risk_of_bias_traffic_light.pdf",
            summary_png=report(
                f"{FIGURES}/risk_of_bias_summary.png",
                caption="../report/risk_of_bias_summary.rst",
                category="5. Review",
            ),
            summary_pdf=f"{FIGURES}/risk_of_bias_summary.pdf",
        log:
            f"{LOGS}/risk_of_bias.log",
        priority: 2  # feeds forest_plots, the longest job
        conda:
            "../envs/timecourse_meta.yaml"
        params:
            key_domains=config.get("risk_of_bias_key_domains"),
            some_concerns_high=config.get("risk_of_bias_some_concerns_high"),
            window=config.get("risk_of_bias_window") or TIMEPOINTS[0],
            outcome=config["primary_outcome"],
            measure=config["primary_measure"],
        script:
            "../scripts/risk_of_bias.py"


rule small_study_effects:
    input:
        effects=f"{PROC}/effects.parquet",
    output:
        csv=report(
            f"{TABLES}/small_study_effects.csv",
            caption="../report/small_study_effects.rst",
            category="5. Review",
        ),
    log:
        f"{LOGS}/small_study_effects.log",
    benchmark:
        f"{LOGS}/benchmarks/small_study_effects.tsv"
    conda:
        "../envs/timecourse_meta.yaml"
    params:
        **FIT,
        timepoints=TIMEPOINTS,
        min_k=config.get("grade", {}).get("publication_bias", {}).get("min_k", 10),
    script:
        "../scripts/small_study_effects.py"


rule funnel_plots:
    input:
        effects=f"{PROC}/effects.parquet",
        pooled=f"{PROC}/pooled.parquet",
        small_study=f"{TABLES}/small_study_effects.csv",
    output:
        # one job draws every window: one Python start-up instead of one per window
        png=[
            report(
                f"{FIGURES}/funnel_{tp}.png",
                caption="../report/funnel.rst",
                category="5. Review",
                subcategory="Funnel plots",
                labels={"window": tp},
            )
            for tp in TIMEPOINTS
        ],
        pdf=[f"{FIGURES}/funnel_{tp}.pdf" for tp in TIMEPOINTS],
    log:
        f"{LOGS}/funnel_plots.log",
    benchmark:
        f"{LOGS}/benchmarks/funnel_plots.tsv"
    conda:
        "../envs/timecourse_meta.yaml"
    params:
        outcome=config["primary_outcome"],
        measure=config["primary_measure"],
        timepoints=TIMEPOINTS,
        labels=LABELS,
    script:
        "../scripts/funnel_plots.py"


rule summary_of_findings:
    input:
        pooled=f"{PROC}/pooled.parquet",
        effects=f"{PROC}/effects.parquet",
        small_study=f"{TABLES}/small_study_effects.csv",
        windowed=f"{PROC}/rows_windowed.parquet",  # control-arm events for baseline risks
        risk_of_bias=[f"{PROC}/risk_of_bias.parquet"] if ROB else [],
    output:
        csv=report(
            f"{TABLES}/summary_of_findings.csv",
            caption="../report/summary_of_findings.rst",
            category="5. Review",
        ),
        md=f"{TABLES}/summary_of_findings.md",
    log:
        f"{LOGS}/summary_of_findings.log",
    benchmark:
        f"{LOGS}/benchmarks/summary_of_findings.tsv"
    conda:
        "../envs/timecourse_meta.yaml"
    params:
        grade=config.get("grade", {}),
        timepoints=TIMEPOINTS,
        intervention=LABELS["intervention"],
        primary_outcome=config["primary_outcome"],
        outcome_label=LABELS["outcome_label"],
    script:
        "../scripts/summary_of_findings.py"


rule prisma:
    input:
        rows=f"{PROC}/rows.parquet",
        exclusions=f"{TABLES}/exclusions.csv",
        effects=f"{PROC}/effects.parquet",
    output:
        csv=f"{TABLES}/prisma_counts.csv",
        png=report(
            f"{FIGURES}/prisma.png",
            caption="../report/prisma.rst",
            category="5. Review",
        ),
        pdf=f"{FIGURES}/prisma.pdf",
    log:
        f"{LOGS}/prisma.log",
    benchmark:
        f"{LOGS}/benchmarks/prisma.tsv"
    conda:
        "../envs/timecourse_meta.yaml"
    params:
        prisma=config.get("prisma", {}),
    script:
        "../scripts/prisma.py"
