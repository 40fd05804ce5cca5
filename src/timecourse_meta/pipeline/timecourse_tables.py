"""Workflow tables of the multivariate time-course model (all windows fitted jointly).

The per-window pooled tables treat each window as a separate meta-analysis. Here the effects
of one outcome and measure at all windows are fitted jointly with
:func:`timecourse.fit_timecourse` (metafor ``rma.mv(yi, V, mods = ~ time - 1,
random = ~ time | study, struct = ...)``, ``V`` from ``vcalc()``), and turned into
deterministic tables:

* :func:`model_table` -- one row per configured window (k = 0 windows listed, not estimated);
* :func:`contrast_table` -- differences between windows, a linear trend and the equality test;
* :func:`structure_table` -- every configured G structure, fitted or failed, with AIC/BIC/AICc
  and likelihood-ratio tests of nested structures (metafor ``fitstats``, ``anova``);
* :func:`rho_sensitivity_table` -- window means and contrasts over a grid of assumed
  within-study correlations.

Study unit: the comparison (``comparison_id``). ``fit_timecourse`` has one random effect per
study, so the comparisons of a multi-arm trial (several doses against one control) enter as
separate, independent studies. Their shared control is split across them upstream (flag
``control_split_<k>_ways``, Cochrane Handbook 23.3.4), which avoids double counting the control
participants but leaves their correlation unmodelled; every row informed by such comparisons
says so in ``warnings``.

Nothing is dropped silently: a fit that fails is listed with ``status = "failed"`` and its
reason, a window with no data with ``status = "no data"``, and every NA is explained in
``warnings`` (or ``note``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from timecourse_meta.distributions import norm_ppf
from timecourse_meta.models.multivariate import (
    TimecourseResult,
    compare_fits,
)
from timecourse_meta.pipeline.tables import format_value
from timecourse_meta.pipeline.timecourse_fits import (
    OK,
    OVERPARAMETERISED,
    FitOutcome,
    fit_safely,
    timecourse_data,
    variance_df,
)
from timecourse_meta.pipeline.timecourse_spec import (
    TimecourseSpec,
    parse_timecourse_config,
)
from timecourse_meta.schema import CONTRAST_COLUMNS, MODEL_COLUMNS, RHO_COLUMNS, STRUCTURE_COLUMNS

__all__ = [
    "CONTRAST_COLUMNS",
    "MODEL_COLUMNS",
    "RHO_COLUMNS",
    "STRUCTURE_COLUMNS",
    "TimecourseSpec",
    "TimecourseTables",
    "build_timecourse_tables",
    "contrast_table",
    "model_table",
    "parse_timecourse_config",
    "rho_sensitivity_table",
    "structure_table",
]

# row statuses of the tables besides a fit's own (`timecourse_fits`)
NO_DATA, NOT_ESTIMABLE = "no data", "not estimable"
SEP = " | "  # between warnings (the fit's own warnings may contain ';')


def _split_warnings(messages: Sequence[str], timepoints: Sequence[str]) -> dict[str, list[str]]:
    """Messages naming a window ('7d') go to that window only; the others to every window."""
    out: dict[str, list[str]] = {tp: [] for tp in timepoints}
    for msg in messages:
        named = [tp for tp in timepoints if f"'{tp}'" in msg]
        for tp in named or timepoints:
            out[tp].append(msg)
    return out


def _settings(spec: TimecourseSpec, struct: str, rho: float) -> dict[str, object]:
    return {"struct": struct, "within": spec.within, "rho": rho, "method": spec.method}


# --------------------------------------------------------------------------------------------
# tables


def model_table(
    fit: FitOutcome,
    data: pd.DataFrame,
    timepoints: Sequence[str],
    hours: Mapping[str, float],
    spec: TimecourseSpec,
    *,
    outcome: str,
    measure: str,
    notes: Mapping[str, Sequence[str]] | None = None,
    struct: str | None = None,
    rho: float | None = None,
) -> pd.DataFrame:
    """One row per configured window: k, the units, the model's mean with SE, CI and p, and
    the window's tau^2 (one common tau^2 for CS/AR). ``notes``: multi-arm notes per window."""
    struct = spec.struct if struct is None else struct
    rho = spec.rho if rho is None else rho
    res = fit.result
    per_tp = _split_warnings(fit.warnings, timepoints)
    est = res.estimates.set_index("timepoint") if res is not None else None
    rows = []
    for tp in timepoints:
        at = data[data["timepoint"] == tp]
        k = len(at)
        row: dict[str, object] = {
            "outcome": outcome,
            "measure": measure,
            "timepoint": tp,
            "hours": float(hours.get(tp, np.nan)),
            "k": k,
            "studies": ";".join(sorted(at["unit"].tolist())),
            **_settings(spec, struct, rho),
        }
        msgs = list(per_tp[tp]) + list((notes or {}).get(tp, []))
        if est is not None and tp in est.index:
            e = est.loc[tp]
            j = res.timepoints.index(tp)  # type: ignore[union-attr]
            tau2 = res.tau2[j] if res.tau2.size > 1 else res.tau2[0]  # type: ignore[union-attr]
            row.update(
                estimate=float(e["estimate"]),
                se=float(e["se"]),
                ci_low=float(e["ci_low"]),
                ci_high=float(e["ci_high"]),
                pval=float(e["pval"]),
                tau2=float(tau2),
                converged=bool(res.converged),  # type: ignore[union-attr]
                status=fit.status,
            )
        else:
            if k == 0:
                status = NO_DATA
                msgs = [
                    f"k = 0: no study reports {outcome} ({measure}) in window {tp}; not estimated"
                ]
            else:
                status = fit.status if fit.result is None else NOT_ESTIMABLE
                msgs = [fit.error or "window not in the fitted model"] + msgs
            row.update(
                estimate=np.nan,
                se=np.nan,
                ci_low=np.nan,
                ci_high=np.nan,
                pval=np.nan,
                tau2=np.nan,
                converged=bool(res.converged) if res is not None else False,
                status=status,
            )
        row["warnings"] = SEP.join(dict.fromkeys(msgs))
        rows.append(row)
    return pd.DataFrame(rows, columns=list(MODEL_COLUMNS))


def _trend_matrix(observed: Sequence[str], timepoints: Sequence[str]) -> np.ndarray:
    """Least-squares slope of the means on their positions in the configured window order
    (weights (p - mean p) / sum (p - mean p)^2): per window step, gaps counted."""
    pos = np.array([list(timepoints).index(t) for t in observed], dtype=float)
    c = pos - pos.mean()
    return (c / (c @ c))[None, :]


def contrast_table(
    fit: FitOutcome,
    data: pd.DataFrame,
    timepoints: Sequence[str],
    spec: TimecourseSpec,
    *,
    outcome: str,
    measure: str,
    struct: str | None = None,
    rho: float | None = None,
) -> pd.DataFrame:
    """Configured differences between windows (Wald z), the linear trend over the window
    positions (z, 1 df) and the test that all window means are equal (QM, T - 1 df); metafor
    ``anova(res, X = L)``. ``k`` is the smallest k among the windows involved."""
    struct = spec.struct if struct is None else struct
    rho = spec.rho if rho is None else rho
    res = fit.result
    k_of = data["timepoint"].value_counts().to_dict()
    observed = res.timepoints if res is not None else []
    crit = norm_ppf(1 - (1 - spec.level) / 2)
    terms: list[tuple[str, str, list[str]]] = [
        (f"{a} - {b}", "difference", [a, b]) for a, b in spec.contrasts
    ]
    terms += [
        ("linear trend per window step", "linear trend", list(observed)),
        ("all window means equal", "equality", list(observed)),
    ]
    rows = []
    for label, kind, wins in terms:
        row: dict[str, object] = {
            "outcome": outcome,
            "measure": measure,
            "contrast": label,
            "type": kind,
            "windows": ";".join(wins),
            "k": min((int(k_of.get(w, 0)) for w in wins), default=0),
            **_settings(spec, struct, rho),
        }
        nan = dict.fromkeys(
            ("estimate", "se", "ci_low", "ci_high", "statistic", "df", "pval"), np.nan
        )
        stat_type = "QM" if kind == "equality" else "z"
        msgs: list[str] = []
        if res is None:
            row.update(nan, stat_type=stat_type, status=fit.status)
            msgs.append(fit.error)
        elif kind == "difference" and any(w not in observed for w in wins):
            row.update(nan, stat_type=stat_type, status=NOT_ESTIMABLE)
            missing = [w for w in wins if w not in observed]
            msgs.append(f"window(s) {', '.join(missing)} have no data (k = 0)")
        elif len(observed) < 2:
            row.update(nan, stat_type=stat_type, status=NOT_ESTIMABLE)
            msgs.append("fewer than two windows with data")
        else:
            if kind == "difference":
                L = np.array([[1.0 if t == wins[0] else -1.0 if t == wins[1] else 0.0
                               for t in observed]])  # fmt: skip
            elif kind == "linear trend":
                L = _trend_matrix(observed, timepoints)
            else:
                L = np.hstack([-np.ones((len(observed) - 1, 1)), np.eye(len(observed) - 1)])
            w = res.wald(L)
            if kind == "equality":
                row.update(
                    estimate=np.nan, se=np.nan, ci_low=np.nan, ci_high=np.nan,
                    statistic=w.QM, df=w.df, pval=w.QM_pval,
                )  # fmt: skip
                msgs.append("joint test (chi-square): no single estimate")
            else:
                e, s = float(w.estimate[0]), float(w.se[0])
                row.update(
                    estimate=e, se=s, ci_low=e - crit * s, ci_high=e + crit * s,
                    statistic=float(w.z[0]), df=1, pval=float(w.pval[0]),
                )  # fmt: skip
            row.update(stat_type=stat_type, status=fit.status)
            single = [t for t in wins if k_of.get(t, 0) == 1]
            if single:
                msgs.append(f"window(s) {', '.join(single)} rest on a single study")
            if kind != "difference":
                absent = [t for t in timepoints if t not in observed]
                if absent:
                    msgs.append(f"windows without data ({', '.join(absent)}) not included")
            if fit.status != OK:
                msgs.append(f"model status: {fit.status}")
        row["warnings"] = SEP.join(m for m in dict.fromkeys(msgs) if m)
        rows.append(row)
    return pd.DataFrame(rows, columns=list(CONTRAST_COLUMNS))


def _fmt(x: float) -> str:
    return format_value(float(x), digits=4)


def _g_text(res: TimecourseResult) -> tuple[str, str]:
    """tau^2 per window and the G correlation(s) as text (UN: every estimated pair)."""
    tps = res.timepoints
    if res.tau2.size == 1:
        tau2 = _fmt(res.tau2[0])
    else:
        tau2 = ";".join(f"{t}={_fmt(v)}" for t, v in zip(tps, res.tau2, strict=True))
    if res.rho_fixed:
        return tau2, "fixed 0"
    if np.ndim(res.rho) == 0:
        return tau2, _fmt(float(res.rho))  # type: ignore[arg-type]
    R = np.asarray(res.rho)
    pairs = [f"{tps[i]}~{tps[j]}={_fmt(R[i, j])}" for i in range(len(tps)) for j in range(i)]
    return tau2, ";".join(pairs)


def structure_table(
    data: pd.DataFrame,
    timepoints: Sequence[str],
    spec: TimecourseSpec,
    *,
    outcome: str,
    measure: str,
    fitter: Callable[..., FitOutcome] = fit_safely,
) -> pd.DataFrame:
    """Every structure of ``spec.structures`` fitted to the same data (metafor ``fitstats`` and
    ``anova(full, reduced)`` via :func:`timecourse.compare_fits`), failed fits listed with the
    reason. ``delta_AIC``: AIC minus the smallest AIC among fits with status ok. ``fitter``:
    `fit_safely` or a function like it (`build_timecourse_tables` passes one that reuses fits)."""
    fits = {s: fitter(data, timepoints, spec, struct=s) for s in spec.structures}
    fitted = {s: f.result for s, f in fits.items() if f.result is not None}
    cmp = compare_fits(fitted) if fitted else pd.DataFrame(columns=["struct", "reduced"])
    ok_aic = [fits[s].result.aic for s in fitted if fits[s].status == OK]  # type: ignore[union-attr]
    best = min(ok_aic) if ok_aic else np.nan
    rows = []
    for s in spec.structures:
        f = fits[s]
        base: dict[str, object] = {
            "outcome": outcome,
            "measure": measure,
            "struct": s,
            "configured": s == spec.struct,
            "status": f.status,
            **{k: v for k, v in _settings(spec, s, spec.rho).items() if k != "struct"},
        }
        if f.result is None:
            rows.append(base | {"converged": False, "reduced": "", "note": f.error})
            continue
        res = f.result
        n_var, df = variance_df(res)
        tau2, g_rho = _g_text(res)
        base |= {"n_var_params": n_var, "resid_df": df, "tau2": tau2, "G_rho": g_rho}
        base["delta_AIC"] = res.aic - best if np.isfinite(best) else np.nan
        for r in cmp[cmp["struct"] == s].to_dict("records"):
            note = [str(r["note"])]
            red = str(r["reduced"])
            if red and fits[red].status != OK:
                note.append(f"LRT unreliable: {red} is {fits[red].status}")
            if red and f.status != OK:
                note.append(f"LRT unreliable: {s} is {f.status}")
            if f.status == OVERPARAMETERISED:
                note.append(f.warnings[-1])
            if not np.isfinite(best):
                note.append("delta_AIC not computed: no structure has status ok")
            rows.append(base | {k: r[k] for k in ("converged", "loglik", "n_params", "AIC",
                                                  "BIC", "AICc", "reduced", "LRT", "df",
                                                  "pval")} | {"note": "; ".join(note)})  # fmt: skip
    out = pd.DataFrame(rows, columns=list(STRUCTURE_COLUMNS))
    out["converged"] = out["converged"].astype(bool)
    out["configured"] = out["configured"].astype(bool)
    return out


def rho_sensitivity_table(
    data: pd.DataFrame,
    timepoints: Sequence[str],
    hours: Mapping[str, float],
    spec: TimecourseSpec,
    *,
    outcome: str,
    measure: str,
    notes: Mapping[str, Sequence[str]] | None = None,
    fitter: Callable[..., FitOutcome] = fit_safely,
) -> pd.DataFrame:
    """The configured structure refitted for each within-study correlation in ``rho_grid``:
    window means (term_type ``window``) and the contrasts of :func:`contrast_table`.
    ``fitter``: as in :func:`structure_table`."""
    parts = []
    for rho in spec.rho_grid:
        fit = fitter(data, timepoints, spec, rho=rho)
        kw = {"outcome": outcome, "measure": measure, "rho": rho}
        m = model_table(fit, data, timepoints, hours, spec, notes=notes, **kw)  # type: ignore[arg-type]
        m = m.assign(term_type="window", term=m["timepoint"])
        c = contrast_table(fit, data, timepoints, spec, **kw)  # type: ignore[arg-type]
        c = c.assign(term_type=c["type"], term=c["contrast"])
        parts += [m.reindex(columns=list(RHO_COLUMNS)), c.reindex(columns=list(RHO_COLUMNS))]
    return pd.concat(parts, ignore_index=True)


@dataclass
class TimecourseTables:
    """The four workflow tables and the primary fit."""

    model: pd.DataFrame
    contrasts: pd.DataFrame
    structures: pd.DataFrame
    rho_sensitivity: pd.DataFrame
    fit: FitOutcome


def build_timecourse_tables(
    effects: pd.DataFrame,
    timepoints: Sequence[str],
    hours: Mapping[str, float],
    spec: TimecourseSpec,
    *,
    outcome: str,
    measure: str,
) -> TimecourseTables:
    """All tables of the multivariate model for one outcome and measure (see module doc)."""
    data, notes = timecourse_data(effects, outcome, measure)
    spec = replace(spec, log_hours=tuple((tp, float(np.log(hours[tp]))) for tp in timepoints))
    kw = {"outcome": outcome, "measure": measure}
    fits: dict[tuple[str, float], FitOutcome] = {}

    def reused(data, timepoints, spec, *, struct=None, rho=None) -> FitOutcome:
        """fit_safely, once per (structure, rho): the configured structure at the configured
        rho is also a row of the structure table and of the rho sensitivity (same data, same
        deterministic fit)."""
        key = (spec.struct if struct is None else struct, spec.rho if rho is None else rho)
        if key not in fits:
            fits[key] = fit_safely(data, timepoints, spec, struct=key[0], rho=key[1])
        return fits[key]

    fit = reused(data, timepoints, spec)
    return TimecourseTables(
        model=model_table(fit, data, timepoints, hours, spec, notes=notes, **kw),
        contrasts=contrast_table(fit, data, timepoints, spec, **kw),
        structures=structure_table(data, timepoints, spec, fitter=reused, **kw),
        rho_sensitivity=rho_sensitivity_table(
            data, timepoints, hours, spec, notes=notes, fitter=reused, **kw
        ),
        fit=fit,
    )
