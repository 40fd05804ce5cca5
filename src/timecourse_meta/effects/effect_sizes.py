"""Array-level effect-size formulas (the numerical core of metafor's ``escalc``).

Every function takes array-likes (broadcast together), returns numpy arrays and never loops
over studies. Formulas follow metafor 3.8.1 ``escalc`` exactly (checked against golden values in
``tests/fixtures/metafor/escalc_golden.json``):

* ``smd``/``smd_from_d``/``smd_from_t``/``smd_var_ls``: measure ``"SMD"``, default ``vtype="LS"``.
* ``smd_from_md_se``: ``"SMD"`` with ``ti = md / se``; ``smd_crossover_from_md_se``: the paired
  SMD of ``smd_crossover`` from a crossover mean difference and its SE.
* ``mean_difference``: measure ``"MD"`` (default ``vtype="LS"``); ``mean_difference_paired``:
  measure ``"MC"`` (raw mean change, paired/crossover designs).

Change-score SMDs use the same ``smd`` function applied to the change means and change SDs
(Cochrane Handbook §10.5.2: the SD of the change is then the standardiser, so change-score SMDs
should not be mixed with final-value SMDs without thought).

The binary and proportion measures (``"OR"``, ``"RR"``, ``"PLO"``) are in ``binary_effects``.

Undefined results (e.g. Hedges' J for ``n1 + n2 - 2 <= 1``) are NaN, as metafor's NA, and are
never silent: they emit an ``EffectSizeWarning``.
"""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from timecourse_meta.distributions import norm_ppf, t_ppf

__all__ = [
    "EffectSizeWarning",
    "hedges_j",
    "mean_difference",
    "mean_difference_paired",
    "orient",
    "se_from_ci",
    "smd",
    "smd_crossover",
    "smd_crossover_from_md_se",
    "smd_from_d",
    "smd_from_md_se",
    "smd_from_t",
    "smd_var_ls",
    "split_shared_control",
    "var_from_ci",
    "var_from_se",
]


class EffectSizeWarning(UserWarning):
    """An effect size could not be computed for some entries (NaN returned there)."""


def _arr(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=float)


def _warn_nan(result: np.ndarray, inputs: list[np.ndarray], what: str) -> None:
    """Warn when NaN appears where all inputs were finite (metafor would return NA)."""
    ok_in = np.logical_and.reduce([np.isfinite(a) for a in np.broadcast_arrays(*inputs)])
    bad = ok_in & ~np.isfinite(result)
    if np.any(bad):
        warnings.warn(
            f"{what}: {int(np.sum(bad))} value(s) undefined, returned as NaN",
            EffectSizeWarning,
            stacklevel=3,
        )


def hedges_j(df: ArrayLike) -> np.ndarray:
    """Exact small-sample correction factor J(m) = Gamma(m/2) / (sqrt(m/2) Gamma((m-1)/2)).

    Hedges (1981); identical to metafor's internal ``.cmicalc`` (NaN for m <= 1). For two
    independent groups m = n1 + n2 - 2; for a paired/crossover design m = n - 1 (as metafor's
    SMCC/SMCR; Borenstein et al. 2009, ch. 4).
    """
    m = _arr(df)
    with np.errstate(invalid="ignore", divide="ignore"):
        j = np.exp(special.gammaln(m / 2) - np.log(np.sqrt(m / 2)) - special.gammaln((m - 1) / 2))
    return np.where(m > 1, j, np.nan)


def smd_var_ls(g: ArrayLike, n1: ArrayLike, n2: ArrayLike) -> np.ndarray:
    """Large-sample variance of Hedges' g from the effect and the group sizes.

    metafor ``escalc(measure="SMD")`` default ``vtype="LS"`` (Hedges 1981; Borenstein et al.
    2009, eq. 4.20 with g for d): vi = 1/n1 + 1/n2 + g^2 / (2 (n1 + n2)). Used for a reported g
    without any SE, variance or CI; for a reported Cohen's d convert with J first
    (``smd_from_d``). Group sizes <= 0 give NaN/inf (never raised: callers report them).
    """
    g, n1, n2 = map(_arr, (g, n1, n2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1 / n1 + 1 / n2 + g**2 / (2 * (n1 + n2))


def _smd_core(d: np.ndarray, n1: np.ndarray, n2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # metafor escalc "SMD": yi = J(n1+n2-2) d; vtype "LS": vi = 1/n1 + 1/n2 + yi^2 / (2 (n1+n2))
    yi = hedges_j(n1 + n2 - 2) * d
    return yi, smd_var_ls(yi, n1, n2)


def _check_n(*ns: np.ndarray) -> None:
    if any(np.any(n <= 0) for n in ns):
        raise ValueError("group sizes must be > 0")


def _check_sd(*sds: np.ndarray) -> None:
    if any(np.any(sd < 0) for sd in sds):
        raise ValueError("standard deviations must be >= 0")


def _check_r(r: np.ndarray) -> None:
    if np.any(np.abs(r) > 1):
        raise ValueError("correlations must lie in [-1, 1]")


def smd(
    m1: ArrayLike,
    sd1: ArrayLike,
    n1: ArrayLike,
    m2: ArrayLike,
    sd2: ArrayLike,
    n2: ArrayLike,
) -> tuple[np.ndarray, np.ndarray]:
    """Hedges' g (group 1 minus group 2) and its large-sample variance.

    metafor ``escalc(measure="SMD", vtype="LS")`` (Hedges 1981; Borenstein et al. 2009):
    sp = sqrt(((n1-1) sd1^2 + (n2-1) sd2^2) / (n1+n2-2)), d = (m1-m2)/sp,
    g = J(n1+n2-2) d with the exact gamma-function J, vi = 1/n1 + 1/n2 + g^2/(2(n1+n2)).

    For change scores pass change means and change SDs: the formula is the same, the
    standardiser is then the SD of change. Returns ``(yi, vi)``.
    """
    m1, sd1, n1, m2, sd2, n2 = map(_arr, (m1, sd1, n1, m2, sd2, n2))
    _check_sd(sd1, sd2)
    _check_n(n1, n2)
    with np.errstate(invalid="ignore", divide="ignore"):
        sp = np.sqrt(((n1 - 1) * sd1**2 + (n2 - 1) * sd2**2) / (n1 + n2 - 2))
        yi, vi = _smd_core((m1 - m2) / sp, n1, n2)
    _warn_nan(yi, [m1, sd1, n1, m2, sd2, n2], "smd")
    return yi, vi


def mean_difference(
    m1: ArrayLike,
    sd1: ArrayLike,
    n1: ArrayLike,
    m2: ArrayLike,
    sd2: ArrayLike,
    n2: ArrayLike,
) -> tuple[np.ndarray, np.ndarray]:
    """Raw mean difference (group 1 minus group 2) and its sampling variance.

    metafor ``escalc(measure="MD")`` with its default ``vtype="LS"`` (Borenstein et al. 2009,
    eq. 4.1 and 4.5, variances not assumed equal): yi = m1 - m2, vi = sd1^2/n1 + sd2^2/n2.
    Only poolable across studies that measure on one scale (the unit of yi is the scale's).
    Returns ``(yi, vi)``.
    """
    m1, sd1, n1, m2, sd2, n2 = map(_arr, (m1, sd1, n1, m2, sd2, n2))
    _check_sd(sd1, sd2)
    _check_n(n1, n2)
    with np.errstate(invalid="ignore", divide="ignore"):
        yi = m1 - m2
        vi = sd1**2 / n1 + sd2**2 / n2
    _warn_nan(yi + vi, [m1, sd1, n1, m2, sd2, n2], "mean_difference")
    return yi, vi


def mean_difference_paired(
    m_treat: ArrayLike,
    sd_treat: ArrayLike,
    m_ctrl: ArrayLike,
    sd_ctrl: ArrayLike,
    n: ArrayLike,
    r: ArrayLike,
) -> tuple[np.ndarray, np.ndarray]:
    """Raw mean difference of a crossover (paired) trial, treatment minus control.

    metafor ``escalc(measure="MC")`` (raw mean change; Borenstein et al. 2009, ch. 4, matched
    groups: the SD of the within-person differences is sqrt(sd1^2 + sd2^2 - 2 r sd1 sd2)):
    yi = m_treat - m_ctrl, vi = (sd_treat^2 + sd_ctrl^2 - 2 r sd_treat sd_ctrl) / n, with n
    participants and r the within-person correlation (the trial's, or assumed as for the paired
    SMD, Cochrane Handbook §23.2.7.2). Returns ``(yi, vi)``.
    """
    m_treat, sd_treat, m_ctrl, sd_ctrl, n, r = map(_arr, (m_treat, sd_treat, m_ctrl, sd_ctrl, n, r))
    _check_sd(sd_treat, sd_ctrl)
    _check_r(r)
    _check_n(n)
    with np.errstate(invalid="ignore", divide="ignore"):
        yi = m_treat - m_ctrl
        vi = (sd_treat**2 + sd_ctrl**2 - 2 * r * sd_treat * sd_ctrl) / n
    _warn_nan(yi + vi, [m_treat, sd_treat, m_ctrl, sd_ctrl, n, r], "mean_difference_paired")
    return yi, vi


def smd_from_d(d: ArrayLike, n1: ArrayLike, n2: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Hedges' g from a reported Cohen's d (pooled-SD standardised mean difference).

    metafor ``escalc(measure="SMD", di=, n1i=, n2i=)``: g = J(n1+n2-2) d,
    vi = 1/n1 + 1/n2 + g^2/(2(n1+n2)). Returns ``(yi, vi)``.
    """
    d, n1, n2 = map(_arr, (d, n1, n2))
    _check_n(n1, n2)
    with np.errstate(invalid="ignore", divide="ignore"):
        yi, vi = _smd_core(d, n1, n2)
    _warn_nan(yi, [d, n1, n2], "smd_from_d")
    return yi, vi


def smd_from_t(t: ArrayLike, n1: ArrayLike, n2: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Hedges' g from a two-sample (pooled-variance) t statistic.

    metafor ``escalc(measure="SMD", ti=, n1i=, n2i=)``: d = t sqrt(1/n1 + 1/n2), then as
    ``smd_from_d``. The sign of t must be group 1 minus group 2. Returns ``(yi, vi)``.
    """
    t, n1, n2 = map(_arr, (t, n1, n2))
    _check_n(n1, n2)
    return smd_from_d(t * np.sqrt(1 / n1 + 1 / n2), n1, n2)


def var_from_se(se: ArrayLike) -> np.ndarray:
    """Sampling variance from a standard error: vi = se^2 (metafor ``escalc(yi=, sei=)``)."""
    se = _arr(se)
    if np.any(se < 0):
        raise ValueError("standard errors must be >= 0")
    return se**2


def var_from_ci(lo: ArrayLike, hi: ArrayLike, level: ArrayLike = 0.95) -> np.ndarray:
    """Sampling variance of an effect from its normal-theory CI.

    se = (hi - lo) / (2 z_{1-(1-level)/2}) (Cochrane Handbook §6.3.1; z = 1.959964 for 95%),
    vi = se^2. For ratio measures pass the CI limits on the log scale.
    """
    lo, hi, level = map(_arr, (lo, hi, level))
    if np.any(hi < lo):
        raise ValueError("CI upper limit below lower limit")
    z = norm_ppf(1 - (1 - level) / 2)
    return ((hi - lo) / (2 * z)) ** 2


def se_from_ci(
    lo: ArrayLike, hi: ArrayLike, level: ArrayLike = 0.95, df: ArrayLike = np.inf
) -> np.ndarray:
    """Standard error of an effect (e.g. a mean difference) from its symmetric CI.

    se = (hi - lo) / (2 q), q = the t quantile with ``df`` degrees of freedom at
    1 - (1 - level)/2; ``df = inf`` gives the normal quantile (1.959964 for 95%, divisor 3.92).
    Cochrane Handbook §6.5.2.3 (obtaining SDs from SEs and CIs of differences in means; §7.7.3.3
    in version 5.1): a CI from small samples should have been computed with a t distribution
    with n1 + n2 - 2 degrees of freedom, so 3.92 is replaced by 2 t. ``df < 1`` gives NaN.
    Returns an array of standard errors.
    """
    lo, hi, level, df = np.broadcast_arrays(*map(_arr, (lo, hi, level, df)))
    if np.any(hi < lo):
        raise ValueError("CI upper limit below lower limit")
    if np.any((level <= 0) | (level >= 1)):
        raise ValueError("CI level must lie strictly between 0 and 1")
    p = 1 - (1 - level) / 2
    with np.errstate(invalid="ignore"):
        q = np.where(df >= 1, t_ppf(p, np.maximum(df, 1)), np.nan)
    return (hi - lo) / (2 * q)


def smd_from_md_se(
    md: ArrayLike, se: ArrayLike, n1: ArrayLike, n2: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Hedges' g from a raw mean difference (group 1 minus group 2) and its standard error.

    t = md / se, then as ``smd_from_t`` (metafor ``escalc(measure="SMD", ti=, n1i=, n2i=)``):
    d = t sqrt(1/n1 + 1/n2), i.e. d = md / sp with the pooled SD recovered from the SE of the
    difference, sp = se / sqrt(1/n1 + 1/n2) (Cochrane Handbook §6.5.2.3; Borenstein et al.
    2009, ch. 4), g = J(n1+n2-2) d, vi = 1/n1 + 1/n2 + g^2/(2(n1+n2)).

    When the SE comes from an adjusted model (ANCOVA, MMRM least-squares mean difference), sp is
    the covariate-adjusted residual SD, usually smaller than the raw SD: the result is then an
    adjusted-effect SMD (larger in magnitude than the SMD from raw SDs would be).
    Returns ``(yi, vi)``; se = 0 or undefined J gives NaN with an ``EffectSizeWarning``.
    """
    md, se, n1, n2 = map(_arr, (md, se, n1, n2))
    if np.any(se < 0):
        raise ValueError("standard errors must be >= 0")
    _check_n(n1, n2)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(se > 0, md / np.where(se > 0, se, 1.0), np.nan)
        yi, vi = _smd_core(t * np.sqrt(1 / n1 + 1 / n2), n1, n2)
    _warn_nan(yi, [md, se, n1, n2], "smd_from_md_se")
    return yi, vi


def smd_crossover_from_md_se(
    md: ArrayLike, se: ArrayLike, n: ArrayLike, r: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Paired SMD (treatment minus control) from a crossover trial's mean difference and SE.

    The SE of a mean of n within-person differences gives their SD: sd_diff = se sqrt(n).
    Assuming equal SDs in the two conditions, sd_diff^2 = 2 sd^2 (1 - r), so the
    within-condition SD is sd = sd_diff / sqrt(2 (1 - r)) (Elbourne et al. 2002; Cochrane
    Handbook §23.2.7.2), r = within-person correlation. Then exactly as ``smd_crossover``:
    g = J(n-1) md / sd, vi = (1/n + g^2/(2n)) 2(1 - r). Equivalently g = J(n-1) t
    sqrt(2(1 - r)/n) with t = md/se, so the point estimate, not only its variance, depends on r.

    Relation to metafor: yi = ``escalc("SMCR", m1i=md, m2i=0, sd1i=sd, ni=n, ri=r)$yi`` for any
    r; at r = 0.5 yi and vi equal ``escalc("SMCC", ...)`` with equal SDs (see ``smd_crossover``).
    r = 1 is undefined (a positive SE with perfectly correlated conditions): NaN with an
    ``EffectSizeWarning``, as are se = 0 and n <= 2. Returns ``(yi, vi)``.
    """
    md, se, n, r = map(_arr, (md, se, n, r))
    if np.any(se < 0):
        raise ValueError("standard errors must be >= 0")
    _check_r(r)
    _check_n(n)
    with np.errstate(invalid="ignore", divide="ignore"):
        sd_diff = se * np.sqrt(n)
        sd = np.where((r < 1) & (se > 0), sd_diff / np.sqrt(2 * (1 - r)), np.nan)
        yi = hedges_j(n - 1) * md / sd
        vi = (1 / n + yi**2 / (2 * n)) * 2 * (1 - r)
    _warn_nan(yi, [md, se, n, r], "smd_crossover_from_md_se")
    return yi, vi


def smd_crossover(
    m_treat: ArrayLike,
    sd_treat: ArrayLike,
    m_ctrl: ArrayLike,
    sd_ctrl: ArrayLike,
    n: ArrayLike,
    r: ArrayLike,
) -> tuple[np.ndarray, np.ndarray]:
    """Paired (within-person) SMD for a crossover trial, treatment minus control.

    Cochrane Handbook §23.2.7.2 (Elbourne et al. 2002): the standardiser is the pooled SD of the
    two conditions, sp = sqrt((sd_treat^2 + sd_ctrl^2) / 2) (same n in both conditions), and
    SE(SMD) = sqrt(1/n + SMD^2/(2n)) * sqrt(2(1 - r)), r = within-person correlation.

    Small-sample correction: the exact Hedges J with m = n - 1 degrees of freedom (as metafor's
    SMCC/SMCR and Borenstein et al. 2009 for matched designs), g = J(n-1) d; the variance uses g
    in place of SMD (as metafor's vtype "LS"):
    vi = (1/n + g^2/(2n)) * 2(1 - r).

    Relation to metafor: yi equals ``escalc("SMCR", m1i=m_treat, m2i=m_ctrl, sd1i=sp, ni=n, ri=r)``
    for any r; SMCR's LS variance is 2(1-r)/n + g^2/(2n), which equals ours only at r = 0.5
    (ours scales the g^2 term by 2(1-r) too). With equal SDs, ``escalc("SMCC")`` standardises
    by the SD of differences, so its yi = ours / sqrt(2(1-r)); at r = 0.5 SMCC, SMCR and this
    function coincide exactly. Returns ``(yi, vi)``.
    """
    m_treat, sd_treat, m_ctrl, sd_ctrl, n, r = map(_arr, (m_treat, sd_treat, m_ctrl, sd_ctrl, n, r))
    _check_sd(sd_treat, sd_ctrl)
    _check_r(r)
    _check_n(n)
    with np.errstate(invalid="ignore", divide="ignore"):
        sp = np.sqrt((sd_treat**2 + sd_ctrl**2) / 2)
        yi = hedges_j(n - 1) * (m_treat - m_ctrl) / sp
        vi = (1 / n + yi**2 / (2 * n)) * 2 * (1 - r)
    _warn_nan(yi, [m_treat, sd_treat, m_ctrl, sd_ctrl, n, r], "smd_crossover")
    return yi, vi


def split_shared_control(n_control: ArrayLike, n_arms: ArrayLike) -> np.ndarray:
    """Divide a shared control group evenly among the comparisons that use it.

    Cochrane Handbook §23.3.4: for a multi-arm trial whose control arm is compared with
    ``n_arms`` treatment arms, each comparison gets n_control / n_arms participants (no
    rounding); means and SDs are unchanged. For binary outcomes apply the same function to the
    event count (events / n_arms), which keeps the control risk unchanged.
    """
    n_control, n_arms = map(_arr, (n_control, n_arms))
    if np.any(n_arms < 1):
        raise ValueError("n_arms must be >= 1")
    return n_control / n_arms


def orient(yi: ArrayLike, lower_is_better: ArrayLike) -> np.ndarray:
    """Orient effects so that positive = benefit of treatment.

    ``yi`` must be treatment minus control (or log ratio treatment/control) in the outcome's
    own direction; it is negated where ``lower_is_better`` is True (e.g. depression scores).
    """
    yi = _arr(yi)
    flip = np.asarray(lower_is_better, dtype=bool)
    return np.where(flip, -yi, yi)
