"""The workflow's data path without Snakemake: ingest -> windows -> effect sizes -> accounting.

Mirrors workflow/scripts/ingest_sheets.py, select_windows.py and effect_sizes.py call for call
(same package functions, same order), so tests can run many sheets in seconds.
"""

from __future__ import annotations

import copy
import csv
import io
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from timecourse_meta.pipeline.effect_table import build_effect_table
from timecourse_meta.pipeline.ingest import read_sheets
from timecourse_meta.pipeline.windows import KETAMINE_WINDOWS, parse_windows, select_windows


@dataclass(frozen=True)
class Run:
    rows: pd.DataFrame
    effects: pd.DataFrame
    exclusions: pd.DataFrame
    accounting: pd.DataFrame
    warnings: tuple[str, ...] = ()


def run_pipeline(
    sheets: Sequence[str | Path],
    root: str | Path | None = None,
    *,
    windows: Sequence[Mapping[str, object]] = KETAMINE_WINDOWS,
    rule: str = "closest_to_nominal",
    include: Mapping[str, Sequence[str]] | None = None,
    exclude_studies: Sequence[Mapping[str, str]] | None = None,
    crossover_r: float = 0.5,
    lower_is_better_default: bool = True,
    precomputed_measure: str = "SMD",
    exclude_rows: Sequence[Mapping[str, object]] | None = None,
    first_period_only: bool = False,
    scale_priority: Sequence[str] | None = None,
    score_measure: str = "SMD",
    sheet_options: Mapping[str, object] | None = None,
) -> Run:
    """Run the first three workflow stages on `sheets`; raise what the workflow would raise.

    The same package calls, in the same order, as the rules ingest_sheets, select_windows and
    effect_sizes (each stage is one package function; the scripts only add file I/O).
    `sheet_options`: the ingest options of `read_sheets` (csv_separator, decimal, time_unit,
    control_arms, stat_kind_default), as the ingest rule passes them from the config.
    """
    rows = read_sheets(list(sheets), root=root, **dict(sheet_options or {}))
    table = parse_windows(windows)
    windowed = select_windows(
        rows,
        table,
        rule,
        include,
        exclude_studies,
        exclude_rows,
        first_period_only=first_period_only,
        scale_priority=scale_priority,
    )
    out = build_effect_table(
        rows,
        windowed.rows,
        windowed.excluded,
        list(table["label"]),
        crossover_r=crossover_r,
        lower_is_better_default=lower_is_better_default,
        precomputed_measure=precomputed_measure,
        score_measure=score_measure,
    )
    return Run(rows, out.effects, out.exclusions, out.accounting, windowed.warnings)


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


def copy_run(run: Path, dest: Path) -> Path:
    """Copy a project after a run (e.g. the shared `ketamine_run` fixture) to `dest`: outputs,
    modification times and Snakemake's records (.snakemake/) included, so Snakemake sees the
    copy exactly as up to date as the original; return `dest`."""
    shutil.copytree(run, dest, symlinks=True, ignore=shutil.ignore_patterns("locks"))
    return dest


#: One valid extraction-sheet row (docs/extraction_sheet.md); tests change cells per row.
SHEET_ROW: dict[str, str] = {
    "study_id": "Trial2006", "citation": "Trial A et al. J 2006;1:1-2", "doi": "10.1/x",
    "pmid": "", "source_address": "https://example.org/table/T2", "source_locator": "Table 2",
    "source_quote": "MADRS day 1: 20.1 (5.2) vs 30.2 (6.1)", "source_type": "primary",
    "value_origin": "table", "extraction_note": "", "design": "parallel", "period": "all",
    "population": "unipolar", "trd": "yes", "concomitant_ad": "no", "control": "saline",
    "drug": "ketamine", "route": "iv", "dose": "0.5 mg/kg", "scale": "MADRS",
    "lower_is_better": "yes", "arm": "ketamine", "arm_role": "treatment", "outcome": "score",
    "time_hours": "24", "time_as_reported": "Day 1", "n": "10", "stat_kind": "final",
    "mean": "20.1", "sd": "5.2",
}  # fmt: skip


def arm_pair(
    treat: Mapping[str, object] | None = None,
    control: Mapping[str, object] | None = None,
    **common: object,
) -> list[dict[str, str]]:
    """A treatment and a control row of one study (`common` applies to both)."""
    base = {**SHEET_ROW, **{k: str(v) for k, v in common.items()}}
    ctrl = {**base, "arm": "saline", "arm_role": "control", "mean": "30.2", "sd": "6.1"}
    return [
        {**base, **{k: str(v) for k, v in (treat or {}).items()}},
        {**ctrl, **{k: str(v) for k, v in (control or {}).items()}},
    ]


def write_sheet(path: Path, rows: Sequence[Mapping[str, str]]) -> Path:
    """Write extraction rows as a CSV sheet (columns of SHEET_ROW plus any extra ones)."""
    columns = list(SHEET_ROW) + sorted({c for r in rows for c in r} - set(SHEET_ROW))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({c: r.get(c, "") for c in columns})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


#: The shipped ketamine analysis, merged over the neutral default config/config.yaml.
KETAMINE_CONFIG = "config/ketamine.yaml"


def snakemake(
    cwd: Path, *args: str, ketamine: bool = True, timeout: int = 600
) -> subprocess.CompletedProcess:
    """Run `python -m snakemake --cores 2 *args` in `cwd` (the test's interpreter).

    `ketamine`: run the shipped ketamine analysis, i.e. add `--configfile config/ketamine.yaml`
    (the neutral default config/config.yaml has no sheets). Snakemake's --configfile takes
    several values and a second --configfile option replaces the first, so the ketamine file is
    put first among the test's own --configfile values (the test's files then override it),
    else after the targets (before a `--` that ends the options, if any).
    """
    argv = list(args)
    if ketamine:
        if "--configfile" in argv:
            at = argv.index("--configfile") + 1
            argv[at:at] = [KETAMINE_CONFIG]
        elif "--" in argv:
            at = argv.index("--")
            argv[at:at] = ["--configfile", KETAMINE_CONFIG]
        else:
            argv += ["--configfile", KETAMINE_CONFIG]
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def merge_config(base: Mapping[str, object], overlay: Mapping[str, object]) -> dict:
    """`overlay` merged over `base` as Snakemake merges a --configfile over the `configfile:`
    default (snakemake.utils.update_config): mappings merged key by key, recursively; lists
    and every other value replaced."""
    out = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_config(out[key], value)  # type: ignore[arg-type]
        else:
            out[key] = copy.deepcopy(value)
    return out


def shipped_config(name: str = "ketamine") -> dict:
    """config/config.yaml (name 'default') or config/<name>.yaml merged over it, as a run with
    `--configfile config/<name>.yaml` sees it (before the schema's defaults are filled in)."""
    base = yaml.safe_load((ROOT / "config" / "config.yaml").read_text(encoding="utf-8")) or {}
    if name == "default":
        return base
    overlay = yaml.safe_load((ROOT / "config" / f"{name}.yaml").read_text(encoding="utf-8"))
    return merge_config(base, overlay or {})
