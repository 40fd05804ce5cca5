"""Stage 5 (rule timecourse_figure): pooled effect by window with published results beside it."""

import pandas as pd

from timecourse_meta.errors import exit_on_error
from timecourse_meta.pipeline.windows import parse_windows
from timecourse_meta.plots.figures import save_figure
from timecourse_meta.plots.timecourse_plot import timecourse_plot

smk = snakemake  # noqa: F821 - injected by Snakemake's script directive

with exit_on_error(smk.log[0], "timecourse_figure") as log:
    p = smk.params
    hours = parse_windows(p.windows).set_index("label")["nominal"]
    pooled = pd.read_parquet(smk.input.pooled)
    pooled = pooled[
        (pooled["subgroup"] == "all")
        & (pooled["outcome"] == p.outcome)
        & (pooled["measure"] == p.measure)
    ]
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
    claims = pd.read_csv(smk.input.claims, keep_default_na=False)
    # one marker per claim at its (first) window
    first = claims["windows"].str.split(";").str[0]
    claims = pd.DataFrame(
        {
            "hours": first.map(hours).to_numpy(),
            "label": claims["id"].to_numpy(),
            "verdict": claims["verdict"].to_numpy(),
        }
    ).dropna(subset=["hours"])
    # multivariate model: only windows it estimated with status ok are drawn (others logged)
    mv = pd.read_parquet(smk.input.multivariate)
    drawn = mv["status"] == "ok"
    for r in mv[~drawn].itertuples(index=False):
        log(f"multivariate {r.timepoint} not drawn: status {r.status} ({r.warnings})")
    multivariate = mv.loc[drawn, ["timepoint", "hours", "k", "estimate", "ci_low", "ci_high"]]
    fig = timecourse_plot(pooled, published=published, multivariate=multivariate, claims=claims)
    save_figure(fig, smk.output.png)
    save_figure(fig, smk.output.pdf)
    log(
        f"{len(pooled)} windows, {int(drawn.sum())} multivariate estimates "
        f"({mv['struct'].iloc[0]}), {len(published)} published results, {len(claims)} claims"
    )
