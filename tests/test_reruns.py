"""Reruns lose nothing and change nothing: interrupted runs, clean copies, incremental reruns.

The baseline is the session's one full run of the shipped ketamine analysis (`ketamine_run`,
tests/conftest.py). It is compared with (1) runs interrupted by SIGTERM or SIGKILL to the whole
process group while a rule is writing its outputs, then rerun in place; (2) a full run in a
second clean copy at another path: the suite's one check that the same input gives the same
bytes, every file of results/ and data/processed/ (it replaces a --forceall rerun in the same
directory, which checked that property again at the cost of another full run); (3) dry runs,
in a copy of the baseline, after one trial is added to the sheet (only rules downstream of the
sheet may rerun; the software-version rule never) or after the published results change (only
their rules rerun). The HTML report's escaping is checked on the tiny `.test` configuration
(.test/config, three shipped trials) plus one synthetic trial whose name is HTML (`<script>...`)
with Unicode in its citation: escaping depends on the names, not on how many trials there are.
The same run is the check that the catalog's `snakemake --directory .test` works end to end.
"""

from __future__ import annotations

import base64
import csv
import filecmp
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pipeline_helpers import KETAMINE_CONFIG, copy_project, copy_run, snakemake

ROOT = Path(__file__).resolve().parents[1]
SHEET = "data/raw/ketamine_trials.csv"
HOSTILE = "<script>alert(1)</script>"
PARTIAL_TARGETS = ["results/tables/pooled_by_timepoint.csv", "results/tables/exclusions.csv"]

pytestmark = [  # every test here runs the whole workflow
    pytest.mark.slow,
    pytest.mark.skipif(not (ROOT / SHEET).exists(), reason=f"{SHEET} not present yet"),
]


def trial_rows(study_id: str, citation: str) -> list[dict[str, str]]:
    """Two arms of a synthetic parallel trial at 24 h (test input, not trial data)."""
    common = {
        "study_id": study_id, "citation": citation, "doi": "10.0000/synthetic.test",
        "source_address": "https://example.org/synthetic", "source_locator": "Table 1",
        "source_quote": "synthetic test input", "source_type": "primary", "value_origin": "table",
        "design": "parallel", "period": "all", "population": "unipolar", "trd": "yes",
        "concomitant_ad": "no", "control": "saline", "drug": "ketamine", "route": "iv",
        "dose": "0.5 mg/kg", "scale": "MADRS", "lower_is_better": "yes", "outcome": "score",
        "time_hours": "24", "time_as_reported": "24 h", "stat_kind": "final",
    }  # fmt: skip
    return [
        {**common, "arm": "ketamine", "arm_role": "treatment", "n": "20", "mean": "18.0",
         "sd": "6.0"},
        {**common, "arm": "saline", "arm_role": "control", "n": "20", "mean": "25.0", "sd": "7.0"},
    ]  # fmt: skip


def append_rows(sheet: Path, rows: list[dict[str, str]]) -> None:
    with open(sheet, encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle))
    with open(sheet, "a", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        for r in rows:
            writer.writerow([r.get(c, "") for c in header])


def make_project(dest: Path) -> Path:
    """A clean copy of the project (shipped data, no outputs, no Snakemake records)."""
    return copy_project(dest)


def output_files(project: Path) -> list[Path]:
    """Every file the workflow wrote (results/ and data/processed/), project-relative."""
    files = [
        p.relative_to(project)
        for d in ("results", "data/processed")
        for p in (project / d).rglob("*")
        if p.is_file()
    ]
    return sorted(f for f in files if f.name != "report.html")


def differing(a: Path, b: Path, files: list[Path]) -> list[str]:
    return [str(f) for f in files if not filecmp.cmp(a / f, b / f, shallow=False)]


@pytest.fixture(scope="module")
def baseline(ketamine_run: Path) -> Path:
    """The shared full run (read only: tests that rerun work in copies of it)."""
    return ketamine_run


def test_clean_copies_give_identical_bytes(
    baseline: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Same input, same bytes: a second clean run, in a copy at another path, writes exactly
    the files of the shared run, byte for byte (figures included; the report is not an output
    of the run)."""
    other = make_project(tmp_path_factory.mktemp("second") / "elsewhere" / "copy")
    proc = snakemake(other)
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = output_files(baseline)
    assert files == output_files(other)
    assert any(f.suffix == ".png" for f in files) and any(f.suffix == ".pdf" for f in files)
    assert not differing(baseline, other, files)


def interrupt(project: Path, sig: signal.Signals) -> int:
    """Start the run, and when effects.parquet appears (effect_sizes is still writing its other
    outputs) send `sig` to the whole process group (Snakemake and its job)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--cores",
            "2",
            *PARTIAL_TARGETS,
            "--configfile",
            KETAMINE_CONFIG,
        ],  # fmt: skip
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    marker = project / "data" / "processed" / "effects.parquet"
    deadline = time.monotonic() + 300
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    os.killpg(proc.pid, sig)
    return proc.wait(timeout=120)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_interrupted_run_then_rerun_gives_identical_bytes(
    baseline: Path, tmp_path_factory: pytest.TempPathFactory, sig: signal.Signals
) -> None:
    project = make_project(tmp_path_factory.mktemp(f"interrupted_{sig.name}") / "project")
    code = interrupt(project, sig)
    assert code != 0
    assert not (project / PARTIAL_TARGETS[0]).exists()
    if sig == signal.SIGKILL:
        # no cleanup was possible: the rerun refuses to trust the half-written outputs ...
        proc = snakemake(project, *PARTIAL_TARGETS)
        assert proc.returncode != 0
        assert "seem to be incomplete" in proc.stderr and "--rerun-incomplete" in proc.stderr
        # ... until told to rebuild them (what the message says to do)
        assert snakemake(project, "--unlock").returncode == 0
        proc = snakemake(project, "--rerun-incomplete", *PARTIAL_TARGETS)
    else:  # Snakemake removed the partial outputs on SIGTERM: a plain rerun continues
        proc = snakemake(project, *PARTIAL_TARGETS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = output_files(project)
    assert {"results/tables/pooled_by_timepoint.csv", "data/processed/effects.parquet"} <= {
        f.as_posix() for f in files
    }
    assert not differing(baseline, project, files)


def jobs_to_run(project: Path, *args: str) -> dict[str, int]:
    """Rule -> job count of a dry run (Snakemake's 'Job stats' table); {} if nothing to do."""
    proc = snakemake(project, "-n", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    if "Nothing to be done" in out:
        return {}
    table = out.split("Job stats:", 1)[1].split("\ntotal", 1)[0].splitlines()[3:]
    return {name: int(count) for name, count in (line.split() for line in table)}


def rule_graph(project: Path) -> str:
    """`snakemake --rulegraph` (DOT text)."""
    return snakemake(project, "--rulegraph").stdout


def downstream(dot: str, *rules: str) -> set[str]:
    """`rules` and every rule that consumes their outputs, in the rule graph `dot`."""
    names = dict(re.findall(r"^\s*(\d+)\[label = \"(\w+)\"", dot, flags=re.M))
    edges = re.findall(r"^\s*(\d+) -> (\d+)", dot, flags=re.M)
    found = {i for i, n in names.items() if n in rules}
    while True:
        more = {b for a, b in edges if a in found} - found
        if not more:
            return {names[i] for i in found}
        found |= more


def test_only_dependents_rerun(baseline: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    project = copy_run(baseline, tmp_path_factory.mktemp("incremental") / "project")
    # copy_run keeps modification times and Snakemake's records
    assert jobs_to_run(project) == {}
    os.utime(project / SHEET)  # newer time, same bytes: Snakemake compares checksums
    assert jobs_to_run(project) == {}

    append_rows(project / SHEET, trial_rows("Synthetic2099", "Synthetic trial added by a test"))
    rerun = jobs_to_run(project)
    graph = rule_graph(project)  # the same for both changes below
    expected = downstream(graph, "ingest_sheets")
    assert set(rerun) == expected
    assert "software_versions" not in rerun and "ingest_sheets" in rerun

    # undo, then change only the published results: nothing upstream of them reruns
    shutil.copy2(baseline / SHEET, project / SHEET)
    assert jobs_to_run(project) == {}
    published = project / "data" / "raw" / "published_pooled.csv"
    published.write_bytes(published.read_bytes() + b"\n")
    rerun = jobs_to_run(project)
    assert set(rerun) == downstream(graph, "published_comparison")
    assert not {"ingest_sheets", "effect_sizes", "pool_timepoints"} & set(rerun)


@pytest.fixture(scope="module")
def hostile_test_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `.test` configuration run end to end (`snakemake --directory .test`, the catalog's CI
    convention) with the synthetic hostile-name trial appended to its sheet, then its HTML
    report; returns `.test/`."""
    project = tmp_path_factory.mktemp("hostile") / "project"
    for name in ("config", "workflow", ".test"):
        shutil.copytree(ROOT / name, project / name)
    sheet = project / ".test" / "data" / "raw" / "ketamine_subset.csv"
    with open(sheet, "rb") as handle:
        assert handle.read().endswith(b"\n")
    append_rows(sheet, trial_rows(HOSTILE, "M\u00fcller \u2013 \u65e5\u672c & <b>co</b>"))
    proc = snakemake(project, "--directory", ".test", ketamine=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = snakemake(
        project, "--directory", ".test", "--report", "results/report.html", ketamine=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return project / ".test"


def test_dot_test_config_runs_end_to_end(hostile_test_run: Path) -> None:
    """`snakemake --directory .test` (the catalog's CI convention) runs the tiny config: its
    shipped trials are pooled at 24 h and its claims are checked (the appended synthetic trial
    adds rows, it removes none)."""
    shipped = ROOT / ".test" / "data" / "raw" / "ketamine_subset.csv"
    rows = (hostile_test_run / "data" / "raw" / "ketamine_subset.csv").read_bytes()
    assert rows.startswith(shipped.read_bytes())
    pooled = (hostile_test_run / "results/tables/pooled_by_timepoint.csv").read_text()
    assert "score,SMD,24h," in pooled
    claims = (hostile_test_run / "results/tables/claims.csv").read_text()
    assert claims.splitlines()[0].startswith("id,claim,")
    assert "consistent_24h" in claims and "duration_7d" in claims


def test_html_in_names_is_escaped_in_the_report(hostile_test_run: Path) -> None:
    baseline = hostile_test_run
    html = (baseline / "results" / "report.html").read_text(encoding="utf-8")
    assert HOSTILE not in html and "<b>co</b>" not in html
    # the name is in the report, inside the embedded (base64) table, shown as text
    found = re.search(
        r"data:text/csv;charset=[^;]*;filename=pooled_by_timepoint\.csv;base64,([A-Za-z0-9+/=]+)",
        html,
    )
    assert found
    embedded = base64.b64decode(found.group(1))
    # the report carries the pooled table as written, warnings column included
    assert embedded == (baseline / "results" / "tables" / "pooled_by_timepoint.csv").read_bytes()
    assert HOSTILE in embedded.decode("utf-8")
    assert embedded.decode("utf-8").splitlines()[0].endswith(",warnings")
    # Markdown tables written by the workflow never carry the raw tag
    for md in (baseline / "results" / "tables").glob("*.md"):
        assert "<script" not in md.read_text(encoding="utf-8"), md.name
