"""Stage 5 (rule timecourse_figure): the effect over time, onset and duration marked.

Draws the per-window pooled estimates, every study's estimates and the published results;
with the time-response model's outputs among the inputs (config key `time_response`), also the
fitted curve with its CI and PI bands and the estimated onset, peak and duration.
"""

import pandas as pd

from timecourse_meta.errors import exit_on_error
from timecourse_meta.pipeline.windows import parse_windows
from timecourse_meta.plots.figures import save_figure
from timecourse_meta.plots.timecourse_cap import cap_study_lines
from timecourse_meta.plots.timecourse_plot import FigureLabels, timecourse_plot
from timecourse_meta.schema import ALL_STUDIES, measure_label, rows_for

smk = snakemake  # noqa: F821 - injected by Snakemake's script directive


with exit_on_error(smk.log[0], "timecourse_figure") as log:
    p = smk.params
    cfg = dict(p.figure or {})
    hours = parse_windows(p.windows).set_index("label")["nominal"]

    def ours(df: pd.DataFrame) -> pd.DataFrame:
        """Rows of the primary outcome and measure."""
        return rows_for(df, p.outcome, p.measure)

    pooled = rows_for(pd.read_parquet(smk.input.pooled), p.outcome, p.measure, subgroup=ALL_STUDIES)
    pooled = pooled.assign(hours=pooled["timepoint"].map(hours))
    published = pd.read_parquet(smk.input.published)
    published = published[published["comparable"] == "yes"]
    published = pd.DataFrame(
        {
            "hours": published["time_window"].map(hours).to_numpy(),
            "estimate": published["g_benefit"].to_numpy(),
            "ci_low": published["g_benefit_ci_low"].to_numpy(),
            "ci_high": published["g_benefit_ci_high"].to_numpy(),
            "label": published["review"].to_numpy(),
        }
    ).dropna(subset=["hours"])
    if p.measure != "SMD":  # published results are converted to Hedges' g only
        log(f"published results not drawn: they are on the SMD scale, this figure on {p.measure}")
        published = published.iloc[:0]
    # every reported time when the time-response stage wrote them, else one per window
    studies_file = smk.input.get("effects_all_times", smk.input.effects)
    studies = ours(pd.read_parquet(studies_file))
    curve = summary = None
    model = cfg.get("curve_model")
    if "curve" in smk.input.keys():
        curve = ours(pd.read_parquet(smk.input.curve))
        summary = ours(pd.read_csv(smk.input.summary))
        models = list(dict.fromkeys(curve["model"].astype(str)))
        if model is None and models:
            model = models[0]
            log(f"time-response models {models}: drawing {model!r} (config figure.curve_model)")
    words = dict(p.labels or {})  # config intervention, comparator, outcome_label, ...
    labels = FigureLabels(
        title=cfg.get("title"),
        outcome_label=words.get("outcome_label") or p.outcome,
        measure_label=measure_label(p.measure, words),
        favours=words.get("favours") or "Favours {arm}",
        intervention=words.get("intervention") or "intervention",
        comparator=words.get("comparator") or "control",
        time_label=words.get("time_label") or "Time",
    )
    fig = timecourse_plot(
        pooled,
        studies=studies,
        curve=curve,
        summary=summary,
        published=published,
        labels=labels,
        time_unit=p.time_unit,  # config time_unit: ticks and axis title
        model=model,
        level=p.level,
        max_studies=cfg.get("max_studies"),  # config figure.max_studies
    )
    save_figure(fig, smk.output.png)
    save_figure(fig, smk.output.pdf)
    log(
        f"{len(pooled)} windows, {len(studies)} study estimates from {studies_file}, "
        f"{len(published)} published results, "
        + (f"time-response model {model!r}" if curve is not None else "no time-response model")
    )
    _, cap_note = cap_study_lines(studies, cfg.get("max_studies"))  # the figure's own note
    if cap_note:
        log(cap_note)
