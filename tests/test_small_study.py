"""regtest and trimfill against metafor 3.8.1 (golden file) and hand-checked cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from timecourse_meta.diagnostics.small_study import regtest, trimfill

GOLDEN = json.loads(
    (Path(__file__).parent / "fixtures" / "metafor" / "diagnostics_golden.json").read_text()
)
DATA = GOLDEN["datasets"]
RTOL = 1e-6


def close(actual: object, expected: object) -> bool:
    """rtol comparison where R's NULL/NA (None) must meet None or NaN."""
    if expected is None:
        return actual is None or bool(np.isnan(actual))  # type: ignore[arg-type]
    return bool(np.allclose(actual, expected, rtol=RTOL, atol=0))  # type: ignore[arg-type]


REG = [(d, c) for d in GOLDEN["regtest"] for c in GOLDEN["regtest"][d]]


@pytest.mark.parametrize(("dataset", "case"), REG)
def test_regtest_matches_metafor(dataset: str, case: str) -> None:
    d = DATA[dataset]
    gold = GOLDEN["regtest"][dataset][case]
    parts = case.split("_")
    if parts[0] == "lm":
        res = regtest(d["yi"], d["vi"], model="lm", predictor=parts[1])
        assert res.tau2 is None
    else:
        res = regtest(
            d["yi"], d["vi"], model="rma", predictor=parts[1], method=parts[2], test=parts[3],
            ni=d.get("ni"),
        )  # fmt: skip
        assert close(res.tau2, gold["tau2"])
    for attr in ("stat", "pval", "df", "est", "ci_low", "ci_high", "beta"):
        assert close(getattr(res, attr), gold[attr]), attr


TF = [(d, c) for d in GOLDEN["trimfill"] for c in GOLDEN["trimfill"][d]]


@pytest.mark.parametrize(("dataset", "case"), TF)
def test_trimfill_matches_metafor(dataset: str, case: str) -> None:
    d = DATA[dataset]
    gold = GOLDEN["trimfill"][dataset][case]
    parts = case.split("_")
    method, estimator = parts[0], parts[2]
    side = parts[3] if len(parts) > 3 else None
    # metafor refits the filled data without the model's test (z when k0 > 0): gold["test"]
    res = trimfill(d["yi"], d["vi"], estimator=estimator, side=side, method=method,
                   test=gold["test"])  # fmt: skip
    assert res.k0 == gold["k0"]
    assert res.side == gold["side"]
    for attr in ("estimate", "se", "ci_low", "ci_high", "pval", "se_k0", "p_k0"):
        assert close(getattr(res, attr), gold[attr]), attr
    assert close(res.fit.stat, gold["stat"])
    assert close(res.fit.tau2, gold["tau2"])
    assert close(res.fit.Q, gold["Q"])
    assert close(res.data["yi"].to_numpy(), gold["yi"])
    assert close(res.data["vi"].to_numpy(), gold["vi"])
    assert res.data["filled"].tolist() == gold["fill"]
    if gold["se_k0"] is None:
        assert any("SE of k0" in w for w in res.warnings)


def test_trimfill_cases_cover_filling() -> None:
    k0s = {tf["k0"] for d in GOLDEN["trimfill"].values() for tf in d.values()}
    assert 0 in k0s and max(k0s) >= 4


def test_trimfill_by_hand() -> None:
    # equal variances, FE, side "left"; sorted y = -1, -0.5, 0.5, 1
    # iteration 1: b = 0; |y| ranks (ties first) 3, 1, 2, 4; signed -3, -1, 2, 4; Sr = 6;
    #   L0 = (4*6 - 4*5) / 7 = 4/7 -> k0 = 1
    # iteration 2: trim y = 1, b = mean(-1, -0.5, 0.5) = -1/3; y - b = -2/3, -1/6, 5/6, 4/3;
    #   ranks 2, 1, 3, 4; signed -2, -1, 3, 4; Sr = 7; L0 = (28 - 20) / 7 = 8/7 -> k0 = 1, stop
    # filled: 2 b - 1 = -5/3; FE mean of 5 studies = (-1 + 1 - 0.5 + 0.5 - 5/3) / 5 = -1/3
    v = 0.04
    res = trimfill([1.0, -1.0, 0.5, -0.5], [v] * 4, side="left", method="FE")
    assert res.k0 == 1 and res.iterations == 2
    np.testing.assert_allclose(res.data["yi"], [1.0, -1.0, 0.5, -0.5, -5 / 3])
    assert res.data["filled"].tolist() == [False] * 4 + [True]
    assert res.estimate == pytest.approx(-1 / 3)
    assert res.se == pytest.approx(np.sqrt(v / 5))
    # SE of k0: metafor's L0 formula at k = 4 and the unrounded last estimate k0 = 8/7
    k, k0 = 4, 8 / 7
    var_sr = (
        k * (k + 1) * (2 * k + 1) + 10 * k0**3 + 27 * k0**2 + 17 * k0
        - 18 * k * k0**2 - 18 * k * k0 + 6 * k**2 * k0
    ) / 24  # fmt: skip
    assert res.se_k0 == pytest.approx(4 * np.sqrt(var_sr) / 7)


def test_regtest_lm_equals_normal_equations() -> None:
    # classic Egger: weighted LS with w = 1/vi, dispersion sigma^2 = sum w r^2 / (k - 2),
    # var(beta) = sigma^2 (X'WX)^-1, t on k - 2 df; checked against the normal equations
    sei = np.array([0.1, 0.2, 0.3, 0.4, 0.25])
    y = np.array([0.30, 0.45, 0.90, 0.95, 0.50])
    res = regtest(y, sei**2, model="lm", predictor="sei")
    w = 1 / sei**2
    X = np.column_stack([np.ones(5), sei])
    xtwx = X.T @ (w[:, None] * X)
    beta = np.linalg.solve(xtwx, X.T @ (w * y))
    sigma2 = np.sum(w * (y - X @ beta) ** 2) / 3
    se = np.sqrt(sigma2 * np.diag(np.linalg.inv(xtwx)))
    np.testing.assert_allclose(res.beta, beta)
    np.testing.assert_allclose(res.se, se)
    assert res.df == 3
    assert res.stat == pytest.approx(beta[1] / se[1])
    assert res.pval == pytest.approx(2 * stats.t.sf(abs(beta[1] / se[1]), 3))
    assert res.ci_low == pytest.approx(beta[0] - stats.t.isf(0.025, 3) * se[0])


def test_regtest_validation() -> None:
    with pytest.raises(ValueError, match="needs sample sizes"):
        regtest([0.1, 0.2, 0.3], [0.01, 0.02, 0.03], predictor="ninv")
    with pytest.raises(ValueError, match="full rank"):
        regtest([0.1, 0.2, 0.3], [0.01, 0.01, 0.01])
    with pytest.raises(ValueError, match="model"):
        regtest([0.1, 0.2, 0.3], [0.01, 0.02, 0.03], model="glm")


# publication_golden.json (publication_golden.R, metafor 3.8.1): regtest variants incl. k = 2 and
# k = 3, and trimfill of FE fits at k = 2 / 3. Where metafor stops, the engine refuses too.
PUB = json.loads(
    (Path(__file__).parent / "fixtures" / "metafor" / "publication_golden.json").read_text()
)
PUB_REG = PUB["regtest"]["cases"] + PUB["trimfill_small_k"]["regtest_fe"]
PUB_TF = PUB["trimfill_small_k"]["cases"]


def _base(call: str) -> tuple[str, str]:
    """(method, test) of the base fit ``rma(yi, vi, data=dat, method=..., test=...)``."""
    method = call.split('method="')[1].split('"')[0] if 'method="' in call else "REML"
    test = call.split('test="')[1].split('"')[0] if 'test="' in call else "z"
    return method, test


@pytest.mark.parametrize("case", PUB_REG, ids=[c["id"] for c in PUB_REG])
def test_regtest_variants_match_metafor(case: dict) -> None:
    datasets = {**PUB["regtest"]["datasets"], **PUB["trimfill_small_k"]["datasets"]}
    d = datasets[case["dataset"]]
    method, test = _base(case["base_call"])
    model, predictor = case["id"].split("/")[2:4]  # error cases store only the id and the call
    kwargs = dict(model=model, predictor=predictor, method=method, test=test)
    if case.get("error"):
        with pytest.raises(ValueError, match=case["error"].rstrip(".")):
            regtest(d["yi"], d["vi"], ni=d.get("ni"), **kwargs)
        return
    res = regtest(d["yi"], d["vi"], ni=d.get("ni"), **kwargs)
    pairs = {"stat": "stat", "pval": "pval", "est": "limit_est", "ci_low": "limit_ci_lb",
             "ci_high": "limit_ci_ub", "df": "dfs"}  # fmt: skip
    for attr, key in pairs.items():
        assert close(getattr(res, attr), case[key]), (attr, getattr(res, attr), case[key])
    np.testing.assert_allclose(res.beta, case["fit"]["coef"], rtol=RTOL)


@pytest.mark.parametrize("case", PUB_TF, ids=[c["id"] for c in PUB_TF])
def test_trimfill_small_k_matches_metafor(case: dict) -> None:
    d = PUB["trimfill_small_k"]["datasets"][case["dataset"]]
    method, _ = _base(case["base_call"])
    if case.get("error"):  # Q0 on hackshaw k = 3: sqrt of a negative number, k0 undefined
        with pytest.raises(RuntimeError, match="estimate of k0 is undefined"):
            trimfill(d["yi"], d["vi"], estimator=case["estimator"], method=method)
        return
    res = trimfill(d["yi"], d["vi"], estimator=case["estimator"], method=method)
    assert res.k0 == case["k0"] and res.side == case["side"]
    for attr, key in (("estimate", "b"), ("se", "se"), ("ci_low", "ci_lb"), ("ci_high", "ci_ub")):
        assert close(getattr(res, attr), case[key]), attr
    assert close(res.fit.Q, case["QE"]) and close(res.fit.tau2, case["tau2"])
    np.testing.assert_allclose(np.sort(res.data["yi"]), np.sort(case["yi_filled"]), rtol=RTOL)
