"""Bad inputs: every problem stops the run with one plain line, or is excluded with its reason.

The corpus is tests/data/bad (written by make_corpus.py); tests/data/bad/manifest.yaml says, for
each file, the expected message, line and column (or exclusion reason, or that it is accepted).
Cases run through the package functions the workflow scripts call (fast); a few go through the
real `snakemake` command line to show that the user sees the same single line and no traceback.
"""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from pipeline_helpers import copy_project, run_pipeline, shipped_config, snakemake

from timecourse_meta.errors import ConfigError, SheetError
from timecourse_meta.pipeline.claims_config import load_claims
from timecourse_meta.pipeline.config import (
    check_config,
    check_config_files,
    load_yaml,
    normalise_command_line,
    output_dir,
)
from timecourse_meta.pipeline.tables import provenance_table, to_csv_text, to_markdown_text
from timecourse_meta.pipeline.windows import check_effect_columns

ROOT = Path(__file__).resolve().parents[1]
BAD = ROOT / "tests" / "data" / "bad"
MANIFEST = yaml.safe_load((BAD / "manifest.yaml").read_text(encoding="utf-8"))["cases"]
BASE_CONFIG = shipped_config("ketamine")  # config/ketamine.yaml over the neutral default
SCHEMA = load_yaml(ROOT / "config" / "schema" / "config.schema.yaml")


def cases(kind: str) -> list:
    return [pytest.param(c, id=c["file"]) for c in MANIFEST if c["kind"] == kind]


def label(name: str) -> str:
    return f"tests/data/bad/{name}"


def test_manifest_covers_the_corpus() -> None:
    files = {p.name for p in BAD.iterdir() if p.suffix in (".csv", ".yaml")} - {"manifest.yaml"}
    listed = [c["file"] for c in MANIFEST]
    assert len(listed) == len(set(listed))
    assert set(listed) == files
    errors = [c for c in MANIFEST if c["kind"] in ("sheet", "config")]
    assert len(errors) >= 40
    kinds = {"sheet", "config", "exclusion", "accept", "claims", "stage_config"}
    assert {c["kind"] for c in MANIFEST} == kinds


@pytest.mark.parametrize("case", cases("sheet"))
def test_sheet_error_names_file_line_column(case: dict) -> None:
    with pytest.raises(SheetError) as info:
        run_pipeline([label(case["file"])], ROOT, **case.get("options", {}))
    err = info.value
    message = str(err)
    assert "\n" not in message and "Traceback" not in message
    where = f"{label(case['file'])}, line {case['line']}"
    if case["column"] is not None:
        where += f", column '{case['column']}'"
    assert message.startswith(where + ": "), message
    assert case["message"] in message, message
    assert (err.file, err.line, err.column) == (label(case["file"]), case["line"], case["column"])


def _accounted(run) -> None:
    """rows in = rows analysed + rows excluded, each row exactly once."""
    total = run.accounting.iloc[-1]
    assert total["source_file"] == "TOTAL"
    assert total["rows_in"] == len(run.rows) == total["rows_used"] + total["rows_excluded"]
    assert total["rows_excluded"] == len(run.exclusions)


@pytest.mark.parametrize("case", cases("exclusion"))
def test_excluded_rows_carry_their_reason(case: dict) -> None:
    run = run_pipeline([label(case["file"])], ROOT, **case.get("options", {}))
    _accounted(run)
    assert len(run.effects) == case["effects"]
    got = run.exclusions
    assert got["source_row"].tolist() == [e["line"] for e in case["excluded"]]
    for expected, row in zip(case["excluded"], got.itertuples(index=False), strict=True):
        assert row.stage == expected["stage"]
        assert expected["reason"] in row.reason
        assert row.source_file == label(case["file"])
    # the exclusions table as the workflow writes it keeps the reason readable
    text = to_csv_text(got)
    assert all(e["reason"].split(" (")[0] in text for e in case["excluded"])


@pytest.mark.parametrize("case", cases("accept"))
def test_accepted_inputs(case: dict) -> None:
    run = run_pipeline([label(case["file"])], ROOT)
    _accounted(run)
    assert len(run.rows) == case["rows"]
    assert len(run.effects) == case["effects"]
    assert run.exclusions.empty
    if "study_ids" in case:
        assert run.rows["study_id"].tolist() == case["study_ids"]
    if "lines" in case:
        assert run.rows["source_row"].tolist() == case["lines"]


def config_of_case(path: Path) -> dict:
    """What the workflow does with a --configfile: safe re-read, merge over the defaults, check."""
    check_config_files([path])
    overlay = load_yaml(path)
    merged = {**BASE_CONFIG, **overlay}
    return check_config(merged, SCHEMA, ROOT)


@pytest.mark.parametrize("case", cases("config"))
def test_config_error_names_key(case: dict) -> None:
    with pytest.raises(ConfigError) as info:
        config_of_case(BAD / case["file"])
    message = str(info.value)
    assert "\n" not in message
    prefix = f"config '{case['key']}': " if case["key"] else "config: "
    assert message.startswith(prefix), message
    assert case["message"] in message, message
    assert info.value.key == case["key"]


CLAIMS_SCHEMA = load_yaml(ROOT / "config" / "schema" / "claims.schema.yaml")
WINDOW_LABELS = [w["label"] for w in BASE_CONFIG["windows"]]


@pytest.mark.parametrize("case", cases("claims"))
def test_claims_file_error_is_one_line(case: dict) -> None:
    """The claims file is checked against claims.schema.yaml and the configured windows and
    subgroups before any rule runs; a wrong shape is one line naming the claim, not a crash."""
    with pytest.raises(ConfigError) as info:
        load_claims(
            BAD / case["file"],
            CLAIMS_SCHEMA,
            WINDOW_LABELS,
            list(BASE_CONFIG["subgroups"]),
            shown=label(case["file"]),
        )
    message = str(info.value)
    prefix = f"config '{case['key']}': " if case["key"] else "config: "
    assert "\n" not in message and message.startswith(prefix), message
    assert case["message"] in message, message


def test_shipped_claims_pass() -> None:
    claims = load_claims(
        ROOT / "config" / "claims.yaml",
        CLAIMS_SCHEMA,
        WINDOW_LABELS,
        list(BASE_CONFIG["subgroups"]),
    )
    assert len(claims) >= 5


@pytest.mark.parametrize("case", cases("stage_config"))
def test_subset_and_subgroup_columns_checked_early(case: dict, tmp_path: Path) -> None:
    """Columns named by subgroups / sensitivity subsets are checked at the windows stage against
    the sheets' columns (as `include` is), not by a KeyError in pooling minutes later."""
    sheet = BAD / "ok_bom.csv"
    if case.get("sheet_column"):  # a column only the sheet has (e.g. a risk-of-bias rating)
        lines = sheet.read_text(encoding="utf-8-sig").splitlines()
        lines = [lines[0] + "," + case["sheet_column"]] + [ln + ",low" for ln in lines[1:]]
        sheet = tmp_path / "with_column.csv"
        sheet.write_text("\n".join(lines) + "\n", encoding="utf-8")
    settings = {**BASE_CONFIG, **load_yaml(BAD / case["file"])}
    rows = run_pipeline([sheet]).rows
    with pytest.raises(ConfigError) as info:
        check_effect_columns(
            rows, settings["subgroups"], (settings.get("sensitivity") or {}).get("subsets")
        )
    assert str(info.value).startswith(f"config '{case['key']}': "), str(info.value)
    assert case["message"] in str(info.value)


def test_shipped_subsets_and_subgroups_pass() -> None:
    rows = run_pipeline([BAD / "ok_bom.csv"]).rows
    check_effect_columns(rows, BASE_CONFIG["subgroups"], BASE_CONFIG["sensitivity"]["subsets"])


def test_semicolon_file_name_keeps_structured_provenance() -> None:
    """Row ids are (source_file, source_row) pairs: a ';' or ':' in a file name is harmless."""
    name = label("ok_semi;colon name.csv")
    run = run_pipeline([name], ROOT)
    _accounted(run)
    table = provenance_table(run.effects, run.rows)
    assert set(table["note"]) == {""}
    assert sorted(table["row_id"]) == sorted(f"{name}:{line}" for line in (2, 3, 4, 5))


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_special_files_are_one_line(kind: str, tmp_path: Path) -> None:
    """A directory or a named pipe given as a sheet: one line, and a FIFO is never opened."""
    import os

    path = tmp_path / "sheet.csv"
    if kind == "directory":
        path.mkdir()
        expected = "is a directory, not a sheet file (a CSV file)"
    else:
        os.mkfifo(path)
        expected = "is a named pipe (FIFO), not a sheet file (a CSV file)"
    with pytest.raises(SheetError, match=re.escape(expected)):
        run_pipeline([path])
    with pytest.raises(ConfigError, match=re.escape(f"'sheet.csv' {expected}")):
        check_config({**BASE_CONFIG, "studies": "sheet.csv"}, SCHEMA, tmp_path)


def test_shipped_config_passes() -> None:
    settings = config_of_case(ROOT / "config" / "ketamine.yaml")
    assert settings["results_dir"] == "results"
    assert settings["processed_dir"] == "data/processed"
    assert list(settings["windows"]["label"]) == ["4h", "24h", "3d", "7d", "14d"]


def test_python_tag_is_refused_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    bad = tmp_path / "evil.yaml"
    bad.write_text(f"method: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigError, match="YAML tag '!!python/object/apply:os.system'"):
        load_yaml(bad)
    assert not marker.exists()


def test_yaml_is_only_loaded_safely() -> None:
    """No unsafe YAML loader anywhere in the package or the workflow (safe_load only)."""
    unsafe = re.compile(r"yaml\.(load|load_all|full_load|unsafe_load)\(|FullLoader|UnsafeLoader")
    sources = [*(ROOT / "src").rglob("*.py"), *(ROOT / "workflow").rglob("*.py")]
    sources += [*(ROOT / "workflow").rglob("*.smk"), ROOT / "workflow" / "Snakefile"]
    hits = [str(p) for p in sources if unsafe.search(p.read_text(encoding="utf-8"))]
    assert not hits


def test_symlink_inside_results_cannot_lead_outside(tmp_path: Path) -> None:
    project, outside = tmp_path / "project", tmp_path / "outside"
    (project / "results").mkdir(parents=True)
    (project / "data" / "processed").mkdir(parents=True)
    outside.mkdir()
    (project / "results" / "escape").symlink_to(outside, target_is_directory=True)
    (project / "results" / "inner").symlink_to(project / "data" / "processed")
    with pytest.raises(ConfigError) as info:
        output_dir("results/escape", "results_dir", project)
    assert str(info.value) == (
        f"config 'results_dir': path 'results/escape' leads outside results/ and "
        f"data/processed/ through a symbolic link (to {outside.resolve()})"
    )
    with pytest.raises(ConfigError, match="must be inside results/ or data/processed/"):
        output_dir("escape_link", "results_dir", project)
    # links that stay inside the writable directories are fine
    assert output_dir("results/inner", "results_dir", project) == "results/inner"
    assert output_dir("results/run2", "results_dir", project) == "results/run2"
    assert output_dir("data/processed/run2", "processed_dir", project) == "data/processed/run2"


def test_html_in_study_names_is_inert_in_markdown() -> None:
    run = run_pipeline([label("ok_unicode_html_names.csv")], ROOT)
    md = to_markdown_text(run.effects[["study_id", "citation", "yi"]])
    assert "<script" not in md and "<b>" not in md
    assert "&lt;script>alert(1)&lt;/script>" in md
    assert "M\u00fcller \u2013 \u65e5\u672c & &lt;b>co&lt;/b>" in md  # Unicode kept as typed
    # CSV keeps the name exactly as typed (it is data, not markup)
    assert to_csv_text(run.effects[["study_id"]]).splitlines()[1] == "<script>alert(1)</script>"


# ---- size ------------------------------------------------------------------------------------
def write_big_sheet(path: Path, n_rows: int, *, bad_last_cell: bool = False) -> None:
    """n_rows valid arm rows: 10 per study (2 arms x 5 windows); optionally a bad last SD."""
    source = (BAD / "ok_bom.csv").read_text(encoding="utf-8-sig").splitlines()
    header = next(csv.reader([source[0]]))
    treat, ctrl = (dict(zip(header, next(csv.reader([s])), strict=True)) for s in source[1:3])
    times = ["4", "24", "72", "168", "336"]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for i in range(n_rows):
            study, rest = divmod(i, 10)
            t, is_ctrl = divmod(rest, 2)
            row = dict(ctrl if is_ctrl else treat, study_id=f"S{study:06d}", time_hours=times[t])
            if bad_last_cell and i == n_rows - 1:
                row["sd"] = "0"
            writer.writerow([row[c] for c in header])


@pytest.mark.slow
def test_100000_rows_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    write_big_sheet(path, 100_000)
    start = time.perf_counter()
    run = run_pipeline([path])
    seconds = time.perf_counter() - start
    print(f"\n100 000-row sheet: ingest + windows + effect sizes in {seconds:.1f} s")
    _accounted(run)
    assert len(run.rows) == 100_000 and len(run.effects) == 50_000


@pytest.mark.slow
def test_100000_rows_with_one_bad_cell_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    write_big_sheet(path, 100_000, bad_last_cell=True)
    start = time.perf_counter()
    with pytest.raises(SheetError) as info:
        run_pipeline([path])
    seconds = time.perf_counter() - start
    print(f"\n100 000-row sheet, bad last cell: rejected in {seconds:.1f} s")
    assert str(info.value).endswith("line 100001, column 'sd': expected a number > 0 (found '0')")


# ---- through the real command line ----------------------------------------------------------


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project(tmp_path_factory.mktemp("bad_cli"))


@pytest.mark.slow
def test_cli_sheet_error_is_one_line(project: Path) -> None:
    shutil.copy2(BAD / "latin1.csv", project / "data" / "raw" / "latin1.csv")
    proc = snakemake(
        project, "data/processed/rows.parquet", "--config", "studies=data/raw/latin1.csv"
    )
    assert proc.returncode != 0
    expected = (
        "ingest_sheets: ERROR: data/raw/latin1.csv, line 4, column 'citation': is not UTF-8 "
        "text (save the sheet as 'CSV UTF-8'); byte 0xfc cannot be decoded (found "
        "'M\ufffdller B et al. Test fixture 2023')"
    )
    assert expected in proc.stderr.splitlines()
    assert "Traceback" not in proc.stderr + proc.stdout


@pytest.mark.slow
def test_cli_config_error_is_one_line(project: Path) -> None:
    proc = snakemake(project, "-n", "--config", "method=BOGUS")
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "Error: config 'method': 'BOGUS' is not one of "
        "['FE', 'DL', 'HE', 'HS', 'SJ', 'PM', 'EB', 'ML', 'REML']"
    ]
    assert "Traceback" not in proc.stdout and 'File "' not in proc.stdout + proc.stderr


@pytest.mark.slow
def test_cli_python_tags_are_refused(project: Path) -> None:
    marker = project / "PWNED"
    evil = project / "evil.yaml"
    evil.write_text(f"method: !!python/object/apply:os.system ['touch {marker}']\n")
    proc = snakemake(project, "-n", "--configfile", "evil.yaml")
    assert proc.returncode != 0 and not marker.exists()
    assert "Traceback" not in proc.stdout + proc.stderr
    # Snakemake's own loader refuses object/apply tags before the workflow runs; tags it would
    # accept (python/name) are refused by the workflow's safe re-read, with file and position.
    shutil.copy2(BAD / "config_python_name.yaml", project / "name.yaml")
    proc = snakemake(project, "-n", "--configfile", "name.yaml")
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "Error: config: name.yaml, line 1, column 9: YAML tag '!!python/name:os.system' is not "
        "allowed; the configuration must be plain YAML (keys, lists, text, numbers, true/false)"
    ]


# ---- round two through the real command line (slow: one snakemake run each) ------------------
CLI_SHEETS = [  # (corpus file, stage that refuses it)
    ("pre_duplicate_other_numbers.csv", "select_windows"),  # after the exclusion filters
    ("pre_vi_1e-300.csv", "ingest_sheets"),
    ("mean_huge.csv", "ingest_sheets"),
    ("r_within_one.csv", "ingest_sheets"),
    ("binary_bytes.csv", "ingest_sheets"),
]


def _case(name: str) -> dict:
    return next(c for c in MANIFEST if c["file"] == name)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "stage"), CLI_SHEETS)
def test_cli_round_two_sheet_errors(project: Path, name: str, stage: str) -> None:
    shutil.copy2(BAD / name, project / "data" / "raw" / name)
    target = "data/processed/rows_windowed.parquet"  # duplicates: refused by select_windows
    proc = snakemake(project, target, "--config", f"studies=data/raw/{name}")
    assert proc.returncode != 0
    assert "unexpected error" not in proc.stderr and "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ": ERROR: " in ln]
    case = _case(name)
    where = f"{stage}: ERROR: data/raw/{name}, line {case['line']}"
    assert len(errors) == 1 and errors[0].startswith(where), proc.stderr
    assert case["message"].replace("tests/data/bad/", "data/raw/") in errors[0]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "files", "expected"),
    [
        (["--config", "crossover_r=1"], {}, "Error: config 'crossover_r': expected a number > -1 "
         "and < 1 (found 1): within-person correlation assumed for crossover trials"),
        (["--configfile", "dk.yaml"], {"dk.yaml": "config_duplicate_key.yaml"},
         "Error: config: dk.yaml: key 'method' is given twice in one mapping, on line 1 and on "
         "line 3; YAML would silently keep only the last one: delete or merge one of them"),
        (["--config", "claims_file=config/c.yaml"], {"config/c.yaml": "claims_plain_string.yaml"},
         "Error: config 'claims_file': config/c.yaml, claim 1: expected a mapping (key: value), "
         "found the text 'Ketamine works at 24 h'"),
        (["--config", "claims_file=config/c.yaml"], {"config/c.yaml": "claims_levels_true.yaml"},
         "Error: config 'claims_file': config/c.yaml, claim 1 (id 'a'), levels: expected a "
         "list, found True"),
    ],
)  # fmt: skip
def test_cli_round_two_config_errors(
    project: Path, args: list[str], files: dict[str, str], expected: str
) -> None:
    for dest, name in files.items():
        shutil.copy2(BAD / name, project / dest)
    proc = snakemake(project, "-n", *args)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), lines


@pytest.mark.slow
def test_cli_directory_as_sheet(project: Path) -> None:
    (project / "data" / "raw" / "folder.csv").mkdir(exist_ok=True)
    proc = snakemake(project, "-n", "--config", "studies=data/raw/folder.csv")
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "Error: config 'studies': 'data/raw/folder.csv' is a directory, not a sheet file "
        "(a CSV file)"
    ]


@pytest.mark.slow
def test_cli_subgroup_null_on_the_command_line(project: Path) -> None:
    """Snakemake reads `--config subgroups="{trd: null}"` as the text 'null': taken as null."""
    proc = snakemake(project, "-n", "--config", "subgroups={trd: null}")
    assert proc.returncode == 0, proc.stderr


def test_command_line_null_text_is_null() -> None:
    config = {"subgroups": {"trd": "null", "drug": ["ketamine", "esketamine"], "x": "~"}}
    normalise_command_line(config)
    assert config["subgroups"] == {"trd": None, "drug": ["ketamine", "esketamine"], "x": None}


@pytest.mark.slow
def test_cli_subset_on_unknown_column_fails_early(project: Path) -> None:
    shutil.copy2(BAD / "config_subset_misspelt_column.yaml", project / "s.yaml")
    proc = snakemake(project, "data/processed/rows_windowed.parquet", "--configfile", "s.yaml")
    assert proc.returncode != 0
    errors = [ln for ln in proc.stderr.splitlines() if ": ERROR: " in ln]
    assert errors == [
        "select_windows: ERROR: config 'sensitivity.subsets.0.exclude.contrl': unknown column "
        "'contrl' (not in the sheets); did you mean 'control'?"
    ]


def _full_run(project: Path, *args: str) -> subprocess.CompletedProcess:
    proc = snakemake(project, *args)
    assert "unexpected error" not in proc.stderr and "Traceback" not in proc.stderr
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.mark.slow
def test_cli_all_studies_excluded_finishes_with_a_warning(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    (project / "none.yaml").write_text("include: {control: [none_such]}\n", encoding="utf-8")
    proc = _full_run(project, "--configfile", "none.yaml")
    assert any(
        ln.startswith("effect_sizes: WARNING: no effect sizes: all ")
        for ln in proc.stderr.splitlines()
    )
    tables = project / "results" / "tables"
    claims = pd.read_csv(tables / "claims.csv", keep_default_na=False)
    assert set(claims["verdict"]) == {"not testable"}
    assert pd.read_csv(tables / "effects.csv").empty
    acc = pd.read_csv(tables / "row_accounting.csv").iloc[-1]
    assert acc["rows_used"] == 0 and acc["rows_in"] == acc["rows_excluded"]


@pytest.mark.slow
def test_cli_one_window_with_a_unicode_label(tmp_path: Path) -> None:
    """Contrasts default to `auto` (derived from the windows); shipped claims at windows that
    are not configured are "not testable" with the reason, not a failure."""
    project = copy_project(tmp_path)
    (project / "w.yaml").write_text(
        'windows:\n  - {label: "Tag 1 \u00fc", low: 18, high: 30, nominal: 24}\n', encoding="utf-8"
    )
    _full_run(project, "--configfile", "w.yaml")
    claims = pd.read_csv(project / "results" / "tables" / "claims.csv", keep_default_na=False)
    assert set(claims["verdict"]) == {"not testable"}
    assert claims["details"].str.contains("is not a configured window").all()
    assert (project / "results" / "figures" / "forest_Tag 1 \u00fc.png").exists()


@pytest.mark.slow
def test_cli_semicolon_in_sheet_name(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    name = "data/raw/a;b.csv"
    shutil.copy2(project / "data" / "raw" / "ketamine_trials.csv", project / name)
    _full_run(project, "results/tables/provenance.csv", "--config", f"studies={name}")
    acc = pd.read_csv(project / "results" / "tables" / "row_accounting.csv")
    assert acc.iloc[0]["source_file"] == name
    assert acc.iloc[-1]["rows_in"] == acc.iloc[-1]["rows_used"] + acc.iloc[-1]["rows_excluded"]
    prov = pd.read_csv(project / "results" / "tables" / "provenance.csv", keep_default_na=False)
    assert prov["row_id"].str.startswith(f"{name}:").all() and set(prov["note"]) == {""}
