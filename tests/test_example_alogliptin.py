"""The alogliptin worked example (issue 12): golden values, config, claims, and the workflow.

Data: ../shared/data/timecourse_examples/alog_pcfb.csv (MBNMAtime 0.2.6; never copied into the
project). Golden values: tests/fixtures/metafor/alogliptin_golden.json, written by
alogliptin_golden.R (R + metafor escalc "MD" and rma REML/Knapp-Hartung per window).

* Fast: the golden script's rules (window choice, one comparison per alogliptin arm against the
  study's placebo, placebo n split k ways, yi = y_placebo - y_alogliptin, vi from SD = se *
  sqrt(n)) recomputed by hand with numpy from the CSV; config, golden and claims agree; the
  package's per-window pooling of the golden yi/vi reproduces metafor's fits.
* The package's pipeline (fast) and the Snakemake workflow (slow) on the example, read in its
  own MBNMAtime layout with primary_measure MD and time_unit weeks, reproduce the golden
  per-window results to 1e-6.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from pipeline_helpers import copy_project, run_pipeline, snakemake

from timecourse_meta.pipeline.claims_config import load_claims
from timecourse_meta.pipeline.config import check_config, load_yaml
from timecourse_meta.pipeline.pooling import pool_by_timepoint

ROOT = Path(__file__).resolve().parents[1]
SHEET_NAME = "../shared/data/timecourse_examples/alog_pcfb.csv"  # as the config names it
SHEET = ROOT / SHEET_NAME
GOLDEN = ROOT / "tests" / "fixtures" / "metafor" / "alogliptin_golden.json"
CONFIG = ROOT / "config" / "examples" / "alogliptin.yaml"
PLACEBO = "placebo"  # data README: placebo arms are treatment == "placebo"
POOLED_FIELDS = {"estimate": "estimate", "se": "se", "ci_low": "ci_lb", "ci_high": "ci_ub"}
TOL = 1e-6

needs_sheet = pytest.mark.skipif(
    not SHEET.is_file(), reason=f"{SHEET_NAME} not present (the shared data sets are not here)"
)


def golden() -> dict:
    return json.loads(GOLDEN.read_text(encoding="utf-8"))


def config() -> dict:
    return yaml.safe_load(CONFIG.read_text(encoding="utf-8"))


def golden_comparisons() -> pd.DataFrame:
    return pd.DataFrame(golden()["comparisons"])


def hand_comparisons(sheet: pd.DataFrame, low: float, high: float, nominal: float) -> pd.DataFrame:
    """One window's comparisons by the example's rules, in plain numpy (no metafor, no package).

    Per study: the reported time in [low, high] closest to `nominal` (ties -> the earlier);
    at that time each non-placebo arm against the placebo arm, whose n is split among the k
    arms (Cochrane Handbook 23.3.4). MD positive = benefit: yi = y_p - y_a,
    vi = sd_a^2 / n_a + sd_p^2 / (n_p / k), sd = se * sqrt(n).
    """
    inside = sheet[(sheet["time"] >= low) & (sheet["time"] <= high)]
    out = []
    for study, rows in inside.groupby("studyID", sort=True):
        times = np.sort(rows["time"].unique())
        chosen = times[np.argmin(np.abs(times - nominal))]  # first minimum = earlier on ties
        at = rows[rows["time"] == chosen]
        placebo = at[at["treatment"] == PLACEBO]
        active = at[at["treatment"] != PLACEBO]
        if placebo.empty:
            continue
        assert len(placebo) == 1
        p = placebo.iloc[0]
        k = len(active)
        sd_p = p["se"] * math.sqrt(p["n"])
        for _, a in active.iterrows():
            sd_a = a["se"] * math.sqrt(a["n"])
            out.append(
                {
                    "study_id": str(study),
                    "arm": a["treatment"],
                    "time": float(chosen),
                    "split_k": k,
                    "yi": p["y"] - a["y"],
                    "vi": sd_a**2 / a["n"] + sd_p**2 / (p["n"] / k),
                }
            )
    return pd.DataFrame(out)


# ---- fast: the golden file and the config -----------------------------------------------------


@needs_sheet
@pytest.mark.parametrize("label", ["2wk", "4wk", "8wk", "12wk", "16wk", "20wk", "26wk"])
def test_golden_comparisons_match_hand_computation(label: str) -> None:
    sheet = pd.read_csv(SHEET)
    win = {w["label"]: w for w in config()["windows"]}[label]
    hand = hand_comparisons(sheet, win["low"], win["high"], win["nominal"])
    gold = golden_comparisons()
    gold = gold[gold["window"] == label]
    key = ["study_id", "arm"]
    merged = hand.merge(gold, on=key, how="outer", suffixes=("_hand", "_gold"), indicator=True)
    assert (merged["_merge"] == "both").all(), merged.loc[merged["_merge"] != "both", key]
    assert len(merged) == len(gold) > 0
    np.testing.assert_array_equal(merged["time_hand"], merged["time_gold"])
    np.testing.assert_array_equal(merged["split_k_hand"], merged["split_k_gold"])
    for col in ("yi", "vi"):
        np.testing.assert_allclose(merged[f"{col}_hand"], merged[f"{col}_gold"], rtol=0, atol=1e-10)


@needs_sheet
def test_golden_4wk_window_in_detail() -> None:
    """4 weeks: ten placebo-controlled studies, study 1 with four alogliptin doses (split 4)."""
    gold = golden_comparisons()
    at4 = gold[gold["window"] == "4wk"]
    sheet = pd.read_csv(SHEET)
    expected_studies = sorted(
        {
            str(s)
            for s, g in sheet[sheet["time"] == 4].groupby("studyID")
            if PLACEBO in set(g["treatment"])
        },
        key=int,
    )
    assert sorted(set(at4["study_id"]), key=int) == expected_studies
    s1 = at4[at4["study_id"] == "1"]
    assert sorted(s1["arm"]) == ["alog_12.5", "alog_25", "alog_50", "alog_6.25"]
    assert set(s1["split_k"]) == {4}
    p = sheet[(sheet["studyID"] == 1) & (sheet["time"] == 4) & (sheet["treatment"] == PLACEBO)]
    a = sheet[(sheet["studyID"] == 1) & (sheet["time"] == 4) & (sheet["treatment"] == "alog_25")]
    p, a = p.iloc[0], a.iloc[0]
    row = s1[s1["arm"] == "alog_25"].iloc[0]
    # sd^2 / n = se^2, and sd_p^2 / (n_p / 4) = 4 se_p^2
    assert row["yi"] == pytest.approx(p["y"] - a["y"], abs=1e-12)
    assert row["vi"] == pytest.approx(a["se"] ** 2 + 4 * p["se"] ** 2, abs=1e-12)


@needs_sheet
def test_golden_accounts_for_every_row() -> None:
    g = golden()
    n_rows = len(pd.read_csv(SHEET))
    assert g["rows_in"] == n_rows
    listed = [r for part in g["row_accounting"] for r in part["rows"]]
    assert sorted(listed) == list(range(2, n_rows + 2))  # CSV lines 2..n+1, each once
    reasons = {part["reason"] for part in g["row_accounting"]}
    assert "used" in reasons and "no placebo arm in the study at that time" in reasons


def test_config_and_golden_use_the_same_windows() -> None:
    g = golden()["windows"]
    cfg = config()
    assert cfg["time_unit"] == g["unit"] == "weeks"
    assert [w["label"] for w in cfg["windows"]] == g["label"]
    for field in ("low", "high", "nominal"):
        assert [float(w[field]) for w in cfg["windows"]] == [float(v) for v in g[field]]
    assert cfg["studies"] == SHEET_NAME
    assert cfg["control_arms"] == [PLACEBO]
    assert (cfg["primary_measure"], cfg["method"], cfg["test"]) == ("MD", "REML", "knha")


def test_golden_records_its_software() -> None:
    g = golden()
    assert g["metafor_version"] == "3.8.1"
    assert g["R_version"].startswith("R version ")
    assert [r["window"] for r in g["pooled"]] == g["windows"]["label"]
    assert all(r["k"] >= 2 for r in g["pooled"])


def test_claims_file_loads_with_the_example_windows_and_subgroups() -> None:
    cfg = config()
    claims = load_claims(
        ROOT / cfg["claims_file"],
        load_yaml(ROOT / "config" / "schema" / "claims.schema.yaml"),
        [w["label"] for w in cfg["windows"]],
        list(cfg["subgroups"]),
    )
    assert [c["id"] for c in claims] == [
        "onset_4wk",
        "sustained_26wk",
        "both_doses_26wk",
        "sustained_12_26wk",
    ]
    assert all(c["source"].strip() for c in claims)


def pool_as_configured(effects: pd.DataFrame, cfg: dict) -> pd.DataFrame:
    """The example's per-window pooling, with its windows, subgroups and model settings."""
    return pool_by_timepoint(
        effects,
        [w["label"] for w in cfg["windows"]],
        subgroups=cfg["subgroups"],
        method=cfg["method"],
        test=cfg["test"],
        level=cfg["level"],
        method_fallback=cfg["method_fallback"],
    )


def _compare_pooled(
    pooled: pd.DataFrame, measure: str, outcome: str, *, extra: bool = False
) -> None:
    """Per window (and per dose level) k, estimate, se, CI and tau^2 against the golden file
    (absolute tolerance 1e-6); with `extra`, also p, I^2 and Q (relative tolerance 1e-6)."""
    g = golden()
    cases = [("all", r) for r in g["pooled"]] + [
        (f"dose={r['level']}", r) for r in g["pooled_by_dose"]
    ]
    failures = []
    for subgroup, gold in cases:
        sel = pooled[
            (pooled["timepoint"] == gold["window"])
            & (pooled["subgroup"] == subgroup)
            & (pooled["measure"] == measure)
            & (pooled["outcome"] == outcome)
        ]
        where = f"{gold['window']} {subgroup}"
        if len(sel) != 1:
            failures.append(f"{where}: {len(sel)} pooled rows")
            continue
        row = sel.iloc[0]
        if int(row["k"]) != gold["k"]:
            failures.append(f"{where}: k {row['k']} vs {gold['k']}")
        for ours, theirs in (*POOLED_FIELDS.items(), ("tau2", "tau2")):
            if not abs(float(row[ours]) - gold[theirs]) <= TOL:
                failures.append(f"{where} {ours}: {row[ours]!r} vs metafor {gold[theirs]!r}")
        for ours, theirs in (("pval", "pval"), ("I2", "I2"), ("Q", "QE")) if extra else ():
            if not math.isclose(float(row[ours]), gold[theirs], rel_tol=TOL, abs_tol=1e-12):
                failures.append(f"{where} {ours}: {row[ours]!r} vs metafor {gold[theirs]!r}")
    assert not failures, "\n".join(failures)


def test_package_pooling_of_the_golden_comparisons() -> None:
    """The package's per-window pooling (pool_by_timepoint) on the golden yi/vi: metafor's fit.

    Independent of the sheet reader: the comparisons come from the golden file, so this checks
    the REML / Knapp-Hartung pooling of the example (k up to 27, tau^2 = 0 in four windows).
    """
    gold = golden_comparisons()
    cfg = config()
    effects = pd.DataFrame(
        {
            "study_id": gold["study_id"],
            "comparison_id": gold["study_id"] + " / " + gold["arm"],
            "outcome": cfg["primary_outcome"],
            "measure": cfg["primary_measure"],
            "timepoint": gold["window"],
            "yi": gold["yi"],
            "vi": gold["vi"],
            "dose": gold["dose"],
        }
    )
    pooled = pool_as_configured(effects, cfg)
    _compare_pooled(pooled, cfg["primary_measure"], cfg["primary_outcome"], extra=True)

    # the same trials at every window (the studies of the last window; docs/examples.md)
    g = golden()
    same = effects[effects["study_id"].isin(g["last_window_studies"])]
    pooled = pool_by_timepoint(same, [w["label"] for w in cfg["windows"]])
    for gold in g["pooled_last_window_studies"]:
        row = pooled[(pooled["timepoint"] == gold["window"]) & (pooled["subgroup"] == "all")]
        assert int(row["k"].iloc[0]) == gold["k"]
        for ours, theirs in (*POOLED_FIELDS.items(), ("tau2", "tau2")):
            if gold["k"] == 0:
                assert np.isnan(row[ours].iloc[0])
            else:
                assert abs(row[ours].iloc[0] - gold[theirs]) <= TOL, (gold["window"], ours)


# ---- pending the issue 12 branches ------------------------------------------------------------


@needs_sheet
def test_config_passes_the_workflow_checks() -> None:
    check_config(config(), load_yaml(ROOT / "config" / "schema" / "config.schema.yaml"), ROOT)


@needs_sheet
def test_package_pipeline_reproduces_the_golden_windows() -> None:
    """ingest -> windows -> effects (pipeline_helpers.run_pipeline) -> pool_by_timepoint.

    The sheet options are passed as the config names them (control_arms, stat_kind_default,
    time_unit: the sheet's `time` is in weeks); windows are converted to hours with the
    package's own unit table. Adjust the call to the merged signatures if they differ.
    """
    from timecourse_meta import schema

    cfg = config()
    hours = schema.TIME_UNIT_HOURS[cfg["time_unit"]]
    windows = [
        {**w, **{f: w[f] * hours for f in ("low", "high", "nominal")}} for w in cfg["windows"]
    ]
    run = run_pipeline(
        [cfg["studies"]],
        ROOT,
        windows=windows,
        rule=cfg["window_choice"],
        include=cfg["include"],
        exclude_studies=cfg["exclude_studies"],
        lower_is_better_default=cfg["lower_is_better_default"],
        precomputed_measure=cfg["precomputed_measure"],
        score_measure=cfg["primary_measure"],
        sheet_options={
            "control_arms": cfg["control_arms"],
            "stat_kind_default": cfg["stat_kind_default"],
            "time_unit": cfg["time_unit"],
        },
    )
    g = golden()
    assert len(run.rows) == g["rows_in"]
    not_used = sum(p["n_rows"] for p in g["row_accounting"] if p["reason"] != "used")
    assert len(run.exclusions) == not_used

    eff = run.effects[run.effects["measure"] == cfg["primary_measure"]]
    gold = golden_comparisons()
    merged = gold.merge(
        eff.assign(study_id=eff["study_id"].astype(str), dose=eff["dose"].astype(str)),
        left_on=["window", "study_id", "dose"],
        right_on=["timepoint", "study_id", "dose"],
        how="outer",
        suffixes=("_gold", ""),
        indicator=True,
    )
    assert (merged["_merge"] == "both").all(), merged.loc[merged["_merge"] != "both"]
    np.testing.assert_allclose(merged["yi"], merged["yi_gold"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(merged["vi"], merged["vi_gold"], rtol=0, atol=1e-10)

    pooled = pool_as_configured(run.effects, cfg)
    _compare_pooled(pooled, cfg["primary_measure"], cfg["primary_outcome"])


@pytest.mark.slow
@needs_sheet
def test_workflow_on_the_example_reproduces_the_golden_windows(tmp_path: Path) -> None:
    """`snakemake --cores 2 --configfile config/examples/alogliptin.yaml` (the whole default
    target, as the README says) in a copy of the project.

    The copy is tmp/project with tmp/shared linked to the real ../shared, so the config's
    ../shared/... path resolves as in the repository. The example's file is merged over the
    neutral default config/config.yaml, which holds nothing of the ketamine analysis.
    """
    project = copy_project(tmp_path / "project", data=False)
    (tmp_path / "shared").symlink_to((ROOT / ".." / "shared").resolve(), target_is_directory=True)
    cfg = config()
    res = project / cfg["results_dir"]
    table = f"{cfg['results_dir']}/tables/pooled_by_timepoint.csv"
    proc = snakemake(
        project, "--configfile", "config/examples/alogliptin.yaml", ketamine=False, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (project / table).is_file()
    csv = pd.read_csv(project / table, keep_default_na=False)
    primary = csv[(csv["subgroup"] == "all") & (csv["measure"] == cfg["primary_measure"])]
    assert primary["timepoint"].tolist() == [w["label"] for w in cfg["windows"]]
    # full precision from the parquet the same rule writes beside the CSV
    pooled = pd.read_parquet(project / cfg["processed_dir"] / "pooled.parquet")
    _compare_pooled(pooled, cfg["primary_measure"], cfg["primary_outcome"])
    # the same outputs as the ketamine run: time-course model, time-response curve, claims,
    # figures per window, report page; and none of the ketamine analysis leaks in
    for name in ("timecourse_model.csv", "time_response_summary.csv", "claims.csv"):
        assert (res / "tables" / name).is_file(), name
    for w in cfg["windows"]:
        assert (res / "figures" / f"forest_{w['label']}.png").is_file()
    assert (res / "figures" / "timecourse.png").is_file()
    claims = pd.read_csv(res / "tables" / "claims.csv", keep_default_na=False)
    listed = yaml.safe_load((ROOT / cfg["claims_file"]).read_text(encoding="utf-8"))["claims"]
    assert claims["id"].tolist() == [c["id"] for c in listed]
    assert set(claims["verdict"]) <= {"supported", "not supported", "not testable"}
    summary = (res / "report_summary.rst").read_text(encoding="utf-8")
    assert "alogliptin" in summary
    for word in ("ketamine", "depression", "MADRS", "Hedges"):
        assert word not in summary, word
