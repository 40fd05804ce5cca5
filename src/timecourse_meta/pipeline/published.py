"""Published pooled estimates beside this analysis's (table and figure input), never pooled.

Published SMD/g estimates are put on this analysis's scale (positive = benefit) when their
sign convention is known; other measures (OR, RR, MD) are listed but not compared.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from timecourse_meta.schema import ALL_STUDIES, rows_for

__all__ = ["SMD_MEASURES", "published_alongside"]

SMD_MEASURES = ("smd", "hedges g", "g", "cohen d", "d")


def published_alongside(
    published: pd.DataFrame,
    pooled: pd.DataFrame,
    *,
    positive_benefit: Callable[[pd.Series], bool] | None = None,
    outcome: str = "score",
    measure: str = "SMD",
) -> pd.DataFrame:
    """Published pooled results beside ours, SMDs converted to positive = benefit.

    Only SMD-type measures are converted (sign flipped unless the row says positive = benefit,
    via `positive_benefit(row)`; default: the `note` mentions "positive = benefit"). Odds ratios
    and mean differences are listed unconverted with `comparable = no`. Our estimate is the
    `all` row of the same window for `outcome` and `measure` (default: score, SMD).
    """
    if positive_benefit is None:

        def positive_benefit(row: pd.Series) -> bool:
            return "positive = benefit" in str(row.get("note", "")).lower()

    out = published.copy()
    is_smd = out["measure"].astype(str).str.strip().str.lower().isin(SMD_MEASURES).to_numpy()
    pos = np.array([positive_benefit(r) for _, r in out.iterrows()], dtype=bool)
    sign = np.where(pos, 1.0, -1.0)
    est, lo, hi = (out[c].to_numpy(dtype=float) for c in ("estimate", "ci_low", "ci_high"))
    g = np.where(is_smd, sign * est, np.nan)
    g_lo = np.where(is_smd, np.where(pos, lo, -hi), np.nan)
    g_hi = np.where(is_smd, np.where(pos, hi, -lo), np.nan)
    out["comparable"] = np.where(is_smd, "yes", "no")
    out["g_benefit"], out["g_benefit_ci_low"], out["g_benefit_ci_high"] = g, g_lo, g_hi
    out["conversion"] = np.where(
        is_smd,
        np.where(
            pos,
            "SMD already positive = benefit (note); unchanged",
            "SMD in scale direction (negative = benefit); sign flipped, CI bounds swapped",
        ),
        "not an SMD: listed only, not converted",
    )
    ours = rows_for(pooled, outcome, measure, subgroup=ALL_STUDIES).set_index("timepoint")
    # our estimate only beside comparable (SMD) rows; windows we do not have give k = 0
    tw = out["time_window"].astype(str).where(is_smd, None)
    for col in ("k", "estimate", "ci_low", "ci_high"):
        out[f"this_{col}"] = tw.map(ours[col]) if len(ours) else np.nan
    out.loc[is_smd, "this_k"] = out.loc[is_smd, "this_k"].fillna(0)
    return out.reset_index(drop=True)
