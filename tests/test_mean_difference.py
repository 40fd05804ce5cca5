"""Raw mean difference (measure MD) against metafor 3.8.1 golden values.

tests/fixtures/metafor/md_golden.R -> md_golden.json: escalc(measure = "MD") and rma(REML,
knha) on metadat's dat.normand1999, escalc(measure = "MC") on a constructed paired set. The
fast tests compare with the committed JSON (rtol 1e-6); the slow one reruns the R script when
Rscript with metafor is present (skipped with a reason otherwise).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pipeline_helpers import arm_pair, run_pipeline, write_sheet

from timecourse_meta.effects.comparisons import compute_effects
from timecourse_meta.effects.effect_sizes import mean_difference, mean_difference_paired
from timecourse_meta.errors import ConfigError
from timecourse_meta.models.rma import fit_random_effects
from timecourse_meta.pipeline.pooling import pool_by_timepoint
from timecourse_meta.schema import R_C_MD_CI_N, R_C_NOT_MD, measure_label, score_measure

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "metafor"
GOLDEN_JSON = FIXTURES / "md_golden.json"
GOLDEN_R = FIXTURES / "md_golden.R"
GOLDEN = json.loads(GOLDEN_JSON.read_text(encoding="utf-8"))
RTOL = 1e-6


def test_mean_difference_matches_escalc_md() -> None:
    d = GOLDEN["normand1999"]
    yi, vi = mean_difference(d["m1i"], d["sd1i"], d["n1i"], d["m2i"], d["sd2i"], d["n2i"])
    np.testing.assert_allclose(yi, d["yi"], rtol=RTOL)
    np.testing.assert_allclose(vi, d["vi"], rtol=RTOL)
    # Edinburgh by hand: 55 - 75 = -20; 47^2/155 + 64^2/156 = 14.2516... + 26.2564... = 40.508
    assert yi[0] == -20
    np.testing.assert_allclose(vi[0], 47**2 / 155 + 64**2 / 156, rtol=1e-15)


def test_mean_difference_paired_matches_escalc_mc() -> None:
    p = GOLDEN["paired"]
    yi, vi = mean_difference_paired(p["m1i"], p["sd1i"], p["m2i"], p["sd2i"], p["ni"], p["ri"])
    np.testing.assert_allclose(yi, p["yi"], rtol=RTOL)
    np.testing.assert_allclose(vi, p["vi"], rtol=RTOL)


def test_md_pooled_matches_rma_reml_knha() -> None:
    d = GOLDEN["normand1999"]
    res = fit_random_effects(d["yi"], d["vi"], method="REML", test="knha").to_frame().iloc[0]
    for ours, theirs in (("estimate", "estimate"), ("se", "se"), ("ci_low", "ci_low"),
                         ("ci_high", "ci_high"), ("pval", "pval"), ("tau2", "tau2"),
                         ("I2", "I2"), ("Q", "QE")):  # fmt: skip
        np.testing.assert_allclose(res[ours], d[theirs][0], rtol=RTOL, err_msg=ours)


def _normand_sheet(tmp_path: Path) -> Path:
    """dat.normand1999 as an extraction sheet: specialist care = treatment (group 1), length of
    stay in days, lower is better; one study per row pair at 24 h."""
    d = GOLDEN["normand1999"]
    rows = []
    for i in range(len(d["yi"])):
        rows += arm_pair(
            {"mean": d["m1i"][i], "sd": d["sd1i"][i], "n": d["n1i"][i]},
            {"mean": d["m2i"][i], "sd": d["sd2i"][i], "n": d["n2i"][i]},
            study_id=f"N{i + 1}",
            scale="days",
        )
    return write_sheet(tmp_path / "normand.csv", rows)


def test_compute_effects_md_end_to_end_matches_metafor(tmp_path: Path) -> None:
    """ingest -> windows -> effect sizes (score_measure MD) -> pooling, oriented positive =
    benefit (lower is better: yi = -(m1 - m2)), equal to metafor up to the sign."""
    run = run_pipeline([_normand_sheet(tmp_path)], score_measure="MD")
    d = GOLDEN["normand1999"]
    eff = run.effects.sort_values("study_id", key=lambda s: s.str[1:].astype(int))
    assert set(eff["measure"]) == {"MD"}
    np.testing.assert_allclose(eff["yi"], -np.asarray(d["yi"]), rtol=RTOL)
    np.testing.assert_allclose(eff["vi"], d["vi"], rtol=RTOL)
    assert eff["derivation"].iloc[0].startswith("mean difference from final means/SDs (metafor")
    pooled = pool_by_timepoint(eff, ["24h"], method="REML", test="knha")
    row = pooled[(pooled["subgroup"] == "all") & (pooled["measure"] == "MD")].iloc[0]
    np.testing.assert_allclose(row["estimate"], -d["estimate"][0], rtol=RTOL)
    np.testing.assert_allclose([row["ci_low"], row["ci_high"]],
                               [-d["ci_high"][0], -d["ci_low"][0]], rtol=RTOL)  # fmt: skip
    np.testing.assert_allclose(row["tau2"], d["tau2"][0], rtol=RTOL)


def test_crossover_md_uses_the_paired_form_with_crossover_r(tmp_path: Path) -> None:
    p = GOLDEN["paired"]  # first entry: r = 0.5, the crossover_r default
    rows = arm_pair(
        {"mean": p["m1i"][0], "sd": p["sd1i"][0], "n": p["ni"][0]},
        {"mean": p["m2i"][0], "sd": p["sd2i"][0], "n": p["ni"][0]},
        design="crossover",
        period="all",
    )
    run = run_pipeline([write_sheet(tmp_path / "x.csv", rows)], score_measure="MD")
    e = run.effects.iloc[0]
    np.testing.assert_allclose([e["yi"], e["vi"]], [-p["yi"][0], p["vi"][0]], rtol=RTOL)
    assert "crossover_r_assumed=0.5" in e["flags"]
    assert "paired (metafor escalc MC)" in e["derivation"]
    # r reported on the rows (0.8: third golden entry) is used instead
    rows = arm_pair(
        {"mean": p["m1i"][2], "sd": p["sd1i"][2], "n": p["ni"][2], "r_within": 0.8},
        {"mean": p["m2i"][2], "sd": p["sd2i"][2], "n": p["ni"][2]},
        design="crossover",
        period="all",
    )
    e = run_pipeline([write_sheet(tmp_path / "y.csv", rows)], score_measure="MD").effects.iloc[0]
    np.testing.assert_allclose([e["yi"], e["vi"]], [-p["yi"][2], p["vi"][2]], rtol=RTOL)


def test_md_contrast_rows(tmp_path: Path) -> None:
    """A reported mean difference is used as it is; a standardised contrast cannot be."""
    contrast = {
        "arm": "ketamine vs saline", "arm_role": "contrast", "n": "", "mean": "", "sd": "",
        "effect": "-4.5", "effect_type": "md", "effect_se": "1.5", "n_treatment": "20",
        "n_control": "20",
    }  # fmt: skip
    no_sizes = {"n_treatment": "", "n_control": ""}
    rows = [
        {**arm_pair()[0], **contrast, "study_id": "MDrow"},
        {**arm_pair()[0], **contrast, "study_id": "Grow", "effect": "0.4", "effect_type": "g"},
        {**arm_pair()[0], **contrast, **no_sizes, "study_id": "NoN", "effect_se": "2"},
        {**arm_pair()[0], **contrast, **no_sizes, "study_id": "CIonly", "effect_se": "",
         "effect_ci_low": "-8", "effect_ci_high": "-1"},
    ]  # fmt: skip
    run = run_pipeline([write_sheet(tmp_path / "c.csv", rows)], score_measure="MD")
    e = run.effects.set_index("study_id")
    np.testing.assert_allclose([e.loc["MDrow", "yi"], e.loc["MDrow", "vi"]], [4.5, 1.5**2])
    assert e.loc["MDrow", "measure"] == "MD"
    assert e.loc["MDrow", "derivation"].startswith("mean difference as reported (metafor")
    # without arm sizes: usable with its SE (an MD needs no standardiser), not with a CI only
    np.testing.assert_allclose([e.loc["NoN", "yi"], e.loc["NoN", "vi"]], [4.5, 4.0])
    reasons = run.exclusions.set_index("study_id")["reason"]
    assert reasons.to_dict() == {"Grow": R_C_NOT_MD, "CIonly": R_C_MD_CI_N}
    # the same sheet as SMD: the MD rows without sizes cannot be standardised
    smd_run = run_pipeline([write_sheet(tmp_path / "c.csv", rows)])
    assert sorted(smd_run.effects["study_id"]) == ["Grow", "MDrow"]


def test_md_refused_across_scales_with_window_and_scales(tmp_path: Path) -> None:
    rows = [*arm_pair(study_id="A"), *arm_pair(study_id="B", scale="HDRS")]
    sheet = write_sheet(tmp_path / "s.csv", rows)
    assert len(run_pipeline([sheet]).effects) == 2  # SMD pools across scales
    with pytest.raises(ConfigError) as info:
        run_pipeline([sheet], score_measure="MD")
    assert str(info.value) == (
        "config 'primary_measure': MD (raw mean difference) pools one scale only, but window "
        "24h (score) has scales HDRS (B); MADRS (A); use primary_measure SMD, or keep one scale "
        "(scale_priority, or include: {scale: [...]})"
    )
    # one scale per window but different windows: refused too (the time-course models combine)
    rows = [*arm_pair(study_id="A"), *arm_pair(study_id="B", scale="HDRS", time_hours=4)]
    with pytest.raises(ConfigError, match=r"use different scales \(24h MADRS, 4h HDRS\)"):
        run_pipeline([write_sheet(tmp_path / "t.csv", rows)], score_measure="MD")


def test_smd_unchanged_by_default_and_measure_names() -> None:
    with pytest.raises(ValueError, match="score_measure must be one of SMD, MD"):
        compute_effects(pd.DataFrame(), score_measure="g")
    assert measure_label("MD") == "mean difference"
    assert measure_label("SMD") == "Hedges' g"
    assert measure_label("XYZ") == "XYZ"
    # the config's label wins; an empty one falls back to the measure's name
    assert measure_label("MD", {"measure_label": "HbA1c change (%)"}) == "HbA1c change (%)"
    assert measure_label("SMD", {"measure_label": None}) == "Hedges' g"
    assert [score_measure(m) for m in ("SMD", "MD", "OR", "RR")] == ["SMD", "MD", "SMD", "SMD"]


@pytest.mark.slow
def test_golden_fixture_regenerates_identically(require_metafor: None, tmp_path: Path) -> None:
    """Live: rerun the committed R script and compare with the committed JSON."""
    out = tmp_path / "md.json"
    subprocess.run(
        ["Rscript", "--vanilla", str(GOLDEN_R), str(out)], check=True, capture_output=True,
        timeout=120,
    )  # fmt: skip
    fresh = json.loads(out.read_text(encoding="utf-8"))
    committed = dict(GOLDEN)
    fresh.pop("r_version"), committed.pop("r_version")
    assert fresh.keys() == committed.keys()
    for key, block in committed.items():
        if isinstance(block, str):
            assert fresh[key] == block
            continue
        for field, values in block.items():
            np.testing.assert_allclose(fresh[key][field], values, rtol=1e-13, err_msg=field)
