"""Model diagnostics for a random-effects meta-analysis: leave-one-out, influence, cumulative.

Each function refits the intercept-only model of ``timecourse_meta.models.rma`` on subsets of the
studies
and follows metafor 3.8.1 step for step (``leave1out.rma.uni``, ``influence.rma.uni``,
``cumul.rma.uni``; Viechtbauer & Cheung 2010, "Outlier and influence diagnostics for
meta-analysis", Res Synth Methods 1:112-125). A refit that fails is not dropped: its row holds NaN
with ``converged=False`` and the reason is listed in ``DataFrame.attrs["warnings"]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from timecourse_meta.distributions import chi2_cdf
from timecourse_meta.models.rma import TAU2_CI_SKIPPED, RMAResult, fit_random_effects
from timecourse_meta.schema import FIT_COLUMNS

__all__ = ["cumulative", "fit_pooled", "influence", "leave_one_out", "pooled_row"]

Array = NDArray[np.float64]


def as_study_arrays(yi: ArrayLike, vi: ArrayLike, *, min_k: int = 1) -> tuple[Array, Array]:
    """Validate effects and sampling variances: 1-D, same length, finite, vi > 0, k >= min_k.

    Missing values raise instead of being dropped, so no study disappears silently.
    """
    y = np.asarray(yi, dtype=float).reshape(-1)
    v = np.asarray(vi, dtype=float).reshape(-1)
    if y.shape != v.shape:
        raise ValueError(f"yi and vi differ in length ({y.size} vs {v.size})")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(v))):
        raise ValueError("yi and vi must be finite (remove or impute missing studies first)")
    if np.any(v <= 0):
        raise ValueError("sampling variances vi must be positive")
    if y.size < min_k:
        raise ValueError(f"need at least {min_k} studies, got {y.size}")
    return y, v


def fit_pooled(
    yi: ArrayLike,
    vi: ArrayLike,
    method: str = "REML",
    test: str = "z",
    level: float = 0.95,
    compute_tau2_ci: bool = True,
) -> RMAResult:
    """``fit_random_effects`` with metafor's k = 1 rule: rma.uni sets test="z" when k = 1.

    (With k = 1 tau^2 is 0 and the estimate is the study itself; the engine does that.)
    ``compute_tau2_ci=False`` skips the Q-profile CI of tau^2 (see ``fit_random_effects``).
    """
    y, v = as_study_arrays(yi, vi, min_k=1)
    return fit_random_effects(
        y,
        v,
        method=method,
        test="z" if y.size == 1 else test,
        level=level,
        compute_tau2_ci=compute_tau2_ci,
    )


def pooled_row(res: RMAResult | None) -> list[float]:
    """The FIT_COLUMNS of a fit as floats (NaN for a failed fit, which is logged)."""
    if res is None:
        return [np.nan] * len(FIT_COLUMNS)
    return [float(getattr(res, c)) for c in FIT_COLUMNS]


def _try_fit(
    y: Array,
    v: Array,
    method: str,
    test: str,
    level: float,
    what: str,
    log: list[str],
    compute_tau2_ci: bool = True,
) -> RMAResult | None:
    """Refit, turning a failure into a logged warning (metafor's try() leaves NA in that row).

    Only numerical failures (non-convergence, singular systems) are caught; invalid arguments
    still raise. With ``compute_tau2_ci=False`` (refits whose table has no tau^2 CI column)
    the CI is skipped and so is the engine's note saying so.
    """
    try:
        fit = fit_pooled(
            y, v, method=method, test=test, level=level, compute_tau2_ci=compute_tau2_ci
        )
    except (RuntimeError, ArithmeticError, np.linalg.LinAlgError) as err:
        log.append(f"{what}: fit failed ({type(err).__name__}: {err}); row set to NaN")
        return None
    log.extend(f"{what}: {w}" for w in fit.warnings if w != TAU2_CI_SKIPPED)
    return fit


def _labels(labels: Sequence[object] | None, k: int) -> list[object]:
    if labels is None:
        return list(range(k))
    out = list(labels)
    if len(out) != k:
        raise ValueError(f"labels has length {len(out)}, expected {k}")
    return out


def _table(fits: list[RMAResult | None], index: list[object], name: str) -> pd.DataFrame:
    rows = [pooled_row(f) for f in fits]
    out = pd.DataFrame(rows, columns=list(FIT_COLUMNS), index=pd.Index(index, name=name))
    out["converged"] = [f is not None for f in fits]
    return out


def leave_one_out(
    yi: ArrayLike,
    vi: ArrayLike,
    method: str = "REML",
    test: str = "z",
    level: float = 0.95,
    labels: Sequence[object] | None = None,
) -> pd.DataFrame:
    """Refit the model k times, each time omitting one study (metafor ``leave1out.rma.uni``).

    Returns one row per omitted study (index ``omitted``) with estimate, se, stat (z or t),
    pval, ci_low, ci_high, Q, Q_p, tau2, I2, H2 and ``converged``. For method="FE" metafor omits
    the tau2 column; here it is kept and equals 0. ``attrs``: stat_name, method, test, warnings.
    The refits skip the Q-profile CI of tau^2 (not part of the table), so its notes are absent.
    """
    y, v = as_study_arrays(yi, vi, min_k=2)
    k = y.size
    keep = ~np.eye(k, dtype=bool)  # row i selects every study except i
    log: list[str] = []
    names = _labels(labels, k)
    fits = [
        _try_fit(y[keep[i]], v[keep[i]], method, test, level, f"omitting {names[i]!r}", log, False)
        for i in range(k)
    ]
    out = _table(fits, names, "omitted")
    out.attrs.update(
        stat_name="t" if test == "knha" else "z", method=method, test=test, warnings=log
    )
    return out


def cumulative(
    yi: ArrayLike,
    vi: ArrayLike,
    order: ArrayLike | None = None,
    method: str = "REML",
    test: str = "z",
    level: float = 0.95,
    decreasing: bool = False,
    labels: Sequence[object] | None = None,
) -> pd.DataFrame:
    """Cumulative meta-analysis: add studies one at a time (metafor ``cumul.rma.uni``).

    ``order`` holds a sort key per study (e.g. publication year); studies are added in the
    order of R's ``order(order, decreasing=decreasing)``, which is stable, so ties keep their
    input order. Without ``order`` the input order is used. Row j is the model fitted to the
    first j+1 studies; the index is the label of the study added at that step, column ``k``
    the number of studies in the model. The first row (k = 1) follows metafor: tau^2 = 0 and
    a z test (see ``fit_pooled``). The refits skip the Q-profile CI of tau^2 (not part of the
    table), so its notes are absent from ``attrs["warnings"]``.
    """
    y, v = as_study_arrays(yi, vi, min_k=1)
    k = y.size
    names = _labels(labels, k)
    if order is None:
        perm = np.arange(k)
    else:
        key = np.asarray(order)
        if key.shape != (k,):
            raise ValueError(f"order has shape {key.shape}, expected ({k},)")
        if pd.isna(key).any():
            raise ValueError("order contains missing values")
        # stable sort on dense ranks, reversing the ranks for decreasing keeps ties in order
        ranks = pd.Series(key).rank(method="dense").to_numpy()
        perm = np.argsort(-ranks if decreasing else ranks, kind="stable")
    y, v = y[perm], v[perm]
    log: list[str] = []
    fits = [
        _try_fit(y[: j + 1], v[: j + 1], method, test, level, f"first {j + 1} studies", log, False)
        for j in range(k)
    ]
    out = _table(fits, [names[i] for i in perm], "added")
    out.insert(0, "k", np.arange(1, k + 1))
    out["position"] = perm
    out.attrs.update(
        stat_name="t" if test == "knha" else "z", method=method, test=test, warnings=log
    )
    return out


def influence(
    yi: ArrayLike,
    vi: ArrayLike,
    method: str = "REML",
    test: str = "z",
    level: float = 0.95,
    labels: Sequence[object] | None = None,
) -> pd.DataFrame:
    """Case-deletion influence diagnostics (metafor ``influence.rma.uni``; Viechtbauer & Cheung
    2010) for the intercept-only model.

    With full-model estimate b, variance V (scaled by s2w under knha), weights w = 1/(v + tau2),
    and, from the fit without study i: b(-i), V(-i), tau2(-i), s2w(-i) (1 for the z test,
    RSS/(k-1-1) under knha):

    * rstudent = (y_i - b(-i)) / sqrt(v_i s2w(-i) + V(-i) + tau2(-i) s2w(-i))
    * dffits = (b - b(-i)) / sqrt(s2w(-i) h_i (tau2(-i) + v_i)),  h_i = w_i / sum(w)
    * cook.d = (b - b(-i))^2 / V;  cov.r = V(-i) / V
    * dfbetas = (b - b(-i)) / sqrt(s2w(-i) / sum_j 1/(v_j + tau2(-i)))
    * tau2.del, QE.del: tau2 and Q of the fit without study i; hat = h_i; weight = 100 h_i.
    * inf flags a study when |dffits| > 3 sqrt(p/(k-p)), pchisq(cook.d, 1) > 0.5,
      hat > 3 p/k or |dfbetas| > 1 (p = 1), exactly metafor's ``is.infl``.
    """
    y, v = as_study_arrays(yi, vi, min_k=2)
    k = y.size
    p = 1
    names = _labels(labels, k)
    full = fit_pooled(y, v, method=method, test=test, level=level)
    w = 1.0 / (v + full.tau2)
    hat = w / w.sum()
    vb = full.se**2

    keep = ~np.eye(k, dtype=bool)
    log: list[str] = [f"full model: {m}" for m in full.warnings]
    fits = [
        _try_fit(y[keep[i]], v[keep[i]], method, test, level, f"omitting {names[i]!r}", log)
        for i in range(k)
    ]

    def column(attr: str) -> Array:
        return np.array([getattr(f, attr) if f is not None else np.nan for f in fits])

    beta_del = column("estimate")
    vb_del = column("se") ** 2
    tau2_del = column("tau2")
    qe_del = column("Q")
    # s2w(-i): the knha scale factor of each deletion fit, recovered as V(-i) * sum(w(-i));
    # k = 2 deletions leave one study, which metafor fits with the z test (s2w = 1)
    w_del = 1.0 / (v[None, :] + tau2_del[:, None])  # row i: weights with tau2(-i), all studies
    sum_w_del = np.where(keep, w_del, 0.0).sum(axis=1)
    knha_del = np.array([f is not None and f.test == "knha" for f in fits])
    s2w_del = np.where(knha_del, vb_del * sum_w_del, 1.0)

    diff = full.estimate - beta_del
    resid = y - beta_del
    resid = np.where(np.abs(resid) < 100 * np.finfo(float).eps, 0.0, resid)
    rstudent = resid / np.sqrt(v * s2w_del + vb_del + tau2_del * s2w_del)
    dffits = diff / np.sqrt(s2w_del * hat * (tau2_del + v))
    vb_del_full = 1.0 / w_del.sum(axis=1)  # (X' W(-i) X)^-1 over all k studies
    dfbetas = diff / np.sqrt(s2w_del * vb_del_full)
    cook_d = diff**2 / vb
    cov_r = vb_del / vb

    # NaN criteria of a failed refit count as False, as metafor's `is.infl & !is.na(is.infl)`
    with np.errstate(invalid="ignore"):
        is_infl = (
            (np.abs(dffits) > 3 * np.sqrt(p / (k - p)))
            | (chi2_cdf(cook_d, p) > 0.5)
            | (hat > 3 * p / k)
            | (np.abs(dfbetas) > 1)
        )
    out = pd.DataFrame(
        {
            "rstudent": rstudent,
            "dffits": dffits,
            "cook_d": cook_d,
            "cov_r": cov_r,
            "tau2_del": tau2_del,
            "QE_del": qe_del,
            "hat": hat,
            "weight": 100 * hat,
            "dfbetas": dfbetas,
            "inf": is_infl,
            "converged": [f is not None for f in fits],
        },
        index=pd.Index(names, name="study"),
    )
    out.attrs.update(method=method, test=test, tau2=full.tau2, QE=full.Q, warnings=log)
    return out
