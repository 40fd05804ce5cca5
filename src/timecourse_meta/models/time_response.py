"""Effect as a smooth function of time: one-stage multivariate meta-regression on (log) time.

Model (metafor 3.8 ``rma.mv(yi, V, mods = X, random = ~ t | study, struct = "CAR")``;
Viechtbauer 2010, J Stat Softw 36(3)), for the effects y(s, t) of study s at its reported times:

    y(s, t) = x(t)' beta + u_s(t) + e(s, t)

* ``x(t)``: intercept and a basis in ``t = log hours`` (:mod:`.time_basis`: natural cubic
  spline or piecewise linear), or any design matrix passed in;
* ``u_s(t)``: between-study deviation, continuous-time AR (CAR): ``cov(u_s(t1), u_s(t2)) =
  tau2 rho^|t1 - t2|`` (rho per unit of t; estimated by REML or fixed);
* ``e``: sampling errors with the within-study covariance of ``vcalc(vi, cluster, time1 = t,
  phi, grp1, grp2, w1, w2)`` (metafor 3.8 ``vcalc`` docs, "shared groups"): for rows i, j of one
  study, comparison arms a (treatment) and c (control) with sizes n_a, n_c,

      r_ij = phi^|t_i - t_j| [ 1(a_i = a_j)/sqrt(n_ai n_aj) + 1(c_i = c_j)/sqrt(n_ci n_cj) ]
             / ( sqrt(1/n_ai + 1/n_ci) sqrt(1/n_aj + 1/n_cj) ),   S_ij = r_ij sqrt(vi_i vi_j).

  The same comparison at two times: ``r = phi^|t_i - t_j|``; two arms sharing a control
  (multi-arm trial) at one time: ``r = (1/n_c) / sqrt((1/n_a1 + 1/n_c)(1/n_a2 + 1/n_c))``, the
  large-sample correlation of two contrasts with a common control (Gleser & Olkin 2009, in The
  Handbook of Research Synthesis and Meta-Analysis, 2nd ed., ch. 19, eq. 19.19 without its
  small d1 d2 / 2N term). Without arm information each comparison is its own unit (r = 0
  between comparisons).

The random effect belongs to the comparison (``unit``), the covariance blocks and the robust
clusters to the study. The likelihood, its gradient and the optimiser are those of the
categorical-window model (:mod:`.mv_likelihood`, one implementation); CR2 robust inference in
:mod:`.robust_cr2`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from timecourse_meta.distributions import chi2_sf, norm_ppf, t_ppf
from timecourse_meta.errors import TimecourseMetaError
from timecourse_meta.models.mv_likelihood import (
    GTOL,
    evaluate,
    initial_total,
    make_blocks,
    maximise,
    within_only,
)
from timecourse_meta.models.mv_structures import make_structure
from timecourse_meta.models.robust_cr2 import RobustResult, cr2

__all__ = ["CarFit", "fit_car", "vcalc_shared"]

Array = NDArray[np.float64]
_EPS10 = 10 * np.finfo(float).eps


def vcalc_shared(
    t: Array,
    vi: Array,
    phi: float,
    arm: Sequence | None = None,
    control: Sequence | None = None,
    n_arm: Array | None = None,
    n_control: Array | None = None,
) -> Array:
    """Within-study sampling covariance of one study's rows (formula in the module docstring).

    ``arm``/``control``: ids of the two groups each row contrasts (None: every row the same
    comparison); ``n_arm``/``n_control``: group sizes (None: equal sizes, vcalc's default).
    """
    t = np.asarray(t, dtype=float)
    m = t.size
    decay = np.where(t[:, None] == t[None, :], 1.0, phi ** np.abs(t[:, None] - t[None, :]))
    sd = np.sqrt(np.asarray(vi, dtype=float))
    if arm is None:
        return decay * sd[:, None] * sd[None, :]
    a = np.asarray(arm, dtype=object)
    c = (
        np.asarray(control, dtype=object)
        if control is not None
        else np.char.add(a.astype(str), "|c")
    )
    wa = np.ones(m) if n_arm is None else np.asarray(n_arm, dtype=float)
    wc = np.ones(m) if n_control is None else np.asarray(n_control, dtype=float)
    num = (a[:, None] == a[None, :]) / np.sqrt(np.outer(wa, wa)) + (
        c[:, None] == c[None, :]
    ) / np.sqrt(np.outer(wc, wc))
    den = np.sqrt(1 / wa + 1 / wc)
    r = decay * num / np.outer(den, den)
    return r * sd[:, None] * sd[None, :]


@dataclass
class CarFit:
    """A fitted CAR meta-regression; see :func:`fit_car`."""

    beta: Array
    vcov: Array
    tau2: float
    rho: float
    rho_fixed: bool
    loglik: float
    aic: float
    bic: float
    aicc: float
    QE: float
    QE_df: int
    QM: float
    QM_df: int
    QM_pval: float
    k: int
    p: int
    n_clusters: int
    level: float
    converged: bool
    coef_names: list[str]
    X: Array
    y: Array
    M: Array  # marginal covariance (N, N), rows in input order
    clusters: list[NDArray[np.int64]]
    warnings: list[str] = field(default_factory=list)
    _robust: tuple | None = None

    @property
    def se(self) -> Array:
        return np.sqrt(np.diag(self.vcov))

    def predict(self, Xnew: ArrayLike, robust: bool = False) -> pd.DataFrame:
        """pred = Xnew b, CI pred +/- z se, PI pred +/- z sqrt(se^2 + tau2) (metafor predict);
        with ``robust``: CR2 covariance, t quantiles with the contrast's Satterthwaite df."""
        Xn = np.atleast_2d(np.asarray(Xnew, dtype=float))
        pred = Xn @ self.beta
        V = self.robust().vcov if robust else self.vcov
        se = np.sqrt(np.einsum("ij,jk,ik->i", Xn, V, Xn))
        if robust:
            df_of = self._robust[1]  # type: ignore[index]
            df = np.array([df_of(x) for x in Xn])
            crit = t_ppf(1 - (1 - self.level) / 2, df)
        else:
            df = np.full(len(pred), np.inf)
            crit = np.full(len(pred), norm_ppf(1 - (1 - self.level) / 2))
        half_pi = crit * np.sqrt(se**2 + self.tau2)
        return pd.DataFrame(
            {
                "estimate": pred,
                "se": se,
                "ci_low": pred - crit * se,
                "ci_high": pred + crit * se,
                "pi_low": pred - half_pi,
                "pi_high": pred + half_pi,
                "df": df,
            }
        )

    def wald(self, L: ArrayLike, robust: bool = False) -> dict[str, float]:
        """Wald test of L b = 0: chi-square (model-based) with rank(L) df; robust: clubSandwich's
        HTZ F test (CR2) with df1 = q and df2 in ``df``."""
        Lm = np.atleast_2d(np.asarray(L, dtype=float))
        if robust:
            self.robust()
            h = self._robust[2](Lm)  # type: ignore[index]
            return {"stat": h["F"], "df": h["df2"], "pval": h["pval"], "df1": h["df1"]}
        est = Lm @ self.beta
        cov = Lm @ self.vcov @ Lm.T
        q = int(np.linalg.matrix_rank(Lm))
        stat = float(est @ np.linalg.pinv(cov) @ est)
        return {"stat": stat, "df": float(q), "pval": float(chi2_sf(stat, q))}

    def robust(self) -> RobustResult:
        """CR2 cluster-robust covariance and Satterthwaite df (clubSandwich), cached."""
        if self._robust is None:
            self._robust = cr2(self.X, self.y, self.M, self.beta, self.clusters)
        return self._robust[0]


def _check_inputs(cluster, t, yi, vi, X):
    yi = np.asarray(yi, dtype=float)
    vi = np.asarray(vi, dtype=float)
    t = np.asarray(t, dtype=float)
    X = np.atleast_2d(np.asarray(X, dtype=float))
    n = yi.size
    if not (vi.size == t.size == n == len(cluster) == X.shape[0]):
        raise TimecourseMetaError("cluster, t, yi, vi and X must have one row per estimate")
    for name, arr in (("yi", yi), ("vi", vi), ("t", t), ("X", X)):
        if not np.all(np.isfinite(arr)):
            raise TimecourseMetaError(f"{name} must be finite (no missing values)")
    if np.any(vi <= 0):
        raise TimecourseMetaError("sampling variances vi must be positive")
    return t, yi, vi, X


def fit_car(
    cluster: Sequence,
    t: ArrayLike,
    yi: ArrayLike,
    vi: ArrayLike,
    X: ArrayLike,
    *,
    phi: float = 0.5,
    unit: Sequence | None = None,
    arm: Sequence | None = None,
    control: Sequence | None = None,
    n_arm: ArrayLike | None = None,
    n_control: ArrayLike | None = None,
    V: ArrayLike | None = None,
    rho: float | None = None,
    method: str = "REML",
    level: float = 0.95,
    coef_names: Sequence[str] | None = None,
    intercept: bool = True,
    maxiter: int = 2000,
) -> CarFit:
    """Fit ``rma.mv(yi, V, mods = X, random = ~ t | unit, struct = "CAR")`` by REML (or ML).

    ``cluster``: study (covariance block, robust cluster); ``unit``: random-effect unit within
    the study (default: the study). ``V``: a full within-study covariance (N, N) instead of
    the vcalc formula with ``phi`` and arms. ``rho``: None estimates it, a number fixes it.
    ``X`` is the full design (column 0 the intercept when ``intercept``; QM then tests the
    other coefficients, as metafor's ``btt``).
    """
    method = str(method).upper()
    if method not in ("REML", "ML"):
        raise ValueError("method must be REML or ML")
    if not 0 < phi < 1 and V is None:
        raise ValueError("phi must lie in (0, 1)")
    if rho is not None and not 0 < rho < 1:
        raise ValueError("a fixed rho must lie in (0, 1)")
    cluster = np.asarray(cluster, dtype=object)
    t, y, v, X = _check_inputs(cluster, t, yi, vi, X)
    n, p = X.shape
    levels, lev = np.unique(t, return_inverse=True)
    unit_arr = cluster if unit is None else np.asarray(unit, dtype=object)
    same_unit_dup = pd.DataFrame({"u": unit_arr, "t": t}).duplicated().any()
    if same_unit_dup:
        raise TimecourseMetaError("two rows share a (unit, time): one estimate per unit and time")
    Vfull = None if V is None else np.asarray(V, dtype=float)
    opt = {
        k: (
            None if a is None else np.asarray(a, dtype=object if k in ("arm", "control") else float)
        )
        for k, a in (("arm", arm), ("control", control), ("n_arm", n_arm), ("n_control", n_control))
    }

    def s_block(rows):
        if Vfull is not None:
            return Vfull[np.ix_(rows, rows)]
        if opt["arm"] is None and unit is not None:
            sub = {"arm": unit_arr[rows], "control": None}
        else:
            sub = {"arm": None if opt["arm"] is None else opt["arm"][rows]}
            sub["control"] = None if opt["control"] is None else opt["control"][rows]
        na = None if opt["n_arm"] is None else opt["n_arm"][rows]
        nc = None if opt["n_control"] is None else opt["n_control"][rows]
        return vcalc_shared(t[rows], v[rows], phi, sub["arm"], sub["control"], na, nc)

    def mask_block(rows):
        u = unit_arr[rows]
        return (u[:, None] == u[None, :]).astype(float)

    blocks = make_blocks(
        cluster, lev, y, X, levels.size, s_block, None if unit is None else mask_block
    )
    notes: list[str] = []
    structure = make_structure("CAR", levels.size, level_times=levels, fixed_rho=rho)
    reml = method == "REML"
    total = initial_total(blocks, 1)
    theta, f, grad, _, res = maximise(blocks, structure, reml, structure.start(total), maxiter)
    G = structure.build(theta).real
    ev = evaluate(blocks, G, reml, grad=False)
    if ev is None:
        raise TimecourseMetaError("final marginal covariance matrix is not positive definite")
    gmax = float(np.max(np.abs(grad))) if grad.size else 0.0
    converged = bool(f < 1e99 and (res.success or gmax < GTOL))
    if not converged:
        notes.append(f"optimiser did not converge (max |gradient| = {gmax:.2g})")
    tau2_arr, rho_est = structure.unpack(theta)
    tau2 = float(tau2_arr[0]) if tau2_arr[0] > _EPS10 else 0.0
    if tau2 < 1e-6 * float(np.median(v)):
        notes.append("tau2 is at the boundary (~0)")
    if rho is None and (rho_est > 0.9999 or rho_est < 1e-4):
        notes.append(f"rho at the boundary ({rho_est:.4g}): weakly identified")
    # full marginal covariance in input order (for predictions' users and robust SEs)
    M = np.zeros((n, n))
    clusters = []
    for g in blocks.groups:
        Gb = G[g.idx[:, :, None], g.idx[:, None, :]]
        Mb = g.S + (Gb if g.mask is None else Gb * g.mask)
        for rows, mb in zip(g.rows, Mb, strict=True):
            M[np.ix_(rows, rows)] = mb
            clusters.append(rows)
    n_par = p + structure.n_par
    k = n
    n_ic = k - p if reml else k
    ll = ev.ll
    m_ic = max(n_ic, n_par + 2)
    btt = np.arange(1, p) if intercept and p > 1 else np.arange(p)
    b_t, V_t = ev.beta[btt], ev.vcov[np.ix_(btt, btt)]
    QM = float(b_t @ np.linalg.solve(V_t, b_t)) if btt.size else 0.0
    for msg in notes:
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
    return CarFit(
        beta=ev.beta,
        vcov=ev.vcov,
        tau2=tau2,
        rho=float(rho_est),
        rho_fixed=rho is not None,
        loglik=float(ll),
        aic=float(-2 * ll + 2 * n_par),
        bic=float(-2 * ll + n_par * math.log(n_ic)),
        aicc=float(-2 * ll + 2 * n_par * m_ic / (m_ic - n_par - 1)),
        QE=float(within_only(blocks).rss),
        QE_df=k - p,
        QM=QM,
        QM_df=int(btt.size),
        QM_pval=float(chi2_sf(QM, btt.size)) if btt.size else float("nan"),
        k=k,
        p=p,
        n_clusters=blocks.n_clusters,
        level=level,
        converged=converged,
        coef_names=list(coef_names) if coef_names is not None else [f"b{j}" for j in range(p)],
        X=X,
        y=y,
        M=M,
        clusters=clusters,
        warnings=notes,
    )
