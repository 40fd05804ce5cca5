"""subgroup_analysis against metafor 3.8.1 (golden file) and a hand-checked case."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from timecourse_meta.diagnostics.subgroups import subgroup_analysis

GOLDEN = json.loads(
    (Path(__file__).parent / "fixtures" / "metafor" / "diagnostics_golden.json").read_text()
)
DATA = GOLDEN["datasets"]
GROUPINGS = {"bcg_alloc": ("bcg", "alloc"), "hackshaw_design": ("hackshaw", "design")}
RTOL = 1e-6
CASES = [(g, c) for g in GOLDEN["subgroups"] for c in GOLDEN["subgroups"][g]]


@pytest.mark.parametrize(("grouping", "case"), CASES)
def test_subgroups_match_metafor(grouping: str, case: str) -> None:
    method, test, mode = case.split("_")
    dataset, column = GROUPINGS[grouping]
    d = DATA[dataset]
    gold = GOLDEN["subgroups"][grouping][case]
    res = subgroup_analysis(d["yi"], d["vi"], d[column], method=method, test=test, tau2=mode)

    assert list(res.levels) == gold["levels"]
    for level, row in gold["rows"].items():
        for col, value in row.items():
            assert res.subgroups.loc[level, col] == pytest.approx(value, rel=RTOL), (level, col)

    if mode == "separate":
        # rma(yi = subgroup estimates, sei = their SEs, method = "FE"): QE on m - 1 df
        assert res.between_dist == "chisq" and res.between_df2 is None
        assert res.between_stat == pytest.approx(gold["Q_between"], rel=RTOL)
        assert res.between_df == gold["Q_between_df"]
        assert res.between_p == pytest.approx(gold["Q_between_p"], rel=RTOL)
        assert res.within_Q == pytest.approx(gold["Q_within"], rel=RTOL)
        assert res.within_df == gold["Q_within_df"]
        assert res.within_p == pytest.approx(gold["Q_within_p"], rel=RTOL)
        assert res.tau2 is None
    else:
        df1, df2 = gold["QM_df"]
        assert res.between_stat == pytest.approx(gold["QM"], rel=RTOL)
        assert res.between_df == df1
        assert res.between_df2 == df2  # None (R's NA) for the chi-square test
        assert res.between_dist == ("F" if test == "knha" else "chisq")
        assert res.between_p == pytest.approx(gold["QM_p"], rel=RTOL)
        assert res.within_Q == pytest.approx(gold["QE"], rel=RTOL)
        assert res.within_df == gold["QE_df"]
        assert res.within_p == pytest.approx(gold["QE_p"], rel=RTOL)
        for attr in ("tau2", "I2", "H2", "R2"):
            assert getattr(res, attr) == pytest.approx(gold[attr], rel=RTOL, abs=1e-12), attr


def test_between_test_by_hand_fixed_effect() -> None:
    # two groups of two studies, all v = 0.04, method FE:
    # group a: mean (0 + 0.2)/2 = 0.1, se = sqrt(0.04/2) = sqrt(0.02); group b: mean 0.6
    # Q_between = sum w (est - mean)^2 with w = 1/0.02 = 50: 50 (0.25^2 + 0.25^2) = 6.25
    # Q_within = 25 (0.1^2 + 0.1^2) + 25 (0.1^2 + 0.1^2) = 1.0 on 2 df
    y = [0.0, 0.2, 0.5, 0.7]
    v = [0.04] * 4
    g = ["a", "a", "b", "b"]
    for mode in ("separate", "common"):
        res = subgroup_analysis(y, v, g, method="FE", tau2=mode)
        np.testing.assert_allclose(res.subgroups["estimate"], [0.1, 0.6])
        np.testing.assert_allclose(res.subgroups["se"], np.sqrt([0.02, 0.02]))
        assert res.between_stat == pytest.approx(6.25)
        assert res.between_df == 1
        assert res.between_p == pytest.approx(stats.chi2.sf(6.25, 1))
        assert res.within_Q == pytest.approx(1.0)
        assert res.within_df == 2


def test_categorical_order_and_validation() -> None:
    y = [0.0, 0.2, 0.5, 0.7, 0.1]
    v = [0.04, 0.05, 0.04, 0.06, 0.05]
    g = pd.Categorical(["x", "x", "y", "y", "x"], categories=["y", "unused", "x"])
    res = subgroup_analysis(y, v, g, method="DL")
    assert res.levels == ("y", "x")
    assert res.subgroups["k"].tolist() == [2, 3]
    with pytest.raises(ValueError, match="missing"):
        subgroup_analysis(y, v, ["x", None, "y", "y", "x"])
    with pytest.raises(ValueError, match="two groups"):
        subgroup_analysis(y, v, ["x"] * 5)
    with pytest.raises(ValueError, match="tau2"):
        subgroup_analysis(y, v, ["x", "x", "y", "y", "x"], tau2="pooled")


def test_single_study_subgroup_is_reported_not_dropped() -> None:
    # a subgroup with one study is that study (metafor's k = 1 rule: tau2 = 0, z test)
    res = subgroup_analysis([0.1, 0.3, 0.9], [0.01, 0.02, 0.05], ["a", "a", "b"], test="knha")
    row = res.subgroups.loc["b"]
    assert row["k"] == 1
    assert row["estimate"] == pytest.approx(0.9)
    assert row["se"] == pytest.approx(np.sqrt(0.05))
    assert pd.isna(row["df"])  # z test, no df
    assert any("'b'" in w for w in res.warnings)


def test_common_tau2_identical_effects_knha_gives_zero_se_without_warning() -> None:
    # all effects equal: the Knapp-Hartung factor is 0 (residuals vanish), so every SE is 0;
    # the z/t statistic is 0/0 (undefined, as in metafor) and no RuntimeWarning escapes
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        res = subgroup_analysis(
            [0.0, 0.0, 0.0], [1 / 6] * 3, ["saline", "saline", "midazolam"],
            method=["REML", "DL"], test="knha", tau2="common",
        )  # fmt: skip
    rows = res.subgroups
    assert rows["estimate"].tolist() == [0.0, 0.0]
    assert rows["se"].tolist() == [0.0, 0.0]
    assert rows["stat"].isna().all()
    assert any("Knapp-Hartung scale factor is 0" in w for w in res.warnings)
