"""Recover an arm's standard deviation from its standard error or confidence interval.

Cochrane Handbook §6.5.2.2 (Higgins et al., version 6.4):

* SD = SE * sqrt(n)
* SD = sqrt(n) * (hi - lo) / (2 q), where q is the t quantile with n - 1 df for small samples
  ("say, fewer than 60 participants") and the normal quantile otherwise (3.92 = 2 * 1.96 for a
  95% CI). Here ``dist=None`` applies exactly that rule per row: "t" when n < 60, else "z".

Each function returns the SDs together with one method label per entry, so the derivation of
every SD is recorded (labels are used verbatim in ``comparisons.compute_effects``'s
``derivation`` column).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from timecourse_meta.distributions import norm_ppf, t_ppf
from timecourse_meta.schema import R_SD

__all__ = [
    "LABEL_NONE",
    "LABEL_REPORTED",
    "LABEL_SE",
    "SDRecovery",
    "T_RULE_MAX_N",
    "recover_sd",
    "sd_from_ci",
    "sd_from_se",
]

T_RULE_MAX_N = 60  # Handbook §6.5.2.2: use t when n < 60
LABEL_REPORTED = "SD reported"
LABEL_SE = "SD from SE x sqrt(n)"
LABEL_NONE = R_SD  # the exclusion reason when no SD can be had


class SDRecovery(NamedTuple):
    """SDs and, per entry, a human-readable label of how each was obtained."""

    sd: np.ndarray
    method: np.ndarray  # dtype object (str)


def _arr(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=float)


def _ci_label(level: float, dist: str) -> str:
    kind = "t, df=n-1" if dist == "t" else "z"
    return f"SD from {level * 100:g}% CI ({kind})"


def sd_from_se(se: ArrayLike, n: ArrayLike) -> SDRecovery:
    """SD = SE * sqrt(n) (Cochrane Handbook §6.5.2.2)."""
    se, n = np.broadcast_arrays(_arr(se), _arr(n))
    if np.any(se < 0) or np.any(n <= 0):
        raise ValueError("SE must be >= 0 and n > 0")
    return SDRecovery(se * np.sqrt(n), np.full(se.shape, LABEL_SE, dtype=object))


def sd_from_ci(
    lo: ArrayLike,
    hi: ArrayLike,
    n: ArrayLike,
    level: ArrayLike = 0.95,
    dist: str | None = None,
) -> SDRecovery:
    """SD from the CI of an arm mean: sqrt(n) * (hi - lo) / (2 q) (Cochrane Handbook §6.5.2.2).

    q = t_{n-1, 1-(1-level)/2} when ``dist="t"``, the normal quantile when ``dist="z"``;
    ``dist=None`` chooses per row: "t" if n < 60 else "z" (the Handbook's suggestion).
    """
    lo, hi, n, level = np.broadcast_arrays(_arr(lo), _arr(hi), _arr(n), _arr(level))
    if np.any(hi < lo) or np.any(n <= 0):
        raise ValueError("CI upper limit must be >= lower limit and n > 0")
    if np.any((level <= 0) | (level >= 1)):
        raise ValueError("CI level must lie strictly between 0 and 1")
    if dist is None:
        use_t = n < T_RULE_MAX_N
    elif dist in ("t", "z"):
        use_t = np.full(n.shape, dist == "t")
    else:
        raise ValueError('dist must be "t", "z" or None')
    p = 1 - (1 - level) / 2
    with np.errstate(invalid="ignore"):
        q = np.where(use_t, t_ppf(p, np.maximum(n - 1, 1)), norm_ppf(p))
    q = np.where(use_t & (n < 2), np.nan, q)  # t with 0 df is undefined
    sd = np.sqrt(n) * (hi - lo) / (2 * q)
    # one label per distinct (level, dist) pair; no loop over rows
    labels = np.empty(n.shape, dtype=object)
    for lev in np.unique(level):
        for d, mask_d in (("t", use_t), ("z", ~use_t)):
            labels[(level == lev) & mask_d] = _ci_label(float(lev), d)
    return SDRecovery(sd, labels)


def recover_sd(
    sd: ArrayLike,
    se: ArrayLike,
    ci_low: ArrayLike,
    ci_high: ArrayLike,
    n: ArrayLike,
    ci_level: ArrayLike = 0.95,
    dist: str | None = None,
) -> SDRecovery:
    """Per row: reported SD if present, else SD from SE, else SD from CI, else NaN.

    Missing inputs are NaN. Rows with nothing to recover from get NaN with label
    ``LABEL_NONE`` (never silent). A missing ``ci_level`` defaults to 0.95.
    """
    sd, se, lo, hi, n, level = np.broadcast_arrays(
        *map(_arr, (sd, se, ci_low, ci_high, n, ci_level))
    )
    level = np.where(np.isnan(level), 0.95, level)
    has_sd = ~np.isnan(sd)
    has_se = ~has_sd & ~np.isnan(se) & (n > 0)
    has_ci = ~has_sd & ~has_se & ~np.isnan(lo) & ~np.isnan(hi) & (n > 0)

    out = np.full(sd.shape, np.nan)
    method = np.full(sd.shape, LABEL_NONE, dtype=object)
    out[has_sd] = sd[has_sd]
    method[has_sd] = LABEL_REPORTED
    if np.any(has_se):
        r = sd_from_se(se[has_se], n[has_se])
        out[has_se], method[has_se] = r.sd, r.method
    if np.any(has_ci):
        r = sd_from_ci(lo[has_ci], hi[has_ci], n[has_ci], level[has_ci], dist)
        out[has_ci], method[has_ci] = r.sd, r.method
    return SDRecovery(out, method)
