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
from timecourse_meta.pipeline.ingest import precomputed_effects
from timecourse_meta.pipeline.tables import row_accounting, sort_effects

__all__ = ["EffectTable", "build_effect_table"]


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
) -> EffectTable:
    """Effects of the `windowed` rows; `rows` (all input rows) only feed the accounting."""
    sheet = windowed[windowed["sheet_format"] == "extraction"]
    effects, excluded = compute_effects(
        sheet, crossover_r=crossover_r, lower_is_better_default=lower_is_better_default
    )
    pre = precomputed_effects(windowed, measure_default=precomputed_measure)
    effects = sort_effects(pd.concat([effects, pre], ignore_index=True), list(timepoints))
    exclusions = pd.concat(
        [earlier_exclusions, excluded.assign(stage="effects")], ignore_index=True
    )
    exclusions = exclusions.sort_values(["source_file", "source_row"], kind="mergesort")
    exclusions = exclusions.reset_index(drop=True)
    return EffectTable(effects, exclusions, row_accounting(rows, effects, exclusions))
