"""PRISMA counts: config counts shown as given or "not reported"; workflow counts by hand."""

from __future__ import annotations

import pandas as pd

from timecourse_meta.pipeline.prisma import prisma_boxes
from timecourse_meta.plots.prisma import prisma_plot

ROWS = pd.DataFrame({"study_id": ["A", "A", "B", "C", "D"]})
EXCL = pd.DataFrame(
    {
        "study_id": ["B", "A", "C", "C"],
        "stage": ["eligibility", "windows", "windows", "effects"],
        "reason": [
            "study excluded by config: not randomised",
            "time 48 h is in no configured window",
            "time 120 h is in no configured window",
            "mean difference without arm sizes: cannot standardise",
        ],
    }
)
EFFECTS = pd.DataFrame({"study_id": ["A", "D"], "outcome": ["score", "score"]})


def test_counts_by_hand() -> None:
    """Sheets: 4 studies, 5 rows. B excluded by config (1). Rows not analysed: 3 (two
    'time in no configured window' after grouping, one MD). C has no analysable row (1).
    Analysed: A and D (2). 4 = 1 + 1 + 2."""
    b = prisma_boxes({"records_screened": 120, "source": "test"}, ROWS, EXCL, EFFECTS)
    b = b.set_index("box")
    assert b.loc["records_screened", "n"] == "120" and b.loc["records_screened", "source"] == "test"
    assert b.loc["records_identified", "n"] == "not reported"
    assert b.loc["sheet_studies", "n"] == "4" and b.loc["sheet_studies", "detail"] == "5 rows"
    assert b.loc["excluded_by_config", "n"] == "1"
    assert b.loc["excluded_by_config", "detail"] == "B: not randomised"
    assert b.loc["rows_excluded", "n"] == "3"
    assert "time in no configured window (n = 2)" in b.loc["rows_excluded", "detail"]
    assert b.loc["studies_without_effect", "n"] == "1"
    assert b.loc["studies_analysed", "n"] == "2"


def test_reports_excluded_with_reasons_and_figure() -> None:
    cfg = {
        "reports_excluded": [
            {"reason": "wrong population", "n": 3},
            {"reason": "no placebo", "n": 2},
        ]
    }
    b = prisma_boxes(cfg, ROWS, EXCL, EFFECTS)
    row = b.set_index("box").loc["reports_excluded"]
    assert row["n"] == "5" and row["detail"] == "wrong population (n = 3); no placebo (n = 2)"
    fig = prisma_plot(b)
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert "Reports excluded (n = 5)" in texts and "not reported" in texts
