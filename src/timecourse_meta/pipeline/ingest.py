"""Read and validate extraction sheets (docs/extraction_sheet.md) into one long table of rows.

Two sheet formats are accepted:

* the extraction sheet: one row per trial x arm x outcome x reported time (arm-level statistics or
  a precomputed contrast), with full provenance on every row;
* a minimal precomputed sheet: `study_id`, a source column (`source_address`, `citation`, `doi` or
  `pmid`), a time column (`time_hours` or a window label in `timepoint`) and `yi` with `vi` or
  `sei`, where `yi` is already oriented so that positive = benefit of treatment.

Every problem raises `SheetError` naming the file, the CSV line number (header = line 1), the
column and what was expected. Each output row carries `source_file` and `source_row` (its line
number), so every number stays traceable to the line it came from.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import io
import math
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from timecourse_meta.errors import SheetError
from timecourse_meta.schema import EFFECT_COLUMNS

__all__ = [
    "ENUMS",
    "EXTRACTION_REQUIRED",
    "NUMERIC",
    "PRECOMPUTED_REQUIRED",
    "STUDY_LEVEL",
    "precomputed_effects",
    "read_sheet",
    "read_sheets",
    "read_text_table",
    "unknown_columns",
]

# Closed vocabularies (docs/extraction_sheet.md); matched case-insensitively, stored lower case.
ENUMS: dict[str, tuple[str, ...]] = {
    "source_type": ("primary", "secondary"),
    "value_origin": ("table", "text", "figure"),
    "design": ("parallel", "crossover"),
    "period": ("all", "first"),
    "population": ("unipolar", "bipolar", "anxiety", "ptsd", "other"),
    "trd": ("yes", "no", "unclear"),
    "concomitant_ad": ("yes", "no", "mixed", "unclear"),
    "control": ("saline", "midazolam", "other"),
    "route": ("iv", "intranasal", "im", "oral", "sc"),
    "lower_is_better": ("yes", "no"),
    "arm_role": ("treatment", "control", "contrast"),
    "outcome": ("score", "response", "remission"),
    "stat_kind": ("final", "change"),
    "effect_type": ("g", "d", "md"),
}

# Numeric columns: (kind, lower bound, lower bound inclusive, upper bound, upper inclusive).
NUMERIC: dict[str, tuple[str, float | None, bool, float | None, bool]] = {
    "time_hours": ("float", 0.0, True, None, False),
    "n": ("int", 2, True, None, False),  # an arm of one participant has no SD
    "mean": ("float", None, False, None, False),
    "sd": ("float", 0.0, False, None, False),
    "se": ("float", 0.0, False, None, False),
    "ci_low": ("float", None, False, None, False),
    "ci_high": ("float", None, False, None, False),
    "ci_level": ("float", 0.0, False, 1.0, False),
    "events": ("int", 0, True, None, False),
    "effect": ("float", None, False, None, False),
    "effect_se": ("float", 0.0, False, None, False),
    "effect_var": ("float", 0.0, False, None, False),
    "effect_ci_low": ("float", None, False, None, False),
    "effect_ci_high": ("float", None, False, None, False),
    "t_stat": ("float", None, False, None, False),
    "n_treatment": ("int", 2, True, None, False),
    "n_control": ("int", 2, True, None, False),
    "n_total": ("int", 2, True, None, False),
    "r_within": ("float", -1.0, True, 1.0, True),
    "yi": ("float", None, False, None, False),
    "vi": ("float", 0.0, False, None, False),
    "sei": ("float", 0.0, False, None, False),
}

# Columns that must be present and non-empty on every row of an extraction sheet
# ("required" in docs/extraction_sheet.md). `n` is required except on contrast rows, and at least
# one of `doi`/`pmid` must be given.
EXTRACTION_REQUIRED: tuple[str, ...] = (
    "study_id",
    "citation",
    "source_address",
    "source_locator",
    "source_quote",
    "source_type",
    "value_origin",
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
    "arm",
    "arm_role",
    "outcome",
    "time_hours",
    "time_as_reported",
    "n",
)
PRECOMPUTED_REQUIRED: tuple[str, ...] = ("study_id", "yi")
SOURCE_COLUMNS: tuple[str, ...] = ("source_address", "citation", "doi", "pmid")

# Trial-level attributes that must agree across all rows of one study_id (they define subgroups).
STUDY_LEVEL: tuple[str, ...] = ("design", "population", "trd", "concomitant_ad")

# Rows with the same values here describe the same number twice (would be double counted).
_DUPLICATE_KEY: tuple[str, ...] = (
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

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
# Cells that mean "not reported" in other conventions; here the cell is left empty instead.
_NOT_REPORTED = {"na", "n/a", "nan", "nr", "n.r.", "-", ".", "?", "none", "null", "missing", "#n/a"}
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


def _records(text: str, path: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Split CSV text into a normalised header and (line number, cells) records.

    Line numbers are those where each record starts (quoted fields may span lines). Blank lines
    and rows whose cells are all empty are skipped: they hold no data.
    """
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
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
    for sep, name in ((";", "semicolons"), ("\t", "tabs")):
        if sum(h.count(sep) for h in header) >= max(2, len(header)):
            raise SheetError(
                path,
                f"is not comma-separated: the header has {name} between column names (save it "
                "as CSV with ',' between fields and '.' as decimal mark)",
                line=1,
            )
    return header, records


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


def read_text_table(path: str | Path, *, label: str | None = None) -> pd.DataFrame:
    """Read any CSV input of the workflow (not only extraction sheets) as stripped strings.

    The same decoding, CSV and header checks as `read_sheet` (UTF-8/UTF-16, Excel files
    refused, unclosed quotes, duplicate or unnamed columns, too many fields), each a one-line
    `SheetError` naming file, line and column; the header is lower-cased. Adds `source_row`
    (the CSV line number where each record starts). Used by companion inputs such as the
    risk-of-bias sheet, so there is one CSV reader in the package.
    """
    name = label if label is not None else Path(path).as_posix()
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise SheetError(name, f"cannot be read ({err.strerror})") from None
    header, records = _records(_decode(raw, name), name)
    frame = _table(name, header, records)
    if frame.empty:
        raise SheetError(name, "has a header but no data rows", line=1)
    return frame


def _number_hint(text: str, column: str) -> str:
    """What to change in a cell that is not a plain number (appended to the message)."""
    lowered = text.lower()
    hint = " with '.' as decimal mark" if "," in text else ""
    if lowered in _NOT_REPORTED:
        hint += "; leave the cell empty if not reported"
    elif text.startswith("#"):
        hint += "; this is a spreadsheet error value: fix the formula, or leave the cell empty"
    elif "\u2212" in text or "\u2013" in text:
        hint += "; type the minus sign as '-' (hyphen-minus), not '\u2212' or '\u2013'"
    elif text.endswith("%"):
        hint += "; without the '%' sign"
    elif column == "time_hours" and re.search(r"[A-Za-z]", text):
        hint += "; time_hours is hours after the first dose (1 day = 24)"
    return hint


def _parse_numeric(path: str, column: str, values: pd.Series, lines: pd.Series) -> np.ndarray:
    """Parse one numeric column; empty cells become NaN (not reported), others must be numbers."""
    kind, low, low_inc, high, high_inc = NUMERIC[column]
    out = np.full(len(values), np.nan)
    for i, (text, line) in enumerate(zip(values, lines, strict=True)):
        if text == "":
            continue
        what = "a whole number" if kind == "int" else "a number"
        if not _NUMBER.match(text):
            raise SheetError(
                path,
                f"expected {what}{_number_hint(text, column)}",
                line=line,
                column=column,
                found=text,
            )
        value = float(text)
        if not math.isfinite(value):
            raise SheetError(
                path,
                f"expected a finite {what.removeprefix('a ')}",
                line=line,
                column=column,
                found=text,
            )
        if kind == "int" and value != int(value):
            raise SheetError(path, "expected a whole number", line=line, column=column, found=text)
        bad_low = low is not None and (value < low if low_inc else value <= low)
        bad_high = high is not None and (value > high if high_inc else value >= high)
        if bad_low or bad_high:
            bounds = []
            if low is not None:
                bounds.append(f"{'>=' if low_inc else '>'} {low:g}")
            if high is not None:
                bounds.append(f"{'<=' if high_inc else '<'} {high:g}")
            hint = " (a proportion such as 0.95)" if column == "ci_level" else ""
            raise SheetError(
                path,
                f"expected {what} {' and '.join(bounds)}{hint}",
                line=line,
                column=column,
                found=text,
            )
        out[i] = value
    return out


def _check_enums(path: str, frame: pd.DataFrame) -> None:
    """Lower-case closed-vocabulary columns in place and reject values outside them."""
    for column, allowed in ENUMS.items():
        if column not in frame:
            continue
        lowered = frame[column].str.lower()
        bad = (lowered != "") & ~lowered.isin(allowed)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            hint = ""
            if frame[column].iloc[i].lower() in _NOT_REPORTED:  # "NA", ".", ...
                if column not in EXTRACTION_REQUIRED:
                    hint = "; leave the cell empty if not reported"
                elif "unclear" in allowed:
                    hint = "; use 'unclear' if not reported"
            raise SheetError(
                path,
                f"expected one of {', '.join(allowed)}{hint}",
                line=int(frame["source_row"].iloc[i]),
                column=column,
                found=frame[column].iloc[i],
            )
        frame[column] = lowered


def _require_values(
    path: str, frame: pd.DataFrame, column: str, mask: np.ndarray, why: str
) -> None:
    """Raise for the first row in `mask` whose `column` cell is empty."""
    empty = mask & (frame[column].to_numpy() == "")
    if empty.any():
        i = int(np.flatnonzero(empty)[0])
        raise SheetError(
            path, f"value required {why}", line=int(frame["source_row"].iloc[i]), column=column
        )


def _validate_extraction(path: str, frame: pd.DataFrame) -> None:
    """Column presence and row-level rules for the full extraction sheet."""
    missing = [c for c in EXTRACTION_REQUIRED if c not in frame]
    if "doi" not in frame and "pmid" not in frame:
        missing.append("doi or pmid")
    if missing:
        raise SheetError(
            path, f"required column(s) missing from the header: {', '.join(missing)}", line=1
        )
    every = np.ones(len(frame), dtype=bool)
    contrast = (frame["arm_role"].str.lower() == "contrast").to_numpy()
    for column in EXTRACTION_REQUIRED:
        if column == "n":
            derive = np.zeros(len(frame), dtype=bool)
            for other in ("se", "ci_low"):
                if other in frame:
                    derive |= (frame[other] != "").to_numpy()
            if "sd" in frame:
                derive &= (frame["sd"] == "").to_numpy()
            _require_values(
                path,
                frame,
                column,
                ~contrast & derive,
                "on treatment and control rows: the SD is derived from the SE or CI with n "
                "(SD = SE x sqrt(n))",
            )
            _require_values(path, frame, column, ~contrast, "on treatment and control rows")
        else:
            _require_values(path, frame, column, every, "on every row")
    # A DOI/PMID is recorded where the source prints one; a row without either still carries
    # its source address, locator and quote (required above), and shows empty identifiers in
    # the provenance table rather than an identifier typed in from memory.
    if "value_origin" in frame:
        figure = (frame["value_origin"].str.lower() == "figure").to_numpy()
        note = frame["extraction_note"] if "extraction_note" in frame else None
        if figure.any() and note is None:
            raise SheetError(
                path,
                "column extraction_note is required when value_origin is "
                "'figure' (say how the values were read off the plot)",
                line=1,
            )
        if note is not None:
            _require_values(
                path,
                frame,
                "extraction_note",
                figure,
                "when value_origin is 'figure' (say how the values were read)",
            )


def _validate_precomputed(path: str, frame: pd.DataFrame) -> None:
    """Column presence and row-level rules for the minimal precomputed (yi/vi) sheet."""
    missing = [c for c in PRECOMPUTED_REQUIRED if c not in frame]
    if "vi" not in frame and "sei" not in frame:
        missing.append("vi or sei")
    if "time_hours" not in frame and "timepoint" not in frame:
        missing.append("time_hours or timepoint")
    sources = [c for c in SOURCE_COLUMNS if c in frame]
    if not sources:
        missing.append("a source column (" + ", ".join(SOURCE_COLUMNS) + ")")
    if missing:
        raise SheetError(
            path, f"required column(s) missing from the header: {', '.join(missing)}", line=1
        )
    every = np.ones(len(frame), dtype=bool)
    for column in PRECOMPUTED_REQUIRED:
        _require_values(path, frame, column, every, "on every row")
    for pair, name in ((("vi", "sei"), "vi"), (("time_hours", "timepoint"), "time_hours")):
        present = [frame[c] for c in pair if c in frame]
        empty = np.logical_and.reduce([(s == "").to_numpy() for s in present])
        if empty.any():
            i = int(np.flatnonzero(empty)[0])
            raise SheetError(
                path,
                f"one of {' or '.join(pair)} is required on every row",
                line=int(frame["source_row"].iloc[i]),
                column=name,
            )
    no_source = np.logical_and.reduce([(frame[c] == "").to_numpy() for c in sources])
    if no_source.any():
        i = int(np.flatnonzero(no_source)[0])
        raise SheetError(
            path,
            f"a source is required on every row (one of {', '.join(sources)})",
            line=int(frame["source_row"].iloc[i]),
            column=sources[0],
        )


def _cross_field_checks(path: str, frame: pd.DataFrame) -> None:
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


def _finalise(path: str, frame: pd.DataFrame, sheet_format: str) -> pd.DataFrame:
    """Parse numbers, add missing known columns as empty, tag source file and format."""
    for column in NUMERIC:
        if column in frame:
            frame[column] = _parse_numeric(path, column, frame[column], frame["source_row"])
    _cross_field_checks(path, frame)
    for column in TEXT_COLUMNS:
        if column not in frame:
            frame[column] = ""
    for column in NUMERIC:
        if column not in frame:
            frame[column] = np.nan
    frame["source_file"] = path
    frame["sheet_format"] = sheet_format
    return frame


def _check_spelling(path: str, frame: pd.DataFrame) -> None:
    """An unknown column that looks like a misspelt known one is an error, not ignored.

    Otherwise a typo such as `ci_hgh` would silently drop a statistic. Only columns that change
    the analysis are compared, only with known columns absent from the header, and only when
    the lengths differ by at most 2 and the name does not contain the known name (so an
    extension such as `source_address_used` is kept as an extra column).
    """
    known = set(TEXT_COLUMNS) | set(NUMERIC) | {"source_row"}
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


def read_sheet(path: str | Path, *, label: str | None = None) -> pd.DataFrame:
    """Read and validate one sheet; return its rows with `source_file`, `source_row` added.

    `label` is how the file is named in outputs and messages (default: `path` as given, which
    should be project-relative so that outputs do not depend on where the project lives).
    Text cells are stripped strings ("" = not reported); numeric cells are float (NaN = empty).
    """
    name = label if label is not None else Path(path).as_posix()
    frame = read_text_table(path, label=name)
    _check_spelling(name, frame)
    sheet_format = "precomputed" if "yi" in frame and "arm_role" not in frame else "extraction"
    _check_enums(name, frame)
    if sheet_format == "extraction":
        _validate_extraction(name, frame)
    else:
        _validate_precomputed(name, frame)
    return _finalise(name, frame, sheet_format)


def _check_study_consistency(frame: pd.DataFrame) -> None:
    """Trial-level attributes must agree across the rows of a study (they define subgroups)."""
    for column in STUDY_LEVEL:
        sub = frame.loc[frame[column] != "", ["study_id", column, "source_file", "source_row"]]
        counts = sub.groupby("study_id", sort=True)[column].nunique()
        bad = counts[counts > 1]
        if len(bad):
            study = bad.index[0]
            rows = sub[sub["study_id"] == study]
            first = rows.iloc[0]
            other = rows[rows[column] != first[column]].iloc[0]
            raise SheetError(
                other["source_file"],
                f"study '{study}' has {column} '{other[column]}' here but '{first[column]}' on "
                f"{first['source_file']} line {first['source_row']}; a study's {column} must be "
                "the same on all its rows",
                line=int(other["source_row"]),
                column=column,
            )


def _check_duplicates(frame: pd.DataFrame) -> None:
    """Two rows with the same study, arm, outcome, scale, time, period and kind are a duplicate."""
    key = frame[list(_DUPLICATE_KEY)].astype(str)
    dup = key.duplicated(keep=False).to_numpy()
    if dup.any():
        rows = frame.loc[dup]
        first = rows.iloc[0]
        same = (key.loc[dup] == key.loc[dup].iloc[0]).all(axis=1)
        second = rows.loc[same.to_numpy()].iloc[1]
        raise SheetError(
            second["source_file"],
            f"duplicate of {first['source_file']} line {first['source_row']} (same study_id, arm, "
            "arm_role, outcome, scale, time, period and stat_kind): the same result would be "
            "counted twice",
            line=int(second["source_row"]),
        )


def read_sheets(
    paths: str | Path | Sequence[str | Path], *, root: str | Path | None = None
) -> pd.DataFrame:
    """Read every sheet, check cross-sheet consistency, return rows sorted by file and line.

    `root`, if given, is the directory relative paths are resolved against; `source_file` keeps
    the path as written (project-relative), so outputs are the same wherever the project lives.
    """
    items: Iterable[str | Path] = [paths] if isinstance(paths, (str, Path)) else paths
    frames = []
    for item in items:
        where = Path(root) / item if root is not None else Path(item)
        frames.append(read_sheet(where, label=Path(item).as_posix()))
    if not frames:
        raise SheetError("config 'studies'", "no sheet given")
    frame = pd.concat(frames, ignore_index=True, sort=False)
    for column in TEXT_COLUMNS:
        frame[column] = frame[column].fillna("").astype(str)
    _check_study_consistency(frame)
    _check_duplicates(frame)
    frame["source_row"] = frame["source_row"].astype("int64")
    first = ["source_file", "source_row", "sheet_format"]
    rest = sorted(c for c in frame.columns if c not in first)
    return frame[first + rest].reset_index(drop=True)


def unknown_columns(rows: pd.DataFrame) -> list[str]:
    """Columns of the sheets that no part of the analysis reads (kept, reported in the log)."""
    known = set(TEXT_COLUMNS) | set(NUMERIC) | {"source_file", "source_row", "sheet_format"}
    return sorted(c for c in rows.columns if c not in known)


def precomputed_effects(rows: pd.DataFrame, *, measure_default: str = "SMD") -> pd.DataFrame:
    """Effects table (same columns as `comparisons.compute_effects`) from precomputed-sheet rows.

    `yi` is taken as given (already positive = benefit); `vi` is used, else `sei**2`. The measure
    is the row's `measure` cell, else `measure_default`. Rows need a `timepoint` (windows stage).
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
    out["comparison_id"] = sub["study_id"]
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
    out["row_ids"] = sub["source_file"] + ":" + sub["source_row"].astype(str)
    return out.reset_index(drop=True)
