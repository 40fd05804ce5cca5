"""Estimators of the between-study variance tau^2, as defined in metafor's ``rma.uni``.

Every estimator works on :class:`~.rows.Rows` (m meta-analyses at once; a single fit is m = 1)
and follows metafor 3.8 step for step, so that iterative estimators stop at the same iterate:

* DL  DerSimonian & Laird (1986), generalised to meta-regression (Raudenbush 2009).
* HE  Hedges (1983): OLS residuals, unweighted method of moments.
* HS  Hunter & Schmidt (2004): (Q - k) / sum(w).
* SJ  Sidik & Jonkman (2005): one re-weighting step from the start value var(y) (k - 1) / k.
* PM  Paule & Mandel (1982): root of Q_gen(tau^2) = k - p, by Brent's method as R's uniroot.
* EB  Morris (1983) empirical Bayes, by metafor's fixed-point iteration.
* ML / REML  Fisher scoring (Viechtbauer 2005), started at max(0, HE), step-halving at the
  boundary, tolerance 1e-5 on tau^2, and metafor's check against a better log-likelihood at 0.

The stopping rules (threshold, tol, maxiter, tau2.max) come from a :class:`~.control.Control`,
metafor's ``control`` list; None means metafor's defaults, as quoted above.
Standard errors of tau^2 follow the same source (metafor's ``se.tau2``).

Where Fisher scoring does not converge (metafor stops with an error; its documented remedy is
a smaller step, ``control = list(stepadj = 0.5)``) the engine can instead solve the estimating
equation by bracketing (``Control.bracket``): tau^2 is one-dimensional, so the root of the
REML (ML) score y'PPy - tr(P) (y'PPy - sum w) on [0, upper], or of Q(tau^2) = k - p for EB
(Morris's fixed point is the Paule-Mandel equation), is found by Brent's method, which cannot
fail once the root is bracketed. Such rows carry :data:`BRACKET_NOTE`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from timecourse_meta.models.control import DEFAULT_CONTROL, Control, resolve
from timecourse_meta.models.projection import row_dot
from timecourse_meta.models.rootfind import zeroin_rows
from timecourse_meta.models.rows import Array, IntArray, Rows, which

ESTIMATORS = ("DL", "HE", "HS", "SJ", "PM", "EB", "ML", "REML")
THRESHOLD = DEFAULT_CONTROL.threshold  # metafor's default control$threshold
MAXITER = DEFAULT_CONTROL.maxiter  # metafor's default control$maxiter
TAU2_MIN = 0.0
_LOG_2PI = float(np.log(2 * np.pi))
# Step-halving at the boundary: metafor halves until tau^2 + step >= 0. A finite step reaches
# that within ~2100 halvings (the exponent range of doubles); an infinite one never does.
MAX_HALVINGS = 2200
BRACKET_NOTE = "Fisher scoring did not converge; tau^2 from bracketing root of the {m} score"


class ConvergenceError(RuntimeError):
    """An iterative tau^2 estimator did not converge (metafor stops with an error here)."""


@dataclass(frozen=True)
class Tau2Estimate:
    """tau^2 with its standard error, iteration count and any warnings."""

    tau2: float
    se: float
    method: str
    iterations: int = 0
    warnings: tuple[str, ...] = field(default_factory=tuple)


@dataclass
class Tau2Rows:
    """tau^2 per row; ``failed`` rows have NaN and their reason in ``error``."""

    tau2: Array
    se: Array
    iterations: IntArray
    failed: NDArray[np.bool_]
    error: list[str]
    notes: list[list[str]]


def r_mad(y: Array) -> float:
    """R's ``mad()``: 1.4826 * median(|y - median(y)|)."""
    return 1.4826 * float(np.median(np.abs(y - np.median(y))))


def tau2_max_default(y: Array) -> float:
    """metafor's upper search bound for tau^2: max(100, 10 * mad(y)^2)."""
    return max(100.0, 10.0 * r_mad(y) ** 2)


def _row_median(x: Array, k: IntArray) -> Array:
    """Median of the first k entries of each row of x (x must hold +inf beyond them)."""
    s = np.sort(x, axis=1)
    rows = np.arange(x.shape[0])
    lo, hi = s[rows, (k - 1) // 2], s[rows, k // 2]
    return np.where(k % 2 == 1, lo, (lo + hi) / 2.0)


def tau2_max_rows(r: Rows) -> Array:
    """:func:`tau2_max_default` per row."""
    k = r.k.astype(np.int64)
    inf = np.where(r.mask > 0, 0.0, np.inf)
    med = _row_median(r.y + inf, k)
    mad = 1.4826 * _row_median(np.abs(r.y - med[:, None]) + inf, k)
    return np.maximum(100.0, 10.0 * mad**2)


def qgen(r: Rows, tau2: Array | float) -> Array:
    """Generalised Q statistic y' P(tau^2) y with weights 1 / (v + tau^2), per row.

    Q(tau^2) = sum_i w_i (y_i - x_i' b)^2 with w_i = 1 / (v_i + tau^2) and b the weighted
    least-squares fit (Viechtbauer 2007, eq. 3; DerSimonian & Laird 1986 at tau^2 = 0).
    """
    w = r.weights(tau2)
    if r.X is None:  # intercept only: OneColumn(w).quad(y), written out (the Q-profile's hot loop)
        y = r.y
        res = y - (row_dot(w, y) / w.sum(axis=1))[:, None]
        return row_dot(w * res, res)
    return r.proj(w).quad(r.y)


def qe(tau2: float, y: Array, v: Array, X: Array) -> float:
    """Q(tau^2) = y' P(tau^2) y of one model (y, v 1-D, design X)."""
    r = Rows.single(np.asarray(y, dtype=float), np.asarray(v, dtype=float), np.asarray(X, float))
    return float(qgen(r, float(tau2))[0])


def loglik(r: Rows, tau2: Array | float, reml: bool) -> Array:
    """metafor's ML / REML log-likelihood without the constant REML term in log|X'X|."""
    t = np.asarray(tau2, dtype=float)
    vt = r.v0 + (t[:, None] if t.ndim else t)
    w = r.weights(t)
    proj = r.proj(w)
    rss = proj.quad(r.y)
    logv = (np.log(vt if r.full else np.where(r.mask > 0, vt, 1.0))).sum(axis=1)
    if not reml:
        return -0.5 * r.k * _LOG_2PI - 0.5 * logv - 0.5 * rss
    return -0.5 * (r.k - r.p) * _LOG_2PI - 0.5 * logv - 0.5 * proj.logdet() - 0.5 * rss


def estimate_rows(r: Rows, method: str, ctl: Control, bracket: bool = False) -> Tau2Rows:
    """tau^2 by ``method`` for every row of the centred rows ``r`` (metafor ``rma.uni``).

    ``bracket``: rows whose Fisher scoring fails are solved by bracketing (module docstring)
    instead of failing.
    """
    n = r.m
    dfr = r.k - r.p
    iters = np.zeros(n, dtype=np.int64)
    failed = np.zeros(n, dtype=bool)
    error = [""] * n
    notes: list[list[str]] = [[] for _ in range(n)]
    if method in ("DL", "HS"):
        proj = r.fe_proj()
        rss = proj.quad(r.y)
        tau2 = (rss - dfr) / proj.trace() if method == "DL" else (rss - r.k) / proj.w.sum(axis=1)
    elif method == "SJ":
        tau2_0 = r.var_y()
        tau2 = tau2_0 * qgen(r, tau2_0) / dfr
    elif method == "PM":
        tau2, iters, failed, error = _paule_mandel(r, ctl)
    else:  # HE, and the start of EB / ML / REML
        ols = r.ols_proj()
        tau2 = (ols.quad(r.y) - ols.trace_with(r.v0)) / dfr
        if method in ("EB", "ML", "REML"):
            start = np.maximum(np.maximum(0.0, tau2), TAU2_MIN)
            tau2, iters, failed, why = _fisher_scoring(r, start, method, ctl)
            if bracket and failed.any():
                _bracket(r, method, ctl, tau2, iters, failed, notes)
            for i in which(failed):
                error[i] = f"{method}: {why[i]}"
            if method in ("ML", "REML"):
                tau2 = _ll0_check(r, tau2, method == "REML", failed, notes, ctl)
    tau2 = np.maximum(TAU2_MIN, tau2)
    se = _se_tau2(r, tau2, method)
    tau2[failed] = np.nan
    se[failed] = np.nan
    return Tau2Rows(tau2, se, iters, failed, error, notes)


def estimate_tau2(
    y: Array, v: Array, X: Array, method: str, control: Control | None = None
) -> Tau2Estimate:
    """Estimate tau^2 by ``method`` (one of :data:`ESTIMATORS`) for one model, as ``rma.uni``.

    ``y`` is centred first, as metafor does (it leaves every estimator unchanged when the design
    spans the intercept, and matches metafor's rounding otherwise). ``control`` holds metafor's
    stopping rules (None: metafor's defaults; see :class:`~.control.Control`).
    Raises :class:`ConvergenceError` where metafor stops with an error (unless
    ``control.bracket`` solves it), and when the Paule-Mandel root search exhausts
    ``control.maxiter``.
    """
    ctl = resolve(control)
    method = method.upper()
    if method not in ESTIMATORS:
        raise ValueError(f"unknown tau^2 estimator {method!r}; expected one of {ESTIMATORS}")
    X = np.asarray(X, dtype=float)
    k, p = X.shape
    if k - p <= 0:
        raise ValueError(f"cannot estimate tau^2 with k = {k} studies and p = {p} coefficients")
    r = Rows.single(np.asarray(y, dtype=float), np.asarray(v, dtype=float), X).centred()
    est = estimate_rows(r, method, ctl, bracket=ctl.bracket)
    if est.failed[0]:
        raise ConvergenceError(est.error[0])
    return Tau2Estimate(
        float(est.tau2[0]), float(est.se[0]), method, int(est.iterations[0]), tuple(est.notes[0])
    )


def _paule_mandel(r: Rows, ctl: Control) -> tuple[Array, IntArray, NDArray[np.bool_], list[str]]:
    """Root of Q(tau^2) = k - p on [0, tau2.max]: uniroot(tol, maxiter) as metafor."""
    n = r.m
    target = r.k - r.p
    tau2 = np.full(n, TAU2_MIN)
    iters = np.zeros(n, dtype=np.int64)
    failed = np.zeros(n, dtype=bool)
    error = [""] * n
    q0 = qgen(r, TAU2_MIN)
    search = np.flatnonzero(~(q0 < target))
    if search.size == 0:
        return tau2, iters, failed, error
    sub = r.take(search)
    upper = tau2_max_rows(sub) if ctl.tau2_max is None else np.full(search.size, ctl.tau2_max)
    q_up = qgen(sub, upper)
    too_low = q_up > target[search]
    for j in which(too_low):
        failed[search[j]] = True
        error[search[j]] = (
            f"Paule-Mandel: Q at tau^2 = {upper[j]:g} still exceeds k - p; tau2.max too low"
        )
    ok = np.flatnonzero(~too_low)
    rows = search[ok]
    sub = r.take(rows)
    tgt = target[rows]
    root, it, conv = zeroin_rows(
        lambda t, idx: qgen(sub.take(idx), t) - tgt[idx],
        np.full(rows.size, TAU2_MIN), upper[ok], q0[rows] - tgt, q_up[ok] - tgt,
        ctl.tol, ctl.maxiter,
    )  # fmt: skip
    tau2[rows], iters[rows] = root, it
    for j in which(~conv):
        failed[rows[j]] = True
        error[rows[j]] = f"Paule-Mandel: root search did not converge in {ctl.maxiter} iterations"
    return tau2, iters, failed, error


def _fisher_step(r: Rows, t: Array, method: str) -> Array:
    """metafor's Fisher scoring step for EB, ML or REML at tau^2 = t (one per row)."""
    w = r.weights(t)
    proj = r.proj(w)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if method == "EB":
            return (proj.quad(r.y) * r.k / (r.k - r.p) - r.k) / w.sum(axis=1)
        py = proj.apply(r.y)
        py2 = row_dot(py, py)
        if method == "ML":
            return (py2 - w.sum(axis=1)) / row_dot(w, w)
        return (py2 - proj.trace()) / proj.frob()


def _fisher_scoring(
    r: Rows, tau2: Array, method: str, ctl: Control
) -> tuple[Array, IntArray, NDArray[np.bool_], list[str]]:
    """metafor's Fisher scoring loop per row: stop when |change| <= threshold, fail after maxiter.

    A non-finite step (metafor's step-halving would never end on it) fails the row at once.
    """
    tau2 = tau2.astype(float).copy()
    n = tau2.size
    iters = np.zeros(n, dtype=np.int64)
    failed = np.zeros(n, dtype=bool)
    why = [""] * n
    act = np.arange(n)
    sub = r
    iteration = 0
    while act.size:
        iteration += 1
        t = tau2[act]
        adj = _fisher_step(sub, t, method)
        bad = None
        if not np.isfinite(adj).all():  # rare: handled off the fast path
            adj = np.where(np.isnan(adj), 0.0, adj)  # metafor: a NaN step is no step
            bad = ~np.isfinite(adj)
            for j in which(bad):
                failed[act[j]] = True
                why[act[j]] = f"Fisher scoring step is not finite at iteration {iteration}"
            adj[bad] = 0.0
        new = t + adj
        halve = new < TAU2_MIN
        if halve.any():
            # From tau^2 = 0 a negative step halves until it underflows to -0.0 (~1075
            # halvings in metafor's loop): tau^2 stays 0. Take that result directly.
            adj = np.where((t == TAU2_MIN) & (adj < 0.0), 0.0, adj)
            halve = t + adj < TAU2_MIN
            for _ in range(MAX_HALVINGS):  # step-halving at the boundary, as metafor
                if not halve.any():
                    break
                adj = np.where(halve, adj / 2.0, adj)
                halve = t + adj < TAU2_MIN
            new = t + adj
        change = np.abs(t - new)
        tau2[act] = new
        iters[act] = iteration
        if iteration > ctl.maxiter:
            for i in act if bad is None else act[~bad]:
                failed[i] = True
                why[i] = f"Fisher scoring did not converge in {ctl.maxiter} iterations"
            break
        keep = change > ctl.threshold
        if bad is not None:
            keep &= ~bad
        if not keep.all():
            act = act[keep]
            sub = r.take(act)
    return tau2, iters, failed, why


def _score(r: Rows, t: Array, method: str) -> Array:
    """The estimating equation solved by Fisher scoring (its root is the estimate)."""
    w = r.weights(t)
    proj = r.proj(w)
    if method == "EB":
        return proj.quad(r.y) - (r.k - r.p)
    py = proj.apply(r.y)
    py2 = (py * py).sum(axis=1)
    return py2 - (w.sum(axis=1) if method == "ML" else proj.trace())


def _bracket(
    r: Rows,
    method: str,
    ctl: Control,
    tau2: Array,
    iters: IntArray,
    failed: NDArray[np.bool_],
    notes: list[list[str]],
) -> None:
    """Replace failed Fisher scoring rows by the bracketed root of the score (in place).

    The score is positive at 0 (else tau^2 = 0) and negative for large tau^2 (it behaves like
    -(k - p) / tau^2); the upper end starts at max(tau2.max, 10 x the last iterate) and is
    doubled until the sign changes (at most 200 times). Brent's method then runs to a
    thousandth of the fit's ``threshold`` (or machine precision relative to tau^2), at most
    1000 iterations.
    """
    rows = np.flatnonzero(failed)
    sub = r.take(rows)
    s0 = _score(sub, np.zeros(rows.size), method)
    hi = np.maximum(tau2_max_rows(sub), 10.0 * np.nan_to_num(np.abs(tau2[rows])))
    s_hi = _score(sub, hi, method)
    for _ in range(200):
        grow = (s0 > 0) & (s_hi > 0)
        if not grow.any():
            break
        hi = np.where(grow, 2.0 * hi, hi)
        s_hi = np.where(grow, _score(sub, hi, method), s_hi)
    at0 = ~(s0 > 0)
    search = np.flatnonzero(~at0 & (s_hi <= 0))
    root = np.where(at0, 0.0, np.nan)
    extra = np.zeros(rows.size, dtype=np.int64)
    if search.size:
        part = sub.take(search)
        found, it, conv = zeroin_rows(
            lambda t, idx: _score(part.take(idx), t, method),
            np.zeros(search.size), hi[search], s0[search], s_hi[search], ctl.threshold * 1e-3, 1000,
        )  # fmt: skip
        root[search] = np.where(conv, found, np.nan)
        extra[search] = it
    for j, i in enumerate(rows):
        if np.isfinite(root[j]):
            tau2[i], failed[i] = root[j], False
            iters[i] += extra[j]
            notes[i].append(BRACKET_NOTE.format(m=method))


def _ll0_check(
    r: Rows,
    tau2: Array,
    reml: bool,
    failed: NDArray[np.bool_],
    notes: list[list[str]],
    ctl: Control,
) -> Array:
    """metafor's guard: if tau^2 = 0 has a clearly higher likelihood, Fisher scoring got stuck.

    metafor: ``ll0 - ll > con$tol && tau2 > con$threshold`` (both from the fit's control).
    """
    cand = ~failed & (tau2 > ctl.threshold)
    if not cand.any():
        return tau2
    with np.errstate(invalid="ignore"):
        ll0 = loglik(r, 0.0, reml)
        ll = loglik(r, np.where(failed, 0.0, tau2), reml)
    reset = cand & (ll0 - ll > ctl.tol)
    for i in which(reset):
        notes[i].append(
            "Fisher scoring may have stopped at a local maximum; tau^2 set to 0 (as metafor)"
        )
    return np.where(reset, 0.0, tau2)


def _se_tau2(r: Rows, tau2: Array, method: str) -> Array:
    """Standard error of tau^2 as metafor's ``se.tau2`` for each estimator (per row)."""
    k, dfr = r.k, r.k - r.p
    t = np.fmax(tau2, 0.0)  # NaN (failed rows) -> 0
    with np.errstate(invalid="ignore", divide="ignore"):
        if method in ("DL", "HS"):
            proj = r.fe_proj()
            trp = proj.trace()
            core = 2 * dfr + 4 * t * trp + 2 * t**2 * proj.frob()
            denom = trp if method == "DL" else proj.w.sum(axis=1)
            return np.sqrt(core / denom**2)
        if method == "HE":
            ols = r.ols_proj()
            core = 2 * ols.frob(r.v0, r.v0) + 4 * t * ols.trace_with(r.v0) + 2 * t**2 * dfr
            return np.sqrt(core / dfr**2)
        if method == "SJ":
            tau2_0 = r.var_y()
            proj = r.proj(r.weights(tau2_0))
            core = (
                2 * proj.frob(r.v0, r.v0) + 4 * t * proj.frob(None, r.v0) + 2 * t**2 * proj.frob()
            )
            return np.sqrt(tau2_0**2 / dfr**2 * core)
        w = r.weights(t)
        if method == "ML":
            return np.sqrt(2.0 / (w * w).sum(axis=1))
        if method == "REML":
            return np.sqrt(2.0 / r.proj(w).frob())
        return np.sqrt(2.0 * k**2 / dfr / w.sum(axis=1) ** 2)  # EB and PM
