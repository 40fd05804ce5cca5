"""Random- and fixed-effects meta-analysis and meta-regression, as metafor's ``rma.uni``.

Model: y_i = x_i' beta + u_i + e_i, u_i ~ N(0, tau^2), e_i ~ N(0, v_i) (Viechtbauer 2010,
J Stat Softw 36(3), eqs. 2-5). beta is estimated by weighted least squares with weights
1 / (v_i + tau^2). Tests and intervals:

* ``test="z"``: Wald tests and normal-quantile intervals.
* ``test="t"``: the Wald variance with t (k - p df) and F (m, k - p df) references.
* ``test="knha"``: Knapp & Hartung (2003): var(beta) is multiplied by
  s^2 = sum w_i (y_i - x_i' beta)^2 / (k - p) (set to 0 when that sum is below machine epsilon,
  as metafor does), with t (k - p df) and F (m, k - p df) reference distributions.
* ``test="adhoc"``: as knha with s^2 = max(1, s^2), never narrower than Wald (Knapp & Hartung
  2003; Jackson et al. 2017; metafor ``test = "adhoc"``).
* Prediction interval (metafor ``predict``): beta +/- crit * sqrt(se^2 + tau^2), crit from
  the same distribution as the CI (Riley et al. 2011 discuss alternatives).
* Q, I^2 and H^2 as metafor defines them (Higgins & Thompson 2002, generalised):
  Q uses weights 1 / v_i; for random-effects models I^2 = 100 tau^2 / (tau^2 + s^2) and
  H^2 = 1 + tau^2 / s^2 with the typical within-study variance s^2 = (k - p) / tr(P);
  for the fixed-effect model I^2 = 100 max(0, (Q - df) / Q) and H^2 = Q / df.

The computation itself is ``core.fit_rows`` on one row (the batch engine's code, m = 1).
Iterative steps (Fisher scoring, Paule-Mandel, the Q-profile CI) stop by metafor's rules, taken
from ``control`` (:class:`~.control.Control`, metafor's ``control`` lists; None = defaults).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import special

from timecourse_meta.models.control import Control, resolve
from timecourse_meta.models.core import METHODS, TAU2_CI_SKIPPED, TESTS, check_args, fit_rows
from timecourse_meta.models.rows import Rows
from timecourse_meta.models.tau2 import ConvergenceError

Array = NDArray[np.float64]
__all__ = ["METHODS", "TAU2_CI_SKIPPED", "TESTS", "RMAResult", "RegressionResult"]
SINGLE_STUDY_NOTE = (
    "k = 1: no pooling; the single study's own estimate and Wald CI are shown "
    "(tau^2 = 0, so the prediction interval equals the CI; test z, as metafor)"
)


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
    s2w: float = 1.0  # variance factor applied to var(beta) (Knapp-Hartung; 1 otherwise)

    @property
    def stat_name(self) -> str:
        return "z" if self.test == "z" else "t"

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
    s2w: float = 1.0  # variance factor applied to vcov (Knapp-Hartung; 1 otherwise)

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
    if np.isfinite(y.sum()) and v.min() > 0 and v.max() < np.inf:  # all valid (NaN fails both)
        return y, v
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


def _methods(method: str | Sequence[str]) -> list[str]:
    return [method.upper()] if isinstance(method, str) else [m.upper() for m in method]


def _fail_if_not_fitted(fit: dict) -> None:
    """Raise the ConvergenceError of a model whose estimators all failed (as metafor stops)."""
    if fit["failed"][0]:
        notes = [w for w in fit["warnings"][0] if w.endswith("; falling back")]
        raise ConvergenceError("; ".join(notes) or "no estimator succeeded")


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
    ``test`` is "z" (Wald), "t", "knha" (Knapp-Hartung) or "adhoc" (Knapp-Hartung never
    narrower than Wald); see ``core.py``. With k = 1 nothing is pooled: the single
    study's own estimate and Wald interval are returned, with a warning saying so.
    ``control`` sets metafor's stopping rules for the fit and the tau^2 CI
    (:class:`~.control.Control`; None = metafor's defaults). ``compute_tau2_ci=False`` skips the
    Q-profile CI (e.g. for many refits): its bounds and the I^2 / H^2 CIs are then NaN and the
    warning :data:`TAU2_CI_SKIPPED` says so. This is the batch engine's fit with m = 1.
    Raises :class:`ConvergenceError` if no listed estimator converges (only possible with
    ``control.bracket = False`` or PM's tau2.max, see ``Control``).
    """
    ctl = resolve(control)
    y, v = _as_arrays(yi, vi)
    k = y.size
    methods = _methods(method)
    check_args(methods, test)
    if k == 1:
        return _single_study(y, v, methods[0], test, level)
    fit = fit_rows(Rows.single(y, v), methods, test, level, ctl, compute_tau2_ci)
    _fail_if_not_fitted(fit)
    return result_from_row(fit, 0, y, v, test, level)


def result_from_row(fit: dict, i: int, y: Array, v: Array, test: str, level: float) -> RMAResult:
    """Row i of a ``core.fit_rows`` result (intercept-only) as an :class:`RMAResult`."""
    tau2 = float(fit["tau2"][i])
    se = float(fit["se"][i, 0])
    est = float(fit["beta"][i, 0])
    crit = float(fit["crit"][i])
    pi_half = crit * np.sqrt(se * se + tau2)
    lo, hi = float(fit["tau2_ci_low"][i]), float(fit["tau2_ci_high"][i])
    vt = float(fit["vt"][i])
    w = fit["w"][i, : y.size]
    k = y.size
    ddf = fit["ddf"]
    return RMAResult(
        k=k, estimate=est, se=se, stat=float(fit["stat"][i, 0]),
        df=None if ddf is None else k - 1, ci_low=est - crit * se, ci_high=est + crit * se,
        pval=float(fit["pval"][i, 0]), tau2=tau2, tau2_se=float(fit["tau2_se"][i]),
        tau2_ci_low=lo, tau2_ci_high=hi, I2=float(fit["I2"][i]), H2=float(fit["H2"][i]),
        Q=float(fit["QE"][i]), Q_df=k - 1, Q_p=float(fit["QE_p"][i]),
        pi_low=est - pi_half, pi_high=est + pi_half, weights=100 * w / w.sum(),
        method=str(fit["method"][i]), test=test, level=level, converged=True,
        iterations=int(fit["iterations"][i]), yi=y, vi=v,
        I2_ci_low=100 * lo / (vt + lo), I2_ci_high=100 * hi / (vt + hi),
        H2_ci_low=lo / vt + 1, H2_ci_high=hi / vt + 1, loglik_ml=float(fit["ll_ml"][i]),
        loglik_reml=float(fit["ll_reml"][i]), warnings=fit["warnings"][i], s2w=float(fit["s2w"][i]),
    )  # fmt: skip


def _single_study(y: Array, v: Array, method: str, test: str, level: float) -> RMAResult:
    se = float(np.sqrt(v[0]))
    crit = float(-special.ndtri((1 - level) / 2))
    z = float(y[0] / se)
    nan = float("nan")
    return RMAResult(
        k=1, estimate=float(y[0]), se=se, stat=z, df=None, ci_low=float(y[0] - crit * se),
        ci_high=float(y[0] + crit * se), pval=float(2 * special.ndtr(-abs(z))), tau2=0.0,
        tau2_se=nan, tau2_ci_low=nan, tau2_ci_high=nan, I2=0.0, H2=1.0, Q=0.0, Q_df=0, Q_p=1.0,
        pi_low=float(y[0] - crit * se), pi_high=float(y[0] + crit * se),
        weights=np.array([100.0]), method=method, test="z",
        level=level, converged=True, iterations=0, yi=y, vi=v,
        warnings=[SINGLE_STUDY_NOTE],
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
    check_args(methods, test)
    if k < Xa.shape[1] or (k == Xa.shape[1] and methods[0] != "FE"):
        # metafor rma.uni: a fixed-effect model may use all k observations (k = p, QE df 0)
        raise ValueError(
            "Number of parameters to be estimated is larger than the number of observations "
            f"(k = {k} studies, {Xa.shape[1]} coefficients"
            f"{'' if methods[0] == 'FE' else ' + tau^2'})"
        )
    rows = Rows.single(y, v, Xa)
    fit = fit_rows(rows, methods, test, level, ctl, tau2_ci=False)
    _fail_if_not_fitted(fit)
    warnings = [w for w in fit["warnings"][0] if w != TAU2_CI_SKIPPED]
    p = Xa.shape[1]
    is_int = np.array([_is_intercept(Xa[:, j]) for j in range(p)])
    btt = np.flatnonzero(~is_int) if (is_int.any() and p > 1) else np.arange(p)
    beta, vcov = fit["beta"][0], fit["vb"][0]
    b, vb = beta[btt], vcov[np.ix_(btt, btt)]
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
        qm_p = float(special.fdtrc(m, k - p, qm))
    else:
        qm_df = (m, None)
        qm_p = float(special.chdtrc(m, qm))
    tau2 = float(fit["tau2"][0])
    method_used = str(fit["method"][0])
    resid = fit["resid"][0]
    r2 = _r2(y, v, Xa, method_used, tau2, resid, test, is_int, ctl)
    w = fit["w"][0]
    crit = fit["crit"][0]
    se = fit["se"][0]
    return RegressionResult(
        names=names, beta=beta, se=se, stat=fit["stat"][0], pval=fit["pval"][0],
        ci_low=beta - crit * se, ci_high=beta + crit * se, vcov=vcov,
        df=None if fit["ddf"] is None else k - p, tau2=tau2, tau2_se=float(fit["tau2_se"][0]),
        I2=float(fit["I2"][0]), H2=float(fit["H2"][0]), R2=r2, QE=float(fit["QE"][0]),
        QE_df=k - p, QE_p=float(fit["QE_p"][0]), QM=qm, QM_df=qm_df, QM_p=qm_p,
        fitted=Xa @ beta, residuals=resid, hat=fit["proj"].hat_diag()[0],
        weights=100 * w / w.sum(), k=k, p=p, method=method_used, test=test, level=level,
        loglik_ml=float(fit["ll_ml"][0]), loglik_reml=float(fit["ll_reml"][0]), warnings=warnings,
        s2w=float(fit["s2w"][0]),
    )  # fmt: skip


def _r2(
    y: Array,
    v: Array,
    X: Array,
    method: str,
    tau2: float,
    resid: Array,
    test: str,
    is_int: Array,
    control: Control,
) -> float | None:
    """Pseudo-R^2 as metafor (only for models with an intercept and other moderators)."""
    if not is_int.any() or X.shape[1] == 1 or X.shape[0] == X.shape[1]:
        return None  # (k = p: no residual df, R^2 undefined)
    if method == "FE":
        if np.var(y) == 0:
            return 0.0
        w = 1.0 / v
        ybar = np.sum(w * y) / w.sum()
        tss = np.sum(w * (y - ybar) ** 2)
        rss = np.sum(w * resid**2)
        k, p = X.shape
        adj = 1 - (rss / tss) * (k - 1) / (k - p)
        return max(0.0, 100 * adj)
    base = fit_rows(Rows.single(y, v), [method], test, 0.95, control, tau2_ci=False)
    if base["failed"][0]:
        return None
    tau2_re = float(base["tau2"][0])
    if tau2_re == 0:
        return 0.0
    return max(0.0, 100 * (tau2_re - tau2) / tau2_re)
