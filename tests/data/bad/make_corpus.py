"""Write the bad-input corpus (tests/data/bad/*.csv, *.yaml) from one small valid sheet.

Each case is the valid two-study sheet below with one defect; `manifest.yaml` (hand-written)
says what must happen to it. The numbers are synthetic test inputs, not trial data. Rerun after
changing a case:  python tests/data/bad/make_corpus.py   (the files are committed; the tests do
not run this script). The 100 000-row sheet is generated inside the test, not stored.
"""

from __future__ import annotations

import codecs
import csv
import io
from pathlib import Path

HERE = Path(__file__).resolve().parent

COLUMNS = [
    "study_id", "citation", "doi", "pmid", "source_address", "source_locator", "source_quote",
    "source_type", "value_origin", "extraction_note", "design", "period", "population", "trd",
    "concomitant_ad", "control", "drug", "route", "dose", "scale", "lower_is_better", "arm",
    "arm_role", "outcome", "time_hours", "time_as_reported", "n", "stat_kind", "mean", "sd", "se",
    "ci_low", "ci_high", "ci_level", "events",
]  # fmt: skip

STUDY = {
    "citation": "Synthetic A et al. Test fixture 2024", "doi": "10.0000/synthetic.a", "pmid": "",
    "source_address": "https://example.org/synthetic-a", "source_locator": "Table 2",
    "source_quote": "MADRS at 24 h: 18.0 (6.0) vs 25.0 (7.0)", "source_type": "primary",
    "value_origin": "table", "extraction_note": "", "design": "parallel", "period": "all",
    "population": "unipolar", "trd": "yes", "concomitant_ad": "no", "control": "saline",
    "drug": "ketamine", "route": "iv", "dose": "0.5 mg/kg over 40 min", "scale": "MADRS",
    "lower_is_better": "yes", "outcome": "score", "time_hours": "24",
    "time_as_reported": "24 h", "stat_kind": "final", "se": "", "ci_low": "", "ci_high": "",
    "ci_level": "", "events": "",
}  # fmt: skip


def arm(study: str, role: str, n: str, mean: str, sd: str, **extra: str) -> dict[str, str]:
    name = "ketamine 0.5 mg/kg" if role == "treatment" else "saline"
    return {**STUDY, "study_id": study, "arm": name, "arm_role": role, "n": n, "mean": mean,
            "sd": sd, **extra}  # fmt: skip


def base() -> list[dict[str, str]]:
    """The valid sheet: data lines 2-5 (line 1 is the header)."""
    b = {"citation": "Synthetic B et al. Test fixture 2023", "doi": "10.0000/synthetic.b",
         "source_address": "https://example.org/synthetic-b"}  # fmt: skip
    return [
        arm("StudyA", "treatment", "20", "18.0", "6.0"),
        arm("StudyA", "control", "20", "25.0", "7.0"),
        arm("StudyB", "treatment", "15", "20.0", "8.0", **b),
        arm("StudyB", "control", "16", "24.0", "7.5", **b),
    ]


def text(rows: list[dict[str, str]], columns: list[str] | None = None, eol: str = "\n") -> str:
    cols = columns or COLUMNS
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator=eol)
    writer.writerow(cols)
    for r in rows:
        writer.writerow([r.get(c, "") for c in cols])
    return buf.getvalue()


def changed(line: int, **cells: str) -> str:
    """The base sheet with the cells of data line `line` (2-5) changed."""
    rows = base()
    rows[line - 2].update(cells)
    return text(rows)


def changed_lines(cells: dict[int, dict[str, str]]) -> str:
    """The base sheet with cells of several data lines changed ({line: {column: value}})."""
    rows = base()
    for line, values in cells.items():
        rows[line - 2].update(values)
    return text(rows)


def renamed(old: str, new: str) -> str:
    return text(base()).replace(old, new, 1)


def without(column: str) -> str:
    return text(base(), [c for c in COLUMNS if c != column])


def contrast_sheet(**cells: str) -> str:
    """StudyA's arms plus StudyC as one precomputed contrast row (line 4)."""
    cols = COLUMNS + ["effect", "effect_type", "effect_se", "effect_var", "effect_ci_low",
                      "effect_ci_high", "n_treatment", "n_control"]  # fmt: skip
    c = {**STUDY, "study_id": "StudyC", "arm": "ketamine vs saline", "arm_role": "contrast",
         "n": "", "mean": "", "sd": "", "effect": "-0.8", "effect_type": "g",
         "effect_se": "0.3", "n_treatment": "20", "n_control": "20", **cells}  # fmt: skip
    return text(base()[:2] + [c], cols)


def binary_sheet(t_events: str, t_n: str, c_events: str, c_n: str) -> str:
    resp = {"outcome": "response", "stat_kind": "", "mean": "", "sd": ""}
    rows = base()[:2] + [
        {**arm("StudyD", "treatment", t_n, "", ""), **resp, "events": t_events},
        {**arm("StudyD", "control", c_n, "", ""), **resp, "events": c_events},
    ]
    return text(rows)


PRE_HEAD = "study_id,citation,time_hours,timepoint,yi,vi,n_total\n"
PRE_ROWS = "P1,Synthetic P1 2020,24,,0.50,0.04,40\nP2,Synthetic P2 2021,26,,0.30,0.05,36\n"


def dup_row() -> str:
    rows = base()
    return text(rows + [dict(rows[1])])


def study_attr() -> str:
    return changed(3, trd="no")


def multiline_quote() -> str:
    return changed(2, source_quote="MADRS at 24 h:\n18.0 (6.0)\nvs 25.0 (7.0)")


def latin1() -> bytes:
    data = changed(4, citation="M\u00fcller B et al. Test fixture 2023").encode("utf-8")
    return data.replace("\u00fc".encode(), "\u00fc".encode("latin-1"))


def semicolons() -> str:
    rows = [{k: v.replace(".", ",") for k, v in r.items()} for r in base()]
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=";", lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([r.get(c, "") for c in COLUMNS])
    return buf.getvalue()


def tabs() -> str:
    return text(base()).replace(",", "\t")


def unnamed_value() -> str:
    lines = text(base()).splitlines()
    lines[0] += ","
    lines = [lines[0]] + [ln + "," for ln in lines[1:]]
    lines[2] += "stray note"
    return "\n".join(lines) + "\n"


def extra_field() -> str:
    lines = text(base()).splitlines()
    lines[3] += ",42"
    return "\n".join(lines) + "\n"


def unterminated() -> str:
    return changed(3, source_quote="x").replace(",x,", ',"x,', 1)


def whitespace_cells() -> str:
    rows = base()
    rows[0].update(mean=" 18.0 ", sd="6.0  ", se="   ", study_id=" StudyA")
    return text(rows) + ",,,\n\n"


def unicode_html() -> str:
    rows = base()
    for r in rows[:2]:
        r.update(
            study_id="<script>alert(1)</script>",
            citation="M\u00fcller \u2013 \u65e5\u672c & <b>co</b>",
        )
    return text(rows)


def upper_headers() -> str:
    return text(base()).replace("study_id", "Study_ID", 1).replace(",sd,", ", SD ,", 1)


def two_times() -> str:
    rows = base()
    extra = [dict(rows[0], time_hours="20", time_as_reported="20 h", mean="19.0"),
             dict(rows[1], time_hours="20", time_as_reported="20 h", mean="24.5")]  # fmt: skip
    return text(rows + extra)


def no_control() -> str:
    return text(base()[:3])


SHEETS: dict[str, str | bytes] = {
    # structure and encoding
    "empty.csv": "",
    "bom_only.csv": codecs.BOM_UTF8,
    "header_only.csv": text([]),
    "header_only_bom_crlf.csv": codecs.BOM_UTF8 + text([], eol="\r\n").encode(),
    "blank_lines_only.csv": text([]) + "\n,,,\n\n",
    "duplicate_header.csv": text(base(), COLUMNS + ["mean"]),
    "extra_field.csv": extra_field(),
    "unnamed_column_value.csv": unnamed_value(),
    "unterminated_quote.csv": unterminated(),
    "semicolon_separated.csv": semicolons(),
    "tab_separated.csv": tabs(),
    "latin1.csv": latin1(),
    "excel_workbook.csv": b"PK\x03\x04\x14\x00\x06\x00binary workbook",
    # columns
    "missing_column_scale.csv": without("scale"),
    "missing_column_n.csv": without("n"),
    "misspelled_study_id.csv": renamed("study_id", "stdy_id"),
    "misspelled_arm_role.csv": renamed("arm_role", "arm_rol"),
    "misspelled_ci_high.csv": renamed("ci_high", "ci_hgh"),
    # cell values
    "n_text.csv": changed(2, n="twenty"),
    "n_decimal.csv": changed(3, n="20.5"),
    "n_one.csv": changed(4, n="1"),
    "n_negative.csv": changed(5, n="-3"),
    "sd_zero.csv": changed(3, sd="0"),
    "sd_negative.csv": changed(5, sd="-7.5"),
    "decimal_comma.csv": changed(2, mean="18,0"),
    "na_text.csv": changed(4, sd="NA"),
    "dot_for_missing.csv": changed(2, sd="."),
    "nr_for_missing.csv": changed(3, mean="n.r."),
    "excel_error_value.csv": changed(5, sd="#DIV/0!"),
    "unicode_minus.csv": changed(2, mean="\u221218.0"),
    "percent_sign.csv": changed(2, se="1.3", sd="", ci_level="95%"),
    "ci_level_percent.csv": changed(2, ci_low="15.2", ci_high="20.8", sd="", ci_level="95"),
    "time_text.csv": changed(2, time_hours="Day 1"),
    "time_negative.csv": changed(3, time_hours="-2"),
    "time_overflow.csv": changed(2, time_hours="1e400"),
    "events_exceed_n.csv": binary_sheet("25", "20", "5", "20"),
    "events_decimal.csv": binary_sheet("7.5", "20", "5", "20"),
    "ci_reversed.csv": changed(3, sd="", ci_low="30", ci_high="20"),
    "ci_half.csv": changed(2, sd="", ci_low="15.2"),
    "trd_maybe.csv": changed(2, trd="maybe"),
    "trd_na.csv": changed(4, trd="NA"),
    "control_placebo.csv": changed(3, control="placebo"),
    "arm_role_placebo.csv": changed(3, arm_role="placebo"),
    "outcome_scale_name.csv": changed(2, outcome="MADRS"),
    "lower_is_better_true.csv": changed(2, lower_is_better="true"),
    "citation_blank.csv": changed(5, citation=""),
    "quote_whitespace_only.csv": changed(4, source_quote="   "),
    "figure_without_note.csv": changed(2, value_origin="figure"),
    "ci_only_no_n.csv": changed(3, n="", sd="", ci_low="21.7", ci_high="28.3"),
    "n_missing.csv": changed(4, n=""),
    "r_within_above_one.csv": text(
        [dict(r, r_within="1.5" if i == 0 else "") for i, r in enumerate(base())],
        COLUMNS + ["r_within"],
    ),
    # rows that contradict each other or themselves
    "duplicate_row.csv": dup_row(),
    "study_attribute_differs.csv": study_attr(),
    "conflict_mean_outside_ci.csv": changed(2, ci_low="19.0", ci_high="23.0"),
    "conflict_sd_se.csv": changed(3, se="3.0"),
    "conflict_events_on_score_row.csv": changed(2, events="7"),
    "conflict_effect_var_se.csv": contrast_sheet(effect_var="0.5"),
    "conflict_effect_outside_ci.csv": contrast_sheet(
        effect_se="", effect_ci_low="0.1", effect_ci_high="0.9"
    ),
    "timepoint_disagrees.csv": text(
        [dict(r, timepoint="3d" if i == 2 else "") for i, r in enumerate(base())],
        COLUMNS + ["timepoint"],
    ),
    # minimal precomputed sheets
    "pre_vi_negative.csv": PRE_HEAD + PRE_ROWS + "P3,Synthetic P3 2022,24,,0.2,-1,30\n",
    "pre_missing_vi.csv": "study_id,citation,time_hours,yi\nP1,Synthetic P1 2020,24,0.5\n",
    "pre_no_source.csv": "study_id,citation,time_hours,yi,vi\nP1,,24,0.5,0.04\n",
    # rows that are excluded (with their reason), not errors
    "excl_no_control.csv": no_control(),
    "excl_outside_window.csv": changed_lines(
        {
            4: {"time_hours": "48", "time_as_reported": "48 h"},
            5: {"time_hours": "48", "time_as_reported": "48 h"},
        }  # fmt: skip
    ),
    "excl_no_sd.csv": changed(4, sd=""),
    "excl_two_times_in_window.csv": two_times(),
    "excl_double_zero.csv": binary_sheet("0", "20", "0", "20"),
    "excl_not_included.csv": changed_lines(
        {4: {"control": "midazolam"}, 5: {"control": "midazolam"}}
    ),
    "excl_study_excluded_by_config.csv": text(base()),
    "excl_pre_unknown_label.csv": "study_id,citation,timepoint,yi,vi\n"
    "P1,Synthetic P1 2020,24h,0.5,0.04\nP2,Synthetic P2 2021,9d,0.3,0.05\n",
    # accepted
    "ok_bom.csv": codecs.BOM_UTF8 + text(base()).encode(),
    "ok_bom_crlf.csv": codecs.BOM_UTF8 + text(base(), eol="\r\n").encode(),
    "ok_utf16.csv": text(base()).encode("utf-16"),
    "ok_upper_case_headers.csv": upper_headers(),
    "ok_whitespace_and_blank_lines.csv": whitespace_cells(),
    "ok_unicode_html_names.csv": unicode_html(),
    "ok_multiline_quote.csv": multiline_quote(),
    "ok_n_written_as_float.csv": changed(2, n="20.0", mean="1.8e1"),
    "ok_precomputed.csv": PRE_HEAD + PRE_ROWS,
}

# round two (hostile input): duplicates in minimal sheets, numbers outside the valid range,
# |r| = 1, a file name with ';', binary bytes and very long cells (short excerpts in messages)
PRE_DUP = PRE_HEAD + PRE_ROWS + "P1,Synthetic P1 2020,24,,0.50,0.04,40\n"
SHEETS.update(
    {
        "pre_duplicate_identical.csv": PRE_DUP,
        "pre_duplicate_other_numbers.csv": "study_id,citation,timepoint,yi,vi\n"
        "P1,Synthetic P1 2020,24h,0.5,0.04\nP2,Synthetic P2 2021,24h,0.3,0.05\n"
        "P1,Synthetic P1 2020,24h,0.7,0.06\n",
        "pre_vi_1e-300.csv": PRE_HEAD + PRE_ROWS + "P3,Synthetic P3 2022,24,,0.2,1e-300,30\n",
        "pre_yi_huge.csv": PRE_HEAD + "P1,Synthetic P1 2020,24,,1e300,0.04,40\n" + PRE_ROWS[38:],
        "mean_huge.csv": changed(3, mean="1e300"),
        "sd_tiny.csv": changed(4, sd="1e-9"),
        "r_within_one.csv": text(
            [dict(r, design="crossover", r_within="1") for r in base()], COLUMNS + ["r_within"]
        ),
        "r_within_minus_one.csv": text(
            [dict(r, design="crossover", r_within="-1") for r in base()], COLUMNS + ["r_within"]
        ),
        "binary_bytes.csv": bytes(range(256)) * 40,
        "long_cell.csv": changed(2, n="9" * 5000 + "x"),
        "nul_in_cell.csv": changed(3, sd="7\x00.0"),
        "ok_semi;colon name.csv": text(base()),
        "excl_effect_out_of_range.csv": changed_lines(
            {2: {"mean": "1e9", "sd": "1e-6"}, 3: {"mean": "-1e9", "sd": "1e-6"}}
        ),
    }
)

BASE_CONFIG_CASES: dict[str, str] = {
    "config_unknown_estimator.yaml": "method: BOGUS\n",
    "config_unknown_fallback.yaml": "method_fallback: MAGIC\n",
    "config_lowercase_estimator.yaml": "method: reml\n",
    "config_unknown_test.yaml": "test: hksj\n",
    "config_window_choice.yaml": "window_choice: median\n",
    "config_level_percent.yaml": "level: 95\n",
    "config_crossover_r.yaml": "crossover_r: 1.5\n",
    "config_misspelled_key.yaml": "methd: REML\n",
    "config_empty_windows.yaml": "windows: []\n",
    "config_window_reversed.yaml": "windows:\n  - {label: 24h, low: 30, high: 18}\n",
    "config_window_nominal_outside.yaml": "windows:\n"
    "  - {label: 24h, low: 18, high: 30, nominal: 40}\n",
    "config_windows_overlap.yaml": "windows:\n  - {label: a, low: 2, high: 30}\n"
    "  - {label: b, low: 24, high: 48}\n",
    "config_window_label_twice.yaml": "windows:\n  - {label: a, low: 2, high: 6}\n"
    "  - {label: a, low: 18, high: 30}\n",
    "config_window_no_high.yaml": "windows:\n  - {label: 24h, low: 18}\n",
    "config_window_empty_label.yaml": "windows:\n  - {label: '', low: 18, high: 30}\n",
    "config_window_text_bound.yaml": "windows:\n  - {label: 24h, low: one day, high: 30}\n",
    "config_subgroup_one_level.yaml": "subgroups:\n  trd: ['yes']\n",
    "config_exclude_without_reason.yaml": "exclude_studies:\n  - {study_id: StudyA}\n",
    "config_subset_unknown_key.yaml": "sensitivity:\n  subsets:\n"
    "    - {name: x, exlude: {control: [saline]}}\n",
    "config_studies_empty.yaml": "studies: []\n",
    "config_studies_number.yaml": "studies: 5\n",
    "config_studies_absolute.yaml": "studies: /nonexistent_review_dir/sheet.csv\n",
    "config_studies_dotdot.yaml": "studies: [data/raw/../../../secret.csv]\n",
    "config_studies_missing_file.yaml": "studies:\n  - data/raw/ketamine_trials.csv\n"
    "  - data/raw/nope.csv\n",
    "config_results_absolute.yaml": "results_dir: /tmp/elsewhere\n",
    "config_results_dotdot.yaml": "results_dir: results/../../outside\n",
    "config_results_windows_drive.yaml": "results_dir: 'C:\\\\results'\n",
    "config_results_not_writable_dir.yaml": "results_dir: config\n",
    "config_processed_into_raw.yaml": "processed_dir: data/raw\n",
    "config_python_object_apply.yaml": "method: !!python/object/apply:os.system ['touch PWNED']\n",
    "config_python_name.yaml": "method: !!python/name:os.system\n",
    "config_python_tuple.yaml": "crossover_r: !!python/tuple [0.2, 0.5]\n",
    "config_invalid_yaml_tab.yaml": "method: REML\ntest:\n\t- z\n",
    "config_top_level_list.yaml": "- method: REML\n",
    # round two
    "config_crossover_r_one.yaml": "crossover_r: 1\n",
    "config_crossover_r_minus_one.yaml": "crossover_r: -1\n",
    "config_sensitivity_r_one.yaml": "sensitivity:\n  crossover_r: [0.2, 1]\n",
    "config_duplicate_key.yaml": "method: REML\ntest: z\nmethod: DL\n",
    "config_duplicate_nested_key.yaml": "timecourse:\n  rho: 0.5\n  rho: 0.8\n",
    "config_subgroup_text.yaml": "subgroups:\n  trd: 'yes'\n",
    "config_contrasts_not_pairs.yaml": "timecourse:\n  contrasts: [[24h]]\n",
}

# Claims files (config claims_file), each refused by pipeline.claims_config.load_claims with
# one line.
CLAIMS_CASES: dict[str, str] = {
    "claims_plain_string.yaml": "claims:\n  - Ketamine works at 24 h\n",
    "claims_all_of_string.yaml": "claims:\n  - {id: a, claim: x, source: y, all_of: "
    "[ci_excludes_0]}\n",
    "claims_levels_true.yaml": "claims:\n  - {id: a, claim: x, source: y, check: "
    "all_ci_exclude_0, window: 24h, subgroup: trd, levels: true}\n",
    "claims_unknown_check.yaml": "claims:\n  - {id: a, claim: x, source: y, check: "
    "ci_exclude_0, window: 24h}\n",
    "claims_no_window.yaml": "claims:\n  - {id: a, claim: x, source: y, check: ci_excludes_0}\n",
    "claims_top_level_list.yaml": "- {id: a}\n",
    "claims_not_a_list.yaml": "claims: none\n",
    "claims_duplicate_key.yaml": "claims:\n  - id: a\n    claim: x\n    source: y\n"
    "    check: ci_excludes_0\n    window: 24h\n    window: 7d\n",
    "claims_range_text.yaml": "claims:\n  - {id: a, claim: x, source: y, check: "
    "proportion_ci_overlaps, window: 24h, range: [low, high]}\n",
    "claims_subgroup_two_levels.yaml": "claims:\n  - {id: a, claim: x, source: y, check: "
    "ci_excludes_0, window: 24h, subgroup: trd, levels: ['yes', 'no']}\n",
    "claims_unknown_window.yaml": "claims:\n  - {id: a, claim: x, source: y, check: "
    "ci_excludes_0, window: 5d}\n",
}

# Configs refused at the windows stage (they need the sheets' columns): kind subset_config.
STAGE_CONFIG_CASES: dict[str, str] = {
    "config_subset_misspelt_column.yaml": "sensitivity:\n  subsets:\n"
    "    - {name: x, exclude: {contrl: [saline]}}\n",
    "config_subset_sheet_only_column.yaml": "sensitivity:\n  subsets:\n"
    "    - {name: x, keep: {rob_overall: [low]}}\n",
    "config_subgroup_unknown_column.yaml": "subgroups:\n  rob_overall: [low, high]\n",
}


def main() -> None:
    for name in [p.name for p in HERE.iterdir() if p.suffix in (".csv", ".yaml")]:
        if name != "manifest.yaml":
            (HERE / name).unlink()
    cases = {**SHEETS, **BASE_CONFIG_CASES, **CLAIMS_CASES, **STAGE_CONFIG_CASES}
    for name, content in cases.items():
        data = content if isinstance(content, bytes) else content.encode("utf-8")
        (HERE / name).write_bytes(data)


if __name__ == "__main__":
    main()
