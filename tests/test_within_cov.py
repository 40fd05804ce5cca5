"""Within-study covariance (timecourse_meta.models.within_cov) against metafor 3.8.1 vcalc().

Golden matrices: tests/fixtures/metafor/rma_mv_golden.R ("vmats": upper-triangle non-zero
entries of vcalc(vi, cluster = study, time1 = position, phi = rho) for "ar" and
vcalc(vi, cluster = study, obs = position, rho = rho) for "cs").
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from timecourse_meta.errors import TimecourseMetaError
from timecourse_meta.models.within_cov import (
    timepoint_positions,
    within_correlation,
    within_study_cov,
)

GOLDEN = json.loads(
    (Path(__file__).parent / "fixtures" / "metafor" / "rma_mv_golden.json").read_text()
)


@pytest.mark.parametrize(
    "vm", GOLDEN["vmats"], ids=[f"{v['dataset']}-{v['within']}" for v in GOLDEN["vmats"]]
)
def test_matches_vcalc(vm: dict) -> None:
    ds = GOLDEN["datasets"][vm["dataset"]]
    V = within_study_cov(
        ds["study"], ds["time"], ds["vi"], vm["within"], vm["rho"], ds["timepoint_order"]
    ).toarray()
    n = len(ds["vi"])
    expected = np.zeros((n, n))
    expected[vm["row"], vm["col"]] = vm["value"]
    expected = np.triu(expected) + np.triu(expected, 1).T
    np.testing.assert_allclose(V, expected, rtol=1e-12, atol=0)


def test_ar_correlation_by_hand() -> None:
    # positions 0, 1, 3 with rho = 0.5: lags 1, 3, 2 -> 0.5, 0.125, 0.25
    R = within_correlation([0, 1, 3], "ar", 0.5)
    expected = np.array([[1, 0.5, 0.125], [0.5, 1, 0.25], [0.125, 0.25, 1]])
    np.testing.assert_allclose(R, expected, rtol=0, atol=1e-15)


def test_cs_correlation_and_same_position() -> None:
    # constant rho off the diagonal; two rows at the same position count as the same outcome
    # (correlation 1), as vcalc(c(1,2,3), cluster = 1, obs = c(1,1,2), rho = 0.5) gives
    # V[1,2] = sqrt(1 * 2) = 1.414214
    R = within_correlation([0, 0, 2], "cs", 0.3)
    expected = np.array([[1, 1, 0.3], [1, 1, 0.3], [0.3, 0.3, 1]])
    np.testing.assert_allclose(R, expected, rtol=0, atol=1e-15)
    V = within_study_cov(["a", "a", "a"], [1, 1, 2], [1.0, 2.0, 3.0], "cs", 0.5).toarray()
    assert V[0, 1] == pytest.approx(np.sqrt(2.0), rel=1e-14)
    assert V[0, 2] == pytest.approx(0.5 * np.sqrt(3.0), rel=1e-14)


def test_interleaved_rows_keep_input_order() -> None:
    # rows of studies a and b interleaved; V must be in input row order
    study = ["a", "b", "a", "b", "c"]
    time = ["24h", "4h", "4h", "7d", "4h"]
    vi = [4.0, 1.0, 9.0, 16.0, 2.0]
    order = ["4h", "24h", "7d"]
    V = within_study_cov(study, time, vi, "ar", 0.5, order).toarray()
    # a: 24h (pos 1) & 4h (pos 0): 0.5 * sqrt(4 * 9) = 3
    # b: 4h (pos 0) & 7d (pos 2): 0.25 * sqrt(1 * 16) = 1
    expected = np.diag(vi)
    expected[0, 2] = expected[2, 0] = 3.0
    expected[1, 3] = expected[3, 1] = 1.0
    np.testing.assert_allclose(V, expected, rtol=1e-14, atol=0)


def test_default_order_sorts_values() -> None:
    pos, order = timepoint_positions([24, 4, 168, 4])
    assert order == [4, 24, 168]
    assert pos.tolist() == [1, 0, 2, 0]


def test_errors() -> None:
    with pytest.raises(ValueError, match="rho"):
        within_correlation([0, 1], "ar", 1.0)
    with pytest.raises(ValueError, match="within"):
        within_correlation([0, 1], "toeplitz", 0.5)
    with pytest.raises(TimecourseMetaError, match="not in timepoint_order"):
        timepoint_positions(["4h", "9d"], ["4h", "24h"])
    with pytest.raises(TimecourseMetaError, match="duplicates"):
        timepoint_positions(["4h"], ["4h", "4h"])
