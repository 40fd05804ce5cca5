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

import codecs
import csv
import difflib
import io
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from timecourse_meta.errors import SheetError
from timecourse_meta.pipeline.sheet_checks import (
    ENUMS,
    EXTRACTION_REQUIRED,
    NUMERIC,
    PRECOMPUTED_REQUIRED,
    SOURCE_COLUMNS,
    STUDY_LEVEL,
    check_enums,
    check_study_consistency,
    cross_field_checks,
    parse_numeric,
    special_file_kind,
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
    "read_text_table",
    "sheet_warnings",
    "unknown_columns",
]

#: CSV dialects (config `csv_separator`, `decimal`): "auto" or one of these.
SEPARATORS: dict[str, str] = {",": "commas", ";": "semicolons", "\t": "tabs"}
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


def _decode(raw: bytes, path: str) -> str:
    """Decode sheet bytes: UTF-16 with BOM, UTF-8 with or without BOM; anything else is an error."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError as err:
            raise SheetError(path, f"not valid UTF-16 text ({err.reason})") from None
    if raw.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):
        raise SheetError(
            path, "is an Excel workbook, not a CSV file: save it as 'CSV UTF-8'", line=1
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        column, cell = _undecodable_cell(raw, err.start)
        raise SheetError(
            path,
            "is not UTF-8 text (save the sheet as 'CSV UTF-8'); "
            f"byte 0x{raw[err.start]:02x} cannot be decoded",
            line=line,
            column=column,
            found=cell,
        ) from None


def _undecodable_cell(raw: bytes, position: int) -> tuple[str | None, str | None]:
    """Column name and text (bad bytes shown as U+FFFD) of the cell holding byte `position`."""
    start = raw.rfind(b"\n", 0, position) + 1
    end = raw.find(b"\n", position)
    line = raw[start : len(raw) if end < 0 else end].decode("utf-8", errors="replace")
    head = raw[: max(raw.find(b"\n"), 0) or len(raw)].decode("utf-8-sig", errors="replace")
    before = raw[start:position].decode("utf-8", errors="replace")
    try:
        index = len(next(csv.reader([before]), [""])) - 1
        cells = next(csv.reader([line.rstrip("\r")]), [])
        names = next(csv.reader([head.rstrip("\r")]), [])
    except csv.Error:
        return None, None
    if start == 0:  # the header line itself
        return None, line.rstrip("\r")
    name = names[index].strip().lower() if index < len(names) else None
    return name or None, cells[index].strip() if index < len(cells) else None


def _records(
    text: str, path: str, delimiter: str = ","
) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Split CSV text into a normalised header and (line number, cells) records.

    Line numbers are those where each record starts (quoted fields may span lines). Blank lines
    and rows whose cells are all empty are skipped: they hold no data.
    """
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    records: list[tuple[int, list[str]]] = []
    line = 1
    try:
        for cells in reader:
            start, line = line, reader.line_num + 1
            if header is None:
                header = [c.strip().lower() for c in cells]
                continue
            if not any(c.strip() for c in cells):
                continue
            records.append((start, cells))
    except csv.Error as err:
        if "end of data" in str(err):  # a quote opened in the record starting at `line`
            raise SheetError(
                path,
                'is not valid CSV: a quoted field (") that starts in this row is never closed',
                line=line,
            ) from None
        raise SheetError(path, f"is not valid CSV ({err})", line=reader.line_num) from None
    if header is None or not any(header):
        raise SheetError(path, "is empty: expected a header line with column names", line=1)
    for sep, name in SEPARATORS.items():
        if sep != delimiter and sum(h.count(sep) for h in header) >= max(2, len(header)):
            raise SheetError(
                path,
                f"is not {SEPARATORS[delimiter].removesuffix('s')}-separated: the header has "
                f"{name} between column names (save it as CSV with ',' between fields and '.' "
                "as decimal mark, or set config csv_separator to the sheet's separator: "
                "',', ';' or '\\t')",
                line=1,
            )
    return header, records


def _separator(text: str, setting: str) -> str:
    """The field separator: `setting`, or for "auto" ';' when the header line has ';' and no
    ',' (European spreadsheet software), else ','."""
    if setting != "auto":
        return setting
    first = text.split("\n", 1)[0]
    return ";" if ";" in first and "," not in first else ","


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


def _table(path: str, header: list[str], records: list[tuple[int, list[str]]]) -> pd.DataFrame:
    """Check the header and field counts and return a frame of stripped strings plus source_row."""
    width = len(header)
    seen: dict[str, int] = {}
    for i, name in enumerate(header):
        if name and name in seen:
            raise SheetError(path, "column name appears twice in the header", line=1, column=name)
        seen[name] = i
    for line, cells in records:
        if len(cells) > width and any(c.strip() for c in cells[width:]):
            raise SheetError(
                path, f"row has {len(cells)} fields but the header has {width}", line=line
            )
    unnamed = [i for i, name in enumerate(header) if not name]
    for i in unnamed:
        for line, cells in records:
            if i < len(cells) and cells[i].strip():
                raise SheetError(
                    path,
                    f"value in field {i + 1}, which has no column name (name the column in "
                    "line 1 or delete the value)",
                    line=line,
                )
    keep = [i for i, name in enumerate(header) if name]
    # pad short rows with empty cells, then transpose once (fast for large sheets)
    padded = [cells if len(cells) >= width else cells + [""] * (width - len(cells))
              for _, cells in records]  # fmt: skip
    columns = list(zip(*padded, strict=False)) if padded else [()] * width
    data = {header[i]: [c.strip() for c in columns[i]] for i in keep}
    frame = pd.DataFrame(data, dtype=object)
    frame["source_row"] = [line for line, _ in records]
    return frame


def read_text_table(
    path: str | Path, *, label: str | None = None, separator: str = ","
) -> pd.DataFrame:
    """Read any CSV input of the workflow (not only extraction sheets) as stripped strings.

    The same decoding, CSV and header checks as `read_sheet` (UTF-8/UTF-16, Excel files
    refused, unclosed quotes, duplicate or unnamed columns, too many fields), each a one-line
    `SheetError` naming file, line and column; the header is lower-cased. Adds `source_row`
    (the CSV line number where each record starts). Used by companion inputs such as the
    risk-of-bias sheet, so there is one CSV reader in the package. `separator`: ',', ';', a tab,
    or "auto" (see `_separator`).
    """
    name = label if label is not None else Path(path).as_posix()
    kind = special_file_kind(path)
    if kind and kind != "missing":  # never open a FIFO or a device: it would block or not end
        raise SheetError(name, f"is {kind}, not a sheet file (a CSV file)")
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise SheetError(name, f"cannot be read ({err.strerror})") from None
    text = _decode(raw, name)
    delimiter = _separator(text, separator)
    header, records = _records(text, name, delimiter)
    frame = _table(name, header, records)
    frame.attrs["separator"] = delimiter
    if frame.empty:
        raise SheetError(name, "has a header but no data rows", line=1)
    return frame


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
        for f, r in zip(sub["source_file"], sub["source_row"], strict=True)
    ]
    return out.reset_index(drop=True)
