"""Time-response stage: effects at every reported time, the tables, claims on the curve, coverage.

The model itself is checked against metafor in test_time_response.py; here: the all-times data
path (same rows, same effect-size code as the windows path), the shared-control sizes, the
table contracts the figure relies on, the claims columns and rival decisions, and the coverage
simulation (20 replicates in the fast suite, 200 behind @pytest.mark.slow).
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from pipeline_helpers import shipped_config

from timecourse_meta.effects.comparisons import compute_effects
from timecourse_meta.pipeline.claims import TR_CLAIM_COLUMNS, check_claims
from timecourse_meta.pipeline.ingest import precomputed_effects, read_sheets
from timecourse_meta.pipeline.time_response_spec import parse_time_response_config
from timecourse_meta.pipeline.time_response_tables import (
    SENSITIVITY_COLUMNS,
    TIME_RESPONSE_COLUMNS,
    TR_SUMMARY_COLUMNS,
    fit_spec,
    grid_table,
    sensitivity_table,
    summary_table,
    time_response_data,
)
from timecourse_meta.pipeline.windows import parse_windows, select_all_times, select_windows
from timecourse_meta.simulation.time_response_coverage import time_response_coverage, true_curve

ROOT = Path(__file__).resolve().parents[1]
CONFIG = shipped_config("ketamine")


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return read_sheets([ROOT / s for s in CONFIG["studies"]], root=ROOT)


@pytest.fixture(scope="module")
def all_times(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    windows = parse_windows(CONFIG["windows"])
    kept, excluded = select_all_times(rows, windows, CONFIG["include"], CONFIG["exclude_studies"])
    eff, excl = compute_effects(
        kept[kept["sheet_format"] == "extraction"], crossover_r=CONFIG["crossover_r"]
    )
    eff = pd.concat([eff, precomputed_effects(kept, measure_default=CONFIG["precomputed_measure"])])
    return kept, excluded, eff.reset_index(drop=True)


def test_every_reported_time_is_kept(rows, all_times) -> None:
    kept, excluded, eff = all_times
    assert len(kept) + len(excluded) == len(rows)  # nothing dropped silently
    score = eff[eff["outcome"] == "score"]
    lii = sorted(score.loc[score["study_id"] == "Lii2023", "time_hours"])
    assert lii == [24, 48, 72, 120, 168, 336]  # Day 1, 2, 3, 5, 7, 14 of the sheet
    diaz = sorted(score.loc[score["study_id"] == "Diazgranados2010", "time_hours"])
    assert diaz == pytest.approx([40 / 60, 48])  # "40 minutes", "day 2": outside every window
    assert set(score.loc[score["time_hours"] == 48, "timepoint"]) == {"48h"}


def test_all_times_effects_equal_window_effects(rows, all_times) -> None:
    """Same rows, same effect-size code: every windowed effect appears with the same yi, vi."""
    _, _, eff = all_times
    windows = parse_windows(CONFIG["windows"])
    res = select_windows(rows, windows, CONFIG["window_choice"], CONFIG["include"],
                         CONFIG["exclude_studies"])  # fmt: skip
    win, _ = compute_effects(
        res.rows[res.rows["sheet_format"] == "extraction"], crossover_r=CONFIG["crossover_r"]
    )
    key = ["comparison_id", "outcome", "measure", "time_hours"]
    both = win.merge(eff, on=key, suffixes=("_w", "_a"), validate="one_to_one")
    assert len(both) == len(win) > 0
    np.testing.assert_array_equal(both["yi_w"], both["yi_a"])
    np.testing.assert_array_equal(both["vi_w"], both["vi_a"])
    assert len(eff) > len(win)  # the times outside windows are added


def test_shared_control_full_size(all_times) -> None:
    _, _, eff = all_times
    d = time_response_data(eff, "score", "SMD")
    daly = d[d["study_id"] == "Daly2018"]
    # three dose arms, control split 3 ways (11 each): the shared control has 33 participants
    assert daly["n_control"].tolist() == [11.0] * 6
    assert daly["_n_control"].tolist() == [33.0] * 6
    assert daly["_control"].nunique() == 1
    single = d[d["study_id"] == "Lii2023"]
    assert (single["_n_control"] == single["n_control"]).all()


@pytest.fixture(scope="module")
def tables(all_times):
    _, _, eff = all_times
    spec = parse_time_response_config(CONFIG["time_response"], CONFIG["level"])
    data = time_response_data(eff, "score", "SMD")
    tr = fit_spec(data, spec)
    return spec, data, tr


def test_table_contracts(tables) -> None:
    spec, data, tr = tables
    grid = grid_table(tr, spec, "score", "SMD")
    assert tuple(grid.columns) == TIME_RESPONSE_COLUMNS
    assert len(grid) == spec.grid_size
    assert grid["time_hours"].iloc[0] == data["time_hours"].min()
    assert grid["time_hours"].iloc[-1] == data["time_hours"].max()
    assert (grid["pi_low"] <= grid["ci_low"]).all() and (grid["ci_high"] <= grid["pi_high"]).all()
    s = summary_table(tr, spec, "score", "SMD", extra_times=[4, 24, 72, 168, 336])
    assert tuple(s.columns) == TR_SUMMARY_COLUMNS
    q = s.set_index("quantity")
    assert {"onset", "peak", "duration", "prediction", "test_no_change", "test_effect_at"} == set(
        q.index
    )
    # duration: the last grid time whose lower bound is > 0 (checked on the grid table)
    pos = grid["time_hours"][grid["ci_low"] > 0]
    assert q.loc["duration", "time_hours"] == pytest.approx(pos.max())
    assert q.loc["onset", "time_hours"] == pytest.approx(pos.min())
    assert q.loc["peak", "time_hours"] == grid.loc[grid["estimate"].idxmax(), "time_hours"]
    # predictions at 24 h are the model's x(24)' b
    pr = q[q.index == "prediction"].set_index("time_hours")
    assert pr.loc[24.0, "estimate"] == pytest.approx(
        float(tr.basis.design([24.0])[0] @ tr.fit.beta)
    )
    # the 14-day test is the z test of the 336 h prediction
    at = q.loc["test_effect_at"]
    assert at["stat"] == pytest.approx(at["estimate"] / at["se"])


def test_bootstrap_is_deterministic_and_fast(tables) -> None:
    spec, _, tr = tables
    t0 = time.perf_counter()
    a = summary_table(tr, spec, "score", "SMD")
    seconds = time.perf_counter() - t0
    b = summary_table(tr, spec, "score", "SMD")
    pd.testing.assert_frame_equal(a, b)
    assert seconds < 5


def test_sensitivity_rows(tables) -> None:
    spec, data, _ = tables
    sens = sensitivity_table(data, spec, "score", "SMD")
    assert tuple(sens.columns) == SENSITIVITY_COLUMNS
    loo = sens[sens["analysis"] == "leave_one_out"]
    assert sorted(loo["value"]) == sorted(data["study_id"].unique())
    assert sens.loc[sens["analysis"] == "drop_study", "value"].tolist() == ["Lii2023"]
    assert sens["duration_change_h"].iloc[0] == 0
    assert set(sens["analysis"]) >= {"primary", "n_knots", "basis", "phi", "rho_fixed"}
    fixed = sens[sens["analysis"] == "rho_fixed"]
    np.testing.assert_allclose(fixed["rho"], [float(v) for v in fixed["value"]])


# ---- claims on the curve ---------------------------------------------------------------------
WINDOW_HOURS = {"4h": 4.0, "24h": 24.0, "3d": 72.0, "7d": 168.0, "14d": 336.0}


def tr_summary(pred: dict[float, tuple[float, float, float]], note_at: float | None = None):
    rows = [
        {"outcome": "score", "measure": "SMD", "model": "spline", "quantity": "prediction",
         "time_hours": h, "estimate": e, "ci_low": lo, "ci_high": hi,
         "note": "extrapolation: outside" if h == note_at else ""}
        for h, (e, lo, hi) in pred.items()
    ]  # fmt: skip
    rows.append({"outcome": "score", "measure": "SMD", "model": "spline", "quantity": "duration",
                 "time_hours": 100.0, "time_ci_low": 60.0, "time_ci_high": 200.0})  # fmt: skip
    rows.append({"outcome": "score", "measure": "SMD", "model": "spline", "quantity": "peak",
                 "time_hours": 20.0, "time_ci_low": 5.0, "time_ci_high": 40.0})  # fmt: skip
    return pd.DataFrame(rows)


def _pooled() -> pd.DataFrame:
    return pd.DataFrame([
        {"outcome": "score", "measure": "SMD", "timepoint": tp, "subgroup": "all",
         "moderator": "all", "level": "all", "k": k, "estimate": 0.5, "ci_low": 0.1,
         "ci_high": 0.9}
        for tp, k in (("4h", 3), ("24h", 5), ("3d", 2), ("7d", 1), ("14d", 1))
    ])  # fmt: skip


RIVALS = [
    {"id": "d3", "claim": "limited to 3 days", "source": "s", "rivals": "duration",
     "all_of": [{"check": "ci_excludes_0", "window": "3d"},
                {"check": "ci_includes_0", "window": "7d"}]},
    {"id": "d7", "claim": "superior at 7 days", "source": "s", "rivals": "duration",
     "check": "ci_excludes_0", "window": "7d"},
]  # fmt: skip


def test_time_response_verdicts_and_rivals() -> None:
    pred = {4: (0.6, 0.3, 0.9), 24: (0.7, 0.5, 0.9), 72: (0.5, 0.2, 0.8), 168: (0.3, 0.05, 0.55),
            336: (0.1, -0.3, 0.5)}  # fmt: skip
    table = check_claims(
        RIVALS + [{"id": "pk", "claim": "peak 24h", "source": "s", "check": "largest_of_windows",
                   "window": "24h"}],
        _pooled(), list(WINDOW_HOURS), time_response=tr_summary(pred), window_hours=WINDOW_HOURS,
    )  # fmt: skip
    assert set(TR_CLAIM_COLUMNS) <= set(table.columns)
    t = table.set_index("id")
    # 7 d lower bound 0.05 > 0: "superior at 7 days" supported, "limited to 3 days" not
    assert t.loc["d7", "verdict_time_response"] == "supported"
    assert t.loc["d3", "verdict_time_response"] == "not supported"
    assert (t.loc["d7", "estimate_tr"], t.loc["d7", "ci_low_tr"]) == (0.3, 0.05)
    assert t.loc["pk", "verdict_time_response"] == "supported"  # 0.7 at 24 h is the largest
    assert "peak of the curve at 20 h" in t.loc["pk", "details_tr"]
    dec = t.loc["d3", "rival_decision"]
    assert dec == t.loc["d7", "rival_decision"]
    assert "time-response: supports d7" in dec and "windows: neither decided" in dec
    assert "last time with lower CI bound > 0 = 100 h, interval 60-200 h" in dec
    assert dec.endswith("which contains 3d (72 h) and 7d (168 h))")
    assert t.loc["pk", "rival_decision"] == ""
    # 7 d CI includes 0: the 3-day claim wins; extrapolated 7 d: not testable
    pred[168] = (0.2, -0.1, 0.5)
    t = check_claims(RIVALS, _pooled(), list(WINDOW_HOURS), time_response=tr_summary(pred),
                     window_hours=WINDOW_HOURS).set_index("id")  # fmt: skip
    assert "time-response: supports d3" in t.loc["d3", "rival_decision"]
    t = check_claims(RIVALS, _pooled(), list(WINDOW_HOURS),
                     time_response=tr_summary(pred, note_at=168), window_hours=WINDOW_HOURS
                     ).set_index("id")  # fmt: skip
    assert t.loc["d7", "verdict_time_response"] == "not testable"
    assert "time-response: neither decided" in t.loc["d7", "rival_decision"]


def test_default_claims_name_the_duration_rivals() -> None:
    claims = yaml.safe_load((ROOT / CONFIG["claims_file"]).read_text())["claims"]
    rivals = {c["id"]: c.get("rivals") for c in claims}
    assert rivals["duration_3d"] == rivals["duration_7d"] == "duration"


# ---- coverage simulation ---------------------------------------------------------------------
def test_true_curve_shape() -> None:
    f = true_curve([0.5, 4, 24, 100, 240, 336])
    assert f[0] == 0 and f[2] == pytest.approx(0.6) and f[4] == f[5] == 0
    assert 0 < f[1] < f[2] and 0 < f[3] < f[2]


def _record(result: dict[str, float]) -> None:
    print("\ntime-response coverage:", {k: round(v, 3) for k, v in result.items()})


def test_coverage_simulation_20() -> None:
    """20 replicates (fast): recorded, not tuned; the assertions are sanity bounds only."""
    res = time_response_coverage(20)
    _record(res)
    assert res["n_rep"] == 20
    assert all(0 <= res[k] <= 1 for k in res if k.startswith("coverage"))
    assert 5 <= res["median_peak_h"] <= 100


def documented_coverage() -> tuple[dict[str, float], float]:
    """The 2-knot column of docs/time_response.md's coverage table (quantity -> value, the
    medians as median_peak_h / median_duration_h) and the quoted log-linear coverage."""
    text = (ROOT / "docs" / "time_response.md").read_text(encoding="utf-8")
    names = {
        "peak-time interval contains 24 h": "coverage_peak",
        "duration interval contains 240 h": "coverage_duration",
        "pointwise 95% CI at 24 h contains f(24 h)": "coverage_ci_24h",
        "pointwise 95% CI at 72 h contains f(72 h)": "coverage_ci_72h",
    }
    out: dict[str, float] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] in names:
            out[names[cells[0]]] = float(cells[1])
        elif cells[0].startswith("median estimated peak"):
            peak, duration = (float(v) for v in cells[1].split("/"))
            out |= {"median_peak_h": peak, "median_duration_h": duration}
    loglinear = re.search(r"in (\d+(?:\.\d+)?)% of 200 replicates", text)
    assert len(out) == 6 and loglinear, "docs/time_response.md: coverage table not found"
    return out, float(loglinear.group(1)) / 100


@pytest.mark.slow
def test_coverage_simulation_200() -> None:
    """200 replicates of the peaked curve reproduce the numbers quoted in
    docs/time_response.md (target >= 90% for peak and duration; not met, see the docs), to
    within 4 replicates (0.02) for a proportion and 2% for a median: the seed fixes the data,
    and only an optimiser's last digits, which differ between CPUs, could flip a borderline
    replicate. The calibration check where the model has no approximation bias: with a
    log-linear true curve, the pointwise 95% CIs at 24 h and 72 h must cover in >= 88% of 200
    replicates (binomial sd at 95% ~1.5%; REML with 30 studies and z quantiles runs slightly
    low), and the coverage the docs quote is reproduced."""
    quoted, quoted_loglinear = documented_coverage()
    res = time_response_coverage(200)
    _record(res)
    assert res["n_rep"] == 200
    for name, value in quoted.items():
        tol = 0.02 * value if name.startswith("median") else 0.02
        assert abs(res[name] - value) <= tol, (name, res[name], value)
    calib = time_response_coverage(200, curve="loglinear")
    _record(calib)
    assert calib["coverage_ci_24h"] >= 0.88 and calib["coverage_ci_72h"] >= 0.88
    assert abs(calib["coverage_ci_24h"] - quoted_loglinear) <= 0.02
    assert abs(calib["coverage_ci_72h"] - quoted_loglinear) <= 0.02


def test_window_model_accepts_car(all_times, rows) -> None:
    """timecourse.struct: CAR -- the window means with CAR over the windows' log nominal hours
    equal fit_timecourse(struct = "CAR", times = log hours) (golden-tested in
    test_time_response.py)."""
    from timecourse_meta.models.multivariate import fit_timecourse
    from timecourse_meta.pipeline.timecourse_tables import (
        build_timecourse_tables,
        parse_timecourse_config,
    )

    windows = parse_windows(CONFIG["windows"])
    tps = windows["label"].tolist()
    hours = windows.set_index("label")["nominal"].to_dict()
    res = select_windows(rows, windows, CONFIG["window_choice"], CONFIG["include"],
                         CONFIG["exclude_studies"])  # fmt: skip
    eff, _ = compute_effects(res.rows[res.rows["sheet_format"] == "extraction"])
    eff = pd.concat([eff, precomputed_effects(res.rows, measure_default="SMD")])
    spec = parse_timecourse_config(
        {**CONFIG["timecourse"], "struct": "CAR", "structures": ["AR", "CAR"]}, tps
    )
    t = build_timecourse_tables(eff, tps, hours, spec, outcome="score", measure="SMD")
    assert set(t.structures["struct"]) == {"AR", "CAR"}
    d = eff[(eff["outcome"] == "score") & (eff["measure"] == "SMD")]
    direct = fit_timecourse(
        d["comparison_id"], d["timepoint"], d["yi"], d["vi"], struct="CAR", within="ar",
        rho=CONFIG["timecourse"]["rho"], timepoint_order=tps,
        times={tp: math.log(h) for tp, h in hours.items()},
    )  # fmt: skip
    np.testing.assert_allclose(t.model["estimate"], direct.beta, rtol=1e-10)
