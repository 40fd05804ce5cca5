"""Cap the study layer of the time-course figure at a configured number of comparisons.

Why: at 100 000 studies the faint study layer (one grey line per comparison plus its points)
is 300 000 points and 100 000 polylines, most of the figure's drawing time, and no longer
readable. Like the forest plots (`forest_rows.cap_studies`, config ``forest.max_studies``)
only the comparisons with the largest weights are drawn, and a note on the figure and in the
rule's log says so. The weight of a comparison is the sum of the inverse-variance weights
1/vi of its rows (its information over all its reported times). The pooled estimates, the
fitted curve and its bands are drawn from the tables given, which are those of all studies:
the figure never refits anything.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from timecourse_meta.plots.study_cap import heaviest

__all__ = ["CONFIG_KEY", "cap_study_lines"]

CONFIG_KEY = "figure.max_studies"


def _weights(studies: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(comparison code of each row, weight of each comparison): sum of 1/vi, where a row
    without a positive finite vi counts 0; a row without a comparison id is its own unit,
    sorted after every id (its key starts with the last code point)."""
    ids = studies["comparison_id"]
    own = "\U0010ffffrow " + pd.Series(np.arange(len(studies)), index=studies.index).astype(str)
    key = ids.astype(str).where(ids.notna(), own)
    codes, uniques = pd.factorize(key, sort=True)
    vi = pd.to_numeric(studies["vi"], errors="coerce").to_numpy(float)
    w = np.where(np.isfinite(vi) & (vi > 0), 1.0 / np.where(vi > 0, vi, 1.0), 0.0)
    return codes, np.bincount(codes, weights=w, minlength=len(uniques))


def cap_study_lines(
    studies: pd.DataFrame, max_studies: int | None
) -> tuple[pd.DataFrame, str | None]:
    """(rows to draw, note) for a study layer of at most ``max_studies`` comparisons.

    With more comparisons than ``max_studies``, the rows of the ``max_studies`` comparisons
    with the largest weights (sum of 1/vi over their rows) are kept, in the given row order;
    ties go to the smaller comparison id (sorted as text; rows without an id after all ids),
    so the choice is deterministic.
    The note says so. Otherwise all rows and no note. ``max_studies`` None: no cap.
    """
    if max_studies is None or studies is None or not len(studies):
        return studies, None
    if max_studies < 1:
        raise ValueError(f"{CONFIG_KEY} must be >= 1, got {max_studies}")
    codes, weight = _weights(studies)
    n = weight.size
    if n <= max_studies:
        return studies, None
    keep = heaviest(weight, max_studies)
    note = (
        f"Capped: only the {max_studies} comparisons with the largest weights (sum of "
        f"1/variance) of {n} are drawn as study points and lines (config {CONFIG_KEY}); "
        f"the pooled estimates, curve and bands are those of all {n}"
    )
    return studies[keep[codes]], note
