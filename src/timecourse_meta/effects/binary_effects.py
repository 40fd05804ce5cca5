"""Binary and single-proportion effect sizes (metafor ``escalc`` measures "OR", "RR", "PLO").

Split from ``effect_sizes`` (the continuous measures) because counts need their own machinery:
the two-by-two table, metafor's continuity correction (``add``/``to``), the double-zero rule
(``drop00``) and the recoding of +-Inf to NaN. Array-level like ``effect_sizes``: every function
takes array-likes (broadcast together), returns numpy arrays and never loops over studies.
Formulas follow metafor 3.8.1 ``escalc`` exactly (checked against golden values in
``tests/fixtures/metafor/escalc_golden.json``):

* ``log_odds_ratio``/``log_risk_ratio``: measures ``"OR"``/``"RR"`` with ``add``/``to``/``drop00``.
* ``logit_proportion``: measure ``"PLO"``; ``expit`` back-transforms it.

Double-zero studies with ``drop00=True`` are NaN by design and marked in
``BinaryEffect.double_zero``; infinite results emit an ``EffectSizeWarning``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from timecourse_meta.effects.effect_sizes import EffectSizeWarning, _arr

__all__ = [
    "BinaryEffect",
    "expit",
    "log_odds_ratio",
    "log_risk_ratio",
    "logit_proportion",
]

_TO_OPTIONS = ("only0", "all", "if0all", "none")


@dataclass(frozen=True)
class BinaryEffect:
    """Result of a two-by-two or single-proportion measure.

    ``yi``/``vi``: effect (log scale) and its sampling variance.
    ``zero_cell_corrected``: ``add`` was added to the cells of this study.
    ``double_zero``: study dropped by ``drop00`` (no events or only events in both arms);
    ``yi`` and ``vi`` are NaN there by design (no information on the OR/RR).
    """

    yi: np.ndarray
    vi: np.ndarray
    zero_cell_corrected: np.ndarray
    double_zero: np.ndarray

    @property
    def sei(self) -> np.ndarray:
        """Standard errors, sqrt(vi)."""
        return np.sqrt(self.vi)


def _recode_infinite(yi: np.ndarray, vi: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """metafor's escalc: +-Inf in yi or vi is recoded to NA (NaN here), with a warning.

    Without a continuity correction (``to="none"``) a zero cell gives log(0) = -Inf and
    1/0 = Inf; metafor 3.8.1 warns "Some 'yi' and/or 'vi' values equal to +-Inf. Recoded to NAs."
    """
    inf = np.isinf(yi) | np.isinf(vi)
    if np.any(inf):
        warnings.warn(
            f"{what}: {int(np.sum(inf))} value(s) of yi and/or vi equal to +-Inf (zero cells "
            "without continuity correction), recoded to NaN as metafor does",
            EffectSizeWarning,
            stacklevel=3,
        )
        yi = np.where(np.isinf(yi), np.nan, yi)
        vi = np.where(np.isinf(vi), np.nan, vi)
    return yi, vi


def _check_counts(events: np.ndarray, n: np.ndarray) -> None:
    if np.any(events < 0) or np.any(n < 0):
        raise ValueError("counts must be >= 0")
    if np.any(events > n):
        raise ValueError("event counts larger than group sizes")


def _add_to_cells(
    cells: list[np.ndarray], zero: np.ndarray, add: float, to: str
) -> tuple[list[np.ndarray], np.ndarray]:
    """metafor's continuity correction; returns corrected cells and which studies got it."""
    if to not in _TO_OPTIONS:
        raise ValueError(f"to must be one of {_TO_OPTIONS}")
    if to == "all":
        hit = np.ones(zero.shape, dtype=bool)
    elif to == "only0":
        hit = zero
    elif to == "if0all":
        hit = np.full(zero.shape, bool(np.any(zero)))
    else:
        hit = np.zeros(zero.shape, dtype=bool)
    hit = hit & (add != 0)
    return [c + np.where(hit, add, 0.0) for c in cells], hit


def _two_by_two(
    ai: ArrayLike, n1: ArrayLike, ci: ArrayLike, n2: ArrayLike, add: float, to: str, drop00: bool
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    ai, n1, ci, n2 = np.broadcast_arrays(*map(_arr, (ai, n1, ci, n2)))
    _check_counts(ai, n1)
    _check_counts(ci, n2)
    bi, di = n1 - ai, n2 - ci
    # drop00: no events in both arms, or only events in both arms (metafor's id00)
    double_zero = ((ai == 0) & (ci == 0)) | ((bi == 0) & (di == 0))
    if not drop00:
        double_zero = np.zeros(ai.shape, dtype=bool)
    zero = ((ai == 0) | (bi == 0) | (ci == 0) | (di == 0)) & ~double_zero
    cells, hit = _add_to_cells([ai, bi, ci, di], zero, add, to)
    nan_if_dz = [np.where(double_zero, np.nan, c) for c in cells]
    return nan_if_dz, hit & ~double_zero, double_zero


def log_odds_ratio(
    ai: ArrayLike,
    n1: ArrayLike,
    ci: ArrayLike,
    n2: ArrayLike,
    add: float = 0.5,
    to: str = "only0",
    drop00: bool = True,
) -> BinaryEffect:
    """Log odds ratio (group 1 vs group 2) from events ``ai``/``ci`` out of ``n1``/``n2``.

    metafor ``escalc(measure="OR")``: yi = log(ai di / (bi ci)), vi = 1/ai + 1/bi + 1/ci + 1/di,
    after adding ``add`` to all four cells of studies with a zero cell (``to="only0"``).
    ``drop00=True`` (metafor's escalc default is FALSE; its rma.mh/rma.peto default is TRUE and
    Cochrane Handbook §10.4.4.2 recommends excluding such studies) sets yi = vi = NaN for
    studies with no events, or only events, in both arms, marked in ``double_zero``.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        (a, b, c, d), hit, dz = _two_by_two(ai, n1, ci, n2, add, to, drop00)
        yi = np.log(a / b) - np.log(c / d)
        vi = 1 / a + 1 / b + 1 / c + 1 / d
    yi, vi = _recode_infinite(yi, vi, "log odds ratio")
    return BinaryEffect(yi, vi, hit, dz)


def log_risk_ratio(
    ai: ArrayLike,
    n1: ArrayLike,
    ci: ArrayLike,
    n2: ArrayLike,
    add: float = 0.5,
    to: str = "only0",
    drop00: bool = True,
) -> BinaryEffect:
    """Log risk ratio (group 1 vs group 2) from events ``ai``/``ci`` out of ``n1``/``n2``.

    metafor ``escalc(measure="RR")``: yi = log(ai/n1) - log(ci/n2),
    vi = 1/ai - 1/n1 + 1/ci - 1/n2, with n1, n2 recomputed from the corrected cells
    (so a corrected arm has n + 2*add). Zero-cell and double-zero handling as
    ``log_odds_ratio``.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        (a, b, c, d), hit, dz = _two_by_two(ai, n1, ci, n2, add, to, drop00)
        m1, m2 = a + b, c + d
        yi = np.log(a / m1) - np.log(c / m2)
        vi = 1 / a - 1 / m1 + 1 / c - 1 / m2
    yi, vi = _recode_infinite(yi, vi, "log risk ratio")
    return BinaryEffect(yi, vi, hit, dz)


def logit_proportion(
    xi: ArrayLike, ni: ArrayLike, add: float = 0.5, to: str = "only0"
) -> BinaryEffect:
    """Logit of a proportion (metafor ``escalc(measure="PLO")``).

    yi = log(x / (n - x)), vi = 1/x + 1/(n - x), after adding ``add`` to x and n - x for
    proportions of 0 or 1 (``to="only0"``). ``double_zero`` is always False here.
    Back-transform with ``expit``.
    """
    xi, ni = np.broadcast_arrays(*map(_arr, (xi, ni)))
    _check_counts(xi, ni)
    if np.any(ni <= 0):
        raise ValueError("group sizes must be > 0")
    mi = ni - xi
    (x, m), hit = _add_to_cells([xi, mi], (xi == 0) | (mi == 0), add, to)
    with np.errstate(invalid="ignore", divide="ignore"):
        yi = np.log(x / m)
        vi = 1 / x + 1 / m
    yi, vi = _recode_infinite(yi, vi, "logit proportion")
    return BinaryEffect(yi, vi, hit, np.zeros(xi.shape, dtype=bool))


def expit(x: ArrayLike) -> np.ndarray:
    """Inverse logit, 1 / (1 + exp(-x)) (back-transform of ``logit_proportion``)."""
    return special.expit(_arr(x))
