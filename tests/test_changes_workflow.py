"""Living review end to end: real edits of the shipped data, compared with a real baseline.

The runs start from the session's one full run of the shipped ketamine analysis
(`ketamine_run`, tests/conftest.py), copied with Snakemake's records, so only what each step
changes is rebuilt: (1) in a side copy, the shipped sheet without Berman2000 (its two rows held
back) -> `snakemake baseline` (snapshot inputs only), kept as snapshot `snap_without/`; (2) in
the main copy, `snakemake baseline` of the full data (snapshot `snap_full/`); (3) the full data
compared with `snap_without`: the study and its two rows are added, the 3 d window gains a
study and claim verdicts are compared; with `fail_on=any_change` the run fails with one line
while changes.md is still written (the default target, so the gate waits for every output);
(4) a rerun against `snap_full`: no change, empty diff, byte-identical on a forced rerun of
the comparison; (5) the estimator changed in the config (method=DL); (6) one number edited
(Dwyer2021 ketamine arm mean); (7) Berman2000 removed: the full-data snapshot compared with the
held-back one (both written by the workflow). Steps (5) and (6) ask for the living-review
outputs only (CHANGES_TARGETS), so Snakemake rebuilds what they and the snapshot depend on and
skips figures the comparison never reads. Expected values are read from the runs' own tables
and the sheet, never typed in.
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from pipeline_helpers import copy_run, snakemake

from timecourse_meta.pipeline.baseline import resolve_baseline
from timecourse_meta.pipeline.changes import diff_snapshots
from timecourse_meta.pipeline.changes_text import changes_markdown
from timecourse_meta.pipeline.snapshot import read_snapshot

ROOT = Path(__file__).resolve().parents[1]
SHEET = "data/raw/ketamine_trials.csv"
HELD_BACK = "Berman2000"
EDITED_STUDY = "Dwyer2021"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (ROOT / SHEET).exists(), reason=f"{SHEET} not present"),
]


def ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stderr[-3000:]


def read_changes(project: Path) -> pd.DataFrame:
    return pd.read_csv(
        project / "results/tables/changes.csv", dtype=str, keep_default_na=False, na_filter=False
    )


def keep(project: Path, name: str) -> dict[str, object]:
    """Copy the changes outputs of the last run aside (the next run overwrites them)."""
    out = project / "kept" / name
    out.mkdir(parents=True)
    for f in ("results/changes.md", "results/tables/changes.csv", "results/changes.html"):
        shutil.copy2(project / f, out / Path(f).name)
    pooled = pd.read_csv(project / "results/tables/pooled_by_timepoint.csv", dtype=str,
                         keep_default_na=False)  # fmt: skip
    claims = pd.read_csv(project / "results/tables/claims.csv", dtype=str, keep_default_na=False)
    return {"changes": read_changes(project), "dir": out, "pooled": pooled, "claims": claims}


def sheet_text(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


#: The living review's outputs, without the gate (workflow/rules/changes.smk, CHANGES_OUTPUTS):
#: the rule `changes` and what it reads (the snapshot inputs: rows, pooled, claims, ...).
CHANGES_TARGETS = [
    "results/changes.md",
    "results/tables/changes.csv",
    "results/changes.html",
    "results/figures/changes_timecourse.png",
]


@pytest.fixture(scope="module")
def runs(
    ketamine_run: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, object]]:
    root = tmp_path_factory.mktemp("living")
    project = copy_run(ketamine_run, root / "project")
    full_text = (project / SHEET).read_text(encoding="utf-8")
    full = list(csv.reader(io.StringIO(full_text)))
    out: dict[str, dict[str, object]] = {"sheet": {"full": full}}
    # (1) the held-back data, in a side copy: its snapshot becomes `snap_without`
    side = copy_run(ketamine_run, root / "without")
    without = [r for r in full if r[0] != HELD_BACK]
    assert len(without) < len(full)
    (side / SHEET).write_text(sheet_text(without), encoding="utf-8")
    ok(snakemake(side, "baseline", timeout=900))
    shutil.copytree(side / "results/baseline", project / "snap_without")
    out["pooled_without"] = {
        "pooled": pd.read_csv(
            project / "snap_without/pooled_by_timepoint.csv", dtype=str, keep_default_na=False
        ),  # fmt: skip
        "claims": pd.read_csv(
            project / "snap_without/claims.csv", dtype=str, keep_default_na=False
        ),  # fmt: skip
    }
    # (2) baseline of the full data
    ok(snakemake(project, "baseline", timeout=900))
    shutil.copytree(project / "results/baseline", project / "snap_full")
    # (3) the full data against the held-back snapshot: the held-back study is added
    failed = snakemake(
        project, "--config", "baseline=snap_without", "fail_on=any_change", timeout=900
    )
    out["gate"] = {"proc": failed, "md_exists": (project / "results/changes.md").exists()}
    ok(snakemake(project, "--config", "baseline=snap_without", timeout=900))
    out["added"] = keep(project, "added")
    # (4) identical rerun against the full-data snapshot; forced rerun of the comparison
    ok(snakemake(project, "--config", "baseline=snap_full", timeout=900))
    out["identical"] = keep(project, "identical")
    ok(snakemake(project, "--config", "baseline=snap_full", "--forcerun", "changes", timeout=900))
    out["identical_again"] = keep(project, "identical_again")
    # (5) estimator changed in the config
    ok(
        snakemake(
            project, *CHANGES_TARGETS, "--config", "baseline=snap_full", "method=DL", timeout=900
        )
    )
    out["estimator"] = keep(project, "estimator")
    # (6) one number edited: the ketamine arm's mean of the edited study
    edited = [list(r) for r in full]
    header = edited[0]
    line = next(
        i for i, r in enumerate(edited)
        if r[0] == EDITED_STUDY and r[header.index("arm_role")] == "treatment"
    )  # fmt: skip
    old = edited[line][header.index("mean")]
    edited[line][header.index("mean")] = format(float(old) - 1.0, "g")
    (project / SHEET).write_text(sheet_text(edited), encoding="utf-8")
    ok(snakemake(project, *CHANGES_TARGETS, "--config", "baseline=snap_full", timeout=900))
    out["edited"] = keep(project, "edited")
    out["edit"] = {"line": line + 1, "old": old, "new": edited[line][header.index("mean")]}
    out["project"] = {"path": project}
    return out


def section(changes: pd.DataFrame, name: str) -> pd.DataFrame:
    return changes[changes["section"] == name].reset_index(drop=True)


def overall(pooled: pd.DataFrame, window: str) -> pd.Series:
    """The overall score row of a window (results table or snapshot, which has no subgroups)."""
    if "subgroup" in pooled:
        pooled = pooled[pooled["subgroup"] == "all"]
    part = pooled[(pooled["outcome"] == "score") & (pooled["timepoint"] == window)]
    assert len(part) == 1
    return part.iloc[0]


def held_back_lines(full: list[list[str]]) -> list[str]:
    return [f"{SHEET}:{i + 1}" for i, r in enumerate(full) if r[0] == HELD_BACK]


def test_added_study_gives_its_rows_window_and_verdict_change(runs) -> None:
    changes = runs["added"]["changes"]
    assert section(changes, "study")[["change", "item"]].values.tolist() == [["added", HELD_BACK]]
    rows = section(changes, "row")
    assert set(rows["change"]) == {"added"}
    assert rows["item"].tolist() == held_back_lines(runs["sheet"]["full"])
    effects = section(changes, "effect")
    assert (
        effects["change"].tolist() == ["added"] and effects["item"].str.startswith(HELD_BACK).all()
    )
    before = runs["pooled_without"]["pooled"]
    after = runs["added"]["pooled"]
    windows = sorted(set(section(changes, "pooled")["item"].str.split("/").str[2]))
    assert windows == ["3d"]  # Berman2000 reports the 72 h window only
    pooled = section(changes, "pooled").set_index(["item", "field"])
    for field in ("k", "estimate", "ci_low", "ci_high", "tau2"):
        b, a = overall(before, "3d")[field], overall(after, "3d")[field]
        if b != a:
            assert pooled.loc[("score/SMD/3d", field), ["before", "after"]].tolist() == [b, a]
    assert int(overall(after, "3d")["k"]) == int(overall(before, "3d")["k"]) + 1
    # every verdict that differs between the two claims tables is a verdict change, no other
    cb = runs["pooled_without"]["claims"].set_index("id")
    ca = runs["added"]["claims"].set_index("id")
    expected = sorted(
        (cid, col, cb.loc[cid, col], ca.loc[cid, col])
        for cid in ca.index for col in ca.columns
        if col.startswith("verdict") and cb.loc[cid, col] != ca.loc[cid, col]
    )  # fmt: skip
    flips = changes[changes["change"] == "verdict changed"]
    # every verdict that differs (possibly none) is reported, and nothing else
    assert sorted(map(tuple, flips[["item", "field", "before", "after"]].values)) == (expected)
    md = (runs["added"]["dir"] / "changes.md").read_text(encoding="utf-8")
    if expected:  # verdict changes come first, in bold
        assert md.split("\n\n")[1].startswith("**Claim verdicts changed: ")
    else:
        assert "no claim verdict changed" in md and "**Claim verdicts changed" not in md
    assert f"Adding {HELD_BACK} moved the 3 d estimate from " in md
    for cid, _, b, a in expected:
        assert f"claim {cid}" in md and f"from {b} to {a}" in md


def test_fail_on_fails_with_one_line_and_keeps_the_report(runs) -> None:
    proc = runs["gate"]["proc"]
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("changes_gate: ERROR")]
    # adding Berman2000 (72 h only) flips no verdict with the all_of duration claims, so the
    # gate is exercised with any_change here; verdict flips are covered in test_changes.py
    assert len(lines) == 1 and "result field(s) changed since the baseline" in lines[0]
    assert "Traceback" not in proc.stderr
    assert runs["gate"]["md_exists"]


def test_identical_inputs_give_no_change_and_identical_bytes(runs) -> None:
    assert runs["identical"]["changes"].empty
    md = (runs["identical"]["dir"] / "changes.md").read_text(encoding="utf-8")
    assert "No change" in md and "**" not in md
    for name in ("changes.md", "changes.csv", "changes.html"):
        a = (runs["identical"]["dir"] / name).read_bytes()
        assert a == (runs["identical_again"]["dir"] / name).read_bytes(), name


def test_estimator_change_shows_in_config_and_pooled_method(runs) -> None:
    changes = runs["estimator"]["changes"]
    assert section(changes, "config")[["item", "before", "after"]].values.tolist() == [
        ["method", "REML", "DL"]
    ]
    for name in ("study", "row", "effect", "exclusion"):
        assert section(changes, name).empty, name
    method = section(changes, "pooled")
    method = method[method["field"] == "method"]
    after = runs["estimator"]["pooled"]
    pooled_with_k2 = after[(after["subgroup"] == "all") & (after["k"].astype(int) >= 2)]
    assert len(method) == len(pooled_with_k2) > 0
    assert set(method["before"]) == {"REML"} and set(method["after"]) == {"DL"}
    md = (runs["estimator"]["dir"] / "changes.md").read_text(encoding="utf-8")
    assert "Changing the configuration (method: REML → DL)" in md


def test_one_edited_number_is_one_edited_row_field(runs) -> None:
    changes = runs["edited"]["changes"]
    edit = runs["edit"]
    rows = section(changes, "row")
    assert rows[["change", "item", "field", "before", "after"]].values.tolist() == [
        ["edited", f"{SHEET}:{edit['line']}", "mean", edit["old"], edit["new"]]
    ]
    assert section(changes, "study")[["change", "item"]].values.tolist() == [
        ["edited", EDITED_STUDY]
    ]
    effects = section(changes, "effect")
    assert set(effects["item"].str.split("/").str[0]) == {EDITED_STUDY}
    assert "yi" in set(effects["field"])
    assert section(changes, "config").empty


def test_removed_study_is_the_mirror_of_the_added_one(runs) -> None:
    # (7) removal: the full-data snapshot as baseline, the held-back data as this run; both
    # snapshots were written by `snakemake baseline` above, compared as the changes rule does
    project = runs["project"]["path"]
    full = read_snapshot(resolve_baseline("snap_full", "results", project), project)
    without = read_snapshot(resolve_baseline("snap_without", "results", project), project)
    changes = diff_snapshots(full, without)
    assert section(changes, "study")[["change", "item"]].values.tolist() == [["removed", HELD_BACK]]
    rows = section(changes, "row")
    assert set(rows["change"]) == {"removed"}
    assert rows["item"].tolist() == held_back_lines(runs["sheet"]["full"])
    added = runs["added"]["changes"]
    flips_added = added[added["change"] == "verdict changed"][["item", "field", "before", "after"]]
    flips_removed = changes[changes["change"] == "verdict changed"][
        ["item", "field", "after", "before"]
    ]
    assert sorted(map(tuple, flips_added.values)) == sorted(map(tuple, flips_removed.values))
    md = changes_markdown(changes, full, without, baseline="b", outcome="score", measure="SMD")
    assert f"Removing {HELD_BACK} moved the 3 d estimate from " in md
