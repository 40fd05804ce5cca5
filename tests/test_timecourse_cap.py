"""Cap of the time-course figure's study layer (plots.timecourse_cap, config figure.max_studies).

Synthetic frames of test_timecourse_figure. Comparison weights (sum of 1/vi over its rows):
S1 1/0.19 + 1/0.2 = 10.26, S2 2/0.018 = 111.1, S3 3 * 10 + 1/0.11 = 39.09, S4 1/0.23 = 4.35.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_timecourse_figure import (
    assert_clean_layout,
    full_figure,
    gid_objects,
    legend_texts,
    main_axes,
    studies_frame,
)

from timecourse_meta.plots.figures import save_figure
from timecourse_meta.plots.timecourse_cap import cap_study_lines

NOTE_2_OF_4 = (
    "Capped: only the 2 comparisons with the largest weights (sum of 1/variance) of 4 are "
    "drawn as study points and lines (config figure.max_studies); the pooled estimates, curve "
    "and bands are those of all 4"
)


def test_cap_keeps_the_heaviest_comparisons_in_row_order() -> None:
    s = studies_frame()
    kept, note = cap_study_lines(s, 2)
    assert kept["comparison_id"].tolist() == ["S2", "S2", "S3", "S3", "S3", "S3"]
    pd.testing.assert_frame_equal(kept, s.iloc[2:8])
    assert note == NOTE_2_OF_4
    kept3, _ = cap_study_lines(s, 3)
    assert sorted(set(kept3["comparison_id"])) == ["S1", "S2", "S3"]


def test_cap_ties_go_to_the_smaller_id_and_missing_ids_are_own_units() -> None:
    s = pd.DataFrame(
        {"comparison_id": ["B", "A", None, None, "C"], "time_hours": [1.0, 1.0, 2.0, 3.0, 4.0],
         "yi": [0.1, 0.2, 0.3, 0.4, 0.5], "vi": [0.1, 0.1, 0.05, 0.1, np.nan]}
    )  # fmt: skip
    kept, note = cap_study_lines(s, 2)
    # weights: B 10, A 10, row 2 20, row 3 10, C 0 (no usable vi): row 2, then A before B
    assert kept.index.tolist() == [1, 2]
    assert "of 5 are drawn" in note


def test_no_cap_at_or_below_the_limit_or_none() -> None:
    s = studies_frame()
    for cap in (None, 4, 200):
        kept, note = cap_study_lines(s, cap)
        assert kept is s and note is None
    assert cap_study_lines(None, 2) == (None, None)
    with pytest.raises(ValueError, match="figure.max_studies must be >= 1"):
        cap_study_lines(s, 0)


def test_capped_figure_draws_the_kept_comparisons_and_the_note() -> None:
    fig = full_figure(max_studies=2)
    (pts,) = gid_objects(fig, "study-points")
    assert len(pts.get_offsets()) == 6  # S2 (2 rows) and S3 (4 rows)
    assert len(gid_objects(fig, "study-line")) == 2
    assert legend_texts(fig)[-1] == NOTE_2_OF_4
    assert_clean_layout(fig)  # no text overlaps another or leaves the figure
    r = fig.canvas.get_renderer()
    (leg,) = fig.legends
    assert leg.get_window_extent(r).x0 > main_axes(fig).get_window_extent(r).x1


def test_uncapped_figure_is_byte_identical(tmp_path: Path) -> None:
    """A cap at or above the number of comparisons changes nothing (the ketamine figure)."""
    for name, kw in (("none", {}), ("cap", {"max_studies": 200})):
        save_figure(full_figure(**kw), tmp_path / f"{name}.png")
        save_figure(full_figure(**kw), tmp_path / f"{name}.pdf")
    for ext in ("png", "pdf"):
        assert (tmp_path / f"none.{ext}").read_bytes() == (tmp_path / f"cap.{ext}").read_bytes()


def test_heaviest_is_the_one_rule_of_both_caps() -> None:
    """Largest weights first, NaN smallest, ties to the earlier position; both caps use it."""
    from timecourse_meta.plots import forest_rows, timecourse_cap
    from timecourse_meta.plots.study_cap import heaviest

    assert heaviest([1.0, np.nan, 3.0, 3.0, 2.0], 3).tolist() == [False, False, True, True, True]
    assert heaviest([np.nan, 1.0, 1.0], 2).tolist() == [False, True, True]
    assert heaviest([2.0, 2.0, 2.0], 2).tolist() == [True, True, False]
    assert heaviest([1.0], 5).tolist() == [True]
    assert forest_rows.heaviest is timecourse_cap.heaviest is heaviest
