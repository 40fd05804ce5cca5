"""Stage 3b (rule effects_all_times): effect sizes at EVERY reported time (time-response model).

The same rows, eligibility filters and effect-size code as the windows path (rule
effect_sizes), but each row keeps its own reported time (timepoint = time label, e.g. "48h"),
so times outside the windows (40 min, 48 h, 120 h) and several times of one study inside a
window all enter. Rows that give no effect are listed with their reason.
"""

import pandas as pd

from timecourse_meta.effects.comparisons import compute_effects
from timecourse_meta.errors import exit_on_error
from timecourse_meta.pipeline.effect_table import check_md_scales
from timecourse_meta.pipeline.ingest import precomputed_effects
from timecourse_meta.pipeline.tables import sort_effects, write_parquet
from timecourse_meta.pipeline.windows import parse_windows, select_all_times

smk = snakemake  # noqa: F821 - injected by Snakemake's script directive

with exit_on_error(smk.log[0], "effects_all_times") as log:
    p = smk.params
    rows = pd.read_parquet(smk.input.rows)
    kept, earlier = select_all_times(
        rows,
        parse_windows(p.windows),
        p.include,
        p.exclude_studies,
        p.exclude_rows,
        first_period_only=p.first_period_only,
        scale_priority=p.scale_priority,
    )
    sheet = kept[kept["sheet_format"] == "extraction"]
    effects, excluded = compute_effects(
        sheet,
        crossover_r=p.crossover_r,
        lower_is_better_default=p.lower_is_better_default,
        score_measure=p.score_measure,
    )
    pre = precomputed_effects(kept, measure_default=p.precomputed_measure)
    effects = pd.concat([effects, pre], ignore_index=True)
    effects = sort_effects(effects.sort_values("time_hours", kind="mergesort"), [])
    check_md_scales(effects, where="reported time")
    exclusions = pd.concat([earlier, excluded.assign(stage="effects")], ignore_index=True)
    exclusions = exclusions.sort_values(["source_file", "source_row"], kind="mergesort")
    write_parquet(effects, smk.output.effects)
    write_parquet(exclusions.reset_index(drop=True), smk.output.excluded)
    n_times = effects.groupby(["outcome", "measure"])["time_hours"].nunique()
    log(
        f"{len(rows)} rows: {len(kept)} at a reported time, {len(effects)} effects, "
        f"{len(exclusions)} rows excluded with a reason; distinct times per outcome: "
        + ", ".join(f"{o}/{m} {n}" for (o, m), n in n_times.items())
    )
