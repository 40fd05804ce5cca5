"""End-to-end: the Snakemake workflow on the shipped data, in a temporary copy of the project.

Also unit tests of the deterministic table writers the workflow relies on. The full run is the
session's shared `ketamine_run` (tests/conftest.py), made once for all slow tests that read it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pipeline_helpers import KETAMINE_CONFIG, copy_project, copy_run, shipped_config, snakemake

from timecourse_meta.pipeline.tables import (
    format_value,
    row_accounting,
    to_csv_text,
    to_markdown_text,
)

ROOT = Path(__file__).resolve().parents[1]
SHEET = "data/raw/ketamine_trials.csv"
WINDOWS = ["4h", "24h", "3d", "7d", "14d"]
TABLES = [
    "exclusions.csv", "row_accounting.csv", "window_choices.csv", "effects.csv",
    "pooled_by_timepoint.csv", "pooled_by_timepoint.md", "subgroups.csv", "sensitivity.csv",
    "proportions.csv", "pooled_proportions.csv", "published_comparison.csv",
    "published_comparison.md", "claims.csv", "claims.md", "provenance.csv",
    "timecourse_model.csv", "timecourse_contrasts.csv", "timecourse_model_comparison.csv",
    "timecourse_rho_sensitivity.csv", "time_response.csv", "time_response_summary.csv",
    "time_response_sensitivity.csv",
    "small_study_effects.csv", "summary_of_findings.csv",
    "summary_of_findings.md", "prisma_counts.csv", "risk_of_bias.csv", "risk_of_bias_summary.csv",
]  # fmt: skip
FIGURES = [f"{kind}_{w}.{e}" for kind in ("forest", "funnel") for w in WINDOWS
           for e in ("png", "pdf")] + [
    "timecourse.png", "timecourse.pdf", "prisma.png", "prisma.pdf",
    *(f"risk_of_bias_{k}.{e}" for k in ("traffic_light", "summary") for e in ("png", "pdf")),
]  # fmt: skip

needs_data = pytest.mark.skipif(not (ROOT / SHEET).exists(), reason=f"{SHEET} not present yet")


# ---- table writers (fast unit tests) -----------------------------------------------------------
def test_format_value_is_fixed_and_explicit() -> None:
    assert format_value(0.123456789) == "0.123457"
    assert format_value(1234567.0) == "1234567"
    assert format_value(2.5e-12) == "2.5e-12"
    assert format_value(-0.0) == "0"
    assert format_value(float("nan")) == "NA"
    assert format_value(None) == "NA"
    assert format_value(float("inf")) == "Inf"
    assert format_value(np.int64(7)) == "7"
    assert format_value(0.0004, decimals=3, pvalue=True) == "<0.001"
    assert format_value(-0.0001, decimals=3) == "0.000"
    assert format_value(0.61517, decimals=3) == "0.615"


def test_csv_and_markdown_text() -> None:
    frame = pd.DataFrame(
        {
            "k": [3.0, 0.0],
            "estimate": [0.5, np.nan],
            "note": ['a, "quoted" note', ""],
            "pval": [0.00001, 0.5],
        }
    )
    assert to_csv_text(frame) == (
        'k,estimate,note,pval\n3,0.5,"a, ""quoted"" note",1e-05\n0,NA,,0.5\n'
    )
    md = to_markdown_text(frame, title="T")
    assert md.splitlines() == [
        "# T",
        "",
        "| k | estimate | note | pval |",
        "|---|---|---|---|",
        '| 3 | 0.500 | a, "quoted" note | <0.001 |',
        "| 0 | NA |  | 0.500 |",
    ]


def test_row_accounting_detects_unaccounted_rows() -> None:
    rows = pd.DataFrame({"source_file": ["s.csv"] * 3, "source_row": [2, 3, 4]})
    refs = [{"source_file": "s.csv", "source_row": 2}, {"source_file": "s.csv", "source_row": 3}]
    effects = pd.DataFrame({"row_ids": ["s.csv:2;s.csv:3"], "source_rows": [refs]})
    excl = pd.DataFrame({"source_file": ["s.csv"], "source_row": [4]})
    table = row_accounting(rows, effects, excl)
    assert table.to_dict("records")[-1] == {
        "source_file": "TOTAL",
        "rows_in": 3,
        "rows_used": 2,
        "rows_excluded": 1,
    }
    with pytest.raises(RuntimeError, match="neither used nor excluded"):
        row_accounting(rows, effects, excl.iloc[:0])
    with pytest.raises(RuntimeError, match="both used and excluded"):
        row_accounting(
            rows, effects, pd.DataFrame({"source_file": ["s.csv"] * 2, "source_row": [3, 4]})
        )


# ---- the workflow ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def project(ketamine_run: Path) -> Path:
    """The session's one full run of the shipped ketamine analysis (tests/conftest.py), read
    only; tests that write into a project work on a copy of it."""
    return ketamine_run


@pytest.mark.slow
@needs_data
def test_all_outputs_exist(project: Path) -> None:
    missing = [t for t in TABLES if not (project / "results" / "tables" / t).is_file()]
    missing += [f for f in FIGURES if not (project / "results" / "figures" / f).is_file()]
    assert not missing
    for name in ("rows", "rows_windowed", "effects", "effects_all_times", "time_response"):
        assert (project / "data" / "processed" / f"{name}.parquet").is_file()
    versions = (project / "results" / "software_versions.txt").read_text().splitlines()
    assert [line.split()[0] for line in versions][:7] == [
        "python",
        "numpy",
        "scipy",
        "pandas",
        "statsmodels",
        "snakemake",
        "matplotlib",
    ]


@pytest.mark.slow
@needs_data
def test_rows_in_equal_used_plus_excluded(project: Path) -> None:
    rows = pd.read_parquet(project / "data" / "processed" / "rows.parquet")
    config = shipped_config("ketamine")
    sheets = [pd.read_csv(ROOT / p, dtype=str, keep_default_na=False) for p in config["studies"]]
    assert len(rows) == sum(len(s) for s in sheets)  # every data line of every sheet was read
    effects = pd.read_csv(project / "results" / "tables" / "effects.csv", keep_default_na=False)
    excl = pd.read_csv(project / "results" / "tables" / "exclusions.csv", keep_default_na=False)
    used = {r for cell in effects["row_ids"] for r in cell.split(";")}
    excluded = set(excl["source_file"] + ":" + excl["source_row"].astype(str))
    ids = set(rows["source_file"] + ":" + rows["source_row"].astype(str))
    assert used | excluded == ids
    assert not used & excluded
    assert len(excl) == len(excluded)
    acc = pd.read_csv(project / "results" / "tables" / "row_accounting.csv")
    total = acc[acc["source_file"] == "TOTAL"].iloc[0]
    assert (total["rows_in"], total["rows_used"], total["rows_excluded"]) == (
        len(ids),
        len(used),
        len(excluded),
    )
    assert set(excl["stage"]) <= {"eligibility", "windows", "effects"}
    assert (excl["reason"] != "").all()


@pytest.mark.slow
@needs_data
def test_pooled_tables(project: Path) -> None:
    pooled = pd.read_csv(
        project / "results" / "tables" / "pooled_by_timepoint.csv", keep_default_na=False
    )
    required = [
        "timepoint",
        "subgroup",
        "k",
        "n_participants",
        "estimate",
        "se",
        "ci_low",
        "ci_high",
        "pval",
        "tau2",
        "tau2_ci_low",
        "tau2_ci_high",
        "I2",
        "H2",
        "Q",
        "Q_p",
        "pi_low",
        "pi_high",
        "method",
        "test",
        "warnings",
    ]
    assert set(required) <= set(pooled.columns)
    config = shipped_config("ketamine")
    primary = pooled[
        (pooled["outcome"] == "score")
        & (pooled["measure"] == "SMD")
        & (pooled["subgroup"] == "all")
    ]
    assert primary["timepoint"].tolist() == WINDOWS
    assert set(pooled.loc[pooled["k"] >= 2, "method"]) == {config["method"]}
    assert set(pooled.loc[pooled["k"] >= 2, "test"]) == {config["test"]}
    # every NA estimate is explained
    na = pooled[pooled["estimate"] == "NA"]
    assert (na["warnings"].str.contains("k = 0")).all()
    subgroups = pd.read_csv(project / "results" / "tables" / "subgroups.csv")
    assert set(subgroups["moderator"]) == set(config["subgroups"])
    claims = pd.read_csv(project / "results" / "tables" / "claims.csv", keep_default_na=False)
    assert len(claims) == 10
    assert set(claims["verdict"]) <= {"supported", "not supported", "not testable"}
    verdicts = {"supported", "not supported", "not testable", "not applicable"}
    assert set(claims["verdict_time_response"]) <= verdicts
    rivals = claims.set_index("id")["rival_decision"]
    assert rivals["duration_3d"] == rivals["duration_7d"] != ""
    prov = pd.read_csv(project / "results" / "tables" / "provenance.csv", keep_default_na=False)
    assert (prov["note"] == "").all() and (prov["source_quote"] != "").all()


# "Same input, same bytes" is checked once, in tests/test_reruns.py: a second clean run in another
# copy of the project (at another path) against this session's shared run, byte for byte, every
# file of results/ and data/processed/; reruns in place after an interrupted run are compared
# the same way there. A --forceall rerun in this directory would check the same property again.


def _two(v: float) -> str:
    """A number as the report's first page shows it: two decimals, a minus sign."""
    return f"{v:.2f}".replace("-", "\u2212")


@pytest.mark.slow
@needs_data
def test_report_and_lint(project: Path, tmp_path: Path) -> None:
    project = copy_run(project, tmp_path / "project")  # the report is written into the copy
    proc = snakemake(project, "--report", "results/report.html")
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = (project / "results" / "report.html").read_text(encoding="utf-8")
    assert "pooled_by_timepoint.csv" in html and "forest_24h.png" in html
    # the first page shows the numbers: per window k, estimate, CI, tau2 (pooled table) and
    # the claim verdicts (workflow/report/workflow.rst includes results/report_summary.rst)
    pooled = pd.read_csv(project / "results" / "tables" / "pooled_by_timepoint.csv")
    overall = pooled[(pooled["outcome"] == "score") & (pooled["subgroup"] == "all")]
    assert "Results at a glance" in html and "system-message" not in html
    html = html.replace("\\u2212", "\u2212")  # the report's JSON escapes the minus sign
    assert len(overall) == 5
    for r in overall.itertuples(index=False):
        cells = [r.timepoint, r.k, _two(r.estimate), f"[{_two(r.ci_low)}, {_two(r.ci_high)}]",
                 f"{r.tau2:.3f}"]  # fmt: skip
        for cell in cells:
            assert f"<td>{cell}</td>" in html, cell
    assert "<td>consistent_24h</td>" in html and "<td>supported</td>" in html
    assert "data:image/png;base64," in html
    lint = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint", "--configfile", KETAMINE_CONFIG],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "Lints for" not in lint.stdout + lint.stderr


def small_project(tmp_path: Path) -> Path:
    dest = tmp_path / "p"
    dest.mkdir()
    return copy_project(dest)


@pytest.mark.slow
def test_sheet_error_is_one_line_without_traceback(tmp_path: Path) -> None:
    path = small_project(tmp_path)
    bad = "study_id,citation,time_hours,yi,vi\nA,Author 2001,24,0.5,0.04\nB,Author 2002,24,0.2,-1\n"
    (path / "data" / "raw" / "bad.csv").write_text(bad, encoding="utf-8")
    proc = snakemake(path, "data/processed/rows.parquet", "--config", "studies=data/raw/bad.csv")
    assert proc.returncode != 0
    expected = (
        "ingest_sheets: ERROR: data/raw/bad.csv, line 3, column 'vi': expected a number "
        "> 0 (found '-1')"
    )
    assert expected in proc.stderr.splitlines()
    assert "Traceback" not in proc.stderr
    log = (path / "logs" / "ingest_sheets.log").read_text()
    assert log.strip().endswith(expected.split("ERROR: ", 1)[1])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "results_dir=/tmp/elsewhere",
            "config 'results_dir': path '/tmp/elsewhere' must be relative to the project",
        ),
        (
            "results_dir=../outside",
            "config 'results_dir': path '../outside' must stay inside the project (no '..')",
        ),
        ("method=BOGUS", "config 'method': 'BOGUS' is not one of"),
    ],
)
@pytest.mark.slow
def test_config_is_validated(tmp_path: Path, override: str, message: str) -> None:
    path = small_project(tmp_path)
    proc = snakemake(path, "-n", "--config", override)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr  # a dry run prints to stdout


@pytest.mark.slow
def test_minimal_precomputed_sheet_via_config(tmp_path: Path) -> None:
    path = small_project(tmp_path)
    # yi/vi are arbitrary test inputs: positive = benefit, on the SMD scale
    sheet = (
        "study_id,citation,time_hours,yi,vi,n_total\n"
        "A,Author 2001,24,0.50,0.04,40\n"
        "B,Author 2002,26,0.30,0.05,36\n"
        "B,Author 2002,22,0.35,0.05,36\n"
        "C,Author 2003,100,0.10,0.06,30\n"
    )
    (path / "data" / "raw" / "pre.csv").write_text(sheet, encoding="utf-8")
    proc = snakemake(
        path,
        "results/tables/pooled_by_timepoint.csv",
        "results/tables/exclusions.csv",
        "--config",
        "studies=data/raw/pre.csv",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    pooled = pd.read_csv(
        path / "results" / "tables" / "pooled_by_timepoint.csv", keep_default_na=False
    )
    row = pooled[(pooled["timepoint"] == "24h") & (pooled["subgroup"] == "all")].iloc[0]
    # B reports 22 h and 26 h, both 2 h from 24 h: the earlier (22 h, yi 0.35) is used
    assert row["k"] == 2 and row["studies"] == "A;B" and row["n_participants"] == 76
    excl = pd.read_csv(path / "results" / "tables" / "exclusions.csv", keep_default_na=False)
    assert excl["source_row"].tolist() == [3, 5]
    assert excl["reason"].tolist() == [
        "window 24h: study reports 22, 26 h; 22 h used (closest_to_nominal), not 26 h",
        "time 100 h is in no configured window",
    ]
