"""Numerical edge cases reach the pooled tables as warnings, never as an unexplained NA.

k = 0, k = 1, k = 2, tau^2 at its boundary, a huge ratio of sampling variances, and a tau^2
estimator that does not converge (with metafor's fallback, method = c("REML", "DL")).
Golden numbers: tests/fixtures/metafor/fallback_golden.json, made by fallback_golden.R
(metafor 3.8.1). The last test runs the workflow's pooling rule on a sheet with all the cases
and reads pooled_by_timepoint.csv and .md.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pipeline_helpers import copy_project, snakemake

from timecourse_meta import Control, ConvergenceError, fit_random_effects
from timecourse_meta.pipeline.pooling import (
    estimators,
    pool_by_timepoint,
    pool_group,
    subgroup_tests,
)
from timecourse_meta.pipeline.tables import to_csv_text
from timecourse_meta.schema import POOLED_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = json.loads((ROOT / "tests" / "fixtures" / "metafor" / "fallback_golden.json").read_text())
RESULT_FIELDS = ["estimate", "se", "ci_low", "ci_high", "pval", "tau2", "tau2_ci_low",
                 "tau2_ci_high", "I2", "H2", "Q", "Q_p", "pi_low", "pi_high"]  # fmt: skip


def group(yi, vi, study="S") -> pd.DataFrame:
    k = len(yi)
    return pd.DataFrame(
        {
            "study_id": [f"{study}{i}" for i in range(k)],
            "yi": np.asarray(yi, float),
            "vi": np.asarray(vi, float),
            "n_total": 40.0,
        }
    )


# inputs are stored as "%.17g" text (exact doubles); REML Fisher scoring oscillates on them
NOT_CONVERGING = group(
    [float(x) for x in GOLDEN["input"]["yi"]], [float(x) for x in GOLDEN["input"]["vi"]]
)


def test_estimators_order() -> None:
    assert estimators("REML") == ["REML", "DL"]
    assert estimators("reml", "PM") == ["REML", "PM"]
    assert estimators("DL", "DL") == ["DL"]
    assert estimators("REML", None) == estimators("REML", "none") == ["REML"]


def test_fallback_matches_metafor() -> None:
    assert GOLDEN["reml_failed"] and GOLDEN["method_used"] == "DL"
    row = pool_group(NOT_CONVERGING, method="REML", test="knha", level=0.95)
    assert row["method"] == "DL"
    for field in ("estimate", "se", "ci_low", "ci_high", "pval", "tau2", "I2", "Q"):
        assert row[field] == pytest.approx(GOLDEN[field], rel=1e-8), field
    assert "REML failed (REML: Fisher scoring did not converge in 100 iterations)" in str(
        row["warnings"]
    )
    assert "tau^2 estimator DL used because REML did not converge (method_fallback)" in str(
        row["warnings"]
    )


def test_no_fallback_brackets_the_reml_score() -> None:
    """method_fallback="none": REML is the only estimator, so the engine solves the REML score
    by bracketing (Control.bracket) instead of failing; tau^2 agrees with metafor's own remedy
    rma(control = list(stepadj = 0.5)) to its threshold 1e-5, and the row says how."""
    row = pool_group(NOT_CONVERGING, method="REML", test="knha", level=0.95, method_fallback="none")
    assert row["method"] == "REML"
    assert "Fisher scoring did not converge; tau^2 from bracketing root of the REML score" in str(
        row["warnings"]
    )
    half = GOLDEN["reml_stepadj"]
    assert row["tau2"] == pytest.approx(half["tau2_tight"], abs=1e-8)
    assert row["tau2"] == pytest.approx(half["tau2"], abs=1e-5)
    assert row["estimate"] == pytest.approx(half["estimate_tight"], rel=1e-6)
    assert row["se"] == pytest.approx(half["se_tight"], rel=1e-6)


def test_no_fallback_strict_gives_na_with_the_reason() -> None:
    """With bracketing off (metafor's behaviour) the failure is a NA row with the reason."""
    with pytest.raises(ConvergenceError, match="Fisher scoring did not converge in 100"):
        fit_random_effects(
            NOT_CONVERGING["yi"],
            NOT_CONVERGING["vi"],
            method="REML",
            control=Control(bracket=False),
        )


def test_subgroup_test_uses_the_fallback() -> None:
    # Two copies of the oscillating set, the second shifted by +1: the meta-regression on the
    # subgroup dummy has exactly the 8-study REML iterates (step still 2.6e-4 at iteration 100),
    # so its REML fails as robustly as the set itself and the test falls back to DL.
    shifted = NOT_CONVERGING.assign(
        yi=NOT_CONVERGING["yi"] + 1.0, study_id=lambda d: "b" + d["study_id"]
    )
    effects = pd.concat(
        [NOT_CONVERGING.assign(trd="yes"), shifted.assign(trd="no")], ignore_index=True
    )
    effects = effects.assign(outcome="score", measure="SMD", timepoint="24h")
    pooled = pool_by_timepoint(effects, ["24h"], subgroups={"trd": ["yes", "no"]})
    tests = subgroup_tests(effects, pooled, ["24h"], {"trd": ["yes", "no"]})
    assert tests["method"].tolist() == ["DL"]
    assert "falling back" in tests["note"].iloc[0]
    # without a listed fallback, REML is solved by bracketing (no failure to report)
    tests = subgroup_tests(effects, pooled, ["24h"], {"trd": ["yes", "no"]}, method_fallback="none")
    assert tests["method"].tolist() == ["REML"]
    assert "bracketing root of the REML score" in tests["note"].iloc[0]


def test_k2_at_the_boundary_matches_metafor() -> None:
    g = GOLDEN["k2"]
    row = pool_group(group(g["yi"], g["vi"]), method="REML", test="knha", level=0.95)
    for field in ("estimate", "se", "tau2", "ci_low", "ci_high"):
        assert row[field] == pytest.approx(g[field], abs=1e-12), field
    warnings = str(row["warnings"])
    assert "k = 2: Knapp-Hartung uses a t distribution with 1 df (very wide CI)" in warnings
    assert "tau^2 estimated at the boundary (0)" in warnings
    assert "Knapp-Hartung scale factor is 0 (residuals vanish): SEs are 0" in warnings


def test_k2_with_z_test_is_flagged() -> None:
    row = pool_group(group([0.2, 0.6], [0.04, 0.05]), method="REML", test="z", level=0.95)
    assert "k = 2: tau^2 rests on two studies and is very imprecise" in str(row["warnings"])


def test_k1_and_k0() -> None:
    one = pool_group(group([0.4], [0.09]), method="REML", test="knha", level=0.95)
    # single study: its own Wald CI, 0.4 +/- 1.959964 * 0.3
    assert one["ci_low"] == pytest.approx(0.4 - 1.959963984540054 * 0.3)
    assert one["method"] == "none (k = 1)"
    assert "k = 1: no pooling" in str(one["warnings"])
    assert "NA in tau2_ci_low, tau2_ci_high: not estimable with a single study" in str(
        one["warnings"]
    )
    zero = pool_group(group([], []), method="REML", test="knha", level=0.95)
    assert zero["method"] == "none" and "k = 0" in str(zero["warnings"])


def test_huge_variance_ratio_is_flagged() -> None:
    row = pool_group(group([0.3, 0.5, 0.1], [1e-8, 0.09, 0.2]), method="REML", test="z", level=0.95)
    assert "ratio of largest to smallest sampling variance >= 1e7" in str(row["warnings"])


EDGE_EFFECTS = pd.concat(
    [
        group([0.4], [0.09], "one").assign(timepoint="24h"),
        group(GOLDEN["k2"]["yi"], GOLDEN["k2"]["vi"], "two").assign(timepoint="3d"),
        group([0.3, 0.5, 0.1], [1e-8, 0.09, 0.2], "ratio").assign(timepoint="7d"),
        NOT_CONVERGING.assign(timepoint="14d", study_id=lambda d: "nc" + d["study_id"]),
    ],
    ignore_index=True,
).assign(outcome="score", measure="SMD")
WINDOWS = ["4h", "24h", "3d", "7d", "14d"]
EXPECTED = {  # window -> a warning its row must carry
    "4h": "k = 0: no study reports this outcome in this window",
    "24h": "k = 1: no pooling",
    "3d": "tau^2 estimated at the boundary (0)",
    "7d": "ratio of largest to smallest sampling variance >= 1e7",
    "14d": "tau^2 estimator DL used because REML did not converge",
}


def check_pooled_csv(text: str) -> None:
    table = pd.read_csv(io.StringIO(text), keep_default_na=False)
    overall = table[table["subgroup"] == "all"].set_index("timepoint")
    for window, warning in EXPECTED.items():
        assert warning in overall.loc[window, "warnings"], window
    # every NA in a result column is explained in the same row's warnings
    for _, row in table.iterrows():
        na = [f for f in RESULT_FIELDS if row[f] == "NA"]
        if na:
            w = row["warnings"]
            assert "k = 0" in w or "NA in" in w, (row["timepoint"], na, w)
            if "NA in" in w:
                assert all(f in w for f in na), (row["timepoint"], na, w)


def test_pooled_table_carries_every_warning() -> None:
    pooled = pool_by_timepoint(EDGE_EFFECTS, WINDOWS, method="REML", test="knha")
    assert list(pooled.columns) == list(POOLED_COLUMNS)
    check_pooled_csv(to_csv_text(pooled))


@pytest.mark.slow
def test_workflow_writes_the_warnings(tmp_path: Path) -> None:
    """The pool_timepoints rule on a minimal sheet with every edge case (~20 s)."""
    copy_project(tmp_path, data=False)
    (tmp_path / "data" / "raw").mkdir(parents=True)
    hours = {"24h": 24, "3d": 72, "7d": 168, "14d": 336}
    sheet = EDGE_EFFECTS.assign(
        time_hours=EDGE_EFFECTS["timepoint"].map(hours), citation="synthetic test input"
    )[["study_id", "citation", "time_hours", "yi", "vi", "n_total"]]
    sheet.to_csv(tmp_path / "data" / "raw" / "edge.csv", index=False)
    # no risk-of-bias sheet and no published results in this copy (data/raw/ not copied)
    (tmp_path / "edge.yaml").write_text("risk_of_bias: null\npublished: null\n")
    proc = snakemake(
        tmp_path, "--configfile", "edge.yaml", "--config", "studies=data/raw/edge.csv", "--",
        "results/tables/pooled_by_timepoint.csv", "results/tables/pooled_by_timepoint.md",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    tables = tmp_path / "results" / "tables"
    check_pooled_csv((tables / "pooled_by_timepoint.csv").read_text(encoding="utf-8"))
    md = (tables / "pooled_by_timepoint.md").read_text(encoding="utf-8")
    for warning in EXPECTED.values():
        assert warning.replace("|", "\\|") in md


def test_listed_ids_caps_long_lists() -> None:
    from timecourse_meta.pipeline.pooling import MAX_LISTED, listed_ids

    few = [f"S{i}" for i in range(MAX_LISTED)]
    assert listed_ids(few) == ", ".join(few)  # up to the limit: all named, as before
    many = [f"S{i:06d}" for i in range(100_000)]
    text = listed_ids(many)
    assert text.endswith(f"S{MAX_LISTED - 1:06d} and {100_000 - MAX_LISTED} more")
    assert len(text) < 1000
