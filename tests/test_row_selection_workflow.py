"""End-to-end (slow): the row-selection rules and the MD measure through the real `snakemake`
command line, on a small sheet written here.

One run covers them together: scale_priority (a study with MADRS and HDRS at 24 h), a study
whose two scales are both unlisted (warning on stderr and in the log), exclude_rows (one dose
arm of a three-arm trial), baseline rows with two different values at time 0 (no duplicate
error), a crossover second period, a sensitivity subset on an extra sheet column `rob`, and
primary_measure MD (pooled table, its notes and the subset). The CLI's numbers are compared
with the same package functions run in-process and with hand-computed mean differences.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from pipeline_helpers import arm_pair, copy_project, run_pipeline, write_sheet

from timecourse_meta.pipeline.pooling import pool_by_timepoint
from timecourse_meta.pipeline.sensitivity import subset_effects

SHEET = "data/raw/selection.csv"
CONFIG = {
    "studies": SHEET,
    "risk_of_bias": None,
    "primary_measure": "MD",
    "scale_priority": ["MADRS", "HDRS"],
    "exclude_rows": [
        {"where": {"study_id": "S3", "arm": "ketamine_0.2mg"}, "reason": "dose below range"}
    ],
    "sensitivity": {
        "crossover_r": [0.5],
        "subsets": [{"name": "low_rob_only", "keep": {"rob": ["low"]}}],
        "leave_one_out": False,
    },
}


def _rows() -> list[dict[str, str]]:
    s1 = arm_pair({"mean": 18}, {"mean": 26}, study_id="S1", rob="low")  # lines 2-3
    s1 += arm_pair({"mean": 9}, {"mean": 13}, study_id="S1", rob="low", scale="HDRS")  # 4-5
    s2 = arm_pair({"mean": 21}, {"mean": 24}, study_id="S2", rob="high")  # lines 6-7
    s2 += [{**s2[0], "time_hours": "0", "mean": m} for m in ("31", "32")]  # 8-9 baseline
    s3 = arm_pair({"mean": 17}, {"mean": 25}, study_id="S3", rob="low", arm="ketamine_0.5mg")
    s3.append({**s3[0], "arm": "ketamine_0.2mg", "mean": "23"})  # lines 10-12
    s4 = arm_pair(study_id="S4", rob="low", scale="BDI")  # lines 13-14
    s4 += arm_pair(study_id="S4", rob="low", scale="QIDS")  # 15-16: neither scale listed
    s5 = arm_pair(
        {"mean": 19}, {"mean": 24}, study_id="S5", rob="low", design="crossover", period="first"
    )  # lines 17-18
    s5 += [{**r, "period": "second", "mean": "20"} for r in s5]  # 19-20 after the crossover
    return [*s1, *s2, *s3, *s4, *s5]


@pytest.mark.slow
def test_selection_rules_and_md_through_snakemake(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project", data=False)
    write_sheet(project / SHEET, _rows())
    (project / "selection.yaml").write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    tables = project / "results" / "tables"
    targets = [str(tables / n) for n in ("exclusions.csv", "pooled_by_timepoint.md",
                                         "sensitivity.csv")]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", *[str(Path(t).relative_to(project)) for t in targets],
         "--cores", "2", "--configfile", "selection.yaml"],
        cwd=project, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    warning = next(ln for ln in proc.stderr.splitlines() if "report several scales" in ln)
    assert warning.startswith("select_windows: WARNING: 1 study x outcome x time(s)")
    assert "S4 score 24h (BDI, QIDS)" in warning
    assert "scale_priority (MADRS, HDRS) does not rank them" in warning
    assert warning.split("select_windows: ")[1] in (project / "logs/select_windows.log").read_text()

    ex = pd.read_csv(tables / "exclusions.csv", keep_default_na=False).set_index("source_row")
    assert sorted(ex.index) == [4, 5, 8, 9, 12, 13, 14, 15, 16, 19, 20]
    assert set(ex.loc[[4, 5], "reason"]) == {
        "scale not preferred (scale_priority: MADRS, HDRS; MADRS used, not HDRS)"
    }
    assert set(ex.loc[[8, 9], "reason"]) == {"baseline (time <= 0)"}
    assert ex.loc[12, "reason"] == "excluded by config exclude_rows: dose below range"
    assert set(ex.loc[[13, 14, 15, 16], "reason"]) == {
        "duplicate rows for the same arm, outcome, time point and stat_kind: cannot choose"
    }
    assert set(ex.loc[[19, 20], "reason"]) == {
        "crossover second period (after the crossover) not analysed: carry-over; use period "
        "first or all"
    }

    # MD pooled by the CLI = the package in-process; study MDs by hand (lower is better)
    run = run_pipeline(
        [SHEET], project, score_measure="MD", scale_priority=CONFIG["scale_priority"],
        exclude_rows=CONFIG["exclude_rows"],
    )  # fmt: skip
    eff = run.effects[run.effects["outcome"] == "score"].set_index("study_id")
    assert eff["yi"].to_dict() == {"S1": 8.0, "S2": 3.0, "S3": 8.0, "S5": 5.0}
    np.testing.assert_allclose(eff["vi"], (5.2**2 + 6.1**2) / 10)
    expected = pool_by_timepoint(eff.reset_index(), ["24h"], method="REML", test="knha")
    expected = expected[(expected["subgroup"] == "all") & (expected["measure"] == "MD")]
    md = (tables / "pooled_by_timepoint.md").read_text(encoding="utf-8")
    assert "MD = mean difference" in md and "Hedges" not in md
    line = next(ln for ln in md.splitlines() if ln.startswith("| score | MD | 24h |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[3] == "4"  # k
    np.testing.assert_allclose(float(cells[5]), expected["estimate"].iloc[0], rtol=1e-5)

    sens = pd.read_csv(tables / "sensitivity.csv", keep_default_na=False)
    sens = sens[sens["timepoint"] == "24h"].set_index("analysis")
    assert set(sens["measure"]) == {"MD"}
    assert sens.loc["primary", "k"] == 4 and sens.loc["low_rob_only", "k"] == 3
    assert sens.loc["low_rob_only", "studies"] == "S1;S3;S5"
    windowed = pd.read_parquet(project / "data" / "processed" / "rows_windowed.parquet")
    low = subset_effects(run.effects, keep={"rob": ["low"]}, rows=windowed)
    fit = pool_by_timepoint(low, ["24h"], method="REML", test="knha")
    fit = fit[(fit["subgroup"] == "all") & (fit["measure"] == "MD")]
    np.testing.assert_allclose(
        float(sens.loc["low_rob_only", "estimate"]), fit["estimate"].iloc[0], rtol=1e-5
    )
