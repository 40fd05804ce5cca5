"""GRADE summary of findings: hand-checked constructed cases, one per reason for rating down."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from timecourse_meta.pipeline.grade import (
    absolute_risk,
    grade_row,
    optimal_information_size,
)
from timecourse_meta.pipeline.grade_markdown import sof_markdown

CFG: dict[str, object] = {
    "start": "high",
    "risk_of_bias": {"serious_share": 0.5, "reason": "test"},
    "inconsistency": {"i2_serious": 50, "i2_very_serious": 75},
    "indirectness": {"score": {"downgrade": 0, "reason": "direct comparison"}},
    "imprecision": {"ois": {"alpha": 0.05, "power": 0.8, "smd": 0.2}},
    "publication_bias": {"min_k": 10, "alpha": 0.1},
}
STUDIES = ["A", "B", "C", "D"]


def pooled(**kw: float) -> dict[str, object]:
    row: dict[str, object] = {
        "outcome": "score",
        "measure": "SMD",
        "timepoint": "24h",
        "k": 4,
        "n_participants": 2000.0,
        "estimate": 0.5,
        "ci_low": 0.3,
        "ci_high": 0.7,
        "pi_low": 0.3,
        "pi_high": 0.7,
        "I2": 0.0,
        "tau2": 0.0,
        "studies": ";".join(STUDIES),
    }
    row.update(kw)
    return row


WINDOW = pd.DataFrame({"study_id": STUDIES, "vi": [0.04] * 4})


def rob(judgements: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"study_id": STUDIES, "outcome": "all", "overall": judgements})


def test_risk_of_bias_rates_down_once() -> None:
    """Equal variances and tau^2 = 0: each study has 25% of the weight. A and B are at high
    risk: 50% of the weight >= serious_share 0.5 -> risk of bias serious (-1).
    Inconsistency: I^2 = 0, PI = CI (0.3 to 0.7) excludes 0 -> not serious.
    Imprecision: CI excludes 0; 2000 participants >= OIS 785 (SMD 0.2, see the OIS test)
    -> not serious. Indirectness: configured 0. Publication bias: k = 4 < 10 -> not assessed.
    Certainty: high - 1 = moderate.
    """
    out = grade_row(pooled(), WINDOW, rob=rob(["high", "high", "low", "low"]), small=None, cfg=CFG)
    assert out["risk_of_bias"] == "serious" and out["risk_of_bias_downgrade"] == 1
    assert out["risk_of_bias_reason"].startswith("50% of the weight from studies at high risk")
    assert out["inconsistency"] == "not serious" and out["imprecision"] == "not serious"
    assert out["publication_bias"] == "not assessed"
    assert out["publication_bias_reason"] == "not assessed (k < 10)"
    assert out["certainty"] == "moderate"
    # one high-risk study (25% < 50%) is not serious: certainty stays high
    out = grade_row(pooled(), WINDOW, rob=rob(["high", "low", "low", "low"]), small=None, cfg=CFG)
    assert out["risk_of_bias"] == "not serious" and out["certainty"] == "high"


def test_inconsistency_rates_down_twice() -> None:
    """I^2 = 80% >= i2_very_serious 75 and the PI (-0.2 to 1.2) crosses 0 while the CI (0.3 to
    0.7) does not -> very serious (-2). All studies low risk; CI excludes 0 and n >= OIS.
    Certainty: high - 2 = low. With I^2 = 60% (>= 50, < 75): serious (-1) -> moderate.
    """
    low = rob(["low"] * 4)
    out = grade_row(pooled(I2=80.0, pi_low=-0.2, pi_high=1.2), WINDOW, rob=low, small=None, cfg=CFG)
    assert out["inconsistency"] == "very serious" and out["inconsistency_downgrade"] == 2
    assert "crosses the null while the CI does not" in out["inconsistency_reason"]
    assert out["certainty"] == "low"
    out = grade_row(pooled(I2=60.0), WINDOW, rob=low, small=None, cfg=CFG)
    assert out["inconsistency"] == "serious" and out["certainty"] == "moderate"


def test_imprecision_rates_down() -> None:
    """CI -0.1 to 0.5 crosses 0 -> imprecision serious (-1); PI = CI, so the PI crossing 0 is
    not an inconsistency (the CI crosses too). Certainty: high - 1 = moderate.
    With MID 0.2: CI -0.3 to 0.4 spans both -0.2 and +0.2 (appreciable benefit and harm) ->
    very serious (-2) -> low. CI 0.3 to 0.7 with 300 participants < OIS 785 -> serious.
    """
    low = rob(["low"] * 4)
    out = grade_row(
        pooled(ci_low=-0.1, ci_high=0.5, pi_low=-0.1, pi_high=0.5),
        WINDOW,
        rob=low,
        small=None,
        cfg=CFG,
    )
    assert out["imprecision"] == "serious" and out["inconsistency"] == "not serious"
    assert out["certainty"] == "moderate"
    cfg = {**CFG, "imprecision": {"mid": {"SMD": 0.2}, "ois": {"smd": 0.2}}}
    out = grade_row(
        pooled(ci_low=-0.3, ci_high=0.4, pi_low=-0.3, pi_high=0.4),
        WINDOW,
        rob=low,
        small=None,
        cfg=cfg,
    )
    assert out["imprecision"] == "very serious" and out["certainty"] == "low"
    out = grade_row(pooled(n_participants=300.0), WINDOW, rob=low, small=None, cfg=CFG)
    assert out["imprecision"] == "serious" and "OIS 785 (not met)" in out["imprecision_reason"]


def test_publication_bias_used_only_from_k10() -> None:
    """k = 12 with Egger p = 0.04 < 0.1 -> serious; the rest as in the low-risk base case."""
    small = pd.DataFrame(
        {"outcome": ["score"], "measure": ["SMD"], "timepoint": ["24h"], "pval": [0.04]}
    )
    out = grade_row(pooled(k=12), WINDOW, rob=rob(["low"] * 4), small=small, cfg=CFG)
    assert out["publication_bias"] == "serious" and out["certainty"] == "moderate"


def test_not_assessed_is_said_and_never_rated() -> None:
    out = grade_row(pooled(), WINDOW, rob=None, small=None, cfg={})
    assert out["risk_of_bias"] == "not assessed" and out["indirectness"] == "not assessed"
    assert out["certainty"] == "high"
    assert out["certainty_note"].startswith("upper bound: not assessed: risk of bias")
    md = sof_markdown(pd.DataFrame([out]), title="T")
    assert "upper bound" in md and "Risk of bias: not assessed" in md


def test_optimal_information_size_by_hand() -> None:
    """z = 1.959964 + 0.841621 = 2.801585, z^2 = 7.848879.
    SMD 0.2: per arm 2 z^2 / 0.04 = 392.44 -> 784.89 in total.
    Binary p0 = 0.2, +25% -> p1 = 0.25: per arm z^2 (0.16 + 0.1875) / 0.0025 = 7.848879 * 139
    = 1090.99 -> 2181.99 in total.
    """
    assert optimal_information_size("SMD", alpha=0.05, power=0.8, smd=0.2) == pytest.approx(
        784.89, abs=0.01
    )
    assert optimal_information_size(
        "OR", alpha=0.05, power=0.8, baseline_risk=0.2, relative_change=0.25
    ) == pytest.approx(2181.99, abs=0.01)
    assert optimal_information_size("OR", alpha=0.05, power=0.8) is None


def test_absolute_risk_by_hand() -> None:
    """OR 2 at control risk 0.2: odds 0.25 * 2 = 0.5 -> risk 1/3. RR 2: 0.4."""
    assert absolute_risk("OR", math.log(2), 0.2) == pytest.approx(1 / 3)
    assert absolute_risk("RR", math.log(2), 0.2) == pytest.approx(0.4)
    row = pooled(
        measure="OR",
        outcome="response",
        estimate=math.log(2),
        ci_low=math.log(1.5),
        ci_high=math.log(3),
        pi_low=math.log(1.5),
        pi_high=math.log(3),
    )
    cfg = {**CFG, "baseline_risk": {"response": {"risk": 0.2, "source": "test"}}}
    out = grade_row(row, WINDOW, rob=rob(["low"] * 4), small=None, cfg=cfg)
    assert np.isclose(out["risk_treatment_per_1000"], 1000 / 3)
    assert out["relative_effect"] == "OR 2.00 (1.50 to 3.00)"


def test_mean_difference_row_in_the_outcomes_units_and_review_words() -> None:
    # MD: the absolute effect is the pooled difference itself; no relative effect
    out = grade_row(pooled(measure="MD", estimate=0.68, ci_low=0.6, ci_high=0.76), WINDOW,
                    rob=None, small=None, cfg={})  # fmt: skip
    assert out["absolute_effect"] == "MD 0.68 (0.60 to 0.76); positive = benefit"
    assert out["relative_effect"] == "not applicable (mean difference)"
    md = sof_markdown(pd.DataFrame([out]), title="T", intervention="alogliptin",
                      outcome_labels={"score": "HbA1c change"})  # fmt: skip
    row = next(line for line in md.splitlines() if line.startswith("| HbA1c change (24h)"))
    assert "High \u00b9,\u00b2,\u00b3" in row  # footnote marks as superscripts, not inert <sup>
    assert "&lt;" not in md and "SMD" not in md
    assert "positive = benefit of alogliptin (mean difference; log-scale" in md
