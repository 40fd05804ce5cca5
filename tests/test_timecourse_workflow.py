"""Workflow tables of the multivariate time-course model (pipeline.timecourse_tables).

Golden values: tests/fixtures/metafor/timecourse_workflow_golden.R (metafor 3.8.1), which fits
rma.mv(yi, V, mods = ~ tf - 1, random = ~ tf | unit, struct = S, method = "REML") with
V = vcalc(vi, cluster = unit, time1 = position in the window order, phi = rho) to a small
hand-made effects table (five windows, "3d" without data, trial E with two comparisons), plus
anova() contrasts and fitstats(). Tolerances as tests/test_timecourse.py: 1e-4 relative for
estimates, SEs and p-values, 1e-4 absolute for log-likelihoods and information criteria.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from timecourse_meta.errors import ConfigError
from timecourse_meta.pipeline.tables import to_csv_text
from timecourse_meta.pipeline.timecourse_fits import timecourse_data
from timecourse_meta.pipeline.timecourse_tables import (
    build_timecourse_tables,
    parse_timecourse_config,
    structure_table,
)
from timecourse_meta.schema import CONTRAST_COLUMNS, MODEL_COLUMNS, RHO_COLUMNS, STRUCTURE_COLUMNS

GOLDEN = json.loads(
    (Path(__file__).parent / "fixtures" / "metafor" / "timecourse_workflow_golden.json").read_text()
)
ORDER = GOLDEN["timepoint_order"]  # 4h, 24h, 3d, 7d, 14d
HOURS = dict(zip(ORDER, [4.0, 24.0, 72.0, 168.0, 336.0], strict=True))
RTOL = 1e-4
ATOL_LL = 1e-4
SPEC = parse_timecourse_config({"contrasts": [["24h", "7d"], ["24h", "14d"]]}, ORDER)


def golden_effects() -> pd.DataFrame:
    d = GOLDEN["data"]
    n = len(d["yi"])
    score = pd.DataFrame(
        {
            "study_id": d["study_id"],
            "comparison_id": d["unit"],
            "outcome": ["score"] * n,
            "measure": ["SMD"] * n,
            "timepoint": d["timepoint"],
            "yi": d["yi"],
            "vi": d["vi"],
            "flags": ["control_split_2_ways" if s == "E" else "" for s in d["study_id"]],
        }
    )
    # rows of another outcome must not enter the primary model
    other = score.iloc[:3].assign(outcome="response", measure="OR", yi=[9.0, 9.0, 9.0])
    return pd.concat([other, score], ignore_index=True)


@pytest.fixture(scope="module")
def tables():
    return build_timecourse_tables(
        golden_effects(), ORDER, HOURS, SPEC, outcome="score", measure="SMD"
    )


def close(actual, expected, rtol: float = RTOL) -> None:
    np.testing.assert_allclose(np.asarray(actual, float), np.asarray(expected, float), rtol=rtol)


def test_model_table_matches_metafor(tables) -> None:
    m = tables.model
    assert list(m.columns) == list(MODEL_COLUMNS)
    assert m["timepoint"].tolist() == ORDER  # every configured window, in config order
    assert m["k"].tolist() == [3, 7, 0, 5, 3]
    assert m["hours"].tolist() == [4.0, 24.0, 72.0, 168.0, 336.0]
    g = GOLDEN["HAR"]["rho0.5"]
    est = m[m["k"] > 0]
    assert est["timepoint"].tolist() == g["timepoint"]
    close(est["estimate"], g["estimate"])
    close(est["se"], g["se"])
    close(est["ci_low"], g["ci_lb"])
    close(est["ci_high"], g["ci_ub"])
    close(est["pval"], g["pval"])
    close(est["tau2"], g["tau2"])
    assert (est["status"] == "ok").all() and est["converged"].all()
    assert set(m["struct"]) == {"HAR"} and set(m["within"]) == {"ar"} and set(m["rho"]) == {0.5}
    assert m.loc[1, "studies"] == "A;B;C;D;E / arm 1;E / arm 2;G"


def test_window_without_data_is_listed_and_explained(tables) -> None:
    row = tables.model.set_index("timepoint").loc["3d"]
    assert row["k"] == 0 and row["status"] == "no data" and np.isnan(row["estimate"])
    assert row["warnings"] == "k = 0: no study reports score (SMD) in window 3d; not estimated"


def test_multi_arm_comparisons_are_flagged(tables) -> None:
    data, notes = timecourse_data(golden_effects(), "score", "SMD")
    assert len(data) == 18 and data["unit"].nunique() == 8  # E contributes two units
    expected = (
        "E: 2 comparisons (E / arm 1; E / arm 2) (flags: control_split_2_ways) are treated as "
        "independent studies; a shared control makes them correlated, which is not modelled"
    )
    assert notes == {"24h": [expected], "7d": [expected]}
    w = tables.model.set_index("timepoint")["warnings"]
    assert expected in w["24h"] and expected in w["7d"] and expected not in w["4h"]


def test_contrasts_match_metafor_anova(tables) -> None:
    c = tables.contrasts
    assert list(c.columns) == list(CONTRAST_COLUMNS)
    assert c["contrast"].tolist() == [
        "24h - 7d",
        "24h - 14d",
        "linear trend per window step",
        "all window means equal",
    ]
    g = GOLDEN["HAR"]["rho0.5"]
    close(c["estimate"][:2], g["diff"]["estimate"])
    close(c["se"][:2], g["diff"]["se"])
    close(c["statistic"][:2], g["diff"]["zval"])
    close(c["pval"][:2], g["diff"]["pval"])
    # trend over the configured positions 0, 1, 3, 4 (3d has no data): gap counted
    close(c["estimate"][2], g["trend"]["estimate"])
    close(c["se"][2], g["trend"]["se"])
    close(c["pval"][2], g["trend"]["pval"])
    eq = c.iloc[3]
    close(eq["statistic"], g["equality"]["QM"])
    assert eq["df"] == g["equality"]["df"] == 3 and eq["stat_type"] == "QM"
    close(eq["pval"], g["equality"]["pval"])
    assert np.isnan(eq["estimate"]) and "no single estimate" in eq["warnings"]
    # 95% CI of a difference: estimate -/+ 1.959964 * se
    d = c.iloc[0]
    half = 1.959964 * d["se"]
    close([d["ci_low"], d["ci_high"]], [d["estimate"] - half, d["estimate"] + half], rtol=1e-6)
    assert c["k"].tolist() == [5, 3, 3, 3]  # smallest k among the windows involved
    assert "windows without data (3d) not included" in c.loc[2, "warnings"]


def test_contrast_with_empty_window_is_not_estimable() -> None:
    spec = replace(SPEC, contrasts=(("24h", "3d"),))
    t = build_timecourse_tables(
        golden_effects(), ORDER, HOURS, spec, outcome="score", measure="SMD"
    )
    row = t.contrasts.iloc[0]
    assert row["status"] == "not estimable" and np.isnan(row["estimate"])
    assert row["warnings"] == "window(s) 3d have no data (k = 0)"


def test_structure_comparison_matches_fitstats_and_anova(tables) -> None:
    s = tables.structures
    assert list(s.columns) == list(STRUCTURE_COLUMNS)
    # one row per (struct, nested reduced structure); UN has four nested structures
    assert list(zip(s["struct"], s["reduced"], strict=True)) == [
        ("CS", ""), ("HCS", "CS"), ("AR", ""), ("HAR", "AR"),
        ("UN", "CS"), ("UN", "HCS"), ("UN", "AR"), ("UN", "HAR"),
    ]  # fmt: skip
    first = s.drop_duplicates("struct").set_index("struct")
    for st, fs in GOLDEN["fitstats"].items():
        for col, key in (("loglik", "logLik"), ("AIC", "AIC"), ("BIC", "BIC"), ("AICc", "AICc")):
            assert first.loc[st, col] == pytest.approx(fs[key], abs=ATOL_LL), (st, col)
        assert first.loc[st, "n_params"] == fs["parms"]
    # parms: UN = 4 means + 4 tau2 + 5 pairs of windows seen together (4h~14d never) = 13;
    # residual df = 18 estimates - 4 means = 14
    assert first.loc["UN", "n_var_params"] == 9 and first.loc["UN", "resid_df"] == 14
    assert first["configured"].tolist() == [False, False, False, True, False]
    assert (s["status"] == "ok").all()
    for lr in GOLDEN["lrt"]:
        row = s[(s["struct"] == lr["full"]) & (s["reduced"] == lr["reduced"])].iloc[0]
        assert row["LRT"] == pytest.approx(lr["LRT"], abs=ATOL_LL)
        assert row["df"] == lr["df"]
        assert row["pval"] == pytest.approx(lr["pval"], abs=1e-4)
    # delta_AIC relative to the smallest AIC (CS here: 6.439276)
    close(first["delta_AIC"], first["AIC"] - first["AIC"].min(), rtol=1e-12)
    assert first.loc["CS", "delta_AIC"] == 0


def test_over_parameterised_structure_is_flagged() -> None:
    # comparisons A-D only: k = 10 estimates, p = 4 windows -> 6 residual df; UN has
    # 4 tau2 + 5 correlations (pairs seen: 4h~24h, 4h~7d, 24h~7d, 24h~14d, 7d~14d) = 9 > 6
    data, _ = timecourse_data(golden_effects(), "score", "SMD")
    s = structure_table(data.iloc[:10], ORDER, SPEC, outcome="score", measure="SMD")
    first = s.drop_duplicates("struct").set_index("struct")
    assert first["n_var_params"].tolist() == [2, 5, 2, 5, 9]
    assert first["resid_df"].tolist() == [6] * 5
    assert first["status"].tolist() == ["ok", "ok", "ok", "ok", "over-parameterised"]
    assert (
        "9 variance parameters but only k - p = 6 residual degrees of freedom"
        in first.loc["UN", "note"]
    )


def test_rho_sensitivity_matches_metafor(tables) -> None:
    r = tables.rho_sensitivity
    assert list(r.columns) == list(RHO_COLUMNS)
    assert len(r) == 3 * (5 + 4)  # per rho: 5 windows + 2 differences + trend + equality
    for rho in (0.2, 0.5, 0.8):
        g = GOLDEN["HAR"][f"rho{rho}"]
        at = r[r["rho"] == rho]
        win = at[(at["term_type"] == "window") & (at["k"] > 0)]
        close(win["estimate"], g["estimate"])
        close(win["se"], g["se"])
        diff = at[at["term_type"] == "difference"]
        close(diff["estimate"], g["diff"]["estimate"])
        close(diff["se"], g["diff"]["se"])
        close(at.loc[at["term_type"] == "linear trend", "estimate"], [g["trend"]["estimate"]])
    # the configured rho reproduces the model table
    main = r[(r["rho"] == 0.5) & (r["term_type"] == "window")]
    np.testing.assert_array_equal(main["estimate"], tables.model["estimate"])


def test_failed_fit_is_reported_never_raised() -> None:
    # two estimates for two window means: the model is not identified (k <= p)
    eff = golden_effects()
    eff = eff[eff["outcome"] == "score"].iloc[[0, 3]].assign(timepoint=["4h", "24h"])
    t = build_timecourse_tables(eff, ORDER, HOURS, SPEC, outcome="score", measure="SMD")
    reason = (
        "model could not be fitted: 2 estimates for 2 time-point means: need more estimates "
        "than time points"
    )
    assert t.model["status"].tolist() == ["failed", "failed", "no data", "no data", "no data"]
    assert t.model.loc[0, "warnings"] == reason and t.model["estimate"].isna().all()
    assert (t.contrasts["status"] == "failed").all()
    assert (t.contrasts["warnings"] == reason).all()
    # every configured structure is listed with the reason, none dropped
    assert t.structures["struct"].tolist() == list(SPEC.structures)
    assert (t.structures["status"] == "failed").all() and (t.structures["note"] == reason).all()


def test_outcome_without_data() -> None:
    t = build_timecourse_tables(
        golden_effects(), ORDER, HOURS, SPEC, outcome="remission", measure="OR"
    )
    assert (t.model["k"] == 0).all() and (t.model["status"] == "no data").all()
    assert (t.structures["note"] == "no estimates of this outcome and measure").all()


def test_non_convergence_is_reported() -> None:
    spec = replace(SPEC, maxiter=1)
    t = build_timecourse_tables(
        golden_effects(), ORDER, HOURS, spec, outcome="score", measure="SMD"
    )
    m = t.model[t.model["k"] > 0]
    assert (m["status"] == "not converged").all() and not m["converged"].any()
    assert m["warnings"].str.contains("optimiser did not converge").all()
    assert m["estimate"].notna().all()  # last iterate shown, flagged by status
    assert t.contrasts.loc[0, "warnings"] == "model status: not converged"
    s = t.structures
    assert (s["status"] == "not converged").all() and s["delta_AIC"].isna().all()
    assert s["note"].str.contains("delta_AIC not computed: no structure has status ok").all()


def test_tables_are_deterministic(tables) -> None:
    again = build_timecourse_tables(
        golden_effects(), ORDER, HOURS, SPEC, outcome="score", measure="SMD"
    )
    for name in ("model", "contrasts", "structures", "rho_sensitivity"):
        assert to_csv_text(getattr(again, name)) == to_csv_text(getattr(tables, name))


def test_config_defaults_and_errors() -> None:
    spec = parse_timecourse_config({}, ORDER, level=0.9)
    assert (spec.struct, spec.within, spec.rho, spec.method, spec.level) == (
        "HAR", "ar", 0.5, "REML", 0.9,
    )  # fmt: skip
    assert spec.rho_grid == (0.2, 0.5, 0.8)
    # contrasts absent = auto: the earliest window against each later one
    assert spec.contrasts == tuple((ORDER[0], w) for w in ORDER[1:])
    assert parse_timecourse_config({"struct": "cs"}, ORDER).struct == "CS"
    bad = [
        ({"contrasts": [["24h", "2d"]]}, "timecourse.contrasts"),
        ({"contrasts": [["24h", "24h"]]}, "timecourse.contrasts"),
        ({"struct": "XX"}, "timecourse.struct"),
        ({"structures": ["CS", "CS"]}, "timecourse.structures"),
        ({"rho_grid": [0.5, 1.0]}, "timecourse.rho_grid"),
        ({"rho": -1}, "timecourse.rho"),
        ({"within": "exp"}, "timecourse.within"),
        ({"method": "DL"}, "timecourse.method"),
    ]
    for spec_in, key in bad:
        with pytest.raises(ConfigError, match=f"config '{key}'"):
            parse_timecourse_config(spec_in, ORDER)
