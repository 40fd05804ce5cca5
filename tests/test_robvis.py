"""Risk-of-bias figures draw exactly the table they are given."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.colors import to_hex
from matplotlib.patches import Circle

from timecourse_meta.plots.robvis import JUDGEMENT_STYLE, summary_plot, traffic_light_plot

DOMAINS = ["d_one", "d_two"]


def test_traffic_light_one_circle_per_judged_cell() -> None:
    table = pd.DataFrame(
        {
            "study_id": ["A", "B"],
            "d_one": ["low", "high"],
            "d_two": ["not_assessed", ""],
            "overall": ["not_assessed", "high"],
        }
    )
    fig = traffic_light_plot(table, DOMAINS)
    circles = [p for p in fig.axes[0].patches if isinstance(p, Circle)]
    assert len(circles) == 5  # B's empty d_two cell is left blank
    colours = sorted(to_hex(c.get_facecolor()) for c in circles)
    expected = sorted(
        JUDGEMENT_STYLE[j][0].lower()
        for j in ["low", "high", "not_assessed", "not_assessed", "high"]
    )
    assert colours == expected
    symbols = [t.get_text() for t in fig.axes[0].texts]
    assert symbols.count("+") == 1 and symbols.count("\u2212") == 2


def test_summary_bars_are_the_weight_shares() -> None:
    summary = pd.DataFrame(
        {
            "domain": ["d_one", "d_one", "d_two", "overall"],
            "judgement": ["low", "high", "not_assessed", "high"],
            "weight": [0.25, 0.75, 1.0, 1.0],
            "studies": ["A", "B", "A;B", "A;B"],
        }
    )
    fig = summary_plot(summary, DOMAINS, title="t", xlabel="x")
    widths = [p.get_width() for p in fig.axes[0].patches]
    assert np.allclose(widths, [25.0, 75.0, 100.0, 100.0])
