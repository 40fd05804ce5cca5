"""The one selector of a window's rows (schema.rows_for / overall_row), used after pooling."""

from __future__ import annotations

import pandas as pd

from timecourse_meta.schema import ALL_STUDIES, overall_row, rows_for

POOLED = pd.DataFrame(
    {
        "outcome": ["score", "score", "score", "response", "score"],
        "measure": ["SMD", "SMD", "SMD", "OR", "MD"],
        "timepoint": ["24h", "24h", "3d", "24h", "24h"],
        "subgroup": ["all", "trd=yes", "all", "all", "all"],
        "estimate": [0.8, 0.9, 0.4, 2.0, 5.0],
    }
)


def test_rows_for_filters_every_given_key_and_keeps_table_order() -> None:
    assert rows_for(POOLED, "score", "SMD")["estimate"].tolist() == [0.8, 0.9, 0.4]
    assert rows_for(POOLED, "score", "SMD", "24h")["estimate"].tolist() == [0.8, 0.9]
    assert rows_for(POOLED, "score", "SMD", "24h", ALL_STUDIES)["estimate"].tolist() == [0.8]
    assert rows_for(POOLED, "score", "SMD", subgroup=ALL_STUDIES).index.tolist() == [0, 2]


def test_overall_row_is_the_all_studies_row_or_none() -> None:
    row = overall_row(POOLED, "score", "MD", "24h")
    assert row is not None and row["estimate"] == 5.0
    assert overall_row(POOLED, "score", "SMD", "7d") is None
    assert overall_row(POOLED, "remission", "OR", "24h") is None
