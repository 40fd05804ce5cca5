# Stage 5: a forest plot per window and the time-course figure.

rule forest_plot:
    input:
        effects=f"{PROC}/effects.parquet",
    output:
        png=report(
            f"{FIGURES}/forest_{{timepoint}}.png",
            caption="../report/forest.rst",
            category="3. Figures",
            subcategory="Forest plots",
            labels={"window": "{timepoint}"},
        ),
        pdf=f"{FIGURES}/forest_{{timepoint}}.pdf",
    params:
        outcome=config["primary_outcome"],
        measure=config["primary_measure"],
        method=config["method"],
        method_fallback=config["method_fallback"],
        test=config["test"],
        level=config["level"],
    wildcard_constraints:
        timepoint="|".join(TIMEPOINTS),
    conda:
        "../envs/timecourse_meta.yaml"
    log:
        f"{LOGS}/forest_plot_{{timepoint}}.log",
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
    params:
        windows=config["windows"],
        outcome=config["primary_outcome"],
        measure=config["primary_measure"],
        level=config["level"],
        figure=config.get("figure", {}),
    conda:
        "../envs/timecourse_meta.yaml"
    log:
        f"{LOGS}/timecourse_figure.log",
    script:
        "../scripts/timecourse_figure.py"
