"""A review team's own sheet gets in: input paths outside the project, column aliases and time
units, sheets without a source, CSV dialects, arm-level (MBNMAtime) data and Metapsy tables.

Fast tests call the package functions the workflow scripts call; one slow test runs snakemake
on a foreign sheet outside the project that needs several of these at once.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pipeline_helpers import copy_project, shipped_config
from scipy import special

from timecourse_meta.errors import ConfigError, SheetError
from timecourse_meta.pipeline.config import check_config, input_file, load_yaml
from timecourse_meta.pipeline.effect_table import build_effect_table
from timecourse_meta.pipeline.importers.__main__ import main as importer_main
from timecourse_meta.pipeline.importers.metapsy import R_NO_G, metapsy_to_precomputed
from timecourse_meta.pipeline.ingest import read_sheets, sheet_warnings
from timecourse_meta.pipeline.sheet_layouts import UNSOURCED, UNSOURCED_COLUMNS
from timecourse_meta.pipeline.tables import provenance_table
from timecourse_meta.pipeline.windows import parse_windows, select_windows

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = load_yaml(ROOT / "config" / "schema" / "config.schema.yaml")
BASE_CONFIG = shipped_config("ketamine")  # the ketamine analysis: its sheets exist
EXAMPLES = ROOT.parent / "shared" / "data" / "timecourse_examples"


def write(tmp_path: Path, text: str, name: str = "sheet.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(*args: object, **kwargs: object) -> str:
    with pytest.raises(SheetError) as info:
        read_sheets(*args, **kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    return message


def effects_of(rows: pd.DataFrame, hours: list[float], **options: object) -> object:
    """Windows of one time each (label = the hours), then the effects stage."""
    windows = [{"label": f"{h:g}h", "low": h, "high": h, "nominal": h} for h in sorted(hours)]
    table = parse_windows(windows)
    win = select_windows(rows, table, "closest_to_nominal", None, None)
    return build_effect_table(rows, win.rows, win.excluded, list(table["label"]), **options)


# ---- 1. read-only inputs anywhere readable, outputs confined ---------------------------------
def test_absolute_input_outside_the_project_is_accepted_as_given(tmp_path: Path) -> None:
    sheet = write(tmp_path, "study,yi,vi,time\nA,0.5,0.04,24\n")
    config = {**BASE_CONFIG, "studies": str(sheet)}
    settings = check_config(config, SCHEMA, ROOT)
    assert settings["studies"] == [str(sheet)]  # the path as given: provenance records it so
    (tmp_path / "project").mkdir()
    assert input_file(f"../{sheet.name}", "studies", tmp_path / "project") == f"../{sheet.name}"


def test_missing_input_file_is_one_line_naming_key_and_path(tmp_path: Path) -> None:
    missing = tmp_path / "review" / "sheet.csv"
    for key in ("studies", "claims_file", "published", "risk_of_bias"):
        with pytest.raises(ConfigError) as info:
            check_config({**BASE_CONFIG, key: str(missing)}, SCHEMA, ROOT)
        assert str(info.value) == (
            f"config '{key}': file '{missing}' not found (a relative path is relative to the "
            "project folder)"
        )


def test_output_dirs_stay_inside_the_project(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must be relative to the project"):
        check_config({**BASE_CONFIG, "results_dir": str(tmp_path)}, SCHEMA, ROOT)


# ---- 2. column aliases and time units ---------------------------------------------------------
def test_metafor_yi_vi_sheet_is_read_with_aliases(tmp_path: Path) -> None:
    path = write(tmp_path, "study,citation,yi,sei,time\nA,A 2001,0.5,0.2,4\nB,B 2002,0.3,0.1,2\n")
    rows = read_sheets([path], time_unit="weeks")
    assert rows["study_id"].tolist() == ["A", "B"]
    assert rows["time_hours"].tolist() == [4 * 168.0, 2 * 168.0]
    assert rows["time_as_reported"].tolist() == ["4 weeks", "2 weeks"]
    assert rows["sei"].tolist() == [0.2, 0.1]
    assert (rows["sheet_format"] == "precomputed").all()
    # without the config key a plain time column is in hours
    assert read_sheets([path])["time_hours"].tolist() == [4.0, 2.0]
    # `se` is the SE of yi in a yi sheet
    se = write(tmp_path, "studlab,citation,yi,se,days\nA,A 2001,0.5,0.2,3\n", "se.csv")
    rows = read_sheets([se])
    assert rows["sei"].tolist() == [0.2] and rows["time_hours"].tolist() == [72.0]


@pytest.mark.parametrize(
    ("column", "value", "hours", "reported"),
    [
        ("week", "2", 336.0, "2 weeks"),
        ("weeks", "0.5", 84.0, "0.5 weeks"),
        ("day", "1", 24.0, "1 day"),
        ("hours", "240", 240.0, "240 hours"),
        ("timepoint", "6", 6.0, "6 hours"),  # numeric timepoint: a time (hours by default)
    ],
)
def test_time_columns_and_their_units(
    tmp_path: Path, column: str, value: str, hours: float, reported: str
) -> None:
    path = write(tmp_path, f"trial,doi,yi,vi,{column}\nA,10.1/x,0.5,0.04,{value}\n")
    rows = read_sheets([path])
    assert rows["study_id"].tolist() == ["A"]
    assert rows["time_hours"].tolist() == [hours]
    assert rows["time_as_reported"].tolist() == [reported]
    assert rows["timepoint"].tolist() == [""]  # not a window label


def test_time_unit_column_per_row(tmp_path: Path) -> None:
    text = (
        "author,citation,yi,vi,time,time_unit\nA,x,0.5,0.04,240,minutes\nB,x,0.5,0.04,2,day\n"
        "C,x,0.5,0.04,1,months\nD,x,0.5,0.04,24,\n"
    )
    rows = read_sheets([write(tmp_path, text)], time_unit="hours")
    assert rows["time_hours"].tolist() == [4.0, 48.0, 730.5, 24.0]
    bad = write(tmp_path, "study,citation,yi,vi,time,time_unit\nA,x,0.5,0.04,2,fortnights\n")
    assert error_of([bad]) == (
        f"{bad.as_posix()}, line 2, column 'time_unit': expected one of minutes, hours, days, "
        "weeks, months (found 'fortnights')"
    )


def test_window_label_timepoint_is_kept(tmp_path: Path) -> None:
    rows = read_sheets([write(tmp_path, "study,citation,yi,vi,timepoint\nA,x,0.5,0.04,24h\n")])
    assert rows["timepoint"].tolist() == ["24h"] and math.isnan(rows["time_hours"].iloc[0])


@pytest.mark.parametrize(
    ("header", "first", "second"),
    [
        ("study,trial,citation,yi,vi,time_hours", "study", "trial"),
        ("study_id,author,citation,yi,vi,time_hours", "study_id", "author"),
        ("study,citation,yi,vi,time,week", "time", "week"),
        ("study,citation,yi,vi,time_hours,hours", "time_hours", "hours"),
        ("study,citation,yi,vi,sei,se,time_hours", "sei", "se"),
    ],
)
def test_two_aliases_of_one_field_are_an_error_naming_both(
    tmp_path: Path, header: str, first: str, second: str
) -> None:
    values = ",".join(["1"] * len(header.split(",")))
    path = write(tmp_path, f"{header}\n{values}\n")
    message = error_of([path])
    assert message.startswith(f"{path.as_posix()}, line 1, column '{second}': columns '{first}' ")
    assert f"'{first}' and '{second}' both give" in message


# ---- 3. a sheet without any source column ---------------------------------------------------
def test_sheet_without_source_is_accepted_unsourced(tmp_path: Path) -> None:
    path = write(tmp_path, "study,yi,vi,time_hours\nA,0.5,0.04,24\nB,0.2,0.05,24\n")
    rows = read_sheets([path])
    for column in UNSOURCED_COLUMNS:
        assert (rows[column] == UNSOURCED).all(), column
    warnings = sheet_warnings(rows)
    assert len(warnings) == 1 and warnings[0].startswith(f"WARNING: {path.as_posix()}: no source")
    assert "(2 rows)" in warnings[0]
    out = effects_of(rows, [24.0])
    prov = provenance_table(out.effects, rows)
    assert len(prov) == 2
    for column in ("citation", "source_address", "source_locator", "source_quote"):
        assert (prov[column] == UNSOURCED).all(), column
    sourced = write(tmp_path, "study,citation,yi,vi,time_hours\nA,A 2001,0.5,0.04,24\n", "s.csv")
    assert sheet_warnings(read_sheets([sourced])) == []


# ---- 4. CSV dialects -------------------------------------------------------------------------
SEMICOLON = (
    "study;citation;yi;vi;days\nA;Müller 2001, Table 2;0,52;0,041;1,5\nB;B 2002;0,3;0,05;2\n"
)


def test_semicolon_sheet_with_decimal_commas_is_detected(tmp_path: Path) -> None:
    rows = read_sheets([write(tmp_path, SEMICOLON)])
    assert rows["yi"].tolist() == [0.52, 0.3]
    assert rows["vi"].tolist() == [0.041, 0.05]
    assert rows["time_hours"].tolist() == [36.0, 48.0]
    assert rows["citation"].tolist() == ["Müller 2001, Table 2", "B 2002"]  # text keeps its comma
    explicit = read_sheets([write(tmp_path, SEMICOLON)], csv_separator=";", decimal=",")
    assert explicit["yi"].tolist() == [0.52, 0.3]


def test_semicolon_sheet_with_decimal_points(tmp_path: Path) -> None:
    rows = read_sheets([write(tmp_path, "study;citation;yi;vi;time_hours\nA;x;0.5;0.04;24\n")])
    assert rows["yi"].tolist() == [0.5]


def test_decimal_mark_errors_name_file_line_column(tmp_path: Path) -> None:
    path = write(tmp_path, SEMICOLON)
    assert error_of([path], decimal=".") == (
        f"{path.as_posix()}, line 2, column 'days': expected a number with '.' as decimal mark "
        "(config decimal is '.': set it to ',' or auto to read decimal commas) (found '1,5')"
    )
    mixed = write(tmp_path, "study;citation;yi;vi;time_hours\nA;x;0,5;0.04;24\n", "mixed.csv")
    assert error_of([mixed]).startswith(
        f"{mixed.as_posix()}, line 2, column 'vi': expected a number with ',' as decimal mark"
    )
    comma = write(tmp_path, 'study,citation,yi,vi,time_hours\nA,x,"0,5",0.04,24\n', "comma.csv")
    assert error_of([comma]) == (
        f"{comma.as_posix()}, line 2, column 'yi': expected a number with '.' as decimal mark (a "
        "decimal comma in a comma-separated sheet: write '.', or save the sheet with ';' between "
        "fields, whose decimal commas are read) (found '0,5')"
    )


def test_tab_separated_needs_the_config_key(tmp_path: Path) -> None:
    path = write(tmp_path, "study\tcitation\tyi\tvi\ttime_hours\nA\tx\t0.5\t0.04\t24\n")
    assert "set config csv_separator" in error_of([path])
    assert read_sheets([path], csv_separator="\t")["yi"].tolist() == [0.5]


# ---- 5. arm-level minimal sheets (MBNMAtime layout) -------------------------------------------
# placebo + two doses at two times; placebo n = 60 is shared by the two dose comparisons
MBNMA = """studyID,treatment,time,y,se,n
S1,placebo,2,-2.0,0.5,60
S1,dose_10,2,-5.0,0.6,30
S1,dose_20,2,-6.0,0.7,32
S1,placebo,4,-2.5,0.55,58
S1,dose_10,4,-6.5,0.65,29
S1,dose_20,4,-7.0,0.75,31
"""


def hedges_g(m1: float, sd1: float, n1: float, m2: float, sd2: float, n2: float) -> float:
    """Hedges' g with the exact J (metafor escalc SMD), written out for the hand check."""
    df = n1 + n2 - 2
    sp = math.sqrt(((n1 - 1) * sd1**2 + (n2 - 1) * sd2**2) / df)
    j = math.exp(special.gammaln(df / 2) - special.gammaln((df - 1) / 2)) / math.sqrt(df / 2)
    return j * (m1 - m2) / sp


def test_arm_level_sheet_builds_multi_arm_comparisons(tmp_path: Path) -> None:
    path = write(tmp_path, MBNMA)
    rows = read_sheets(
        [path], control_arms=["Placebo"], stat_kind_default="change", time_unit="weeks"
    )
    assert (rows["sheet_layout"] == "arm-level").all()
    assert rows["arm_role"].tolist() == ["control", "treatment", "treatment"] * 2
    assert (rows["design"] == "parallel").all() and (rows["route"] == "not reported").all()
    assert (rows["citation"] == UNSOURCED).all()
    out = effects_of(rows, [336.0, 672.0])
    eff = out.effects
    assert out.exclusions.empty
    assert eff.groupby("timepoint").size().to_dict() == {"336h": 2, "672h": 2}
    assert sorted(set(eff["comparison_id"])) == ["S1 / dose_10", "S1 / dose_20"]
    assert eff["flags"].str.contains("control_split_2_ways").all()
    assert eff["flags"].str.contains("sd_from_se").all()
    # hand check: dose_10 vs placebo at 2 weeks; SD = SE sqrt(n), control n split 60 / 2 = 30,
    # lower is better (config default), so yi = -g
    row = eff[(eff["comparison_id"] == "S1 / dose_10") & (eff["timepoint"] == "336h")].iloc[0]
    g = hedges_g(-5.0, 0.6 * math.sqrt(30), 30, -2.0, 0.5 * math.sqrt(60), 30)
    assert row["yi"] == pytest.approx(-g, rel=1e-12)
    assert row["yi"] == pytest.approx(0.8244, abs=5e-4)  # -(-3 / 3.5917) x J(58)
    assert row["vi"] == pytest.approx(1 / 30 + 1 / 30 + g**2 / (2 * 60), rel=1e-12)
    assert row["n_control"] == 30 and row["n_treatment"] == 30


def test_arm_level_sheet_with_arm_role_column(tmp_path: Path) -> None:
    text = "study,arm,arm_role,week,mean,sd,n,stat_kind\nS,a,treatment,1,5,2,20,final\n" + (
        "S,b,control,1,6,2,20,final\n"
    )
    rows = read_sheets([write(tmp_path, text)])
    assert rows["arm_role"].tolist() == ["treatment", "control"]
    out = effects_of(rows, [168.0])
    assert len(out.effects) == 1 and out.exclusions.empty


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"stat_kind_default": "change"}, "which arm is the control?"),
        ({"control_arms": ["placebo"]}, "are the means final values or change from baseline?"),
    ],
)
def test_arm_level_sheet_needs_control_and_stat_kind(
    tmp_path: Path, options: dict, expected: str
) -> None:
    path = write(tmp_path, MBNMA)
    message = error_of([path], **options)
    assert message.startswith(f"{path.as_posix()}, line 1: arm-level sheet: {expected}")


def test_arm_level_registry_column_is_the_source(tmp_path: Path) -> None:
    text = "studyID,clinicaltrialGov_ID,treatment,time,y,se,n\nS,NCT0001,placebo,2,0,0.1,20\n" + (
        "S,NCT0001,drug,2,-1,0.1,20\n"
    )
    rows = read_sheets(
        [write(tmp_path, text)], control_arms=["placebo"], stat_kind_default="change"
    )
    assert rows["source_address"].tolist() == ["clinicaltrialgov_id: NCT0001"] * 2
    assert sheet_warnings(rows) == []


def test_alogliptin_rows_all_accounted() -> None:
    """MBNMAtime's alog_pcfb (14 RCTs, 5 doses vs placebo, weeks 2-40): every row is in a
    comparison or in the exclusions with a reason."""
    sheet = EXAMPLES / "alog_pcfb.csv"
    if not sheet.exists():
        pytest.skip(f"{sheet} not present (../shared data sets)")
    rows = read_sheets(
        [sheet], control_arms=["placebo"], stat_kind_default="change", time_unit="weeks"
    )
    assert len(rows) == 233 and rows["study_id"].nunique() == 14
    assert rows["source_address"].str.startswith("clinicaltrialgov_id: NCT").all()
    out = effects_of(rows, sorted(rows["time_hours"].unique()))
    used = {r["source_row"] for rec in out.effects["source_rows"] for r in rec}
    excluded = set(out.exclusions["source_row"])
    assert not used & excluded
    assert used | excluded == set(rows["source_row"])
    assert (out.exclusions["reason"] != "").all()
    total = out.accounting.iloc[-1]
    assert total["rows_in"] == 233 == total["rows_used"] + total["rows_excluded"]
    assert (out.effects["measure"] == "SMD").all() and len(out.effects) > 0
    assert out.effects["flags"].str.contains("control_split_").any()  # several doses, 1 placebo


# ---- 6. Metapsy comparison tables ---------------------------------------------------------------
METAPSY = pd.DataFrame(
    {
        "study": ["Ames 2001", "Ames 2001", "Ames 2001", "Bo 2010", "Cy 2012"],
        "condition_arm1": ["cbt", "pst", "cbt", "cbt", "cbt"],
        "condition_arm2": ["wl", "wl", "wl", "cau", "wl"],
        "multi_arm1": ["f2f", "internet", "f2f", "NA", "NA"],
        "multi_arm2": ["wl", "wl", "wl", "NA", "NA"],
        "outcome_type": ["msd"] * 5,
        "instrument": ["bdi-2"] * 5,
        "time": ["post", "post", "fu", "fu", "post"],
        "time_weeks": ["8", "8", "26", "NA", "12"],
        ".g": ["-0.5", "-0.3", "-0.25", "-0.2", "NA"],
        ".g_se": ["0.2", "0.25", "0.22", "0.1", "NA"],
        "n_arm1": ["30", "31", "28", "50", "20"],
        "n_arm2": ["29", "29", "27", "48", "20"],
        ".id": ["a1", "a2", "a3", "b1", "c1"],
    }
)


def test_metapsy_importer(tmp_path: Path) -> None:
    sheet, skipped = metapsy_to_precomputed(METAPSY, benefit="negative", source="test database")
    assert sheet["yi"].tolist() == [0.5, 0.3, 0.25, 0.2]
    assert sheet["sei"].tolist() == [0.2, 0.25, 0.22, 0.1]
    assert sheet["time_hours"].tolist()[:3] == [8 * 168.0, 8 * 168.0, 26 * 168.0]
    assert math.isnan(sheet["time_hours"].iloc[3]) and sheet["timepoint"].iloc[3] == "fu"
    assert sheet["time_as_reported"].tolist() == [
        "post (8 weeks)",
        "post (8 weeks)",
        "fu (26 weeks)",
        "fu",
    ]
    assert sheet["arm"].tolist()[:2] == ["cbt (f2f) vs wl (wl)", "pst (internet) vs wl (wl)"]
    assert sheet["n_total"].tolist() == [59, 60, 55, 98]
    assert (sheet["source_type"] == "secondary").all()
    assert skipped.to_dict("records") == [{"row": 6, "study": "Cy 2012", "reason": R_NO_G}]
    # the output is a valid minimal sheet: one comparison per arm of the multi-arm trial
    path = tmp_path / "metapsy_sheet.csv"
    sheet.to_csv(path, index=False)
    rows = read_sheets([path])
    hours = [8 * 168.0, 26 * 168.0]
    out = effects_of(rows, hours)
    assert sorted(out.effects["comparison_id"]) == [
        "Ames 2001 / cbt (f2f) vs wl (wl)",
        "Ames 2001 / cbt (f2f) vs wl (wl)",
        "Ames 2001 / pst (internet) vs wl (wl)",
    ]
    assert out.exclusions["study_id"].tolist() == ["Bo 2010"]  # label 'fu': no such window
    positive, _ = metapsy_to_precomputed(METAPSY, benefit="positive")
    assert positive["yi"].tolist() == [-0.5, -0.3, -0.25, -0.2]


def test_metapsy_importer_command_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    source = tmp_path / "metapsy.csv"
    METAPSY.to_csv(source, index=False)
    out = tmp_path / "sheet.csv"
    assert importer_main(["metapsy", str(source), str(out), "--benefit", "negative"]) == 0
    assert len(pd.read_csv(out)) == 4
    skipped = pd.read_csv(tmp_path / "sheet.not_imported.csv")
    assert skipped["reason"].tolist() == [R_NO_G]
    bad = tmp_path / "bad.csv"
    METAPSY.drop(columns=[".g_se"]).to_csv(bad, index=False)
    assert importer_main(["metapsy", str(bad), str(out), "--benefit", "negative"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (
        f"ERROR: {bad.as_posix()}, line 1: not a Metapsy comparison-level sheet: column(s) "
        "missing: .g_se"
    )


# ---- slow: snakemake on a foreign sheet outside the project --------------------------------------
@pytest.mark.slow
def test_cli_foreign_sheet_outside_the_project(tmp_path: Path) -> None:
    """A semicolon/decimal-comma arm-level sheet in MBNMAtime layout without any source column,
    outside the project and named by its absolute path, with `day` times: accepted with the
    warning, its comparisons in effects.csv, `unsourced` in the provenance."""
    project = copy_project(tmp_path / "project")
    review = tmp_path / "review"
    review.mkdir()
    days = {1: 24.0, 7: 168.0}
    lines = ["studyID;treatment;day;y;se;n"]
    for k, (study, shift) in enumerate((("S1", 0.0), ("S2", 0.5), ("S3", -0.4))):
        for day in days:
            for arm, mean, se, n in (("placebo", 20.0, 1.2, 40), ("ket_low", 15.0, 1.3, 20),
                                     ("ket_high", 13.0, 1.4, 21)):  # fmt: skip
                value = f"{mean + shift + k:.1f}".replace(".", ",")
                lines.append(f"{study};{arm};{day};{value};{str(se).replace('.', ',')};{n}")
    sheet = review / "sheet.csv"
    sheet.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (project / "foreign.yaml").write_text(
        "control_arms: [placebo]\nstat_kind_default: final\nrisk_of_bias: null\n",
        encoding="utf-8",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "foreign.yaml",
         "--config", f"studies={sheet}", "--", "results/tables/effects.csv",
         "results/tables/provenance.csv", "results/tables/row_accounting.csv"],
        cwd=project, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    warning = f"ingest_sheets: WARNING: {sheet}: no source column"
    assert any(line.startswith(warning) for line in proc.stderr.splitlines()), proc.stderr[-3000:]
    assert f"WARNING: {sheet}: no source column" in (
        project / "logs" / "ingest_sheets.log"
    ).read_text(encoding="utf-8")
    assert f"WARNING: {sheet}: no source column" in (project / "logs" / "provenance.log").read_text(
        encoding="utf-8"
    )
    tables = project / "results" / "tables"
    effects = pd.read_csv(tables / "effects.csv", keep_default_na=False)
    # the neutral default derives one window per reported time, labelled in hours
    # (windows.derive_windows): day 1 -> "24h", day 7 -> "168h"
    assert len(effects) == 3 * 2 * 2  # 3 studies x 2 doses x 2 windows (24h, 168h)
    assert set(effects["timepoint"]) == {"24h", "168h"}
    assert effects["flags"].str.contains("control_split_2_ways").all()
    assert np.all(effects["yi"].astype(float) > 0)  # lower scores on ketamine = benefit
    prov = pd.read_csv(tables / "provenance.csv", keep_default_na=False)
    assert (prov["source_address"] == UNSOURCED).all() and (prov["citation"] == UNSOURCED).all()
    assert prov["row_id"].str.startswith(f"{sheet}:").all()  # the path as given
    acc = pd.read_csv(tables / "row_accounting.csv").iloc[-1]
    assert acc["rows_in"] == 18 == acc["rows_used"] + acc["rows_excluded"]
