"""Checks within one row of an input sheet: columns that must go together, and statistics that
contradict each other (a mean outside its own CI, an SE that is not sd / sqrt(n), counts on a
score row).

Split from `sheet_checks` (the vocabularies, ranges and cross-row rules) because these checks
run on the parsed numbers of a row, not on its cells. Every problem raises `SheetError` naming
the file, the CSV line number and the column; `ingest.read_sheet` calls `cross_field_checks`
after numeric parsing.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from timecourse_meta.errors import SheetError

__all__ = ["cross_field_checks"]


def cross_field_checks(path: str, frame: pd.DataFrame) -> None:
    """Checks that involve several columns of one row (after numeric parsing)."""
    lines = frame["source_row"].to_numpy()

    def fail(mask: np.ndarray, column: str, message: str) -> None:
        if mask.any():
            i = int(np.flatnonzero(mask)[0])
            raise SheetError(path, message, line=int(lines[i]), column=column)

    if "events" in frame and "n" in frame:
        fail((frame["events"] > frame["n"]).to_numpy(), "events", "events cannot exceed n")
    for low, high in (("ci_low", "ci_high"), ("effect_ci_low", "effect_ci_high")):
        if low in frame and high in frame:
            fail((frame[low] > frame[high]).to_numpy(), low, f"{low} must not exceed {high}")
            one = frame[low].isna().to_numpy() != frame[high].isna().to_numpy()
            fail(one, low, f"{low} and {high} must be given together")
    _conflicting_statistics(frame, fail)


def _conflicting_statistics(
    frame: pd.DataFrame, fail: Callable[[np.ndarray, str, str], None]
) -> None:
    """Two statistics on one row that cannot both be true: the row is ambiguous, not usable.

    A mean outside its own CI; se and sd that disagree by more than 10% (se = sd / sqrt(n),
    Cochrane Handbook 6.5.2.2; 10% leaves room for rounding of printed values); an effect
    variance that is not the square of its SE; counts on a score row or means on a count row.
    """

    def col(name: str) -> np.ndarray:
        return frame[name].to_numpy(dtype=float) if name in frame else np.full(len(frame), np.nan)

    def fmt(x: np.ndarray) -> np.ndarray:
        return np.array([f"{v:g}" for v in x], dtype=object)

    with np.errstate(invalid="ignore", divide="ignore"):
        for value, low, high in (("mean", "ci_low", "ci_high"), ("effect", "effect_ci_low",
                                                                 "effect_ci_high")):  # fmt: skip
            v, lo, hi = col(value), col(low), col(high)
            outside = (v < lo) | (v > hi)
            if outside.any():
                i = int(np.flatnonzero(outside)[0])
                fail(
                    outside,
                    value,
                    f"{value} {fmt(v)[i]} lies outside its own CI [{fmt(lo)[i]}, {fmt(hi)[i]}]: "
                    "the statistics on this row disagree",
                )
        sd, se, n = col("sd"), col("se"), col("n")
        expected = sd / np.sqrt(n)
        off = np.abs(se / expected - 1) > 0.1
        if off.any():
            i = int(np.flatnonzero(off)[0])
            fail(
                off,
                "se",
                f"sd {sd[i]:g} and se {se[i]:g} disagree for n = {n[i]:g} (se = sd / sqrt(n) "
                f"would be {expected[i]:.3g}); give only the one the source reports",
            )
        var, ese = col("effect_var"), col("effect_se")
        off = np.abs(var / ese**2 - 1) > 0.1
        if off.any():
            i = int(np.flatnonzero(off)[0])
            fail(
                off,
                "effect_var",
                f"effect_var {var[i]:g} is not effect_se squared ({ese[i] ** 2:.3g}); give "
                "only the one the source reports",
            )
    if "outcome" in frame:
        outcome = frame["outcome"].astype(str).str.lower().to_numpy()
        score = outcome == "score"
        binary = np.isin(outcome, ["response", "remission"])
        fail(
            score & ~np.isnan(col("events")),
            "events",
            "events given on a score row: put response/remission counts on their own rows "
            "(outcome response or remission)",
        )
        for name in ("mean", "sd"):
            fail(
                binary & ~np.isnan(col(name)),
                name,
                f"{name} given on a response/remission row: put scores on their own rows "
                "(outcome score)",
            )
