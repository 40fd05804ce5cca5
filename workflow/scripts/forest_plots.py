"""Stage 5 (rule forest_plots): a forest plot of every window (PNG and PDF), in one job.

Draws the pooled result it is given: the pooled table and the study weights written by
pool_timepoints from the same fits, joined with the effect rows (pipeline.forest_data). No
model is fitted here, so a window whose estimator failed shows its studies and the pooled
table's reason instead of failing. One job for all windows pays the Python start-up once.
"""

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from timecourse_meta.errors import exit_on_error
from timecourse_meta.pipeline.forest_data import ArmLookup, forest_data
from timecourse_meta.pipeline.risk_of_bias import study_overall
from timecourse_meta.plots.figures import placeholder_figure, save_figure
from timecourse_meta.plots.forest import data_xlim, forest_plot
from timecourse_meta.plots.forest_rows import cap_studies
from timecourse_meta.plots.forest_text import title_text, window_text
from timecourse_meta.schema import measure_label, overall_row

smk = snakemake  # noqa: F821 - injected by Snakemake's script directive

ROB_NOTE = (
    "RoB: overall judgement as in results/tables/risk_of_bias.csv (RoB 1: Cochrane Handbook "
    "5.1 section 8.7; RoB 2: Sterne et al. 2019); not assessed where a key domain was not read"
)
NO_EFFECTS = "no effects; placeholder figure written"


def model_text(pooled_row: pd.Series) -> str:
    """What was fitted, from the pooled table (the estimator actually used)."""
    method, k = str(pooled_row["method"]), int(pooled_row["k"])
    if k <= 1 or method.startswith("none"):
        return "not pooled" if k > 1 else f"no pooling (k\u00a0=\u00a0{k})"
    test = ", Knapp\u2013Hartung" if pooled_row["test"] == "knha" else ""
    return f"random effects ({method}{test})".replace(" (", "\u00a0(")


def forest_options() -> dict:
    """Config `forest` (sort, width, common_xlim, max_studies)."""
    return dict(smk.config.get("forest") or {})


def draw_window(
    tp: str,
    data: dict[str, tuple[pd.DataFrame, dict]],
    pooled: pd.DataFrame,
    xlim: tuple[float, float] | None,
    notes: list[str],
) -> Figure:
    """The forest plot of window `tp` (a placeholder saying why when it has no effects)."""
    p, opts = smk.params, forest_options()
    studies, pooled_map = data[tp]
    if studies.empty:  # no effects in this window (e.g. every study excluded): say so
        return placeholder_figure(f"{tp}: no {p.outcome} ({p.measure}) effects: nothing to draw")
    row = overall_row(pooled, p.outcome, p.measure, tp)
    labels = dict(p.labels or {})  # config intervention, comparator, outcome_label, ...
    intervention = str(labels.get("intervention") or "intervention")
    comparator = str(labels.get("comparator") or "control")
    favours = str(labels.get("favours") or "Favours {arm}")
    window = next((w for w in p.windows if str(w["label"]) == tp), {"label": tp})
    title = title_text(
        intervention=intervention,
        comparator=comparator,
        outcome=str(labels.get("outcome_label") or p.outcome),
        window=window_text(tp, window.get("low"), window.get("high"), p.time_unit),
        model=model_text(row),
    )
    return forest_plot(
        studies,
        pooled_map,
        title=title,
        measure_label=measure_label(p.measure, labels),
        favours=(favours.format(arm=comparator), favours.format(arm=intervention)),
        group_labels=(
            intervention[:1].upper() + intervention[1:],
            comparator[:1].upper() + comparator[1:],
        ),  # fmt: skip
        xlim=xlim,
        sort=str(opts.get("sort", "study")),
        width=opts.get("width", "double"),
        notes=notes,
        max_studies=opts.get("max_studies"),
    )


with exit_on_error(smk.log[0], "forest_plots") as log:
    p = smk.params
    effects = pd.read_parquet(smk.input.effects)
    pooled = pd.read_parquet(smk.input.pooled)
    weights = pd.read_parquet(smk.input.weights)
    arms = ArmLookup.of(pd.read_parquet(smk.input.arms))  # once for every window
    rob = None
    if getattr(smk.input, "rob", None):
        table = pd.read_parquet(smk.input.rob)  # rule risk_of_bias: one row per study x outcome
        rob = {s: study_overall(table, s, p.outcome) for s in table["study_id"].unique()}
    fit = {"outcome": p.outcome, "measure": p.measure, "level": p.level, "time_unit": p.time_unit}
    data = {
        w: forest_data(effects, pooled, weights, w, arms=arms, rob=rob, **fit) for w in p.timepoints
    }
    xlim = None
    if forest_options().get("common_xlim", False):
        ests = [m["estimate"] for _, m in data.values() if m and "estimate" in m]
        xlim = data_xlim([s for s, _ in data.values()], ests)
    notes = [ROB_NOTE] if rob is not None else []
    source = Path(smk.input.pooled).name
    for tp, png, pdf in zip(p.timepoints, smk.output.png, smk.output.pdf, strict=True):
        fig = draw_window(tp, data, pooled, xlim, notes)
        save_figure(fig, png)
        save_figure(fig, pdf)
        studies = data[tp][0]
        _, cap_note = cap_studies(studies, forest_options().get("max_studies"))
        if cap_note:  # also written on the figure (forest_plot)
            log(f"window {tp}: {cap_note}")
        k = len(studies)
        log(f"window {tp}: " + (f"{k} studies; drawn from {source}" if k else NO_EFFECTS))
