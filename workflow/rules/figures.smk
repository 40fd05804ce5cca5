# Stage 5: a forest plot per window and the time-course figure.


rule forest_plot:
    input:
        unpack(_forest_rob),
        effects=f"{PROC}/effects.parquet",
        pooled=f"{PROC}/pooled.parquet",
        weights=f"{PROC}/study_weights.parquet",
        arms=f"{PROC}/rows_windowed.parquet",
    output:
        png=report(
            f"{FIGURES}/forest_{{timepoint}}.png",
            caption="../report/forest.rst",
            category="3. Figures",
            subcategory="Forest plots",
            labels={"window": "{timepoint}"},
        ),
        pdf=f"{FIGURES}/forest_{{timepoint}}.pdf",
    log:
        f"{LOGS}/forest_plot_{{timepoint}}.log",
    benchmark:
        f"{LOGS}/benchmarks/forest_plot_{{timepoint}}.tsv"
    wildcard_constraints:
        timepoint="|".join(TIMEPOINTS),
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
        "../scripts/forest_plot.py"


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
