"""Risk-of-bias sheet: validation errors, overall-judgement rules (hand-checked), weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from timecourse_meta.errors import SheetError
from timecourse_meta.pipeline.risk_of_bias import (
    DOMAINS,
    domain_table,
    overall_judgements,
    read_risk_of_bias,
    study_weights,
    weighted_summary,
)

ROOT = Path(__file__).resolve().parents[1]
SHEET = ROOT / "data" / "raw" / "risk_of_bias.csv"
HEADER = "study_id,outcome,tool,domain,judgement,support_quote,source_address,source_locator,note\n"


def write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "rob.csv"
    path.write_text(HEADER + "".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def rob1(study: str, judgements: list[str]) -> list[str]:
    return [
        f"{study},all,RoB1,{d},{j},q,https://example.org/{study},loc,"
        for d, j in zip(DOMAINS["RoB1"], judgements, strict=True)
    ]


def rob2(study: str, judgements: list[str]) -> list[str]:
    return [
        f"{study},all,RoB2,{d},{j},q,https://example.org/{study},loc,"
        for d, j in zip(DOMAINS["RoB2"], judgements, strict=True)
    ]


def overall_of(tmp_path: Path, lines: list[str], **kwargs: object) -> dict[str, str]:
    o = overall_judgements(read_risk_of_bias(write(tmp_path, lines)), **kwargs)  # type: ignore[arg-type]
    return dict(zip(o["study_id"], o["overall"], strict=True))


def test_shipped_sheet_overall_judgements() -> None:
    """Hand-checked against data/raw/risk_of_bias.csv (Cochrane's printed judgements).

    Berman2000: D5 and D6 high -> high. Lapidus2014: six low, D6 unclear -> unclear.
    Diazgranados2010: D7 not read, no high -> not_assessed (at least unclear).
    Dwyer2021: only an 'overall / not_assessed' row -> not_assessed.
    """
    rob = read_risk_of_bias(SHEET)
    o = overall_judgements(rob).set_index("study_id")
    assert o.loc["Berman2000", "overall"] == "high"
    assert "incomplete_outcome_data, selective_reporting" in o.loc["Berman2000", "overall_rule"]
    assert o.loc["Lapidus2014", "overall"] == "unclear"
    assert o.loc["Diazgranados2010", "overall"] == "not_assessed"
    assert "at least unclear" in o.loc["Diazgranados2010", "overall_rule"]
    assert o.loc["Dwyer2021", "overall"] == "not_assessed"
    assert len(o) == 18


def test_rob1_rules_and_key_domains(tmp_path: Path) -> None:
    lines = (
        rob1("A", ["low"] * 7)
        + rob1("B", ["low"] * 6 + ["unclear"])
        + rob1("C", ["high"] + ["not_assessed"] * 6)
        + rob1("D", ["low"] * 6 + ["not_assessed"])
    )
    got = overall_of(tmp_path, lines)
    assert got == {"A": "low", "B": "unclear", "C": "high", "D": "not_assessed"}
    # other_bias not a key domain: B and D are then low (all key domains low)
    keys = list(DOMAINS["RoB1"][:6])
    got = overall_of(tmp_path, lines, key_domains=keys)
    assert got == {"A": "low", "B": "low", "C": "high", "D": "low"}


def test_rob2_rules(tmp_path: Path) -> None:
    lines = (
        rob2("A", ["low"] * 5)
        + rob2("B", ["low"] * 3 + ["some_concerns"] * 2)
        + rob2("C", ["some_concerns", "high", "low", "low", "low"])
    )
    assert overall_of(tmp_path, lines) == {"A": "low", "B": "some_concerns", "C": "high"}
    # judgement call: some concerns in >= 2 domains counts as high
    assert overall_of(tmp_path, lines, some_concerns_high=2)["B"] == "high"
    assert overall_of(tmp_path, lines, some_concerns_high=3)["B"] == "some_concerns"


@pytest.mark.parametrize(
    ("line", "column", "needle"),
    [
        ("A,all,RoB1,random_sequence_generation,probably low,q,u,l,", "judgement", "not a RoB1"),
        ("A,all,RoB1,randomization_process,low,q,u,l,", "domain", "unknown RoB1 domain"),
        ("A,all,RoB3,overall,low,q,u,l,", "tool", "unknown tool"),
        ("A,all,RoB1,random_sequence_generation,low,q,,l,", "source_address", "needs its source"),
        ("A,,RoB1,random_sequence_generation,low,q,u,l,", "outcome", "required"),
        ("A,all,RoB2,randomization_process,unclear,q,u,l,", "judgement", "not a RoB2"),
    ],
)
def test_bad_rows_give_one_line_errors(tmp_path: Path, line: str, column: str, needle: str) -> None:
    with pytest.raises(SheetError) as err:
        read_risk_of_bias(write(tmp_path, [line]))
    text = str(err.value)
    assert "line 2" in text and f"column '{column}'" in text and needle in text
    assert "\n" not in text


def test_duplicates_mixed_tools_and_unknown_study(tmp_path: Path) -> None:
    two = rob1("A", ["low"] * 7)
    with pytest.raises(SheetError, match="domain appears twice"):
        read_risk_of_bias(write(tmp_path, two + two[:1]))
    with pytest.raises(SheetError, match="two tools"):
        read_risk_of_bias(write(tmp_path, two + rob2("A", ["low"] * 5)[:1]))
    with pytest.raises(SheetError, match="only for a study without"):
        read_risk_of_bias(write(tmp_path, two + ["A,all,RoB1,overall,not_assessed,,,,"]))
    with pytest.raises(SheetError, match="line 2, column 'study_id'.*did you mean 'Lapidus2014'"):
        read_risk_of_bias(
            write(tmp_path, rob1("Lapidus2041", ["low"] * 7)), study_ids=["Lapidus2014"]
        )
    # a study assessed but not in the configured sheets is set aside and listed, not an error
    kept = read_risk_of_bias(write(tmp_path, two + rob1("Zzz", ["low"] * 7)), study_ids=["A"])
    assert set(kept["study_id"]) == {"A"} and kept.attrs["not_in_sheets"] == ["Zzz"]


def test_weights_and_weighted_summary(tmp_path: Path) -> None:
    """w_i = 1/(v_i + tau^2): v = (0.1, 0.3, 0.1), tau^2 = 0.1 -> 5, 2.5, 5 (sum 12.5).

    Study A has two comparisons (5 + 2.5 = 7.5 -> 0.6), B one (5 -> 0.4).
    """
    effects = pd.DataFrame({"study_id": ["A", "A", "B"], "vi": [0.1, 0.3, 0.1]})
    w = study_weights(effects, {"tau2": 0.1})
    assert np.allclose(w.set_index("study_id")["weight"], [0.6, 0.4])
    lines = rob1("A", ["high"] + ["low"] * 6) + ["B,all,RoB1,overall,not_assessed,,,,"]
    rob = read_risk_of_bias(write(tmp_path, lines))
    table = domain_table(rob, overall_judgements(rob), study_ids=["A", "B", "C"])
    assert (
        table.set_index("study_id").loc["C", "overall_rule"] == "no row in the risk-of-bias sheet"
    )
    s = weighted_summary(table, w, outcome="score")
    d1 = s[s["domain"] == "random_sequence_generation"].set_index("judgement")["weight"]
    assert np.isclose(d1["high"], 0.6) and np.isclose(d1["not_assessed"], 0.4)
    assert np.allclose(s.groupby("domain")["weight"].sum(), 1.0)
