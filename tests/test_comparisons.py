"""Arm pairing, orientation, exclusions and row accounting of comparisons.compute_effects."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from timecourse_meta import schema
from timecourse_meta.effects.binary_effects import log_odds_ratio, log_risk_ratio
from timecourse_meta.effects.comparisons import compute_effects, compute_proportions
from timecourse_meta.effects.effect_sizes import smd, smd_from_d
from timecourse_meta.schema import (
    EFFECT_COLUMNS,
    EXCLUSION_COLUMNS,
    PROPORTION_COLUMNS,
    SOURCE_ROWS,
)

STUDY = {
    "citation": "Doe J et al. J Test 2020;1:1-2",
    "doi": "10.0000/test",
    "pmid": "",
    "population": "unipolar",
    "trd": "yes",
    "concomitant_ad": "no",
    "control": "saline",
    "drug": "ketamine",
    "route": "iv",
    "dose": "0.5 mg/kg over 40 min",
    "scale": "MADRS",
    "design": "parallel",
    "period": "all",
    "source_type": "primary",
    "lower_is_better": "yes",
    "timepoint": "24h",
    "time_hours": 24.0,
}


def sheet(*rows: dict, file: str = "sheet.csv") -> pd.DataFrame:
    """Sheet rows with study defaults; source_row = CSV line (header = line 1)."""
    df = pd.DataFrame([{**STUDY, **r} for r in rows])
    df["source_file"] = file
    df["source_row"] = np.arange(2, 2 + len(df))
    return df


def arm(study: str, name: str, role: str, **kw) -> dict:
    return {"study_id": study, "arm": name, "arm_role": role, **kw}


def score(study: str, name: str, role: str, mean: float, sd: float | None, n: int, **kw) -> dict:
    row = arm(
        study, name, role, **{"outcome": "score", "stat_kind": "final", "mean": mean, "n": n, **kw}
    )
    if sd is not None:
        row["sd"] = sd
    return row


def binary(study: str, name: str, role: str, events: int, n: int, **kw) -> dict:
    return arm(study, name, role, **{"outcome": "response", "events": events, "n": n, **kw})


def ids(df: pd.DataFrame) -> set[str]:
    return set(df["source_file"] + ":" + df["source_row"].astype(str))


def used_ids(effects: pd.DataFrame) -> list[str]:
    """Input rows of the effects, from the structured source_rows (not by splitting row_ids)."""
    return [f"{r['source_file']}:{r['source_row']}" for refs in effects[SOURCE_ROWS] for r in refs]


def assert_accounting(rows: pd.DataFrame, effects: pd.DataFrame, excl: pd.DataFrame) -> None:
    """Every input row: used in >= 1 effect row XOR in exactly one exclusion row."""
    used = set(used_ids(effects))
    excluded = list(excl["source_file"] + ":" + excl["source_row"].astype(str))
    assert len(excluded) == len(set(excluded))
    assert used.isdisjoint(excluded)
    assert used | set(excluded) == ids(rows)


def run(rows: pd.DataFrame, **kw) -> tuple[pd.DataFrame, pd.DataFrame]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning may leak: problems become exclusions
        effects, excl = compute_effects(rows, **kw)
    assert list(effects.columns) == [*EFFECT_COLUMNS, SOURCE_ROWS]
    assert list(excl.columns) == list(EXCLUSION_COLUMNS)
    assert_accounting(rows, effects, excl)
    assert np.isfinite(effects["yi"].to_numpy(float)).all()
    assert np.isfinite(effects["vi"].to_numpy(float)).all()
    return effects, excl


def reason_of(excl: pd.DataFrame, row: int) -> str:
    return excl.loc[excl["source_row"] == row, "reason"].item()


# ---------------------------------------------------------------------------------------------
# continuous outcomes
# ---------------------------------------------------------------------------------------------
def test_parallel_smd_with_sd_from_ci_hand_checked() -> None:
    rows = sheet(
        score("A", "ketamine", "treatment", 20, 8, 20),
        score("A", "saline", "control", 28, None, 20, ci_low=24.0, ci_high=32.0),
    )
    eff, excl = run(rows)
    assert excl.empty and len(eff) == 1
    e = eff.iloc[0]
    # SD(saline) = sqrt(20) * 8 / (2 * t_{19,.975} = 2.0930240544083087) = 8.54674545298303
    # sp = sqrt((19*64 + 19*8.546745^2)/38) = 8.277887950379798; d = -8/8.277888 = -0.96643009
    # g = J(38) d = 0.9801104021309504 * -0.96643009 = -0.9472081845089309 -> flipped +0.94720818
    # vi = 1/20 + 1/20 + g^2/80 = 0.1 + 0.897203/80 = 0.11121504181000881
    assert e["yi"] == pytest.approx(0.9472081845089309, rel=1e-12)
    assert e["vi"] == pytest.approx(0.11121504181000881, rel=1e-12)
    assert e["sei"] == pytest.approx(math.sqrt(0.11121504181000881), rel=1e-12)
    assert e["measure"] == "SMD" and e["comparison_id"] == "A"
    assert (e["n_treatment"], e["n_control"], e["n_total"]) == (20, 20, 40)
    assert e["flags"] == "sd_from_ci"
    assert e["derivation"] == (
        "Hedges' g from final means/SDs; SD of saline arm from 95% CI (t, df=n-1); "
        "sign flipped (lower score is better)"
    )
    assert e["row_ids"] == "sheet.csv:2;sheet.csv:3"
    for col in schema.ATTRIBUTE_COLUMNS:
        assert e[col] == STUDY[col]


def test_sd_from_se_flag_and_value() -> None:
    rows = sheet(
        score("A", "ketamine", "treatment", 20, None, 25, se=2.0),  # SD = 2 * 5 = 10
        score("A", "saline", "control", 26, 10, 25),
    )
    eff, _ = run(rows)
    yi, vi = smd(20, 10, 25, 26, 10, 25)
    assert eff["yi"].item() == pytest.approx(-yi.item(), rel=1e-12)
    assert eff["vi"].item() == pytest.approx(vi.item(), rel=1e-12)
    assert eff["flags"].item() == "sd_from_se"
    assert "SD of ketamine arm from SE x sqrt(n)" in eff["derivation"].item()


def test_orientation() -> None:
    # same data; lower_is_better yes -> flipped, no -> not, empty -> default
    rows = sheet(
        score("Y", "k", "treatment", 20, 10, 25, lower_is_better="yes"),
        score("Y", "p", "control", 26, 10, 25, lower_is_better="yes"),
        score("N", "k", "treatment", 20, 10, 25, lower_is_better="no"),
        score("N", "p", "control", 26, 10, 25, lower_is_better="no"),
        score("D", "k", "treatment", 20, 10, 25, lower_is_better=""),
        score("D", "p", "control", 26, 10, 25, lower_is_better=""),
        binary("B", "k", "treatment", 10, 20, lower_is_better="yes"),
        binary("B", "p", "control", 5, 20, lower_is_better="yes"),
    )
    # raw g(treatment - control) = J(48) * (-6 / 10) = 0.9842794262959235 * -0.6 = -0.59056766
    raw = -0.6 * 0.9842794262959235
    for default, d_sign in ((True, -1), (False, 1)):
        eff, _ = run(rows, lower_is_better_default=default)
        smd_y = eff.set_index("study_id").loc[["Y", "N", "D"]].query("measure == 'SMD'")["yi"]
        np.testing.assert_allclose(smd_y.to_numpy(), [-raw, raw, d_sign * raw], rtol=1e-12)
        # more responders on treatment = benefit, never flipped: log OR = log(1 * 15/5) = log 3
        or_y = eff.query("study_id == 'B' and measure == 'OR'")["yi"].item()
        assert or_y == pytest.approx(math.log(3), rel=1e-12)


def test_crossover_paired_r_assumed_and_reported() -> None:
    xo = {"design": "crossover", "period": "all"}
    rows = sheet(
        score("C", "ketamine", "treatment", 15, 7, 18, **xo),
        score("C", "placebo", "control", 22, 8, 18, **xo),
        score("R", "ketamine", "treatment", 15, 7, 18, r_within=0.7, **xo),
        score("R", "placebo", "control", 22, 8, 18, r_within=0.7, **xo),
    )
    eff, _ = run(rows)
    eff = eff.set_index("study_id")
    # hand check (see test_effect_sizes): sp = sqrt(56.5), g = J(17) * -7/7.516648 = -0.88946301
    # r = 0.5: vi = (1/18 + g^2/36) * 1 = 0.07753179027512898; r = 0.7: * 0.6 = 0.0465190741650774
    assert eff.loc["C", "yi"] == pytest.approx(0.8894630121059802, rel=1e-12)
    assert eff.loc["C", "vi"] == pytest.approx(0.07753179027512898, rel=1e-12)
    assert eff.loc["R", "vi"] == pytest.approx(0.0465190741650774, rel=1e-12)
    assert eff.loc["C", "flags"] == "crossover_r_assumed=0.5"
    assert eff.loc["R", "flags"] == "crossover_r_reported=0.7"
    assert eff.loc["C", "n_total"] == 18  # participants, not 36
    assert "paired (J with n-1 df)" in eff.loc["C", "derivation"]
    # configured r is used and recorded
    eff2, _ = run(rows, crossover_r=0.3)
    c = eff2.set_index("study_id").loc["C"]
    assert c["flags"] == "crossover_r_assumed=0.3"
    assert c["vi"] == pytest.approx(0.07753179027512898 * 1.4, rel=1e-12)


def test_crossover_unequal_n_and_multi_arm_flags() -> None:
    xo = {"design": "crossover", "period": "all"}
    rows = sheet(
        score("C", "ketamine", "treatment", 15, 7, 18, **xo),
        score("C", "esketamine", "treatment", 17, 7, 17, time_hours=26.0, **xo),
        score("C", "placebo", "control", 22, 8, 18, **xo),
    )
    eff, _ = run(rows)
    e = eff.set_index("comparison_id")
    # paired analysis uses n = min(17, 18) = 17; the shared control is not split (same people)
    assert e.loc["C / esketamine", "n_total"] == 17
    assert e.loc["C / esketamine", "flags"] == (
        "crossover_r_assumed=0.5;crossover_n_differs_min_used;"
        "crossover_shared_control_not_split;time_hours_differ_between_arms"
    )
    assert e.loc["C / ketamine", "flags"] == (
        "crossover_r_assumed=0.5;crossover_shared_control_not_split"
    )
    assert e.loc["C / ketamine", "yi"] == pytest.approx(0.8894630121059802, rel=1e-12)
    assert e.loc["C / esketamine", "time_hours"] == 26.0  # treatment arm's time


def test_crossover_first_period_is_parallel() -> None:
    first = {"design": "crossover", "period": "first"}
    rows = sheet(
        score("F", "ketamine", "treatment", 15, 7, 9, **first),
        score("F", "placebo", "control", 22, 8, 9, **first),
    )
    eff, _ = run(rows)
    yi, vi = smd(15, 7, 9, 22, 8, 9)
    assert eff["yi"].item() == pytest.approx(-yi.item(), rel=1e-12)
    assert eff["vi"].item() == pytest.approx(vi.item(), rel=1e-12)
    assert eff["flags"].item() == "crossover_first_period_as_parallel"
    assert eff["n_total"].item() == 18


def test_multi_arm_shared_control_continuous_hand_checked() -> None:
    rows = sheet(
        score("M", "ketamine 0.5", "treatment", -10, 10, 25, stat_kind="change"),
        score("M", "ketamine 1.0", "treatment", -12, 9, 25, stat_kind="change"),
        score("M", "placebo", "control", -4, 9, 30, stat_kind="change"),
    )
    eff, excl = run(rows)
    assert excl.empty
    eff = eff.set_index("comparison_id")
    assert list(eff.index) == ["M / ketamine 0.5", "M / ketamine 1.0"]
    # control n 30 split 2 ways -> 15 (mean and SD unchanged)
    # arm 1: sp = sqrt((24*100 + 14*81)/38) = 9.643650760992955; d = -6/9.64365 = -0.62217102
    #        g = J(38) d = -0.6097962855075646 -> +0.6097963; vi = 1/25 + 1/15 + g^2/80 = 0.1113148
    # arm 2: sp = 9; d = -8/9; g = -0.8712092463386225; vi = 0.11615423605299054
    np.testing.assert_allclose(eff["yi"], [0.6097962855075646, 0.8712092463386225], rtol=1e-12)
    np.testing.assert_allclose(eff["vi"], [0.11131481053940195, 0.11615423605299054], rtol=1e-12)
    assert eff["n_control"].tolist() == [15, 15]
    assert eff["n_total"].tolist() == [40, 40]
    assert all(f == "change_scores;control_split_2_ways" for f in eff["flags"])
    assert eff["row_ids"].tolist() == ["sheet.csv:2;sheet.csv:4", "sheet.csv:3;sheet.csv:4"]


def test_multi_arm_shared_control_binary_events_split() -> None:
    rows = sheet(
        binary("M", "k1", "treatment", 8, 20),
        binary("M", "k2", "treatment", 12, 20),
        binary("M", "k3", "treatment", 3, 20),
        binary("M", "placebo", "control", 6, 30),
    )
    eff, _ = run(rows)
    # control 6/30 split 3 ways -> 2/10 (risk 0.2 unchanged)
    # k1 OR = (8/12)/(2/8): log = 0.9808292530117262; vi = 1/8 + 1/12 + 1/2 + 1/8 = 0.8333333
    k1 = eff.query("comparison_id == 'M / k1' and measure == 'OR'").iloc[0]
    assert k1["yi"] == pytest.approx(0.9808292530117262, rel=1e-12)
    assert k1["vi"] == pytest.approx(0.8333333333333333, rel=1e-12)
    for measure, fn in (("OR", log_odds_ratio), ("RR", log_risk_ratio)):
        sub = eff[eff["measure"] == measure]
        res = fn([8, 12, 3], [20, 20, 20], 2, 10)
        np.testing.assert_allclose(sub["yi"], res.yi, rtol=1e-12)
        np.testing.assert_allclose(sub["vi"], res.vi, rtol=1e-12)
        assert (sub["n_control"] == 10).all()
        assert all("control_split_3_ways" in f for f in sub["flags"])
        assert all("events split 3 ways" in d for d in sub["derivation"])


def test_binary_zero_cell_flag() -> None:
    rows = sheet(binary("Z", "k", "treatment", 10, 20), binary("Z", "p", "control", 0, 20))
    eff, _ = run(rows)
    o = eff.set_index("measure")
    # cells 10.5, 10.5, 0.5, 20.5: log OR = log 41 = 3.713572066704308; log RR = log 21
    assert o.loc["OR", "yi"] == pytest.approx(3.713572066704308, rel=1e-12)
    assert o.loc["RR", "yi"] == pytest.approx(math.log(21), rel=1e-12)
    assert (eff["flags"] == "zero_cell_correction").all()


def test_binary_crossover_analysed_as_parallel() -> None:
    xo = {"design": "crossover", "period": "all"}
    rows = sheet(
        binary("X", "k", "treatment", 9, 18, **xo), binary("X", "p", "control", 3, 18, **xo)
    )
    eff, _ = run(rows)
    res = log_odds_ratio(9, 18, 3, 18)
    assert eff.query("measure == 'OR'")["yi"].item() == pytest.approx(res.yi.item(), rel=1e-12)
    assert (eff["flags"] == "crossover_binary_as_parallel").all()


def test_final_preferred_over_change() -> None:
    rows = sheet(
        score("P", "k", "treatment", 20, 10, 25),
        score("P", "p", "control", 26, 10, 25),
        score("P", "k", "treatment", -12, 9, 25, stat_kind="change"),
        score("P", "p", "control", -5, 9, 25, stat_kind="change"),
    )
    eff, excl = run(rows)
    assert eff["stat_kind"].tolist() == ["final"]
    assert set(excl["reason"]) == {schema.R_CHANGE} and len(excl) == 2


def test_change_scores_used_when_only_they_pair() -> None:
    rows = sheet(
        score("P", "k", "treatment", 20, 10, 25),  # final only in treatment arm
        score("P", "k", "treatment", -12, 9, 25, stat_kind="change"),
        score("P", "p", "control", -5, 9, 25, stat_kind="change"),
    )
    eff, excl = run(rows)
    assert eff["flags"].item() == "change_scores"
    assert reason_of(excl, 2) == schema.R_NO_USABLE_CTRL


# ---------------------------------------------------------------------------------------------
# precomputed contrasts
# ---------------------------------------------------------------------------------------------
def test_contrast_g_with_se_and_ci() -> None:
    rows = sheet(
        arm(
            "G", "k", "contrast", outcome="score", effect=-0.8, effect_type="g", effect_se=0.3, n=40
        ),
        arm(
            "H",
            "k",
            "contrast",
            outcome="score",
            effect=-0.8,
            effect_type="g",
            effect_ci_low=-1.2,
            effect_ci_high=-0.4,
            n=40,
        ),
        arm(
            "V",
            "k",
            "contrast",
            outcome="score",
            effect=0.5,
            effect_type="g",
            effect_var=0.04,
            n=40,
            lower_is_better="no",
        ),
    )
    eff, _ = run(rows)
    e = eff.set_index("study_id")
    # G: -0.8 flipped -> 0.8; vi = 0.3^2 = 0.09
    assert (e.loc["G", "yi"], e.loc["G", "vi"]) == (pytest.approx(0.8), pytest.approx(0.09))
    # H: se = 0.8 / (2 * 1.959963984540054) -> vi = 0.04165084346032092
    assert e.loc["H", "vi"] == pytest.approx(0.04165084346032092, rel=1e-12)
    assert e.loc["H", "derivation"].startswith(
        "precomputed Hedges' g; variance from reported 95% CI"
    )
    # V: higher is better, not flipped
    assert (e.loc["V", "yi"], e.loc["V", "vi"]) == (pytest.approx(0.5), pytest.approx(0.04))
    assert (e["flags"] == "precomputed_contrast").all()
    assert e.loc["G", "n_total"] == 40


def test_contrast_d_and_t_conversions() -> None:
    rows = sheet(
        arm(
            "D",
            "k",
            "contrast",
            outcome="score",
            effect=0.5,
            effect_type="d",
            n_treatment=10,
            n_control=12,
            n=22,
            lower_is_better="no",
        ),
        arm(
            "E",
            "k",
            "contrast",
            outcome="score",
            effect=0.5,
            effect_type="d",
            effect_se=0.4,
            n_treatment=10,
            n_control=12,
            n=22,
            lower_is_better="no",
        ),
        arm("T", "k", "contrast", outcome="score", t_stat=-2.1, n_treatment=10, n_control=12, n=22),
    )
    eff, _ = run(rows)
    e = eff.set_index("study_id")
    yi, vi = smd_from_d(0.5, 10, 12)  # metafor golden: 0.48097226687037381, 0.18859093154920667
    assert e.loc["D", "yi"] == pytest.approx(0.48097226687037381, rel=1e-12)
    assert e.loc["D", "vi"] == pytest.approx(0.18859093154920667, rel=1e-12)
    assert e.loc["D", "flags"] == (
        "precomputed_contrast;d_converted_to_g;variance_from_effect_and_n"
    )
    # E: reported SE of d: var(g) = J^2 var(d) = (0.48097227/0.5)^2 * 0.16
    assert e.loc["E", "yi"] == pytest.approx(yi.item(), rel=1e-12)
    assert e.loc["E", "vi"] == pytest.approx((yi.item() / 0.5) ** 2 * 0.16, rel=1e-12)
    # T: t = -2.1 (treatment minus control), lower is better -> +0.86494808845728433 (metafor ti)
    assert e.loc["T", "yi"] == pytest.approx(0.86494808845728433, rel=1e-12)
    assert e.loc["T", "vi"] == pytest.approx(0.20033640596346766, rel=1e-12)
    assert e.loc["T", "flags"] == "precomputed_contrast;g_from_t"


def test_contrast_superseded_by_arm_data() -> None:
    rows = sheet(
        score("A", "k", "treatment", 20, 10, 25),
        score("A", "p", "control", 26, 10, 25),
        arm(
            "A", "k", "contrast", outcome="score", effect=-0.6, effect_type="g", effect_se=0.3, n=50
        ),
    )
    eff, excl = run(rows)
    assert len(eff) == 1 and eff["flags"].item() == ""
    assert reason_of(excl, 4) == schema.R_C_USED_ARMS


# ---------------------------------------------------------------------------------------------
# exclusions: one test per reason
# ---------------------------------------------------------------------------------------------
OK_T = score("S", "k", "treatment", 20, 10, 25)
OK_C = score("S", "p", "control", 26, 10, 25)

EXCLUSION_CASES = {
    # name: (rows, {source_row: reason})
    "no control": ([OK_T], {2: schema.R_NO_CTRL}),
    "no treatment": ([OK_C], {2: schema.R_NO_TREAT}),
    "sd missing": (
        [OK_T, score("S", "p", "control", 26, None, 25)],
        {2: schema.R_NO_USABLE_CTRL, 3: "SD missing and no SE or CI to recover it"},
    ),
    "sd missing in treatment": (
        [score("S", "k", "treatment", 20, None, 25), OK_C],
        {2: "SD missing and no SE or CI to recover it", 3: schema.R_NO_USABLE_TREAT},
    ),
    "mean missing": (
        [OK_T, {**OK_C, "mean": np.nan}],
        {2: schema.R_NO_USABLE_CTRL, 3: schema.R_MEAN},
    ),
    "n missing": ([OK_T, {**OK_C, "n": np.nan}], {2: schema.R_NO_USABLE_CTRL, 3: schema.R_N}),
    "stat_kind missing": (
        [OK_T, {**OK_C, "stat_kind": ""}],
        {2: schema.R_NO_USABLE_CTRL, 3: schema.R_KIND},
    ),
    "events missing": (
        [binary("S", "k", "treatment", 5, 20), arm("S", "p", "control", outcome="response", n=20)],
        {2: schema.R_NO_USABLE_CTRL, 3: schema.R_EVENTS},
    ),
    "events above n": (
        [binary("S", "k", "treatment", 25, 20), binary("S", "p", "control", 5, 20)],
        {2: schema.R_EVENTS_RANGE, 3: schema.R_NO_USABLE_TREAT},
    ),
    "double zero": (
        [binary("S", "k", "treatment", 0, 20), binary("S", "p", "control", 0, 20)],
        {2: "double-zero study: no information on the OR (metafor drop00)", 3: schema.R_DZ},
    ),
    "double all-events": (
        [binary("S", "k", "treatment", 20, 20), binary("S", "p", "control", 15, 15)],
        {2: schema.R_DZ, 3: schema.R_DZ},
    ),
    "non-finite": (
        [score("S", "k", "treatment", 20, 10, 1), score("S", "p", "control", 26, 10, 1)],
        {2: schema.R_NONFINITE, 3: schema.R_NONFINITE},
    ),
    "zero SDs": (
        [score("S", "k", "treatment", 20, 0, 10), score("S", "p", "control", 26, 0, 10)],
        {2: schema.R_NONFINITE, 3: schema.R_NONFINITE},
    ),
    "two controls": (
        [OK_T, OK_C, score("S", "midazolam", "control", 24, 10, 25)],
        {2: schema.R_MULTI_CTRL, 3: schema.R_MULTI_CTRL, 4: schema.R_MULTI_CTRL},
    ),
    "secondary superseded": (
        [OK_T, OK_C, {**OK_C, "source_type": "secondary", "mean": 27}],
        {4: schema.R_SUPERSEDED},
    ),
    "ambiguous duplicate": (
        [OK_T, OK_C, {**OK_C, "mean": 27}],
        {2: schema.R_NO_USABLE_CTRL, 3: schema.R_DUP, 4: schema.R_DUP},
    ),
    "bad role": ([OK_T, OK_C, {**OK_C, "arm_role": "placebo"}], {4: schema.R_ROLE}),
    "bad outcome": ([OK_T, OK_C, {**OK_C, "outcome": "dropout"}], {4: schema.R_OUTCOME}),
    "bad design": (
        [{**OK_T, "design": "cluster"}, OK_C],
        {2: schema.R_DESIGN, 3: schema.R_NO_USABLE_TREAT},
    ),
    "crossover without period": (
        [{**OK_T, "design": "crossover", "period": ""}, {**OK_C, "design": "crossover"}],
        {2: schema.R_PERIOD, 3: schema.R_NO_USABLE_TREAT},
    ),
    "time missing": (
        [OK_T, {**OK_C, "time_hours": np.nan}],
        {2: schema.R_NO_USABLE_CTRL, 3: schema.R_TIME},
    ),
    "timepoint missing": (
        [OK_T, {**OK_C, "timepoint": ""}],
        {2: schema.R_NO_CTRL, 3: schema.R_KEYS},
    ),
    "r out of range": (
        [{**OK_T, "r_within": 1.5}, OK_C],
        {2: schema.R_R, 3: schema.R_NO_USABLE_TREAT},
    ),
    "contrast md": (
        [
            arm(
                "S",
                "k",
                "contrast",
                outcome="score",
                effect=-3.0,
                effect_type="md",
                effect_se=1.0,
                n=40,
            )
        ],
        {2: "mean difference without arm sizes: cannot standardise"},
    ),
    "contrast binary": (
        [
            arm(
                "S",
                "k",
                "contrast",
                outcome="response",
                effect=0.5,
                effect_type="g",
                effect_se=0.2,
                n=40,
            )
        ],
        {2: schema.R_C_OUTCOME},
    ),
    "contrast nothing": ([arm("S", "k", "contrast", outcome="score", n=40)], {2: schema.R_C_NONE}),
    "contrast t without n": (
        [arm("S", "k", "contrast", outcome="score", t_stat=2.0, n=40)],
        {2: schema.R_C_TN},
    ),
    "contrast d without n": (
        [
            arm(
                "S",
                "k",
                "contrast",
                outcome="score",
                effect=0.4,
                effect_type="d",
                effect_se=0.2,
                n=40,
            )
        ],
        {2: schema.R_C_DN},
    ),
    "contrast g without variance": (
        [arm("S", "k", "contrast", outcome="score", effect=0.4, effect_type="g", n=40)],
        {2: schema.R_C_VAR},
    ),
    "contrast unknown type": (
        [
            arm(
                "S",
                "k",
                "contrast",
                outcome="score",
                effect=0.4,
                effect_type="",
                effect_se=0.2,
                n=40,
            )
        ],
        {2: schema.R_C_TYPE},
    ),
}


@pytest.mark.parametrize("case", sorted(EXCLUSION_CASES))
def test_each_exclusion_reason(case: str) -> None:
    spec, expected = EXCLUSION_CASES[case]
    rows = sheet(*spec)
    eff, excl = run(rows)
    got = dict(zip(excl["source_row"], excl["reason"], strict=True))
    assert got == expected
    assert len(eff) == (1 if case in ("secondary superseded", "bad role", "bad outcome") else 0)
    if len(excl):
        assert (excl["study_id"] == "S").all() and (excl["source_file"] == "sheet.csv").all()


def test_missing_required_column_raises() -> None:
    rows = sheet(OK_T, OK_C).drop(columns=["timepoint"])
    with pytest.raises(ValueError, match="timepoint"):
        compute_effects(rows)


def test_duplicate_row_ids_raise() -> None:
    rows = sheet(OK_T, OK_C)
    rows["source_row"] = 2
    with pytest.raises(ValueError, match="not unique"):
        compute_effects(rows)


# ---------------------------------------------------------------------------------------------
# row accounting invariant, determinism
# ---------------------------------------------------------------------------------------------
def _mixed_sheet() -> pd.DataFrame:
    spec = []
    for cases in EXCLUSION_CASES.values():
        spec += cases[0]
    # rename studies so cases do not interact
    spec = [{**r, "study_id": f"S{i // 3}"} for i, r in enumerate(spec)]
    spec += [
        score("M", "k1", "treatment", -10, 10, 25),
        score("M", "k2", "treatment", -12, 9, 25),
        score("M", "p", "control", -4, 9, 30),
        binary("M", "k1", "treatment", 8, 20),
        binary("M", "k2", "treatment", 0, 20),
        binary("M", "p", "control", 0, 30),
        score("M", "k1", "treatment", -9, 10, 25, timepoint="7d", time_hours=168.0),
        score("M", "p", "control", -5, 9, 30, timepoint="7d", time_hours=168.0),
    ]
    return sheet(*spec)


def test_row_invariant_on_mixed_sheet() -> None:
    rows = _mixed_sheet()
    eff, excl = run(rows)  # run() asserts the invariant
    # shared binary control with one double-zero arm (k2 0/20 vs 0/30): k1 still uses the control
    m = eff.query("study_id == 'M' and outcome == 'response'")
    assert sorted(m["comparison_id"].unique()) == ["M / k1"]
    k2 = excl.query("study_id == 'M' and arm == 'k2' and outcome == 'response'")
    assert k2["reason"].item() == schema.R_DZ
    # one row id in several effect rows only for OR/RR pairs and shared controls
    counts = pd.Series(used_ids(eff)).value_counts()
    multi = set(counts[counts > 1].index)
    shared = {
        r
        for f, rid in zip(eff["flags"], eff["row_ids"], strict=True)
        for r in rid.split(";")
        if "control_split" in f or "crossover_shared" in f
    }
    binary_ids = set(used_ids(eff.query("outcome != 'score'")))
    assert multi <= shared | binary_ids


def test_deterministic_and_order_independent() -> None:
    rows = _mixed_sheet()
    a_eff, a_ex = run(rows)
    b_eff, b_ex = run(rows.sample(frac=1.0, random_state=7))
    pd.testing.assert_frame_equal(a_eff, b_eff)
    pd.testing.assert_frame_equal(a_ex, b_ex)


_row_strategy = st.fixed_dictionaries(
    {
        "study_id": st.sampled_from(["A", "B"]),
        "arm": st.sampled_from(["k1", "k2", "p"]),
        "arm_role": st.sampled_from(["treatment", "control", "contrast"]),
        "outcome": st.sampled_from(["score", "response"]),
        "stat_kind": st.sampled_from(["final", "change", ""]),
        "timepoint": st.sampled_from(["4h", "24h"]),
        "design": st.sampled_from(["parallel", "crossover"]),
        "period": st.sampled_from(["all", "first"]),
        "source_type": st.sampled_from(["primary", "secondary"]),
        "n": st.one_of(st.none(), st.integers(1, 60)),
        "mean": st.one_of(st.none(), st.floats(-30, 30)),
        "sd": st.one_of(st.none(), st.floats(0.5, 15)),
        "se": st.one_of(st.none(), st.floats(0.1, 3)),
        "events": st.one_of(st.none(), st.integers(0, 60)),
        "effect": st.one_of(st.none(), st.floats(-2, 2)),
        "effect_type": st.sampled_from(["g", "d", "md"]),
        "effect_se": st.one_of(st.none(), st.floats(0.05, 1)),
        "t_stat": st.one_of(st.none(), st.floats(-5, 5)),
        "n_treatment": st.one_of(st.none(), st.integers(2, 40)),
        "n_control": st.one_of(st.none(), st.integers(2, 40)),
    }
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_row_strategy, min_size=1, max_size=14))
def test_row_invariant_property(spec: list[dict]) -> None:
    rows = sheet(*[{k: (np.nan if v is None else v) for k, v in r.items()} for r in spec])
    rows["events"] = np.minimum(rows["events"], rows["n"])  # sheet validation guarantees this
    run(rows)  # asserts invariant, finite output, no leaked warnings


# ---------------------------------------------------------------------------------------------
# proportions
# ---------------------------------------------------------------------------------------------
def test_compute_proportions() -> None:
    rows = sheet(
        binary("A", "k", "treatment", 0, 20),
        binary("A", "p", "control", 3, 20),
        binary("B", "k1", "treatment", 5, 20),
        binary("B", "k2", "treatment", 20, 20, outcome="remission"),
        arm("B", "k3", "treatment", outcome="response", n=20),  # events missing
        score("B", "k1", "treatment", 20, 10, 20),
    )
    props, excl = compute_proportions(rows)
    assert list(props.columns) == list(PROPORTION_COLUMNS)
    p = props.set_index("comparison_id")
    # A: 0/20 -> (0.5)/(20.5): logit = log(0.5/20.5) = -3.713572066704308; vi = 2 + 1/20.5
    assert p.loc["A", "yi"] == pytest.approx(-3.713572066704308, rel=1e-12)
    assert p.loc["A", "vi"] == pytest.approx(2.048780487804878, rel=1e-12)
    assert p.loc["A", "flags"] == "zero_cell_correction" and p.loc["A", "proportion"] == 0.0
    # B / k1: 5/20 -> log(5/15) = -1.0986122886681098; vi = 1/5 + 1/15 = 0.26666667
    assert p.loc["B / k1", "yi"] == pytest.approx(-1.0986122886681098, rel=1e-12)
    assert p.loc["B / k1", "vi"] == pytest.approx(4 / 15, rel=1e-12)
    # B / k2: 20/20 -> log(20.5/0.5) = +3.713572066704308
    assert p.loc["B / k2", "yi"] == pytest.approx(3.713572066704308, rel=1e-12)
    assert p.loc["B / k2", "outcome"] == "remission"
    # candidate rows (treatment x response/remission) accounted exactly once
    assert excl[["source_row", "reason"]].values.tolist() == [[6, schema.R_EVENTS]]
    assert sorted(props["row_ids"]) == ["sheet.csv:2", "sheet.csv:4", "sheet.csv:5"]
