"""Effect-size formulas vs metafor 3.8.1 escalc (golden JSON) and hand-checked cases."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest

from timecourse_meta.effects.binary_effects import (
    expit,
    log_odds_ratio,
    log_risk_ratio,
    logit_proportion,
)
from timecourse_meta.effects.effect_sizes import (
    EffectSizeWarning,
    hedges_j,
    orient,
    smd,
    smd_crossover,
    smd_from_d,
    smd_from_t,
    split_shared_control,
    var_from_ci,
    var_from_se,
)

FIXTURES = Path(__file__).parent / "fixtures" / "metafor"
GOLDEN_JSON = FIXTURES / "escalc_golden.json"
GOLDEN_R = FIXTURES / "escalc_golden.R"
RTOL = 1e-10  # closed-form formulas: agree with metafor to rounding


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN_JSON.read_text(encoding="utf-8"))


def _a(values: list) -> np.ndarray:
    """JSON list (null = metafor NA) to a float array with NaN."""
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _close(actual: np.ndarray, expected: list) -> None:
    exp = _a(expected)
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(exp))  # NA exactly where metafor
    np.testing.assert_allclose(actual, exp, rtol=RTOL, atol=0, equal_nan=True)


def test_fixture_is_from_metafor_381(golden: dict) -> None:
    assert golden["metafor_version"] == "3.8.1"


# ---------------------------------------------------------------------------------------------
# golden values
# ---------------------------------------------------------------------------------------------
def test_smd_matches_metafor_on_normand1999(golden: dict) -> None:
    g = golden["smd_normand1999"]
    yi, vi = smd(g["m1i"], g["sd1i"], g["n1i"], g["m2i"], g["sd2i"], g["n2i"])
    _close(yi, g["yi"])
    _close(vi, g["vi"])


@pytest.mark.parametrize(
    ("key", "fn", "stat"), [("smd_from_d", smd_from_d, "di"), ("smd_from_t", smd_from_t, "ti")]
)
def test_smd_from_d_and_t_match_metafor(golden: dict, key: str, fn, stat: str) -> None:
    g = golden[key]
    yi, vi = fn(g[stat], g["n1i"], g["n2i"])
    _close(yi, g["yi"])
    _close(vi, g["vi"])


@pytest.mark.parametrize(("key", "fn"), [("or_bcg", log_odds_ratio), ("rr_bcg", log_risk_ratio)])
def test_or_rr_match_metafor_on_bcg(golden: dict, key: str, fn) -> None:
    g = golden[key]
    res = fn(g["ai"], g["n1i"], g["ci"], g["n2i"])
    _close(res.yi, g["yi"])
    _close(res.vi, g["vi"])
    assert not res.zero_cell_corrected.any()  # dat.bcg has no zero cell
    assert not res.double_zero.any()


ZERO_CONFIGS = {
    "drop00_true": {"to": "only0", "drop00": True},
    "drop00_false": {"to": "only0", "drop00": False},
    "to_all": {"to": "all", "drop00": False},
    "to_if0all_drop00_true": {"to": "if0all", "drop00": True},
}


@pytest.mark.parametrize("measure", ["or", "rr"])
@pytest.mark.parametrize("tag", sorted(ZERO_CONFIGS))
def test_zero_cells_match_metafor(golden: dict, measure: str, tag: str) -> None:
    g = golden[f"{measure}_zero_{tag}"]
    fn = log_odds_ratio if measure == "or" else log_risk_ratio
    res = fn(g["ai"], g["n1i"], g["ci"], g["n2i"], **ZERO_CONFIGS[tag])
    _close(res.yi, g["yi"])
    _close(res.vi, g["vi"])
    # table rows: 0 zero in arm 1, 1 double zero, 2 all events arm 1, 3 all events both, 4 none,
    # 5 zero in arm 2
    dz = np.array([False, True, False, True, False, False]) & ZERO_CONFIGS[tag]["drop00"]
    np.testing.assert_array_equal(res.double_zero, dz)
    expected_corrected = {
        "drop00_true": [True, False, True, False, False, True],
        "drop00_false": [True, True, True, True, False, True],
        "to_all": [True] * 6,
        "to_if0all_drop00_true": [True, False, True, False, True, True],
    }[tag]
    np.testing.assert_array_equal(res.zero_cell_corrected, expected_corrected)


def test_double_zero_is_nan_and_flagged_by_default(golden: dict) -> None:
    g = golden["or_zero_drop00_true"]
    res = log_odds_ratio(g["ai"], g["n1i"], g["ci"], g["n2i"])  # defaults: drop00=True
    assert np.isnan(res.yi[[1, 3]]).all() and res.double_zero[[1, 3]].all()
    assert np.isfinite(res.yi[[0, 2, 4, 5]]).all()


def test_plo_matches_metafor(golden: dict) -> None:
    g = golden["plo"]
    res = logit_proportion(g["xi"], g["ni"])
    _close(res.yi, g["yi"])
    _close(res.vi, g["vi"])
    # x = 0 (row 0) and x = n (row 2) get the 1/2 correction
    np.testing.assert_array_equal(res.zero_cell_corrected, [True, False, True, False, False])
    assert not res.double_zero.any()


def test_var_from_se_matches_metafor(golden: dict) -> None:
    g = golden["gen_sei"]
    _close(var_from_se(g["sei"]), g["vi"])


def test_crossover_equals_smcr_with_pooled_sd_at_r_half(golden: dict) -> None:
    g = golden["smcr_pooled_r05"]
    yi, vi = smd_crossover(g["m_treat"], g["sd_treat"], g["m_ctrl"], g["sd_ctrl"], g["n"], 0.5)
    _close(yi, g["yi"])
    _close(vi, g["vi"])


def test_crossover_vs_smcr_for_other_r(golden: dict) -> None:
    g = golden["smcr_pooled_rvar"]
    r, n = np.array(g["r"]), np.array(g["n"], dtype=float)
    yi, vi = smd_crossover(g["m_treat"], g["sd_treat"], g["m_ctrl"], g["sd_ctrl"], n, r)
    _close(yi, g["yi"])  # same point estimate for any r
    # SMCR: vi = 2(1-r)/n + g^2/(2n); Handbook: vi = 2(1-r)/n + g^2 (1-r)/n
    smcr_vi, gy = _a(g["vi"]), _a(g["yi"])
    np.testing.assert_allclose(vi, smcr_vi - gy**2 / (2 * n) + gy**2 * (1 - r) / n, rtol=RTOL)
    assert not np.allclose(vi, smcr_vi)  # they really differ when r != 0.5


def test_crossover_vs_smcc_equal_sds(golden: dict) -> None:
    g = golden["smcc_equal_sd_r05"]
    yi, vi = smd_crossover(g["m_treat"], g["sd"], g["m_ctrl"], g["sd"], g["n"], 0.5)
    _close(yi, g["yi"])
    _close(vi, g["vi"])
    g = golden["smcc_equal_sd_rvar"]
    r = np.array(g["r"])
    yi, _ = smd_crossover(g["m_treat"], g["sd"], g["m_ctrl"], g["sd"], g["n"], r)
    # SMCC standardises by SD of differences = sd * sqrt(2(1-r))
    np.testing.assert_allclose(yi / np.sqrt(2 * (1 - r)), _a(g["yi"]), rtol=RTOL)


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
    fresh.pop("r_version"), committed.pop("r_version")  # R itself may differ; values may not
    assert fresh.keys() == committed.keys()
    for key, block in committed.items():
        if isinstance(block, str):
            assert fresh[key] == block
            continue
        for field, values in block.items():
            if isinstance(values, str):
                assert fresh[key][field] == values
            else:
                np.testing.assert_allclose(
                    _a(fresh[key][field]), _a(values), rtol=1e-13, err_msg=f"{key}.{field}"
                )


# ---------------------------------------------------------------------------------------------
# hand-checked cases
# ---------------------------------------------------------------------------------------------
def test_hedges_j_exact_values() -> None:
    # J(2) = Gamma(1) / (sqrt(1) Gamma(1/2)) = 1/sqrt(pi) = 0.5641895835477563
    # J(m) -> 1 - 3/(4m - 1) for large m: J(1000) ~ 1 - 3/3999 = 0.99924981...
    # m <= 1 undefined (metafor .cmicalc gives NA)
    j = hedges_j([2, 1000, 1, 0])
    np.testing.assert_allclose(j[0], 0.5641895835477563, rtol=1e-14)
    np.testing.assert_allclose(j[1], 1 - 3 / 3999, rtol=1e-7)
    assert np.isnan(j[2:]).all()


def test_smd_undefined_warns_and_is_nan() -> None:
    # n1 + n2 - 2 = 1: J undefined (metafor returns NA); never a silent NaN
    with pytest.warns(EffectSizeWarning, match="undefined"):
        yi, vi = smd(10, 2, 1, 8, 2, 2)
    assert np.isnan(yi) and np.isnan(vi)


def test_smd_hand_checked() -> None:
    # m1=20 sd1=8 n1=20; m2=28 sd2=10 n2=20
    # sp = sqrt((19*64 + 19*100)/38) = sqrt(82) = 9.055385138137417
    # d = -8/9.055385 = -0.8834522085987723; J(38) = 0.9801104021309504
    # g = -0.8658807...; vi = 1/20 + 1/20 + g^2/80 = 0.1 + 0.7497495/80 = 0.10937187...
    yi, vi = smd(20, 8, 20, 28, 10, 20)
    d = -8 / math.sqrt(82)
    g = 0.9801104021309504 * d
    np.testing.assert_allclose(yi, g, rtol=1e-12)
    np.testing.assert_allclose(vi, 0.1 + g**2 / 80, rtol=1e-12)
    np.testing.assert_allclose(yi, -0.86588, rtol=1e-5)


def test_smd_crossover_hand_checked() -> None:
    # treat 15 (sd 7), control 22 (sd 8), n = 18, r = 0.5
    # sp = sqrt((49 + 64)/2) = sqrt(56.5) = 7.516648189186454
    # d = -7 / 7.516648 = -0.9312661473328351; J(17) = 0.955111505613535
    # g = -0.8894630121059802
    # vi = (1/18 + g^2/36) * 2 * (1 - 0.5) = (0.0555556 + 0.0219759) * 1 = 0.07753179027512898
    # r = 0.7: vi = 0.0775318 * 0.6 = 0.0465190741650774
    yi, vi = smd_crossover(15, 7, 22, 8, 18, [0.5, 0.7])
    np.testing.assert_allclose(yi, -0.8894630121059802, rtol=1e-12)
    np.testing.assert_allclose(vi, [0.07753179027512898, 0.0465190741650774], rtol=1e-12)


def test_var_from_ci_hand_checked() -> None:
    # 95% CI (-1.2, -0.4): se = 0.8 / (2 * 1.959963984540054) = 0.20408538...; vi = 0.0416508...
    np.testing.assert_allclose(var_from_ci(-1.2, -0.4), 0.04165084346032092, rtol=1e-12)
    # 90% CI: z = 1.6448536269514722; se = 0.8/3.2897 = 0.243182...; vi = 0.0591376...
    np.testing.assert_allclose(var_from_ci(-1.2, -0.4, 0.9), (0.4 / 1.6448536269514722) ** 2)
    with pytest.raises(ValueError):
        var_from_ci(1.0, 0.5)


def test_log_odds_ratio_zero_cell_hand_checked() -> None:
    # 10/20 vs 0/20 -> cells + 0.5: 10.5, 10.5, 0.5, 20.5
    # log OR = log(10.5/10.5) - log(0.5/20.5) = log(41) = 3.713572066704308
    # vi = 1/10.5 + 1/10.5 + 1/0.5 + 1/20.5 = 2.239256678281069
    res = log_odds_ratio([10], [20], [0], [20])
    np.testing.assert_allclose(res.yi, [3.713572066704308], rtol=1e-12)
    np.testing.assert_allclose(res.vi, [2.239256678281069], rtol=1e-12)
    assert res.zero_cell_corrected.tolist() == [True]
    np.testing.assert_allclose(res.sei, np.sqrt(res.vi))


def test_log_risk_ratio_zero_cell_hand_checked() -> None:
    # 10/20 vs 0/20 -> a=10.5 n1=21, c=0.5 n2=21: log RR = log(10.5/0.5) = log(21) = 3.044522...
    # vi = 1/10.5 - 1/21 + 1/0.5 - 1/21 = 0.0952381 - 0.0476190 + 2 - 0.0476190 = 2.0
    res = log_risk_ratio(10, 20, 0, 20)
    np.testing.assert_allclose(res.yi, math.log(21), rtol=1e-12)
    np.testing.assert_allclose(res.vi, 2.0, rtol=1e-12)


def test_invalid_counts_raise() -> None:
    with pytest.raises(ValueError):
        log_odds_ratio(5, 4, 1, 10)
    with pytest.raises(ValueError):
        logit_proportion(-1, 10)
    with pytest.raises(ValueError):
        smd(1, -1, 10, 0, 1, 10)
    with pytest.raises(ValueError):
        log_odds_ratio(1, 10, 1, 10, to="bogus")


def test_logit_and_expit_roundtrip() -> None:
    # 5/20 -> log(5/15) = -1.0986122886681098; expit back = 0.25
    res = logit_proportion(5, 20)
    np.testing.assert_allclose(res.yi, -1.0986122886681098, rtol=1e-12)
    np.testing.assert_allclose(expit(res.yi), 0.25, rtol=1e-12)
    assert expit(0.0) == 0.5


def test_split_shared_control() -> None:
    # control n = 30 shared by 3 arms -> 10 each; 9 events -> 3 each (risk 9/30 = 3/10 kept)
    np.testing.assert_allclose(split_shared_control(30, 3), 10.0)
    np.testing.assert_allclose(split_shared_control(9, 3) / split_shared_control(30, 3), 9 / 30)
    # no rounding: 20 / 3
    np.testing.assert_allclose(split_shared_control([20, 20], [3, 1]), [20 / 3, 20])
    with pytest.raises(ValueError):
        split_shared_control(20, 0)


def test_orient() -> None:
    np.testing.assert_array_equal(orient([0.5, -0.2, 0.3], [True, False, True]), [-0.5, -0.2, -0.3])
    np.testing.assert_array_equal(orient([0.5, -0.2], False), [0.5, -0.2])


# edge.escalc_or_zero_cells of publication_golden.json (publication_golden.R, metafor 3.8.1)
ZERO_CELLS = json.loads((FIXTURES / "publication_golden.json").read_text(encoding="utf-8"))["edge"][
    "escalc_or_zero_cells"
]


def _golden_array(values: list) -> np.ndarray:
    """JSON null (metafor NA) -> NaN; "Inf"/"-Inf" -> +-inf."""
    return np.array([np.nan if x is None else float(x) for x in values])


@pytest.mark.parametrize(
    ("key", "to", "drop00"),
    [("to_none", "none", False), ("default_only0", "only0", False), ("to_all", "all", False),
     ("to_if0all", "if0all", False), ("drop00", "only0", True)],
)  # fmt: skip
def test_zero_cell_patterns_match_metafor(key: str, to: str, drop00: bool) -> None:
    """escalc(measure="OR", to=...) on 8 zero-cell patterns. With to="none" metafor recodes
    the +-Inf of log(0) and 1/0 to NA (and warns); so does the engine (NaN + warning)."""
    tab = ZERO_CELLS["table"]
    ai, bi, ci, di = (np.array(tab[c], dtype=float) for c in ("ai", "bi", "ci", "di"))
    if key == "to_none":
        with pytest.warns(EffectSizeWarning, match="recoded to NaN as metafor does"):
            res = log_odds_ratio(ai, ai + bi, ci, ci + di, to=to, drop00=drop00)
    else:
        res = log_odds_ratio(ai, ai + bi, ci, ci + di, to=to, drop00=drop00)
    expected = ZERO_CELLS["results"][key]
    np.testing.assert_allclose(res.yi, _golden_array(expected["yi"]), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(res.vi, _golden_array(expected["vi"]), rtol=1e-12)
    assert np.isfinite(res.yi).sum() == np.isfinite(_golden_array(expected["yi"])).sum()


def test_to_none_without_recoding_would_be_infinite() -> None:
    """The fixture's plain IEEE values: the cases recoded above really are +-Inf / NaN."""
    raw = _golden_array(ZERO_CELLS["unrecoded_log_or"])
    recoded = _golden_array(ZERO_CELLS["results"]["to_none"]["yi"])
    assert np.isinf(raw).sum() == 5 and np.isnan(recoded).sum() == 7
