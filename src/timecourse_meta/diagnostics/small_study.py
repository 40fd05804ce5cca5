"""Small-study effects and publication bias: Egger-type regression test and trim-and-fill.

Both follow metafor 3.8.1 line by line (``regtest``, ``trimfill.rma.uni``):

* ``regtest``: Egger et al. (1997) regression test generalised by Sterne & Egger (2005). The
  default adds the standard error as a moderator to the random-effects model (``model="rma"``);
  ``model="lm"`` is the classic weighted regression with weights 1 / v_i and a freely estimated
  multiplicative dispersion. The test of the predictor's coefficient is the asymmetry test; for
  predictors that vanish as precision grows (sei, vi, 1/n, 1/sqrt(n)) the intercept is the
  "limit estimate" (Stanley & Doucouliagos 2014, PET/PEESE), reported with its CI.
* ``trimfill``: Duval & Tweedie (2000a, 2000b) with the L0, R0 and Q0 estimators of the number
  of missing studies k0, iterating until k0 is stable, then refitting with the k0 most extreme
  studies mirrored about the trimmed estimate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import special

from timecourse_meta.diagnostics.influence import as_study_arrays, fit_pooled
from timecourse_meta.models.rma import RegressionResult, RMAResult, fit_meta_regression

__all__ = ["RegtestResult", "TrimfillResult", "regtest", "trimfill"]

Array = NDArray[np.float64]
PREDICTORS = ("sei", "vi", "ni", "ninv", "sqrtni", "sqrtninv")
LIMIT_PREDICTORS = ("sei", "vi", "ninv", "sqrtninv")  # predictor -> 0 as precision -> infinity


@dataclass(frozen=True)
class RegtestResult:
    """Egger-type regression test (metafor ``regtest``).

    ``stat`` is the z (test="z") or t (knha, or model="lm") statistic of the predictor's
    coefficient with p-value ``pval`` and ``df`` (None for z). ``est``/``ci_low``/``ci_high``
    are the limit estimate (model intercept) and its CI, None when the predictor has no limit
    interpretation (ni, sqrtni). ``beta``/``se`` hold both coefficients (intercept, predictor).
    """

    model: str
    predictor: str
    method: str | None
    test: str
    stat: float
    stat_name: str
    pval: float
    df: int | None
    est: float | None
    ci_low: float | None
    ci_high: float | None
    beta: Array
    se: Array
    tau2: float | None
    fit: RegressionResult | None
    warnings: tuple[str, ...] = field(default_factory=tuple)


def _predictor(v: Array, predictor: str, ni: ArrayLike | None) -> Array:
    """The regtest predictor column (metafor regtest: sei, vi, ni, 1/ni, sqrt(ni), 1/sqrt(ni))."""
    if predictor not in PREDICTORS:
        raise ValueError(f"predictor must be one of {PREDICTORS}, got {predictor!r}")
    if predictor == "sei":
        return np.sqrt(v)
    if predictor == "vi":
        return v
    if ni is None:
        raise ValueError(
            "No sample size information available to use this predictor "
            f"(predictor {predictor!r} needs sample sizes ni; metafor's message)"
        )
    n = np.asarray(ni, dtype=float).reshape(-1)
    if n.shape != v.shape or not np.all(np.isfinite(n)) or np.any(n <= 0):
        raise ValueError("ni must be positive, finite and one per study")
    return {"ni": n, "ninv": 1 / n, "sqrtni": np.sqrt(n), "sqrtninv": 1 / np.sqrt(n)}[predictor]


def _wls(y: Array, v: Array, X: Array, level: float) -> tuple[Array, Array, int, float]:
    """R's ``lm(y ~ X - 1, weights = 1/v)``: coefficients, SEs (residual variance estimated),
    residual df and the t critical value."""
    sw = 1.0 / np.sqrt(v)
    q, r = np.linalg.qr(X * sw[:, None])
    beta = np.linalg.solve(r, q.T @ (y * sw))
    df = y.size - X.shape[1]
    resid = (y - X @ beta) * sw
    # k = p: no residual df, so R's lm has NaN for sigma, the SEs, t and p ("NaNs produced")
    sigma2 = float(resid @ resid) / df if df > 0 else float("nan")
    r_inv = np.linalg.solve(r, np.eye(X.shape[1]))
    se = np.sqrt(sigma2 * np.sum(r_inv**2, axis=1))  # diag((R'R)^-1) = row sums of R^-1 squared
    crit = float(-special.stdtrit(df, (1 - level) / 2)) if df > 0 else float("nan")
    return beta, se, df, crit


def regtest(
    yi: ArrayLike,
    vi: ArrayLike,
    model: str = "rma",
    predictor: str = "sei",
    method: str = "REML",
    test: str = "z",
    level: float = 0.95,
    ni: ArrayLike | None = None,
) -> RegtestResult:
    """Regression test for funnel-plot asymmetry (metafor ``regtest``; Egger et al. 1997).

    model="rma": ``rma(yi, vi, mods = cbind(1, predictor), method, test)``; the asymmetry test is
    the Wald z (or knha t, k - 2 df) test of the predictor. model="lm": weighted least squares
    with weights 1/vi and estimated dispersion (classic Egger test), t on k - 2 df; ``method``
    and ``test`` are ignored there.
    """
    if model not in ("rma", "lm"):
        raise ValueError(f"model must be 'rma' or 'lm', got {model!r}")
    y, v = as_study_arrays(yi, vi, min_k=2)
    if model == "rma" and y.size == 2 and method.upper() != "FE":
        # metafor regtest on a k = 2 random-effects fit stops with this message
        raise ValueError(
            "Number of parameters to be estimated is larger than the number of observations."
        )
    X = np.column_stack([np.ones(y.size), _predictor(v, predictor, ni)])
    if np.linalg.matrix_rank(X) < 2:
        raise ValueError("design no longer of full rank after adding the predictor")
    has_limit = predictor in LIMIT_PREDICTORS
    if model == "rma":
        fit = fit_meta_regression(y, v, X, method=method, test=test, level=level)
        return RegtestResult(
            model=model, predictor=predictor, method=fit.method, test=test,
            stat=float(fit.stat[1]), stat_name="t" if fit.df is not None else "z",
            pval=float(fit.pval[1]), df=fit.df,
            est=float(fit.beta[0]) if has_limit else None,
            ci_low=float(fit.ci_low[0]) if has_limit else None,
            ci_high=float(fit.ci_high[0]) if has_limit else None,
            beta=fit.beta, se=fit.se, tau2=float(fit.tau2), fit=fit, warnings=tuple(fit.warnings),
        )  # fmt: skip
    beta, se, df, crit = _wls(y, v, X, level)
    t = beta / se
    return RegtestResult(
        model=model, predictor=predictor, method=None, test="t", stat=float(t[1]), stat_name="t",
        pval=float(2 * special.stdtr(df, -abs(t[1]))) if df > 0 else float("nan"), df=df,
        est=float(beta[0]) if has_limit else None,
        ci_low=float(beta[0] - crit * se[0]) if has_limit else None,
        ci_high=float(beta[0] + crit * se[0]) if has_limit else None,
        beta=beta, se=se, tau2=None, fit=None,
    )  # fmt: skip


@dataclass(frozen=True)
class TrimfillResult:
    """Trim-and-fill result (metafor ``trimfill.rma.uni``).

    ``k0`` studies were estimated missing on ``side`` (se_k0 its SE; p_k0 the R0 test's
    p-value, None for L0/Q0). ``fit`` is the model fitted to the filled data (the original
    model when k0 = 0); ``data`` holds yi, vi and ``filled`` (original studies first, in input
    order, then the filled ones).
    """

    k0: int
    se_k0: float
    side: str
    estimator: str
    p_k0: float | None
    iterations: int
    fit: RMAResult
    data: pd.DataFrame
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def estimate(self) -> float:
        return self.fit.estimate

    @property
    def se(self) -> float:
        return self.fit.se

    @property
    def ci_low(self) -> float:
        return self.fit.ci_low

    @property
    def ci_high(self) -> float:
        return self.fit.ci_high

    @property
    def pval(self) -> float:
        return self.fit.pval


def _rank_first(x: Array) -> Array:
    """R's ``rank(x, ties.method = "first")``: 1..k, ties broken by position."""
    ranks = np.empty(x.size, dtype=float)
    ranks[np.argsort(x, kind="stable")] = np.arange(1, x.size + 1)
    return ranks


def _k0_estimate(yc: Array, estimator: str) -> tuple[float, float]:
    """One Duval & Tweedie estimate of k0 and its SE from centred, sorted effects yc.

    Formulas as in metafor's trimfill.rma.uni (Duval & Tweedie 2000a, eqs. for L0, R0, Q0).
    """
    k = yc.size
    signed = np.sign(yc) * _rank_first(np.abs(yc))
    if estimator == "R0":
        neg = signed[signed < 0]
        if neg.size == 0:
            raise ValueError("R0 undefined: no study lies below the trimmed estimate")
        k0 = (k - np.max(-neg)) - 1
        return k0, float(np.sqrt(2 * max(0.0, k0) + 2))
    sr = float(np.sum(signed[signed > 0]))
    if estimator == "L0":
        k0 = (4 * sr - k * (k + 1)) / (2 * k - 1)
    else:  # Q0 (NaN when 2 k^2 - 4 S_r + 1/4 < 0; metafor then stops, so does trimfill)
        with np.errstate(invalid="ignore"):
            k0 = k - 0.5 - np.sqrt(2 * k**2 - 4 * sr + 0.25)
    var_sr = (
        k * (k + 1) * (2 * k + 1) + 10 * k0**3 + 27 * k0**2 + 17 * k0
        - 18 * k * k0**2 - 18 * k * k0 + 6 * k**2 * k0
    ) / 24  # fmt: skip
    with np.errstate(invalid="ignore"):
        if estimator == "L0":
            se = 4 * np.sqrt(var_sr) / (2 * k - 1)
        else:
            se = 2 * np.sqrt(var_sr) / np.sqrt((k - 0.5) ** 2 - k0 * (2 * k - k0 - 1))
    return float(k0), float(se)


def trimfill(
    yi: ArrayLike,
    vi: ArrayLike,
    estimator: str = "L0",
    side: str | None = None,
    method: str = "REML",
    test: str = "z",
    level: float = 0.95,
    maxiter: int = 100,
) -> TrimfillResult:
    """Trim and fill (Duval & Tweedie 2000; metafor ``trimfill.rma.uni``).

    side=None picks the side as metafor: fit ``rma(yi, vi, mods = sqrt(vi), method)`` and
    take "right" if the slope is negative, else "left" (missing studies are assumed on that
    side). Effects are flipped for "right", sorted (stable), and the loop trims the k0 largest,
    re-estimates the pooled effect b with ``method``, and recomputes k0 from the signed ranks of
    |y - b| until k0 repeats. Filled studies are 2 b - y_i of the k0 most extreme studies with
    their v_i; the final model is refitted with ``method``, ``test`` and ``level``.

    metafor note: ``trimfill(res)`` refits the filled data without passing res's ``test``, so for
    a knha model with k0 > 0 metafor reports a z-test fit; call with test="z" to reproduce that.
    When k0 = 0 metafor returns the original model (here: the fit with ``test``).
    """
    if estimator not in ("L0", "R0", "Q0"):
        raise ValueError(f"estimator must be 'L0', 'R0' or 'Q0', got {estimator!r}")
    if side not in (None, "left", "right"):
        raise ValueError(f"side must be None, 'left' or 'right', got {side!r}")
    y0, v0 = as_study_arrays(yi, vi, min_k=2)
    log: list[str] = []
    if side is None:
        X = np.column_stack([np.ones(y0.size), np.sqrt(v0)])
        slope = fit_meta_regression(y0, v0, X, method=method).beta[1]
        side = "right" if slope < 0 else "left"
    flip = -1.0 if side == "right" else 1.0
    ix = np.argsort(flip * y0, kind="stable")
    y, v = flip * y0[ix], v0[ix]
    k = y.size

    k0, k0_prev, iterations = 0, -1, 0
    beta, se_k0 = np.nan, np.nan
    while k0 != k0_prev:
        k0_prev = k0
        iterations += 1
        if iterations > maxiter:
            raise RuntimeError("trim and fill did not converge (maxiter reached)")
        beta = fit_pooled(y[: k - k0], v[: k - k0], method=method).estimate
        k0_raw, se_raw = _k0_estimate(y - beta, estimator)
        if not np.isfinite(k0_raw):
            raise RuntimeError(f"trim and fill: the {estimator} estimate of k0 is undefined")
        k0 = max(0, int(np.round(k0_raw)))  # R round(): half to even, as np.round
        se_k0 = float(np.maximum(0.0, se_raw))  # R max(0, NaN) is NaN, kept

    if not np.isfinite(se_k0):
        log.append(f"SE of k0 undefined (negative variance in the {estimator} formula)")
    p_k0 = None
    if estimator == "R0":
        m = np.arange(-1, k0)  # metafor: 1 - sum(choose(m + 1, m + 1) * 0.5^(m + 2))
        p_k0 = float(1 - np.sum(0.5 ** (m + 2)))
    if k0 > 0:
        filled_y = flip * (2 * beta - y[k - k0 :])  # mirror about the trimmed estimate
        yi_all = np.concatenate([y0, filled_y])
        vi_all = np.concatenate([v0, v[k - k0 :]])
    else:
        yi_all, vi_all = y0, v0
    fit = fit_pooled(yi_all, vi_all, method=method, test=test, level=level)
    log.extend(fit.warnings)
    data = pd.DataFrame({"yi": yi_all, "vi": vi_all, "filled": np.arange(yi_all.size) >= y0.size})
    return TrimfillResult(
        k0=k0, se_k0=se_k0, side=side, estimator=estimator, p_k0=p_k0, iterations=iterations,
        fit=fit, data=data, warnings=tuple(log),
    )  # fmt: skip
