"""Multivariate random-effects model for effects measured at several time points (metafor rma.mv).

Model (Viechtbauer 2010, J Stat Softw 36(3); metafor 3.8 ``rma.mv`` docs; Ishak et al. 2007,
Clin Trials 4:525-539), for study i with estimates y_i at time points t_i:

    y_i = X_i beta + Z_i u_i + e_i,   u_i ~ N(0, G),   e_i ~ N(0, S_i)

* ``X_i = Z_i`` selects the rows of the time points the study reports: one mean per time point
  (``mods = ~ time - 1``).
* ``S_i``: within-study sampling covariance from ``vi`` and an assumed correlation
  (:mod:`timecourse_meta.models.within_cov`, as ``vcalc()``).
* ``G``: between-study covariance of the true effects over time points, ``random = ~ time | study``
  with ``struct`` one of ``CS``, ``HCS``, ``AR``, ``HAR``, ``UN``, or ``CAR`` (continuous-time
  AR, ``tau2 * rho^|t_j - t_k|`` over numeric times ``times`` of the time points).

Structures: :mod:`.mv_structures`; likelihood, gradient and optimiser (shared with the
continuous-time model :mod:`.time_response`): :mod:`.mv_likelihood`; Newton-Raphson with
analytic second derivatives, used from ``NEWTON_MIN_STUDIES`` studies on: :mod:`.mv_scoring`;
result objects: :mod:`.mv_results`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from timecourse_meta.distributions import chi2_sf, norm_ppf, norm_sf
from timecourse_meta.errors import TimecourseMetaError
from timecourse_meta.models.mv_likelihood import (
    GTOL,
    Blocks,
    evaluate,
    initial_total,
    make_blocks,
    maximise,
    within_only,
)
from timecourse_meta.models.mv_results import TimecourseResult, WaldTest
from timecourse_meta.models.mv_scoring import maximise_newton
from timecourse_meta.models.mv_structures import CATEGORICAL_STRUCTS as STRUCTS
from timecourse_meta.models.mv_structures import METHODS, check_within, make_structure
from timecourse_meta.models.mv_structures import STRUCTS as ALL_STRUCTS
from timecourse_meta.models.within_cov import timepoint_positions, within_correlation

__all__ = [
    "ALL_STRUCTS",
    "STRUCTS",
    "TimecourseResult",
    "WaldTest",
    "compare_fits",
    "compare_structures",
    "fit_timecourse",
]

Array = NDArray[np.float64]
# pairs (reduced, full) where the reduced G structure is a special case of the full one
NESTED_PAIRS = (
    ("CS", "HCS"),
    ("CS", "UN"),
    ("HCS", "UN"),
    ("AR", "HAR"),
    ("AR", "UN"),
    ("HAR", "UN"),
)
_EPS10 = 10 * np.finfo(float).eps  # metafor sets variance components <= 10 eps to 0
# optimiser = "auto": Newton-Raphson (mv_scoring, BFGS if it is not clean) from this many
# studies on, where one likelihood evaluation is expensive and the likelihood sharply peaked;
# below it BFGS alone, whose path (like metafor's nlminb) decides which of several local
# maxima of a small data set is reached (e.g. HAR with rho -> -1 on few studies)
NEWTON_MIN_STUDIES = 1000
OPTIMISERS = ("auto", "newton", "bfgs")


# --------------------------------------------------------------------------------------------
# data preparation


@dataclass(frozen=True)
class _Data:
    levels: list  # observed time points, in timepoint order
    positions: NDArray[np.int64]  # their positions in the full timepoint order (within AR)
    level_times: Array | None  # numeric time of each observed level (CAR), if known
    blocks: Blocks
    k: int  # rows (estimates)
    n_studies: int
    k_studies: NDArray[np.int64]  # studies per level
    pairs_seen: NDArray[np.bool_]  # (T, T): both levels reported by at least one study
    single_level_only: bool  # every study reports one time point
    warnings: list[str]


def _numeric_times(order: list, times) -> Array | None:
    """Numeric time of each time point in ``order``: ``times`` (mapping or sequence aligned with
    ``order``) or the time points themselves when they are numbers; None if neither."""
    if times is None:
        try:
            return np.array([float(t) for t in order])
        except (TypeError, ValueError):
            return None
    if isinstance(times, Mapping):
        missing = [t for t in order if t not in times]
        if missing:
            raise TimecourseMetaError(f"times has no numeric time for time point(s) {missing}")
        return np.array([float(times[t]) for t in order])
    arr = np.asarray(times, dtype=float)
    if arr.shape != (len(order),):
        raise TimecourseMetaError(f"times needs {len(order)} values (one per time point)")
    return arr


def _prepare(study, timepoint, yi, vi, within, rho, timepoint_order, times=None) -> _Data:
    """Clean inputs, map time points to positions, group studies into blocks."""
    notes: list[str] = []
    cols = {
        "study": np.asarray(study, dtype=object),
        "timepoint": np.asarray(timepoint, dtype=object),
        "yi": np.asarray(yi, dtype=float),
        "vi": np.asarray(vi, dtype=float),
    }
    lengths = {name: len(c) for name, c in cols.items()}
    if len(set(lengths.values())) != 1:
        raise TimecourseMetaError(f"study, timepoint, yi, vi must have equal length: {lengths}")
    df = pd.DataFrame(cols)
    bad = df["yi"].isna() | df["vi"].isna() | df["study"].isna() | df["timepoint"].isna()
    if bad.any():
        notes.append(f"{int(bad.sum())} row(s) with missing study/timepoint/yi/vi omitted")
        df = df[~bad].reset_index(drop=True)
    if not np.all(np.isfinite(df["yi"])) or not np.all(np.isfinite(df["vi"])):
        raise TimecourseMetaError("yi and vi must be finite")
    if np.any(df["vi"] < 0):
        raise TimecourseMetaError("sampling variances vi must be non-negative")
    dup = df.duplicated(["study", "timepoint"], keep=False)
    if dup.any():
        first = df.loc[dup, ["study", "timepoint"]].iloc[0].tolist()
        raise TimecourseMetaError(
            f"{int(dup.sum())} rows share a (study, timepoint), e.g. {first}: one estimate per "
            "study and time point is required (combine arms or add a level)"
        )
    pos_full, order = timepoint_positions(df["timepoint"].to_numpy(), timepoint_order)
    all_times = _numeric_times(order, times)
    present = np.zeros(len(order), dtype=bool)
    present[pos_full] = True
    if not present.all():
        absent = [str(order[i]) for i in np.flatnonzero(~present)]
        notes.append(
            f"time point(s) {absent} have no data and are not estimated (within-study AR lags "
            "use positions in timepoint_order; the G structure uses the observed time points "
            "only, as metafor drops unused factor levels)"
        )
    positions = np.flatnonzero(present)
    level_times = None if all_times is None else all_times[positions]
    level_of_pos = np.full(len(order), -1, dtype=np.int64)
    level_of_pos[positions] = np.arange(positions.size)
    lev = level_of_pos[pos_full]
    T = positions.size
    kind, rho = check_within(within, rho)
    if kind == "car" and level_times is None:
        raise TimecourseMetaError("within = 'car' needs numeric times of the time points")
    where = level_times if kind == "car" else positions.astype(float)
    v = df["vi"].to_numpy()

    def s_block(rows):  # (n, m) rows of n clusters -> (n, m, m) covariances
        sd = np.sqrt(v[rows])
        # one correlation matrix per distinct pattern of positions (most clusters share one)
        pats, which = np.unique(where[lev[rows]], axis=0, return_inverse=True)
        corr = np.stack([within_correlation(pt, kind, rho) for pt in pats])[which.reshape(-1)]
        return corr * sd[:, :, None] * sd[:, None, :]

    X = np.zeros((len(df), T))
    X[np.arange(len(df)), lev] = 1.0  # mods = ~ time - 1
    blocks = make_blocks(df["study"].to_numpy(), lev, df["yi"].to_numpy(), X, T, s_block,
                         stacked=True)  # fmt: skip
    k_studies = np.bincount(lev, minlength=T).astype(np.int64)
    pairs_seen = np.zeros((T, T), dtype=bool)
    for g in blocks.groups:
        pairs_seen[g.idx[:, :, None], g.idx[:, None, :]] = True
    for j in np.flatnonzero(k_studies == 1):
        notes.append(
            f"time point {order[positions[j]]!r} has a single study: its mean is estimable but "
            "rests on one estimate, and its own variance component (HCS/HAR/UN) is weakly "
            "identified"
        )
    return _Data(
        levels=[order[i] for i in positions],
        positions=positions,
        level_times=level_times,
        blocks=blocks,
        k=len(df),
        n_studies=blocks.n_clusters,
        k_studies=k_studies,
        pairs_seen=pairs_seen,
        single_level_only=all(g.idx.shape[1] == 1 for g in blocks.groups),
        warnings=notes,
    )


# --------------------------------------------------------------------------------------------
# fitting


def fit_timecourse(
    study: ArrayLike,
    timepoint: ArrayLike,
    yi: ArrayLike,
    vi: ArrayLike,
    struct: str = "HAR",
    within: str = "ar",
    rho: float = 0.5,
    method: str = "REML",
    timepoint_order: Sequence | None = None,
    level: float = 0.95,
    *,
    times: Mapping | Sequence | None = None,
    maxiter: int = 2000,
    optimiser: str = "auto",
) -> TimecourseResult:
    """Fit the multivariate time-course model (metafor ``rma.mv`` with ``mods = ~ time - 1``,
    ``random = ~ time | study``, ``struct = struct``, ``V = vcalc(...)``).

    ``within``/``rho`` give the imputed within-study correlation (:mod:`.within_cov`);
    ``timepoint_order`` orders the time points (default: sorted unique values) and defines the
    positions used for AR lags. Rows with missing values are omitted with a warning; a study
    with one time point still contributes. Non-convergence is reported in ``converged`` and
    ``warnings`` (estimates are those at the last iterate), never as silent NaN.
    ``maxiter`` caps the BFGS iterations. ``times``: numeric time of each time point (a mapping
    or a sequence in timepoint order; default the time points themselves if numeric), used by
    ``struct = "CAR"`` (``G = tau2 rho^|t_j - t_k|``, metafor ``random = ~ t | study``) and by
    ``within = "car"`` (``vcalc(vi, cluster, time1 = t, phi = rho)``). ``optimiser``:
    ``bfgs`` (:func:`.mv_likelihood.maximise`), ``newton`` (:func:`.mv_scoring.maximise_newton`:
    Newton-Raphson with analytic second derivatives, BFGS when that is not clean) or ``auto``
    (newton from ``NEWTON_MIN_STUDIES`` studies on, else bfgs).
    """
    if optimiser not in OPTIMISERS:
        raise ValueError(f"optimiser must be one of {OPTIMISERS}, got {optimiser!r}")
    struct = str(struct).upper()
    if struct not in ALL_STRUCTS:
        raise ValueError(f"struct must be one of {ALL_STRUCTS}, got {struct!r}")
    method = str(method).upper()
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not 0 < level < 1:
        raise ValueError("level must be in (0, 1)")
    within, wrho = check_within(within, rho)
    data = _prepare(study, timepoint, yi, vi, within, wrho, timepoint_order, times)
    notes = list(data.warnings)
    T = len(data.levels)
    reml = method == "REML"
    if data.k <= T:
        raise TimecourseMetaError(
            f"{data.k} estimates for {T} time-point means: need more estimates than time points"
        )
    rho_fixed = False
    if T == 1:
        rho_fixed = True
        notes.append("only one time point: G correlation fixed to 0")
    elif data.single_level_only:
        rho_fixed = True
        notes.append("every study reports a single time point: G correlation fixed to 0")
    if struct == "CAR" and data.level_times is None:
        raise TimecourseMetaError("struct 'CAR' needs numeric times of the time points (times=)")
    structure = make_structure(
        struct,
        T,
        rho_fixed=rho_fixed,
        pairs_seen=data.pairs_seen,
        level_times=data.level_times,
    )
    if structure.fixed_pairs is not None and not rho_fixed and structure.fixed_pairs.any():
        notes.append(
            "some pairs of time points never occur in the same study: their G correlation is "
            "fixed to 0 (as metafor)"
        )
    n_tau2 = T if struct in ("HCS", "HAR", "UN") else 1
    total = initial_total(data.blocks, n_tau2)
    newton = optimiser == "newton" or (optimiser == "auto" and data.n_studies >= NEWTON_MIN_STUDIES)
    theta, f, grad, nit, opt = (maximise_newton if newton else maximise)(
        data.blocks, structure, reml, structure.start(total), maxiter
    )

    G = structure.build(theta).real
    ev = evaluate(data.blocks, G, reml, grad=False)
    if ev is None:
        raise TimecourseMetaError("final marginal covariance matrix is not positive definite")
    gmax = float(np.max(np.abs(grad))) if grad.size else 0.0
    converged = bool(np.isfinite(f) and f < 1e99 and (opt.success or gmax < GTOL))
    if not converged:
        notes.append(
            f"optimiser did not converge ({opt.message}; max |gradient| = {gmax:.2g}); "
            "estimates are from the last iterate"
        )
    tau2, rho_est = structure.unpack(theta)
    tau2 = np.where(tau2 <= _EPS10, 0.0, np.asarray(tau2, dtype=float))
    # boundary flags: tau2 negligible next to the typical sampling variance, |rho| ~ 1
    vi_med = float(
        np.median(np.concatenate([np.diagonal(g.S, 0, 1, 2).ravel() for g in data.blocks.groups]))
    )
    for j in np.flatnonzero(tau2 < 1e-6 * vi_med):
        name = "tau2" if tau2.size == 1 else f"tau2 of time point {data.levels[j]!r}"
        notes.append(f"{name} is at the boundary (~0)")
    if not rho_fixed:
        r_off = np.atleast_1d(rho_est)
        if r_off.ndim == 2:
            r_off = r_off[np.tril_indices(T, -1)]
        if np.any(np.abs(r_off) > 0.9999):
            notes.append("a G correlation is at the boundary (|rho| ~ 1): G is near singular")

    # fit statistics as metafor rma.mv
    k, p = data.k, T
    n_params = p + structure.n_par
    ll = ev.ll
    fe = within_only(data.blocks)
    QE, logdet_s = fe.rss, fe.logdet_v
    if reml:
        deviance = -2 * ll
        n_ic = k - p
    else:
        ll_qe = -0.5 * k * math.log(2 * math.pi) - 0.5 * logdet_s
        deviance = -2 * (ll - ll_qe)
        n_ic = k
    aic = -2 * ll + 2 * n_params
    bic = -2 * ll + n_params * math.log(n_ic)
    m_ic = max(n_ic, n_params + 2)
    aicc = -2 * ll + 2 * n_params * m_ic / (m_ic - n_params - 1)

    beta, vcov = ev.beta, ev.vcov
    se = np.sqrt(np.diag(vcov))
    z = beta / se
    crit = norm_ppf(1 - (1 - level) / 2)
    estimates = pd.DataFrame(
        {
            "timepoint": data.levels,
            "k": data.k_studies,
            "estimate": beta,
            "se": se,
            "stat": z,
            "ci_low": beta - crit * se,
            "ci_high": beta + crit * se,
            "pval": 2 * norm_sf(np.abs(z)),
        }
    )
    QM = float(beta @ np.linalg.solve(vcov, beta))
    for msg in notes:
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
    return TimecourseResult(
        estimates=estimates,
        tau2=tau2,
        rho=rho_est if np.ndim(rho_est) else float(rho_est),
        G=G,
        vcov=vcov,
        loglik=float(ll),
        deviance=float(deviance),
        aic=float(aic),
        bic=float(bic),
        aicc=float(aicc),
        n_params=int(n_params),
        k=k,
        n_studies=data.n_studies,
        QE=float(QE),
        QE_df=k - p,
        QE_pval=float(chi2_sf(QE, k - p)),
        QM=QM,
        QM_df=p,
        QM_pval=float(chi2_sf(QM, p)),
        struct=struct,
        method=method,
        within=within,
        within_rho=wrho,
        level=level,
        converged=converged,
        iterations=nit,
        theta=theta,
        rho_fixed=rho_fixed,
        warnings=notes,
    )


def compare_structures(
    study: ArrayLike,
    timepoint: ArrayLike,
    yi: ArrayLike,
    vi: ArrayLike,
    structs: Sequence[str] = STRUCTS,
    within: str = "ar",
    rho: float = 0.5,
    method: str = "REML",
    timepoint_order: Sequence | None = None,
) -> pd.DataFrame:
    """Fit each G structure in ``structs`` to the same data and compare them: see
    :func:`compare_fits` for the table. Warnings of the individual fits are kept in their
    rows' ``note`` (not re-emitted)."""
    fits = {}
    for s in structs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            fits[str(s).upper()] = fit_timecourse(
                study, timepoint, yi, vi, s, within, rho, method, timepoint_order
            )
    return compare_fits(fits)


def compare_fits(fits: Mapping[str, TimecourseResult]) -> pd.DataFrame:
    """Compare fitted structures (metafor ``fitstats`` and ``anova(full, reduced)``).

    ``fits`` maps struct name to a result fitted to the same data with the same method.
    Tidy long format, one row per (struct, nested reduced model) pair: struct, loglik,
    n_params, AIC, BIC, AICc, converged, then ``reduced`` (a fitted structure nested in
    ``struct``: CS in HCS and UN, HCS/AR/HAR in UN, AR in HAR) with the likelihood-ratio test
    ``LRT = 2 (ll_full - ll_reduced)``, ``df`` (difference in parameters) and ``pval``
    (chi-square; conservative when the reduced model sits on the boundary of the full one,
    e.g. rho = 0), and a ``note``. A structure with no fitted nested model appears once with
    ``reduced`` = "" and LRT columns NaN, explained in ``note``; CS and AR are not nested in each
    other, so compare them by AIC/BIC only. Under REML the LRT is valid because all models
    share the same fixed effects (mods = ~ time - 1).
    """
    fits = {str(s).upper(): r for s, r in fits.items()}
    if len({(r.method, r.k, r.within, r.within_rho) for r in fits.values()}) > 1:
        raise TimecourseMetaError("fits differ in method, data or within-study correlation")
    rows = []
    for s, r in fits.items():
        base = {
            "struct": s,
            "loglik": r.loglik,
            "n_params": r.n_params,
            "AIC": r.aic,
            "BIC": r.bic,
            "AICc": r.aicc,
            "converged": r.converged,
        }
        extra = f"; fit warnings: {' | '.join(r.warnings)}" if r.warnings else ""
        reduced = [a for a, b in NESTED_PAIRS if b == s and a in fits]
        for a in reduced:
            lrt = max(2 * (r.loglik - fits[a].loglik), 0.0)
            df = r.n_params - fits[a].n_params
            rows.append(
                base
                | {
                    "reduced": a,
                    "LRT": lrt,
                    "df": df,
                    "pval": float(chi2_sf(lrt, df)),
                    "note": f"{a} is nested in {s}{extra}",
                }
            )
        if not reduced:
            note = "no fitted structure is nested in this one"
            if s in ("CS", "AR") and {"CS", "AR"} <= set(fits):
                note += "; CS and AR are not nested: compare by AIC/BIC"
            rows.append(
                base
                | {"reduced": "", "LRT": np.nan, "df": np.nan, "pval": np.nan, "note": note + extra}
            )
    return pd.DataFrame(rows)
