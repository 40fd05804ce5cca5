"""Read and validate extraction sheets (docs/extraction_sheet.md) into one long table of rows.

Three sheet formats are accepted:

* the extraction sheet: one row per trial x arm x outcome x reported time (arm-level statistics or
  a precomputed contrast), with full provenance on every row;
* a minimal precomputed sheet: `study_id`, a source column (`source_address`, `citation`, `doi` or
  `pmid`), a time column (`time_hours` or a window label in `timepoint`) and `yi` with `vi` or
  `sei`, where `yi` is already oriented so that positive = benefit of treatment;
* an arm-level minimal sheet (one row per study x arm x time with mean, SD or SE and n, the
  layout of R's MBNMAtime), completed into extraction rows by `sheet_layouts.arm_level_rows`.

Foreign layouts are accepted through documented column aliases, time units and CSV dialects
(semicolon separator, decimal comma; `sheet_layouts`); a minimal sheet without any source
column is accepted with every row marked "unsourced" (`sheet_warnings` says so).

Every problem raises `SheetError` naming the file, the CSV line number (header = line 1), the
column and what was expected. Each output row carries `source_file` and `source_row` (its line
number), so every number stays traceable to the line it came from.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from timecourse_meta.errors import SheetError
from timecourse_meta.pipeline.csv_reader import SEPARATORS, read_text_table
from timecourse_meta.pipeline.row_statistics import cross_field_checks
from timecourse_meta.pipeline.sheet_checks import (
    ENUMS,
    EXTRACTION_REQUIRED,
    NUMERIC,
    PRECOMPUTED_REQUIRED,
    SOURCE_COLUMNS,
    STUDY_LEVEL,
    check_enums,
    check_study_consistency,
    parse_numeric,
    validate_extraction,
    validate_precomputed,
)
from timecourse_meta.pipeline.sheet_layouts import (
    UNSOURCED,
    arm_level_rows,
    convert_time,
    fill_sources,
    is_arm_level,
    resolve_aliases,
)
from timecourse_meta.schema import EFFECT_COLUMNS, SOURCE_ROWS

__all__ = [
    "ENUMS",
    "EXTRACTION_REQUIRED",
    "NUMERIC",
    "PRECOMPUTED_REQUIRED",
    "SOURCE_COLUMNS",
    "STUDY_LEVEL",
    "precomputed_effects",
    "read_sheet",
    "read_sheets",
    "sheet_warnings",
    "unknown_columns",
]

#: decimal marks (config `decimal`): "auto" or one of these; separators: `csv_reader.SEPARATORS`.
DECIMAL_MARKS: tuple[str, ...] = (".", ",")
_DECIMAL_COMMA = re.compile(r"^[+-]?\d*,\d+([eE][+-]?\d+)?$")

TEXT_COLUMNS: tuple[str, ...] = (
    "study_id",
    "citation",
    "doi",
    "pmid",
    "source_address",
    "source_locator",
    "source_quote",
    "source_type",
    "value_origin",
    "extraction_note",
    "design",
    "period",
    "population",
    "trd",
    "concomitant_ad",
    "control",
    "drug",
    "route",
    "dose",
    "scale",
    "lower_is_better",
    "arm",
    "arm_role",
    "outcome",
    "time_as_reported",
    "timepoint",
    "stat_kind",
    "effect_type",
    "measure",
)

# Columns whose misspelling would silently change the analysis (checked against the header).
_SPELL_CHECKED: tuple[str, ...] = tuple(
    sorted((set(EXTRACTION_REQUIRED) | set(NUMERIC) | set(ENUMS) | {"yi", "timepoint"}) - {"doi"})
)


def _decimal_mark(frame: pd.DataFrame, separator: str, setting: str) -> str:
    """The decimal mark: `setting`, or for "auto" ',' in a semicolon-separated sheet whose
    numeric columns hold a decimal comma (e.g. `18,5`), else '.'. A comma-separated sheet
    cannot have decimal commas (they would split the cells), so there it is always '.'."""
    if setting != "auto":
        return setting
    if separator == ",":
        return "."
    numeric = [c for c in frame.columns if c in NUMERIC or c in ("time", "week", "weeks", "day",
               "days", "hour", "hours", "timepoint", "y")]  # fmt: skip
    for column in numeric:
        if frame[column].map(lambda t: bool(_DECIMAL_COMMA.match(t))).any():
            return ","
    return "."


def _finalise(
    path: str,
    frame: pd.DataFrame,
    sheet_format: str,
    layout: str,
    decimal: str = ".",
    separator: str = ",",
) -> pd.DataFrame:
    """Parse numbers, add missing known columns as empty, tag source file, format and layout."""
    for column in NUMERIC:
        if column in frame and frame[column].dtype.kind not in "fiu":  # time may be converted
            frame[column] = parse_numeric(
                path,
                column,
                frame[column],
                frame["source_row"],
                decimal=decimal,
                separator=separator,
            )
    cross_field_checks(path, frame)
    for column in TEXT_COLUMNS:
        if column not in frame:
            frame[column] = ""
    for column in NUMERIC:
        if column not in frame:
            frame[column] = np.nan
    frame["source_file"] = path
    frame["sheet_format"] = sheet_format
    frame["sheet_layout"] = layout
    return frame


def _check_spelling(path: str, frame: pd.DataFrame) -> None:
    """An unknown column that looks like a misspelt known one is an error, not ignored.

    Otherwise a typo such as `ci_hgh` would silently drop a statistic. Only columns that change
    the analysis are compared, only with known columns absent from the header, and only when
    the lengths differ by at most 2 and the name does not contain the known name (so an
    extension such as `source_address_used` is kept as an extra column).
    """
    known = set(TEXT_COLUMNS) | set(NUMERIC) | {"source_row", "time_unit"}
    absent = [c for c in _SPELL_CHECKED if c not in frame]
    for column in frame.columns:
        if column in known:
            continue
        near = [c for c in absent if abs(len(c) - len(column)) <= 2 and c not in column]
        close = difflib.get_close_matches(column, near, n=1, cutoff=0.8)
        if close:
            raise SheetError(
                path,
                f"unknown column name; did you mean '{close[0]}'? (rename the column)",
                line=1,
                column=column,
            )


def read_sheet(
    path: str | Path,
    *,
    label: str | None = None,
    csv_separator: str = "auto",
    decimal: str = "auto",
    time_unit: str | None = None,
    control_arms: Sequence[str] = (),
    stat_kind_default: str | None = None,
) -> pd.DataFrame:
    """Read and validate one sheet; return its rows with `source_file`, `source_row` added.

    `label` is how the file is named in outputs and messages (default: `path` as given).
    Text cells are stripped strings ("" = not reported); numeric cells are float (NaN = empty).
    `csv_separator`, `decimal`: the CSV dialect ("auto" detects it); `time_unit`: unit of a
    plain `time` column without `time_unit` cells (None = hours); `control_arms`,
    `stat_kind_default`: for arm-level minimal sheets (config keys of the same names).
    Column `sheet_format` is "extraction" (arm rows and contrasts, also for arm-level minimal
    sheets) or "precomputed"; `sheet_layout` says which layout the sheet had.
    """
    name = label if label is not None else Path(path).as_posix()
    if csv_separator != "auto" and csv_separator not in SEPARATORS:
        raise SheetError(
            "config 'csv_separator'", f"expected auto, ',', ';' or a tab (found {csv_separator!r})"
        )
    if decimal != "auto" and decimal not in DECIMAL_MARKS:
        raise SheetError("config 'decimal'", f"expected auto, '.' or ',' (found {decimal!r})")
    frame = read_text_table(path, label=name, separator=csv_separator)
    separator = frame.attrs["separator"]
    frame = resolve_aliases(name, frame)
    mark = _decimal_mark(frame, separator, decimal)
    frame = convert_time(name, frame, time_unit=time_unit, decimal=mark, separator=separator)
    _check_spelling(name, frame)
    if "yi" in frame and "arm_role" not in frame:
        sheet_format, layout = "precomputed", "precomputed"
    elif is_arm_level(frame):
        sheet_format, layout = "extraction", "arm-level"
    else:
        sheet_format, layout = "extraction", "extraction"
    check_enums(name, frame)
    if layout == "extraction":
        validate_extraction(name, frame)
    else:
        frame, _ = fill_sources(name, frame)
        if layout == "precomputed":
            validate_precomputed(name, frame)
        else:
            frame = arm_level_rows(
                name, frame, control_arms=control_arms, stat_kind_default=stat_kind_default
            )
    return _finalise(name, frame, sheet_format, layout, mark, separator)


def read_sheets(
    paths: str | Path | Sequence[str | Path],
    *,
    root: str | Path | None = None,
    csv_separator: str = "auto",
    decimal: str = "auto",
    time_unit: str | None = None,
    control_arms: Sequence[str] = (),
    stat_kind_default: str | None = None,
) -> pd.DataFrame:
    """Read every sheet, check cross-sheet consistency, return rows sorted by file and line.

    Duplicate results are not refused here but by the windows stage, after the exclusion
    filters (``windows.select_windows``).

    `root`, if given, is the directory relative paths are resolved against (absolute paths are
    read where they are); `source_file` keeps the path as written, so provenance names the file
    the way the configuration does. The other options are those of `read_sheet`.
    """
    items: Iterable[str | Path] = [paths] if isinstance(paths, (str, Path)) else paths
    frames = []
    for item in items:
        where = Path(root) / item if root is not None else Path(item)
        frames.append(
            read_sheet(
                where,
                label=Path(item).as_posix(),
                csv_separator=csv_separator,
                decimal=decimal,
                time_unit=time_unit,
                control_arms=control_arms,
                stat_kind_default=stat_kind_default,
            )
        )
    if not frames:
        raise SheetError("config 'studies'", "no sheet given")
    frame = pd.concat(frames, ignore_index=True, sort=False)
    for column in TEXT_COLUMNS:
        frame[column] = frame[column].fillna("").astype(str)
    check_study_consistency(frame)
    # duplicates are checked by the windows stage on the rows left after the exclusion filters
    # (windows.select_windows): a baseline row or an excluded arm may repeat a key
    frame["source_row"] = frame["source_row"].astype("int64")
    first = ["source_file", "source_row", "sheet_format"]
    rest = sorted(c for c in frame.columns if c not in first)
    return frame[first + rest].reset_index(drop=True)


def sheet_warnings(rows: pd.DataFrame) -> list[str]:
    """One loud line per sheet whose rows have no source (every source column "unsourced")."""
    if "source_address" not in rows:
        return []
    unsourced = rows.loc[rows["source_address"] == UNSOURCED, "source_file"]
    return [
        f"WARNING: {name}: no source column (source_address, citation, doi, pmid, source, "
        "clinicaltrialgov_id, nct_id, registry_id): its rows are marked 'unsourced' in the "
        f"provenance ({count} rows); add a source column so every number can be traced"
        for name, count in unsourced.value_counts(sort=False).sort_index().items()
    ]


def unknown_columns(rows: pd.DataFrame) -> list[str]:
    """Columns of the sheets that no part of the analysis reads (kept, reported in the log)."""
    known = set(TEXT_COLUMNS) | set(NUMERIC) | {"source_file", "source_row", "sheet_format",
                                                 "sheet_layout", "time_unit"}  # fmt: skip
    return sorted(c for c in rows.columns if c not in known)


def precomputed_effects(rows: pd.DataFrame, *, measure_default: str = "SMD") -> pd.DataFrame:
    """Effects table (same columns as `comparisons.compute_effects`) from precomputed-sheet rows.

    `yi` is taken as given (already positive = benefit); `vi` is used, else `sei**2`. The measure
    is the row's `measure` cell, else `measure_default`. Rows need a `timepoint` (windows stage).
    A study with several `arm` labels (comparisons of a multi-arm trial) gets one comparison_id
    per arm, "<study_id> / <arm>".
    """
    sub = rows.loc[rows["sheet_format"] == "precomputed"].copy()
    vi = sub["vi"].to_numpy(dtype=float)
    sei = sub["sei"].to_numpy(dtype=float)
    from_se = np.isnan(vi)
    vi = np.where(from_se, sei**2, vi)
    out = pd.DataFrame(index=sub.index)
    for column in EFFECT_COLUMNS:
        out[column] = sub[column] if column in sub else ""
    out["outcome"] = sub["outcome"].where(sub["outcome"] != "", "score")
    out["measure"] = sub["measure"].where(sub["measure"] != "", measure_default)
    # several comparisons of one study (a multi-arm trial's `arm` cells) are told apart as in
    # comparisons.compute_effects: "<study_id> / <arm>"
    arms = sub.loc[sub["arm"] != ""].groupby("study_id")["arm"].nunique()
    multi = sub["study_id"].map(arms).fillna(0).to_numpy() > 1
    out["comparison_id"] = np.where(multi, sub["study_id"] + " / " + sub["arm"], sub["study_id"])
    out["yi"] = sub["yi"].astype(float)
    out["vi"] = vi
    out["sei"] = np.sqrt(vi)
    for column in ("n_treatment", "n_control", "n_total"):
        out[column] = sub[column].astype(float)
    both = out["n_total"].isna() & out["n_treatment"].notna() & out["n_control"].notna()
    out.loc[both, "n_total"] = out.loc[both, "n_treatment"] + out.loc[both, "n_control"]
    out["source_type"] = sub["source_type"].where(sub["source_type"] != "", "unspecified")
    out["derivation"] = np.where(from_se, "precomputed yi; vi = sei^2", "precomputed yi, vi")
    out["flags"] = "precomputed"
    out["row_ids"] = sub["source_file"] + ":" + sub["source_row"].astype(str)  # readable only
    out[SOURCE_ROWS] = [
        [{"source_file": str(f), "source_row": int(r)}]
        for f, r in zip(sub["source_file"].tolist(), sub["source_row"].tolist(), strict=True)
    ]
    return out.reset_index(drop=True)
