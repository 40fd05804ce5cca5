"""Rules that decide which rows are used (issue 12): scale_priority, exclude_rows, baseline and
second-period rows, first_period_only, the duplicate check after the filters, and sensitivity
subsets on a column only the sheet has (`rob`).

Each test runs the package functions the workflow's rules call (tests/pipeline_helpers.py)
on a small sheet written here; expected values are hand-checked or computed independently with
`effect_sizes.smd` from the rows' own numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pipeline_helpers import arm_pair, run_pipeline, write_sheet

from timecourse_meta.effects.effect_sizes import smd
from timecourse_meta.errors import ConfigError, SheetError
from timecourse_meta.pipeline.ingest import read_sheets
from timecourse_meta.pipeline.sensitivity import subset_effects
from timecourse_meta.pipeline.windows import (
    KETAMINE_WINDOWS,
    check_effect_columns,
    parse_windows,
    select_all_times,
    select_windows,
)
from timecourse_meta.schema import (
    R_BASELINE,
    R_DUP,
    R_SECOND_PERIOD,
)


def _reasons(run) -> dict[int, str]:
    return dict(zip(run.exclusions["source_row"], run.exclusions["reason"], strict=True))


def _accounted(run) -> None:
    total = run.accounting.iloc[-1]
    assert total["rows_in"] == len(run.rows) == total["rows_used"] + total["rows_excluded"]


# ---- 1. scale_priority ---------------------------------------------------------------------
def _two_scales(tmp_path: Path) -> Path:
    """Study A reports MADRS and HDRS at 24 h (lines 2-3 MADRS, 4-5 HDRS); study B MADRS only."""
    madrs = arm_pair(study_id="A")
    hdrs = arm_pair(
        {"mean": "12", "sd": "4"}, {"mean": "17", "sd": "5"}, study_id="A", scale="HDRS"
    )
    other = arm_pair({"mean": "22", "sd": "6"}, {"mean": "28", "sd": "7"}, study_id="B")
    return write_sheet(tmp_path / "two_scales.csv", [*madrs, *hdrs, *other])


def test_two_scales_without_priority_warns_and_excludes_as_duplicates(tmp_path: Path) -> None:
    run = run_pipeline([_two_scales(tmp_path)])
    _accounted(run)
    assert sorted(run.effects["study_id"]) == ["B"]
    assert {line: _reasons(run)[line] for line in (2, 3, 4, 5)} == dict.fromkeys(
        (2, 3, 4, 5), R_DUP
    )
    assert len(run.warnings) == 1
    assert run.warnings[0].startswith("WARNING: 1 study x outcome x time(s) report several")
    assert "config scale_priority is not set" in run.warnings[0]
    assert "A score 24h (HDRS, MADRS)" in run.warnings[0]


@pytest.mark.parametrize(
    ("priority", "used", "dropped", "means"),
    [
        (["MADRS", "HDRS", "BDI"], "MADRS", (4, 5), (20.1, 5.2, 30.2, 6.1)),
        (["hdrs"], "HDRS", (2, 3), (12, 4, 17, 5)),  # case-insensitive; MADRS unlisted
    ],
)
def test_scale_priority_chooses_first_listed(
    tmp_path: Path, priority: list[str], used: str, dropped: tuple[int, int], means: tuple
) -> None:
    run = run_pipeline([_two_scales(tmp_path)], scale_priority=priority)
    _accounted(run)
    assert run.warnings == ()
    a = run.effects[run.effects["study_id"] == "A"]
    assert len(a) == 1 and a["scale"].iloc[0] == used
    g, v = smd(means[0], means[1], 10, means[2], means[3], 10)
    np.testing.assert_allclose(a["yi"].iloc[0], -g[()], rtol=1e-12)  # lower is better
    np.testing.assert_allclose(a["vi"].iloc[0], v[()], rtol=1e-12)
    other = "HDRS" if used == "MADRS" else "MADRS"
    listed = ", ".join(priority)
    for line in dropped:
        assert _reasons(run)[line] == (
            f"scale not preferred (scale_priority: {listed}; {used} used, not {other})"
        )
    stage = run.exclusions.set_index("source_row").loc[list(dropped), "stage"]
    assert set(stage) == {"windows"}


def test_scale_priority_listing_neither_scale_still_warns(tmp_path: Path) -> None:
    run = run_pipeline([_two_scales(tmp_path)], scale_priority=["BDI"])
    assert sorted(run.effects["study_id"]) == ["B"]
    assert "scale_priority (BDI) does not rank them" in run.warnings[0]


def test_scale_priority_in_all_times_path(tmp_path: Path) -> None:
    rows = read_sheets([_two_scales(tmp_path)])
    kept, excluded = select_all_times(
        rows, parse_windows(KETAMINE_WINDOWS), scale_priority=["MADRS"]
    )
    assert sorted(kept.loc[kept["study_id"] == "A", "scale"]) == ["MADRS", "MADRS"]
    assert excluded["source_row"].tolist() == [4, 5]
    assert excluded["reason"].str.startswith("scale not preferred (scale_priority: MADRS;").all()


# ---- 2. sensitivity subsets on a sheet-only column ------------------------------------------
def _with_rob(tmp_path: Path) -> Path:
    rows = [
        *arm_pair(study_id="Low", rob="low"),
        *arm_pair({"mean": "22"}, study_id="High", rob="high"),
        *arm_pair({"mean": "24"}, {"rob": "high"}, study_id="Mixed", rob="low"),
    ]
    return write_sheet(tmp_path / "rob.csv", rows)


def test_subsets_on_an_extra_sheet_column(tmp_path: Path) -> None:
    sheet = _with_rob(tmp_path)
    rows = read_sheets([sheet])
    windowed = select_windows(rows, parse_windows(KETAMINE_WINDOWS)).rows
    effects = run_pipeline([sheet]).effects
    assert "rob" not in effects.columns
    subsets = [
        {"name": "low_rob", "keep": {"rob": ["low"]}},
        {"name": "x", "exclude": {"rob": "high"}},
    ]
    check_effect_columns(rows, {}, subsets)  # accepted now: any sheet column
    kept = subset_effects(effects, keep={"rob": ["low"]}, rows=windowed)
    assert kept["study_id"].tolist() == ["Low"]  # Mixed: its control row is high
    dropped = subset_effects(effects, exclude={"rob": ["high"]}, rows=windowed)
    assert dropped["study_id"].tolist() == ["Low"]
    kept_any = subset_effects(effects, keep={"rob": ["low", "high"]}, rows=windowed)
    assert sorted(kept_any["study_id"]) == ["High", "Low", "Mixed"]
    # an effects column still works without rows, and a column in neither is one clear error
    assert len(subset_effects(effects, exclude={"study_id": ["High"]})) == 2
    with pytest.raises(ConfigError, match="unknown column 'rob'"):
        subset_effects(effects, keep={"rob": ["low"]})


def test_subset_column_checked_early_with_hint(tmp_path: Path) -> None:
    rows = read_sheets([_with_rob(tmp_path)])
    with pytest.raises(ConfigError) as info:
        check_effect_columns(rows, {}, [{"name": "x", "exclude": {"rb": ["high"]}}])
    assert str(info.value) == (
        "config 'sensitivity.subsets.0.exclude.rb': unknown column 'rb' (not in the sheets); "
        "did you mean 'rob'?"
    )


# ---- 3. exclude_rows -------------------------------------------------------------------------
def _three_arms(tmp_path: Path) -> Path:
    rows = arm_pair(study_id="Dose", arm="ketamine_0.5mg", n=12)  # lines 2 (0.5 mg), 3 (saline)
    low = {**rows[0], "arm": "ketamine_0.2mg", "mean": "26", "dose": "0.2 mg/kg"}  # line 4
    return write_sheet(tmp_path / "arms.csv", [*rows, low])


def test_exclude_rows_drops_one_arm_before_effect_sizes(tmp_path: Path) -> None:
    sheet = _three_arms(tmp_path)
    both = run_pipeline([sheet])
    assert sorted(both.effects["comparison_id"]) == [
        "Dose / ketamine_0.2mg",
        "Dose / ketamine_0.5mg",
    ]
    assert set(both.effects["n_control"]) == {6.0}  # the shared control split 2 ways
    rule = [{"where": {"study_id": "Dose", "arm": "ketamine_0.2mg"}, "reason": "dose below range"}]
    run = run_pipeline([sheet], exclude_rows=rule)
    _accounted(run)
    assert run.effects["comparison_id"].tolist() == ["Dose"]
    assert run.effects["n_control"].tolist() == [12.0]  # no longer shared
    ex = run.exclusions.set_index("source_row")
    assert ex.loc[4, "reason"] == "excluded by config exclude_rows: dose below range"
    assert ex.loc[4, "stage"] == "eligibility"


def test_exclude_rows_values_lists_numbers_and_errors(tmp_path: Path) -> None:
    rows = read_sheets([_three_arms(tmp_path)])
    windows = parse_windows(KETAMINE_WINDOWS)
    by_list = [{"where": {"arm": ["ketamine_0.2mg", "KETAMINE_0.5MG"]}, "reason": "r"}]
    assert select_windows(rows, windows, exclude_rows=by_list).rows["arm"].tolist() == ["saline"]
    by_number = [{"where": {"time_hours": 24, "mean": [26]}, "reason": "r"}]
    assert select_windows(rows, windows, exclude_rows=by_number).excluded[
        "source_row"
    ].tolist() == [4]
    with pytest.raises(ConfigError, match="config 'exclude_rows.0': unknown column 'colour'"):
        select_windows(rows, windows, exclude_rows=[{"where": {"colour": "red"}, "reason": "r"}])
    with pytest.raises(ConfigError, match="holds numbers"):
        select_windows(rows, windows, exclude_rows=[{"where": {"n": "many"}, "reason": "r"}])
    with pytest.raises(ConfigError) as info:
        check_effect_columns(rows, {}, [], [{"where": {"armm": "x"}, "reason": "r"}])
    assert str(info.value).startswith(
        "config 'exclude_rows.0.where.armm': unknown column 'armm' (not in the sheets); "
        "did you mean 'arm'?"
    )


# ---- 4. baseline, second period, first period only, duplicates after the filters ------------
def test_baseline_and_second_period_rows_are_excluded_not_duplicates(tmp_path: Path) -> None:
    main = arm_pair()  # lines 2-3, 24 h
    # lines 4-5: two different baseline values for the ketamine arm at time 0 (same key)
    base = [
        {**main[0], "time_hours": "0", "mean": "31"},
        {**main[0], "time_hours": "0", "mean": "33"},
    ]
    # line 6: one hour before the dose; line 7: a second-period row with other numbers
    before = {**main[1], "time_hours": "-1", "mean": "30"}
    second = {**main[0], "period": "second", "mean": "25", "design": "parallel"}
    run = run_pipeline([write_sheet(tmp_path / "b.csv", [*main, *base, before, second])])
    _accounted(run)
    assert len(run.effects) == 1
    assert _reasons(run) == {4: R_BASELINE, 5: R_BASELINE, 6: R_BASELINE, 7: R_SECOND_PERIOD}
    assert R_BASELINE == "baseline (time <= 0)"


def test_duplicates_in_remaining_rows_still_stop_the_run(tmp_path: Path) -> None:
    main = arm_pair()
    twice = {**main[0], "mean": "19"}  # line 4: same key as line 2, other mean
    sheet = write_sheet(tmp_path / "d.csv", [*main, twice])
    with pytest.raises(SheetError, match="line 4: duplicate: same study_id 'Trial2006'"):
        run_pipeline([sheet])
    # excluded by config: not a contradiction the analysis meets
    rule = [{"where": {"mean": 19}, "reason": "typing error in the source"}]
    run = run_pipeline([sheet], exclude_rows=rule)
    assert len(run.effects) == 1
    assert _reasons(run) == {4: "excluded by config exclude_rows: typing error in the source"}


def test_first_period_only(tmp_path: Path) -> None:
    paired = arm_pair(design="crossover", period="all", n=20)  # lines 2-3
    first = arm_pair(
        {"mean": "21", "sd": "5"}, {"mean": "27", "sd": "6"}, design="crossover", period="first"
    )  # lines 4-5
    sheet = write_sheet(tmp_path / "x.csv", [*paired, *first])
    default = run_pipeline([sheet])
    assert default.effects.empty  # both periods at one time for one arm: cannot choose
    assert set(_reasons(default).values()) == {R_DUP}
    run = run_pipeline([sheet], first_period_only=True)
    _accounted(run)
    assert _reasons(run) == dict.fromkeys(
        (2, 3), "crossover period 'all' not used (config first_period_only: true)"
    )
    e = run.effects.iloc[0]
    assert "crossover_first_period_as_parallel" in e["flags"]
    g, v = smd(21, 5, 10, 27, 6, 10)
    np.testing.assert_allclose([e["yi"], e["vi"]], [-g[()], v[()]], rtol=1e-12)
