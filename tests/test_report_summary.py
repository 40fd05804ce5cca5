"""The report's first page (pipeline.report_summary): pooled numbers, verdicts, figure."""

from __future__ import annotations

import base64

import pandas as pd
import pytest

from timecourse_meta.pipeline.report_summary import pooled_rows, summary_rst

POOLED = pd.DataFrame(
    {
        "outcome": ["score", "score", "score", "response"],
        "measure": ["SMD", "SMD", "SMD", "OR"],
        "timepoint": ["24h", "4h", "24h", "4h"],
        "subgroup": ["all", "all", "yes", "all"],
        "k": [9, 5, 3, 4],
        "estimate": [0.6512, 0.5388, 0.1, 0.9],
        "ci_low": [0.4321, 0.4149, -0.2, 0.1],
        "ci_high": [0.8703, 0.6627, 0.4, 1.7],
        "tau2": [0.0412, 0.0, 0.0, 0.2],
        "I2": [35.27, 0.0, 0.0, 50.0],
        "method": ["REML", "REML", "REML", "REML"],
    }
)
LABELS = {"intervention": "alogliptin", "comparator": "placebo", "outcome_label": "HbA1c change"}


def render(**kw) -> str:
    text = summary_rst(POOLED, None, ["4h", "24h"], outcome="score", measure="SMD", level=0.95,
                       labels=LABELS, **kw)  # fmt: skip
    core = pytest.importorskip("docutils.core", reason="needs docutils")
    return core.publish_parts(text, writer="html")["html_body"]


def test_pooled_rows_overall_primary_in_window_order() -> None:
    rows = pooled_rows(POOLED, ["4h", "24h"], outcome="score", measure="SMD")
    assert rows["timepoint"].tolist() == ["4h", "24h"] and rows["k"].tolist() == [5, 9]


def test_table_shows_k_estimate_ci_tau2_i2() -> None:
    html = render()
    for cell in ("<td>4h</td>", "<td>5</td>", "<td>0.54</td>", "<td>[0.41, 0.66]</td>",
                 "<td>24h</td>", "<td>9</td>", "<td>0.65</td>", "<td>[0.43, 0.87]</td>",
                 "<td>0.041</td>", "<td>35.3</td>"):  # fmt: skip
        assert cell in html, cell
    assert "0.10" not in html and "0.90" not in html  # subgroup and other outcome rows left out
    assert "Alogliptin vs placebo: HbA1c change, Hedges&#x27; g" in html or (
        "Alogliptin vs placebo: HbA1c change, Hedges' g" in html
    )
    assert "ketamine" not in html.lower() and "system-message" not in html


def test_claims_and_figure_and_warning() -> None:
    claims = pd.DataFrame(
        {"id": ["onset_1wk"], "claim": ["Effect *present* at 1 week"], "verdict": ["supported"],
         "verdict_multivariate": ["not testable"], "verdict_time_response": ["supported"]}
    )  # fmt: skip
    png = b"\x89PNG fake bytes " * 2000  # longer than docutils' 10 000-character line limit
    warning = "3 of 5 rows fall outside every window (windows: 4h: 2\u20136 h)"
    text = summary_rst(POOLED, claims, ["4h", "24h"], outcome="score", measure="SMD",
                       level=0.95, labels=LABELS, figure_png=png, warning=warning)  # fmt: skip
    assert max(len(line) for line in text.splitlines()) < 200
    core = pytest.importorskip("docutils.core", reason="needs docutils")
    html = core.publish_parts(text, writer="html")["html_body"]
    assert "system-message" not in html
    assert "<td>onset_1wk</td>" in html and "Effect *present* at 1 week" in html
    assert "<td>not testable</td>" in html
    assert "3 of 5 rows fall outside every window" in html
    data = html.split("base64,", 1)[1].split('"', 1)[0]
    assert base64.b64decode("".join(data.split())) == png  # line breaks dropped by URL parsers
