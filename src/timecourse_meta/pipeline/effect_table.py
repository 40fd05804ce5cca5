"""Stage 3: the effects table of the workflow, its exclusions and the row accounting.

One function for what the ``effect_sizes`` rule does (and what tests run without Snakemake):
arm-level rows of extraction sheets go through ``effects.comparisons.compute_effects`` (escalc),
rows of minimal yi/vi sheets through ``ingest.precomputed_effects``; the two are stacked in a
fixed order, every exclusion of the earlier stages is carried on, and ``tables.row_accounting``
checks that each input row ended in the analysis or in the exclusions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from timecourse_meta.effects.comparisons import compute_effects
from timecourse_meta.errors import ConfigError
from timecourse_meta.pipeline.ingest import precomputed_effects
from timecourse_meta.pipeline.tables import row_accounting, sort_effects

__all__ = ["EffectTable", "build_effect_table", "check_md_scales"]


def check_md_scales(effects: pd.DataFrame, where: str = "window") -> None:
    """Raw mean differences (measure MD) are poolable only on one scale: refuse otherwise.

    A mean difference is in the scale's units (MADRS points are not HDRS points), so every MD
    effect of an outcome must come from one scale (compared case-insensitively), within each
    window and across windows (the time-course models combine windows). Raises ConfigError
    naming the window (`where` = what a `timepoint` is) and the scales with their studies.
    """
    md = effects[effects["measure"] == "MD"]
    if md.empty:
        return
    scale = md["scale"].fillna("").astype(str).str.strip()
    md = md.assign(_scale=scale.where(scale != "", "(no scale)"), _key=scale.str.lower())
    hint = (
        "; use primary_measure SMD, or keep one scale (scale_priority, or include: {scale: [...]})"
    )
    for outcome, group in md.groupby("outcome", sort=True):
        for tp, sub in group.groupby("timepoint", sort=True):
            if sub["_key"].nunique() > 1:
                found = "; ".join(
                    f"{name} ({', '.join(sorted(set(s['study_id'].astype(str))))})"
                    for name, s in sub.groupby("_scale", sort=True)
                )
                raise ConfigError(
                    f"MD (raw mean difference) pools one scale only, but {where} {tp} "
                    f"({outcome}) has scales {found}{hint}",
                    key="primary_measure",
                )
        if group["_key"].nunique() > 1:
            per = group.groupby("timepoint", sort=True)["_scale"].first()
            found = ", ".join(f"{tp} {name}" for tp, name in per.items())
            raise ConfigError(
                f"MD (raw mean difference) pools one scale only, but the {where}s of {outcome} "
                f"use different scales ({found}), which the time-course models combine{hint}",
                key="primary_measure",
            )


@dataclass(frozen=True)
class EffectTable:
    effects: pd.DataFrame
    exclusions: pd.DataFrame
    accounting: pd.DataFrame


def build_effect_table(
    rows: pd.DataFrame,
    windowed: pd.DataFrame,
    earlier_exclusions: pd.DataFrame,
    timepoints: Sequence[str],
    *,
    crossover_r: float = 0.5,
    lower_is_better_default: bool = True,
    precomputed_measure: str = "SMD",
    score_measure: str = "SMD",
) -> EffectTable:
    """Effects of the `windowed` rows; `rows` (all input rows) only feed the accounting.

    `score_measure` (config `primary_measure` when it is SMD or MD) is the measure of score
    outcomes; MD effects must share one scale (`check_md_scales`).
    """
    sheet = windowed[windowed["sheet_format"] == "extraction"]
    effects, excluded = compute_effects(
        sheet,
        crossover_r=crossover_r,
        lower_is_better_default=lower_is_better_default,
        score_measure=score_measure,
    )
    pre = precomputed_effects(windowed, measure_default=precomputed_measure)
    effects = sort_effects(pd.concat([effects, pre], ignore_index=True), list(timepoints))
    check_md_scales(effects)
    exclusions = pd.concat(
        [earlier_exclusions, excluded.assign(stage="effects")], ignore_index=True
    )
    exclusions = exclusions.sort_values(["source_file", "source_row"], kind="mergesort")
    exclusions = exclusions.reset_index(drop=True)
    return EffectTable(effects, exclusions, row_accounting(rows, effects, exclusions))
