"""to_csv_text / to_markdown_text (formatted column by column) equal the cell-by-cell rule."""

from __future__ import annotations

import numpy as np
import pandas as pd

from timecourse_meta.pipeline.tables import (
    _P_COLUMNS,
    CSV_DIGITS,
    format_value,
    is_count_column,
    to_csv_text,
    to_markdown_text,
)


def _cell_by_cell(frame: pd.DataFrame) -> str:
    """The former writer: one format_value call per cell, row tuples, quoting per character."""

    def quote(text: str) -> str:
        if any(ch in text for ch in ',"\n\r') or text != text.strip():
            return '"' + text.replace('"', '""') + '"'
        return text

    cols = list(frame.columns)
    lines = [",".join(quote(str(c)) for c in cols)]
    for row in frame.itertuples(index=False, name=None):
        cells = [
            format_value(v, digits=CSV_DIGITS, decimals=None)
            if is_count_column(c) and isinstance(v, (float, np.floating)) and float(v).is_integer()
            else format_value(v, pvalue=c in _P_COLUMNS)
            for c, v in zip(cols, row, strict=True)
        ]
        lines.append(",".join(quote(s) for s in cells))
    return "\n".join(lines) + "\n"


def _mixed() -> pd.DataFrame:
    return pd.DataFrame({
        "estimate": [1.0, np.nan, -0.0, 2.5e-7, 1e16, np.inf],
        "n_treatment": [1.0, 2.5, np.nan, 3.0, 0.0, 4.0],
        "pval": [0.0004, 0.5, None, 1.0, 0.0, 1e-9],
        "label": ["x,y", ' q"', "plain", None, "", "a\nb"],
        "mixed": [1, "t", None, True, np.int64(3), pd.NA],
        "flag": [True, False, True, False, True, False],
        "k": pd.array([1, None, 3, 4, 5, 6], dtype="Int64"),
        "text": pd.array(["a", None, " b", "c\r", "d", "e"], dtype="string"),
    })  # fmt: skip


def test_csv_text_equals_cell_by_cell_rule() -> None:
    frame = _mixed()
    assert to_csv_text(frame) == _cell_by_cell(frame)
    assert to_csv_text(frame.iloc[:0]) == _cell_by_cell(frame.iloc[:0])
    assert to_csv_text(frame[[]]) == "\n" * (len(frame) + 1)
    text = to_csv_text(frame).splitlines()
    assert text[1] == '1,1,0.0004,"x,y",1,TRUE,1,a'
    assert text[3] == '0,NA,NA,plain,NA,TRUE,3," b"'


def test_markdown_text_cells() -> None:
    md = to_markdown_text(_mixed()[["estimate", "pval", "label"]]).splitlines()
    assert md[2:] == ["| 1.000 | <0.001 | x,y |", '| NA | 0.500 |  q" |', "| 0.000 | NA | plain |",
                      "| 0.000 | 1.000 | NA |", "| 10000000000000000.000 | <0.001 |  |",
                      "| Inf | <0.001 | a b |"]  # fmt: skip
