"""The README's "Your own data in five minutes", run as a newcomer would (issue 12).

The sheet and the config are read from that README section itself (so the README cannot drift
from what works), written to a folder outside the project, and run with the real command line
(`snakemake -s <project>/workflow/Snakefile --configfile review.yaml`) from that folder: the
neutral default, an absolute input path, metafor-style column names (`study`, `yi`, `vi`,
`week`), time in weeks, the review's own labels, a sheet without a source column. A second run
gives the windows in the wrong unit and must warn that most rows fall outside every window.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from pipeline_helpers import snakemake

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = str(ROOT / "workflow" / "Snakefile")
SECTION = "## Your own data in five minutes"


def readme_blocks() -> dict[str, str]:
    """The first ```csv and ```yaml block of the README section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(SECTION)
    section = text[start : text.index("\n## ", start + len(SECTION))]
    blocks = dict(re.findall(r"```(csv|yaml)\n(.*?)```", section, flags=re.S)[::-1])
    assert set(blocks) == {"csv", "yaml"}, "the section needs one csv and one yaml block"
    return blocks


def review_folder(tmp_path: Path, **overrides: object) -> tuple[Path, dict, pd.DataFrame]:
    blocks = readme_blocks()
    folder = tmp_path / "review"
    folder.mkdir()
    sheet = folder / "sheet.csv"
    sheet.write_text(blocks["csv"], encoding="utf-8")
    cfg = yaml.safe_load(blocks["yaml"])
    cfg.update(studies=str(sheet), **overrides)  # the README's /home/me/... is this folder
    (folder / "review.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return folder, cfg, pd.read_csv(sheet)


@pytest.mark.slow
def test_readme_newcomer_path_runs_outside_the_project(tmp_path: Path) -> None:
    folder, cfg, sheet = review_folder(tmp_path)
    proc = snakemake(folder, "-s", SNAKEFILE, "--configfile", "review.yaml", ketamine=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "no source column" in proc.stderr  # the loud warning, on the terminal
    tables = folder / "results" / "tables"

    # windows derived from the reported weeks; each pooled number checked by hand: with
    # tau^2 = 0 (REML at the boundary) the estimate is the inverse-variance weighted mean
    pooled = pd.read_csv(tables / "pooled_by_timepoint.csv", keep_default_na=False)
    overall = pooled[pooled["subgroup"] == "all"].set_index("timepoint")
    weeks = sorted(sheet["week"].unique())
    assert overall.index.tolist() == [f"{w:g}wk" for w in weeks]
    for w in weeks:
        part = sheet[sheet["week"] == w]
        row = overall.loc[f"{w:g}wk"]
        assert int(row["k"]) == len(part)
        assert float(row["tau2"]) == 0.0
        wts = 1 / part["vi"].to_numpy()
        mean = float(np.sum(wts * part["yi"].to_numpy()) / np.sum(wts))
        assert float(row["estimate"]) == pytest.approx(mean, abs=1e-6)

    # every row used, every row 'unsourced', nothing of the ketamine analysis
    accounting = pd.read_csv(tables / "row_accounting.csv")
    assert int(accounting.iloc[-1]["rows_used"]) == len(sheet)
    provenance = pd.read_csv(tables / "provenance.csv", keep_default_na=False)
    assert len(provenance) == len(sheet)
    assert (provenance["citation"] == "unsourced").all()
    for name in ("claims.csv", "published_comparison.csv"):
        assert pd.read_csv(tables / name).empty, name
    page = (folder / "results" / "report_summary.rst").read_text(encoding="utf-8")
    assert cfg["intervention"].capitalize() in page and cfg["outcome_label"] in page
    for word in ("ketamine", "Ketamine", "MADRS", "depression score"):
        assert word not in page, word


@pytest.mark.slow
def test_windows_in_the_wrong_unit_warn_that_rows_fall_outside(tmp_path: Path) -> None:
    # the same sheet in weeks with windows written as if the unit were hours
    windows = [{"label": "24h", "low": 18, "high": 30, "nominal": 24}]
    folder, _, sheet = review_folder(tmp_path, windows=windows)
    proc = snakemake(
        folder, "-s", SNAKEFILE, "results/tables/window_choices.csv",
        "--configfile", "review.yaml", ketamine=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stderr.splitlines() if "fall outside every window" in x)
    assert line.startswith(f"select_windows: WARNING: {len(sheet)} of {len(sheet)} rows")
