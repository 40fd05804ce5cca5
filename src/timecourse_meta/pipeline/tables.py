"""Deterministic table writers (CSV, Markdown) and the provenance table.

Same data in, same bytes out: floats are written with a fixed number of significant digits
(CSV) or decimals (Markdown), missing values as `NA`, line endings `\\n`, UTF-8 without BOM, and
rows in the order given (callers sort). No timestamps.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from timecourse_meta.schema import ACCOUNTING_COLUMNS, PROVENANCE_COLUMNS, SOURCE_ROWS

__all__ = [
    "CSV_DIGITS",
    "MD_DECIMALS",
    "MISSING",
    "format_value",
    "provenance_table",
    "row_accounting",
    "software_versions",
    "sort_effects",
    "to_csv_text",
    "to_markdown_text",
    "write_csv",
    "write_markdown",
    "write_parquet",
]

CSV_DIGITS = 6  # significant digits of floats in CSV outputs
MD_DECIMALS = 3  # decimals of floats in Markdown tables
MISSING = "NA"  # how an absent value is written (always explained in a warnings/notes column)
_P_COLUMNS = {"pval", "Q_p", "QM_p", "p", "p_value"}


def format_value(
    value: object,
    *,
    digits: int | None = CSV_DIGITS,
    decimals: int | None = None,
    pvalue: bool = False,
) -> str:
    """Format one cell: floats with `digits` significant digits or `decimals` decimals.

    Integral floats print without a decimal point (20.0 -> "20"); NaN/None -> "NA"; -0 -> "0";
    with `pvalue` and `decimals`, values below 10**-decimals print as "<0.001".
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        x = float(value)
        if math.isnan(x):
            return MISSING
        if math.isinf(x):
            return "Inf" if x > 0 else "-Inf"
        if decimals is not None:
            if pvalue and 0 <= x < 10**-decimals:
                return "<" + f"{10**-decimals:.{decimals}f}"
            text = f"{x:.{decimals}f}"
            return "0" + text[2:] if text.startswith("-0") and float(text) == 0 else text
        if x == 0:
            return "0"
        if x.is_integer() and abs(x) < 1e15:
            return str(int(x))
        return f"{x:.{digits}g}"
    return str(value)


def is_count_column(name: str) -> bool:
    """Columns holding counts (k, n_*, *_k, rows_*, degrees of freedom): no decimals."""
    return (
        name in {"k", "n", "events"}
        or name.startswith(("n_", "rows_"))
        or name.endswith("_k")
        or name.endswith("_df")
        or "_df" in name
        or name == "df"
    )


def _float_cells(a: np.ndarray, digits: int, count: bool) -> list[str]:
    """`format_value` of every float of `a` with `digits` significant digits, for a whole column.

    One C-level ``%``-format for all cells (``'%.Ng' % x`` is ``f"{x:.Ng}"``), then the cells
    the rule writes otherwise are rewritten: NaN -> NA, +-inf -> Inf/-Inf, 0 and -0 -> 0,
    integral values from 10**digits up to 1e15 -> the integer (below 10**digits ``%g`` already
    prints it so). In a count column integral values use CSV_DIGITS, as `format_value` does.
    """
    a = np.asarray(a, dtype=np.float64)
    n = a.shape[0]
    if n == 0:
        return []
    cells = ((f"%.{digits}g\x00" * n) % tuple(a.tolist())).split("\x00")[:-1]
    finite = np.isfinite(a)
    safe = np.where(finite, a, 0.0)
    big = np.abs(safe)
    integral = finite & (a == np.trunc(safe))
    fix = ~finite | (a == 0) | (integral & (big >= 10.0**digits) & (big < 1e15))
    if count and digits != CSV_DIGITS:
        fix |= integral & (big >= 1e15)
    if fix.any():
        out = np.array(cells, dtype=object)
        out[np.isnan(a)] = MISSING
        out[a == np.inf] = "Inf"
        out[a == -np.inf] = "-Inf"
        out[a == 0] = "0"
        for i in np.flatnonzero(fix & integral & (a != 0)).tolist():
            digits_i = CSV_DIGITS if count else digits
            out[i] = format_value(float(a[i]), digits=digits_i, decimals=None)
        cells = out.tolist()
    return cells


def _csv_quoted(cells: list[str]) -> list[str]:
    """`_csv_cell` of every cell, computed once per distinct value (not at all when no cell
    holds a character that needs quotes or starts or ends with white space)."""
    joined = "\x00" + "\x00".join(cells) + "\x00"
    if not (
        any(ch in joined for ch in _QUOTE_CHARS)
        or _SPACE_AFTER_NUL.search(joined)  # a cell that starts with white space
        or _SPACE_AFTER_NUL.search(joined[::-1])  # ... or ends with it
    ):
        return cells
    quoted = {t: q for t in set(cells) if (q := _csv_cell(t)) != t}
    return [quoted.get(t, t) for t in cells] if quoted else cells


def _csv_column(name: str, values: pd.Series, digits: int) -> list[str]:
    """The CSV cells of one column: as `_formatted_column`, quoted where CSV needs it.

    Plain numpy float, integer and bool columns are formatted as whole arrays (their cells
    never need quotes); other columns cell by cell.
    """
    dtype = values.dtype
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        return _float_cells(values.to_numpy(), digits, is_count_column(name))
    if isinstance(dtype, np.dtype) and dtype.kind in "iu":
        return list(map(str, values.to_numpy().tolist()))
    if isinstance(dtype, np.dtype) and dtype.kind == "b":
        return ["TRUE" if v else "FALSE" for v in values.to_numpy().tolist()]
    cells = _text_cells(values, digits)
    if cells is None:
        cells = _formatted_column(name, values, digits=digits)
    return _csv_quoted(cells)


def _text_cells(values: pd.Series, digits: int) -> list[str] | None:
    """The cells of a column of strings and missing values (None for any other column).

    Strings are written as they are and missing cells as `format_value` writes them, as in
    `_formatted_column`, without a Python step per string.
    """
    if pd.api.types.infer_dtype(values, skipna=True) not in ("string", "empty"):
        return None
    cells = values.to_numpy(dtype=object).tolist()
    for i in np.flatnonzero(values.isna().to_numpy()).tolist():
        cells[i] = format_value(cells[i], digits=digits)
    return cells


def _formatted_column(name: str, values: pd.Series, **kwargs: object) -> list[str]:
    """The cells of one column (as `format_value`; a `str` cell is written as it is)."""
    count, pvalue = is_count_column(name), name in _P_COLUMNS
    out = []
    for v in values:  # the same Python scalars as DataFrame.itertuples gives
        if type(v) is str:  # format_value(v) == str(v) == v: skip the checks
            out.append(v)
        elif count and isinstance(v, (float, np.floating)) and float(v).is_integer():
            out.append(format_value(v, digits=CSV_DIGITS, decimals=None))
        else:
            out.append(format_value(v, pvalue=pvalue, **kwargs))  # type: ignore[arg-type]
    return out


def _formatted(frame: pd.DataFrame, **kwargs: object) -> list[tuple[str, ...]]:
    """Formatted cells, row by row (formatted column by column: one pass per column)."""
    cols = [_formatted_column(str(c), frame.iloc[:, j], **kwargs)
            for j, c in enumerate(frame.columns)]  # fmt: skip
    if not cols:
        return [() for _ in range(len(frame))]
    return list(zip(*cols, strict=True))


_QUOTE_CHARS = ',"\n\r'  # a cell holding one of these is quoted
_NEEDS_QUOTES = re.compile(f"[{re.escape(_QUOTE_CHARS)}]")
# on cells joined by NUL (a literal first: re scans for it, not position by position)
_SPACE_AFTER_NUL = re.compile("\x00\\s")


def _csv_cell(text: str) -> str:
    if _NEEDS_QUOTES.search(text) or text != text.strip():
        return '"' + text.replace('"', '""') + '"'
    return text


def to_csv_text(frame: pd.DataFrame, *, digits: int = CSV_DIGITS) -> str:
    """CSV text of `frame` (header + rows), floats with `digits` significant digits."""
    lines = [",".join(_csv_cell(str(c)) for c in frame.columns)]
    cols = [_csv_column(str(c), frame.iloc[:, j], digits) for j, c in enumerate(frame.columns)]
    if cols:
        lines += map(",".join, zip(*cols, strict=True))
    else:
        lines += [""] * len(frame)
    return "\n".join(lines) + "\n"


# '<' that would open an HTML tag, comment or declaration in Markdown (CommonMark raw HTML:
# '<' followed by a letter, '/', '!' or '?'); other '<' (e.g. "<0.001") stay as they are.
_HTML_START = re.compile(r"<(?=[A-Za-z/!?])")
_ENTITY = re.compile(r"&(?=#?[A-Za-z0-9]+;)")  # '&' that would start an entity such as &lt;


def md_cell(text: str) -> str:
    """One Markdown table cell: '|' escaped, newlines joined, HTML tags made inert.

    Text from the sheets (study names, notes) may contain '<script>' or other markup: a
    tag-opening '<' becomes '&lt;' and an entity-opening '&' becomes '&amp;', so a Markdown
    renderer shows the text as typed instead of running it as HTML ("<0.001" and "A & B" are
    left as they are).
    """
    text = _ENTITY.sub("&amp;", text)
    text = _HTML_START.sub("&lt;", text)
    return text.replace("|", "\\|").replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


def to_markdown_text(
    frame: pd.DataFrame,
    *,
    decimals: int = MD_DECIMALS,
    title: str | None = None,
    notes: Sequence[str] = (),
) -> str:
    """GitHub-flavoured Markdown table, floats with `decimals` decimals, optional title/notes."""
    header = "| " + " | ".join(md_cell(str(c)) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = [
        "| " + " | ".join(md_cell(v) for v in row) + " |"
        for row in _formatted(frame, digits=None, decimals=decimals)
    ]
    parts = []
    if title:
        parts += [f"# {title}", ""]
    parts += [header, rule, *body]
    if notes:
        parts += ["", *notes]
    return "\n".join(parts) + "\n"


def _write(path: str | Path, text: str) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)


def write_csv(frame: pd.DataFrame, path: str | Path, *, digits: int = CSV_DIGITS) -> None:
    """Write `frame` as deterministic CSV (see `to_csv_text`)."""
    _write(path, to_csv_text(frame, digits=digits))


def write_markdown(
    frame: pd.DataFrame,
    path: str | Path,
    *,
    decimals: int = MD_DECIMALS,
    title: str | None = None,
    notes: Sequence[str] = (),
) -> None:
    """Write `frame` as a deterministic Markdown table (see `to_markdown_text`)."""
    _write(path, to_markdown_text(frame, decimals=decimals, title=title, notes=notes))


def source_row_pairs(effects: pd.DataFrame) -> pd.DataFrame:
    """The long table effect -> input row: one line per effect (its index) and (source_file,
    source_row) it was computed from, read from the structured `SOURCE_ROWS` column."""
    lists = [[] if refs is None else refs for refs in effects[SOURCE_ROWS].tolist()]
    refs = [ref for rs in lists for ref in rs]
    owner = np.repeat(effects.index.to_numpy(dtype=object), [len(rs) for rs in lists])
    return pd.DataFrame(
        {
            "effect": pd.Series(owner, dtype=object),
            "source_file": pd.Series([str(r["source_file"]) for r in refs], dtype=object),
            "source_row": pd.Series([int(r["source_row"]) for r in refs], dtype="int64"),
        }
    )


def provenance_table(effects: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """One line per effect x input row it was computed from, with that row's source and quote.

    The effect's input rows are its structured `SOURCE_ROWS` (source_file, source_row) records,
    looked up in `rows`; `row_id` is their readable rendering `file:line`. A reference with no
    matching row is kept with `NA` source fields and flagged in `note` (it cannot happen for
    effects built from these rows).
    """
    keep = ["study_id", "comparison_id", "outcome", "timepoint", "measure"]
    pairs = source_row_pairs(effects)
    eff = effects[keep].loc[pairs["effect"]].reset_index(drop=True)
    eff["source_file"] = pairs["source_file"].to_numpy()
    eff["source_row"] = pairs["source_row"].to_numpy()
    eff["row_id"] = eff["source_file"] + ":" + eff["source_row"].astype(str)
    src = rows.copy()
    src["source_row"] = src["source_row"].astype("int64")
    src["source_file"] = src["source_file"].astype(str)
    cols = [c for c in PROVENANCE_COLUMNS if c in src.columns and c not in keep and c != "row_id"]
    src = src[["source_file", "source_row", *cols]].drop_duplicates(["source_file", "source_row"])
    merged = eff.merge(
        src, on=["source_file", "source_row"], how="left", validate="many_to_one", indicator=True
    )
    merged["note"] = np.where(merged["_merge"] == "both", "", "row id not found in input rows")
    merged = merged.drop(columns="_merge")
    for column in PROVENANCE_COLUMNS:
        if column not in merged:
            merged[column] = ""
    merged = merged[list(PROVENANCE_COLUMNS) + ["note"]]
    return merged.sort_values(
        ["study_id", "comparison_id", "outcome", "timepoint", "measure", "row_id"],
        kind="mergesort",
    ).reset_index(drop=True)


def _text_or_missing(v: object) -> bool:
    return v is None or v is pd.NA or isinstance(v, str) or (isinstance(v, float) and math.isnan(v))


def _is_plain(v: object) -> bool:
    """Missing (None, NaN, pd.NA), a string or a structured (list/array) value."""
    return _text_or_missing(v) or isinstance(v, (list, np.ndarray))


_PLAIN_TYPES = frozenset({str, list, np.ndarray, type(None)})


def _has_other_values(values: pd.Series) -> bool:
    """True if an object column holds a value that is not `_is_plain` (a number, a date...).

    The usual columns (strings, structured lists, missing values) are recognised from the set
    of their cells' types, taken at C speed; any other column is checked cell by cell.
    """
    cells = values.to_numpy(dtype=object)
    types = set(map(type, cells))
    if types <= _PLAIN_TYPES:
        return False
    return not all(map(_is_plain, cells))


def write_parquet(frame: pd.DataFrame, path: str | Path) -> None:
    """Write an intermediate table as Parquet (pyarrow, no index, uncompressed-stable settings).

    Object columns holding a mix of strings and other values are written as strings (every
    cell but the strings and missing ones) so the schema does not depend on which rows happen
    to be present.
    """
    out = frame.reset_index(drop=True).copy()
    for column in out.columns:
        if out[column].dtype == object and _has_other_values(out[column]):
            out[column] = out[column].map(lambda v: v if _text_or_missing(v) else str(v))
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    out.to_parquet(target, index=False, engine="pyarrow", compression="snappy")


def sort_effects(frame: pd.DataFrame, timepoints: Sequence[str]) -> pd.DataFrame:
    """Sort effect-like rows: outcome, measure, window (config order), study, comparison, arm."""
    order = {tp: i for i, tp in enumerate(timepoints)}
    keys = [c for c in ("outcome", "measure") if c in frame]
    out = frame.assign(_w=frame["timepoint"].map(order).fillna(len(order)))
    keys += ["_w"] + [c for c in ("study_id", "comparison_id", "arm", "time_hours") if c in frame]
    out = out.sort_values(keys, kind="mergesort").drop(columns="_w")
    return out.reset_index(drop=True)


def _pairs_of(frame: pd.DataFrame) -> list[tuple[str, int]]:
    return list(
        zip(
            frame["source_file"].astype(str).tolist(),
            frame["source_row"].astype("int64").tolist(),
            strict=True,
        )
    )


def _shown(ids: Iterable[tuple[str, int]]) -> list[str]:
    return [f"{f}:{r}" for f, r in sorted(ids)[:5]]


def row_accounting(
    rows: pd.DataFrame, effects: pd.DataFrame, exclusions: pd.DataFrame
) -> pd.DataFrame:
    """Check rows in = rows used + rows excluded, per sheet, and return the counts.

    A row is used if its (source_file, source_row) is among some effect's structured
    `SOURCE_ROWS`; excluded if it is in the exclusions table. Ids are compared as pairs, never
    as strings split apart (a file name may contain ':' or ';'). Every input row must be exactly
    one of the two, and neither table may name a row that is not an input row; otherwise this
    raises (it would be a bug, not a data issue). The last line is the total over all sheets.
    """
    ids = _pairs_of(rows)
    known = set(ids)
    used = set(_pairs_of(source_row_pairs(effects))) if len(effects) else set()
    excluded_list = _pairs_of(exclusions) if len(exclusions) else []
    excluded = set(excluded_list)
    problems = []
    if len(excluded_list) != len(excluded):
        problems.append("a row is excluded twice")
    if used & excluded:
        problems.append(f"rows both used and excluded: {_shown(used & excluded)}")
    unknown = (used | excluded) - known
    if unknown:
        problems.append(f"ids that are not input rows: {_shown(unknown)}")
    missing = known - used - excluded
    if missing:
        problems.append(f"rows neither used nor excluded: {_shown(missing)}")
    if problems:
        raise RuntimeError("row accounting failed: " + "; ".join(problems))
    frame = pd.DataFrame(
        {"source_file": rows["source_file"].astype(str), "used": [i in used for i in ids]}
    )
    table = frame.groupby("source_file", sort=True)["used"].agg(["size", "sum"]).reset_index()
    table.columns = ["source_file", "rows_in", "rows_used"]
    table["rows_excluded"] = table["rows_in"] - table["rows_used"]
    total = pd.DataFrame(
        [
            {
                "source_file": "TOTAL",
                "rows_in": int(table["rows_in"].sum()),
                "rows_used": int(table["rows_used"].sum()),
                "rows_excluded": int(table["rows_excluded"].sum()),
            }
        ]
    )
    return pd.concat([table, total], ignore_index=True)[list(ACCOUNTING_COLUMNS)]


SOFTWARE: tuple[str, ...] = (
    "numpy",
    "scipy",
    "pandas",
    "statsmodels",
    "snakemake",
    "matplotlib",
    "seaborn",
    "pyarrow",
    "timecourse_meta",
)


def software_versions(packages: Sequence[str] = SOFTWARE) -> str:
    """'name version' lines: Python, then each package (importlib.metadata), no timestamps."""
    import platform
    from importlib import metadata

    lines = [f"python {platform.python_version()}"]
    for name in packages:
        try:
            lines.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            lines.append(f"{name} not installed")
    return "\n".join(lines) + "\n"
