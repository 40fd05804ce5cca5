"""Validation rules of the input sheets: vocabularies, numeric ranges, required cells, and the
checks across rows (duplicates, study attributes that disagree). The checks within a row
(statistics that contradict each other) are in `row_statistics`.

Every problem raises `SheetError` naming the file, the CSV line number (header = line 1), the
column and what was expected; a cell is quoted as a short escaped excerpt (`errors.excerpt`).
`ingest.read_sheet` calls these after the CSV has been split into cells.

Valid numeric range (docs/extraction_sheet.md, config/schema/studies.schema.yaml): every number
has magnitude at most `MAX_MAGNITUDE` (variances: its square); spreads (sd, se, sei, effect_se)
are at least `MIN_SPREAD` and variances (vi, effect_var) at least `MIN_SPREAD` squared. Outside
that range a value is a typing or unit error, and it breaks the arithmetic downstream (a variance
of 1e-300 gives an inverse-variance weight that overflows; a mean of 1e300 overflows when
squared), so it is refused here rather than turned into inf/NaN later.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from timecourse_meta.errors import SheetError
from timecourse_meta.schema import MAX_MAGNITUDE, MIN_SPREAD

__all__ = [
    "ENUMS",
    "EXTRACTION_REQUIRED",
    "MAX_MAGNITUDE",
    "MIN_SPREAD",
    "NUMERIC",
    "PRECOMPUTED_REQUIRED",
    "SOURCE_COLUMNS",
    "STUDY_LEVEL",
    "check_enums",
    "check_study_consistency",
    "parse_numeric",
    "validate_extraction",
    "validate_precomputed",
    "value_range",
]

# Closed vocabularies (docs/extraction_sheet.md); matched case-insensitively, stored lower case.
ENUMS: dict[str, tuple[str, ...]] = {
    "source_type": ("primary", "secondary"),
    "value_origin": ("table", "text", "figure"),
    "design": ("parallel", "crossover"),
    "period": ("all", "first", "second"),
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
    # time <= 0 = baseline (before or at the dose): accepted, excluded by the windows stage
    "time_hours": ("float", None, False, None, False),
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
    "r_within": ("float", -1.0, False, 1.0, False),  # |r| = 1: SD of differences 0 or undefined
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

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
# Cells that mean "not reported" in other conventions; here the cell is left empty instead.
_NOT_REPORTED = {"na", "n/a", "nan", "nr", "n.r.", "-", ".", "?", "none", "null", "missing", "#n/a"}
# Valid numeric range (see the module docstring): larger magnitudes or smaller spreads are
# refused with the range in the message.
_SPREADS = ("sd", "se", "sei", "effect_se")
_VARIANCES = ("vi", "effect_var")


def value_range(column: str) -> tuple[float, float]:
    """(smallest allowed positive value or 0, largest allowed magnitude) of a numeric column."""
    if column in _VARIANCES:
        return MIN_SPREAD**2, MAX_MAGNITUDE**2
    if column in _SPREADS:
        return MIN_SPREAD, MAX_MAGNITUDE
    return 0.0, MAX_MAGNITUDE


def _number_hint(text: str, column: str, decimal: str = ".", separator: str = ",") -> str:
    """What to change in a cell that is not a plain number (appended to the message)."""
    lowered = text.lower()
    hint = ""
    if "," in text and decimal == ".":
        hint = " with '.' as decimal mark"
        if _NUMBER.match(text.replace(",", ".", 1)):
            hint += (
                " (a decimal comma in a comma-separated sheet: write '.', or save the sheet with "
                "';' between fields, whose decimal commas are read)"
                if separator == ","
                else " (config decimal is '.': set it to ',' or auto to read decimal commas)"
            )
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


def _all_valid(
    values: pd.Series,
    kind: str,
    column: str,
    decimal: str,
    bounds: tuple[float | None, bool, float | None, bool],
) -> np.ndarray | None:
    """The parsed column when every cell passes `parse_numeric`'s checks, else None.

    The same checks on the whole column at once (the number pattern mapped over the cells,
    then array comparisons), so a valid sheet of 10^5 rows costs no Python-level step per
    cell; on None the cell-by-cell loop finds the first bad cell and names it.
    """
    if decimal != ".":
        return None
    cells = np.asarray(values, dtype=object)
    filled = cells != ""
    text = cells[filled].tolist()
    out = np.full(len(cells), np.nan)
    if not text:
        return out
    if not all(map(_NUMBER.match, text)):
        return None
    value = np.array(text, dtype=float)
    low, low_inc, high, high_inc = bounds
    smallest, largest = value_range(column)
    bad = ~np.isfinite(value) | (np.abs(value) > largest)
    bad |= (value != 0) & (np.abs(value) < smallest)
    if kind == "int":
        bad |= value != np.trunc(value)
    if low is not None:
        bad |= value < low if low_inc else value <= low
    if high is not None:
        bad |= value > high if high_inc else value >= high
    if bad.any():
        return None
    out[filled] = value
    return out


def parse_numeric(
    path: str,
    column: str,
    values: pd.Series,
    lines: pd.Series,
    *,
    as_column: str | None = None,
    decimal: str = ".",
    separator: str = ",",
) -> np.ndarray:
    """Parse one numeric column; empty cells become NaN (not reported), others must be numbers.

    `as_column`: the known column whose kind and range apply (an alias such as `week` is
    checked as `time_hours`; messages name `column`). `decimal`: the sheet's decimal mark; with
    "," a cell such as `18,5` is 18.5 and a '.' in a number is refused (a thousands separator
    or a mix of marks cannot be told apart). `separator`: the sheet's field separator (for the
    hint of a message only).
    """
    kind, low, low_inc, high, high_inc = NUMERIC[as_column or column]
    fast = _all_valid(values, kind, column, decimal, (low, low_inc, high, high_inc))
    if fast is not None:
        return fast
    out = np.full(len(values), np.nan)  # some cell is bad: find the first and say why
    for i, (cell, line) in enumerate(zip(values, lines, strict=True)):
        if cell == "":
            continue
        what = "a whole number" if kind == "int" else "a number"
        text = cell
        if decimal == ",":
            if "." in cell and _NUMBER.match(cell):
                raise SheetError(
                    path,
                    f"expected {what} with ',' as decimal mark (the sheet's decimal mark is ',': "
                    "a '.' is a thousands separator or a mixed mark; set config decimal: '.' "
                    "if the sheet uses '.')",
                    line=line,
                    column=column,
                    found=cell,
                )
            text = cell.replace(",", ".", 1)
        if not _NUMBER.match(text):
            raise SheetError(
                path,
                f"expected {what}{_number_hint(cell, column, decimal, separator)}",
                line=line,
                column=column,
                found=cell,
            )
        value = float(text)
        if not math.isfinite(value):
            raise SheetError(
                path,
                f"expected a finite {what.removeprefix('a ')}",
                line=line,
                column=column,
                found=cell,
            )
        if kind == "int" and value != int(value):
            raise SheetError(path, "expected a whole number", line=line, column=column, found=cell)
        bad_low = low is not None and (value < low if low_inc else value <= low)
        bad_high = high is not None and (value > high if high_inc else value >= high)
        if bad_low or bad_high:
            bounds = []
            if low is not None:
                bounds.append(f"{'>=' if low_inc else '>'} {low:g}")
            if high is not None:
                bounds.append(f"{'<=' if high_inc else '<'} {high:g}")
            hint = {
                "ci_level": " (a proportion such as 0.95)",
                "r_within": " (a correlation of 1 or -1 makes the SD of the within-person "
                "differences 0 or undefined, so no effect size can be computed)",
            }.get(column, "")
            raise SheetError(
                path,
                f"expected {what} {' and '.join(bounds)}{hint}",
                line=line,
                column=column,
                found=cell,
            )
        smallest, largest = value_range(column)
        if abs(value) > largest or (value != 0 and abs(value) < smallest):
            raise SheetError(
                path,
                f"expected {what} "
                + (
                    f"between {smallest:g} and {largest:g}"
                    if smallest
                    else f"of magnitude at most {largest:g}"
                )
                + " (the valid range, docs/extraction_sheet.md: a value outside it is a typing or "
                "unit error and breaks the arithmetic of pooling)",
                line=line,
                column=column,
                found=cell,
            )
        out[i] = value
    return out


def check_enums(path: str, frame: pd.DataFrame) -> None:
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


def validate_extraction(path: str, frame: pd.DataFrame) -> None:
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


def validate_precomputed(path: str, frame: pd.DataFrame) -> None:
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


def check_study_consistency(frame: pd.DataFrame) -> None:
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
