"""Per-window pooling, subgroup tests, proportions and published-results alignment.

Golden numbers: tests/fixtures/metafor/pooling_golden.json, made by pooling_golden.R (metafor
3.8.1 on metadat::dat.bcg). Tolerances: metafor's default REML stops when the change in tau^2 is
below 1e-5 and its Q-profile CI uses uniroot's default tolerance (~1e-4), so estimates are
compared at rtol 1e-4 and tau^2 CI bounds at atol 1e-3.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from timecourse_meta.diagnostics.subgroups import subgroup_analysis
from timecourse_meta.models.rma import fit_random_effects
from timecourse_meta.pipeline.forest_data import (
    forest_data,
    pooled_mapping,
    study_label,
)
from timecourse_meta.pipeline.pooling import (
    pool_by_timepoint,
    pool_by_timepoint_weighted,
    pool_proportions,
    subgroup_tests,
)
from timecourse_meta.pipeline.published import published_alongside
from timecourse_meta.pipeline.sensitivity import leave_one_out_rows, subset_effects
from timecourse_meta.schema import POOLED_COLUMNS, STUDY_WEIGHT_COLUMNS

GOLDEN = json.loads(
    (Path(__file__).parent / "fixtures" / "metafor" / "pooling_golden.json").read_text()
)
WINDOWS = ["4h", "24h", "3d", "7d", "14d"]
LEVELS = ["random", "alternate", "systematic"]


@pytest.fixture(scope="module")
def effects() -> pd.DataFrame:
    inp = GOLDEN["input"]
    return pd.DataFrame(
        {
            "study_id": inp["study"],
            "comparison_id": inp["study"],
            "outcome": "score",
            "measure": "SMD",
            "timepoint": inp["window"],
            "time_hours": [{"24h": 24.0, "3d": 72.0, "7d": 168.0}[w] for w in inp["window"]],
            "yi": inp["yi"],
            "vi": inp["vi"],
            "n_total": inp["n_total"],
            "n_treatment": np.nan,
            "n_control": np.nan,
            "alloc": inp["alloc"],
            "source_type": ["primary"] * 11 + ["secondary"],
            "control": ["saline"] * 6 + ["midazolam"] * 6,
        }
    )


@pytest.fixture(scope="module")
def pooled(effects: pd.DataFrame) -> pd.DataFrame:
    return pool_by_timepoint(
        effects, WINDOWS, subgroups={"alloc": LEVELS}, method="REML", test="knha"
    )


def test_pooled_table_shape_and_columns(pooled: pd.DataFrame) -> None:
    required = [
        "timepoint",
        "subgroup",
        "k",
        "n_participants",
        "estimate",
        "se",
        "ci_low",
        "ci_high",
        "pval",
        "tau2",
        "tau2_ci_low",
        "tau2_ci_high",
        "I2",
        "H2",
        "Q",
        "Q_p",
        "pi_low",
        "pi_high",
        "method",
        "test",
        "warnings",
    ]
    assert set(required) <= set(pooled.columns)
    assert list(pooled.columns) == list(POOLED_COLUMNS)
    # 5 windows x (all + 3 levels), in config order, whatever the data hold
    assert len(pooled) == 20
    assert list(pooled["timepoint"].unique()) == WINDOWS
    assert list(pooled["subgroup"][:4]) == [
        "all",
        "alloc=random",
        "alloc=alternate",
        "alloc=systematic",
    ]


@pytest.mark.parametrize("case", GOLDEN["pooled"], ids=lambda c: f"{c['window']}-{c['level']}")
def test_pooled_rows_match_metafor(pooled: pd.DataFrame, case: dict) -> None:
    sub = "all" if case["level"] == "all" else f"alloc={case['level']}"
    row = pooled[(pooled["timepoint"] == case["window"]) & (pooled["subgroup"] == sub)].iloc[0]
    assert row["k"] == case["k"]
    for field in (
        "estimate",
        "se",
        "ci_low",
        "ci_high",
        "pval",
        "tau2",
        "I2",
        "H2",
        "Q",
        "Q_p",
        "pi_low",
        "pi_high",
    ):
        assert row[field] == pytest.approx(case[field], rel=1e-4, abs=1e-8), field
    for field in ("tau2_ci_low", "tau2_ci_high"):
        assert row[field] == pytest.approx(case[field], abs=1e-3), field
    assert row["method"] == "REML" and row["test"] == "knha"


def test_n_participants_is_sum_of_n_total(pooled: pd.DataFrame, effects: pd.DataFrame) -> None:
    row = pooled[(pooled["timepoint"] == "3d") & (pooled["subgroup"] == "all")].iloc[0]
    assert row["n_participants"] == effects.loc[effects["timepoint"] == "3d", "n_total"].sum()


def test_k1_is_not_pooled(pooled: pd.DataFrame, effects: pd.DataFrame) -> None:
    row = pooled[(pooled["timepoint"] == "7d") & (pooled["subgroup"] == "all")].iloc[0]
    one = effects[effects["timepoint"] == "7d"].iloc[0]
    assert row["k"] == 1
    assert row["estimate"] == pytest.approx(one["yi"])
    # Wald CI of the single study: yi +/- z_0.975 * sqrt(vi), z_0.975 = 1.959963984540054
    half = 1.959963984540054 * math.sqrt(one["vi"])
    assert row["ci_low"] == pytest.approx(one["yi"] - half)
    assert row["ci_high"] == pytest.approx(one["yi"] + half)
    assert row["method"] == "none (k = 1)"
    assert "k = 1" in row["warnings"]


def test_k0_row_has_note(pooled: pd.DataFrame) -> None:
    row = pooled[(pooled["timepoint"] == "14d") & (pooled["subgroup"] == "all")].iloc[0]
    assert row["k"] == 0 and math.isnan(row["estimate"])
    assert "k = 0" in row["warnings"]
    empty_level = pooled[
        (pooled["timepoint"] == "24h") & (pooled["subgroup"] == "alloc=systematic")
    ]
    assert empty_level.iloc[0]["k"] == 0


@pytest.mark.parametrize("case", GOLDEN["subgroup_tests"], ids=lambda c: c["window"])
def test_subgroup_test_matches_metafor(
    effects: pd.DataFrame, pooled: pd.DataFrame, case: dict
) -> None:
    tests = subgroup_tests(effects, pooled, WINDOWS, {"alloc": LEVELS}, method="REML", test="knha")
    row = tests[tests["timepoint"] == case["window"]].iloc[0]
    assert row["k"] == case["k"]
    assert row["QM"] == pytest.approx(case["QM"], rel=1e-4)
    assert (row["QM_df1"], row["QM_df2"]) == (case["QM_df1"], case["QM_df2"])
    assert row["QM_p"] == pytest.approx(case["QM_p"], rel=1e-4)
    assert row["tau2_residual"] == pytest.approx(case["tau2"], rel=1e-4)


def test_subgroup_test_agrees_with_subgroup_module(
    effects: pd.DataFrame, pooled: pd.DataFrame
) -> None:
    tests = subgroup_tests(effects, pooled, WINDOWS, {"alloc": LEVELS}, method="REML", test="knha")
    sub = effects[effects["timepoint"] == "24h"]
    ref = subgroup_analysis(
        sub["yi"], sub["vi"], sub["alloc"], method="REML", test="knha", tau2="common"
    )
    row = tests[tests["timepoint"] == "24h"].iloc[0]
    assert row["QM"] == pytest.approx(ref.between_stat, rel=1e-10)
    assert row["QM_p"] == pytest.approx(ref.between_p, rel=1e-10)


def test_subgroup_test_not_possible_is_explained(
    effects: pd.DataFrame, pooled: pd.DataFrame
) -> None:
    tests = subgroup_tests(effects, pooled, WINDOWS, {"alloc": LEVELS}, method="REML", test="knha")
    row = tests[tests["timepoint"] == "7d"].iloc[0]
    assert math.isnan(row["QM"])
    assert row["note"] == "not tested: fewer than 2 levels have studies"
    assert row["k_by_level"] == "random=0;alternate=0;systematic=1"


@pytest.mark.parametrize("case", GOLDEN["proportions"], ids=lambda c: c["window"])
def test_pooled_proportions_match_metafor(case: dict) -> None:
    inp = GOLDEN["input"]
    props = pd.DataFrame(
        {
            "study_id": inp["study"],
            "comparison_id": inp["study"],
            "outcome": "response",
            "timepoint": inp["window"],
            "yi": inp["prop_yi"],
            "vi": inp["prop_vi"],
            "n": inp["n"],
        }
    )
    table = pool_proportions(props, WINDOWS, method="REML", test="knha")
    row = table[(table["timepoint"] == case["window"]) & (table["subgroup"] == "all")].iloc[0]
    assert row["k"] == case["k"]
    assert row["estimate_logit"] == pytest.approx(case["estimate_logit"], rel=1e-4)
    for field in ("estimate_prop", "ci_low_prop", "ci_high_prop"):
        assert row[field] == pytest.approx(case[field], rel=1e-4), field
    assert row["n_participants"] == sum(
        n for n, w in zip(inp["n"], inp["window"], strict=True) if w == case["window"]
    )


def test_published_alongside_converts_only_smds() -> None:
    # rows as in data/raw/published_pooled.csv (Cochrane SoF 1, Lee 2015, Cochrane OR)
    published = pd.DataFrame({
        "time_window": ["24h", "24h", "24h"],
        "review": ["Cochrane", "Lee 2015", "Cochrane"],
        "measure": ["SMD", "SMD", "OR"],
        "estimate": [-0.87, 1.01, 3.94], "ci_low": [-1.26, 0.69, 1.54],
        "ci_high": [-0.48, 1.34, 10.10],
        "note": ["", "sign: positive = benefit; effect sustained at 7 days per abstract", ""],
    })  # fmt: skip
    pooled = pd.DataFrame(
        {
            "outcome": ["score"],
            "measure": ["SMD"],
            "timepoint": ["24h"],
            "subgroup": ["all"],
            "k": [7],
            "estimate": [0.6],
            "ci_low": [0.3],
            "ci_high": [0.9],
        }
    )
    out = published_alongside(published, pooled)
    # negative SMD = benefit: flipped, bounds swapped
    assert out.loc[0, ["g_benefit", "g_benefit_ci_low", "g_benefit_ci_high"]].tolist() == [
        0.87,
        0.48,
        1.26,
    ]
    # note says positive = benefit: unchanged
    assert out.loc[1, ["g_benefit", "g_benefit_ci_low", "g_benefit_ci_high"]].tolist() == [
        1.01,
        0.69,
        1.34,
    ]
    assert out.loc[2, "comparable"] == "no" and math.isnan(out.loc[2, "g_benefit"])
    assert "not converted" in out.loc[2, "conversion"]
    assert out.loc[0, "this_estimate"] == 0.6 and out.loc[0, "this_k"] == 7
    assert math.isnan(out.loc[2, "this_estimate"])


def test_forest_data_joins_the_pooled_fit(effects: pd.DataFrame) -> None:
    """Weights are stored from the pooling fit; forest_data joins, it does not refit.

    (Changed: forest_data used to refit the model from the effects; it now reads the pooled
    table and the weights table of pool_by_timepoint_weighted.)
    """
    table, weights = pool_by_timepoint_weighted(effects, WINDOWS, method="REML", test="knha")
    assert list(weights.columns) == list(STUDY_WEIGHT_COLUMNS)
    assert table.equals(pool_by_timepoint(effects, WINDOWS, method="REML", test="knha"))
    sub = effects[effects["timepoint"] == "24h"].sort_values("comparison_id")
    res = fit_random_effects(sub["yi"], sub["vi"], method="REML", test="knha")
    studies, pooled_map = forest_data(effects, table, weights, "24h", outcome="score",
                                      measure="SMD")  # fmt: skip
    assert studies["weight"].sum() == pytest.approx(100.0)
    np.testing.assert_allclose(studies["weight"], res.weights)
    assert pooled_map is not None
    assert pooled_map["estimate"] == pytest.approx(res.estimate, rel=1e-12)
    # the test statistic rebuilt as estimate / se is the fit's Knapp-Hartung t on k - 1 df
    assert pooled_map["stat"] == pytest.approx(res.stat, rel=1e-10)
    assert pooled_map["df"] == len(sub) - 1 and pooled_map["stat_name"] == "t"
    # no citation column: labels fall back to the study id
    assert studies["label"].tolist() == sub["study_id"].tolist()
    empty, none = forest_data(effects, table, weights, "14d", outcome="score", measure="SMD")
    assert len(empty) == 0 and none is None
    last, single = forest_data(effects, table, weights, "7d", outcome="score", measure="SMD")
    assert last["flag"].tolist() == ["\u2020"]  # the secondary-source row
    assert single is None and last["weight"].tolist() == [100.0]  # k = 1: nothing pooled


def test_forest_data_failed_window_keeps_studies(effects: pd.DataFrame) -> None:
    """A window whose estimator failed: study rows stay, the note gives the table's reason."""
    table, weights = pool_by_timepoint_weighted(effects, WINDOWS)
    sel = (table["timepoint"] == "24h") & (table["subgroup"] == "all")
    failed = table.copy()
    failed.loc[sel, ["estimate", "se", "ci_low", "ci_high"]] = np.nan
    failed.loc[sel, "warnings"] = "no tau^2 estimator converged (tried REML then DL)"
    wfail = weights.copy()
    wfail.loc[wfail["timepoint"] == "24h", "weight"] = np.nan
    studies, pooled_map = forest_data(effects, failed, wfail, "24h", outcome="score",
                                      measure="SMD")  # fmt: skip
    assert len(studies) == int((effects["timepoint"] == "24h").sum())
    assert pooled_map is not None and "estimate" not in pooled_map
    assert pooled_map["note"] == "not pooled: no tau^2 estimator converged (tried REML then DL)"
    assert pooled_mapping(pd.Series({"k": 1, "estimate": 0.3})) is None


@pytest.mark.parametrize(
    ("citation", "study_id", "comparison_id", "label", "year"),
    [
        ("Daly EJ et al. JAMA Psychiatry 2018;75(2):139-148", "Daly2018",
         "Daly2018 / esketamine 56 mg", "Daly 2018, 56 mg", 2018.0),
        # the team's study id names the year used (online 2018, printed 2020)
        ("Fava M et al. Mol Psychiatry 2020;25(7):1592-1603 (online 2018)", "Fava2018",
         "Fava2018", "Fava 2018", 2018.0),
        ("Ionescu DF et al. Int J Neuropsychopharmacol 2021;24(1):22-31", "Ionescu2021_ASPIRE2",
         "Ionescu2021_ASPIRE2", "Ionescu 2021 ASPIRE2", 2021.0),
        ("Turkoz I et al. J Clin Psychiatry 2021 (pooled post hoc)", "TRANSFORM1_2_pooled",
         "TRANSFORM1_2_pooled", "Turkoz 2021", 2021.0),
        (None, "X2001", "X2001 / high dose", "X2001, high dose", math.nan),
    ],
)  # fmt: skip
def test_study_label_citation_style(citation, study_id, comparison_id, label, year) -> None:
    got, got_year = study_label(citation, study_id, comparison_id)
    assert got == label
    assert (math.isnan(got_year) and math.isnan(year)) or got_year == year


def test_subset_effects(effects: pd.DataFrame) -> None:
    assert len(subset_effects(effects, exclude={"control": ["midazolam"]})) == 6
    assert len(subset_effects(effects, keep={"source_type": ["primary"]})) == 11
    # alloc random: rows 0-3 and 6-8; control midazolam: rows 6-11 -> rows 6, 7, 8 remain
    assert (
        len(subset_effects(effects, keep={"alloc": ["random"]}, exclude={"control": ["saline"]}))
        == 3
    )


def test_leave_one_out_rows_refit_without_each_study(effects: pd.DataFrame) -> None:
    from timecourse_meta.diagnostics.influence import leave_one_out

    table = leave_one_out_rows(effects, WINDOWS, leave_one_out, outcome="score", measure="SMD")
    rows = table[table["timepoint"] == "24h"]
    assert len(rows) == 7
    sub = effects[effects["timepoint"] == "24h"]
    first = rows.iloc[0]
    rest = sub[sub["comparison_id"] != first["omitted"]]
    ref = fit_random_effects(rest["yi"], rest["vi"], method="REML", test="knha")
    assert first["k"] == 6
    assert first["estimate"] == pytest.approx(ref.estimate, rel=1e-8)
    assert first["ci_low"] == pytest.approx(ref.ci_low, rel=1e-8)
    short = table[table["timepoint"] == "7d"].iloc[0]
    assert short["warnings"] == "not run: k = 1 (needs k >= 3)"
