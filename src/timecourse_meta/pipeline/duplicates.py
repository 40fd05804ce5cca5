"""The duplicate check of sheet rows: two rows that describe the same number twice.

Run by the windows stage on the rows left after the exclusion filters (a baseline row or an
excluded arm may repeat a key without being a contradiction), so that a study is never
double counted and the user is told which two lines clash and how to tell them apart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from timecourse_meta.errors import SheetError, excerpt

__all__ = ["DUPLICATE_KEY", "check_duplicates"]

# Rows with the same values here describe the same number twice (would be double counted).
# Checked by the windows stage on the rows left after the exclusion filters (a baseline row
# or an excluded arm may repeat a key without being a contradiction).
DUPLICATE_KEY: tuple[str, ...] = (
    "study_id",
    "arm",
    "arm_role",
    "outcome",
    "scale",
    "time_hours",
    "timepoint",
    "period",
    "stat_kind",
)


def _number_text(value: float) -> str:
    """A parsed number as the shortest text that reads back as the same float ('' = NaN)."""
    if math.isnan(value):
        return ""
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


def _key_text(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Key columns as plain strings, missing = "" (pandas' string dtype keeps NaN, and NaN never
    compares equal, so `astype(str)` alone would find a duplicate but not its partner)."""
    out = pd.DataFrame(index=frame.index)
    for column in columns:
        values = frame[column]
        if values.dtype.kind == "f":
            out[column] = [_number_text(v) for v in values.tolist()]
        else:
            out[column] = values.fillna("").astype(object).map(str)
    return out


def check_duplicates(frame: pd.DataFrame) -> None:
    """Two rows with the same study, arm, outcome, scale, time, period and kind are a duplicate.

    The message names what makes them duplicates (the key cells that are filled in) and how to
    tell two real results apart (a column that differs, e.g. `scale` or `arm`), or says that the
    rows are identical.
    """
    key = _key_text(frame, DUPLICATE_KEY)
    dup = key.duplicated(keep="first").to_numpy()
    if not dup.any():
        return
    i = int(np.flatnonzero(dup)[0])
    partner = int(np.flatnonzero((key == key.iloc[i]).all(axis=1).to_numpy())[0])
    second, first = frame.iloc[i], frame.iloc[partner]
    shown = [
        f"{c} {excerpt(key.iloc[i][c])}"
        for c in DUPLICATE_KEY
        if key.iloc[i][c] != "" and not (c == "time_hours" and key.iloc[i]["timepoint"] != "")
    ]
    if key.iloc[i]["time_hours"] != "" and key.iloc[i]["timepoint"] != "":
        shown.insert(1, f"time_hours {key.iloc[i]['time_hours']}")
    values = [c for c in frame.columns if c not in ("source_file", "source_row")]
    same_values = all(str(first[c]) == str(second[c]) for c in values)
    where = f"{first['source_file']} line {first['source_row']}"
    what = (
        f"identical to {where} ({', '.join(shown)})"
        if same_values
        else f"same {', '.join(shown)} as {where} but different values"
    )
    raise SheetError(
        second["source_file"],
        f"duplicate: {what}; a study has one result per arm, arm_role, outcome, scale, time, "
        "period and stat_kind. If both are real results (e.g. two scales or two arms), fill in "
        "the column that tells them apart (scale, arm, outcome, stat_kind); otherwise delete "
        "one row",
        line=int(second["source_row"]),
    )
