"""Reading and validating extraction sheets: formats, encodings, and located error messages."""

from __future__ import annotations

import codecs
import csv
import io
import math
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
import yaml
from pipeline_helpers import SHEET_ROW

from timecourse_meta.errors import SheetError
from timecourse_meta.pipeline import ingest
from timecourse_meta.pipeline.ingest import precomputed_effects, read_sheet, read_sheets
from timecourse_meta.pipeline.sheet_layouts import (
    ARM_ALIASES,
    MEAN_ALIASES,
    REGISTRY_COLUMNS,
    SE_ALIASES,
    STUDY_ID_ALIASES,
    TIME_ALIASES,
)
from timecourse_meta.pipeline.windows import KETAMINE_WINDOWS, parse_windows, select_windows

ROOT = Path(__file__).resolve().parents[1]

BASE = SHEET_ROW  # one valid extraction-sheet row (tests/pipeline_helpers.py)


def sheet_text(rows: list[dict], columns: list[str] | None = None) -> str:
    cols = columns or list(BASE)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({c: r.get(c, "") for c in cols})
    return buf.getvalue()


def two_arms(**changes: str) -> list[dict]:
    treat = {**BASE, **changes}
    ctrl = {**BASE, "arm": "saline", "arm_role": "control", "mean": "30.2", "sd": "6.1", **changes}
    return [treat, ctrl]


def write(tmp_path: Path, text: str | bytes, name: str = "sheet.csv") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path, label: str = "sheet.csv") -> str:
    with pytest.raises(SheetError) as info:
        read_sheet(path, label=label)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_reads_valid_sheet_with_types_and_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, sheet_text(two_arms()))
    rows = read_sheet(path, label="data/raw/sheet.csv")
    assert rows["source_file"].tolist() == ["data/raw/sheet.csv"] * 2
    assert rows["source_row"].tolist() == [2, 3]  # header is line 1
    assert rows["sheet_format"].tolist() == ["extraction"] * 2
    assert rows["n"].tolist() == [10.0, 10.0]
    assert rows["mean"].tolist() == [20.1, 30.2]
    assert math.isnan(rows["se"].iloc[0])  # column absent -> added empty
    assert rows["pmid"].tolist() == ["", ""]


def test_unknown_columns_are_kept_and_listed(tmp_path: Path) -> None:
    rows = two_arms()
    rows[0]["reviewer"] = "AB"
    frame = read_sheets([write(tmp_path, sheet_text(rows, [*BASE, "reviewer"]))])
    assert frame["reviewer"].tolist() == ["AB", ""]
    assert ingest.unknown_columns(frame) == ["reviewer"]


def test_line_numbers_follow_multiline_quoted_cells(tmp_path: Path) -> None:
    rows = two_arms()
    rows[0]["source_quote"] = "line one\nline two\nline three"
    path = write(tmp_path, sheet_text(rows))
    # record 1 starts on line 2 and spans 3 lines, so record 2 starts on line 5
    assert read_sheet(path)["source_row"].tolist() == [2, 5]


def test_bom_crlf_case_and_whitespace_are_normalised(tmp_path: Path) -> None:
    text = sheet_text(two_arms(trd=" YES "))
    text = text.replace("study_id", "Study_ID ", 1).replace("\n", "\r\n")
    plain = read_sheet(write(tmp_path, sheet_text(two_arms())))
    bom = read_sheet(write(tmp_path, codecs.BOM_UTF8 + text.encode("utf-8"), "bom.csv"))
    utf16 = read_sheet(write(tmp_path, text.encode("utf-16"), "u16.csv"))
    for other in (bom, utf16):
        assert other["study_id"].tolist() == plain["study_id"].tolist()
        assert other["trd"].tolist() == ["yes", "yes"]
        assert other["source_row"].tolist() == [2, 3]


def test_non_utf8_names_line(tmp_path: Path) -> None:
    text = sheet_text(two_arms()).replace("Day 1", "Tag 1 \u00fc")
    lines = text.encode("utf-8").split(b"\n")
    lines[2] = lines[2].replace("\u00fc".encode(), "\u00fc".encode("latin-1"))
    message = error_of(write(tmp_path, b"\n".join(lines)))
    # the bad byte is in time_as_reported ("Tag 1 \xfc" in latin-1); shown as U+FFFD
    assert message.startswith("sheet.csv, line 3, column 'time_as_reported': is not UTF-8 text")
    assert "0xfc" in message and "(found 'Tag 1 \ufffd')" in message


def test_missing_required_columns(tmp_path: Path) -> None:
    cols = [c for c in BASE if c not in ("scale", "doi", "pmid")]
    message = error_of(write(tmp_path, sheet_text(two_arms(), cols)))
    assert message == (
        "sheet.csv, line 1: required column(s) missing from the header: scale, doi or pmid"
    )


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"trd": "maybe"},
            "sheet.csv, line 2, column 'trd': expected one of yes, no, unclear (found 'maybe')",
        ),
        ({"n": "ten"}, "sheet.csv, line 2, column 'n': expected a whole number (found 'ten')"),
        ({"n": "2.5"}, "sheet.csv, line 2, column 'n': expected a whole number (found '2.5')"),
        ({"n": "1"}, "sheet.csv, line 2, column 'n': expected a whole number >= 2 (found '1')"),
        (
            {"sd": "5,2"},
            "sheet.csv, line 2, column 'sd': expected a number with '.' as decimal "
            "mark (a decimal comma in a comma-separated sheet: write '.', or save the sheet "
            "with ';' between fields, whose decimal commas are read) (found '5,2')",
        ),
        (
            {"mean": "NA"},
            "sheet.csv, line 2, column 'mean': expected a number; leave the cell "
            "empty if not reported (found 'NA')",
        ),
        ({"sd": "0"}, "sheet.csv, line 2, column 'sd': expected a number > 0 (found '0')"),
        (
            {"ci_level": "95"},
            "sheet.csv, line 2, column 'ci_level': expected a number > 0 and "
            "< 1 (a proportion such as 0.95) (found '95')",
        ),
        ({"citation": ""}, "sheet.csv, line 2, column 'citation': value required on every row"),
        (
            {"events": "12", "outcome": "response"},
            "sheet.csv, line 2, column 'events': events cannot exceed n",
        ),
        (
            {"ci_low": "3", "ci_high": "2"},
            "sheet.csv, line 2, column 'ci_low': ci_low must not exceed ci_high",
        ),
        (
            {"value_origin": "figure"},
            "sheet.csv, line 2, column 'extraction_note': value "
            "required when value_origin is 'figure' (say how the values "
            "were read)",
        ),
    ],
)
def test_cell_errors_name_file_line_column(tmp_path: Path, changes: dict, expected: str) -> None:
    rows = two_arms()
    rows[0].update(changes)
    cols = list(BASE) + [c for c in changes if c not in BASE]
    assert error_of(write(tmp_path, sheet_text(rows, cols))) == expected


def test_contrast_rows_need_no_n(tmp_path: Path) -> None:
    row = {
        **BASE,
        "arm_role": "contrast",
        "arm": "ketamine vs saline",
        "n": "",
        "mean": "",
        "sd": "",
        "effect": "-0.8",
        "effect_type": "g",
        "effect_se": "0.3",
    }
    cols = list(BASE) + ["effect", "effect_type", "effect_se"]
    rows = read_sheet(write(tmp_path, sheet_text([row], cols)))
    assert rows["effect"].tolist() == [-0.8]
    assert np.isnan(rows["n"].iloc[0])


def test_rows_without_doi_or_pmid_are_accepted_with_their_source(tmp_path: Path) -> None:
    # Identifiers are recorded only where a source prints them; the address/locator/quote stay
    # required (see test_cell_errors_name_file_line_column for those).
    rows = read_sheet(write(tmp_path, sheet_text(two_arms(doi="", pmid=""))), label="sheet.csv")
    assert len(rows) == 2
    assert (rows["doi"] == "").all() and (rows["pmid"] == "").all()
    assert (rows["source_address"] == "https://example.org/table/T2").all()


def test_study_level_attributes_must_agree(tmp_path: Path) -> None:
    rows = two_arms()
    rows[1]["trd"] = "no"
    with pytest.raises(SheetError) as info:
        read_sheets([write(tmp_path, sheet_text(rows))])
    assert "line 3, column 'trd': study 'Trial2006' has trd 'no' here but 'yes' on" in str(
        info.value
    )


def test_duplicate_rows_across_sheets(tmp_path: Path) -> None:
    """Duplicates are refused by the windows stage, on the rows left after the exclusion
    filters (a baseline row or an excluded arm may repeat a key)."""
    a = write(tmp_path, sheet_text(two_arms()), "a.csv")
    b = write(tmp_path, sheet_text(two_arms()[:1]), "b.csv")
    rows = read_sheets([a, b], root=None)
    with pytest.raises(SheetError) as info:
        select_windows(rows, parse_windows(KETAMINE_WINDOWS))
    expected = f"{b.as_posix()}, line 2: duplicate: identical to {a.as_posix()} line 2"
    assert expected in str(info.value)


def test_read_sheets_keeps_relative_labels(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    write(tmp_path / "data", sheet_text(two_arms()), "s.csv")
    rows = read_sheets(["data/s.csv"], root=tmp_path)
    assert rows["source_file"].unique().tolist() == ["data/s.csv"]
    assert rows.columns[:3].tolist() == ["source_file", "source_row", "sheet_format"]


def test_minimal_precomputed_sheet(tmp_path: Path) -> None:
    text = (
        "study_id,citation,time_hours,timepoint,yi,vi,sei,n_total\n"
        "A,Author 2001,24,,0.5,0.04,,40\n"
        "B,Author 2002,,3d,0.2,,0.3,\n"
    )
    rows = read_sheet(write(tmp_path, text), label="pre.csv")
    assert rows["sheet_format"].tolist() == ["precomputed"] * 2
    rows["timepoint"] = ["24h", "3d"]  # as the windows stage sets it
    eff = precomputed_effects(rows)
    assert eff["yi"].tolist() == [0.5, 0.2]
    # B gives sei = 0.3 only: vi = 0.3^2 = 0.09
    assert eff["vi"].tolist() == pytest.approx([0.04, 0.09])
    assert eff["measure"].tolist() == ["SMD", "SMD"]
    assert eff["row_ids"].tolist() == ["pre.csv:2", "pre.csv:3"]
    assert eff["derivation"].tolist() == ["precomputed yi, vi", "precomputed yi; vi = sei^2"]
    assert eff["source_type"].tolist() == ["unspecified"] * 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "study_id,citation,time_hours,yi\nA,x,24,0.5\n",
            "pre.csv, line 1: required column(s) missing from the header: vi or sei",
        ),
        (
            "study_id,doi,yi,vi,time_hours\nA,,0.5,0.1,24\n",
            "pre.csv, line 2, column 'doi': a source is required on every row (one of doi)",
        ),
        (
            "study_id,doi,yi,vi,time_hours,timepoint\nA,10.1/x,0.5,0.1,,\n",
            "pre.csv, line 2, column 'time_hours': one of time_hours or timepoint is required on "
            "every row",
        ),
    ],
)
def test_minimal_sheet_errors(tmp_path: Path, text: str, expected: str) -> None:
    assert error_of(write(tmp_path, text), label="pre.csv") == expected


def test_structural_errors(tmp_path: Path) -> None:
    assert error_of(write(tmp_path, "")) == (
        "sheet.csv, line 1: is empty: expected a header line with column names"
    )
    assert error_of(write(tmp_path, "study_id,study_id\nA,B\n")) == (
        "sheet.csv, line 1, column 'study_id': column name appears twice in the header"
    )
    assert error_of(write(tmp_path, sheet_text([]))) == (
        "sheet.csv, line 1: has a header but no data rows"
    )
    text = sheet_text(two_arms()).rstrip("\n") + ",extra\n"
    assert error_of(write(tmp_path, text)) == (
        f"sheet.csv, line 3: row has {len(BASE) + 1} fields but the header has {len(BASE)}"
    )


def test_schema_file_agrees_with_ingest() -> None:
    schema = yaml.safe_load((ROOT / "config" / "schema" / "studies.schema.yaml").read_text())
    props = schema["properties"]
    for column, allowed in ingest.ENUMS.items():
        assert props[column]["enum"] == list(allowed), column
    for column, (kind, *_bounds) in ingest.NUMERIC.items():
        assert props[column]["type"] == ("integer" if kind == "int" else "number"), column
    extraction, minimal, arm_level = schema["oneOf"]
    assert set(extraction["required"]) == set(ingest.EXTRACTION_REQUIRED) - {"n"}
    assert minimal["required"] == list(ingest.PRECOMPUTED_REQUIRED)
    assert {"study_id", "arm", "arm_role", "time_hours", "mean"} <= set(arm_level["required"])
    aliases = schema["x-column-aliases"]
    assert aliases["study_id"] == list(STUDY_ID_ALIASES)
    assert aliases["time_hours"] == list(TIME_ALIASES)
    assert aliases["sei"] == list(SE_ALIASES) and aliases["arm"] == list(ARM_ALIASES)
    assert aliases["mean"] == list(MEAN_ALIASES)
    assert schema["x-source-columns"] == [*ingest.SOURCE_COLUMNS, *REGISTRY_COLUMNS]


def test_schema_numeric_range_agrees_with_ingest(tmp_path: Path) -> None:
    """The valid numeric range in studies.schema.yaml is the one ingest enforces: a value just
    inside each documented bound is accepted by both, one just outside refused by both."""
    from timecourse_meta.pipeline.sheet_checks import parse_numeric

    schema = yaml.safe_load((ROOT / "config" / "schema" / "studies.schema.yaml").read_text())
    for column in ingest.NUMERIC:
        prop = schema["properties"][column]
        integer = prop["type"] == "integer"
        for key, direction in (("minimum", -1), ("maximum", 1), ("exclusiveMinimum", 0),
                               ("exclusiveMaximum", 0)):  # fmt: skip
            if key not in prop:
                continue
            bound = float(prop[key])
            if direction == 0:  # the bound itself is outside
                outside = bound
            elif integer:
                outside = bound + direction
            else:
                outside = float(np.nextafter(bound, direction * np.inf))
            text = str(int(outside)) if integer else repr(outside)
            with pytest.raises(SheetError):
                parse_numeric("s.csv", column, pd.Series([text]), pd.Series([2]))
            check = jsonschema.Draft202012Validator({"type": "number", key: prop[key]})
            assert not check.is_valid(outside), (column, key, outside)
            if direction != 0:  # the bound itself is accepted
                parse_numeric("s.csv", column, pd.Series([str(prop[key])]), pd.Series([2]))


def test_shipped_sheet_is_valid_and_matches_schema() -> None:
    sheet = ROOT / "data" / "raw" / "ketamine_trials.csv"
    if not sheet.exists():
        pytest.skip("data/raw/ketamine_trials.csv not present yet")
    rows = read_sheets(["data/raw/ketamine_trials.csv"], root=ROOT)
    assert len(rows) > 0 and (rows["sheet_format"] == "extraction").all()
    schema = yaml.safe_load((ROOT / "config" / "schema" / "studies.schema.yaml").read_text())
    for record in rows.to_dict("records"):
        present = {
            k: v
            for k, v in record.items()
            if k in schema["properties"]
            and v != ""
            and not (isinstance(v, float) and math.isnan(v))
        }
        for k in ("n", "events", "n_treatment", "n_control", "n_total"):
            if k in present:
                present[k] = int(present[k])
        jsonschema.validate(present, schema)
