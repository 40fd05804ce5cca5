"""Small vectorised helpers shared by the effect-size stages (comparisons, arm_pairs,
contrast_effects): flagging rows with an exclusion reason, key lookups and per-row text joins.

The working frame is the one `row_checks.prepare_rows` builds: parsed columns prefixed with "_",
`_reason` (first exclusion reason, NA while the row is a candidate) and `_row_id` (position).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

BINARY = ("response", "remission")
KEY = ["study_id", "outcome", "timepoint"]


def flag_rows(df: pd.DataFrame, mask: pd.Series | np.ndarray, reason: str) -> None:
    """Give `reason` to rows in `mask` that have no reason yet (the first reason wins)."""
    m = np.asarray(mask, dtype=bool) & df["_reason"].isna().to_numpy()
    df.loc[m, "_reason"] = reason


def blank(s: pd.Series) -> pd.Series:
    return s.isna() | (s.astype(str).str.strip() == "")


def paired_contrast(df: pd.DataFrame) -> np.ndarray:
    """Contrast rows of crossover trials over all periods (analysed as paired)."""
    return ((df["_design"] == "crossover") & (df["_period"] == "all")).to_numpy()


def crossover_n(df: pd.DataFrame) -> np.ndarray:
    """Participants of a crossover contrast: ``n``, else the smaller of n_treatment, n_control."""
    n = df["_n"].to_numpy()
    n_arms = np.fmin(df["_n_treatment"].to_numpy(), df["_n_control"].to_numpy())
    return np.where(n > 0, n, n_arms)


def key_in(df: pd.DataFrame, cols: list[str], other: pd.DataFrame) -> np.ndarray:
    """Row-wise: is df's key (cols) among the keys of `other`?"""
    if other.empty:
        return np.zeros(len(df), dtype=bool)
    mine = pd.MultiIndex.from_frame(df[cols].astype(str))
    return mine.isin(pd.MultiIndex.from_frame(other[cols].astype(str)))


def join_text(parts: list[np.ndarray | pd.Series], sep: str = ";") -> np.ndarray:
    """Join per-row string parts, skipping empty ones (vectorised over rows)."""
    out = np.asarray(parts[0], dtype=object).astype(str)
    for p in parts[1:]:
        p = np.asarray(p, dtype=object).astype(str)
        out = np.where((out != "") & (p != ""), out + sep + p, out + p)
    return out.astype(object)


def text_if(mask: np.ndarray | pd.Series, text: str | np.ndarray) -> np.ndarray:
    return np.where(np.asarray(mask, dtype=bool), text, "")


def fmt_num(x: np.ndarray) -> np.ndarray:
    return np.array([f"{v:g}" for v in np.asarray(x, dtype=float)], dtype=object)
