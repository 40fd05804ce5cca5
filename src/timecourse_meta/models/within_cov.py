"""Within-study covariance of effect sizes measured repeatedly over time.

A study reporting effects at several time points on the same patients gives correlated
estimates. Their sampling covariance is rarely reported, so it is imputed from the sampling
variances ``vi`` and an assumed correlation, as metafor's ``vcalc()`` does
(Viechtbauer, metafor 3.8 docs, ``vcalc``):

* ``"cs"`` -- constant correlation ``rho`` between any two time points of a study
  (``vcalc(vi, cluster = study, obs = position, rho = rho)``);
* ``"ar"`` -- first-order autoregressive correlation ``rho ** |p_i - p_j|`` over the positions
  ``p`` of the time points in the time-point order
  (``vcalc(vi, cluster = study, time1 = position, phi = rho)``);
* ``"car"`` -- continuous-time autoregressive correlation ``phi ** |t_i - t_j|`` over numeric
  times ``t`` (e.g. log hours): ``vcalc(vi, cluster = study, time1 = t, phi = phi)``. Pass the
  numeric times as ``positions``.

Covariance: ``S_ij = r_ij * sqrt(vi_i * vi_j)`` within a study, 0 between studies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from timecourse_meta.errors import TimecourseMetaError
from timecourse_meta.models.mv_structures import check_within

if TYPE_CHECKING:  # scipy.sparse is imported on use (the config check needs none of it)
    import scipy.sparse as sp


def within_correlation(positions: ArrayLike, within: str = "ar", rho: float = 0.5) -> np.ndarray:
    """Correlation matrix of one study's estimates at the given time-point positions.

    ``positions`` are the (integer) positions of the time points in the time-point order;
    a stacked array of shape ``(..., m)`` gives a stacked ``(..., m, m)`` result.
    Equal positions (two rows at the same time) get correlation 1 under both models, as
    ``vcalc()`` does (they are taken to be the same outcome).
    """
    kind, rho = check_within(within, rho)
    pos = np.asarray(positions, dtype=float)
    lag = np.abs(pos[..., :, None] - pos[..., None, :])
    return _corr_from_lag(lag, kind, rho)


def _corr_from_lag(lag: np.ndarray, kind: str, rho: float) -> np.ndarray:
    """Correlation for absolute position differences ``lag`` (1 where lag == 0)."""
    corr = np.power(rho, lag) if kind in ("ar", "car") else np.full(lag.shape, rho)
    return np.where(lag == 0, 1.0, corr)


def timepoint_positions(
    timepoint: ArrayLike, timepoint_order: Sequence | None = None
) -> tuple[np.ndarray, list]:
    """Map time-point labels to 0-based positions in ``timepoint_order``.

    ``timepoint_order`` defaults to the sorted unique time points. Raises if a time point is
    missing from the order (nothing is silently dropped). Returns (positions, order).
    """
    tp = pd.Series(np.asarray(timepoint, dtype=object))
    if timepoint_order is None:
        order = sorted(pd.unique(tp).tolist())
    else:
        order = list(timepoint_order)
        if len(set(order)) != len(order):
            raise TimecourseMetaError("timepoint_order contains duplicates")
    lookup = {lvl: i for i, lvl in enumerate(order)}
    pos = tp.map(lookup)
    if pos.isna().any():
        missing = sorted({str(x) for x in tp[pos.isna()]})
        raise TimecourseMetaError(f"time points not in timepoint_order: {missing}")
    return pos.to_numpy(dtype=np.int64), order


def within_study_cov(
    study: ArrayLike,
    timepoint: ArrayLike,
    vi: ArrayLike,
    within: str = "ar",
    rho: float = 0.5,
    timepoint_order: Sequence | None = None,
) -> sp.csr_matrix:
    """Block-diagonal within-study covariance ``V`` (sparse, rows in input order), like vcalc().

    ``V[i, j] = r(p_i, p_j) * sqrt(vi_i * vi_j)`` if rows i and j belong to the same study,
    else 0; ``r`` from :func:`within_correlation`. Vectorised over all within-study pairs.
    """
    import scipy.sparse as sp

    kind, rho = check_within(within, rho)
    vi = np.asarray(vi, dtype=float)
    study = pd.factorize(pd.Series(np.asarray(study, dtype=object)), sort=False)[0]
    pos, _ = timepoint_positions(timepoint, timepoint_order)
    n = vi.shape[0]
    if study.shape[0] != n or pos.shape[0] != n:
        raise TimecourseMetaError("study, timepoint and vi must have equal length")
    if np.any(~np.isfinite(vi)) or np.any(vi < 0):
        raise TimecourseMetaError("vi must be finite and non-negative")
    # all (i, j) pairs within the same study, via sorting rows by study
    idx = np.argsort(study, kind="stable")
    s_sorted = study[idx]
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
    sizes = np.diff(np.r_[starts, n])
    block_of = np.repeat(np.arange(len(sizes)), sizes)
    # pair (a, b) of positions in the sorted order inside each block
    rep = sizes[block_of]
    a = np.repeat(np.arange(n), rep)
    b = starts[block_of][np.repeat(np.arange(n), rep)] + (
        np.arange(rep.sum()) - np.repeat(np.cumsum(rep) - rep, rep)
    )
    ri, rj = idx[a], idx[b]
    lag = np.abs(pos[ri] - pos[rj]).astype(float)
    corr = _corr_from_lag(lag, kind, rho)
    vals = corr * np.sqrt(vi[ri] * vi[rj])
    return sp.csr_matrix((vals, (ri, rj)), shape=(n, n))
