"""Precomputed contrasts: mean differences and effects without variance -> Hedges' g.

Hand-checked cases (arithmetic in comments) and metafor 3.8.1 golden values
(tests/fixtures/metafor/contrast_golden.R -> contrast_golden.json).
"""

from __future__ import annotations

import json
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from timecourse_meta import schema
from timecourse_meta.effects.comparisons import compute_effects
from timecourse_meta.effects.effect_sizes import (
    EffectSizeWarning,
    se_from_ci,
    smd_crossover_from_md_se,
    smd_from_md_se,
    smd_var_ls,
    var_from_ci,
)
from timecourse_meta.schema import EFFECT_COLUMNS, EXCLUSION_COLUMNS, SOURCE_ROWS

FIXTURES = Path(__file__).parent / "fixtures" / "metafor"
GOLDEN_JSON = FIXTURES / "contrast_golden.json"
GOLDEN_R = FIXTURES / "contrast_golden.R"
RTOL = 1e-10  # closed-form formulas: agree with metafor to rounding

BASE = {
    "citation": "Doe J et al. J Test 2020;1:1-2",
    "doi": "10.0000/test",
    "population": "unipolar",
    "trd": "yes",
    "concomitant_ad": "no",
    "control": "saline",
    "drug": "ketamine",
    "route": "iv",
    "dose": "0.5 mg/kg",
    "scale": "MADRS",
    "design": "parallel",
    "period": "all",
    "source_type": "primary",
    "lower_is_better": "yes",
    "timepoint": "24h",
    "time_hours": 24.0,
    "outcome": "score",
}
XO = {"design": "crossover", "period": "all"}


def sheet(*rows: dict) -> pd.DataFrame:
    df = pd.DataFrame([{**BASE, **r} for r in rows])
    df["source_file"] = "sheet.csv"
    df["source_row"] = np.arange(2, 2 + len(df))
    return df


def contrast(study: str, **kw) -> dict:
    return {"study_id": study, "arm": "k vs p", "arm_role": "contrast", **kw}


def md_row(study: str, md: float, **kw) -> dict:
    return contrast(study, effect=md, effect_type="md", **kw)


def run(rows: pd.DataFrame, **kw) -> tuple[pd.DataFrame, pd.DataFrame]:
    """compute_effects with no leaked warnings and the row-accounting invariant checked."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        effects, excl = compute_effects(rows, **kw)
    assert list(effects.columns) == [*EFFECT_COLUMNS, SOURCE_ROWS]
    assert list(excl.columns) == list(EXCLUSION_COLUMNS)
    used = {f"{r['source_file']}:{r['source_row']}" for refs in effects[SOURCE_ROWS] for r in refs}
    excluded = list(excl["source_file"] + ":" + excl["source_row"].astype(str))
    assert len(excluded) == len(set(excluded)) and used.isdisjoint(excluded)
    assert used | set(excluded) == set(rows["source_file"] + ":" + rows["source_row"].astype(str))
    assert np.isfinite(effects["yi"].to_numpy(float)).all()
    assert np.isfinite(effects["vi"].to_numpy(float)).all()
    return effects, excl


def one(rows: pd.DataFrame, **kw) -> pd.Series:
    eff, excl = run(rows, **kw)
    assert excl.empty and len(eff) == 1
    return eff.iloc[0]


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN_JSON.read_text(encoding="utf-8"))


def _a(values: list) -> np.ndarray:
    """JSON list (null = NA, "Inf" strings) to a float array."""
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


# ---------------------------------------------------------------------------------------------
# hand-checked cases
# ---------------------------------------------------------------------------------------------
def test_parallel_md_with_se_hand_checked() -> None:
    e = one(sheet(md_row("P", -6.0, effect_se=2.0, n_treatment=20, n_control=20)))
    # t = -6 / 2 = -3; d = t sqrt(1/20 + 1/20) = -3 sqrt(0.1) = -0.9486832980505138
    # (pooled SD = SE / sqrt(1/n1 + 1/n2) = 2 / 0.316228 = 6.324555; -6 / 6.324555 = same d)
    # g = J(38) d = 0.9801104021309504 * -0.94868330 = -0.9298143687472052 -> flipped +
    # vi = 1/20 + 1/20 + g^2 / 80 = 0.1 + 0.864554/80 = 0.11080693450410956
    assert e["yi"] == pytest.approx(0.9298143687472052, rel=1e-12)
    assert e["vi"] == pytest.approx(0.11080693450410956, rel=1e-12)
    assert e["flags"] == "precomputed_contrast;g_from_md_se"
    assert e["derivation"] == (
        "Hedges' g from mean difference and SE (t = MD/SE, metafor escalc SMD ti; "
        "Cochrane Handbook 6.5.2.3); SE of MD from reported SE; sign flipped (lower score is "
        "better)"
    )
    assert (e["n_treatment"], e["n_control"], e["n_total"], e["measure"]) == (20, 20, 40, "SMD")


def test_parallel_md_variance_equals_se_squared() -> None:
    # effect_var = 4 is SE = 2: same numbers as the SE case above
    e = one(sheet(md_row("P", -6.0, effect_var=4.0, n_treatment=20, n_control=20)))
    assert e["yi"] == pytest.approx(0.9298143687472052, rel=1e-12)
    assert "SE of MD from reported variance" in e["derivation"]


def test_parallel_md_with_ci_t_and_z() -> None:
    rows = sheet(
        md_row("T", -6.0, effect_ci_low=-10.0, effect_ci_high=-2.0, n_treatment=20, n_control=20),
        md_row("Z", -6.0, effect_ci_low=-10.0, effect_ci_high=-2.0, n_treatment=80, n_control=80),
    )
    eff, excl = run(rows)
    assert excl.empty
    e = eff.set_index("study_id")
    # T: both groups < 60 -> t with 20 + 20 - 2 = 38 df: q = 2.0243941639119694
    # se = 8 / (2 q) = 1.9758997883447464; t = -6 / se = -3.036591245867954
    # d = t sqrt(0.1) = -0.9602544659871097; g = J(38) d = -0.9411553908066671 -> flipped
    # vi = 0.1 + g^2/80 = 0.11107216837055564
    assert e.loc["T", "yi"] == pytest.approx(0.9411553908066671, rel=1e-12)
    assert e.loc["T", "vi"] == pytest.approx(0.11107216837055564, rel=1e-12)
    assert "SE of MD from reported 95% CI (t, df=38)" in e.loc["T", "derivation"]
    # Z: 80 per group -> normal quantile 1.959963984540054: se = 8/3.919928 = 2.0408538276986157
    # t = -2.939945976810081; d = t sqrt(2/80) = -0.4648462742284212
    # g = J(158) d = 0.9952443841592291 * d = -0.4626356439231772; vi = 2/80 + g^2/320
    #   = 0.025668849184463167
    assert e.loc["Z", "yi"] == pytest.approx(0.4626356439231772, rel=1e-12)
    assert e.loc["Z", "vi"] == pytest.approx(0.025668849184463167, rel=1e-12)
    assert "SE of MD from reported 95% CI (z)" in e.loc["Z", "derivation"]
    assert (e["flags"] == "precomputed_contrast;g_from_md_se;md_se_from_ci").all()


def test_crossover_md_with_ci_at_r_half_and_r_02() -> None:
    # Lapidus2014-like: MD -7.6 (95% CI -11.3 to -3.9), 18 participants, crossover
    row = md_row("X", -7.6, effect_ci_low=-11.3, effect_ci_high=-3.9, n_treatment=18, **XO)
    row["n_control"] = 18
    # n = 18 < 60 -> paired t with 17 df: q = 2.1098155778333156; se = 7.4/(2q) = 1.753707783
    # SD of differences = se sqrt(18) = 7.440351994396709
    # r = 0.5: within SD = 7.440352 / sqrt(1) = 7.440352; g = J(17) * -7.6 / 7.440352
    #   = 0.955111505613535 * -1.021457 = -0.9756053810531365 -> flipped
    #   vi = (1/18 + g^2/36) * 2(1 - 0.5) = 0.05555556 + 0.95180586/36 = 0.08199460720943988
    e = one(sheet(row))
    assert e["yi"] == pytest.approx(0.9756053810531365, rel=1e-12)
    assert e["vi"] == pytest.approx(0.08199460720943988, rel=1e-12)
    assert e["flags"] == (
        "precomputed_contrast;crossover_md_to_smd_r=0.5;crossover_r_assumed=0.5;md_se_from_ci"
    )
    assert (e["n_treatment"], e["n_control"], e["n_total"]) == (18, 18, 18)  # participants
    assert "SE of MD from reported 95% CI (t, df=17)" in e["derivation"]
    assert "r=0.5 assumed" in e["derivation"]
    # r = 0.2 (config): within SD = 7.440352 / sqrt(1.6) = 5.882114723917489
    #   g = J(17) * -7.6 / 5.882115 = -1.2340540406577574 -> flipped
    #   vi = (1/18 + g^2/36) * 1.6 = (0.05555556 + 1.52288938/36) * 1.6 = 0.1565728611228328
    e = one(sheet(row), crossover_r=0.2)
    assert e["yi"] == pytest.approx(1.2340540406577574, rel=1e-12)
    assert e["vi"] == pytest.approx(0.1565728611228328, rel=1e-12)
    assert "crossover_md_to_smd_r=0.2;crossover_r_assumed=0.2" in e["flags"]


def test_crossover_reported_r_overrides_config() -> None:
    row = md_row("X", -7.6, effect_ci_low=-11.3, effect_ci_high=-3.9, n=18, r_within=0.2, **XO)
    for config_r in (0.5, 0.8):
        e = one(sheet(row), crossover_r=config_r)
        assert e["yi"] == pytest.approx(1.2340540406577574, rel=1e-12)  # as r = 0.2 above
        assert "crossover_md_to_smd_r=0.2;crossover_r_reported=0.2" in e["flags"]
        assert "r=0.2 reported" in e["derivation"]
        # only n given: n_treatment / n_control are the participants
        assert (e["n_treatment"], e["n_control"], e["n_total"]) == (18, 18, 18)


def test_crossover_participant_count_rules() -> None:
    # n given: used even when the arm sizes differ; no n: the smaller arm size, flagged
    rows = sheet(
        md_row("N", -4.0, effect_se=1.5, n=24, n_treatment=25, n_control=26, **XO),
        md_row("M", -4.0, effect_se=1.5, n_treatment=25, n_control=24, **XO),
    )
    eff, _ = run(rows)
    e = eff.set_index("study_id")
    y24, v24 = smd_crossover_from_md_se(-4.0, 1.5, 24, 0.5)
    for s in ("N", "M"):
        assert (e.loc[s, "yi"], e.loc[s, "vi"]) == (
            pytest.approx(-y24.item(), rel=1e-12),
            pytest.approx(v24.item(), rel=1e-12),
        )
        assert e.loc[s, "n_total"] == 24
    assert "crossover_n_differs_min_used" not in e.loc["N", "flags"]
    assert e.loc["M", "flags"].endswith("crossover_n_differs_min_used")


def test_crossover_first_period_md_is_parallel() -> None:
    row = md_row("F", -6.0, effect_se=2.0, n_treatment=20, n_control=20, design="crossover")
    e = one(sheet({**row, "period": "first"}))
    assert e["yi"] == pytest.approx(0.9298143687472052, rel=1e-12)  # = parallel case
    assert e["flags"] == "precomputed_contrast;g_from_md_se"


def test_md_orientation_higher_is_better() -> None:
    e = one(
        sheet(md_row("H", -6.0, effect_se=2.0, n_treatment=20, n_control=20, lower_is_better="no"))
    )
    assert e["yi"] == pytest.approx(-0.9298143687472052, rel=1e-12)  # not flipped
    assert "sign flipped" not in e["derivation"]


def test_d_without_variance_hand_checked() -> None:
    # Fava2018-like: d = -0.82, 18 vs 19. J(35) = 0.97839123749972
    # g = 0.97839124 * -0.82 = -0.8022808147497703 -> flipped
    # vi = 1/18 + 1/19 + g^2 / (2 * 37) = 0.0555556 + 0.0526316 + 0.643654/74 = 0.11688516836394498
    e = one(sheet(contrast("D", effect=-0.82, effect_type="d", n_treatment=18, n_control=19)))
    assert e["yi"] == pytest.approx(0.8022808147497703, rel=1e-12)
    assert e["vi"] == pytest.approx(0.11688516836394498, rel=1e-12)
    assert e["flags"] == "precomputed_contrast;d_converted_to_g;variance_from_effect_and_n"
    assert "variance from effect and arm sizes" in e["derivation"]


def test_g_without_variance_hand_checked() -> None:
    # vi = 1/20 + 1/25 + 0.4^2 / (2 * 45) = 0.05 + 0.04 + 0.16/90 = 0.09177777777777778
    e = one(
        sheet(
            contrast(
                "G", effect=0.4, effect_type="g", n_treatment=20, n_control=25, lower_is_better="no"
            )
        )
    )
    assert (e["yi"], e["vi"]) == (0.4, pytest.approx(0.09177777777777778, rel=1e-12))
    assert e["flags"] == "precomputed_contrast;variance_from_effect_and_n"
    assert smd_var_ls(0.4, 20, 25).item() == pytest.approx(0.09177777777777778, rel=1e-12)


# ---------------------------------------------------------------------------------------------
# exclusions
# ---------------------------------------------------------------------------------------------
EXCLUDED = {
    "md without arm sizes": (md_row("S", -3.0, effect_se=1.0, n=40), schema.R_C_MD_N),
    "md with one arm size": (
        md_row("S", -3.0, effect_se=1.0, n_treatment=20, n=40),
        schema.R_C_MD_N,
    ),
    "crossover md without n": (md_row("S", -3.0, effect_se=1.0, **XO), schema.R_C_MD_N),
    "first-period md with n only": (
        md_row("S", -3.0, effect_se=1.0, n=40, design="crossover", period="first"),
        schema.R_C_MD_N,
    ),
    "md without uncertainty": (
        md_row("S", -3.0, n_treatment=20, n_control=20),
        schema.R_C_MD_UNC,
    ),
    "crossover md with r = 1": (
        md_row("S", -3.0, effect_se=1.0, n=20, r_within=1.0, **XO),
        schema.R_NONFINITE,
    ),
    "crossover md with n = 2 (J undefined)": (
        md_row("S", -3.0, effect_se=1.0, n=2, **XO),
        schema.R_NONFINITE,
    ),
    "md of a binary outcome": (
        md_row("S", -3.0, effect_se=1.0, n_treatment=20, n_control=20, outcome="response"),
        schema.R_C_OUTCOME,
    ),
}


@pytest.mark.parametrize("case", sorted(EXCLUDED))
def test_contrast_exclusion_reasons(case: str) -> None:
    row, reason = EXCLUDED[case]
    eff, excl = run(sheet(row))
    assert eff.empty
    assert excl[["source_row", "reason"]].values.tolist() == [[2, reason]]


def test_exclusion_reason_texts() -> None:
    assert schema.R_C_MD_N == "mean difference without arm sizes: cannot standardise"
    assert schema.R_C_MD_UNC == "mean difference without SE, variance or CI: cannot standardise"


def test_md_contrast_superseded_by_arm_data() -> None:
    arm = {"outcome": "score", "stat_kind": "final", "sd": 10.0, "n": 25}
    rows = sheet(
        {"study_id": "A", "arm": "k", "arm_role": "treatment", "mean": 20.0, **arm},
        {"study_id": "A", "arm": "p", "arm_role": "control", "mean": 26.0, **arm},
        md_row("A", -6.0, effect_se=2.8, n_treatment=25, n_control=25),
    )
    eff, excl = run(rows)
    assert len(eff) == 1 and "precomputed_contrast" not in eff["flags"].item()
    assert excl[["source_row", "reason"]].values.tolist() == [[4, schema.R_C_USED_ARMS]]


# ---------------------------------------------------------------------------------------------
# array functions
# ---------------------------------------------------------------------------------------------
def test_se_from_ci_quantiles() -> None:
    # normal: equals sqrt(var_from_ci); t with 17 df: 7.4 / (2 * 2.1098155778333156)
    assert se_from_ci(-1.0, 1.0).item() == pytest.approx(np.sqrt(var_from_ci(-1, 1)), rel=1e-14)
    assert se_from_ci(-11.3, -3.9, 0.95, 17).item() == pytest.approx(1.753707783217589, rel=1e-12)
    # 90% z CI: 2 / (2 * 1.6448536269514722)
    assert se_from_ci(0, 2, 0.9).item() == pytest.approx(1 / 1.6448536269514722, rel=1e-12)
    assert np.isnan(se_from_ci(0.0, 1.0, 0.95, 0)).all()  # t with 0 df undefined
    with pytest.raises(ValueError):
        se_from_ci(1.0, 0.0)
    with pytest.raises(ValueError):
        se_from_ci(0.0, 1.0, 1.0)


def test_md_functions_nan_is_never_silent() -> None:
    with pytest.warns(EffectSizeWarning):
        yi, vi = smd_crossover_from_md_se([-3.0, -3.0], 1.0, 20, [0.5, 1.0])
    assert np.isfinite(yi[0]) and np.isnan(yi[1]) and np.isnan(vi[1])
    with pytest.warns(EffectSizeWarning):
        yi, _ = smd_from_md_se(-3.0, 0.0, 20, 20)
    assert np.isnan(yi).all()
    with pytest.raises(ValueError):
        smd_from_md_se(-3.0, -1.0, 20, 20)
    with pytest.raises(ValueError):
        smd_crossover_from_md_se(-3.0, 1.0, 20, 1.5)


# ---------------------------------------------------------------------------------------------
# metafor golden values
# ---------------------------------------------------------------------------------------------
def test_fixture_is_from_metafor_381(golden: dict) -> None:
    assert golden["metafor_version"] == "3.8.1"


def test_md_parallel_matches_metafor_ti(golden: dict) -> None:
    g = golden["md_parallel"]
    yi, vi = smd_from_md_se(g["md"], _a(g["sei"]), g["n1i"], g["n2i"])
    np.testing.assert_allclose(yi, g["yi"], rtol=RTOL)
    np.testing.assert_allclose(vi, g["vi"], rtol=RTOL)
    # the same inputs as sheet rows (SE or CI + level), through compute_effects
    rows = []
    for i, md in enumerate(g["md"]):
        r = md_row(f"S{i}", md, n_treatment=g["n1i"][i], n_control=g["n2i"][i])
        r["lower_is_better"] = "no"
        r["ci_level"] = g["ci_level"][i]
        if g["se_reported"][i] is not None:
            r["effect_se"] = g["se_reported"][i]
        else:
            r["effect_ci_low"], r["effect_ci_high"] = g["ci_low"][i], g["ci_high"][i]
        rows.append(r)
    eff, _ = run(sheet(*rows))
    eff = eff.set_index("study_id").loc[[f"S{i}" for i in range(len(rows))]]
    np.testing.assert_allclose(eff["yi"], g["yi"], rtol=RTOL)
    np.testing.assert_allclose(eff["vi"], g["vi"], rtol=RTOL)


def test_md_crossover_matches_metafor_smcr_smcc(golden: dict) -> None:
    g = golden["md_crossover"]
    r = np.array(g["r"])
    yi, vi = smd_crossover_from_md_se(g["md"], g["sei"], g["n"], r)
    # yi = SMCR yi (standardiser = within-condition SD) for every r
    np.testing.assert_allclose(yi, g["smcr_yi"], rtol=RTOL)
    # SMCC standardises by the SD of differences = SD sqrt(2(1 - r))
    np.testing.assert_allclose(yi / np.sqrt(2 * (1 - r)), g["smcc_yi"], rtol=RTOL)
    # at r = 0.5 the variances coincide with both metafor measures
    half = r == 0.5
    np.testing.assert_allclose(vi[half], _a(g["smcr_vi"])[half], rtol=RTOL)
    np.testing.assert_allclose(vi[half], _a(g["smcc_vi"])[half], rtol=RTOL)
    # elsewhere ours = (1/n + g^2/(2n)) 2(1-r), SMCR's = 2(1-r)/n + g^2/(2n)
    n = np.array(g["n"], dtype=float)
    np.testing.assert_allclose(vi, (1 / n + yi**2 / (2 * n)) * 2 * (1 - r), rtol=1e-14)


def test_md_crossover_sheet_row_over_r_matches_metafor(golden: dict) -> None:
    """The Lapidus2014 row (CI) through compute_effects at each r = the sensitivity re-runs."""
    g = golden["md_crossover"]
    lo, hi, level, df = g["lapidus_ci"]
    row = md_row("L", -7.6, effect_ci_low=lo, effect_ci_high=hi, ci_level=level, n=18, **XO)
    for i, (md, n, r) in enumerate(zip(g["md"], g["n"], g["r"], strict=True)):
        if md != -7.6 or n != 18:
            continue
        assert df == n - 1  # the fixture applied the paired n - 1 df rule
        e = one(sheet(row), crossover_r=r)
        assert e["yi"] == pytest.approx(-g["smcr_yi"][i], rel=RTOL)  # MADRS: flipped
        if r == 0.5:
            assert e["vi"] == pytest.approx(g["smcr_vi"][i], rel=RTOL)


def test_d_and_g_without_variance_match_metafor(golden: dict) -> None:
    rows = []
    for key, etype in (("d_no_var", "d"), ("g_no_var", "g")):
        b = golden[key]
        effects = b["di"] if etype == "d" else b["gi"]
        for i, x in enumerate(effects):
            rows.append(
                contrast(
                    f"{etype}{i}",
                    effect=x,
                    effect_type=etype,
                    n_treatment=b["n1i"][i],
                    n_control=b["n2i"][i],
                    lower_is_better="no",
                )
            )
    eff, _ = run(sheet(*rows))
    e = eff.set_index("study_id")
    for key, etype in (("d_no_var", "d"), ("g_no_var", "g")):
        b = golden[key]
        sid = [f"{etype}{i}" for i in range(len(b["yi"]))]
        np.testing.assert_allclose(e.loc[sid, "yi"], b["yi"], rtol=RTOL)
        np.testing.assert_allclose(e.loc[sid, "vi"], b["vi"], rtol=RTOL)
    g = golden["g_no_var"]
    np.testing.assert_allclose(smd_var_ls(g["gi"], g["n1i"], g["n2i"]), g["vi"], rtol=RTOL)


@pytest.mark.slow
@pytest.mark.skipif(not GOLDEN_R.exists(), reason="R script missing")
def test_golden_fixture_regenerates_identically(require_metafor: None, tmp_path: Path) -> None:
    """Live: rerun the committed R script and compare with the committed JSON."""
    out = tmp_path / "golden.json"
    subprocess.run(
        ["Rscript", "--vanilla", str(GOLDEN_R), str(out)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    fresh = json.loads(out.read_text(encoding="utf-8"))
    committed = json.loads(GOLDEN_JSON.read_text(encoding="utf-8"))
    fresh.pop("r_version"), committed.pop("r_version")
    assert fresh.keys() == committed.keys()
    for key, block in committed.items():
        if isinstance(block, str):
            assert fresh[key] == block
            continue
        for field, values in block.items():
            np.testing.assert_allclose(
                _a(fresh[key][field]), _a(values), rtol=1e-13, err_msg=f"{key}.{field}"
            )
