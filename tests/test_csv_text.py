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
    write_parquet,
)


def _cell_by_cell(frame: pd.DataFrame, digits: int = CSV_DIGITS) -> str:
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
            else format_value(v, digits=digits, pvalue=c in _P_COLUMNS)
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


def _edge_floats(rng: np.random.Generator, n: int) -> np.ndarray:
    """Floats that hit every branch of the rule: NaN, +-inf, +-0, integers around 10**6 and
    1e15, tiny and huge magnitudes, and arbitrary bit patterns."""
    special = np.array(
        [
            np.nan,
            np.inf,
            -np.inf,
            0.0,
            -0.0,
            1e6,
            -1e6,
            999999.0,
            1e15 - 1,
            1e15,
            -1e15,
            1e16,
            123456.5,
            5e-324,
            1.7976931348623157e308,
            20.0,
        ]
    )
    bits = rng.integers(0, 2**63, n, dtype=np.int64).view(np.float64)  # any finite/NaN
    ints = rng.integers(-(10**17), 10**17, n).astype(np.float64)
    return np.concatenate([special, rng.normal(0, 1e3, n), bits, ints,
                           np.round(rng.normal(0, 1e7, n))])  # fmt: skip


def test_whole_column_formatting_equals_cell_by_cell_rule() -> None:
    rng = np.random.default_rng(20261202)
    x = _edge_floats(rng, 2_000)
    rng.shuffle(x)
    frame = pd.DataFrame({
        "estimate": x,
        "n_control": x[::-1].copy(),  # a count column: integral values in CSV_DIGITS
        "se32": np.clip(np.nan_to_num(x), -1e38, 1e38).astype(np.float32),
        "rows_in": rng.integers(-5, 10**12, x.size),
        "u8": rng.integers(0, 255, x.size).astype(np.uint8),
        "flag": rng.random(x.size) < 0.5,
        "study": rng.choice(["A", "b,c", ' d"', "e ", ""], x.size),
        "note": pd.Series(rng.choice(["x", None], x.size), dtype=object),
    })  # fmt: skip
    for digits in (CSV_DIGITS, 4, 15, 17):
        assert to_csv_text(frame, digits=digits) == _cell_by_cell(frame, digits=digits), digits
    assert to_csv_text(frame.iloc[:0]) == _cell_by_cell(frame.iloc[:0])


def test_parquet_writes_mixed_object_columns_as_strings(tmp_path) -> None:
    refs = [{"source_file": "s.csv", "source_row": 2}]
    frame = pd.DataFrame({
        "text": ["x", None, np.nan, "y"],  # strings and missing values: as they are
        "mixed": ["x", 1, 2.5, None],  # numbers among strings: written as strings
        "refs": pd.Series([refs, refs, [], refs], dtype=object),  # structured: kept
        "with_na": ["x", pd.NA, None, "z"],  # pd.NA is missing, not the text "<NA>"
        "refs_and_text": pd.Series([refs, "r", None, 3], dtype=object),
    })  # fmt: skip
    write_parquet(frame, tmp_path / "t.parquet")
    back = pd.read_parquet(tmp_path / "t.parquet")
    assert back["text"].tolist()[::3] == ["x", "y"] and back["text"].isna().tolist() == [
        False, True, True, False]  # fmt: skip
    assert back["mixed"].tolist()[:3] == ["x", "1", "2.5"] and pd.isna(back["mixed"][3])
    assert [len(r) for r in back["refs"]] == [1, 1, 0, 1]
    assert back["refs"][0][0]["source_row"] == 2
    assert back["with_na"].isna().tolist() == [False, True, True, False]
    assert back["refs_and_text"].tolist()[:2] == [str(refs), "r"]
    assert back["refs_and_text"][3] == "3"
