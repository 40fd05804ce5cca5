"""Simulation study: empirical coverage of the pooled-effect CI and the prediction interval.

Why: the workflow reports Wald (z) or Knapp-Hartung (knha) intervals for a handful of trials per
time window; how often such intervals cover the truth at small k is the question behind the
choice of test (IntHout et al. 2014, BMC Med Res Methodol 14:25; Partlett & Riley 2017,
Stat Med 36:301-317, who show Wald-DL CIs under-cover badly at small k).

Design (fixed grid, fixed seed, common random numbers across methods and tests in a cell):

* true study effects theta_i ~ N(mu, tau^2) on the SMD scale, mu = :data:`MU`;
* per-arm sizes n1, n2 drawn uniformly from the integers in :data:`N_ARM`;
* each study's Cohen's d drawn from its exact sampling distribution with unit SD: the mean
  difference is N(theta_i, 1/n1 + 1/n2) and the pooled SD is sqrt(chi^2_{n1+n2-2} / (n1+n2-2));
  then Hedges' g and its variance 1/n1 + 1/n2 + g^2 / (2 (n1 + n2)) exactly as metafor's
  ``escalc("SMD")`` (``effect_sizes.smd_from_d``). The variance is estimated from the
  observed g, as in practice;
* every replicate is fitted with the batch engine (``batch.fit_random_effects_batch``).

Coverage of the CI: share of fitted replicates with ci_low <= mu <= ci_high. Coverage of the
prediction interval: probability that a new study's true effect theta_new ~ N(mu, tau^2) falls
inside [pi_low, pi_high], averaged over replicates (computed exactly per replicate as
Phi((hi - mu) / tau) - Phi((lo - mu) / tau); for tau^2 = 0 the indicator lo <= mu <= hi), which
has the same expectation as drawing theta_new but less Monte Carlo error. Replicates whose
estimator did not converge are excluded and counted in ``n_failed``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from timecourse_meta.distributions import norm_cdf
from timecourse_meta.effects.effect_sizes import smd_from_d
from timecourse_meta.models.batch import fit_random_effects_batch

Array = NDArray[np.float64]

GRID_K: tuple[int, ...] = (2, 3, 5, 10, 20, 50)
GRID_TAU2: tuple[float, ...] = (0.0, 0.05, 0.2, 0.5)
METHODS: tuple[str, ...] = ("DL", "REML", "PM")
# adhoc: Knapp-Hartung never narrower than Wald (metafor test = "adhoc"; Jackson et al. 2017)
TESTS: tuple[str, ...] = ("z", "knha", "adhoc")
MU = 0.5  # true mean SMD (a moderate effect)
N_ARM: tuple[int, int] = (10, 100)  # per-arm n drawn uniformly from these integers (inclusive)
N_REP = 10_000
SEED = 20240611
LEVEL = 0.95

COLUMNS = (
    "k", "tau2", "method", "test", "interval", "coverage", "mcse", "mean_width",
    "n_rep", "n_fitted", "n_failed",
)  # fmt: skip


def simulate_smd(
    k: int,
    tau2: float,
    n_rep: int,
    rng: np.random.Generator,
    mu: float = MU,
    n_arm: tuple[int, int] = N_ARM,
) -> tuple[Array, Array]:
    """``n_rep`` meta-analyses of ``k`` two-arm trials: Hedges' g and its variance (n_rep x k)."""
    shape = (n_rep, k)
    n1 = rng.integers(n_arm[0], n_arm[1] + 1, size=shape).astype(float)
    n2 = rng.integers(n_arm[0], n_arm[1] + 1, size=shape).astype(float)
    theta = mu + np.sqrt(tau2) * rng.standard_normal(shape)
    diff = theta + np.sqrt(1.0 / n1 + 1.0 / n2) * rng.standard_normal(shape)
    df = n1 + n2 - 2.0
    sp = np.sqrt(rng.chisquare(df) / df)
    return smd_from_d(diff / sp, n1, n2)


def _cell_rng(seed: int, k: int, tau2: float) -> np.random.Generator:
    """One generator per grid cell, independent of which other cells are run."""
    return np.random.default_rng([seed, k, int(round(tau2 * 1e6))])


def _pi_cover_prob(lo: Array, hi: Array, mu: float, tau2: float) -> Array:
    """P(lo <= theta_new <= hi) for theta_new ~ N(mu, tau2) (indicator when tau2 = 0)."""
    if tau2 == 0:
        return ((lo <= mu) & (mu <= hi)).astype(float)
    tau = np.sqrt(tau2)
    return norm_cdf((hi - mu) / tau) - norm_cdf((lo - mu) / tau)


def coverage_cell(
    k: int,
    tau2: float,
    n_rep: int = N_REP,
    seed: int = SEED,
    methods: Sequence[str] = METHODS,
    tests: Sequence[str] = TESTS,
    level: float = LEVEL,
    mu: float = MU,
) -> list[dict[str, object]]:
    """Coverage rows (CI and PI for every method x test) of one grid cell."""
    yi, vi = simulate_smd(k, tau2, n_rep, _cell_rng(seed, k, tau2), mu=mu)
    rows: list[dict[str, object]] = []
    for method in methods:
        for test in tests:
            res = fit_random_effects_batch(yi, vi, method=method, test=test, level=level)
            ok = res.converged
            n_ok = int(ok.sum())
            hits = {
                "CI": ((res.ci_low <= mu) & (mu <= res.ci_high)).astype(float)[ok],
                "PI": _pi_cover_prob(res.pi_low[ok], res.pi_high[ok], mu, tau2),
            }
            widths = {"CI": (res.ci_high - res.ci_low)[ok], "PI": (res.pi_high - res.pi_low)[ok]}
            for interval, h in hits.items():
                cov = float(h.mean()) if n_ok else float("nan")
                mcse = float(h.std(ddof=1) / np.sqrt(n_ok)) if n_ok > 1 else float("nan")
                rows.append(
                    {"k": k, "tau2": tau2, "method": method, "test": test, "interval": interval,
                     "coverage": cov, "mcse": mcse,
                     "mean_width": float(widths[interval].mean()) if n_ok else float("nan"),
                     "n_rep": n_rep, "n_fitted": n_ok, "n_failed": n_rep - n_ok}
                )  # fmt: skip
    return rows


def run_coverage(
    grid_k: Sequence[int] = GRID_K,
    grid_tau2: Sequence[float] = GRID_TAU2,
    n_rep: int = N_REP,
    seed: int = SEED,
    methods: Sequence[str] = METHODS,
    tests: Sequence[str] = TESTS,
    level: float = LEVEL,
) -> pd.DataFrame:
    """The whole study as a tidy table (one row per k x tau2 x method x test x interval).

    ``n_failed`` counts replicates whose tau^2 estimator did not converge (excluded from the
    coverage); ``mcse`` is the Monte Carlo standard error of ``coverage``.
    """
    rows = [
        row
        for k in grid_k
        for tau2 in grid_tau2
        for row in coverage_cell(k, tau2, n_rep, seed, methods, tests, level)
    ]
    return pd.DataFrame(rows, columns=list(COLUMNS))
