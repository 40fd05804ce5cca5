"""What a fitted time-response curve says: curve with bands, peak, onset, duration, tests.

On a grid of times spanning the reported times (log-spaced; no extrapolation):

* curve: ``f(t) = x(t)' b`` with pointwise CI ``f +/- z se`` and prediction band
  ``f +/- z sqrt(se^2 + tau2)`` (metafor ``predict.rma``); with ``robust``, the CR2 covariance
  and t quantiles with Satterthwaite df;
* peak: the grid time of the largest f; its size with the pointwise CI at that time;
* onset: the first grid time whose lower CI bound is > 0; duration: the last such time;
* intervals for the peak time, onset and duration: a parametric bootstrap of the fitted model's
  fixed part -- ``b* ~ N(b, Var b)`` (variance components fixed at their REML estimates), the
  statistic recomputed on each draw (argmax of f*, and first / last time with
  ``f*(t) - z se(t) > 0`` with the fitted se), percentile interval. Why: peak and duration are
  argmax / threshold-crossing functionals of the curve, not smooth in b, so a delta-method SE
  does not exist; a full refitting bootstrap would cost ~1000 REML fits, while the
  coefficient draws cost one matrix product (milliseconds) and are deterministic for a fixed
  seed. What it leaves out: the uncertainty of tau2 and rho (as the model-based CIs do).
* tests: "no change over time" (all non-intercept coefficients 0, Wald chi-square, or F with
  the robust option) and "effect at time T = 0" (Wald z, or t with Satterthwaite df).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from timecourse_meta.distributions import norm_sf, t_sf
from timecourse_meta.models.time_basis import TimeBasis
from timecourse_meta.models.time_response import CarFit, fit_car

__all__ = [
    "SUMMARY_COLUMNS",
    "TimeResponse",
    "boot_functionals",
    "curve_table",
    "fit_time_response",
    "summary_rows",
]

Array = NDArray[np.float64]
SUMMARY_COLUMNS = (
    "quantity",
    "time_hours",
    "time_ci_low",
    "time_ci_high",
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "stat",
    "df",
    "pval",
    "method",
    "note",
)


@dataclass
class TimeResponse:
    """A fitted model with its basis and the data it saw."""

    fit: CarFit
    basis: TimeBasis
    hours: Array  # reported time of each row
    studies: list[str]  # study of each row
    robust: bool = False

    def grid(self, n: int) -> Array:
        lo, hi = np.exp(self.basis.boundary[0]), np.exp(self.basis.boundary[1])
        g = np.exp(np.linspace(np.log(lo), np.log(hi), n))
        g[0], g[-1] = lo, hi
        return g

    def predict(self, hours: Sequence[float]) -> pd.DataFrame:
        out = self.fit.predict(self.basis.design(hours), robust=self.robust)
        out.insert(0, "time_hours", np.asarray(hours, dtype=float))
        return out


def curve_table(tr: TimeResponse, n_grid: int) -> pd.DataFrame:
    """The fitted curve on the grid: time_hours, estimate, se, ci_low, ci_high, pi_low, pi_high."""
    return tr.predict(tr.grid(n_grid)).drop(columns="df")


def _first_last(pos: NDArray[np.bool_]) -> tuple[Array, Array]:
    """Index of the first / last True per row (-1 if none)."""
    any_ = pos.any(axis=1)
    first = np.where(any_, pos.argmax(axis=1), -1)
    last = np.where(any_, pos.shape[1] - 1 - pos[:, ::-1].argmax(axis=1), -1)
    return first, last


def boot_functionals(tr: TimeResponse, grid: Array, n_boot: int, seed: int) -> dict[str, Array]:
    """Peak, onset and duration grid indices for ``n_boot`` draws b* ~ N(b, Var b) (-1: none)."""
    Xg = tr.basis.design(grid)
    cur = tr.predict(grid)
    crit = (cur["estimate"] - cur["ci_low"]).to_numpy() / cur["se"].to_numpy()
    V = tr.fit.robust().vcov if tr.robust else tr.fit.vcov
    rng = np.random.default_rng(seed)
    L = np.linalg.cholesky(V + 1e-14 * np.trace(V) * np.eye(V.shape[0]))
    draws = tr.fit.beta[None, :] + rng.standard_normal((n_boot, V.shape[0])) @ L.T
    F = draws @ Xg.T
    first, last = _first_last(F - crit * cur["se"].to_numpy() > 0)
    return {"peak": F.argmax(axis=1), "onset": first, "duration": last}


def _interval(idx: Array, grid: Array, level: float) -> tuple[float, float, float]:
    """Percentile interval of grid times at indices ``idx`` (-1 = none: below every time);
    returns (low, high, share of draws with none). A bound falling on "none" is NaN."""
    a = (1 - level) / 2
    none = float(np.mean(idx < 0))
    vals = np.where(idx < 0, -np.inf, np.log(grid[np.maximum(idx, 0)]))
    lo, hi = np.quantile(vals, [a, 1 - a], method="inverted_cdf")
    conv = [float(np.exp(v)) if np.isfinite(v) else np.nan for v in (lo, hi)]
    return conv[0], conv[1], none


def _row(quantity: str, t: float, tlo: float, thi: float, pr: pd.Series | None, **kw) -> dict:
    row = dict.fromkeys(SUMMARY_COLUMNS, np.nan)
    row.update(quantity=quantity, time_hours=t, time_ci_low=tlo, time_ci_high=thi, note="")
    if pr is not None:
        row.update({c: float(pr[c]) for c in ("estimate", "se", "ci_low", "ci_high")})
    row.update(kw)
    return row


def summary_rows(
    tr: TimeResponse,
    n_grid: int,
    predict_at: Sequence[float],
    test_at: float,
    n_boot: int,
    seed: int,
) -> pd.DataFrame:
    """Onset, peak, duration (with bootstrap time intervals), predictions and the two tests."""
    level = tr.fit.level
    grid = tr.grid(n_grid)
    cur = tr.predict(grid)
    boot = boot_functionals(tr, grid, n_boot, seed)
    lo_ok = (cur["ci_low"] > 0).to_numpy()
    first, last = _first_last(lo_ok[None, :])
    hmin, hmax = grid[0], grid[-1]
    z = "t (CR2, Satterthwaite df)" if tr.robust else "z"
    boot_txt = f"parametric bootstrap b* ~ N(b, Var b), {n_boot} draws, seed {seed}, percentile"
    rows = []
    for name, idx in (("onset", int(first[0])), ("duration", int(last[0]))):
        tlo, thi, none = _interval(boot[name], grid, level)
        if idx < 0:
            rows.append(_row(name, np.nan, tlo, thi, None, method=boot_txt,
                             note="no time on the grid has a lower CI bound > 0"))  # fmt: skip
            continue
        note = "first time whose lower CI bound > 0" if name == "onset" else (
            "last time whose lower CI bound > 0")  # fmt: skip
        if name == "onset" and idx == 0:
            note += f"; already at the earliest reported time ({hmin:g} h): onset <= {hmin:g} h"
        if name == "duration" and idx == grid.size - 1:
            note += f"; still at the latest reported time ({hmax:g} h): duration >= {hmax:g} h"
        if none > 0:
            note += f"; {100 * none:.1f}% of draws have no such time"
        rows.append(_row(name, grid[idx], tlo, thi, cur.iloc[idx], method=boot_txt, note=note))
    ip = int(cur["estimate"].to_numpy().argmax())
    tlo, thi, _ = _interval(boot["peak"], grid, level)
    note = "grid time of the largest fitted effect; size: pointwise CI at that time"
    if ip in (0, grid.size - 1):
        note += "; the maximum is at the edge of the reported times"
    rows.append(_row("peak", grid[ip], tlo, thi, cur.iloc[ip], method=boot_txt, note=note))
    pred = tr.predict(list(predict_at))
    for _, pr in pred.iterrows():
        t = float(pr["time_hours"])
        note = "" if hmin <= t <= hmax else (
            f"extrapolation: outside the reported times ({hmin:g}-{hmax:g} h)")  # fmt: skip
        st, df, pv = _z_or_t(pr, tr.robust)
        rows.append(_row("prediction", t, np.nan, np.nan, pr, method=f"model prediction, {z}",
                         note=note, stat=st, df=df, pval=pv))  # fmt: skip
    rows.append(_test_no_change(tr))
    rows.append(_test_at(tr, test_at, hmin, hmax))
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def _test_no_change(tr: TimeResponse) -> dict:
    p = tr.fit.p
    L = np.eye(p)[1:]
    w = tr.fit.wald(L, robust=tr.robust)
    kind = "HTZ F (CR2, clubSandwich; df = denominator df)" if tr.robust else "Wald chi-square"
    return _row("test_no_change", np.nan, np.nan, np.nan, None, stat=w["stat"], df=w["df"],
                pval=w["pval"], method=f"{kind}, H0: all {p - 1} time coefficients = 0",
                note=f"{p - 1} df")  # fmt: skip


def _z_or_t(pr: pd.Series, robust: bool) -> tuple[float, float, float]:
    """Wald statistic of H0: effect = 0 at one time: z, or t with Satterthwaite df."""
    stat = float(pr["estimate"] / pr["se"])
    if robust:
        df = float(pr["df"])
        return stat, df, float(2 * t_sf(abs(stat), df))
    return stat, np.nan, float(2 * norm_sf(abs(stat)))


def _test_at(tr: TimeResponse, t: float, hmin: float, hmax: float) -> dict:
    pr = tr.predict([t]).iloc[0]
    stat, df, pval = _z_or_t(pr, tr.robust)
    kind = "t (CR2, Satterthwaite df)" if tr.robust else "Wald z"
    note = "" if hmin <= t <= hmax else "extrapolation: outside the reported times"
    return _row("test_effect_at", t, np.nan, np.nan, pr, stat=stat, df=df, pval=pval,
                method=f"{kind}, H0: effect at this time = 0", note=note)  # fmt: skip


def fit_time_response(
    study: Sequence,
    hours: Sequence[float],
    yi: Sequence[float],
    vi: Sequence[float],
    basis: TimeBasis,
    *,
    unit: Sequence | None = None,
    arm: Sequence | None = None,
    control: Sequence | None = None,
    n_arm: Sequence[float] | None = None,
    n_control: Sequence[float] | None = None,
    phi: float = 0.5,
    rho: float | None = None,
    method: str = "REML",
    level: float = 0.95,
    robust: bool = False,
) -> TimeResponse:
    """Fit the time-response model on ``t = log hours`` (CAR and vcalc on log hours: ``phi``
    and ``rho`` are correlations per unit of log time, i.e. per e-fold change of time)."""
    h = np.asarray(hours, dtype=float)
    fit = fit_car(
        list(study), np.log(h), yi, vi, basis.design(h), phi=phi, unit=unit, arm=arm,
        control=control, n_arm=n_arm, n_control=n_control, rho=rho, method=method,
        level=level, coef_names=basis.names,
    )  # fmt: skip
    return TimeResponse(fit, basis, h, [str(s) for s in study], robust)
