"""The workflow's data path without Snakemake: ingest -> windows -> effect sizes -> accounting.

Mirrors workflow/scripts/ingest_sheets.py, select_windows.py and effect_sizes.py call for call
(same package functions, same order), so tests can run many sheets in seconds.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from timecourse_meta.pipeline.effect_table import build_effect_table
from timecourse_meta.pipeline.ingest import read_sheets
from timecourse_meta.pipeline.windows import parse_windows, select_windows


@dataclass(frozen=True)
class Run:
    rows: pd.DataFrame
    effects: pd.DataFrame
    exclusions: pd.DataFrame
    accounting: pd.DataFrame


def run_pipeline(
    sheets: Sequence[str | Path],
    root: str | Path | None = None,
    *,
    windows: Sequence[Mapping[str, object]] | None = None,
    rule: str = "closest_to_nominal",
    include: Mapping[str, Sequence[str]] | None = None,
    exclude_studies: Sequence[Mapping[str, str]] | None = None,
    crossover_r: float = 0.5,
    lower_is_better_default: bool = True,
    precomputed_measure: str = "SMD",
) -> Run:
    """Run the first three workflow stages on `sheets`; raise what the workflow would raise.

    The same package calls, in the same order, as the rules ingest_sheets, select_windows and
    effect_sizes (each stage is one package function; the scripts only add file I/O).
    """
    rows = read_sheets(list(sheets), root=root)
    table = parse_windows(windows)
    windowed = select_windows(rows, table, rule, include, exclude_studies)
    out = build_effect_table(
        rows,
        windowed.rows,
        windowed.excluded,
        list(table["label"]),
        crossover_r=crossover_r,
        lower_is_better_default=lower_is_better_default,
        precomputed_measure=precomputed_measure,
    )
    return Run(rows, out.effects, out.exclusions, out.accounting)


ROOT = Path(__file__).resolve().parents[1]
#: What a copy of the project needs to run the workflow (workflow/Snakefile, rules, scripts,
#: report captions, config and schemas); the package itself is the installed one.
PROJECT_PARTS: tuple[str, ...] = ("config", "workflow")


def copy_project(dest: Path, *, data: bool = True) -> Path:
    """Copy the workflow (and data/raw/ unless `data` is False) into `dest`; return `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_PARTS:
        shutil.copytree(ROOT / name, dest / name)
    if data:
        shutil.copytree(ROOT / "data" / "raw", dest / "data" / "raw")
    return dest
