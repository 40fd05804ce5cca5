"""Many intercept-only random-effects meta-analyses at once, vectorised over rows with numpy.

Why: simulation studies, leave-one-out loops and large pooled tables fit thousands of small
models; a Python loop over :func:`timecourse_meta.fit_random_effects` spends most of its time in
per-call overhead. Here ``m`` meta-analyses are stored as rows of ``m x K`` arrays (padding where
a row has fewer than ``K`` studies) and fitted by the same code as a single fit
(``core.fit_rows`` on :class:`~.rows.Rows`; a single fit is the case m = 1): the same tau^2
estimators (``tau2.py``), Q-profile (``tau2_ci.py``) and root finder (``rootfind.py``), with
per-row active sets in every iterative step, so each row visits the same iterates as a
one-by-one fit. This module only validates and lays out the input and collects the output.

Rows that cannot be fitted (no studies, non-finite or non-positive variances, an estimator that
does not converge) are kept: their numbers are NaN and ``converged`` is False, with the reason in
``warnings``; nothing is dropped silently. Cost and memory are O(m K).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import special

from timecourse_meta.models.control import Control, resolve
from timecourse_meta.models.core import check_args, fit_rows
from timecourse_meta.models.rma import SINGLE_STUDY_NOTE
from timecourse_meta.models.rows import Array, IntArray, Rows

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
# Input layout and output collection
# ---------------------------------------------------------------------------------------------


def _methods(method: str | Sequence[str]) -> list[str]:
    return [method.upper()] if isinstance(method, str) else [m.upper() for m in method]


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
    check_args(methods, test)
    m = y.shape[0]
    res = _empty_result(m, test, level, methods[0])
    res.k = present.sum(axis=1).astype(np.int64)
    valid, msgs = _validate_rows(y, v, present)
    for i in np.flatnonzero(~valid):
        res.warnings[i].append(f"row not fitted: {msgs[i]}")
    single = np.flatnonzero(valid & (res.k == 1))
    multi = np.flatnonzero(valid & (res.k >= 2))
    if single.size:
        _fit_single(Rows.padded(y[single], v[single], present[single]), single, res, level)
    if multi.size:
        rows = Rows.padded(y[multi], v[multi], present[multi])
        _collect(fit_rows(rows, methods, test, level, ctl), multi, res, test)
    return res


def _fit_single(b: Rows, rows: IntArray, res: BatchResult, level: float) -> None:
    """k = 1: the study's own estimate and Wald CI; PI = CI, test z (rma._single_study)."""
    y, v = b.y[:, 0], b.v[:, 0]
    se = np.sqrt(v)
    crit = float(-special.ndtri((1 - level) / 2))
    z = y / se
    res.estimate[rows], res.se[rows], res.stat[rows] = y, se, z
    res.ci_low[rows], res.ci_high[rows] = y - crit * se, y + crit * se
    res.pval[rows] = 2 * special.ndtr(-np.abs(z))
    res.pi_low[rows], res.pi_high[rows] = res.ci_low[rows], res.ci_high[rows]
    res.tau2[rows], res.I2[rows], res.H2[rows] = 0.0, 0.0, 1.0
    res.Q[rows], res.Q_df[rows], res.Q_p[rows] = 0.0, 0.0, 1.0
    res.test[rows] = "z"
    res.converged[rows] = True
    for i in rows:
        res.warnings[i].append(SINGLE_STUDY_NOTE)


def _collect(fit: dict, rows: IntArray, res: BatchResult, test: str) -> None:
    """Write the ``core.fit_rows`` result for the k >= 2 rows into their result rows."""
    good = ~fit["failed"]
    beta, se, crit = fit["beta"][:, 0], fit["se"][:, 0], fit["crit"]
    tau2 = fit["tau2"]
    dfr = res.k[rows] - 1.0
    pi_half = crit * np.sqrt(se**2 + tau2)
    out = {
        "estimate": beta, "se": se, "stat": fit["stat"][:, 0],
        "df": dfr if fit["ddf"] is not None else np.full(rows.size, np.nan),
        "ci_low": beta - crit * se, "ci_high": beta + crit * se, "pval": fit["pval"][:, 0],
        "tau2": tau2, "tau2_se": fit["tau2_se"], "tau2_ci_low": fit["tau2_ci_low"],
        "tau2_ci_high": fit["tau2_ci_high"], "I2": fit["I2"], "H2": fit["H2"],
        "pi_low": beta - pi_half, "pi_high": beta + pi_half,
    }  # fmt: skip
    for name, val in out.items():
        getattr(res, name)[rows[good]] = val[good]
    res.Q[rows], res.Q_df[rows], res.Q_p[rows] = fit["QE"], dfr, fit["QE_p"]  # even if failed
    res.method[rows] = fit["method"]
    res.iterations[rows] = fit["iterations"]
    res.converged[rows] = good
    for j, i in enumerate(rows):
        res.warnings[i] = fit["warnings"][j]


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
