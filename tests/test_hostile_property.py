"""Property: any sheet ends in a clean run or in exactly one `ERROR:` line naming file and line.

Hypothesis generates sheets in both formats (the extraction sheet and the minimal yi/vi sheet):
random subsets of the columns, random text, numbers and special values in every cell, random
duplicated rows, several encodings. Each sheet runs through the stages' Python entry points in
process, each inside the real `errors.exit_on_error` the workflow scripts use (ingest ->
windows -> effect sizes + row accounting -> pooling and subgroup tests -> proportions). The run
must end either with every stage done and the row accounting balanced (rows in = used +
excluded) and finite pooled numbers, or with exit status 1 and stderr holding exactly one line
`<stage>: ERROR: <file>, line <n>...` - never "unexpected error" (a traceback).

The quick version runs in the default suite; the long one is `@pytest.mark.slow` (300 sheets;
set HOSTILE_EXAMPLES to change its size). Under CI (environment variable CI set; CI services
set CI=true) the long one is derandomized, the same sheets on every CI run, so that a CI result
can be reproduced; local runs draw new sheets each time and keep exploring. A handful of
generated sheets also go through the real `snakemake` command line (slow).
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import random
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pipeline_helpers import copy_project, shipped_config, snakemake

from timecourse_meta.effects.comparisons import compute_effects, compute_proportions
from timecourse_meta.errors import exit_on_error
from timecourse_meta.pipeline.ingest import precomputed_effects, read_sheets
from timecourse_meta.pipeline.pooling import pool_by_timepoint, pool_proportions, subgroup_tests
from timecourse_meta.pipeline.tables import row_accounting, sort_effects
from timecourse_meta.pipeline.windows import check_effect_columns, parse_windows, select_windows

ROOT = Path(__file__).resolve().parents[1]
CONFIG = shipped_config("ketamine")
WINDOWS = parse_windows(CONFIG["windows"])
TIMEPOINTS = list(WINDOWS["label"])
SUBGROUPS = {k: v for k, v in CONFIG["subgroups"].items() if k in ("trd", "control")}
FIT = {"method": "REML", "test": "knha", "level": 0.95, "method_fallback": "DL"}
SHEET_NAME = "sheet.csv"

EXTRACTION = [
    "study_id", "citation", "doi", "pmid", "source_address", "source_locator", "source_quote",
    "source_type", "value_origin", "extraction_note", "design", "period", "population", "trd",
    "concomitant_ad", "control", "drug", "route", "dose", "scale", "lower_is_better", "arm",
    "arm_role", "outcome", "time_hours", "time_as_reported", "n", "stat_kind", "mean", "sd", "se",
    "ci_low", "ci_high", "ci_level", "events", "effect", "effect_type", "effect_se", "effect_var",
    "n_treatment", "n_control", "r_within", "timepoint",
]  # fmt: skip
MINIMAL = ["study_id", "citation", "doi", "time_hours", "timepoint", "yi", "vi", "sei",
           "n_total", "measure", "outcome", "scale", "arm"]  # fmt: skip
# plausible values per column: a valid sheet is the starting point, so runs get past ingest
PLAUSIBLE: dict[str, list[str]] = {
    "study_id": ["S1", "S2", "S3", "S1"], "citation": ["Synthetic A 2020", "Synthetic B 2021"],
    "doi": ["10.0000/x", ""], "pmid": ["", "123"], "source_address": ["https://example.org/a"],
    "source_locator": ["Table 2"], "source_quote": ["MADRS 24 h: 18 (6) vs 25 (7)"],
    "source_type": ["primary", "secondary"], "value_origin": ["table", "text"],
    "extraction_note": ["", "note"], "design": ["parallel", "crossover"],
    "period": ["all", "first"], "population": ["unipolar", "bipolar"],
    "trd": ["yes", "no", "unclear"], "concomitant_ad": ["yes", "no"],
    "control": ["saline", "midazolam"], "drug": ["ketamine", "esketamine"],
    "route": ["iv", "intranasal"], "dose": ["0.5 mg/kg"], "scale": ["MADRS", "HAMD17"],
    "lower_is_better": ["yes", "no", ""], "arm": ["ketamine", "saline", "esketamine"],
    "arm_role": ["treatment", "control", "treatment", "control", "contrast"],
    "outcome": ["score", "score", "response", "remission"],
    "time_hours": ["4", "24", "26", "72", "168", "336", "48"], "time_as_reported": ["24 h"],
    "n": ["20", "15", "2", ""], "stat_kind": ["final", "change"],
    "mean": ["18.0", "25.5", "-3.2", ""], "sd": ["6.0", "7.5", "", "0.5"],
    "se": ["", "1.4"], "ci_low": ["", "15.2"], "ci_high": ["", "20.8"],
    "ci_level": ["", "0.95"], "events": ["", "5", "0"], "effect": ["", "-0.8", "0.4"],
    "effect_type": ["", "g", "d", "md"], "effect_se": ["", "0.3"], "effect_var": ["", "0.09"],
    "n_treatment": ["", "20"], "n_control": ["", "20"], "r_within": ["", "0.5", "-0.3"],
    "timepoint": ["", "24h", "7d", "9d"], "yi": ["0.5", "-0.3", "1.2"],
    "vi": ["0.04", "0.1", ""], "sei": ["", "0.2"], "n_total": ["", "40"],
    "measure": ["", "SMD"],
}  # fmt: skip
HOSTILE = [
    "", " ", "NA", ".", "-", "n.r.", "#DIV/0!", "0", "-0", "1", "-1", "1e-300", "1e300", "1e400",
    "-1e308", "nan", "inf", "-inf", "1e-9", "0.0000001", "1,5", "\u22121.5", "50%", "yes", "no",
    "TRUE", "null", "~", "[1, 2]", "{a: b}", "'", '"', "a;b", "a:b", "\x00", "\t", "\r", "\n",
    "1e9", "-1e9", "1e-6", "1e-12", "1e18", "999999999", "0.000001",
    "\u00e9", "\u65e5\u672c", "\U0001f600", "<script>", "=1+1", "9" * 400, "x" * 3000,
]  # fmt: skip


def _cell(rng: random.Random, column: str, hostility: float) -> str:
    roll = rng.random()
    if roll < hostility:
        return rng.choice(HOSTILE)
    if roll < hostility * 1.4:
        return "".join(chr(rng.randrange(1, 0x3000)) for _ in range(rng.randrange(0, 12)))
    if roll < hostility * 1.8:
        return rng.choice(
            [repr(rng.uniform(-1e6, 1e6)), f"{rng.uniform(-9, 9):.3f}e{rng.randrange(-330, 330)}"]
        )
    return rng.choice(PLAUSIBLE.get(column, ["", "x"]))


def _coherent_rows(rng: random.Random, fmt: str) -> list[dict[str, str]]:
    """A valid starting sheet: studies with a treatment and a control arm (or yi/vi rows)."""
    rows = []
    for k in range(rng.randrange(1, 5)):
        study = {c: rng.choice(PLAUSIBLE[c]) for c in EXTRACTION}
        study.update(study_id=f"S{k}", arm_role="treatment", outcome="score", stat_kind="final",
                     effect="", effect_type="", effect_se="", effect_var="", events="",
                     timepoint="", n_treatment="", n_control="", se="", ci_low="", ci_high="",
                     ci_level="", n=rng.choice(["12", "20", "35"]))  # fmt: skip
        times = rng.sample(PLAUSIBLE["time_hours"], rng.randrange(1, 3))
        for t in times:
            if fmt == "minimal":
                rows.append({**study, "time_hours": t, "yi": rng.choice(PLAUSIBLE["yi"]),
                             "vi": rng.choice(["0.04", "0.1", "0.25"]), "sei": ""})  # fmt: skip
                continue
            for role, arm in (("treatment", "ketamine"), ("control", "saline")):
                rows.append({**study, "time_hours": t, "arm_role": role, "arm": arm,
                             "mean": f"{rng.uniform(5, 30):.1f}",
                             "sd": f"{rng.uniform(2, 9):.1f}"})  # fmt: skip
    return rows


def random_sheet(rng: random.Random) -> tuple[bytes, str]:
    """A random sheet (bytes to write) and its format ('extraction' or 'minimal')."""
    fmt = rng.choice(["extraction", "minimal"])
    columns = EXTRACTION if fmt == "extraction" else MINIMAL
    drop = rng.choice([0.0, 0.0, 0.0, 0.02, 0.3])
    keep = [c for c in columns if rng.random() >= drop]
    if rng.random() < 0.1:  # an unknown or misspelt column
        keep.insert(rng.randrange(len(keep) + 1), rng.choice(["stdy_id", "rob", "sd ", "Mean"]))
    if not keep:
        keep = ["study_id"]
    hostility = rng.choice([0.0, 0.0, 0.0, 0.002, 0.005, 0.02, 0.1, 0.4])
    rows = [
        [_cell(rng, c, hostility) if rng.random() < hostility * 3 else r.get(c, "") for c in keep]
        for r in _coherent_rows(rng, fmt)
    ]
    for _ in range(rng.choice([0, 0, 0, 0, 0, 1, 2])):  # duplicates, exact or with one cell changed
        copy = list(rng.choice(rows))
        if rng.random() < 0.5:
            i = rng.randrange(len(copy))
            copy[i] = _cell(rng, keep[i], 0.5)
        rows.insert(rng.randrange(len(rows) + 1), copy)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator=rng.choice(["\n", "\r\n"]))
    writer.writerow(keep)
    for row in rows:
        if rng.random() < 0.02:  # a ragged row
            row = row[: rng.randrange(len(row) + 1)] + ["extra"] * rng.randrange(2)
        writer.writerow(row)
    text = buf.getvalue()
    encoding = rng.choice(["utf-8"] * 8 + ["utf-8-sig", "utf-16", "latin-1", "cp1252"])
    return text.encode(encoding, errors="replace"), fmt


def run_stages(path: Path) -> None:
    """The workflow's stages, each inside `exit_on_error` exactly as its script is."""
    with exit_on_error(None, "ingest_sheets"):
        rows = read_sheets([path.name], root=path.parent)
    with exit_on_error(None, "select_windows"):
        check_effect_columns(rows, SUBGROUPS, CONFIG["sensitivity"]["subsets"])
        windowed = select_windows(rows, WINDOWS, "closest_to_nominal", {}, [])
    with exit_on_error(None, "effect_sizes"):
        sheet = windowed.rows[windowed.rows["sheet_format"] == "extraction"]
        effects, excluded = compute_effects(sheet, crossover_r=0.5)
        pre = precomputed_effects(windowed.rows)
        effects = sort_effects(pd.concat([effects, pre], ignore_index=True), TIMEPOINTS)
        exclusions = pd.concat(
            [windowed.excluded, excluded.assign(stage="effects")], ignore_index=True
        )
        accounting = row_accounting(rows, effects, exclusions)
    total = accounting.iloc[-1]
    assert total["rows_in"] == len(rows) == total["rows_used"] + total["rows_excluded"]
    assert np.isfinite(effects["yi"].to_numpy(float)).all()
    assert (effects["vi"].to_numpy(float) > 0).all()
    with exit_on_error(None, "pool_timepoints"):
        pooled = pool_by_timepoint(effects, TIMEPOINTS, subgroups=SUBGROUPS, **FIT)
        subgroup_tests(effects, pooled, TIMEPOINTS, SUBGROUPS, **FIT)
    fitted = pooled[pooled["k"] > 0]
    for column in ("estimate", "ci_low", "ci_high"):
        values = fitted[column].to_numpy(float)
        # a pooled number is finite, or NA with the reason in `warnings`
        assert (np.isfinite(values) | (fitted["warnings"].str.len() > 0).to_numpy()).all()
        assert not np.isinf(values).any()
    with exit_on_error(None, "proportions"):
        props, _ = compute_proportions(sheet)
        pool_proportions(props, TIMEPOINTS, subgroups={}, **FIT)


ERROR_LINE = re.compile(r"^[a-z_]+: ERROR: " + re.escape(SHEET_NAME) + r", line \d+(, |: )")


def check_sheet(data: bytes, workdir: Path) -> str:
    """Run one sheet; return 'ok' or 'error'; fail the test on anything else."""
    path = workdir / SHEET_NAME
    path.write_bytes(data)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # overflow / invalid value: a bug here
        try:
            run_stages(path)
        except SystemExit as stop:
            lines = err.getvalue().splitlines()
            assert stop.code == 1, lines
            assert len(lines) == 1, lines
            assert "unexpected error" not in lines[0], lines[0]
            assert ERROR_LINE.match(lines[0]), lines[0]
            assert len(lines[0]) < 1200, lines[0]  # an excerpt, not the cell
            return "error"
    assert err.getvalue() == "", err.getvalue()
    return "ok"


COUNTS: dict[str, int] = {"ok": 0, "error": 0}


def _property(rng: random.Random, tmp_path_factory: pytest.TempPathFactory) -> None:
    data, _ = random_sheet(rng)
    COUNTS[check_sheet(data, tmp_path_factory.mktemp("h", numbered=True))] += 1


QUICK = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
LONG = settings(
    max_examples=int(os.environ.get("HOSTILE_EXAMPLES", "300")),
    derandomize=bool(os.environ.get("CI")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@QUICK
@given(rng=st.randoms(use_true_random=False))
def test_random_sheets_end_cleanly_quick(rng, tmp_path_factory) -> None:
    _property(rng, tmp_path_factory)


@pytest.mark.slow
@LONG
@given(rng=st.randoms(use_true_random=False))
def test_random_sheets_end_cleanly_long(rng, tmp_path_factory) -> None:
    _property(rng, tmp_path_factory)


@pytest.fixture(scope="module", autouse=True)
def _print_counts():
    """Print how many generated sheets ran clean / ended in one error line (with -s)."""
    yield
    print(f"\nhostile sheets: {COUNTS['ok']} clean runs, {COUNTS['error']} one-line errors")


def test_report_counts() -> None:
    """Not a check: prints how many generated sheets ran clean / ended in one error line."""
    print(f"\nhostile sheets so far: {COUNTS['ok']} clean runs, {COUNTS['error']} one-line errors")


# ---- a handful through the real command line --------------------------------------------------
def _project(dest: Path) -> Path:
    return copy_project(dest)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [3, 11, 29, 47, 101])
def test_random_sheets_through_the_cli(seed: int, tmp_path: Path) -> None:
    project = _project(tmp_path)
    rng = random.Random(seed)
    data, _ = random_sheet(rng)
    (project / "data" / "raw" / SHEET_NAME).write_bytes(data)
    target = ["results/tables/row_accounting.csv", "results/tables/pooled_by_timepoint.csv"]
    proc = snakemake(project, *target, "--config", f"studies=data/raw/{SHEET_NAME}", timeout=900)
    assert "unexpected error" not in proc.stderr and "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ": ERROR: " in ln]
    if proc.returncode == 0:
        assert not errors
        acc = pd.read_csv(project / "results" / "tables" / "row_accounting.csv")
        total = acc.iloc[-1]
        assert total["rows_in"] == total["rows_used"] + total["rows_excluded"]
    else:
        assert len(errors) == 1, proc.stderr
        assert re.match(r"^[a-z_]+: ERROR: data/raw/sheet\.csv, line \d+", errors[0]), errors
