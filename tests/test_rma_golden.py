"""Golden tests: timecourse_meta's random-effects engine against R metafor 3.8.1.

The reference numbers live in fixtures/metafor/rma_golden.json, written by the committed script
fixtures/metafor/rma_golden.R (rerun: `Rscript tests/fixtures/metafor/rma_golden.R`); each case
stores the exact R call that produced it. yi/vi are read from the JSON, never recomputed.

Two variants per random-effects case:
- "default": metafor's default control. Its iterative estimates (REML/ML/EB Fisher scoring with
  threshold 1e-5; PM and the Q-profile CI by uniroot with tol ~1.2e-4) are only converged to about
  that accuracy, which can exceed rtol=1e-6. The engine is called with control=None (metafor's
  defaults) and follows the same stopping rules.
- "tight": the same models refitted with threshold/tol = 1e-12, i.e. the converged values.
  Tested by the *_converged_* tests, which call the engine with the Control that mirrors the
  stored R calls (``control=list(...)`` of "r_call" and of "confint_call", parsed from the JSON).

Tolerances (fixed by the project brief; do not loosen to make a case pass):
- rtol=1e-6 for everything, rtol=1e-4 for the tau2 Q-profile CI bounds;
- values that metafor reports as exactly 0, and tau2-like values below 1e-10 (tau2, its CI
  bounds, I2, R2, Q), are compared with atol=1e-8: relative tolerance cannot be met at zero when
  the engine reaches the boundary along a different floating-point path.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from timecourse_meta import fit_meta_regression, fit_random_effects
from timecourse_meta.models.control import Control

GOLDEN_PATH = Path(__file__).parent / "fixtures" / "metafor" / "rma_golden.json"
GOLDEN: dict[str, Any] = json.loads(GOLDEN_PATH.read_text(encoding="utf-8"))
DATASETS: dict[str, Any] = GOLDEN["datasets"]
UNI: list[dict[str, Any]] = [c for c in GOLDEN["univariate"] if c["fitted"]]
UNI_DEFAULT = [c for c in UNI if c["variant"] == "default"]
UNI_TIGHT = [c for c in UNI if c["variant"] == "tight"]
CI_DEFAULT = [c for c in UNI_DEFAULT if c["method"] != "FE"]
UNI_WARN = [c for c in UNI_DEFAULT if c["warnings"]]
UNI_CI_ERR = [c for c in CI_DEFAULT if c["confint"].get("error")]
REG: list[dict[str, Any]] = [c for c in GOLDEN["regression"] if c["fitted"]]
REG_DEFAULT = [c for c in REG if c["variant"] == "default"]
REG_TIGHT = [c for c in REG if c["variant"] == "tight"]
DEFAULT_OF = {c["id"]: c for c in UNI_DEFAULT + REG_DEFAULT}

RTOL = 1e-6
RTOL_TAU2_CI = 1e-4

# metafor control names -> Control fields, for rma(..., control) and confint(res, control).
RMA_CONTROL = {"threshold": "threshold", "tol": "tol", "maxiter": "maxiter", "tau2.max": "tau2_max"}
CONFINT_CONTROL = {"tol": "ci_tol", "maxiter": "ci_maxiter"}

# engine attribute -> (metafor JSON key, tau2-like: gets the tiny-value absolute tolerance)
UNI_FIELDS: dict[str, tuple[str, bool]] = {
    "estimate": ("b", False),
    "se": ("se", False),
    "stat": ("stat", False),
    "pval": ("pval", False),
    "ci_low": ("ci_lb", False),
    "ci_high": ("ci_ub", False),
    "tau2": ("tau2", True),
    "tau2_se": ("se_tau2", False),
    "I2": ("I2", True),
    "H2": ("H2", False),
    "Q": ("QE", True),
    "Q_p": ("QEp", False),
    "pi_low": ("pi_lb", False),
    "pi_high": ("pi_ub", False),
    "weights": ("weights", False),
}

REG_FIELDS: dict[str, tuple[str, bool]] = {
    "beta": ("b", False),
    "se": ("se", False),
    "stat": ("stat", False),
    "pval": ("pval", False),
    "ci_low": ("ci_lb", False),
    "ci_high": ("ci_ub", False),
    "tau2": ("tau2", True),
    "I2": ("I2", True),
    "H2": ("H2", False),
    "R2": ("R2", True),
    "QE": ("QE", True),
    "QE_p": ("QEp", False),
    "QM": ("QM", False),
    "QM_p": ("QMp", False),
}


def _ids(cases: list[dict[str, Any]]) -> list[str]:
    return [c["id"] for c in cases]


def _yi_vi(dataset: str) -> tuple[np.ndarray, np.ndarray]:
    d = DATASETS[dataset]
    return np.asarray(d["yi"], dtype=float), np.asarray(d["vi"], dtype=float)


def _r_control(call: str, names: dict[str, str]) -> dict[str, float | int]:
    """The ``control=list(name=value, ...)`` of an R call as Control keyword arguments."""
    m = re.search(r"control=list\(([^)]*)\)", call)
    if m is None:
        return {}
    out: dict[str, float | int] = {}
    for item in m.group(1).split(","):
        name, value = (x.strip() for x in item.split("="))
        num = float(value)
        out[names[name]] = int(num) if "maxiter" in name else num
    return out


def _control_of(case: dict[str, Any]) -> Control | None:
    """Control mirroring the case's stored R calls (None when both use metafor's defaults)."""
    kwargs = _r_control(case["r_call"], RMA_CONTROL)
    ci_call = (case.get("confint") or {}).get("confint_call") or ""
    kwargs.update(_r_control(ci_call, CONFINT_CONTROL))
    return Control(**kwargs) if kwargs else None


@functools.cache
def _fit(dataset: str, method: str, test: str, control: Control | None = None) -> Any:
    yi, vi = _yi_vi(dataset)
    return fit_random_effects(yi, vi, method=method, test=test, level=0.95, control=control)


@functools.cache
def _fit_reg(
    dataset: str, mods: str, method: str, test: str, control: Control | None = None
) -> Any:
    case = next(c for c in REG if (c["dataset"], c["mods"]) == (dataset, mods))
    yi, vi = _yi_vi(dataset)
    X = np.asarray(case["X"], dtype=float)
    return fit_meta_regression(yi, vi, X, method=method, test=test, control=control)


def _exact(name: str, actual: Any, expected: Any, failures: list[str]) -> None:
    """Integer-valued fields (k, df): equal, or both missing (metafor NA / engine None)."""
    if expected is None:
        if actual is not None and not (isinstance(actual, float) and np.isnan(actual)):
            failures.append(f"{name}: metafor NA, engine gave {actual!r}")
    elif actual is None or float(actual) != float(expected):
        failures.append(f"{name}: engine {actual!r} vs metafor {expected!r}")


def _check_uni(res: Any, case: dict[str, Any], compare: Callable[..., None]) -> list[str]:
    failures: list[str] = []
    _exact("k", res.k, case["k"], failures)
    _exact("df", res.df, case["df"], failures)
    _exact("Q_df", res.Q_df, case["QE_df"], failures)
    if res.converged is not True:
        failures.append(f"converged: engine {res.converged!r}, metafor fitted without error")
    for attr, (key, tau2_like) in UNI_FIELDS.items():
        compare(attr, getattr(res, attr), case[key], RTOL, tau2_like, failures)
    return failures


def _check_ci(res: Any, case: dict[str, Any], compare: Callable[..., None]) -> list[str]:
    failures: list[str] = []
    ci = case["confint"]
    # metafor's confint() stops at k = 1 (stored as an error): the engine must not invent a CI.
    lo, hi = (None, None) if ci.get("error") else (ci["ci_lb"], ci["ci_ub"])
    compare("tau2_ci_low", res.tau2_ci_low, lo, RTOL_TAU2_CI, True, failures)
    compare("tau2_ci_high", res.tau2_ci_high, hi, RTOL_TAU2_CI, True, failures)
    return failures


def _check_reg(res: Any, case: dict[str, Any], compare: Callable[..., None]) -> list[str]:
    failures: list[str] = []
    _exact("df", res.df, case["df"], failures)
    _exact("QE_df", res.QE_df, case["QE_df"], failures)
    qm_df = np.atleast_1d(np.asarray(res.QM_df, dtype=float))
    _exact("QM_df[numerator]", qm_df[0], case["QMdf"][0], failures)
    if qm_df.size > 1:  # engine may also carry the F denominator df (metafor: k - p, NA for z)
        denominator = None if np.isnan(qm_df[1]) else qm_df[1]
        _exact("QM_df[denominator]", denominator, case["QMdf"][1], failures)
    for attr, (key, tau2_like) in REG_FIELDS.items():
        compare(attr, getattr(res, attr), case[key], RTOL, tau2_like, failures)
    return failures


def _as_result(case: dict[str, Any]) -> SimpleNamespace:
    """A golden case dressed as an engine result (to measure metafor default vs converged)."""
    ns = SimpleNamespace(k=case["k"], df=case["df"], Q_df=case["QE_df"], QE_df=case["QE_df"])
    ns.converged = True
    ns.QM_df = case.get("QMdf")
    for attr, (key, _) in {**UNI_FIELDS, **REG_FIELDS}.items():
        if key in case:
            setattr(ns, attr, case[key])
    ci = case.get("confint") or {}
    ns.tau2_ci_low, ns.tau2_ci_high = ci.get("ci_lb"), ci.get("ci_ub")
    return ns


def _fail(case: dict[str, Any], failures: list[str], extra: str = "") -> None:
    if failures:
        pytest.fail(f"{case['id']}  [{case['r_call']}{extra}]\n  " + "\n  ".join(failures))


@pytest.mark.parametrize("case", UNI_DEFAULT, ids=_ids(UNI_DEFAULT))
def test_univariate_matches_metafor(case: dict[str, Any], metafor_compare) -> None:
    """rma(yi, vi, method, test): estimate, SE, test, CI, tau2, I2/H2, Q, PI and weights."""
    res = _fit(case["dataset"], case["method"], case["test"])
    _fail(case, _check_uni(res, case, metafor_compare))


@pytest.mark.parametrize("case", UNI_TIGHT, ids=_ids(UNI_TIGHT))
def test_univariate_matches_converged_metafor(case: dict[str, Any], metafor_compare) -> None:
    """As above, against metafor converged to threshold/tol 1e-12, with the same control."""
    res = _fit(case["dataset"], case["method"], case["test"], _control_of(case))
    _fail(case, _check_uni(res, case, metafor_compare))


@pytest.mark.parametrize("case", CI_DEFAULT, ids=_ids(CI_DEFAULT))
def test_tau2_qprofile_ci_matches_metafor(case: dict[str, Any], metafor_compare) -> None:
    """confint(res): Q-profile CI for tau2 (metafor's default type 'QP' for every method)."""
    res = _fit(case["dataset"], case["method"], case["test"])
    _fail(case, _check_ci(res, case, metafor_compare), "; " + case["confint"]["confint_call"])


@pytest.mark.parametrize("case", UNI_TIGHT, ids=_ids(UNI_TIGHT))
def test_tau2_qprofile_ci_matches_converged_metafor(case: dict[str, Any], metafor_compare) -> None:
    """As above, against confint(res, control=list(tol=1e-12)), with the same control."""
    res = _fit(case["dataset"], case["method"], case["test"], _control_of(case))
    extra = "; " + str(case["confint"].get("confint_call"))
    _fail(case, _check_ci(res, case, metafor_compare), extra)


@pytest.mark.parametrize("case", UNI_WARN, ids=_ids(UNI_WARN))
def test_engine_warns_where_metafor_warns(case: dict[str, Any]) -> None:
    """metafor warned (knha with FE, or test forced to z at k = 1): the engine must say so too."""
    res = _fit(case["dataset"], case["method"], case["test"])
    assert res.warnings, f"{case['id']}: metafor warned {case['warnings']}, engine warnings empty"


@pytest.mark.parametrize("case", UNI_CI_ERR, ids=_ids(UNI_CI_ERR))
def test_engine_flags_missing_tau2_ci(case: dict[str, Any]) -> None:
    """metafor's confint() stops (k = 1); the missing tau2 CI must be flagged, not silent."""
    res = _fit(case["dataset"], case["method"], case["test"])
    assert res.warnings, f"{case['id']}: no tau2 CI ({case['confint']['error']}) but no warning"


@pytest.mark.parametrize("case", REG_DEFAULT, ids=_ids(REG_DEFAULT))
def test_meta_regression_matches_metafor(case: dict[str, Any], metafor_compare) -> None:
    """rma(yi, vi, mods, method, test) on dat.bcg with metafor's own model matrix."""
    res = _fit_reg(case["dataset"], case["mods"], case["method"], case["test"])
    _fail(case, _check_reg(res, case, metafor_compare))


@pytest.mark.parametrize("case", REG_TIGHT, ids=_ids(REG_TIGHT))
def test_meta_regression_matches_converged_metafor(case: dict[str, Any], metafor_compare) -> None:
    """As above, against metafor converged to threshold/tol 1e-12, with the same control."""
    res = _fit_reg(case["dataset"], case["mods"], case["method"], case["test"], _control_of(case))
    _fail(case, _check_reg(res, case, metafor_compare))


def test_tight_controls_mirror_the_stored_r_calls() -> None:
    """Every tight case parses to metafor's tight control; default cases to None."""
    tight = Control(threshold=1e-12, tol=1e-12, maxiter=1000, ci_tol=1e-12)
    for case in UNI_TIGHT:
        assert _control_of(case) == tight, case["id"]
    for case in REG_TIGHT:  # no confint() for meta-regressions
        assert _control_of(case) == Control(threshold=1e-12, tol=1e-12, maxiter=1000), case["id"]
    for case in UNI_DEFAULT + REG_DEFAULT:
        assert _control_of(case) is None, case["id"]


def test_control_is_what_closes_the_gap_to_converged_metafor(metafor_compare) -> None:
    """Where metafor's default fit misses its converged value beyond tolerance, the engine's
    default fit misses it too (it follows metafor's stopping rules), and the tight Control is
    what makes the converged tests pass; so those tests can fail and the control is honoured.
    """
    gaps = 0
    for case in UNI_TIGHT + REG_TIGHT:
        default = DEFAULT_OF[case["id"].removesuffix("/tight")]
        is_reg = "mods" in case

        def check(res: Any, case: dict[str, Any] = case, is_reg: bool = is_reg) -> list[str]:
            if is_reg:
                return _check_reg(res, case, metafor_compare)
            return _check_uni(res, case, metafor_compare) + _check_ci(res, case, metafor_compare)

        gap = {g.split(":")[0] for g in check(_as_result(default))}
        if not gap:
            continue
        gaps += 1
        if is_reg:
            res = _fit_reg(case["dataset"], case["mods"], case["method"], case["test"])
        else:
            res = _fit(case["dataset"], case["method"], case["test"])
        missed = {f.split(":")[0] for f in check(res)}
        assert missed, f"{case['id']}: engine default already converged in {sorted(gap)}"
        assert missed <= gap, f"{case['id']}: engine default misses {sorted(missed - gap)} too"
    assert gaps > 0, "no case where the default misses the converged value: test is vacuous"


def test_meta_regression_accepts_dataframe(metafor_compare) -> None:
    """X given as a DataFrame (metafor's column names) gives the same fit as the golden case."""
    case = next(c for c in REG if c["id"] == "bcg_RR~alloc/REML/knha")
    yi, vi = _yi_vi(case["dataset"])
    X = pd.DataFrame(np.asarray(case["X"], dtype=float), columns=case["X_colnames"])
    res = fit_meta_regression(yi, vi, X, method="REML", test="knha")
    _fail(case, _check_reg(res, case, metafor_compare))


def test_fixture_covers_the_brief() -> None:
    """Guard against a silently shrunken fixture: every method x test x data set is present."""
    methods = {"FE", "DL", "REML", "ML", "PM", "HS", "SJ", "HE", "EB"}
    combos = {(c["dataset"], c["method"], c["test"]) for c in GOLDEN["univariate"]}
    for ds in DATASETS:
        for m in methods:
            for t in ("z", "knha"):
                assert (ds, m, t) in combos, (ds, m, t)
    assert {"bcg_RR", "normand1999_SMD", "hackshaw1998_OR", "hine1989_RD"} <= set(DATASETS)
    assert len(REG) == 32
    assert GOLDEN["software"]["metafor"] == "3.8.1"


# ---------------------------------------------------------------------------------------------
# publication_golden.json (publication_golden.R, metafor 3.8.1; see README_publication.md):
# test = "t" / "adhoc" next to z / knha, and the hostile edge cases (variance ratios 1e7-1e10).
# ---------------------------------------------------------------------------------------------

PUB = json.loads((GOLDEN_PATH.parent / "publication_golden.json").read_text(encoding="utf-8"))
KNHA = PUB["knha_adhoc"]
ENGINE_METHODS = {"FE", "DL", "REML", "ML", "PM", "HS", "SJ", "HE", "EB"}
PUB_FIELDS: dict[str, tuple[str, bool]] = {
    **{a: kv for a, kv in UNI_FIELDS.items() if a != "weights"},
    "s2w": ("s2w", False),
}
TIGHT_FIT = Control(threshold=1e-12, tol=1e-12, maxiter=1000)


def _edge_cases() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(id, data, fit) of every edge.* fit of an estimator the engine has."""
    edge = PUB["edge"]
    sets = {"two_study_1e8": edge["two_study_1e8"], "two_study_1e10": edge["two_study_1e10"]}
    sets.update({f"variance_{k}": v for k, v in edge["variance_ratio"].items()})
    return [
        (f"{name}/{fit['id']}", data["data"], fit)
        for name, data in sets.items()
        for fit in data["fits"]
        if fit["method"] in ENGINE_METHODS and fit["fitted"]
    ]


EDGE = _edge_cases()


def _check_pub(res: Any, case: dict[str, Any], compare: Callable[..., None]) -> list[str]:
    failures: list[str] = []
    _exact("k", res.k, case["k"], failures)
    _exact("df", res.df, case["df"], failures)
    for attr, (key, tau2_like) in PUB_FIELDS.items():
        if key in case:
            compare(attr, getattr(res, attr), case[key], RTOL, tau2_like, failures)
    return failures


@pytest.mark.parametrize("case", KNHA["fits"], ids=[c["id"] for c in KNHA["fits"]])
def test_t_knha_adhoc_match_metafor(case: dict[str, Any], metafor_compare) -> None:
    """rma(test = z / t / knha / adhoc) + predict(): b, se, t, df, p, CI, PI and s2w (the
    variance factor applied: 1 for z and t, RSS/(k-p) for knha, max(1, RSS/(k-p)) for adhoc)."""
    d = KNHA["datasets"][case["dataset"]]
    res = fit_random_effects(d["yi"], d["vi"], method=case["method"], test=case["test"])
    _fail(case, _check_pub(res, case, metafor_compare))


def test_adhoc_is_never_narrower_than_wald() -> None:
    """The point of "adhoc": where knha is narrower than z (s2w < 1), adhoc uses s2w = 1."""
    # s2w < 1 beyond rounding (k2_bcg_4_8 has s2w = 1 - 2e-16, see the fixture's notes)
    narrower = [c for c in KNHA["fits"] if c["test"] == "knha" and c["s2w"] < 1 - 1e-12]
    assert narrower, "fixture has no case with s2w < 1: the adhoc truncation is untested"
    for case in narrower:
        d = KNHA["datasets"][case["dataset"]]
        adhoc = fit_random_effects(d["yi"], d["vi"], method=case["method"], test="adhoc")
        wald = fit_random_effects(d["yi"], d["vi"], method=case["method"], test="z")
        knha = fit_random_effects(d["yi"], d["vi"], method=case["method"], test="knha")
        assert knha.se < wald.se, case["id"]
        assert adhoc.s2w == 1.0 and adhoc.se == wald.se and adhoc.se > knha.se, case["id"]


@pytest.mark.parametrize(("cid", "data", "case"), EDGE, ids=[c[0] for c in EDGE])
def test_extreme_variance_ratios_match_metafor(cid, data, case, metafor_compare) -> None:
    """edge.two_study_1e8 / 1e10 and edge.variance_ratio (1e7, 1e10): the engine's sums of
    non-negative terms (projection.OneColumn) reproduce metafor where the textbook forms of
    tr(P) and tr(PP) cancelled (tau^2 = 6.7e-6 instead of 0, NaN SEs, a hang at k = 2).

    "/tight" fits are compared with the engine run under the same tight control. For ML on the
    variance_ratio sets metafor's default fit stops after one step from HE's 0 (not the ML
    maximum, README_publication.md); the engine follows the same stopping rule, so the default
    case is compared with metafor's default and the maximum with the "/tight" case.
    """
    control = TIGHT_FIT if case["variant"] == "tight" else None
    res = fit_random_effects(
        data["yi"], data["vi"], method=case["method"], test=case["test"], control=control
    )
    _fail(case, _check_pub(res, case, metafor_compare), f" on {data['r_call']}")
    assert any("ratio of largest to smallest" in w for w in res.warnings), cid


def test_two_study_hang_returns_at_once() -> None:
    """The case that used to hang (tr(PP) came out 0, step -inf, unbounded step-halving):
    REML, ML and EB return tau^2 = 0 within a few iterations, as metafor does."""
    y, v = [0.30, 0.35], [1e-8, 2.0]
    for method in ("REML", "ML", "EB"):
        res = fit_random_effects(y, v, method=method)
        assert res.tau2 == 0.0 and res.iterations <= 2, method
    reg = fit_meta_regression(y, v, np.ones((2, 1)), method="REML")
    assert reg.tau2 == 0.0
    from timecourse_meta.diagnostics.influence import leave_one_out

    loo = leave_one_out([0.30, 0.35, 0.32], [1e-8, 2.0, 1.5], method="REML")
    assert loo["converged"].all() and (loo.loc[loo.index[2], "tau2"] == 0.0)
