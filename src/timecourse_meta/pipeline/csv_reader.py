"""The one CSV reader of the package: every CSV input (extraction sheets, the risk-of-bias sheet)
is read by `read_text_table`.

It decodes the bytes (UTF-8 with or without BOM, UTF-16 with BOM; Excel workbooks and other
encodings refused), detects the field separator, splits records with their CSV line numbers
(quoted fields may span lines) and checks the header and the field counts. Every problem raises
a one-line `SheetError` naming file, line and column. Split from `ingest`, which interprets the
cells of extraction sheets (aliases, layouts, numbers, validation) on top of this reader.
"""

from __future__ import annotations

import codecs
import csv
import io
from pathlib import Path

import pandas as pd

from timecourse_meta.errors import SheetError
from timecourse_meta.pipeline.file_kinds import special_file_kind

__all__ = ["SEPARATORS", "read_text_table"]

#: CSV field separators (config `csv_separator`): "auto" or one of these.
SEPARATORS: dict[str, str] = {",": "commas", ";": "semicolons", "\t": "tabs"}


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
