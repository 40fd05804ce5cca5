"""The schema's defaults are filled in exactly as `snakemake.utils.validate` fills them.

`workflow/rules/common.smk` fills them with `pipeline.config.fill_defaults` on the schema it has
already parsed (Snakemake's validate re-reads the file with a slow YAML loader); here both run
on the shipped configs and on sparse ones, and must give the same config, key for key.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from timecourse_meta.pipeline.config import fill_defaults, load_yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "config" / "schema" / "config.schema.yaml"
SHIPPED = ["config/config.yaml", "config/ketamine.yaml", "config/examples/alogliptin.yaml",
           ".test/config/config.yaml"]  # fmt: skip


def snakemake_filled(config: dict) -> dict:
    validate = pytest.importorskip("snakemake.utils").validate
    out = copy.deepcopy(config)
    validate(out, schema=str(SCHEMA))
    return out


def ours(config: dict) -> dict:
    out = copy.deepcopy(config)
    fill_defaults(out, load_yaml(SCHEMA))
    return out


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_get_snakemakes_defaults(name: str) -> None:
    config = load_yaml(ROOT / name)
    if config.get("studies") is None:  # the neutral default asks for it on the command line
        config["studies"] = "data/raw/sheet.csv"
    assert ours(config) == snakemake_filled(config)


@pytest.mark.parametrize(
    "config",
    [
        {"studies": "data/raw/sheet.csv"},
        {"studies": ["a.csv", "b.csv"], "timecourse": {}, "time_response": {}},
        {"studies": "a.csv", "method": "DL", "windows": None, "subgroups": {"trd": None}},
    ],
)
def test_sparse_configs_get_snakemakes_defaults(config: dict) -> None:
    filled = ours(config)
    assert filled == snakemake_filled(config)
    # hand-checked against config/schema/config.schema.yaml: the fallback estimator is DL,
    # and a key the config gives keeps its value
    assert filled["method_fallback"] == "DL"
    assert filled["studies"] == config["studies"]
    assert set(filled) > set(config)
