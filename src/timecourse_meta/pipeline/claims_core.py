"""Primitives of the claims check: constants, one condition judged on a pooled table.

See :mod:`timecourse_meta.pipeline.claims` for the checks and verdicts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from timecourse_meta.errors import ConfigError
from timecourse_meta.schema import (
    ALL_STUDIES,
    MIN_K,
    NOT_APPLICABLE,
    NOT_SUPPORTED,
    NOT_TESTABLE,
    SUPPORTED,
    normalise_level,
)


def _select(
    table: pd.DataFrame, cond: Mapping[str, object], level: str | None, defaults: Mapping[str, str]
) -> pd.Series | None:
    """The one pooled row a condition refers to (None if the table has no such row)."""
    sel = table["timepoint"] == str(cond["window"])
    for field in ("outcome", "measure", "arm_role"):
        if field in table:
            want = cond.get(field, defaults.get(field))
            if want is not None:
                sel &= table[field] == str(want)
    if level is None:
        sel &= table["subgroup"] == ALL_STUDIES
    else:
        sel &= (table["moderator"] == str(cond["subgroup"])) & (table["level"] == level)
    rows = table[sel]
    return rows.iloc[0] if len(rows) else None


def _fmt_row(label: str, row: pd.Series | None, prefix: str = "") -> str:
    if row is None or row["k"] == 0:
        return f"{label}: k = 0"
    est, lo, hi = (row[f"{c}{prefix}"] for c in ("estimate", "ci_low", "ci_high"))
    return f"{label}: {est:.3f} [{lo:.3f}, {hi:.3f}], k = {int(row['k'])}"


def _excludes(row: pd.Series, direction: str) -> bool:
    if direction == "positive":
        return bool(row["ci_low"] > 0)
    if direction == "negative":
        return bool(row["ci_high"] < 0)
    return bool(row["ci_low"] > 0 or row["ci_high"] < 0)


class _Outcome:
    """Result of one condition: verdict, smallest k, numbers, and a single estimate if any."""

    def __init__(
        self,
        verdict: str,
        k: int,
        details: list[str],
        row: pd.Series | None = None,
        prefix: str = "",
    ) -> None:
        self.verdict, self.k, self.details = verdict, k, details
        self.numbers = (
            tuple(float(row[f"{c}{prefix}"]) for c in ("estimate", "ci_low", "ci_high"))
            if row is not None and row["k"] >= 1
            else (np.nan, np.nan, np.nan)
        )


def _check_one(
    cond: Mapping[str, object],
    pooled: pd.DataFrame,
    proportions: pd.DataFrame | None,
    windows: Sequence[str],
    defaults: Mapping[str, str],
) -> _Outcome:
    check = str(cond["check"])
    window = str(cond["window"])
    direction = str(cond.get("direction", "positive"))
    sub = cond.get("subgroup")
    levels = [normalise_level(v) for v in cond.get("levels", [])]  # type: ignore[union-attr]
    if check in ("ci_excludes_0", "ci_includes_0"):
        if sub is not None and len(levels) != 1:
            raise ConfigError(f"{check} with a subgroup needs exactly one level", key="claims")
        level = levels[0] if sub is not None else None
        label = window + (f" {sub}={level}" if level else "")
        row = _select(pooled, cond, level, defaults)
        k = 0 if row is None else int(row["k"])
        text = [_fmt_row(label, row)]
        if k < MIN_K:
            return _Outcome(NOT_TESTABLE, k, text, row)
        ok = _excludes(row, direction) if check == "ci_excludes_0" else not _excludes(row, "any")
        return _Outcome(SUPPORTED if ok else NOT_SUPPORTED, k, text, row)
    if check == "all_ci_exclude_0":
        outs = [
            _check_one(
                {**cond, "check": "ci_excludes_0", "levels": [lv]},
                pooled,
                proportions,
                windows,
                defaults,
            )
            for lv in levels
        ]
        return _combine(outs)
    if check == "largest_of_windows":
        rows = {w: _select(pooled, {**cond, "window": w}, None, defaults) for w in windows}
        k = 0 if rows[window] is None else int(rows[window]["k"])
        text = [_fmt_row(w, r) for w, r in rows.items()]
        others = {
            w: r for w, r in rows.items() if w != window and r is not None and r["k"] >= MIN_K
        }
        if k < MIN_K or not others:
            why = f"{window} has k < 2" if k < MIN_K else "no other window has k >= 2"
            return _Outcome(NOT_TESTABLE, k, [*text, f"not testable: {why}"], rows[window])
        best = max(others.values(), key=lambda r: r["estimate"])
        ok = rows[window]["estimate"] > best["estimate"]
        text.append(f"compared with windows with k >= 2: {', '.join(others)}")
        return _Outcome(SUPPORTED if ok else NOT_SUPPORTED, k, text, rows[window])
    # proportion_ci_overlaps
    low, high = (float(x) for x in cond["range"])  # type: ignore[union-attr]
    if proportions is None or proportions.empty:
        return _Outcome(NOT_TESTABLE, 0, [f"{window}: no proportions available"])
    level = levels[0] if sub is not None and levels else None
    pdefaults = {"outcome": "response", "arm_role": "treatment"}
    row = _select(proportions, cond, level, pdefaults)
    k = 0 if row is None else int(row["k"])
    text = [_fmt_row(f"{window} proportion", row, "_prop") + f"; claimed range [{low:g}, {high:g}]"]
    if k < MIN_K:
        return _Outcome(NOT_TESTABLE, k, text, row, "_prop")
    ok = row["ci_low_prop"] <= high and row["ci_high_prop"] >= low
    return _Outcome(SUPPORTED if ok else NOT_SUPPORTED, k, text, row, "_prop")


def _combine(outs: list[_Outcome]) -> _Outcome:
    verdicts = {o.verdict for o in outs}
    verdict = (
        NOT_APPLICABLE
        if NOT_APPLICABLE in verdicts
        else NOT_TESTABLE
        if NOT_TESTABLE in verdicts
        else NOT_SUPPORTED
        if NOT_SUPPORTED in verdicts
        else SUPPORTED
    )
    out = _Outcome(verdict, min(o.k for o in outs), [d for o in outs for d in o.details])
    if len(outs) == 1:
        out.numbers = outs[0].numbers
    return out
