"""Results of the multivariate time-course model: estimates, Wald tests, contrasts, summary.

See :func:`timecourse_meta.models.multivariate.fit_timecourse` for the model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from timecourse_meta.distributions import chi2_sf, norm_ppf, norm_sf
from timecourse_meta.errors import TimecourseMetaError

__all__ = ["TimecourseResult", "WaldTest"]

Array = NDArray[np.float64]


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
        pval = 2 * norm_sf(np.abs(z))
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
            float(chi2_sf(QM, df)),
        )

    def contrast(self, L) -> pd.DataFrame:
        """Linear contrasts of the time-point means with Wald z tests and CIs.

        ``L``: a mapping {timepoint: weight} (e.g. ``{"7d": 1, "24h": -1}`` for 7d minus 24h),
        a weight vector (one per time point, in timepoint order) or a matrix of such rows.
        Returns one row per contrast: contrast, estimate, se, z, pval, ci_low, ci_high.
        """
        M, labels = self._matrix(L)
        w = self.wald(M)
        crit = norm_ppf(1 - (1 - self.level) / 2)
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
