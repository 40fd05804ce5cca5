"""Time-window assignment, the choice of one reported time per window, eligibility filters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from timecourse_meta.errors import ConfigError, SheetError
from timecourse_meta.pipeline.windows import (
    EXCLUSION_COLUMNS,
    KETAMINE_WINDOWS,
    apply_filters,
    assign_windows,
    parse_windows,
)


def rows(
    times: list[float],
    *,
    study: str = "S1",
    outcome: str = "score",
    arms: tuple[str, ...] = ("ket", "pbo"),
) -> pd.DataFrame:
    """Arm rows at each time (both arms), with file/line ids as ingest makes them."""
    recs = []
    for t in times:
        for arm in arms:
            recs.append(
                {
                    "study_id": study,
                    "arm": arm,
                    "outcome": outcome,
                    "time_hours": t,
                    "timepoint": "",
                }
            )
    frame = pd.DataFrame(recs)
    frame["source_file"] = "sheet.csv"
    frame["source_row"] = np.arange(2, len(frame) + 2)
    return frame


WINDOWS = parse_windows(KETAMINE_WINDOWS)


def test_ketamine_windows_are_those_of_the_ketamine_config() -> None:
    """The library's ketamine windows are config/ketamine.yaml's, not a second copy that drifts."""
    from pathlib import Path

    from timecourse_meta.pipeline.config import load_yaml

    config = load_yaml(Path(__file__).resolve().parents[1] / "config" / "ketamine.yaml")
    assert [dict(w) for w in config["windows"]] == [dict(w) for w in KETAMINE_WINDOWS]


def test_no_windows_is_an_error_not_the_ketamine_windows() -> None:
    with pytest.raises(ConfigError, match="no time windows given"):
        parse_windows(None)  # type: ignore[arg-type]


def test_ketamine_windows() -> None:
    assert WINDOWS["label"].tolist() == ["4h", "24h", "3d", "7d", "14d"]
    assert WINDOWS[["low", "high", "nominal"]].to_numpy().tolist() == [
        [2, 6, 4],
        [18, 30, 24],
        [60, 84, 72],
        [144, 192, 168],
        [312, 360, 336],
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ([{"label": "a", "low": 1, "high": 5}, {"label": "b", "low": 5, "high": 9}], "overlap"),
        ([{"label": "a", "low": 6, "high": 2}], "low <= nominal <= high"),
        ([{"label": "a", "low": 1, "high": 2}, {"label": "a", "low": 3, "high": 4}], "twice"),
        ([{"label": "a", "low": 1, "high": 2, "nominal": 3}], "low <= nominal <= high"),
        ([], "at least one"),
    ],
)
def test_bad_windows_raise_config_error(spec: list, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_windows(spec)


def test_check_windows_gives_the_frame_columns_as_lists() -> None:
    """check_windows (used at Snakemake's parse, no pandas) and parse_windows agree."""
    from timecourse_meta.pipeline.window_specs import check_windows

    columns = check_windows(KETAMINE_WINDOWS)
    assert all(isinstance(v, list) for v in columns.values())
    assert columns == parse_windows(KETAMINE_WINDOWS).to_dict("list")
    bounds = [("c", 20, 30), ("a", 1, 9), ("b", 9, 12), ("a", 40, 50)]
    spec = [{"label": lb, "low": lo, "high": hi} for lb, lo, hi in bounds]
    with pytest.raises(ConfigError, match="window label 'a' is used twice"):
        check_windows(spec)
    with pytest.raises(ConfigError, match="windows 'a' and 'b' overlap"):  # sorted by low
        check_windows(spec[:3])


def test_nominal_defaults_to_midpoint() -> None:
    assert parse_windows([{"label": "x", "low": 10, "high": 20}])["nominal"].iloc[0] == 15


def test_closest_to_nominal_keeps_one_time() -> None:
    # 20 h and 26 h are both in 24h (18-30); |20-24| = 4 > |26-24| = 2 -> 26 h is used
    res = assign_windows(rows([20, 26]), WINDOWS)
    assert res.rows["time_hours"].tolist() == [26, 26]
    assert res.rows["timepoint"].tolist() == ["24h", "24h"]
    assert res.excluded["source_row"].tolist() == [2, 3]
    assert res.excluded["reason"].iloc[0] == (
        "window 24h: study reports 20, 26 h; 26 h used (closest_to_nominal), not 20 h"
    )
    choice = res.choices.iloc[0]
    assert (choice["times_reported_h"], choice["n_times"], choice["chosen_time_h"]) == (
        "20, 26",
        2,
        26,
    )
    assert res.rows["time_choice"].iloc[0] == "26 h chosen of 20, 26 h by closest_to_nominal"


def test_tie_goes_to_earlier_time() -> None:
    # 22 h and 26 h are both 2 h from 24 h: the earlier one wins
    res = assign_windows(rows([26, 22]), WINDOWS)
    assert set(res.rows["time_hours"]) == {22}


@pytest.mark.parametrize(("rule", "kept"), [("earliest", 19), ("latest", 29)])
def test_other_rules(rule: str, kept: float) -> None:
    res = assign_windows(rows([19, 24, 29]), WINDOWS, rule)
    assert set(res.rows["time_hours"]) == {kept}
    assert len(res.rows) + len(res.excluded) == 6


def test_bounds_inclusive_and_outside_rows_excluded() -> None:
    res = assign_windows(rows([18, 48, 17.9], arms=("ket",)), WINDOWS, "earliest")
    assert res.rows["time_hours"].tolist() == [18]
    reasons = res.excluded["reason"].tolist()
    assert reasons == [
        "time 48 h is in no configured window",
        "time 17.9 h is in no configured window",
    ]
    assert list(res.excluded.columns) == list(EXCLUSION_COLUMNS)


def test_rows_in_equal_rows_kept_plus_excluded() -> None:
    frame = pd.concat(
        [
            rows([2, 4, 24, 48, 72, 336], study="A"),
            rows([5, 20, 168, 170], study="B", outcome="response"),
        ],
        ignore_index=True,
    )
    frame["source_row"] = np.arange(2, len(frame) + 2)
    res = assign_windows(frame, WINDOWS)
    ids = set(res.rows["source_row"]) | set(res.excluded["source_row"])
    assert len(res.rows) + len(res.excluded) == len(frame)
    assert ids == set(frame["source_row"])
    # A: 2 h and 4 h in 4h -> 4 h (nominal); B: 168 and 170 in 7d -> 168
    a4 = res.rows[(res.rows["study_id"] == "A") & (res.rows["timepoint"] == "4h")]
    b7 = res.rows[(res.rows["study_id"] == "B") & (res.rows["timepoint"] == "7d")]
    assert set(a4["time_hours"]) == {4} and set(b7["time_hours"]) == {168}


def test_window_label_rows_of_precomputed_sheets() -> None:
    frame = rows([np.nan, np.nan], arms=("contrast",))
    frame["timepoint"] = ["24h", "9d"]
    res = assign_windows(frame, WINDOWS)
    assert res.rows["timepoint"].tolist() == ["24h"]
    assert res.excluded["reason"].tolist() == ["label '9d' is not a configured window"]


def test_timepoint_disagreeing_with_time_hours_is_a_sheet_error() -> None:
    frame = rows([72], arms=("ket",))
    frame["timepoint"] = ["24h"]
    with pytest.raises(SheetError, match="sheet.csv, line 2, column 'timepoint'"):
        assign_windows(frame, WINDOWS)


def test_unknown_rule() -> None:
    with pytest.raises(ConfigError, match="unknown rule"):
        assign_windows(rows([24]), WINDOWS, "median")


def test_filters_exclude_with_reasons() -> None:
    frame = rows([24, 24], arms=("ket",))
    frame["study_id"] = ["A", "B"]
    frame["control"] = ["saline", "other"]
    kept, excluded = apply_filters(frame, {"control": ["saline", "midazolam"]})
    assert kept["study_id"].tolist() == ["A"]
    assert excluded["reason"].tolist() == [
        "control 'other' not in config include.control (midazolam, saline)"
    ]
    kept, excluded = apply_filters(frame, None, [{"study_id": "A", "reason": "atypical"}])
    assert kept["study_id"].tolist() == ["B"]
    assert excluded["reason"].tolist() == ["study excluded by config: atypical"]
    with pytest.raises(ConfigError, match="unknown column"):
        apply_filters(frame, {"colour": ["red"]})


def test_a_long_timepoint_that_disagrees_is_quoted_as_an_excerpt() -> None:
    """Found by the hostile-sheet property test: the error line quoted a 3 000-character cell."""
    from timecourse_meta.pipeline.windows import select_windows

    frame = rows([4.0])
    frame["timepoint"] = "x" * 3000
    frame["scale"] = "MADRS"
    with pytest.raises(SheetError) as err:
        select_windows(frame, WINDOWS)
    message = str(err.value)
    assert "disagrees with time_hours 4" in message and "(3000 characters)" in message
    assert len(message) < 400
