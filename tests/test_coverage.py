"""The coverage simulation on a small grid with few replicates: shape, determinism, plausibility.

Plausibility bounds are wide on purpose (400 replicates: Monte Carlo SE of a proportion near
0.95 is sqrt(0.95 * 0.05 / 400) = 0.011): they catch a broken study (coverage 0.5 or 1.0), not
the third decimal. The full study is the workflow's `coverage` rule.
"""

from __future__ import annotations

import numpy as np
import pytest

from timecourse_meta.plots.coverage_plot import plot_coverage
from timecourse_meta.simulation.coverage import (
    COLUMNS,
    METHODS,
    TESTS,
    _pi_cover_prob,
    coverage_cell,
    run_coverage,
    simulate_smd,
)

N_REP = 400
GRID_K = (5, 50)
GRID_TAU2 = (0.0, 0.2)


@pytest.fixture(scope="module")
def table():
    return run_coverage(grid_k=GRID_K, grid_tau2=GRID_TAU2, n_rep=N_REP)


def pick(table, k, tau2, method, test, interval):
    row = table[
        (table["k"] == k) & (table["tau2"] == tau2) & (table["method"] == method)
        & (table["test"] == test) & (table["interval"] == interval)
    ]  # fmt: skip
    assert len(row) == 1
    return row.iloc[0]


def test_shape_and_columns(table) -> None:
    assert list(table.columns) == list(COLUMNS)
    assert len(table) == len(GRID_K) * len(GRID_TAU2) * len(METHODS) * len(TESTS) * 2
    assert table["coverage"].between(0, 1).all()
    assert (table["n_fitted"] + table["n_failed"] == N_REP).all()
    assert (table["mcse"] > 0).all() and (table["mean_width"] > 0).all()


def test_plausible_coverage(table) -> None:
    # No heterogeneity, many studies: the Wald DL CI is about right.
    assert 0.90 <= pick(table, 50, 0.0, "DL", "z", "CI")["coverage"] <= 0.99
    # Knapp-Hartung keeps the nominal level at small k with heterogeneity ...
    knha = pick(table, 5, 0.2, "REML", "knha", "CI")["coverage"]
    assert 0.90 <= knha <= 0.99
    # ... where the Wald CI under-covers (same simulated data, so the comparison is paired).
    wald = pick(table, 5, 0.2, "REML", "z", "CI")["coverage"]
    assert wald < knha - 0.02
    assert 0.75 <= wald <= 0.95


def test_deterministic_and_cell_independent(table) -> None:
    again = coverage_cell(5, 0.2, n_rep=N_REP)
    sub = table[(table["k"] == 5) & (table["tau2"] == 0.2)]
    np.testing.assert_array_equal(sub["coverage"].to_numpy(), [r["coverage"] for r in again])


def test_simulated_smd_is_centred_and_uses_the_smd_variance() -> None:
    rng = np.random.default_rng(1)
    yi, vi = simulate_smd(4, 0.0, 5000, rng, mu=0.5)
    assert yi.shape == vi.shape == (5000, 4)
    # Hedges' g is (nearly) unbiased: mean of 20 000 draws within 4 SE (SE <= sqrt(0.21/20000)).
    assert abs(yi.mean() - 0.5) < 4 * np.sqrt(0.21 / 20000)
    # vi = 1/n1 + 1/n2 + g^2 / (2 (n1 + n2)) with 10 <= n1, n2 <= 100, hence
    # 1/100 + 1/100 + g^2/400 <= vi <= 1/10 + 1/10 + g^2/40 (1e-12 slack for rounding).
    assert (vi >= 2 / 100 + yi**2 / 400 - 1e-12).all()
    assert (vi <= 2 / 10 + yi**2 / 40 + 1e-12).all()


def test_pi_cover_prob_hand_values() -> None:
    # [mu - 1.959964 tau, mu + 1.959964 tau] holds 95% of N(mu, tau^2); tau^2 = 0: indicator.
    tau = 0.5
    z = 1.959963984540054
    p = _pi_cover_prob(np.array([1 - z * tau]), np.array([1 + z * tau]), 1.0, tau**2)
    np.testing.assert_allclose(p, 0.95, rtol=1e-12)
    np.testing.assert_array_equal(
        _pi_cover_prob(np.array([0.0, 1.5]), np.array([2.0, 3.0]), 1.0, 0.0), [1.0, 0.0]
    )


def test_plot_builds(table) -> None:
    fig = plot_coverage(table)
    assert len(fig.axes) == 2 * len(GRID_TAU2)
