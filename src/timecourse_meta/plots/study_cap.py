"""Which studies a capped figure draws: the `keep` with the largest weights.

The one rule behind both caps (`forest_rows.cap_studies`, config ``forest.max_studies``, and
`timecourse_cap.cap_study_lines`, config ``figure.max_studies``): the largest weights win, a
missing (NaN) weight counts as the smallest, and ties go to the earlier position, so the choice
is deterministic. Each caller says what a unit and its weight are.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["heaviest"]


def heaviest(weights: ArrayLike, keep: int) -> np.ndarray:
    """Boolean mask of the `keep` units with the largest `weights` (all when there are fewer)."""
    w = np.asarray(weights, dtype=float)
    mask = np.zeros(w.size, dtype=bool)
    mask[np.argsort(-np.nan_to_num(w, nan=-np.inf), kind="mergesort")[:keep]] = True
    return mask
