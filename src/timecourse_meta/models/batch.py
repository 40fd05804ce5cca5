"""Many intercept-only random-effects meta-analyses at once, vectorised over rows with numpy.

Why: simulation studies, leave-one-out loops and large pooled tables fit thousands of small
models; a Python loop over :func:`timecourse_meta.fit_random_effects` spends most of its time in
per-call overhead. Here ``m`` meta-analyses are stored as rows of ``m x K`` arrays (padding where
a row has fewer than ``K`` studies) and every step of metafor's ``rma.uni`` (as implemented in
``rma.py``, ``tau2.py`` and ``tau2_ci.py``) runs on all rows together.

Intercept-only closed forms (the projection ``P = W - w w' / sum(w)`` of ``projection.py`` with
``X = 1``; Viechtbauer 2005; metafor ``rma.uni``), all O(k) masked row sums:

* ``P y = w (y - ybar_w)``, ``y' P y = sum w (y - ybar_w)^2``, ``ybar_w = sum w y / sum w``;
* ``tr(P) = W1 - W2 / W1`` and ``tr(P P) = W2 - 2 W3 / W1 + (W2 / W1)^2`` with
  ``Wj = sum w^j``; more generally ``sum_ij a_i P_ij^2 b_j = sum w^2 a b - 2 sum w^3 a b / W1
  + (sum a w^2)(sum b w^2) / W1^2``.

Iterative steps keep a per-row "active" mask and follow the scalar code step for step, so each
row visits the same iterates as a one-by-one fit: Fisher scoring (EB, ML, REML) with the same
start value, step-halving, threshold and iteration limit; Brent's ``zeroin`` (R's
``uniroot``) run in lock-step over rows for Paule-Mandel and both Q-profile bounds. The stopping
rules come from the same :class:`~.control.Control` as the one-by-one fit (metafor's
``control``; None = metafor's defaults: threshold 1e-5, 100 iterations, uniroot tol
eps^0.25). Results agree with one-by-one fits to rounding (tests/test_batch.py checks 1e-10).

Rows that cannot be fitted (no studies, non-finite or non-positive variances, an estimator that
does not converge) are kept: their numbers are NaN and ``converged`` is False, with the reason in
``warnings``; nothing is dropped silently. Cost and memory are O(m K).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from timecourse_meta.models.control import Control, resolve
from timecourse_meta.models.rma import METHODS, TESTS
from timecourse_meta.models.rootfind import R_UNIROOT_TOL
from timecourse_meta.models.tau2 import TAU2_MIN

Array = NDArray[np.float64]
IntArray = NDArray[np.int64]
_EPS = float(np.finfo(float).eps)
_LOG_2PI = float(np.log(2 * np.pi))

__all__ = ["BatchResult", "fit_random_effects_batch", "fit_random_effects_batch_long"]

# Columns of RMAResult.to_frame(), in its order.
FRAME_COLUMNS = (
    "k", "estimate", "se", "stat", "df", "ci_low", "ci_high", "pval", "tau2", "tau2_se",
    "tau2_ci_low", "tau2_ci_high", "I2", "H2", "Q", "Q_df", "Q_p", "pi_low", "pi_high",
    "method", "test", "converged",
)  # fmt: skip


@dataclass
class BatchResult:
    """Row-wise results; attribute names as :class:`timecourse_meta.RMAResult`, one entry per row.

    ``df`` and ``Q_df`` are float arrays with NaN where metafor has no value (``df`` for the
    z test and single-study rows; both for rows that were not fitted); ``to_frame`` turns them
    into nullable integers. ``warnings`` is a list (one list of messages per row).
    """

    k: IntArray
    estimate: Array
    se: Array
    stat: Array
    df: Array
    ci_low: Array
    ci_high: Array
    pval: Array
    tau2: Array
    tau2_se: Array
    tau2_ci_low: Array
    tau2_ci_high: Array
    I2: Array
    H2: Array
    Q: Array
    Q_df: Array
    Q_p: Array
    pi_low: Array
    pi_high: Array
    method: NDArray[np.object_]
    test: NDArray[np.object_]
    level: float
    converged: NDArray[np.bool_]
    iterations: IntArray
    warnings: list[list[str]]
    groups: pd.DataFrame | None = None

    def __len__(self) -> int:
        return int(self.k.size)

    def to_frame(self) -> pd.DataFrame:
        """One row per meta-analysis with the columns of ``RMAResult.to_frame`` (+ group keys)."""
        data: dict[str, object] = {}
        for c in FRAME_COLUMNS:
            val = getattr(self, c)
            if c in ("df", "Q_df"):
                val = pd.array(np.where(np.isnan(val), None, val), dtype="Int64")
            data[c] = val
        data["warnings"] = ["; ".join(w) for w in self.warnings]
        frame = pd.DataFrame(data)
        if self.groups is not None:
            frame = pd.concat([self.groups.reset_index(drop=True), frame], axis=1)
        return frame


# ---------------------------------------------------------------------------------------------
# Row blocks and weighted sums
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Block:
    """Rows in padded form: y = 0 and v = 1 in padding, mask 1.0 for a study, 0.0 for padding."""

    y: Array
    v: Array
    mask: Array
    k: Array  # number of studies per row, as float

    def take(self, idx: IntArray) -> _Block:
        return _Block(self.y[idx], self.v[idx], self.mask[idx], self.k[idx])


def _weights(b: _Block, tau2: Array | float) -> Array:
    """w = 1 / (v + tau^2) on studies, 0 on padding."""
    t = np.asarray(tau2, dtype=float)
    return b.mask / (b.v + (t[:, None] if t.ndim else t))


def _wmean(w: Array, y: Array) -> tuple[Array, Array]:
    """(sum w, weighted mean of y) per row."""
    sw = w.sum(axis=1)
    return sw, (w * y).sum(axis=1) / sw


def _qgen(b: _Block, tau2: Array | float, y: Array | None = None) -> Array:
    """Generalised Q: y' P(tau^2) y = sum w (y - ybar_w)^2 (tau2.py ``_qe``)."""
    y = b.y if y is None else y
    w = _weights(b, tau2)
    _, ybar = _wmean(w, y)
    r = y - ybar[:, None]
    return (w * r * r).sum(axis=1)


def _frob(w: Array, a: Array | None = None, bb: Array | None = None) -> Array:
    """sum_ij a_i P_ij^2 b_j for P = W - w w' / sum(w) (``Projection.frob``)."""
    a = np.ones_like(w) if a is None else a
    bb = np.ones_like(w) if bb is None else bb
    w1 = w.sum(axis=1)
    w2 = w * w
    return (
        (w2 * a * bb).sum(axis=1)
        - 2.0 * (w2 * w * a * bb).sum(axis=1) / w1
        + (a * w2).sum(axis=1) * (bb * w2).sum(axis=1) / w1**2
    )


def _trace_p(w: Array) -> Array:
    """tr(P) = sum w - sum w^2 / sum w."""
    w1 = w.sum(axis=1)
    return w1 - (w * w).sum(axis=1) / w1


def _centre(b: _Block) -> _Block:
    """y - mean(y) per row (tau2.py centres y before estimating tau^2)."""
    mean = b.y.sum(axis=1) / b.k
    return _Block((b.y - mean[:, None]) * b.mask, b.v, b.mask, b.k)


def _row_var(b: _Block) -> Array:
    """np.var(y) per row (ddof 0)."""
    mean = b.y.sum(axis=1) / b.k
    d = (b.y - mean[:, None]) * b.mask
    return (d * d).sum(axis=1) / b.k


def _row_median(x: Array, k: IntArray) -> Array:
    """Median of the first k entries of each row of x (x must hold +inf beyond them)."""
    s = np.sort(x, axis=1)
    rows = np.arange(x.shape[0])
    lo, hi = s[rows, (k - 1) // 2], s[rows, k // 2]
    return np.where(k % 2 == 1, lo, (lo + hi) / 2.0)


def _tau2_max(b: _Block) -> Array:
    """metafor's tau2.max per row: max(100, 10 mad(y)^2) (``tau2.tau2_max_default``)."""
    k = b.k.astype(np.int64)
    inf = np.where(b.mask > 0, 0.0, np.inf)
    med = _row_median(b.y + inf, k)
    dev = np.abs(b.y - med[:, None]) + inf
    mad = 1.4826 * _row_median(dev, k)
    return np.maximum(100.0, 10.0 * mad**2)


# ---------------------------------------------------------------------------------------------
# Lock-step Brent / zeroin (rootfind.zeroin, R's uniroot), one problem per entry
# ---------------------------------------------------------------------------------------------


def zeroin_batch(
    f: Callable[[Array, IntArray], Array],
    lower: Array,
    upper: Array,
    f_lower: Array,
    f_upper: Array,
    tol: float = R_UNIROOT_TOL,
    maxiter: int = 1000,
) -> tuple[Array, IntArray, NDArray[np.bool_]]:
    """Brent's method on n problems at once, each visiting the iterates of ``rootfind.zeroin``.

    ``f(x, idx)`` returns the function values of problems ``idx`` at points ``x``. The end-point
    values must differ in sign (or be 0). Returns (root, iterations, converged) per problem.
    """
    n = lower.size
    a, b = lower.astype(float).copy(), upper.astype(float).copy()
    fa, fb = f_lower.astype(float).copy(), f_upper.astype(float).copy()
    root = np.full(n, np.nan)
    iters = np.zeros(n, dtype=np.int64)
    conv = np.zeros(n, dtype=bool)
    root[fb == 0.0] = b[fb == 0.0]
    root[fa == 0.0] = a[fa == 0.0]  # checked first in the scalar code
    conv[(fa == 0.0) | (fb == 0.0)] = True
    c, fc = a.copy(), fa.copy()
    act = np.flatnonzero(~conv)
    for it in range(1, maxiter + 2):
        if act.size == 0:
            break
        a_, b_, c_ = a[act], b[act], c[act]
        fa_, fb_, fc_ = fa[act], fb[act], fc[act]
        prev_step = b_ - a_
        swap = np.abs(fc_) < np.abs(fb_)
        a_, b_, c_ = np.where(swap, b_, a_), np.where(swap, c_, b_), np.where(swap, b_, c_)
        fa_, fb_, fc_ = np.where(swap, fb_, fa_), np.where(swap, fc_, fb_), np.where(swap, fb_, fc_)
        tol_act = 2.0 * _EPS * np.abs(b_) + tol / 2.0
        new_step = (c_ - b_) / 2.0
        done = (np.abs(new_step) <= tol_act) | (fb_ == 0.0)
        if done.any():
            di = act[done]
            root[di], iters[di], conv[di] = b_[done], it - 1, True
        interp = ~done & (np.abs(prev_step) >= tol_act) & (np.abs(fa_) > np.abs(fb_))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            cb = c_ - b_
            t1s = fb_ / fa_
            q0, t1, t2 = fa_ / fc_, fb_ / fc_, fb_ / fa_
            p_iqi = t2 * (cb * q0 * (q0 - t1) - (b_ - a_) * (t1 - 1.0))
            q_iqi = (q0 - 1.0) * (t1 - 1.0) * (t2 - 1.0)
            secant = a_ == c_
            p = np.where(secant, cb * t1s, p_iqi)
            q = np.where(secant, 1.0 - t1s, q_iqi)
            pos = p > 0
            q = np.where(pos, -q, q)
            p = np.where(pos, p, -p)
            accept = (p < (0.75 * cb * q - np.abs(tol_act * q) / 2.0)) & (
                p < np.abs(prev_step * q / 2.0)
            )
            new_step = np.where(interp & accept, p / q, new_step)
        small = np.abs(new_step) < tol_act
        new_step = np.where(small, np.where(new_step > 0, tol_act, -tol_act), new_step)
        keep = ~done
        act, a_, b_, c_ = act[keep], b_[keep], b_[keep] + new_step[keep], c_[keep]
        fa_, fc_ = fb_[keep], fc_[keep]
        if act.size == 0:
            break
        fb_ = f(b_, act)
        flip = ((fb_ > 0) & (fc_ > 0)) | ((fb_ < 0) & (fc_ < 0))
        c_, fc_ = np.where(flip, a_, c_), np.where(flip, fa_, fc_)
        a[act], b[act], c[act], fa[act], fb[act], fc[act] = a_, b_, c_, fa_, fb_, fc_
    if act.size:
        root[act], iters[act] = b[act], maxiter
    return root, iters, conv


# ---------------------------------------------------------------------------------------------
# tau^2 estimators (tau2.py), on the rows of a centred block
# ---------------------------------------------------------------------------------------------


@dataclass
class _Tau2Rows:
    tau2: Array
    se: Array
    iterations: IntArray
    failed: NDArray[np.bool_]
    error: list[str]
    notes: list[list[str]]


def _estimate_rows(b: _Block, method: str, ctl: Control) -> _Tau2Rows:
    """``tau2.estimate_tau2(y, v, ones, method, ctl)`` for every row of the centred block ``b``."""
    n = b.k.size
    k, dfr = b.k, b.k - 1.0
    iters = np.zeros(n, dtype=np.int64)
    failed = np.zeros(n, dtype=bool)
    error = [""] * n
    notes: list[list[str]] = [[] for _ in range(n)]
    if method in ("DL", "HS"):
        w = _weights(b, 0.0)
        rss = _qgen(b, 0.0)
        tau2 = (rss - dfr) / _trace_p(w) if method == "DL" else (rss - k) / w.sum(axis=1)
    elif method == "SJ":
        tau2_0 = _row_var(b)
        tau2 = tau2_0 * _qgen(b, tau2_0) / dfr
    elif method == "PM":
        tau2, iters, failed, error = _paule_mandel(b, ctl)
    else:
        tau2 = _hedges(b)
        if method in ("EB", "ML", "REML"):
            start = np.maximum(np.maximum(0.0, tau2), TAU2_MIN)
            tau2, iters, failed = _fisher_scoring(b, start, method, ctl)
            for i in np.flatnonzero(failed):
                error[i] = f"{method}: Fisher scoring did not converge in {ctl.maxiter} iterations"
            if method in ("ML", "REML"):
                tau2 = _ll0_check(b, tau2, method == "REML", failed, notes, ctl)
    tau2 = np.maximum(TAU2_MIN, tau2)
    se = _se_tau2(b, tau2, method)
    tau2[failed] = np.nan
    se[failed] = np.nan
    return _Tau2Rows(tau2, se, iters, failed, error, notes)


def _hedges(b: _Block) -> Array:
    """HE: (OLS residual SS - tr(P_ols V)) / (k - 1)."""
    mean = b.y.sum(axis=1) / b.k
    r = (b.y - mean[:, None]) * b.mask
    sv = (b.v * b.mask).sum(axis=1)
    return ((r * r).sum(axis=1) - (sv - sv / b.k)) / (b.k - 1.0)


def _paule_mandel(b: _Block, ctl: Control) -> tuple[Array, IntArray, NDArray[np.bool_], list[str]]:
    n = b.k.size
    target = b.k - 1.0
    tau2 = np.full(n, TAU2_MIN)
    iters = np.zeros(n, dtype=np.int64)
    failed = np.zeros(n, dtype=bool)
    error = [""] * n
    q0 = _qgen(b, TAU2_MIN)
    search = np.flatnonzero(~(q0 < target))
    if search.size == 0:
        return tau2, iters, failed, error
    sub = b.take(search)
    upper = _tau2_max(sub) if ctl.tau2_max is None else np.full(search.size, float(ctl.tau2_max))
    q_up = _qgen(sub, upper)
    too_low = q_up > target[search]
    for j in np.flatnonzero(too_low):
        i = search[j]
        failed[i] = True
        error[i] = f"Paule-Mandel: Q at tau^2 = {upper[j]:g} still exceeds k - p; tau2.max too low"
    ok = np.flatnonzero(~too_low)
    rows = search[ok]
    sub = b.take(rows)
    tgt = target[rows]

    def f(t: Array, idx: IntArray) -> Array:
        return _qgen(sub.take(idx), t) - tgt[idx]

    lo = np.full(rows.size, TAU2_MIN)
    root, it, conv = zeroin_batch(
        f, lo, upper[ok], q0[rows] - tgt, q_up[ok] - tgt, ctl.tol, ctl.maxiter
    )
    tau2[rows], iters[rows] = root, it
    for j in np.flatnonzero(~conv):
        failed[rows[j]] = True
        error[rows[j]] = f"Paule-Mandel: root search did not converge in {ctl.maxiter} iterations"
    return tau2, iters, failed, error


def _fisher_scoring(
    b: _Block, tau2: Array, method: str, ctl: Control
) -> tuple[Array, IntArray, NDArray[np.bool_]]:
    """EB / ML / REML iterations of ``tau2._fisher_scoring`` with a per-row active mask."""
    tau2 = tau2.astype(float).copy()
    n = tau2.size
    iters = np.zeros(n, dtype=np.int64)
    failed = np.zeros(n, dtype=bool)
    act = np.arange(n)
    iteration = 0
    while act.size:
        iteration += 1
        sub = b.take(act)
        t = tau2[act]
        w = _weights(sub, t)
        w1, ybar = _wmean(w, sub.y)
        r = (sub.y - ybar[:, None]) * sub.mask
        with np.errstate(divide="ignore", invalid="ignore"):
            if method == "EB":
                adj = ((w * r * r).sum(axis=1) * sub.k / (sub.k - 1.0) - sub.k) / w1
            else:
                py = w * r
                py2 = (py * py).sum(axis=1)
                if method == "ML":
                    adj = (py2 - w1) / (w * w).sum(axis=1)
                else:
                    adj = (py2 - _trace_p(w)) / _frob(w)
        adj = np.where(np.isnan(adj), 0.0, adj)
        halve = np.flatnonzero(t + adj < TAU2_MIN)
        while halve.size:  # step-halving at the boundary, row by row as the scalar loop
            adj[halve] /= 2.0
            halve = halve[t[halve] + adj[halve] < TAU2_MIN]
        new = t + adj
        change = np.abs(t - new)
        tau2[act] = new
        iters[act] = iteration
        if iteration > ctl.maxiter:
            failed[act] = True
            break
        act = act[change > ctl.threshold]
    return tau2, iters, failed


def _loglik(b: _Block, tau2: Array | float, reml: bool) -> Array:
    """ML / REML log-likelihood of tau2._loglik (intercept only: log|X'WX| = log sum w)."""
    t = np.asarray(tau2, dtype=float)
    vt = b.v + (t[:, None] if t.ndim else t)
    w = b.mask / vt
    w1, ybar = _wmean(w, b.y)
    r = (b.y - ybar[:, None]) * b.mask
    rss = (w * r * r).sum(axis=1)
    logv = (np.log(vt) * b.mask).sum(axis=1)
    if not reml:
        return -0.5 * b.k * _LOG_2PI - 0.5 * logv - 0.5 * rss
    return -0.5 * (b.k - 1.0) * _LOG_2PI - 0.5 * logv - 0.5 * np.log(w1) - 0.5 * rss


def _ll0_check(
    b: _Block,
    tau2: Array,
    reml: bool,
    failed: NDArray[np.bool_],
    notes: list[list[str]],
    ctl: Control,
) -> Array:
    """metafor's guard against a local maximum (tau2._ll0_check)."""
    ll0 = _loglik(b, 0.0, reml)
    ll = _loglik(b, tau2, reml)
    reset = (ll0 - ll > ctl.tol) & (tau2 > ctl.threshold) & ~failed
    for i in np.flatnonzero(reset):
        notes[i].append(
            "Fisher scoring may have stopped at a local maximum; tau^2 set to 0 (as metafor)"
        )
    return np.where(reset, 0.0, tau2)


def _se_tau2(b: _Block, tau2: Array, method: str) -> Array:
    """Standard error of tau^2 per estimator (tau2._se_tau2)."""
    k, dfr = b.k, b.k - 1.0
    t = np.maximum(tau2, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        if method in ("DL", "HS"):
            w = _weights(b, 0.0)
            trp = _trace_p(w)
            core = 2 * dfr + 4 * t * trp + 2 * t**2 * _frob(w)
            denom = trp if method == "DL" else w.sum(axis=1)
            return np.sqrt(core / denom**2)
        if method == "HE":
            ones = b.mask
            v = b.v * b.mask
            sv = v.sum(axis=1)
            tr_v = sv - sv / k
            core = 2 * _frob(ones, v, v) + 4 * t * tr_v + 2 * t**2 * dfr
            return np.sqrt(core / dfr**2)
        if method == "SJ":
            tau2_0 = _row_var(b)
            w = _weights(b, tau2_0)
            v = b.v
            core = 2 * _frob(w, v, v) + 4 * t * _frob(w, None, v) + 2 * t**2 * _frob(w)
            return np.sqrt(tau2_0**2 / dfr**2 * core)
        w = _weights(b, tau2)
        if method == "ML":
            return np.sqrt(2.0 / (w * w).sum(axis=1))
        if method == "REML":
            return np.sqrt(2.0 / _frob(w))
        return np.sqrt(2.0 * k**2 / dfr / w.sum(axis=1) ** 2)  # EB and PM


# ---------------------------------------------------------------------------------------------
# Q-profile CI for tau^2 (tau2_ci.py), both bounds of all rows in one lock-step search
# ---------------------------------------------------------------------------------------------


def _qprofile(b: _Block, tau2: Array, level: float, ctl: Control) -> tuple[Array, Array, list[str]]:
    """``tau2_ci.qprofile_ci`` for every row, with the same control and notes."""
    n = tau2.size
    alpha = 1.0 - level
    dfr = b.k - 1.0
    crit_u = stats.chi2.isf(alpha / 2, dfr)
    crit_l = stats.chi2.ppf(alpha / 2, dfr)
    lo_end = np.minimum(0.0, tau2)
    if ctl.tau2_max is None:
        hi_end = np.maximum(np.maximum(100.0, 10.0 * tau2), 10.0 * lo_end)
    else:
        hi_end = np.full(n, float(ctl.tau2_max))
    q_lo, q_hi = _qgen(b, lo_end), _qgen(b, hi_end)

    up_zero = q_lo < crit_l
    up_end = ~up_zero & (q_hi > crit_l)
    upper = np.where(up_zero, lo_end, hi_end)
    lo_end_hit = q_hi > crit_u
    lo_zero = ~lo_end_hit & (q_lo < crit_u)
    lower = np.where(lo_end_hit, hi_end, lo_end)
    up_fail = np.zeros(n, dtype=bool)
    lo_fail = np.zeros(n, dtype=bool)

    need_up = np.flatnonzero(~up_zero & ~up_end)
    need_lo = np.flatnonzero(~lo_end_hit & ~lo_zero)
    rows = np.concatenate([need_up, need_lo])
    target = np.concatenate([crit_l[need_up], crit_u[need_lo]])
    if rows.size:
        sub = b.take(rows)

        def f(t: Array, idx: IntArray) -> Array:
            return _qgen(sub.take(idx), t) - target[idx]

        root, _, conv = zeroin_batch(
            f, lo_end[rows], hi_end[rows], q_lo[rows] - target, q_hi[rows] - target,
            ctl.ci_tol, ctl.ci_maxiter,
        )  # fmt: skip
        root = np.where(conv, root, np.nan)  # unconverged bound: NaN with a note
        upper[need_up] = root[: need_up.size]
        lower[need_lo] = root[need_up.size :]
        up_fail[need_up] = ~conv[: need_up.size]
        lo_fail[need_lo] = ~conv[need_up.size :]

    def not_found(which: str) -> str:
        return (
            f"{which} bound not found: root search did not converge in "
            f"{ctl.ci_maxiter} iterations (ci_maxiter); set to NaN"
        )

    notes: list[list[str]] = [[] for _ in range(n)]
    for i in np.flatnonzero(up_zero | up_end | up_fail | lo_end_hit | lo_fail):
        if up_zero[i]:
            notes[i].append("upper bound at 0: Q is below its lower quantile even with tau^2 = 0")
        elif up_end[i]:
            notes[i].append(f"upper bound > {hi_end[i]:g} (end of the search interval)")
        elif up_fail[i]:
            notes[i].append(not_found("upper"))
        if lo_end_hit[i]:
            notes[i].append(f"lower bound > {hi_end[i]:g} (end of the search interval)")
        elif lo_fail[i]:
            notes[i].append(not_found("lower"))
    return lower, upper, ["; ".join(x) for x in notes]


# ---------------------------------------------------------------------------------------------
# The fit
# ---------------------------------------------------------------------------------------------


def _methods(method: str | Sequence[str]) -> list[str]:
    methods = [method.upper()] if isinstance(method, str) else [m.upper() for m in method]
    if not methods:
        raise ValueError("no method given")
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"unknown method {m!r}; expected one of {METHODS}")
    return methods


def _validate_rows(
    y: Array, v: Array, present: NDArray[np.bool_]
) -> tuple[NDArray[np.bool_], list[str]]:
    """Row checks of ``rma._as_arrays``; returns (valid, message) per row."""
    m = y.shape[0]
    msgs = [""] * m
    bad = present & (~np.isfinite(y) | ~np.isfinite(v))
    nonpos = present & ~bad & (v <= 0)
    k = present.sum(axis=1)
    for i in np.flatnonzero(k == 0):
        msgs[i] = "no studies: yi is empty"
    for i in np.flatnonzero(bad.any(axis=1) & (k > 0)):
        msgs[i] = f"yi/vi not finite at positions {np.flatnonzero(bad[i]).tolist()}"
    for i in np.flatnonzero(nonpos.any(axis=1) & ~bad.any(axis=1) & (k > 0)):
        msgs[i] = f"vi must be > 0; not at positions {np.flatnonzero(nonpos[i]).tolist()}"
    return np.array([s == "" for s in msgs], dtype=bool), msgs


def _compact(y: Array, v: Array, present: NDArray[np.bool_]) -> _Block:
    """Move each row's studies to the front (order kept) and pad with y = 0, v = 1."""
    order = np.argsort(~present, axis=1, kind="stable")
    p = np.take_along_axis(present, order, axis=1)
    ys = np.where(p, np.take_along_axis(y, order, axis=1), 0.0)
    vs = np.where(p, np.take_along_axis(v, order, axis=1), 1.0)
    return _Block(ys, vs, p.astype(float), p.sum(axis=1).astype(float))


def _empty_result(m: int, test: str, level: float, method: str) -> BatchResult:
    nan = np.full(m, np.nan)
    return BatchResult(
        k=np.zeros(m, dtype=np.int64), estimate=nan.copy(), se=nan.copy(), stat=nan.copy(),
        df=nan.copy(), ci_low=nan.copy(), ci_high=nan.copy(), pval=nan.copy(), tau2=nan.copy(),
        tau2_se=nan.copy(), tau2_ci_low=nan.copy(), tau2_ci_high=nan.copy(), I2=nan.copy(),
        H2=nan.copy(), Q=nan.copy(), Q_df=nan.copy(), Q_p=nan.copy(), pi_low=nan.copy(),
        pi_high=nan.copy(), method=np.full(m, method, dtype=object),
        test=np.full(m, test, dtype=object), level=level,
        converged=np.zeros(m, dtype=bool), iterations=np.zeros(m, dtype=np.int64),
        warnings=[[] for _ in range(m)],
    )  # fmt: skip


def _fit(
    y: Array,
    v: Array,
    present: NDArray[np.bool_],
    method: str | Sequence[str],
    test: str,
    level: float,
    control: Control | None,
) -> BatchResult:
    ctl = resolve(control)
    methods = _methods(method)
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}; expected one of {TESTS}")
    m = y.shape[0]
    res = _empty_result(m, test, level, methods[0])
    res.k = present.sum(axis=1).astype(np.int64)
    valid, msgs = _validate_rows(y, v, present)
    for i in np.flatnonzero(~valid):
        res.warnings[i].append(f"row not fitted: {msgs[i]}")
    single = np.flatnonzero(valid & (res.k == 1))
    multi = np.flatnonzero(valid & (res.k >= 2))
    if single.size:
        _fit_single(_compact(y[single], v[single], present[single]), single, res, level)
    if multi.size:
        block = _compact(y[multi], v[multi], present[multi])
        _fit_multi(block, multi, res, methods, test, level, ctl)
    return res


def _fit_single(b: _Block, rows: IntArray, res: BatchResult, level: float) -> None:
    """k = 1: the study's own estimate and Wald CI; PI = CI, test z (rma._single_study)."""
    y, v = b.y[:, 0], b.v[:, 0]
    se = np.sqrt(v)
    crit = float(stats.norm.isf((1 - level) / 2))
    z = y / se
    res.estimate[rows], res.se[rows], res.stat[rows] = y, se, z
    res.ci_low[rows], res.ci_high[rows] = y - crit * se, y + crit * se
    res.pval[rows] = 2 * stats.norm.sf(np.abs(z))
    res.pi_low[rows], res.pi_high[rows] = res.ci_low[rows], res.ci_high[rows]
    res.tau2[rows], res.I2[rows], res.H2[rows] = 0.0, 0.0, 1.0
    res.Q[rows], res.Q_df[rows], res.Q_p[rows] = 0.0, 0.0, 1.0
    res.test[rows] = "z"
    res.converged[rows] = True
    for i in rows:
        res.warnings[i].append(
            "k = 1: no pooling; the single study's own estimate and Wald CI are shown "
            "(tau^2 = 0, so the prediction interval equals the CI; test z, as metafor)"
        )


def _fit_multi(
    b: _Block,
    rows: IntArray,
    res: BatchResult,
    methods: list[str],
    test: str,
    level: float,
    ctl: Control,
) -> None:
    """k >= 2: rma._core plus fit_random_effects for every row of b (result rows ``rows``)."""
    n = rows.size
    bc = _centre(b)
    tau2 = np.zeros(n)
    tau2_se = np.full(n, np.nan)  # FE: no tau^2, no SE
    iters = np.zeros(n, dtype=np.int64)
    used = np.full(n, methods[0], dtype=object)
    warn: list[list[str]] = [[] for _ in range(n)]
    est_notes: list[list[str]] = [[] for _ in range(n)]
    pending = np.arange(n)
    for meth in methods:  # metafor's method = c("REML", "DL"): next estimator for failed rows
        if pending.size == 0:
            break
        used[pending] = meth
        if meth == "FE":
            pending = pending[:0]
            break
        est = _estimate_rows(bc.take(pending), meth, ctl)
        ok = ~est.failed
        tau2[pending[ok]], tau2_se[pending[ok]] = est.tau2[ok], est.se[ok]
        iters[pending[ok]] = est.iterations[ok]
        for j in np.flatnonzero(ok):
            est_notes[pending[j]] = est.notes[j]
        for j in np.flatnonzero(est.failed):
            warn[pending[j]].append(f"{meth} failed ({est.error[j]}); falling back")
        pending = pending[est.failed]
    failed = np.zeros(n, dtype=bool)
    failed[pending] = True
    is_fe = used == "FE"
    for i in range(n):
        warn[i] += est_notes[i]
    vmax = np.where(b.mask > 0, b.v, -np.inf).max(axis=1)
    vmin = np.where(b.mask > 0, b.v, np.inf).min(axis=1)
    for i in np.flatnonzero((vmax / vmin >= 1e7) & ~failed):
        warn[i].append(
            "ratio of largest to smallest sampling variance >= 1e7: results may be unstable"
        )

    # Pooled estimate with weights 1 / (v + tau^2) (rma._core).
    k, dfr = b.k, b.k - 1.0
    w = _weights(b, tau2)
    w1, beta = _wmean(w, b.y)
    vb = 1.0 / w1
    r = (b.y - beta[:, None]) * b.mask
    rss_f = (w * r * r).sum(axis=1)
    alpha = 1.0 - level
    if test == "knha":
        for i in np.flatnonzero(is_fe):
            warn[i].append("Knapp-Hartung is not meant for fixed-effect models (as metafor warns)")
        s2w = np.where(rss_f <= _EPS, 0.0, rss_f / dfr)
        for i in np.flatnonzero((s2w == 0.0) & ~failed):
            warn[i].append("Knapp-Hartung scale factor is 0 (residuals vanish): SEs are 0")
        vb = s2w * vb
        ddf = dfr
    se = np.sqrt(vb)
    with np.errstate(divide="ignore", invalid="ignore"):
        zval = beta / se
    if test == "knha":
        pval = 2 * stats.t.sf(np.abs(zval), ddf)
        crit = stats.t.isf(alpha / 2, ddf)
    else:
        pval = 2 * stats.norm.sf(np.abs(zval))
        crit = np.full(n, float(stats.norm.isf(alpha / 2)))

    # Heterogeneity: Q with weights 1 / v, I^2 and H^2 (metafor i2def "1").
    w_fe = _weights(b, 0.0)
    qe = np.maximum(0.0, _qgen(bc, 0.0))
    qe_p = stats.chi2.sf(qe, dfr)
    vt = dfr / _trace_p(w_fe)
    with np.errstate(divide="ignore", invalid="ignore"):
        i2_fe = np.where(qe > 0, np.maximum(0.0, 100.0 * (qe - dfr) / qe), 0.0)
        h2_fe = qe / dfr
    i2 = np.where(is_fe, i2_fe, 100.0 * tau2 / (vt + tau2))
    h2 = np.where(is_fe, h2_fe, tau2 / vt + 1.0)

    # Q-profile CI for tau^2 (random-effects rows only).
    ci_lo, ci_hi = np.full(n, np.nan), np.full(n, np.nan)
    re_rows = np.flatnonzero(~is_fe & ~failed)
    if re_rows.size:
        lo, hi, notes = _qprofile(b.take(re_rows), tau2[re_rows], level, ctl)
        ci_lo[re_rows], ci_hi[re_rows] = lo, hi
        for j, note in enumerate(notes):
            if note:
                warn[re_rows[j]].append(f"tau^2 CI: {note}")
    if test == "knha":
        for i in np.flatnonzero((k == 2) & ~failed):
            warn[i].append("k = 2: Knapp-Hartung uses a t distribution with 1 df (very wide CI)")
    for i in np.flatnonzero((tau2 == 0.0) & ~is_fe & ~failed):
        warn[i].append("tau^2 estimated at the boundary (0)")

    pi_half = crit * np.sqrt(se**2 + tau2)
    out = {
        "estimate": beta, "se": se, "stat": zval, "df": ddf if test == "knha" else np.nan,
        "ci_low": beta - crit * se, "ci_high": beta + crit * se, "pval": pval, "tau2": tau2,
        "tau2_se": tau2_se, "tau2_ci_low": ci_lo, "tau2_ci_high": ci_hi, "I2": i2, "H2": h2,
        "Q": qe, "Q_df": dfr, "Q_p": qe_p, "pi_low": beta - pi_half, "pi_high": beta + pi_half,
    }  # fmt: skip
    good = ~failed
    for name, val in out.items():
        arr = getattr(res, name)
        arr[rows[good]] = np.broadcast_to(val, (n,))[good]
    res.Q[rows], res.Q_df[rows], res.Q_p[rows] = qe, dfr, qe_p  # defined even if tau^2 failed
    res.method[rows] = used
    res.iterations[rows] = iters
    res.converged[rows] = good
    for j in range(n):
        if failed[j]:
            warn[j].append("no estimator converged: row not fitted")
        res.warnings[rows[j]] = warn[j]


# ---------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------


def fit_random_effects_batch(
    yi: ArrayLike,
    vi: ArrayLike,
    method: str | Sequence[str] = "REML",
    test: str = "z",
    level: float = 0.95,
    control: Control | None = None,
) -> BatchResult:
    """Fit one intercept-only model per row of ``yi``/``vi`` (m x K; NaN in both = no study).

    Equivalent, row by row and to rounding, to ``fit_random_effects(yi[i][present],
    vi[i][present], method, test, level, control)`` (metafor ``rma``; see the module
    docstring), but vectorised over rows. ``control``: metafor's stopping rules
    (:class:`~.control.Control`; None = metafor's defaults). A position where only one of
    yi/vi is NaN, or vi <= 0, makes its row "not fitted" (NaN results, ``converged`` False,
    reason in ``warnings``), as do rows whose estimator(s) fail to converge. A 1-D input is one
    row.
    """
    y = np.atleast_2d(np.asarray(yi, dtype=float))
    v = np.atleast_2d(np.asarray(vi, dtype=float))
    if y.shape != v.shape or y.ndim != 2:
        raise ValueError(f"yi and vi must be 2-D arrays of one shape, got {y.shape} and {v.shape}")
    present = ~(np.isnan(y) & np.isnan(v))
    return _fit(y, v, present, method, test, level, control)


def fit_random_effects_batch_long(
    df: pd.DataFrame,
    group: str | Sequence[str],
    yi: str = "yi",
    vi: str = "vi",
    method: str | Sequence[str] = "REML",
    test: str = "z",
    level: float = 0.95,
    control: Control | None = None,
) -> BatchResult:
    """One model per group of a long table (one row per study), as ``fit_random_effects_batch``.

    Groups come out in sorted key order (missing keys kept as their own group); ``groups`` and
    ``to_frame()`` carry the key columns. Every table row belongs to its group's fit: a NaN in
    ``yi`` or ``vi`` marks that group "not fitted" (with the reason) instead of being dropped.
    """
    keys = [group] if isinstance(group, str) else list(group)
    missing = [c for c in [*keys, yi, vi] if c not in df.columns]
    if missing:
        raise KeyError(f"columns not in the table: {missing}")
    grouped = df.groupby(keys, sort=True, dropna=False)
    code = grouped.ngroup().to_numpy()
    pos = grouped.cumcount().to_numpy()
    m = int(code.max()) + 1 if code.size else 0
    kmax = int(pos.max()) + 1 if pos.size else 0
    y = np.full((m, kmax), np.nan)
    v = np.full((m, kmax), np.nan)
    present = np.zeros((m, kmax), dtype=bool)
    y[code, pos] = df[yi].to_numpy(dtype=float)
    v[code, pos] = df[vi].to_numpy(dtype=float)
    present[code, pos] = True
    res = _fit(y, v, present, method, test, level, control)
    first = np.unique(code, return_index=True)[1]
    res.groups = df.iloc[first][keys].reset_index(drop=True)
    return res


def result_fields() -> list[str]:
    """Names of the per-row attributes of :class:`BatchResult` (for tests and docs)."""
    return [f.name for f in fields(BatchResult) if f.name not in ("level", "groups")]
