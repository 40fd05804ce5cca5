"""Random- and fixed-effects meta-analysis and meta-regression, as metafor's ``rma.uni``.

Model: y_i = x_i' beta + u_i + e_i, u_i ~ N(0, tau^2), e_i ~ N(0, v_i) (Viechtbauer 2010,
J Stat Softw 36(3), eqs. 2-5). beta is estimated by weighted least squares with weights
1 / (v_i + tau^2). Tests and intervals:

* ``test="z"``: Wald tests and normal-quantile intervals.
* ``test="knha"``: Knapp & Hartung (2003): var(beta) is multiplied by
  s^2 = sum w_i (y_i - x_i' beta)^2 / (k - p) (set to 0 when that sum is below machine epsilon,
  as metafor does), with t (k - p df) and F (m, k - p df) reference distributions.
* Prediction interval (metafor ``predict``): beta +/- crit * sqrt(se^2 + tau^2), crit from
  the same distribution as the CI (Riley et al. 2011 discuss alternatives).
* Q, I^2 and H^2 as metafor defines them (Higgins & Thompson 2002, generalised):
  Q uses weights 1 / v_i; for random-effects models I^2 = 100 tau^2 / (tau^2 + s^2) and
  H^2 = 1 + tau^2 / s^2 with the typical within-study variance s^2 = (k - p) / tr(P);
  for the fixed-effect model I^2 = 100 max(0, (Q - df) / Q) and H^2 = Q / df.

Iterative steps (Fisher scoring, Paule-Mandel, the Q-profile CI) stop by metafor's rules, taken
from ``control`` (:class:`~.control.Control`, metafor's ``control`` lists; None = defaults).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from timecourse_meta.models.control import Control, resolve
from timecourse_meta.models.projection import Projection
from timecourse_meta.models.tau2 import ESTIMATORS, ConvergenceError, Tau2Estimate, estimate_tau2
from timecourse_meta.models.tau2_ci import qprofile_ci

Array = NDArray[np.float64]
METHODS = ("FE", *ESTIMATORS)
TESTS = ("z", "knha")
# Warning of a fit run with compute_tau2_ci=False (diagnostics refits filter it by this text).
TAU2_CI_SKIPPED = "tau^2 CI not computed (compute_tau2_ci=False)"


@dataclass
class RMAResult:
    """A fitted intercept-only model; attribute names follow the workflow's pooled table."""

    k: int
    estimate: float
    se: float
    stat: float
    df: int | None
    ci_low: float
    ci_high: float
    pval: float
    tau2: float
    tau2_se: float
    tau2_ci_low: float
    tau2_ci_high: float
    I2: float
    H2: float
    Q: float
    Q_df: int
    Q_p: float
    pi_low: float
    pi_high: float
    weights: Array
    method: str
    test: str
    level: float
    converged: bool
    iterations: int
    yi: Array
    vi: Array
    I2_ci_low: float = float("nan")
    I2_ci_high: float = float("nan")
    H2_ci_low: float = float("nan")
    H2_ci_high: float = float("nan")
    loglik_ml: float = float("nan")
    loglik_reml: float = float("nan")
    warnings: list[str] = field(default_factory=list)

    @property
    def stat_name(self) -> str:
        return "t" if self.test == "knha" else "z"

    def to_frame(self) -> pd.DataFrame:
        """One-row data frame with the pooled-table columns (plus df, stat and warnings)."""
        cols = [
            "k", "estimate", "se", "stat", "df", "ci_low", "ci_high", "pval", "tau2", "tau2_se",
            "tau2_ci_low", "tau2_ci_high", "I2", "H2", "Q", "Q_df", "Q_p", "pi_low", "pi_high",
            "method", "test", "converged",
        ]  # fmt: skip
        row = {c: getattr(self, c) for c in cols}
        row["warnings"] = "; ".join(self.warnings)
        return pd.DataFrame([row])

    def summary(self) -> str:
        """A text summary laid out like metafor's ``print.rma.uni``."""
        lvl = f"{100 * self.level:g}%"
        kind = "Fixed-Effects Model" if self.method == "FE" else "Random-Effects Model"
        lines = [f"{kind} (k = {self.k}; tau^2 estimator: {self.method})", ""]
        if self.method != "FE":
            lines += [
                f"tau^2 (estimated amount of total heterogeneity): {self.tau2:.4f} "
                f"(SE = {self.tau2_se:.4f}; {lvl} Q-profile CI {self.tau2_ci_low:.4f} "
                f"to {self.tau2_ci_high:.4f})",
                f"tau (square root of estimated tau^2 value):      {np.sqrt(self.tau2):.4f}",
            ]
        lines += [
            f"I^2 (total heterogeneity / total variability):   {self.I2:.2f}%",
            f"H^2 (total variability / sampling variability):  {self.H2:.2f}",
            "",
            "Test for Heterogeneity:",
            f"Q(df = {self.Q_df}) = {self.Q:.4f}, p-val {_fmt_p(self.Q_p)}",
            "",
            "Model Results:",
            "",
        ]
        head = f"{'estimate':>9} {'se':>8} {self.stat_name + 'val':>8} "
        head += f"{'df':>4} " if self.df is not None else ""
        head += f"{'pval':>8} {'ci.lb':>8} {'ci.ub':>8}"
        row = f"{self.estimate:>9.4f} {self.se:>8.4f} {self.stat:>8.4f} "
        row += f"{self.df:>4d} " if self.df is not None else ""
        row += f"{_fmt_p(self.pval, bare=True):>8} {self.ci_low:>8.4f} {self.ci_high:>8.4f}"
        lines += [head, row, "", f"Prediction interval: {self.pi_low:.4f} to {self.pi_high:.4f}"]
        lines += [f"Warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


@dataclass
class RegressionResult:
    """A fitted meta-regression (metafor ``rma(yi, vi, mods = ...)``)."""

    names: list[str]
    beta: Array
    se: Array
    stat: Array
    pval: Array
    ci_low: Array
    ci_high: Array
    vcov: Array
    df: int | None
    tau2: float
    tau2_se: float
    I2: float
    H2: float
    R2: float | None
    QE: float
    QE_df: int
    QE_p: float
    QM: float
    QM_df: tuple[int, int | None]
    QM_p: float
    fitted: Array
    residuals: Array
    hat: Array
    weights: Array
    k: int
    p: int
    method: str
    test: str
    level: float
    loglik_ml: float
    loglik_reml: float
    warnings: list[str] = field(default_factory=list)

    def coef_table(self) -> pd.DataFrame:
        """Coefficient table: estimate, se, z or t, p-value and CI per coefficient."""
        return pd.DataFrame(
            {"term": self.names, "estimate": self.beta, "se": self.se, "stat": self.stat,
             "pval": self.pval, "ci_low": self.ci_low, "ci_high": self.ci_high}
        )  # fmt: skip


def _fmt_p(p: float, bare: bool = False) -> str:
    if not np.isfinite(p):
        return "NA"
    if p < 1e-4:
        return "<.0001" if bare else "< .0001"
    return f"{p:.4f}" if bare else f"= {p:.4f}"


def _as_arrays(yi: ArrayLike, vi: ArrayLike) -> tuple[Array, Array]:
    y = np.asarray(yi, dtype=float).ravel()
    v = np.asarray(vi, dtype=float).ravel()
    if y.shape != v.shape:
        raise ValueError(f"yi and vi differ in length ({y.size} vs {v.size})")
    if y.size == 0:
        raise ValueError("no studies: yi is empty")
    bad = ~np.isfinite(y) | ~np.isfinite(v)
    if bad.any():
        raise ValueError(f"yi/vi not finite at positions {np.flatnonzero(bad).tolist()}")
    if (v <= 0).any():
        raise ValueError(f"vi must be > 0; not at positions {np.flatnonzero(v <= 0).tolist()}")
    return y, v


def _design(X: ArrayLike | pd.DataFrame, k: int) -> tuple[Array, list[str]]:
    if isinstance(X, pd.DataFrame):
        names = [str(c) for c in X.columns]
        X = X.to_numpy(dtype=float)
    else:
        X = np.asarray(X, dtype=float)
        if X.ndim == 1:
            X = X[:, None]
        names = [f"x{j}" for j in range(X.shape[1])]
    if X.shape[0] != k:
        raise ValueError(f"design has {X.shape[0]} rows for {k} studies")
    if np.linalg.matrix_rank(X) < X.shape[1]:
        raise ValueError("design matrix is not of full rank; cannot fit the model")
    return X, names


def _is_intercept(col: Array) -> bool:
    return bool(np.all(col == 1.0))


def _tau2_with_fallback(
    y: Array, v: Array, X: Array, methods: Sequence[str], control: Control
) -> tuple[Tau2Estimate | None, str, list[str]]:
    """Try the estimators in order, as metafor does for ``method = c("REML", "DL")``."""
    notes: list[str] = []
    for m in methods:
        if m == "FE":
            return None, "FE", notes
        try:
            return estimate_tau2(y, v, X, m, control), m, notes
        except ConvergenceError as err:
            notes.append(f"{m} failed ({err}); falling back")
    raise ConvergenceError("; ".join(notes) or "no estimator succeeded")


def _core(
    y: Array,
    v: Array,
    X: Array,
    methods: Sequence[str],
    test: str,
    level: float,
    control: Control,
) -> dict:
    """Everything metafor's rma.uni computes for one model; shared by both public fits."""
    k, p = X.shape
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"unknown method {m!r}; expected one of {METHODS}")
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}; expected one of {TESTS}")
    warnings: list[str] = []
    if k > p:
        est, method, notes = _tau2_with_fallback(y, v, X, methods, control)
        warnings += notes
    else:
        est, method = None, methods[0]
    tau2 = 0.0 if est is None else est.tau2
    if est is not None:
        warnings += list(est.warnings)
    if np.max(v) / np.min(v) >= 1e7:
        warnings.append(
            "ratio of largest to smallest sampling variance >= 1e7: results may be unstable"
        )

    w = 1.0 / (v + tau2)
    proj = Projection.build(w, X)
    beta = proj.coef(y)
    vb = proj.xtwx_inv()
    resid = y - X @ beta
    rss_f = float(np.sum(w * resid**2))
    if test == "knha":
        if method == "FE":
            warnings.append("Knapp-Hartung is not meant for fixed-effect models (as metafor warns)")
        s2w = 0.0 if rss_f <= np.finfo(float).eps else rss_f / (k - p)
        if s2w == 0.0 and k > p:
            warnings.append("Knapp-Hartung scale factor is 0 (residuals vanish): SEs are 0")
        vb = s2w * vb
        ddf: int | None = k - p
    else:
        ddf = None
    se = np.sqrt(np.diag(vb))
    with np.errstate(divide="ignore", invalid="ignore"):
        zval = beta / se
    alpha = 1.0 - level
    if ddf is not None:
        if ddf > 0:
            pval = 2 * stats.t.sf(np.abs(zval), ddf)
            crit = float(stats.t.isf(alpha / 2, ddf))
        else:
            pval, crit = np.full(p, np.nan), np.nan
    else:
        pval = 2 * stats.norm.sf(np.abs(zval))
        crit = float(stats.norm.isf(alpha / 2))

    # Heterogeneity: Q with weights 1 / v_i, I^2 and H^2 from tau^2 (metafor i2def "1").
    if k > p:
        fe = Projection.build(1.0 / v, X)
        qe = max(0.0, fe.quad(y - y.mean()))
        qe_p = float(stats.chi2.sf(qe, k - p))
        vt = (k - p) / fe.trace()
        if method == "FE":
            i2 = max(0.0, 100.0 * (qe - (k - p)) / qe) if qe > 0 else 0.0
            h2 = qe / (k - p)
        else:
            i2 = 100.0 * tau2 / (vt + tau2)
            h2 = tau2 / vt + 1.0
    else:
        qe, qe_p, i2, h2, vt = 0.0, 1.0, 0.0, 1.0, 0.0

    logdet_xwx = 2.0 * float(np.sum(np.log(np.abs(np.diag(proj.R)))))
    logdet_xx = float(np.linalg.slogdet(X.T @ X)[1])
    ll_ml = -0.5 * k * np.log(2 * np.pi) - 0.5 * np.sum(np.log(v + tau2)) - 0.5 * rss_f
    ll_reml = (
        -0.5 * (k - p) * np.log(2 * np.pi) + 0.5 * logdet_xx - 0.5 * np.sum(np.log(v + tau2))
        - 0.5 * logdet_xwx - 0.5 * rss_f
    )  # fmt: skip
    return dict(
        k=k, p=p, beta=beta, vb=vb, se=se, zval=zval, pval=pval, crit=crit, ddf=ddf,
        ci_low=beta - crit * se, ci_high=beta + crit * se, tau2=tau2,
        tau2_se=float("nan") if est is None else est.se,
        iterations=0 if est is None else est.iterations,
        method=method, QE=qe, QE_p=qe_p, I2=i2, H2=h2, vt=vt, w=w, proj=proj, resid=resid,
        ll_ml=float(ll_ml), ll_reml=float(ll_reml), warnings=warnings,
    )  # fmt: skip


def _methods(method: str | Sequence[str]) -> list[str]:
    return [method.upper()] if isinstance(method, str) else [m.upper() for m in method]


def fit_random_effects(
    yi: ArrayLike,
    vi: ArrayLike,
    method: str | Sequence[str] = "REML",
    test: str = "z",
    level: float = 0.95,
    control: Control | None = None,
    compute_tau2_ci: bool = True,
) -> RMAResult:
    """Fit a random-effects (or, with ``method="FE"``, fixed-effect) model: metafor ``rma``.

    ``method`` is one of FE, DL, HE, HS, SJ, PM, EB, ML, REML, or a sequence tried in order
    when an estimator fails to converge (metafor's ``method = c("REML", "DL")``); the estimator
    actually used is in ``result.method`` and the fallback is recorded in ``result.warnings``.
    ``test`` is "z" (Wald) or "knha" (Knapp-Hartung). With k = 1 nothing is pooled: the single
    study's own estimate and Wald interval are returned, with a warning saying so.
    ``control`` sets metafor's stopping rules for the fit and the tau^2 CI
    (:class:`~.control.Control`; None = metafor's defaults). ``compute_tau2_ci=False`` skips the
    Q-profile CI (e.g. for many refits): its bounds and the I^2 / H^2 CIs are then NaN and the
    warning :data:`TAU2_CI_SKIPPED` says so.
    """
    ctl = resolve(control)
    y, v = _as_arrays(yi, vi)
    k = y.size
    methods = _methods(method)
    if k == 1:
        return _single_study(y, v, methods[0], test, level)
    X = np.ones((k, 1))
    fit = _core(y, v, X, methods, test, level, ctl)
    warnings = fit["warnings"]
    tau2 = fit["tau2"]
    se = float(fit["se"][0])
    est = float(fit["beta"][0])
    crit = fit["crit"]
    pi_half = crit * np.sqrt(se**2 + tau2)
    if fit["method"] == "FE":
        ci_t2 = (np.nan, np.nan)
        i2_ci = h2_ci = (np.nan, np.nan)
    elif not compute_tau2_ci:
        ci_t2 = i2_ci = h2_ci = (np.nan, np.nan)
        warnings.append(TAU2_CI_SKIPPED)
    else:
        ci = qprofile_ci(y, v, X, tau2, level, ctl)
        if ci.note:
            warnings.append(f"tau^2 CI: {ci.note}")
        ci_t2 = (ci.low, ci.high)
        vt = fit["vt"]
        i2_ci = tuple(100 * t / (vt + t) for t in ci_t2)
        h2_ci = tuple(t / vt + 1 for t in ci_t2)
    if k == 2 and test == "knha":
        warnings.append("k = 2: Knapp-Hartung uses a t distribution with 1 df (very wide CI)")
    if tau2 == 0.0 and fit["method"] != "FE":
        warnings.append("tau^2 estimated at the boundary (0)")
    return RMAResult(
        k=k, estimate=est, se=se, stat=float(fit["zval"][0]), df=fit["ddf"],
        ci_low=float(fit["ci_low"][0]), ci_high=float(fit["ci_high"][0]),
        pval=float(fit["pval"][0]),
        tau2=tau2, tau2_se=fit["tau2_se"], tau2_ci_low=ci_t2[0], tau2_ci_high=ci_t2[1],
        I2=fit["I2"], H2=fit["H2"], Q=fit["QE"], Q_df=k - 1, Q_p=fit["QE_p"],
        pi_low=est - pi_half, pi_high=est + pi_half, weights=100 * fit["w"] / fit["w"].sum(),
        method=fit["method"], test=test, level=level, converged=True, iterations=fit["iterations"],
        yi=y, vi=v, I2_ci_low=i2_ci[0], I2_ci_high=i2_ci[1], H2_ci_low=h2_ci[0],
        H2_ci_high=h2_ci[1], loglik_ml=fit["ll_ml"], loglik_reml=fit["ll_reml"], warnings=warnings,
    )  # fmt: skip


def _single_study(y: Array, v: Array, method: str, test: str, level: float) -> RMAResult:
    se = float(np.sqrt(v[0]))
    crit = float(stats.norm.isf((1 - level) / 2))
    z = float(y[0] / se)
    nan = float("nan")
    return RMAResult(
        k=1, estimate=float(y[0]), se=se, stat=z, df=None, ci_low=float(y[0] - crit * se),
        ci_high=float(y[0] + crit * se), pval=float(2 * stats.norm.sf(abs(z))), tau2=0.0,
        tau2_se=nan, tau2_ci_low=nan, tau2_ci_high=nan, I2=0.0, H2=1.0, Q=0.0, Q_df=0, Q_p=1.0,
        pi_low=float(y[0] - crit * se), pi_high=float(y[0] + crit * se),
        weights=np.array([100.0]), method=method, test="z",
        level=level, converged=True, iterations=0, yi=y, vi=v,
        warnings=["k = 1: no pooling; the single study's own estimate and Wald CI are shown "
                  "(tau^2 = 0, so the prediction interval equals the CI; test z, as metafor)"],
    )  # fmt: skip


def fit_meta_regression(
    yi: ArrayLike,
    vi: ArrayLike,
    X: ArrayLike | pd.DataFrame,
    method: str | Sequence[str] = "REML",
    test: str = "z",
    level: float = 0.95,
    control: Control | None = None,
) -> RegressionResult:
    """Mixed-effects meta-regression, metafor ``rma(yi, vi, mods = X)``.

    ``X`` is the full design (include the intercept column yourself). The omnibus test QM
    covers every coefficient except the intercept (all of them if there is no intercept);
    under Knapp-Hartung it is an F statistic (QM / m) with (m, k - p) df, as metafor reports.
    R^2 is metafor's default: 100 max(0, (tau^2_RE - tau^2_ME) / tau^2_RE) (Raudenbush 2009),
    with tau^2_RE from the intercept-only model fitted with the same ``control`` (as metafor).
    ``control``: metafor's stopping rules (:class:`~.control.Control`; None = defaults).
    """
    ctl = resolve(control)
    y, v = _as_arrays(yi, vi)
    k = y.size
    Xa, names = _design(X, k)
    methods = _methods(method)
    if k <= Xa.shape[1]:
        raise ValueError(f"k = {k} studies cannot support {Xa.shape[1]} coefficients")
    fit = _core(y, v, Xa, methods, test, level, ctl)
    p = Xa.shape[1]
    is_int = np.array([_is_intercept(Xa[:, j]) for j in range(p)])
    btt = np.flatnonzero(~is_int) if (is_int.any() and p > 1) else np.arange(p)
    b, vb = fit["beta"][btt], fit["vb"][np.ix_(btt, btt)]
    with np.errstate(divide="ignore", invalid="ignore"):
        qm = (
            float(b @ np.linalg.solve(vb, b))
            if np.all(np.isfinite(vb)) and np.linalg.det(vb) != 0
            else np.nan
        )
    m = btt.size
    if fit["ddf"] is not None:
        qm /= m
        qm_df: tuple[int, int | None] = (m, k - p)
        qm_p = float(stats.f.sf(qm, m, k - p))
    else:
        qm_df = (m, None)
        qm_p = float(stats.chi2.sf(qm, m))
    r2 = _r2(y, v, Xa, fit, test, is_int, ctl)
    hat = fit["proj"].hat_diag()
    return RegressionResult(
        names=names, beta=fit["beta"], se=fit["se"], stat=fit["zval"], pval=fit["pval"],
        ci_low=fit["ci_low"], ci_high=fit["ci_high"], vcov=fit["vb"], df=fit["ddf"],
        tau2=fit["tau2"], tau2_se=fit["tau2_se"], I2=fit["I2"], H2=fit["H2"], R2=r2,
        QE=fit["QE"], QE_df=k - p, QE_p=fit["QE_p"], QM=qm, QM_df=qm_df, QM_p=qm_p,
        fitted=Xa @ fit["beta"], residuals=fit["resid"], hat=hat,
        weights=100 * fit["w"] / fit["w"].sum(), k=k, p=p, method=fit["method"], test=test,
        level=level, loglik_ml=fit["ll_ml"], loglik_reml=fit["ll_reml"], warnings=fit["warnings"],
    )  # fmt: skip


def _r2(
    y: Array, v: Array, X: Array, fit: dict, test: str, is_int: Array, control: Control
) -> float | None:
    """Pseudo-R^2 as metafor (only for models with an intercept and other moderators)."""
    if not is_int.any() or X.shape[1] == 1:
        return None
    if fit["method"] == "FE":
        if np.var(y) == 0:
            return 0.0
        w = 1.0 / v
        ybar = np.sum(w * y) / w.sum()
        tss = np.sum(w * (y - ybar) ** 2)
        rss = np.sum(w * fit["resid"] ** 2)
        k, p = X.shape
        adj = 1 - (rss / tss) * (k - 1) / (k - p)
        return max(0.0, 100 * adj)
    try:
        base = _core(y, v, np.ones((y.size, 1)), [fit["method"]], test, 0.95, control)
    except ConvergenceError:
        return None
    tau2_re = base["tau2"]
    if tau2_re == 0:
        return 0.0
    return max(0.0, 100 * (tau2_re - fit["tau2"]) / tau2_re)
