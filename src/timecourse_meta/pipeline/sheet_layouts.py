"""Foreign sheet layouts turned into the sheet's own columns: aliases, time units, arm-level data.

Review teams hold their data in the layouts of their tools (docs/extraction_sheet.md, "Column
aliases" and "Arm-level minimal sheet"). `ingest.read_sheet` calls these functions on the
stripped-string frame of one sheet, before validation, so every later check sees the canonical
columns:

* `resolve_aliases`: documented alternative column names (metafor's `study`/`yi`/`vi`/`sei`,
  meta's `studlab`, MBNMAtime's `studyID`/`treatment`/`y`, `week`/`day`/`hour` time columns)
  are renamed to the canonical ones; two columns naming the same field are an error naming both.
* `convert_time`: a time in weeks, days, hours, minutes or months becomes `time_hours` with the
  one conversion table `schema.TIME_UNIT_HOURS`; the time as printed stays in `time_as_reported`.
* `fill_sources`: a registry id column (`clinicaltrialgov_id`, `nct_id`, `registry_id`, `source`)
  counts as the source; a sheet without any source column is accepted with every row marked
  `UNSOURCED` in its source columns (the caller warns loudly).
* `arm_level_rows`: the arm-level minimal layout (one row per study x arm x time with mean, SD or
  SE and n, as in R's MBNMAtime) gets its arm roles (config `control_arms` or an `arm_role`
  column), its stat_kind, design `parallel` (separate arms with their own n are independent
  groups) and `not reported` for trial attributes it does not hold.

Every problem raises `SheetError` with file, line and column, as the rest of the ingest does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from timecourse_meta.errors import SheetError
from timecourse_meta.pipeline.sheet_checks import SOURCE_COLUMNS, parse_numeric
from timecourse_meta.schema import TIME_UNIT_HOURS, TRIAL_ATTRIBUTES

__all__ = [
    "ARM_ALIASES",
    "ARM_LEVEL_DEFAULTS",
    "MEAN_ALIASES",
    "NOT_REPORTED",
    "REGISTRY_COLUMNS",
    "SE_ALIASES",
    "STUDY_ID_ALIASES",
    "TIME_ALIASES",
    "UNSOURCED",
    "UNSOURCED_COLUMNS",
    "arm_level_rows",
    "convert_time",
    "fill_sources",
    "is_arm_level",
    "resolve_aliases",
    "time_unit_of",
]

# Column aliases (docs/extraction_sheet.md, "Column aliases"): canonical name first.
STUDY_ID_ALIASES: tuple[str, ...] = (
    "study_id",
    "study",
    "author",
    "studlab",
    "trial",
    "studyid",
)
SE_ALIASES: tuple[str, ...] = ("sei", "se")  # SE of yi, in minimal precomputed sheets only
ARM_ALIASES: tuple[str, ...] = ("arm", "treatment")  # arm-level minimal sheets only
MEAN_ALIASES: tuple[str, ...] = ("mean", "y")  # arm-level minimal sheets only
# Time columns and their unit (None: the row's `time_unit` cell, else config `time_unit`).
TIME_ALIASES: dict[str, str | None] = {
    "time_hours": "hours",
    "time": None,
    "timepoint": None,  # only when numeric: otherwise it is a window label
    "week": "weeks",
    "weeks": "weeks",
    "day": "days",
    "days": "days",
    "hour": "hours",
    "hours": "hours",
}
# Columns that count as a row's source besides SOURCE_COLUMNS (a trial registry id or a free
# source text); its value goes to `source_address` as "<column>: <value>".
REGISTRY_COLUMNS: tuple[str, ...] = ("source", "clinicaltrialgov_id", "nct_id", "registry_id")
UNSOURCED = "unsourced"
UNSOURCED_COLUMNS: tuple[str, ...] = (
    "citation",
    "source_address",
    "source_locator",
    "source_quote",
)
NOT_REPORTED = "not reported"
# Trial attributes an arm-level minimal sheet may lack (neutral value instead of a refusal).
ARM_LEVEL_DEFAULTS: tuple[str, ...] = TRIAL_ATTRIBUTES
# Columns only the full extraction sheet has: a sheet with none of them and without `yi` is an
# arm-level minimal sheet.
_EXTRACTION_ONLY: tuple[str, ...] = ("source_locator", "source_quote", "value_origin")
_NUMBER = re.compile(r"^[+-]?(\d+[.,]?\d*|[.,]\d+)([eE][+-]?\d+)?$")


def _rename_one(path: str, frame: pd.DataFrame, aliases: Sequence[str]) -> pd.DataFrame:
    """Rename the one column of `aliases` present to `aliases[0]`; two present is an error."""
    present = [c for c in aliases if c in frame]
    if len(present) > 1:
        raise SheetError(
            path,
            f"columns '{present[0]}' and '{present[1]}' both give {aliases[0]} (aliases of one "
            "field): keep one of them or rename the other",
            line=1,
            column=present[1],
        )
    if present and present[0] != aliases[0]:
        frame = frame.rename(columns={present[0]: aliases[0]})
    return frame


def is_arm_level(frame: pd.DataFrame) -> bool:
    """An arm-level minimal sheet: no `yi` and none of the extraction sheet's provenance
    columns (source_locator, source_quote, value_origin)."""
    return "yi" not in frame and not any(c in frame for c in _EXTRACTION_ONLY)


def _numeric_cells(values: pd.Series) -> bool:
    filled = values[values != ""]
    return bool(len(filled)) and bool(filled.map(lambda t: bool(_NUMBER.match(t))).all())


def resolve_aliases(path: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Rename alias columns to the canonical names (study id everywhere; the SE of yi in
    precomputed sheets; arm label and mean in arm-level sheets). Time columns are handled by
    `convert_time`."""
    frame = _rename_one(path, frame, STUDY_ID_ALIASES)
    if "yi" in frame and "arm_role" not in frame:
        frame = _rename_one(path, frame, SE_ALIASES)
    elif is_arm_level(frame):
        frame = _rename_one(path, frame, ARM_ALIASES)
        frame = _rename_one(path, frame, MEAN_ALIASES)
    return frame


def time_unit_of(text: str) -> str | None:
    """A `time_unit` cell as a key of TIME_UNIT_HOURS (plural or singular, any case), or None."""
    word = text.strip().lower()
    if word in TIME_UNIT_HOURS:
        return word
    if word + "s" in TIME_UNIT_HOURS:
        return word + "s"
    return None


def _time_column(path: str, frame: pd.DataFrame) -> str | None:
    present = [c for c in TIME_ALIASES if c in frame and c != "timepoint"]
    if not present and "timepoint" in frame and _numeric_cells(frame["timepoint"]):
        present = ["timepoint"]  # a numeric timepoint is a time, not a window label
    if len(present) > 1:
        raise SheetError(
            path,
            f"columns '{present[0]}' and '{present[1]}' both give the time (aliases of one "
            "field): keep one of them",
            line=1,
            column=present[1],
        )
    return present[0] if present else None


def convert_time(
    path: str,
    frame: pd.DataFrame,
    *,
    time_unit: str | None = None,
    decimal: str = ".",
    separator: str = ",",
) -> pd.DataFrame:
    """The time column (any alias) as `time_hours` (float), via `schema.TIME_UNIT_HOURS`.

    `week*` columns are in weeks, `day*` in days, `hour*`/`time_hours` in hours; a plain `time`
    (or numeric `timepoint`) column takes each row's `time_unit` cell, else `time_unit` (config
    key `time_unit`; None = hours). Where `time_as_reported` is empty it becomes the cell and its
    unit ("4 weeks"). Frames with `time_hours` itself are returned unchanged (parsed later).
    """
    column = _time_column(path, frame)
    if column is None or column == "time_hours":
        if "time_unit" in frame and column == "time_hours":
            raise SheetError(
                path, "a time_unit column needs the time in a 'time' column", line=1,
                column="time_unit",
            )  # fmt: skip
        return frame
    lines = frame["source_row"]
    values = parse_numeric(
        path,
        column,
        frame[column],
        lines,
        as_column="time_hours",
        decimal=decimal,
        separator=separator,
    )
    fixed = TIME_ALIASES[column]
    default = time_unit_of(time_unit) if time_unit else "hours"
    if default is None:
        raise SheetError(
            "config 'time_unit'",
            f"expected one of {', '.join(TIME_UNIT_HOURS)} (found {time_unit!r})",
        )
    if fixed is not None and "time_unit" in frame:
        raise SheetError(
            path,
            f"a time_unit column cannot be combined with '{column}' (whose unit is {fixed}): "
            "put the time in a 'time' column",
            line=1,
            column="time_unit",
        )
    units = []
    for i, line in enumerate(lines):
        unit = fixed or default
        if fixed is None and "time_unit" in frame and frame["time_unit"].iloc[i] != "":
            cell = frame["time_unit"].iloc[i]
            unit = time_unit_of(cell)
            if unit is None:
                raise SheetError(
                    path,
                    f"expected one of {', '.join(TIME_UNIT_HOURS)}",
                    line=int(line),
                    column="time_unit",
                    found=cell,
                )
        units.append(unit)
    out = frame.copy()
    out["time_hours"] = values * np.array([TIME_UNIT_HOURS[u] for u in units])
    reported = [  # "1 week", "4 weeks"
        f"{text} {unit[:-1] if values[i] == 1 else unit}" if text != "" else ""
        for i, (text, unit) in enumerate(zip(frame[column], units, strict=True))
    ]
    if "time_as_reported" in out:
        keep = out["time_as_reported"] != ""
        out["time_as_reported"] = out["time_as_reported"].where(keep, reported)
    else:
        out["time_as_reported"] = reported
    if column == "timepoint":  # its text is now in time_as_reported; it is not a window label
        out = out.drop(columns="timepoint")
    return out


def fill_sources(path: str, frame: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """Make the source columns of a minimal (precomputed or arm-level) sheet explicit.

    A registry column (REGISTRY_COLUMNS) fills `source_address` as "<column>: <value>" where it
    is empty. A sheet with no source column at all is accepted: `citation`, `source_address`,
    `source_locator` and `source_quote` become "unsourced" on every row. Returns the frame and
    whether the sheet was unsourced.
    """
    registry = [c for c in REGISTRY_COLUMNS if c in frame]
    if not registry and not any(c in frame for c in SOURCE_COLUMNS):
        out = frame.copy()
        for column in UNSOURCED_COLUMNS:
            out[column] = UNSOURCED
        return out, True
    if not registry:
        return frame, False
    out = frame.copy()
    text = pd.Series("", index=out.index, dtype=object)
    for column in registry:
        cell = out[column]
        label = "source" if column == "source" else column
        text = text.where((text != "") | (cell == ""), label + ": " + cell)
    if "source_address" in out:
        out["source_address"] = out["source_address"].where(out["source_address"] != "", text)
    else:
        out["source_address"] = text
    return out, False


def _cells(frame: pd.DataFrame, column: str) -> pd.Series:
    """A column of the sheet, or empty cells where the sheet lacks it."""
    return frame[column] if column in frame else pd.Series("", index=frame.index, dtype=object)


def arm_level_rows(
    path: str,
    frame: pd.DataFrame,
    *,
    control_arms: Sequence[str] = (),
    stat_kind_default: str | None = None,
) -> pd.DataFrame:
    """Complete an arm-level minimal sheet into extraction-sheet rows (still strings).

    Required: study_id, arm, a time, mean, n, and sd or se (checked here, one line naming the
    missing columns). The control arm: the row's `arm_role` cell (treatment or control), else
    an arm label listed in `control_arms` (case-insensitive; every other arm is a treatment).
    outcome defaults to score, stat_kind to `stat_kind_default`, design to parallel, trial
    attributes to "not reported"; what was assumed is written into `extraction_note`.
    """
    missing = [c for c in ("study_id", "arm", "mean", "n") if c not in frame]
    if "time_hours" not in frame:
        missing.append("a time (time_hours, time, week, day, hour, ...)")
    if "sd" not in frame and "se" not in frame:
        missing.append("sd or se")
    if missing:
        raise SheetError(
            path,
            "arm-level sheet: required column(s) missing from the header: "
            f"{', '.join(missing)} (docs/extraction_sheet.md, arm-level minimal sheet)",
            line=1,
        )
    out = frame.copy()
    lines = out["source_row"].to_numpy()
    controls = {c.strip().lower() for c in control_arms}
    role = _cells(out, "arm_role")
    if not controls and (role == "").any():
        i = int(np.flatnonzero((role == "").to_numpy())[0])
        raise SheetError(
            path,
            "arm-level sheet: which arm is the control? give an arm_role column (treatment or "
            "control) or set config control_arms to the control arm labels (e.g. [placebo])",
            line=int(lines[i]) if "arm_role" in out else 1,
            column="arm_role" if "arm_role" in out else None,
        )
    from_config = np.where(
        out["arm"].str.strip().str.lower().isin(controls), "control", "treatment"
    )
    out["arm_role"] = role.where(role != "", pd.Series(from_config, index=out.index))
    contrast = (out["arm_role"] == "contrast").to_numpy()
    if contrast.any():
        i = int(np.flatnonzero(contrast)[0])
        raise SheetError(
            path,
            "expected treatment or control in an arm-level sheet",
            line=int(lines[i]),
            column="arm_role",
            found="contrast",
        )
    if "outcome" not in out:
        out["outcome"] = "score"
    out["outcome"] = out["outcome"].where(out["outcome"] != "", "score")
    kind = _cells(out, "stat_kind")
    empty = (kind == "").to_numpy() & (out["outcome"] == "score").to_numpy()
    if empty.any() and stat_kind_default is None:
        i = int(np.flatnonzero(empty)[0])
        raise SheetError(
            path,
            "arm-level sheet: are the means final values or change from baseline? give a "
            "stat_kind column (final or change) or set config stat_kind_default",
            line=int(lines[i]) if "stat_kind" in out else 1,
            column="stat_kind" if "stat_kind" in out else None,
        )
    out["stat_kind"] = kind.where(~empty, stat_kind_default or "")
    design = _cells(out, "design")
    no_design = (design == "").to_numpy()
    out["design"] = design.where(~no_design, "parallel")
    for column in ARM_LEVEL_DEFAULTS:
        if column not in out:
            out[column] = ""
        out[column] = out[column].where(out[column] != "", NOT_REPORTED)
    note = _cells(out, "extraction_note")
    parts = [
        note.fillna("").to_numpy(dtype=object),
        np.where(no_design, "design not reported: arms analysed as independent groups", ""),
        np.where(empty, f"stat_kind {stat_kind_default} from config stat_kind_default", ""),
    ]
    out["extraction_note"] = ["; ".join(p for p in ps if p) for ps in zip(*parts, strict=True)]
    return out
