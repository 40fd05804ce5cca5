"""What metafor's ``rma.uni`` computes, for m models at once: the one fitting routine.

``fit_rows`` takes :class:`~.rows.Rows` (a single fit is m = 1; the batch engine stacks many
intercept-only rows) and returns per-row arrays: tau^2 (with metafor's method fallback
sequence), the weighted estimate and its covariance, the test statistics and intervals, the
heterogeneity statistics, the Q-profile CI of tau^2 and the warnings of each row.

Tests (``test``; Viechtbauer 2010, J Stat Softw 36(3); metafor ``rma.uni``):

* ``"z"``: Wald tests and normal-quantile intervals.
* ``"t"``: the same variance with t (k - p df) quantiles (metafor ``test = "t"``).
* ``"knha"``: Knapp & Hartung (2003): var(beta) multiplied by
  s^2 = sum w_i (y_i - x_i' beta)^2 / (k - p) (0 when that sum is below machine epsilon, as
  metafor), with t (k - p df) reference distributions.
* ``"adhoc"``: Knapp-Hartung never narrower than Wald: s^2 = max(1, s^2) (Knapp & Hartung 2003,
  sect. 4; Jackson et al. 2017, Stat Med 36:3923; metafor ``test = "adhoc"``).

Heterogeneity (metafor, Higgins & Thompson 2002 generalised): Q with weights 1 / v_i; for
random-effects models I^2 = 100 tau^2 / (tau^2 + s^2) and H^2 = 1 + tau^2 / s^2 with the
typical within-study variance s^2 = (k - p) / tr(P); for FE I^2 = 100 max(0, (Q - df) / Q),
H^2 = Q / df. p-values and quantiles come from scipy.special (ndtr, stdtr, chdtrc, ...), the
functions scipy.stats evaluates, without the cost of its distribution objects.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import special

from timecourse_meta.models.control import Control
from timecourse_meta.models.rows import Array, Rows, which
from timecourse_meta.models.tau2 import ESTIMATORS, estimate_rows
from timecourse_meta.models.tau2_ci import qprofile_rows

METHODS = ("FE", *ESTIMATORS)
TESTS = ("z", "t", "knha", "adhoc")
T_TESTS = ("t", "knha", "adhoc")
_EPS = float(np.finfo(float).eps)
_LOG_2PI = float(np.log(2 * np.pi))
# Warning of a fit run with compute_tau2_ci=False (diagnostics refits filter it by this text).
TAU2_CI_SKIPPED = "tau^2 CI not computed (compute_tau2_ci=False)"
VRATIO_NOTE = "ratio of largest to smallest sampling variance >= 1e7: results may be unstable"


def check_args(methods: Sequence[str], test: str) -> None:
    if not methods:
        raise ValueError("no method given")
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"unknown method {m!r}; expected one of {METHODS}")
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}; expected one of {TESTS}")


def crit_and_p(stat: Array, ddf: Array | None, level: float) -> tuple[Array, Array]:
    """(two-sided critical value, two-sided p-value): normal for ddf None, else t(ddf)."""
    alpha = 1.0 - level
    if ddf is None:
        return np.full(stat.shape[0], -special.ndtri(alpha / 2)), 2.0 * special.ndtr(-np.abs(stat))
    d = ddf if stat.ndim == 1 else ddf[:, None]
    return -special.stdtrit(ddf, alpha / 2), 2.0 * special.stdtr(d, -np.abs(stat))


def _tau2_sequence(
    r: Rows, methods: Sequence[str], ctl: Control
) -> tuple[Array, Array, Array, np.ndarray, list[list[str]], np.ndarray, Rows | None]:
    """tau^2 by the first method that works per row (metafor ``method = c("REML", "DL")``).

    Bracketing (``ctl.bracket``) is used only by the last listed estimator, so a listed
    fallback keeps metafor's numbers. Also returns the centred rows (None for FE alone).
    """
    n = r.m
    tau2, tau2_se = np.zeros(n), np.full(n, np.nan)
    iters = np.zeros(n, dtype=np.int64)
    used = np.full(n, methods[0], dtype=object)
    warn: list[list[str]] = [[] for _ in range(n)]
    pending = np.arange(n)
    rc = None
    for pos, meth in enumerate(methods):
        if pending.size == 0:
            break
        if pos:
            used[pending] = meth
        if meth == "FE":
            pending = pending[:0]
            break
        rc = r.centred() if rc is None else rc
        last = pos == len(methods) - 1
        est = estimate_rows(rc.take(pending), meth, ctl, bracket=ctl.bracket and last)
        if pos == 0 and not est.failed.any():  # the usual case: every row fitted at once
            return est.tau2, est.se, est.iterations, used, est.notes, est.failed, rc
        ok = ~est.failed
        tau2[pending[ok]], tau2_se[pending[ok]] = est.tau2[ok], est.se[ok]
        iters[pending[ok]] = est.iterations[ok]
        for j in which(ok):
            warn[pending[j]] += est.notes[j]
        for j in which(est.failed):
            warn[pending[j]].append(f"{meth} failed ({est.error[j]}); falling back")
        pending = pending[est.failed]
    failed = np.zeros(n, dtype=bool)
    failed[pending] = True
    return tau2, tau2_se, iters, used, warn, failed, rc


def fit_rows(
    r: Rows,
    methods: Sequence[str],
    test: str,
    level: float,
    ctl: Control,
    tau2_ci: bool = True,
) -> dict:
    """Everything ``rma.uni`` (+ ``confint`` and ``predict``) computes, for each row of ``r``.

    Rows need k > p. Returns a dict of per-row arrays (``beta``/``se``/... of shape (m, p),
    ``vb`` (m, p, p)) plus ``warnings`` (a list per row) and ``failed`` (no estimator worked).
    Failed rows are fitted at tau^2 = 0 (their numbers are not reported).
    """
    k, p = r.k, r.p
    dfr = k - p
    tau2, tau2_se, iters, used, warn, failed, rc = _tau2_sequence(r, methods, ctl)
    # fallback notes first, then the estimator's own notes (as metafor's messages)
    is_fe = used == "FE"
    any_fe, any_failed = bool(is_fe.any()), bool(failed.any())
    for i in which((r.vratio() >= 1e7) & ~failed):
        warn[i].append(VRATIO_NOTE)

    t_fit = np.where(failed, 0.0, tau2) if any_failed else tau2
    w = r.weights(t_fit)
    proj = r.proj(w)
    beta, resid = proj.coef_resid(r.y)
    vb = proj.xtwx_inv()
    rss = (w * resid * resid).sum(axis=1)
    s2w = np.ones(r.m)
    if test in ("knha", "adhoc"):
        for i in which(is_fe & ~failed):
            warn[i].append("Knapp-Hartung is not meant for fixed-effect models (as metafor warns)")
        with np.errstate(divide="ignore", invalid="ignore"):  # k = p (FE): no residual df
            s2w = np.where(rss <= _EPS, 0.0, rss / dfr)
        if test == "adhoc":
            s2w = np.maximum(s2w, 1.0)
        else:
            for i in which((s2w == 0.0) & ~failed):
                warn[i].append("Knapp-Hartung scale factor is 0 (residuals vanish): SEs are 0")
        vb = s2w[:, None, None] * vb
    ddf = dfr if test in T_TESTS else None
    se = np.sqrt(np.diagonal(vb, axis1=1, axis2=2))
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = beta / se
    crit, pval = crit_and_p(stat, ddf, level)

    fe = r.fe_proj()
    yc = r.centred().y if rc is None else rc.y
    qe = np.maximum(0.0, fe.quad(yc))
    with np.errstate(divide="ignore", invalid="ignore"):
        # k = p (fixed-effect model only): QE = 0 on 0 df, p = 1, as metafor
        qe_p = np.where(dfr > 0, special.chdtrc(dfr, qe), 1.0)
        vt = dfr / fe.trace()
        i2 = 100.0 * tau2 / (vt + tau2)
        h2 = tau2 / vt + 1.0
        if any_fe:
            i2_fe = np.where(qe > 0, np.maximum(0.0, 100.0 * (qe - dfr) / qe), 0.0)
            i2 = np.where(is_fe, i2_fe, i2)
            h2 = np.where(is_fe, qe / dfr, h2)

    ci_lo, ci_hi = np.full(r.m, np.nan), np.full(r.m, np.nan)
    re_rows = np.flatnonzero(~is_fe & ~failed) if any_fe or any_failed else np.arange(r.m)
    if tau2_ci and re_rows.size:
        lo, hi, notes = qprofile_rows(r.take(re_rows), tau2[re_rows], level, ctl)
        ci_lo[re_rows], ci_hi[re_rows] = lo, hi
        for j, note in enumerate(notes):
            if note:
                warn[re_rows[j]].append(f"tau^2 CI: {note}")
    elif not tau2_ci:
        for i in re_rows:
            warn[i].append(TAU2_CI_SKIPPED)
    if ddf is not None:
        name = "the t test" if test == "t" else "Knapp-Hartung"
        for i in which((k == 2) & ~failed):
            warn[i].append(f"k = 2: {name} uses a t distribution with 1 df (very wide CI)")
    for i in which((tau2 == 0.0) & ~is_fe & ~failed):
        warn[i].append("tau^2 estimated at the boundary (0)")
    for i in which(failed):
        warn[i].append("no estimator converged: row not fitted")
    logv = r.sum_log_vt(t_fit)
    ll_ml = -0.5 * k * _LOG_2PI - 0.5 * logv - 0.5 * rss
    logdet_xx = np.log(k) if r.X is None else float(np.linalg.slogdet(r.X.T @ r.X)[1])
    ll_reml = -0.5 * dfr * _LOG_2PI + 0.5 * logdet_xx - 0.5 * logv - 0.5 * proj.logdet() - 0.5 * rss
    return dict(
        ll_ml=ll_ml, ll_reml=ll_reml, beta=beta, vb=vb, se=se, stat=stat, pval=pval, crit=crit,
        ddf=ddf, s2w=s2w,
        tau2=np.where(failed, np.nan, tau2) if any_failed else tau2, tau2_se=tau2_se,
        iterations=iters, method=used, failed=failed, QE=qe, QE_p=qe_p, I2=i2, H2=h2, vt=vt,
        w=w, proj=proj, resid=resid, rss=rss, tau2_ci_low=ci_lo, tau2_ci_high=ci_hi,
        warnings=warn,
    )  # fmt: skip
