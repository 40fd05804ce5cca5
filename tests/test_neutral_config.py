"""The neutral default configuration, windows derived from the data, time units and labels.

config/config.yaml holds no review's content; the ketamine analysis is config/ketamine.yaml,
merged over it with --configfile as Snakemake merges (mappings key by key, lists replaced).
"""

from __future__ import annotations

import runpy
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib.text import Text
from pipeline_helpers import ROOT, merge_config, run_pipeline, shipped_config

from timecourse_meta.errors import ConfigError
from timecourse_meta.pipeline.config import check_config, load_yaml
from timecourse_meta.pipeline.pooling import pool_by_timepoint_weighted
from timecourse_meta.pipeline.windows import (
    derive_windows,
    outside_counts,
    outside_warning,
    parse_windows,
    select_windows,
    window_specs,
    windows_in_hours,
)
from timecourse_meta.schema import TIME_UNIT_HOURS

SCHEMA = load_yaml(ROOT / "config" / "schema" / "config.schema.yaml")
NEUTRAL = shipped_config("default")
WEEKS_SHEET = "tests/data/neutral_weeks.csv"  # times 168, 336, 504 h = 1, 2, 3 weeks
KETAMINE_WORDS = ("ketamine", "esketamine", "depression", "madrs", "midazolam")


# ---- the conversion table -------------------------------------------------------------------
def test_time_unit_hours_table() -> None:
    assert TIME_UNIT_HOURS == {
        "minutes": 1 / 60,
        "hours": 1.0,
        "days": 24.0,
        "weeks": 168.0,
        "months": 730.5,
    }
    assert TIME_UNIT_HOURS["months"] == 365.25 * 24 / 12  # a twelfth of a Julian year
    assert TIME_UNIT_HOURS["months"] / 24 == 30.4375


# ---- windows derived from the data ----------------------------------------------------------
def test_derive_windows_one_per_distinct_time() -> None:
    got = derive_windows([24, 4, 40 / 60, 24, np.nan, 0, 168], "hours")
    assert [w["label"] for w in got] == ["0.6667h", "4h", "24h", "168h"]
    assert [w["nominal"] for w in got] == [40 / 60, 4.0, 24.0, 168.0]
    assert all(w["low"] == w["high"] == w["nominal"] for w in got)


def test_derive_windows_labels_in_the_time_unit() -> None:
    got = derive_windows([168, 336, 84], "weeks")
    assert [w["label"] for w in got] == ["0.5wk", "1wk", "2wk"]
    assert [w["low"] for w in got] == [84.0, 168.0, 336.0]  # hours internally
    days = derive_windows([36, 72], "days")
    assert [w["label"] for w in days] == ["1.5d", "3d"]


def test_derive_windows_keeps_close_times_apart() -> None:
    got = derive_windows([1.00001, 1.00002], "hours")  # equal to 4 significant digits
    assert len({w["label"] for w in got}) == 2


def test_derive_windows_without_times_is_an_error() -> None:
    with pytest.raises(ConfigError, match="config 'windows': .*no time"):
        derive_windows([np.nan], "hours")


def test_window_specs_null_derives_and_list_converts() -> None:
    derived = window_specs(None, "weeks", [168.0, 336.0])
    assert [w["label"] for w in derived] == ["1wk", "2wk"]
    given = window_specs([{"label": "2wk", "low": 1.5, "high": 2.5, "nominal": 2}], "weeks")
    assert given == [{"label": "2wk", "low": 252.0, "high": 420.0, "nominal": 336.0}]
    hours = windows_in_hours([{"label": "4h", "low": 2, "high": 6, "nominal": 4}], "hours")
    assert hours == [{"label": "4h", "low": 2, "high": 6, "nominal": 4}]  # unchanged values


def test_derived_windows_keep_every_reported_time() -> None:
    times = [168.0, 336.0, 504.0]
    table = parse_windows(derive_windows(times, "weeks"))
    run = run_pipeline([WEEKS_SHEET], ROOT, windows=derive_windows(times, "weeks"))
    assert list(table["label"]) == ["1wk", "2wk", "3wk"]
    assert run.exclusions.empty and len(run.effects) == 5  # every row in a window


# ---- the warning when most rows fall outside every window ----------------------------------
def test_outside_warning_when_most_rows_are_outside() -> None:
    windows = parse_windows([{"label": "4h", "low": 2, "high": 6, "nominal": 4}])
    assert outside_warning(2, 4, windows) is None  # half is not most
    assert outside_warning(0, 0, windows) is None
    assert outside_warning(3, 5, windows) == (
        "3 of 5 rows fall outside every window (windows: 4h: 2\u20136 h)"
    )
    weeks = parse_windows(window_specs([{"label": "2wk", "low": 1.5, "high": 2.5}], "weeks"))
    assert outside_warning(5, 5, weeks, "weeks") == (
        "5 of 5 rows fall outside every window (windows: 2wk: 1.5\u20132.5 wk)"
    )


def test_outside_counts_leave_out_rows_no_window_could_hold() -> None:
    # 10 rows: 1 dropped by a filter, 1 baseline and 1 second-period row (row rules), 1 not the
    # chosen time, 3 in no window (time, label, no time): 3 outside of the 10 - 3 = 7 left
    excluded = pd.DataFrame(
        {
            "stage": ["eligibility", "windows", "windows", "windows", "windows", "windows",
                      "windows"],
            "timepoint": ["", "", "", "24h", "", "", ""],
            "reason": ["control not in include", "baseline (time <= 0)",
                       "crossover second period (after the crossover) not analysed",
                       "not the chosen time (closest_to_nominal)",
                       "time 700 h is in no configured window",
                       "label 'wk2' is not a configured window", "no time given"],
        }
    )  # fmt: skip
    assert outside_counts(10, excluded) == (3, 7)


def test_windows_given_in_the_wrong_unit_trigger_the_warning() -> None:
    """Windows meant as hours (2-6) read as weeks: every row of the sheet falls outside."""
    from timecourse_meta.pipeline.ingest import read_sheets

    rows = read_sheets([WEEKS_SHEET], root=ROOT)
    windows = parse_windows(window_specs([{"label": "x", "low": 2, "high": 6}], "hours"))
    result = select_windows(rows, windows)
    outside = int((result.excluded["timepoint"] == "").sum())
    assert outside == 5
    assert outside_warning(outside, len(rows), windows).startswith("5 of 5 rows fall outside")


# ---- the neutral default and the merge --------------------------------------------------------
def _open_mappings(node: object, path: str = "") -> list[str]:
    """Paths of non-empty mappings whose keys are the review's (column names, outcomes, ...)."""
    fixed = {"", "sensitivity", "timecourse", "time_response", "forest", "figure"}
    out = []
    if isinstance(node, Mapping):
        if node and path not in fixed:
            out.append(path)
        for key, value in node.items():
            out += _open_mappings(value, f"{path}.{key}".lstrip("."))
    return out


def test_neutral_default_holds_no_review_content() -> None:
    assert "studies" not in NEUTRAL
    assert NEUTRAL["windows"] is None and NEUTRAL["time_unit"] == "hours"
    assert NEUTRAL["claims_file"] is None and NEUTRAL["published"] is None
    assert NEUTRAL["subgroups"] == {} and NEUTRAL["include"] == {}
    assert NEUTRAL["exclude_studies"] == [] and NEUTRAL["sensitivity"]["subsets"] == []
    assert NEUTRAL["time_response"]["drop_studies"] == []
    assert NEUTRAL["time_response"]["predict_at"] is None
    assert NEUTRAL["baseline"] == "none" and NEUTRAL["risk_of_bias"] is None
    assert (NEUTRAL["intervention"], NEUTRAL["comparator"]) == ("intervention", "control")
    assert _open_mappings(NEUTRAL) == []  # nothing a user's mapping would be merged into
    text = (ROOT / "config" / "config.yaml").read_text(encoding="utf-8").lower()
    body = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
    assert not [w for w in (*KETAMINE_WORDS, "placebo", "lii2023") if w in body]


def test_neutral_default_without_studies_says_so() -> None:
    with pytest.raises(ConfigError, match=r"^config 'studies': set `studies`"):
        check_config(dict(NEUTRAL), SCHEMA, ROOT)


USER = {
    "studies": WEEKS_SHEET,
    "time_unit": "weeks",
    "windows": [{"label": "1wk", "low": 0.5, "high": 1.5, "nominal": 1}],
    "subgroups": {"route": None},
    "include": {"route": ["oral"]},
    "sensitivity": {"subsets": [{"name": "oral_only", "keep": {"route": ["oral"]}}]},
    "time_response": {"predict_at": [1, 2]},
    "grade": {"outcomes": {"score": "SMD"}},
}


def test_user_config_merged_over_the_default_is_the_users() -> None:
    merged = merge_config(NEUTRAL, USER)
    for key in ("studies", "time_unit", "windows", "subgroups", "include"):
        assert merged[key] == USER[key], key
    assert merged["sensitivity"]["subsets"] == USER["sensitivity"]["subsets"]
    assert merged["time_response"]["predict_at"] == [1, 2]
    assert merged["grade"] == USER["grade"]
    assert merged["claims_file"] is None and merged["published"] is None
    assert merged["exclude_studies"] == []


def test_merge_is_snakemakes() -> None:
    utils = pytest.importorskip("snakemake.utils", reason="needs snakemake")
    for overlay in (USER, yaml.safe_load((ROOT / "config" / "ketamine.yaml").read_text())):
        theirs = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
        utils.update_config(theirs, overlay)
        assert theirs == merge_config(NEUTRAL, overlay)


def test_user_config_in_weeks_is_hours_inside() -> None:
    settings = check_config(merge_config(NEUTRAL, USER), SCHEMA, ROOT)
    assert settings["time_unit"] == "weeks"
    assert settings["window_specs"] == [{"label": "1wk", "low": 84.0, "high": 252.0,
                                         "nominal": 168.0}]  # fmt: skip
    assert settings["time_response"]["predict_at"] == [168.0, 336.0]
    assert settings["time_response"]["test_at"] == 168.0  # null: the last window's nominal


def test_windows_null_are_derived_from_the_sheets() -> None:
    settings = check_config(merge_config(NEUTRAL, {"studies": WEEKS_SHEET}), SCHEMA, ROOT)
    assert list(settings["windows"]["label"]) == ["168h", "336h", "504h"]
    weeks = merge_config(NEUTRAL, {"studies": WEEKS_SHEET, "time_unit": "weeks"})
    settings = check_config(weeks, SCHEMA, ROOT)
    assert list(settings["windows"]["label"]) == ["1wk", "2wk", "3wk"]
    assert list(settings["windows"]["nominal"]) == [168.0, 336.0, 504.0]
    assert settings["claims_file"] is None and settings["published"] is None


def test_ketamine_config_is_the_shipped_analysis() -> None:
    config = shipped_config("ketamine")
    settings = check_config(config, SCHEMA, ROOT)
    assert list(settings["windows"]["label"]) == ["4h", "24h", "3d", "7d", "14d"]
    assert list(settings["windows"]["nominal"]) == [4, 24, 72, 168, 336]
    assert settings["claims_file"] == "config/claims.yaml"
    assert settings["published"] == "data/raw/published_pooled.csv"
    assert settings["time_response"]["predict_at"] == [4, 24, 72, 168, 336]
    assert settings["time_response"]["test_at"] == 336
    assert config["intervention"] == "ketamine" and config["comparator"] == "placebo"
    assert "trd" in config["subgroups"] and len(config["exclude_studies"]) == 3


# ---- labels from the config: no ketamine word in a foreign review's figures ------------------
FOREIGN = {
    "intervention": "alogliptin",
    "comparator": "placebo",
    "outcome_label": "HbA1c change",
    "measure_label": "Hedges' g",
    "favours": "Favours {arm}",
    "time_label": "Time on treatment",  # config key time_label (neutral default: "Time")
}


def _texts(fig: object) -> str:
    return "\n".join(t.get_text() for t in fig.findobj(Text) if t.get_text())  # type: ignore[attr-defined]


def _run_script(name: str, smk: object, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Run a workflow script with an injected `snakemake`; return the texts of its figures."""
    import timecourse_meta.plots.figures as figures

    drawn: list[str] = []
    monkeypatch.setattr(figures, "save_figure", lambda fig, *a, **k: drawn.append(_texts(fig)))
    runpy.run_path(str(ROOT / "workflow" / "scripts" / name), init_globals={"snakemake": smk})
    return drawn


def _outputs(tmp_path: Path, labels: list[str]) -> object:
    """The rule's output lists: one PNG and one PDF per window."""
    nl = pytest.importorskip("snakemake.iocontainers", reason="needs snakemake").Namedlist
    files = {ext: [str(tmp_path / f"f_{w}.{ext}") for w in labels] for ext in ("png", "pdf")}
    return nl(fromdict=files)


def _smk(tmp_path: Path, inputs: dict, params: dict, **extra: object) -> object:
    iocontainers = pytest.importorskip("snakemake.iocontainers", reason="needs snakemake")
    nl = iocontainers.Namedlist
    smk = type("Smk", (), {})()
    smk.input = nl(fromdict=inputs)
    smk.output = nl(fromdict={"png": str(tmp_path / "f.png"), "pdf": str(tmp_path / "f.pdf")})
    smk.log = nl(fromdict={"log": str(tmp_path / "f.log")})
    smk.params = nl(fromdict=params)
    for key, value in extra.items():
        setattr(smk, key, value)
    return smk


def test_foreign_labels_in_forest_and_time_course(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    specs = window_specs(None, "weeks", [168.0, 336.0, 504.0])
    run = run_pipeline([WEEKS_SHEET], ROOT, windows=specs)
    labels = [w["label"] for w in specs]
    fit = {"method": "REML", "test": "knha", "level": 0.95, "method_fallback": "DL"}
    pooled, weights = pool_by_timepoint_weighted(run.effects, labels, subgroups={}, **fit)
    files = {name: str(tmp_path / f"{name}.parquet") for name in ("effects", "pooled", "weights")}
    run.effects.to_parquet(files["effects"])
    pooled.to_parquet(files["pooled"])
    weights.to_parquet(files["weights"])
    files["arms"] = str(tmp_path / "arms.parquet")  # rows_windowed.parquet
    select_windows(run.rows, parse_windows(specs)).rows.to_parquet(files["arms"])
    common = {"outcome": "score", "measure": "SMD", "level": 0.95, "windows": specs,
              "labels": FOREIGN, "time_unit": "weeks"}  # fmt: skip
    forest = _smk(
        tmp_path,
        files,
        {**common, "timepoints": labels},
        config={"forest": {}},
        output=_outputs(tmp_path, labels),
    )
    texts = _run_script("forest_plots.py", forest, monkeypatch)
    assert len(texts) == 2 * len(labels)  # PNG and PDF of every window
    text = texts[2 * labels.index("2wk")]  # the PNG of window 2wk
    published = pd.DataFrame(
        {"time_window": pd.Series([], dtype=str), "review": pd.Series([], dtype=str),
         "comparable": pd.Series([], dtype=str), "g_benefit": pd.Series([], dtype=float),
         "g_benefit_ci_low": pd.Series([], dtype=float),
         "g_benefit_ci_high": pd.Series([], dtype=float)}
    )  # fmt: skip
    published.to_parquet(tmp_path / "published.parquet")
    course = _smk(
        tmp_path,
        {"pooled": files["pooled"], "effects": files["effects"],
         "published": str(tmp_path / "published.parquet")},
        {**common, "figure": {"title": None, "curve_model": None}},
    )  # fmt: skip
    (course_text,) = _run_script("timecourse_figure.py", course, monkeypatch)[:1]
    for drawn in (text, course_text):
        lower = drawn.lower()
        assert not [w for w in KETAMINE_WORDS if w in lower], drawn
        assert "Favours alogliptin" in drawn and "Favours placebo" in drawn
        assert "HbA1c change" in drawn
    assert "Alogliptin vs placebo: HbA1c change, window 2wk (2\u00a0wk)" in text
    assert "Time on treatment, weeks (log scale)" in course_text
    assert "2 wk" in course_text and " h\n" not in course_text


def test_claim_details_show_times_in_the_time_unit() -> None:
    from timecourse_meta.pipeline.claims_models import _duration_text, _time

    assert _time(24.0) == "24 h" and _time(336.0, "weeks") == "2 wk"
    assert _time(164.4, "days", ".3g") == "6.85 d"
    tr = pd.DataFrame(
        {"quantity": ["duration"], "time_hours": [164.0], "time_ci_low": [84.0],
         "time_ci_high": [336.0]}
    )  # fmt: skip
    assert _duration_text(tr, {"1wk": 168.0}, "weeks") == (
        "; curve: last time with lower CI bound > 0 = 0.9762 wk, interval 0.5-2 wk, "
        "which contains 1wk (1 wk)"
    )
    assert _duration_text(tr, {"7d": 168.0}) == (
        "; curve: last time with lower CI bound > 0 = 164 h, interval 84-336 h, "
        "which contains 7d (168 h)"
    )
