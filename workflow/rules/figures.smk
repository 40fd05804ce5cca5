# Stage 5: a forest plot per window and the time-course figure.


rule forest_plots:
    input:
        unpack(_forest_rob),
        effects=f"{PROC}/effects.parquet",
        pooled=f"{PROC}/pooled.parquet",
        weights=f"{PROC}/study_weights.parquet",
        arms=f"{PROC}/rows_windowed.parquet",
    output:
        # one job draws every window: one Python start-up instead of one per window
        png=[
            report(
                f"{FIGURES}/forest_{tp}.png",
                caption="../report/forest.rst",
                category="3. Figures",
                subcategory="Forest plots",
                labels={"window": tp},
            )
            for tp in TIMEPOINTS
        ],
        pdf=[f"{FIGURES}/forest_{tp}.pdf" for tp in TIMEPOINTS],
    log:
        f"{LOGS}/forest_plots.log",
    benchmark:
        f"{LOGS}/benchmarks/forest_plots.tsv"
    priority: 2  # the longest job: start it as soon as its inputs exist
    conda:
        "../envs/timecourse_meta.yaml"
    params:
        outcome=config["primary_outcome"],
        measure=config["primary_measure"],
        level=config["level"],
        timepoints=TIMEPOINTS,
        windows=WINDOW_SPECS,
        labels=LABELS,
        time_unit=TIME_UNIT,
    script:
        "../scripts/forest_plots.py"


rule timecourse_figure:
    input:
        unpack(timecourse_figure_inputs),
    output:
        png=report(
            f"{FIGURES}/timecourse.png",
            caption="../report/timecourse.rst",
            category="0. Overview",
            subcategory="Time course",
        ),
        pdf=f"{FIGURES}/timecourse.pdf",
    log:
        f"{LOGS}/timecourse_figure.log",
    benchmark:
        f"{LOGS}/benchmarks/timecourse_figure.tsv"
    conda:
        "../envs/timecourse_meta.yaml"
    params:
        windows=WINDOW_SPECS,
        outcome=config["primary_outcome"],
        measure=config["primary_measure"],
        level=config["level"],
        figure=config.get("figure", {}),
        labels=LABELS,
        time_unit=(config.get("figure") or {}).get("time_axis") or TIME_UNIT,
    script:
        "../scripts/timecourse_figure.py"
