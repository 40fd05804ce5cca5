"""leave_one_out, influence and cumulative against metafor 3.8.1 (golden file) and by hand."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from timecourse_meta.diagnostics.influence import cumulative, influence, leave_one_out

FIXTURES = Path(__file__).parent / "fixtures" / "metafor"
GOLDEN = json.loads((FIXTURES / "diagnostics_golden.json").read_text())
DATA = GOLDEN["datasets"]
RTOL = 1e-6


def arr(values: list) -> np.ndarray:
    """JSON list -> float array (R's NA/NaN arrive as null)."""
    return np.array([np.nan if x is None else x for x in values], dtype=float)


def split(case: str) -> tuple[str, str]:
    method, test = case.split("_")[:2]
    return method, test


CASES = [(d, c) for d in GOLDEN["leave1out"] for c in GOLDEN["leave1out"][d]]


@pytest.mark.parametrize(("dataset", "case"), CASES)
def test_leave_one_out_matches_metafor(dataset: str, case: str) -> None:
    method, test = split(case)
    d = DATA[dataset]
    out = leave_one_out(d["yi"], d["vi"], method=method, test=test)
    gold = GOLDEN["leave1out"][dataset][case]
    # for FE fits metafor has no tau2 column; the R script stores zeros there
    for col, values in gold.items():
        np.testing.assert_allclose(out[col].to_numpy(), arr(values), rtol=RTOL, err_msg=col)
    assert out["converged"].all()
    assert out.attrs["stat_name"] == ("t" if test == "knha" else "z")


@pytest.mark.parametrize(("dataset", "case"), CASES)
def test_influence_matches_metafor(dataset: str, case: str) -> None:
    method, test = split(case)
    d = DATA[dataset]
    out = influence(d["yi"], d["vi"], method=method, test=test)
    gold = GOLDEN["influence"][dataset][case]
    for col, values in gold.items():
        if col == "inf":
            assert out["inf"].tolist() == values
        else:
            np.testing.assert_allclose(out[col].to_numpy(), arr(values), rtol=RTOL, err_msg=col)


def test_influence_flags_are_exercised() -> None:
    # the golden cases must contain flagged and unflagged studies, or the flag test is vacuous
    flags = [f for d in GOLDEN["influence"].values() for c in d.values() for f in c["inf"]]
    assert any(flags) and not all(flags)


CUMUL = [(d, c) for d in GOLDEN["cumul"] for c in GOLDEN["cumul"][d]]


@pytest.mark.parametrize(("dataset", "case"), CUMUL)
def test_cumulative_matches_metafor(dataset: str, case: str) -> None:
    method, test = split(case)
    d = DATA[dataset]
    gold = dict(GOLDEN["cumul"][dataset][case])
    order = d["year"] if case.endswith("_byyear") else None
    out = cumulative(d["yi"], d["vi"], order=order, method=method, test=test)
    if order is not None:
        # R's order() is 1-based and stable: ties in year keep the data order
        assert (out["position"].to_numpy() + 1).tolist() == gold.pop("order")
    for col, values in gold.items():
        np.testing.assert_allclose(out[col].to_numpy(), arr(values), rtol=RTOL, err_msg=col)
    assert out["k"].tolist() == list(range(1, len(d["yi"]) + 1))


def test_leave_one_out_two_studies_by_hand() -> None:
    # omitting one of two studies leaves the other: estimate = y, se = sqrt(v) = 0.2 / 0.3,
    # z = y / se, Q = 0 with p = 1, tau2 = 0 (metafor's k = 1 rule, z test even for knha)
    out = leave_one_out([0.5, -0.3], [0.04, 0.09], method="REML", test="knha")
    np.testing.assert_allclose(out["estimate"], [-0.3, 0.5])
    np.testing.assert_allclose(out["se"], [0.3, 0.2])
    np.testing.assert_allclose(out["stat"], [-1.0, 2.5])
    np.testing.assert_allclose(out["pval"], 2 * stats.norm.sf([1.0, 2.5]))
    np.testing.assert_allclose(out[["Q", "Q_p", "tau2"]].to_numpy(), [[0, 1, 0], [0, 1, 0]])


def test_cumulative_decreasing_order_keeps_ties_in_input_order() -> None:
    # keys 2, 1, 2 decreasing -> positions 0, 2 (tie kept in input order), then 1
    y, v = [0.1, 0.2, 0.3], [0.01, 0.02, 0.03]
    out = cumulative(y, v, order=[2, 1, 2], decreasing=True, method="FE")
    assert out["position"].tolist() == [0, 2, 1]
    assert out.index.tolist() == [0, 2, 1]
    assert out["estimate"].iloc[0] == pytest.approx(0.1)
    # second row: inverse-variance mean of studies 0 and 2: (0.1/0.01 + 0.3/0.03) / (100 + 100/3)
    assert out["estimate"].iloc[1] == pytest.approx((10 + 10) / (100 + 100 / 3))


def test_labels_and_validation() -> None:
    out = leave_one_out([0.1, 0.2, 0.4], [0.01, 0.02, 0.03], labels=["a", "b", "c"])
    assert out.index.tolist() == ["a", "b", "c"]
    with pytest.raises(ValueError, match="finite"):
        leave_one_out([0.1, math.nan, 0.4], [0.01, 0.02, 0.03])
    with pytest.raises(ValueError, match="length"):
        influence([0.1, 0.2], [0.01, 0.02], labels=["a"])
    with pytest.raises(ValueError, match="at least 2"):
        influence([0.1], [0.01])


def _assert_close_tree(a: object, b: object, path: str = "") -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for key in a:
            _assert_close_tree(a[key], b[key], f"{path}/{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_close_tree(x, y, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-300), path
    else:
        assert a == b, path


def _has_metafor() -> bool:
    if shutil.which("Rscript") is None:
        return False
    check = subprocess.run(
        ["Rscript", "-e", "quit(status = !requireNamespace('metafor', quietly = TRUE))"],
        capture_output=True,
    )
    return check.returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _has_metafor(), reason="Rscript with metafor not available")
def test_golden_file_is_reproduced_by_the_r_script(tmp_path: Path) -> None:
    out = tmp_path / "golden.json"
    subprocess.run(
        ["Rscript", str(FIXTURES / "diagnostics_golden.R"), str(out)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    fresh = json.loads(out.read_text())
    if fresh["metafor_version"] != GOLDEN["metafor_version"]:
        pytest.skip(f"installed metafor {fresh['metafor_version']} != {GOLDEN['metafor_version']}")
    fresh.pop("R_version")
    committed = dict(GOLDEN)
    committed.pop("R_version")
    _assert_close_tree(fresh, committed)
