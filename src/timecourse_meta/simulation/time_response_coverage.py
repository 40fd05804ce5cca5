"""Coverage of the time-response model's intervals on data from a known curve.

Generating model (continuous time, log hours x = log t):

    f(t) = A cos^2(pi/2 (log 24 - x) / (log 24 - log 0.5))   0.5 h <= t <= 24 h  (rise)
    f(t) = A cos^2(pi/2 (x - log 24) / (log 240 - log 24))   24 h <= t <= 240 h  (decay)
    f(t) = 0                                                 t >= 240 h (10 days)

so the true peak is at 24 h and the true effect ends at 240 h (f > 0 before, = 0 after).
Each replicate: ``n_studies`` studies, each reporting ``m ~ U{2..5}`` distinct times drawn
log-uniformly on [0.5, 336] h; per-study ``v0 ~ U(0.02, 0.08)``, ``vi = v0 U(0.8, 1.25)``;
``y = f(t) + u + e`` with CAR between-study effects ``u`` (tau2, rho per log hour) and
sampling errors with ``V = vcalc(vi, study, time1 = log t, phi)``. The model (natural
spline, ``n_knots`` interior knots at quantiles, as the workflow's default) is fitted and the
following are recorded per replicate:

* peak: the bootstrap interval of the peak time contains 24 h;
* duration: the bootstrap interval of the duration contains 240 h (the time the effect ends).
  The duration statistic (last time whose lower CI bound > 0) is conservative by design: it is
  expected below 240 h, so this coverage measures how far "last significant time" is from "the
  time the effect ends", not only the interval's calibration;
* pointwise: the 95% CI of f at 24 h and at 72 h contains the true f (model check).

``curve = "loglinear"`` replaces f by ``0.5 - 0.08 log t`` (inside the spline's span: no
approximation bias), the check that the model's CIs themselves are calibrated.

Deterministic for a given seed (numpy default_rng).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from timecourse_meta.models.time_basis import make_basis
from timecourse_meta.models.time_response import vcalc_shared
from timecourse_meta.models.time_summary import fit_time_response, summary_rows

__all__ = ["loglinear_curve", "time_response_coverage", "true_curve"]

PEAK_H, END_H, START_H = 24.0, 240.0, 0.5


def true_curve(hours, amplitude: float = 0.6) -> np.ndarray:
    """The generating curve f(t) (module docstring)."""
    x = np.log(np.asarray(hours, dtype=float))
    xp, xe, xs = math.log(PEAK_H), math.log(END_H), math.log(START_H)
    u = np.where(x <= xp, (xp - x) / (xp - xs), (x - xp) / (xe - xp))
    f = amplitude * np.cos(np.pi / 2 * np.clip(u, 0, 1)) ** 2
    return np.where(u >= 1, 0.0, f)  # exactly 0 outside (0.5 h, 240 h)


def loglinear_curve(hours) -> np.ndarray:
    """A curve the spline represents exactly: 0.5 - 0.08 log t."""
    return 0.5 - 0.08 * np.log(np.asarray(hours, dtype=float))


def _simulate(rng: np.random.Generator, n_studies: int, tau2: float, rho: float, phi: float, f):
    study, hours, yi, vi = [], [], [], []
    for s in range(n_studies):
        m = int(rng.integers(2, 6))
        t = np.sort(np.exp(rng.uniform(math.log(START_H), math.log(336.0), m)))
        v = rng.uniform(0.02, 0.08) * rng.uniform(0.8, 1.25, m)
        x = np.log(t)
        G = tau2 * rho ** np.abs(x[:, None] - x[None, :])
        S = vcalc_shared(x, v, phi)
        y = f(t) + rng.multivariate_normal(np.zeros(m), G + S)
        study += [f"S{s:02d}"] * m
        hours += t.tolist()
        yi += y.tolist()
        vi += v.tolist()
    return study, np.array(hours), np.array(yi), np.array(vi)


def time_response_coverage(
    n_rep: int,
    seed: int = 20240612,
    n_studies: int = 30,
    tau2: float = 0.02,
    rho: float = 0.8,
    phi: float = 0.5,
    n_boot: int = 1000,
    n_grid: int = 150,
    n_knots: int = 2,
    curve: str = "peaked",
) -> dict[str, float]:
    """Run ``n_rep`` replicates; returns coverage proportions and median estimates."""
    f = {"peaked": true_curve, "loglinear": loglinear_curve}[curve]
    rng = np.random.default_rng(seed)
    hits = {"peak": 0, "duration": 0, "ci_24h": 0, "ci_72h": 0}
    peak_t, dur_t, n_ok = [], [], 0
    f24, f72 = f([24.0, 72.0])
    for rep in range(n_rep):
        study, hours, yi, vi = _simulate(rng, n_studies, tau2, rho, phi, f)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            tr = fit_time_response(
                study, hours, yi, vi, make_basis(hours, n_knots=n_knots), phi=phi
            )
        s = summary_rows(tr, n_grid, [24.0, 72.0], 336.0, n_boot, seed + rep)
        s = s.set_index("quantity")
        n_ok += 1
        pk, du = s.loc["peak"], s.loc["duration"]
        hits["peak"] += bool(pk["time_ci_low"] <= PEAK_H <= pk["time_ci_high"])
        hits["duration"] += bool(du["time_ci_low"] <= END_H <= du["time_ci_high"])
        pr = s.loc["prediction"]
        hits["ci_24h"] += bool(pr.iloc[0]["ci_low"] <= f24 <= pr.iloc[0]["ci_high"])
        hits["ci_72h"] += bool(pr.iloc[1]["ci_low"] <= f72 <= pr.iloc[1]["ci_high"])
        peak_t.append(pk["time_hours"])
        dur_t.append(du["time_hours"])
    out = {f"coverage_{k}": v / n_ok for k, v in hits.items()}
    out |= {
        "n_rep": float(n_ok),
        "median_peak_h": float(np.nanmedian(peak_t)),
        "median_duration_h": float(np.nanmedian(dur_t)),
    }
    return out
