"""Imports point the way the data flow: a module imports only from its own or a lower layer.

Layers, lowest first: ``schema``/``errors`` (data contracts) and ``distributions`` ->
``effects`` (escalc) -> ``models`` -> ``diagnostics`` -> ``plots`` -> ``simulation`` ->
``pipeline``. Inside ``pipeline`` the stages are ordered too (``PIPELINE_ORDER``): a stage never
imports from a later one. matplotlib is imported only by ``plots`` (and lazily, inside
functions, elsewhere), no module loads scipy.stats, and the package's top level imports nothing
heavy.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "timecourse_meta"

LAYERS: dict[str, int] = {
    "schema": 0,
    "errors": 0,
    "distributions": 0,  # probabilities and quantiles on scipy.special
    "effects": 1,
    "models": 2,
    "diagnostics": 3,
    "plots": 4,
    "simulation": 5,
    "pipeline": 6,
}
#: pipeline stages in data-flow order (writers first: every stage uses them).
PIPELINE_ORDER: tuple[str, ...] = (
    "tables",
    "sheet_checks",
    "row_statistics",  # checks within a row of a sheet
    "file_kinds",  # what a path is (regular file, FIFO, ...) before it is opened
    "csv_reader",  # the one CSV reader (sheets, risk-of-bias sheet)
    "duplicates",
    "sheet_layouts",
    "importers",
    "ingest",
    "window_specs",
    "row_rules",
    "windows",
    "effect_table",
    "config",
    "pooling",
    "sensitivity",
    "published",
    "timecourse_spec",
    "timecourse_fits",
    "timecourse_tables",
    "time_response_spec",  # the time_response: config section, parsed when Snakemake starts
    "time_response_tables",
    "claims_config",  # the claims file, read and checked when Snakemake starts
    "claims_core",
    "claims_models",
    "claims",
    "risk_of_bias",  # review outputs: risk of bias, GRADE, PRISMA, small-study effects
    "small_study_effects",
    "grade",
    "grade_markdown",
    "prisma",
    "forest_data",  # joins effects, pooled fits, weights and RoB judgements for the forest plots
    "baseline",  # where the living review's baseline comes from (config `baseline`)
    "snapshot_tables",  # living review: a run's results as text tables
    "changes",  # living review: compares a run with its baseline
    "changes_text",
    "snapshot",
    "report_summary",  # the HTML report's first page: pooled table, verdicts, figure
)
HEAVY = ("matplotlib", "seaborn")


def _modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if p.name != "__init__.py" or p.parent != PKG)


def _dotted(path: Path) -> list[str]:
    parts = list(path.relative_to(PKG).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imports(path: Path) -> list[tuple[int, str, bool]]:
    """(line, imported module, at module top level) for every import in `path`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    top = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.level:
                base = _dotted(path)[: -node.level] if node.level else []
                name = ".".join(["timecourse_meta", *base, node.module])
            else:
                name = node.module
            out.append((node.lineno, name, id(node) in top))
    return out


def _rank(parts: list[str]) -> tuple[int, int]:
    layer = LAYERS.get(parts[0])
    assert layer is not None, f"top-level package part {parts[0]!r} has no layer in LAYERS"
    stage = 0
    if parts[0] == "pipeline" and len(parts) > 1:
        assert parts[1] in PIPELINE_ORDER, (
            f"pipeline module {parts[1]!r}: add it to PIPELINE_ORDER in tests/test_layering.py"
        )
        stage = PIPELINE_ORDER.index(parts[1])
    return layer, stage


def test_every_import_points_downwards() -> None:
    bad = []
    for path in _modules():
        here = _dotted(path)
        if not here:
            continue
        for line, name, _ in _imports(path):
            if not name.startswith("timecourse_meta."):
                continue
            target = name.split(".")[1:]
            if _rank(target) > _rank(here):
                bad.append(f"{path.relative_to(PKG)}:{line} imports {name}")
    assert not bad, "imports against the data flow:\n" + "\n".join(bad)


def test_heavy_plotting_libraries_only_in_plots() -> None:
    bad = []
    for path in _modules():
        here = _dotted(path)
        for line, name, top in _imports(path):
            if name.split(".")[0] in HEAVY and top and here[0] != "plots":
                bad.append(f"{path.relative_to(PKG)}:{line} imports {name} at module level")
    assert not bad, "\n".join(bad)


def test_layering_check_catches_an_upward_import(tmp_path: Path) -> None:
    """The check is not vacuous: a models module importing pipeline is reported."""
    fake = tmp_path / "x.py"
    fake.write_text("from timecourse_meta.pipeline.pooling import pool_group\n")
    ((line, name, top),) = _imports(fake)
    assert (line, name, top) == (1, "timecourse_meta.pipeline.pooling", True)
    assert _rank(name.split(".")[1:]) > _rank(["models", "rma"])


@pytest.mark.parametrize(
    "module", ["timecourse_meta", "timecourse_meta.errors", "timecourse_meta.pipeline.pooling"]
)
def test_imports_are_light(module: str) -> None:
    code = (
        f"import sys, {module}; "
        "heavy = sorted(m for m in ('matplotlib', 'seaborn') if m in sys.modules); "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import {module} loads {out.stdout.strip()}"
    if module != "timecourse_meta.pipeline.pooling":
        code = f"import sys, {module}; print('scipy' in sys.modules)"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.stdout.strip() == "False", f"import {module} loads scipy"


def test_no_module_of_the_package_loads_scipy_stats() -> None:
    """Every module imported together leaves scipy.stats unloaded: its import costs each
    workflow job about a second; timecourse_meta.distributions gives the same values."""
    names = [".".join(["timecourse_meta", *_dotted(p)]) for p in _modules() if _dotted(p)]
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "print('scipy.stats' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", "a module imports scipy.stats; use distributions"


def test_snakemake_parse_loads_neither_pandas_nor_scipy() -> None:
    """What workflow/Snakefile and workflow/rules/*.smk import to check the config (every
    `snakemake` call, dry runs included, pays it) leaves pandas and scipy unloaded."""
    workflow = PKG.parents[1] / "workflow"
    names: set[str] = set()
    for smk in [workflow / "Snakefile", *sorted((workflow / "rules").glob("*.smk"))]:
        text = smk.read_text(encoding="utf-8")
        names |= set(re.findall(r"^\s*from (timecourse_meta[\w.]*) import", text, re.M))
    assert "timecourse_meta.pipeline.config" in names  # the scan sees the parse's imports
    code = "import sys\n" + "".join(f"import {n}\n" for n in sorted(names))
    code += "print(sorted(m for m in ('pandas', 'scipy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"the Snakefile's imports load {out.stdout.strip()}"
