"""Snakemake workflow-catalog conventions: layout, formatting, a conda env that installs us.

snakemake-workflows layout (workflow/Snakefile, config/README.md, .test/,
.snakemake-workflow-catalog.yml), `snakefmt --check` clean, and an environment file whose pip
section installs this package so that `--sdm conda` runs the same code as the venv.
The `.test` configuration's end-to-end run (`snakemake --directory .test`) is checked in
tests/test_reruns.py, on the run its HTML-escaping test makes anyway (one run, not two).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_catalog_layout() -> None:
    for path in (
        "workflow/Snakefile",
        "config/README.md",
        "config/config.yaml",
        ".snakemake-workflow-catalog.yml",
        ".test/config/config.yaml",
    ):
        assert (ROOT / path).is_file(), path
    assert not (ROOT / "Snakefile").exists(), "the Snakefile lives in workflow/"
    catalog = yaml.safe_load((ROOT / ".snakemake-workflow-catalog.yml").read_text())
    assert catalog["usage"]["software-stack-deployment"]["conda"] is True


def test_conda_env_installs_the_package() -> None:
    env = yaml.safe_load((ROOT / "workflow/envs/timecourse_meta.yaml").read_text())
    pip = [d for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert pip and "-e ../.." in pip[0]["pip"]
    # ../.. from workflow/envs/ is the project root (where pyproject.toml is)
    assert (ROOT / "workflow" / "envs" / ".." / ".." / "pyproject.toml").resolve().is_file()
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        text = smk.read_text()
        rules = text.count("\nrule ")
        for directive in ("conda:", "log:", "benchmark:"):
            assert text.count(f"    {directive}") >= rules, (
                f"{smk.name}: a rule without {directive}"
            )


@pytest.mark.skipif(shutil.which("snakefmt") is None, reason="snakefmt not installed")
def test_snakefmt_clean() -> None:
    out = subprocess.run(
        ["snakefmt", "--check", "workflow/"], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
