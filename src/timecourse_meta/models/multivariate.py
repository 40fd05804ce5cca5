"""Multivariate random-effects model for effects measured at several time points (metafor rma.mv).

Model (Viechtbauer 2010, J Stat Softw 36(3); metafor 3.8 ``rma.mv`` docs; Ishak et al. 2007,
Clin Trials 4:525-539), for study i with estimates y_i at time points t_i:

    y_i = X_i beta + Z_i u_i + e_i,   u_i ~ N(0, G),   e_i ~ N(0, S_i)

* ``X_i = Z_i`` selects the rows of the time points the study reports: one mean per time point
  (``mods = ~ time - 1``).
* ``S_i``: within-study sampling covariance from ``vi`` and an assumed correlation
  (:mod:`timecourse_meta.models.within_cov`, as ``vcalc()``).
* ``G``: between-study covariance of the true effects over time points, ``random = ~ time | study``
  with ``struct`` one of ``CS``, ``HCS``, ``AR``, ``HAR``, ``UN``.

The marginal covariance ``V_i = S_i + Z_i G Z_i'`` is block diagonal; studies reporting the same
set of time points share ``Z_i`` and are processed together as stacked arrays (batched Cholesky).
Variance parameters maximise the REML or ML log-likelihood with metafor's exact constants
(``.ll.rma.mv``):

    ll_ML   = -k/2 log(2 pi) - 1/2 log|V| - 1/2 RSS
    ll_REML = -(k-p)/2 log(2 pi) + 1/2 log|X'X| - 1/2 log|V| - 1/2 log|X'V^-1 X| - 1/2 RSS

with RSS = (y - X b)' V^-1 (y - X b). The gradient is analytic: d ll / d theta_j =
-1/2 <A - B, dG/d theta_j> with A = sum_i Z_i' P_ii Z_i (W_ii for ML), B = sum_i Z_i' e_i e_i' Z_i,
e = P y (Harville 1977, JASA 72:320-338); dG/d theta is taken by complex-step differentiation.
Parametrisation as metafor: log tau^2, atanh rho; ``UN`` through a Cholesky factor of G (log of
its diagonal), which keeps G positive definite.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, stats

from timecourse_meta.errors import TimecourseMetaError
from timecourse_meta.models.within_cov import check_within, timepoint_positions, within_correlation

__all__ = [
    "STRUCTS",
    "TimecourseResult",
    "WaldTest",
    "compare_fits",
    "compare_structures",
    "fit_timecourse",
]

Array = NDArray[np.float64]
STRUCTS = ("CS", "HCS", "AR", "HAR", "UN")
METHODS = ("REML", "ML")
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
_CSTEP = 1e-30  # complex-step size: derivative exact to rounding, no cancellation
_GTOL = 1e-5  # gradient tolerance (max |d ll / d theta|) for declaring convergence


# --------------------------------------------------------------------------------------------
# data preparation


@dataclass(frozen=True)
class _Pattern:
    """Studies that report the same set of time points (same Z_i)."""

    idx: NDArray[np.int64]  # indices of the observed levels, ascending (m,)
    y: Array  # (n_s, m)
    S: Array  # (n_s, m, m) within-study covariance


@dataclass(frozen=True)
class _Data:
    levels: list  # observed time points, in timepoint order
    positions: NDArray[np.int64]  # their positions in the full timepoint order (within AR)
    patterns: list[_Pattern]
    k: int  # rows (estimates)
    n_studies: int
    k_studies: NDArray[np.int64]  # studies per level
    pairs_seen: NDArray[np.bool_]  # (T, T): both levels reported by at least one study
    warnings: list[str]


def _prepare(study, timepoint, yi, vi, within, rho, timepoint_order) -> _Data:
    """Clean inputs, map time points to positions, group studies by reporting pattern."""
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
    level_of_pos = np.full(len(order), -1, dtype=np.int64)
    level_of_pos[positions] = np.arange(positions.size)
    lev = level_of_pos[pos_full]
    n_levels = positions.size
    if n_levels > 62:
        raise TimecourseMetaError("at most 62 distinct time points are supported")

    # sort rows by study, then level; study pattern = bitmask of its levels
    scode = pd.factorize(df["study"], sort=False)[0]
    ordr = np.lexsort((lev, scode))
    scode_s, lev_s = scode[ordr], lev[ordr]
    n = len(df)
    starts = np.flatnonzero(np.r_[True, scode_s[1:] != scode_s[:-1]])
    sizes = np.diff(np.r_[starts, n])
    masks = np.add.reduceat(np.left_shift(np.int64(1), lev_s.astype(np.int64)), starts)
    y_s = df["yi"].to_numpy()[ordr]
    v_s = df["vi"].to_numpy()[ordr]
    kind, rho = check_within(within, rho)

    patterns = []
    for mask in np.unique(masks):  # loop over reporting patterns, not studies
        sel = np.flatnonzero(masks == mask)
        m = int(sizes[sel[0]])
        rows_sorted = starts[sel][:, None] + np.arange(m)[None, :]
        idx = lev_s[rows_sorted[0]]
        corr = within_correlation(positions[idx], kind, rho)
        sd = np.sqrt(v_s[rows_sorted])
        patterns.append(
            _Pattern(
                idx=idx.astype(np.int64),
                y=y_s[rows_sorted],
                S=corr[None, :, :] * sd[:, :, None] * sd[:, None, :],
            )
        )
    k_studies = np.bincount(lev, minlength=n_levels).astype(np.int64)
    pairs_seen = np.zeros((n_levels, n_levels), dtype=bool)
    for p in patterns:
        pairs_seen[np.ix_(p.idx, p.idx)] = True
    for j in np.flatnonzero(k_studies == 1):
        notes.append(
            f"time point {order[positions[j]]!r} has a single study: its mean is estimable but "
            "rests on one estimate, and its own variance component (HCS/HAR/UN) is weakly "
            "identified"
        )
    return _Data(
        levels=[order[i] for i in positions],
        positions=positions,
        patterns=patterns,
        k=n,
        n_studies=int(starts.size),
        k_studies=k_studies,
        pairs_seen=pairs_seen,
        warnings=notes,
    )


# --------------------------------------------------------------------------------------------
# G structures


@dataclass(frozen=True)
class _Structure:
    """Map an unconstrained parameter vector theta to G (works for complex theta)."""

    name: str
    n_par: int
    build: Callable[[np.ndarray], np.ndarray]
    start: Callable[[float], np.ndarray]  # theta from metafor's initial total variance
    unpack: Callable[[np.ndarray], tuple[Array, object]]  # theta -> (tau2, rho)
    rho_fixed: bool = False
    fixed_pairs: NDArray[np.bool_] | None = None


def _ar_corr(positions: NDArray[np.int64], r):
    lag = np.abs(positions[:, None] - positions[None, :]).astype(float)
    return np.where(lag == 0, 1.0, np.power(r, lag))


def _structure(struct: str, data: _Data, rho_fixed: bool) -> _Structure:
    """Parametrisation of G for one struct (metafor ``.con.E``), over the observed levels."""
    T = len(data.levels)
    pos = np.arange(T)  # metafor: AR lags over the observed levels of the inner factor
    eye = np.eye(T)
    ones = np.ones((T, T))
    nr = 0 if rho_fixed else 1

    def rho_of(theta):
        return 0.0 if rho_fixed else np.tanh(theta[-1])

    if struct in ("CS", "AR"):

        def build(theta):
            r = rho_of(theta)
            corr = eye + r * (ones - eye) if struct == "CS" else _ar_corr(pos, r)
            return np.exp(theta[0]) * corr

        return _Structure(
            struct,
            1 + nr,
            build,
            lambda total: np.r_[np.log(total), [math.atanh(0.5)] * nr],
            lambda th: (np.array([math.exp(th[0])]), float(rho_of(th))),
            rho_fixed,
        )
    if struct in ("HCS", "HAR"):

        def build(theta):
            r = rho_of(theta)
            corr = eye + r * (ones - eye) if struct == "HCS" else _ar_corr(pos, r)
            sd = np.exp(theta[:T] / 2)
            return sd[:, None] * corr * sd[None, :]

        return _Structure(
            struct,
            T + nr,
            build,
            lambda total: np.r_[np.full(T, np.log(total / T)), [math.atanh(0.5)] * nr],
            lambda th: (np.exp(th[:T]), float(rho_of(th))),
            rho_fixed,
        )
    if struct == "UN":
        # Cholesky parametrisation (metafor's default for UN): G = L L', diag(L) = exp(theta).
        # Pairs of time points that never occur in the same study have their covariance fixed
        # to 0 (metafor: "Corresponding rho value(s) fixed to 0"); no V_i uses such a pair, so
        # each V_i stays a block of L L' plus S_i and is positive definite.
        tril = np.tril_indices(T, -1)
        keep = data.pairs_seen & ~np.eye(T, dtype=bool) if not rho_fixed else np.zeros((T, T))
        mask = np.where(keep, 1.0, 0.0) + eye

        def build(theta):
            L = np.zeros((T, T), dtype=theta.dtype)
            L[np.diag_indices(T)] = np.exp(theta[:T])
            L[tril] = theta[T:]
            return (L @ L.T) * mask

        def start(total):
            g0 = total / T * (eye + 0.5 * (ones - eye))
            L = np.linalg.cholesky(g0)
            return np.r_[np.log(np.diag(L)), L[tril]]

        def unpack(th):
            G = build(th)
            sd = np.sqrt(np.diag(G))
            return np.diag(G).copy(), G / np.outer(sd, sd)

        fixed = ~keep[tril].astype(bool)
        n_free = T + int((~fixed).sum())
        return _Structure(struct, n_free, build, start, unpack, rho_fixed, fixed)
    raise ValueError(f"struct must be one of {STRUCTS}, got {struct!r}")


def _dG(structure: _Structure, theta: Array) -> Array:
    """dG/dtheta_j for all j, shape (q, T, T), by complex-step differentiation."""
    q = theta.size
    steps = theta[None, :] + 1j * _CSTEP * np.eye(q)
    return np.stack([structure.build(s).imag / _CSTEP for s in steps])


# --------------------------------------------------------------------------------------------
# likelihood


@dataclass
class _Eval:
    ll: float
    beta: Array
    vcov: Array
    rss: float
    logdet_v: float
    A_minus_B: Array | None


def _evaluate(data: _Data, G: Array, reml: bool, grad: bool) -> _Eval | None:
    """Log-likelihood (metafor constants) at G; None if some V_i is not positive definite."""
    T = len(data.levels)
    XtWX = np.zeros((T, T))
    XtWy = np.zeros(T)
    logdet_v = 0.0
    Ws = []
    for pat in data.patterns:
        ix = np.ix_(pat.idx, pat.idx)
        V = pat.S + G[ix][None, :, :]
        try:
            C = np.linalg.cholesky(V)
        except np.linalg.LinAlgError:
            return None
        logdet_v += 2.0 * np.log(np.diagonal(C, axis1=1, axis2=2)).sum()
        eye = np.broadcast_to(np.eye(pat.idx.size), V.shape)
        Cinv = np.linalg.solve(C, eye)
        W = np.swapaxes(Cinv, 1, 2) @ Cinv
        Ws.append(W)
        XtWX[ix] += W.sum(axis=0)
        XtWy[pat.idx] += np.einsum("nij,nj->i", W, pat.y)
    try:
        cx = np.linalg.cholesky(XtWX)
    except np.linalg.LinAlgError:
        return None
    vcov = np.linalg.inv(XtWX)
    vcov = (vcov + vcov.T) / 2
    beta = vcov @ XtWy
    rss = 0.0
    A = np.zeros((T, T))
    B = np.zeros((T, T))
    for pat, W in zip(data.patterns, Ws, strict=True):
        ix = np.ix_(pat.idx, pat.idx)
        e = np.einsum("nij,nj->ni", W, pat.y - beta[pat.idx][None, :])  # W_i (y_i - X_i b)
        rss += float(np.einsum("ni,ni->", pat.y - beta[pat.idx][None, :], e))
        if grad:
            Wsum = W.sum(axis=0)
            if reml:  # P_ii = W_i - W_i H_ii W_i
                Wsum = Wsum - np.einsum("nij,jk,nkl->il", W, vcov[ix], W)
            A[ix] += Wsum
            B[ix] += e.T @ e
    k, p = data.k, T
    if reml:
        logdet_xtx = float(np.log(data.k_studies).sum())  # X'X = diag(rows per level)
        logdet_xwx = 2.0 * float(np.log(np.diag(cx)).sum())
        ll = (
            -0.5 * (k - p) * math.log(2 * math.pi)
            + 0.5 * logdet_xtx
            - 0.5 * logdet_v
            - 0.5 * logdet_xwx
            - 0.5 * rss
        )
    else:
        ll = -0.5 * k * math.log(2 * math.pi) - 0.5 * logdet_v - 0.5 * rss
    return _Eval(ll, beta, vcov, rss, logdet_v, (A - B) if grad else None)


def _within_only(data: _Data) -> tuple[float, float]:
    """QE (residual Q of the fixed-effects fit with V = S) and log|S| (metafor's ll.QE)."""
    T = len(data.levels)
    ev = _evaluate(data, np.zeros((T, T)), reml=False, grad=False)
    if ev is None:
        raise TimecourseMetaError("within-study covariance matrix is not positive definite")
    return ev.rss, ev.logdet_v


def _initial_total(data: _Data, n_tau2: int) -> float:
    """metafor's starting value: max(0.001 * n_tau2, var(y - X b_FE) - 1 / mean(1 / vi))."""
    T = len(data.levels)
    ev = _evaluate(data, np.zeros((T, T)), reml=False, grad=False)
    if ev is None:
        raise TimecourseMetaError("within-study covariance matrix is not positive definite")
    resid = np.concatenate([(p.y - ev.beta[p.idx][None, :]).ravel() for p in data.patterns])
    vi = np.concatenate([np.diagonal(p.S, axis1=1, axis2=2).ravel() for p in data.patterns])
    return max(0.001 * n_tau2, float(np.var(resid, ddof=1)) - 1.0 / float(np.mean(1.0 / vi)))


# --------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class WaldTest:
    """Wald test of H0: L beta = 0 (metafor ``anova(res, X = L)``)."""

    hypothesis: str
    L: Array
    estimate: Array  # L beta, one per row
    se: Array
    z: Array
    pval: Array  # per-row two-sided p
    QM: float  # joint chi-square statistic
    df: int
    QM_pval: float


@dataclass
class TimecourseResult:
    """A fitted time-course model; see :func:`fit_timecourse`."""

    estimates: pd.DataFrame
    tau2: Array
    rho: float | Array
    G: Array
    vcov: Array
    loglik: float
    deviance: float
    aic: float
    bic: float
    aicc: float
    n_params: int
    k: int
    n_studies: int
    QE: float
    QE_df: int
    QE_pval: float
    QM: float
    QM_df: int
    QM_pval: float
    struct: str
    method: str
    within: str
    within_rho: float
    level: float
    converged: bool
    iterations: int
    theta: Array
    rho_fixed: bool
    warnings: list[str] = field(default_factory=list)

    @property
    def timepoints(self) -> list:
        return self.estimates["timepoint"].tolist()

    @property
    def beta(self) -> Array:
        return self.estimates["estimate"].to_numpy()

    def _matrix(self, L) -> tuple[Array, list[str]]:
        tps = self.timepoints
        if isinstance(L, Mapping):
            unknown = [t for t in L if t not in tps]
            if unknown:
                raise TimecourseMetaError(f"unknown time point(s) in contrast: {unknown}")
            row = np.array([float(L.get(t, 0.0)) for t in tps])
            if not np.all(np.isfinite(row)) or not np.any(row != 0):
                raise TimecourseMetaError("contrast weights must be finite and not all zero")
            return row[None, :], [_label(row, tps)]
        M = np.atleast_2d(np.asarray(L, dtype=float))
        if M.ndim != 2 or M.shape[1] != len(tps):
            raise TimecourseMetaError(f"contrast needs {len(tps)} columns (one per time point)")
        if not np.all(np.isfinite(M)) or np.any(np.all(M == 0, axis=1)):
            raise TimecourseMetaError("contrast rows must be finite and not all zero")
        return M, [_label(r, tps) for r in M]

    def wald(self, L, hypothesis: str = "") -> WaldTest:
        """Wald tests of L beta = 0: per row (z) and joint (QM, chi-square with rank(L) df)."""
        M, labels = self._matrix(L)
        est = M @ self.beta
        cov = M @ self.vcov @ M.T
        se = np.sqrt(np.diag(cov))
        z = est / se
        pval = 2 * stats.norm.sf(np.abs(z))
        df = int(np.linalg.matrix_rank(M))
        QM = float(est @ np.linalg.pinv(cov) @ est)
        return WaldTest(
            hypothesis or "; ".join(labels),
            M,
            est,
            se,
            z,
            pval,
            QM,
            df,
            float(stats.chi2.sf(QM, df)),
        )

    def contrast(self, L) -> pd.DataFrame:
        """Linear contrasts of the time-point means with Wald z tests and CIs.

        ``L``: a mapping {timepoint: weight} (e.g. ``{"7d": 1, "24h": -1}`` for 7d minus 24h),
        a weight vector (one per time point, in timepoint order) or a matrix of such rows.
        Returns one row per contrast: contrast, estimate, se, z, pval, ci_low, ci_high.
        """
        M, labels = self._matrix(L)
        w = self.wald(M)
        crit = stats.norm.ppf(1 - (1 - self.level) / 2)
        return pd.DataFrame(
            {
                "contrast": labels,
                "estimate": w.estimate,
                "se": w.se,
                "z": w.z,
                "pval": w.pval,
                "ci_low": w.estimate - crit * w.se,
                "ci_high": w.estimate + crit * w.se,
            }
        )

    def test_trend(self, kind: str = "linear") -> WaldTest:
        """Test of the time course.

        ``kind="linear"``: the least-squares slope of the time-point means on their positions
        (weights (p - mean p) / sum (p - mean p)^2, positions in timepoint order), z test, 1 df.
        ``kind="equality"``: H0 all time-point means are equal (rows: each mean minus the
        first), QM chi-square with T - 1 df.
        """
        T = len(self.timepoints)
        if T < 2:
            raise TimecourseMetaError("a trend test needs at least two time points")
        if kind == "linear":
            pos = np.arange(T, dtype=float)
            c = pos - pos.mean()
            return self.wald(c[None, :] / (c @ c), "linear trend over time-point positions")
        if kind == "equality":
            M = np.hstack([-np.ones((T - 1, 1)), np.eye(T - 1)])
            return self.wald(M, "all time-point means equal")
        raise ValueError("kind must be 'linear' or 'equality'")

    def summary(self, digits: int = 4) -> str:
        """Printable summary laid out like metafor's ``print.rma.mv``."""
        return _format_summary(self, digits)

    def __str__(self) -> str:
        return self.summary()


def _label(row: Array, tps: list) -> str:
    """Readable contrast label, positive terms first: {7d: 1, 24h: -1} -> "7d - 24h"."""
    terms = [(w, t) for w, t in zip(row, tps, strict=True) if w != 0]
    terms.sort(key=lambda wt: wt[0] < 0)  # stable: keeps timepoint order within each sign
    text = ""
    for w, t in terms:
        coef = "" if abs(w) == 1 else f"{abs(w):g}*"
        sign = ("-" if w < 0 else "") if not text else (" - " if w < 0 else " + ")
        text += f"{sign}{coef}{t}"
    return text or "0"


def _fmt_p(p: float, digits: int) -> str:
    return "<.0001" if p < 10**-digits else f"{p:.{digits}f}"


def _format_summary(res: TimecourseResult, digits: int) -> str:
    d = digits
    fs = [res.loglik, res.deviance, res.aic, res.bic, res.aicc]
    lines = [
        "",
        f"Multivariate Meta-Analysis Model (k = {res.k}; method: {res.method})",
        "",
        "  ".join(f"{h:>10}" for h in ("logLik", "Deviance", "AIC", "BIC", "AICc")),
        "  ".join(f"{v:>10.{d}f}" for v in fs),
        "",
        "Variance Components:",
        "",
        f"outer factor: study (nlvls = {res.n_studies})",
        f"inner factor: time  (nlvls = {len(res.timepoints)})",
        "",
    ]
    k_lvl = res.estimates["k"].to_numpy()
    if res.tau2.size == 1:
        lines.append(f"{'':8}{'estim':>10}{'sqrt':>10}{'fixed':>7}")
        lines.append(f"{'tau^2':8}{res.tau2[0]:>10.{d}f}{math.sqrt(res.tau2[0]):>10.{d}f}{'no':>7}")
    else:
        lines.append(f"{'':10}{'estim':>10}{'sqrt':>10}{'k.lvl':>7}{'fixed':>7}  level")
        for j, t in enumerate(res.timepoints):
            lines.append(
                f"{f'tau^2.{j + 1}':10}{res.tau2[j]:>10.{d}f}{math.sqrt(res.tau2[j]):>10.{d}f}"
                f"{k_lvl[j]:>7d}{'no':>7}  {t}"
            )
    if np.ndim(res.rho) == 0:
        fixed = "yes" if res.rho_fixed else "no"
        lines.append(f"{'rho':10}{float(res.rho):>10.{d}f}{'':>10}{'':>7}{fixed:>7}")
    else:
        lines += ["", "correlation matrix (rho):"]
        R = np.asarray(res.rho)
        for j, t in enumerate(res.timepoints):
            lines.append(f"{str(t):>10}" + "".join(f"{v:>9.{d}f}" for v in R[j, : j + 1]))
    lines += [
        "",
        "Test for Residual Heterogeneity:",
        f"QE(df = {res.QE_df}) = {res.QE:.{d}f}, p-val {_fmt_pv(res.QE_pval, d)}",
        "",
        f"Test of Moderators (coefficients 1:{res.QM_df}):",
        f"QM(df = {res.QM_df}) = {res.QM:.{d}f}, p-val {_fmt_pv(res.QM_pval, d)}",
        "",
        "Model Results:",
        "",
    ]
    est = res.estimates
    head = ["estimate", "se", "zval", "pval", "ci.lb", "ci.ub"]
    w = max(8, *(len(str(t)) for t in est["timepoint"])) + 2
    lines.append(f"{'':{w}}" + "".join(f"{h:>10}" for h in head))
    for _, r in est.iterrows():
        vals = [r["estimate"], r["se"], r["stat"]]
        cells = [f"{v:>10.{d}f}" for v in vals] + [f"{_fmt_p(r['pval'], d):>10}"]
        cells += [f"{r['ci_low']:>10.{d}f}", f"{r['ci_high']:>10.{d}f}"]
        lines.append(f"{str(r['timepoint']):{w}}" + "".join(cells))
    if res.warnings:
        lines += ["", "Warnings:"] + [f"  - {m}" for m in res.warnings]
    if not res.converged:
        lines += ["", "NOTE: optimiser did not converge; results are not reliable."]
    return "\n".join(lines) + "\n"


def _fmt_pv(p: float, d: int) -> str:
    return "< .0001" if p < 10**-d else f"= {p:.{d}f}"


# --------------------------------------------------------------------------------------------
# fitting


def _maximise(data: _Data, structure: _Structure, reml: bool, theta0: Array, maxiter: int):
    """Maximise the (RE)ML log-likelihood over theta; BFGS with the analytic gradient."""
    big = 1e100

    def negll(theta: Array) -> tuple[float, Array]:
        G = structure.build(theta)
        ev = _evaluate(data, G, reml, grad=True)
        if ev is None or not np.isfinite(ev.ll):
            return big, np.zeros_like(theta)
        g = -0.5 * np.einsum("ij,qij->q", ev.A_minus_B, _dG(structure, theta))
        return -ev.ll, -g

    res = optimize.minimize(
        negll, theta0, jac=True, method="BFGS", options={"gtol": 1e-8, "maxiter": maxiter}
    )
    theta = res.x
    f, g = negll(theta)
    return theta, f, g, int(res.nit), res


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
    maxiter: int = 2000,
) -> TimecourseResult:
    """Fit the multivariate time-course model (metafor ``rma.mv`` with ``mods = ~ time - 1``,
    ``random = ~ time | study``, ``struct = struct``, ``V = vcalc(...)``).

    ``within``/``rho`` give the imputed within-study correlation (:mod:`.within_cov`);
    ``timepoint_order`` orders the time points (default: sorted unique values) and defines the
    positions used for AR lags. Rows with missing values are omitted with a warning; a study
    with one time point still contributes. Non-convergence is reported in ``converged`` and
    ``warnings`` (estimates are those at the last iterate), never as silent NaN.
    ``maxiter`` caps the BFGS iterations.
    """
    struct = str(struct).upper()
    if struct not in STRUCTS:
        raise ValueError(f"struct must be one of {STRUCTS}, got {struct!r}")
    method = str(method).upper()
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not 0 < level < 1:
        raise ValueError("level must be in (0, 1)")
    within, wrho = check_within(within, rho)
    data = _prepare(study, timepoint, yi, vi, within, wrho, timepoint_order)
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
    elif all(p.idx.size == 1 for p in data.patterns):
        rho_fixed = True
        notes.append("every study reports a single time point: G correlation fixed to 0")
    structure = _structure(struct, data, rho_fixed)
    if structure.fixed_pairs is not None and not rho_fixed and structure.fixed_pairs.any():
        notes.append(
            "some pairs of time points never occur in the same study: their G correlation is "
            "fixed to 0 (as metafor)"
        )
    n_tau2 = T if struct in ("HCS", "HAR", "UN") else 1
    total = _initial_total(data, n_tau2)
    theta, f, grad, nit, opt = _maximise(data, structure, reml, structure.start(total), maxiter)

    G = structure.build(theta).real
    ev = _evaluate(data, G, reml, grad=False)
    if ev is None:
        raise TimecourseMetaError("final marginal covariance matrix is not positive definite")
    gmax = float(np.max(np.abs(grad))) if grad.size else 0.0
    converged = bool(np.isfinite(f) and f < 1e99 and (opt.success or gmax < _GTOL))
    if not converged:
        notes.append(
            f"optimiser did not converge ({opt.message}; max |gradient| = {gmax:.2g}); "
            "estimates are from the last iterate"
        )
    tau2, rho_est = structure.unpack(theta)
    tau2 = np.where(tau2 <= _EPS10, 0.0, np.asarray(tau2, dtype=float))
    # boundary flags: tau2 negligible next to the typical sampling variance, |rho| ~ 1
    vi_med = float(
        np.median(np.concatenate([np.diagonal(p.S, 0, 1, 2).ravel() for p in data.patterns]))
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
    QE, logdet_s = _within_only(data)
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
    crit = stats.norm.ppf(1 - (1 - level) / 2)
    estimates = pd.DataFrame(
        {
            "timepoint": data.levels,
            "k": data.k_studies,
            "estimate": beta,
            "se": se,
            "stat": z,
            "ci_low": beta - crit * se,
            "ci_high": beta + crit * se,
            "pval": 2 * stats.norm.sf(np.abs(z)),
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
        QE_pval=float(stats.chi2.sf(QE, k - p)),
        QM=QM,
        QM_df=p,
        QM_pval=float(stats.chi2.sf(QM, p)),
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
                    "pval": float(stats.chi2.sf(lrt, df)),
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
