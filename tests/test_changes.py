"""Living review diff (pipeline.changes, changes_text, snapshot) on small hand-made frames.

Each case builds a baseline and a 'this run' snapshot that differ in one known way and checks
the change table names exactly that difference; the values are the frames' own cells.
"""

from __future__ import annotations

import subprocess

import pandas as pd
import pytest

from timecourse_meta.errors import ConfigError
from timecourse_meta.pipeline.baseline import resolve_baseline
from timecourse_meta.pipeline.changes import CHANGE_COLUMNS, diff_snapshots, verdict_changes
from timecourse_meta.pipeline.changes_text import (
    changes_markdown,
    markdown_to_html,
    plain_summary,
)
from timecourse_meta.pipeline.snapshot import read_snapshot, write_snapshot
from timecourse_meta.pipeline.snapshot_tables import as_text, make_snapshot, row_snapshot

SHEET = "data/raw/s.csv"


def _row(line: int, study: str, arm_role: str, mean: float, time: float = 24.0) -> dict:
    return {
        "source_file": SHEET, "source_row": line, "study_id": study, "arm": f"{arm_role} arm",
        "arm_role": arm_role, "outcome": "score", "time_hours": time, "n": 20.0,
        "mean": mean, "sd": 6.0, "source_quote": f"{study} table 2",
    }  # fmt: skip


def _rows(*records: dict) -> pd.DataFrame:
    return pd.DataFrame(list(records))


BASE_ROWS = [_row(2, "A2020", "treatment", 18.0), _row(3, "A2020", "control", 25.0),
             _row(4, "B2021", "treatment", 10.0), _row(5, "B2021", "control", 14.0)]  # fmt: skip


def _pooled(k: int, est: float, lo: float, hi: float, tau2: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"outcome": "score", "measure": "SMD", "timepoint": "24h", "subgroup": "all",
             "moderator": "all", "level": "all", "k": k, "estimate": est, "ci_low": lo,
             "ci_high": hi, "tau2": tau2, "I2": 0.0, "method": "REML"},
            {"outcome": "score", "measure": "SMD", "timepoint": "24h", "subgroup": "trd=yes",
             "moderator": "trd", "level": "yes", "k": 1, "estimate": 9.0, "ci_low": 8.0,
             "ci_high": 10.0, "tau2": 0.0, "I2": 0.0, "method": "REML"},
        ]
    )  # fmt: skip


def _claims(verdict: str, verdict_mv: str) -> pd.DataFrame:
    return pd.DataFrame(
        [{"id": "consistent_24h", "verdict": verdict, "k": 2, "details": "24h: ...",
          "verdict_multivariate": verdict_mv, "details_mv": "24h mv: ..."}]
    )  # fmt: skip


def _effects(rows: pd.DataFrame) -> pd.DataFrame:
    out = []
    for study, part in rows.groupby("study_id", sort=True):
        if len(part) < 2:  # an unpaired arm gives no effect
            continue
        ids = ";".join(f"{r.source_file}:{r.source_row}" for r in part.itertuples())
        yi = float(part["mean"].iloc[1] - part["mean"].iloc[0]) / 6.0
        out.append({"study_id": study, "comparison_id": study, "outcome": "score",
                    "timepoint": "24h", "measure": "SMD", "yi": yi, "vi": 0.1,
                    "row_ids": ids})  # fmt: skip
    return pd.DataFrame(out)


def _snapshot(rows: pd.DataFrame, *, pooled=None, claims=None, config=None, exclusions=None,
              software="python 3.11.7\npandas 3.1.1\n") -> dict:  # fmt: skip
    if exclusions is None:
        exclusions = pd.DataFrame(
            columns=[
                "source_file",
                "source_row",
                "study_id",
                "outcome",
                "timepoint",
                "reason",
                "stage",
            ]  # fmt: skip
        )
    return make_snapshot(
        rows=rows,
        pooled=pooled if pooled is not None else _pooled(2, 0.5, 0.1, 0.9),
        claims=claims if claims is not None else _claims("supported", "supported"),
        effects=_effects(rows),
        exclusions=exclusions,
        row_accounting=pd.DataFrame([{"source_file": SHEET, "rows_in": len(rows)}]),
        config=config if config is not None else {"method": "REML", "windows": [{"a": 1}]},
        software=software,
    )


def _section(changes: pd.DataFrame, section: str) -> pd.DataFrame:
    return changes[changes["section"] == section].reset_index(drop=True)


def test_identical_snapshots_give_an_empty_table_and_no_change_text() -> None:
    a, b = _snapshot(_rows(*BASE_ROWS)), _snapshot(_rows(*BASE_ROWS))
    changes = diff_snapshots(a, b)
    assert list(changes.columns) == list(CHANGE_COLUMNS)
    assert changes.empty
    text = changes_markdown(changes, a, b, baseline="x", outcome="score", measure="SMD")
    assert "No change" in text and "**" not in text


def test_snapshot_round_trip_through_files_is_exact(tmp_path) -> None:
    snap = _snapshot(_rows(*BASE_ROWS))
    write_snapshot(snap, tmp_path / "results" / "baseline")
    found = resolve_baseline("results/baseline", "results", tmp_path)
    assert found.kind == "dir"
    read = read_snapshot(found, tmp_path)
    assert diff_snapshots(read, snap).empty
    for name, frame in snap.items():
        pd.testing.assert_frame_equal(read[name], frame, check_dtype=False)


def test_added_study_lists_study_rows_effect_and_pooled_change() -> None:
    before = _snapshot(_rows(*BASE_ROWS[:2]), pooled=_pooled(1, 1.1, 0.2, 2.0))
    after = _snapshot(_rows(*BASE_ROWS), pooled=_pooled(2, 0.9, 0.3, 1.5, tau2=0.04))
    changes = diff_snapshots(before, after)
    study = _section(changes, "study")
    assert study[["change", "item"]].values.tolist() == [["added", "B2021"]]
    rows = _section(changes, "row")
    assert rows["change"].tolist() == ["added", "added"]
    assert rows["item"].tolist() == [f"{SHEET}:4", f"{SHEET}:5"]
    assert _section(changes, "effect")[["change", "item"]].values.tolist() == [
        ["added", "B2021/score/24h/SMD"]
    ]
    pooled = _section(changes, "pooled").set_index("field")
    assert pooled.loc["k", ["before", "after", "difference"]].tolist() == ["1", "2", "1"]
    estimate = pooled.loc["estimate", ["before", "after", "difference"]].tolist()
    assert estimate == ["1.1", "0.9", "-0.2"]
    assert pooled.loc["tau2", ["before", "after"]].tolist() == ["0", "0.04"]
    assert set(pooled.index) == {"k", "estimate", "ci_low", "ci_high", "tau2"}  # subgroup ignored
    text = plain_summary(changes, before, after, outcome="score", measure="SMD")
    assert text.startswith(
        "Adding B2021 moved the 24 h estimate from 1.100 [0.200, 2.000] (k = 1) to "
        "0.900 [0.300, 1.500] (k = 2)"
    )
    assert "no claim verdict changed" in text


def test_edited_number_is_one_row_with_its_field_and_hashes() -> None:
    edited = [dict(r) for r in BASE_ROWS]
    edited[2]["mean"] = 11.5
    before, after = _snapshot(_rows(*BASE_ROWS)), _snapshot(_rows(*edited))
    changes = diff_snapshots(before, after)
    rows = _section(changes, "row")
    assert rows[["change", "item", "field", "before", "after", "difference"]].values.tolist() == [
        ["edited", f"{SHEET}:4", "mean", "10", "11.5", "1.5"]
    ]
    old = before["rows"].set_index("row_id").loc[f"{SHEET}:4", "row_hash"]
    new = after["rows"].set_index("row_id").loc[f"{SHEET}:4", "row_hash"]
    assert old != new and f"{old} → {new}" in rows.loc[0, "detail"]
    assert _section(changes, "study")[["change", "item", "detail"]].values.tolist() == [
        ["edited", "B2021", "1 row edited (mean)"]
    ]
    effect = _section(changes, "effect")
    assert set(effect["field"]) == {"yi", "row_hashes"}
    text = plain_summary(changes, before, after, outcome="score", measure="SMD")
    assert text.startswith("Editing 1 row of B2021 (mean) left the score (SMD) window estimates")


def test_row_added_to_an_existing_study_is_said_so() -> None:
    extra = _row(6, "B2021", "treatment", 11.0, time=48.0)
    changes = diff_snapshots(_snapshot(_rows(*BASE_ROWS)), _snapshot(_rows(*BASE_ROWS, extra)))
    assert _section(changes, "study")[["change", "item", "detail"]].values.tolist() == [
        ["edited", "B2021", "1 row added"]
    ]
    text = plain_summary(changes, {}, {}, outcome="score", measure="SMD")
    assert text.startswith("Adding 1 row to B2021 left the score (SMD) window estimates")


def test_inserted_row_shifts_lines_without_reporting_edits() -> None:
    moved = [dict(r) for r in BASE_ROWS]
    for r in moved[2:]:
        r["source_row"] += 1
    new = _row(4, "C2022", "treatment", 12.0)
    rows_after = _rows(*moved[:2], new, *moved[2:])
    changes = diff_snapshots(_snapshot(_rows(*BASE_ROWS)), _snapshot(rows_after))
    rows = _section(changes, "row")
    assert rows[["change", "item"]].values.tolist() == [["added", f"{SHEET}:4"]]
    # the effect of B2021 now cites lines 5 and 6, but its source rows' content is the same
    assert not (_section(changes, "effect")["item"] == "B2021/score/24h/SMD").any()


def test_edit_and_move_together_is_matched_by_identity() -> None:
    after = [dict(r) for r in BASE_ROWS]
    for r in after[2:]:
        r["source_row"] += 1
    after[3]["mean"] = 15.0
    rows_after = _rows(*after[:2], _row(4, "C2022", "treatment", 12.0), *after[2:])
    rows = _section(diff_snapshots(_snapshot(_rows(*BASE_ROWS)), _snapshot(rows_after)), "row")
    edited = rows[rows["change"] == "edited"]
    assert edited[["item", "field", "before", "after"]].values.tolist() == [
        [f"{SHEET}:6", "mean", "14", "15"]
    ]
    assert f"was {SHEET}:5" in edited["detail"].iloc[0]
    assert rows.loc[rows["change"] == "added", "item"].tolist() == [f"{SHEET}:4"]


def test_removed_study_and_verdict_flip_in_every_verdict_column() -> None:
    before = _snapshot(_rows(*BASE_ROWS), claims=_claims("supported", "supported"))
    after = _snapshot(_rows(*BASE_ROWS[:2]), claims=_claims("not testable", "supported"))
    changes = diff_snapshots(before, after)
    assert _section(changes, "study")[["change", "item", "detail"]].values.tolist() == [
        ["removed", "B2021", "2 rows"]
    ]
    flips = verdict_changes(changes)
    assert flips[["item", "field", "before", "after"]].values.tolist() == [
        ["consistent_24h", "verdict", "supported", "not testable"]
    ]
    # a third model's verdict column counts as a verdict too; narrative details are ignored
    three_b = _claims("supported", "supported").assign(verdict_spline="supported", details="x")
    three_a = _claims("supported", "supported").assign(verdict_spline="not supported")
    flips = verdict_changes(
        diff_snapshots(
            _snapshot(_rows(*BASE_ROWS), claims=three_b),
            _snapshot(_rows(*BASE_ROWS), claims=three_a),
        )  # fmt: skip
    )
    assert flips["field"].tolist() == ["verdict_spline"]
    text = changes_markdown(changes, before, after, baseline="b", outcome="score", measure="SMD")
    first = text.split("\n\n")[1]
    assert (
        first == "**Claim verdicts changed: consistent_24h (verdict): supported → not testable.**"
    )
    assert "Removing B2021" in text
    assert "claim consistent_24h changed from supported to not testable" in text


def test_new_column_is_reported_once_not_as_a_flip_in_every_row() -> None:
    before = _snapshot(_rows(*BASE_ROWS))
    after = _snapshot(
        _rows(*BASE_ROWS), claims=_claims("supported", "supported").assign(verdict_x="supported")
    )
    changes = diff_snapshots(before, after)
    assert changes[["section", "change", "item"]].values.tolist() == [
        ["claim", "column added", "verdict_x"]
    ]
    assert verdict_changes(changes).empty


def test_config_and_software_changes_and_new_exclusion_with_reason() -> None:
    exclusions = pd.DataFrame(
        [{"source_file": SHEET, "source_row": 5, "study_id": "B2021", "outcome": "score",
          "timepoint": "", "reason": "time 48 h is in no configured window", "stage": "windows"}]
    )  # fmt: skip
    before = _snapshot(_rows(*BASE_ROWS))
    after = _snapshot(
        _rows(*BASE_ROWS),
        config={"method": "DL", "windows": [{"a": 1}], "baseline": "git:HEAD", "fail_on": "x"},
        software="python 3.11.7\npandas 3.2.0\n",
        exclusions=exclusions,
    )
    changes = diff_snapshots(before, after)
    config = _section(changes, "config")
    assert config[["item", "before", "after"]].values.tolist() == [["method", "REML", "DL"]]
    software = _section(changes, "software")
    assert software[["item", "before", "after"]].values.tolist() == [["pandas", "3.1.1", "3.2.0"]]
    exclusion = _section(changes, "exclusion")
    assert exclusion["change"].tolist() == ["added"]
    assert "reason: time 48 h is in no configured window" in exclusion.loc[0, "detail"]
    text = changes_markdown(changes, before, after, baseline="b", outcome="score", measure="SMD")
    assert "Changing the configuration (method: REML → DL)" in text
    assert "New exclusions (1), with reasons:" in text
    assert "pandas 3.1.1 → 3.2.0" in text


def test_added_and_removed_config_keys_and_packages_show_their_values() -> None:
    before = _snapshot(_rows(*BASE_ROWS), config={"method": "REML", "old_key": 3})
    after = _snapshot(
        _rows(*BASE_ROWS),
        config={"method": "REML", "forest": {"max_studies": 200}},
        software="python 3.11.7\npandas 3.1.1\npyarrow 22.0.0\n",
    )
    changes = diff_snapshots(before, after)
    config = _section(changes, "config")
    assert config[["change", "item", "before", "after"]].values.tolist() == [
        ["added", "forest.max_studies", "", "200"],
        ["removed", "old_key", "3", ""],
    ]
    software = _section(changes, "software")
    assert software[["change", "item", "after"]].values.tolist() == [["added", "pyarrow", "22.0.0"]]
    text = changes_markdown(changes, before, after, baseline="b", outcome="score", measure="SMD")
    assert "forest.max_studies: (absent) → 200" in text


def test_row_hash_ignores_position_and_empty_columns() -> None:
    one = row_snapshot(_rows(BASE_ROWS[0]))
    moved = row_snapshot(_rows({**BASE_ROWS[0], "source_row": 40, "new_col": float("nan")}))
    assert one.loc[0, "row_hash"] == moved.loc[0, "row_hash"]
    edited = row_snapshot(_rows({**BASE_ROWS[0], "sd": 6.5}))
    assert edited.loc[0, "row_hash"] != one.loc[0, "row_hash"]


def test_as_text_is_idempotent_and_keeps_text_cells() -> None:
    frame = pd.DataFrame({"a": [1.0, float("nan")], "b": ['x, "y"', " padded "]})
    once = as_text(frame)
    assert once.values.tolist() == [["1", 'x, "y"'], ["NA", " padded "]]
    pd.testing.assert_frame_equal(as_text(once), once)


def test_markdown_to_html_escapes_markup_and_renders_tables() -> None:
    md = "# T\n\n**bold** <script>x</script>\n\n| a | b |\n|---|---|\n| 1 | <b> |\n\n- item\n"
    page = markdown_to_html(md)
    assert "<h1>T</h1>" in page and "<strong>bold</strong>" in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<td>&lt;b&gt;</td>" in page and "<li>item</li>" in page


def test_resolve_baseline_names_the_key_for_bad_values(tmp_path) -> None:
    assert resolve_baseline(None, "results", tmp_path).kind == "none"
    assert resolve_baseline("none", "results", tmp_path).kind == "none"
    with pytest.raises(ConfigError, match="config 'baseline': baseline directory 'nope'"):
        resolve_baseline("nope", "results", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="not a baseline snapshot"):
        resolve_baseline("empty", "results", tmp_path)
    with pytest.raises(ConfigError, match="not a git revision"):
        resolve_baseline("git:--output=x", "results", tmp_path)
    with pytest.raises(ConfigError, match="must stay inside the project"):
        resolve_baseline("../elsewhere", "results", tmp_path)


def _git(root, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_git_ref_baseline_reads_the_committed_snapshot(tmp_path) -> None:
    try:
        _git(tmp_path, "init", "-q")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git is not available")
    _git(tmp_path, "config", "user.email", "t@example.org")
    _git(tmp_path, "config", "user.name", "t")
    old = _snapshot(_rows(*BASE_ROWS))
    write_snapshot(old, tmp_path / "results" / "baseline")
    _git(tmp_path, "add", "results")
    _git(tmp_path, "commit", "-qm", "baseline")
    first = _git(tmp_path, "rev-parse", "HEAD")
    # the working tree moves on: a new snapshot is written and committed
    write_snapshot(_snapshot(_rows(*BASE_ROWS[:2])), tmp_path / "results" / "baseline")
    _git(tmp_path, "commit", "-qam", "new data")
    found = resolve_baseline(f"git:{first[:10]}", "results", tmp_path)
    assert (found.kind, found.commit) == ("git", first)
    assert diff_snapshots(read_snapshot(found, tmp_path), old).empty
    auto = resolve_baseline(None, "results", tmp_path)  # default: HEAD's committed snapshot
    assert auto.kind == "git" and auto.ref == "HEAD" and auto.digest != found.digest
    with pytest.raises(ConfigError, match="no such commit"):
        resolve_baseline("git:no-such-branch", "results", tmp_path)


def test_before_after_figure_marks_changed_windows_and_saves_identical_bytes(tmp_path) -> None:
    from timecourse_meta.plots.changes_plot import changes_timecourse_plot
    from timecourse_meta.plots.figures import save_figure

    nan = float("nan")
    before = pd.DataFrame(
        {"timepoint": ["4h", "24h", "3d"], "k": [2, 3, 0], "estimate": [0.5, 0.6, nan],
         "ci_low": [0.1, 0.2, nan], "ci_high": [0.9, 1.0, nan]}
    )  # fmt: skip
    after = before.copy()
    after.loc[2, ["k", "estimate", "ci_low", "ci_high"]] = [2, 0.4, -9.0, 9.8]  # wide k = 2 CI
    fig = changes_timecourse_plot(
        before, after, timepoints=["4h", "24h", "3d"], outcome="score", measure="SMD"
    )
    ax = fig.axes[0]
    labels = {t.get_text(): t.get_fontweight() for t in ax.get_xticklabels()}
    assert labels == {"4 h\nk 2": "normal", "24 h\nk 3": "normal", "3 d\nk 0 → 2": "bold"}
    low, high = ax.get_ylim()
    assert -9.0 < low and high < 9.8  # axis capped around the estimates, not at the wide CI
    triangles = [line for line in ax.get_lines() if line.get_marker() in ("^", "v")]
    assert len(triangles) == 2
    a = save_figure(fig, tmp_path / "a.png", formats=("png",))[0].read_bytes()
    b = save_figure(fig, tmp_path / "b.png", formats=("png",))[0].read_bytes()
    assert a == b


def test_config_schema_accepts_the_living_keys_and_names_a_bad_policy() -> None:
    from pathlib import Path

    from timecourse_meta.pipeline.config import load_yaml, validate_config

    root = Path(__file__).resolve().parents[1]
    schema = load_yaml(root / "config" / "schema" / "config.schema.yaml")
    shipped = {
        **load_yaml(root / "config" / "config.yaml"),
        **load_yaml(root / "config" / "ketamine.yaml"),
    }
    validate_config({**shipped, "baseline": "git:origin/main", "fail_on": "verdict_change"}, schema)
    with pytest.raises(ConfigError, match="config 'fail_on'"):
        validate_config({**shipped, "fail_on": "verdict"}, schema)
    with pytest.raises(ConfigError, match="config 'baseline'"):
        validate_config({**shipped, "baseline": 3}, schema)
