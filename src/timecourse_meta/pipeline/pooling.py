"""Pool effects per time window (and per subgroup), test subgroup differences, sensitivity runs.

Each time window is a separate random-effects meta-analysis (metafor `rma`, via
`rma.fit_random_effects`) of the studies reporting the outcome in that window. Subgroup
estimates are separate models per level (each with its own tau^2, Borenstein et al. 2009,
ch. 19 "separate estimates of tau^2"); the test for subgroup differences is the omnibus Q_M
test of a mixed-effects meta-regression on the subgroup as a categorical moderator (metafor
`rma(yi, vi, mods = ~ factor(g))`, common tau^2), F-distributed under Knapp-Hartung.

Numerical edge cases never surface as a silent NA: k = 0, k = 1, k = 2, tau^2 at its boundary,
a huge ratio of sampling variances, and an estimator that does not converge are written into the
row's `warnings`. When `method` does not converge, `method_fallback` (default DL) is tried, as
metafor's `rma(..., method = c("REML", "DL"))`; the `method` column names the estimator used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from timecourse_meta.diagnostics.subgroups import subgroup_analysis
from timecourse_meta.distributions import logistic_cdf
from timecourse_meta.models.rma import fit_random_effects
from timecourse_meta.models.tau2 import ConvergenceError
from timecourse_meta.schema import (
    ALL_STUDIES,
    POOLED_COLUMNS,
    SENSITIVITY_COLUMNS,
    STUDY_WEIGHT_COLUMNS,
    SUBGROUP_COLUMNS,
    WEIGHT_KEYS,
)

__all__ = [
    "POOLED_COLUMNS",
    "SENSITIVITY_COLUMNS",
    "SUBGROUP_COLUMNS",
    "estimators",
    "pool_by_timepoint_weighted",
    "pool_group_weighted",
    "pool_by_timepoint",
    "pool_group",
    "pool_proportions",
    "subgroup_tests",
]


# The model-result columns of POOLED_COLUMNS (estimate ... pi_high), filled from the fit.
_RESULT_FIELDS = POOLED_COLUMNS[
    POOLED_COLUMNS.index("estimate") : POOLED_COLUMNS.index("pi_high") + 1
]


MAX_LISTED = 50  # study ids named in one warning; more are counted ("... and 99950 more")


def listed_ids(ids: Sequence[str], limit: int = MAX_LISTED) -> str:
    """The ids joined by ", ", at most `limit` of them, then "and N more" (a warning for a
    100 000-study sheet stays one readable line instead of 900 000 characters)."""
    ids = list(ids)
    if len(ids) <= limit:
        return ", ".join(ids)
    return ", ".join(ids[:limit]) + f" and {len(ids) - limit} more"


def _n_participants(group: pd.DataFrame, notes: list[str]) -> float:
    n = (
        group["n_total"].to_numpy(dtype=float)
        if "n_total" in group
        else np.full(len(group), np.nan)
    )
    missing = np.isnan(n)
    if missing.any():
        ids = listed_ids(sorted(group.loc[missing, "study_id"].astype(str).tolist()))
        notes.append(f"n_participants excludes studies without a sample size ({ids})")
    return float(n[~missing].sum()) if (~missing).any() else float("nan")


def estimators(method: str, method_fallback: str | None = "DL") -> list[str]:
    """The tau^2 estimators to try in order: `method`, then the fallback (metafor c(m, fb)).

    `method_fallback` None, "" or "none" means no fallback; a fallback equal to `method` is
    dropped.
    """
    first = str(method).upper()
    fb = "" if method_fallback is None else str(method_fallback).upper()
    return [first] if fb in ("", "NONE", first) else [first, fb]


def _explain_missing(row: dict[str, object], notes: list[str]) -> None:
    """Name every result field that is NA, so no NA in the table goes unexplained."""
    missing = [
        f
        for f in _RESULT_FIELDS
        if not np.isfinite(float(row.get(f, np.nan)))  # type: ignore[arg-type]
    ]
    if not missing:
        return
    k = int(row["k"])  # type: ignore[call-overload]
    why = (
        "not estimable with a single study"
        if k == 1
        else "could not be computed for these data; see the other warnings"
    )
    notes.append(f"NA in {', '.join(missing)}: {why}")


def pool_group(
    group: pd.DataFrame,
    *,
    method: str,
    test: str,
    level: float,
    method_fallback: str | None = "DL",
) -> dict[str, object]:
    """Pool one set of effects (`yi`, `vi`, `study_id`, `n_total`); return one table row.

    See `pool_group_weighted`, which also returns the study weights of the same fit.
    """
    return pool_group_weighted(
        group, method=method, test=test, level=level, method_fallback=method_fallback
    )[0]


def pool_group_weighted(
    group: pd.DataFrame,
    *,
    method: str,
    test: str,
    level: float,
    method_fallback: str | None = "DL",
) -> tuple[dict[str, object], np.ndarray]:
    """(table row, study weights in percent) for one set of effects, from one fit.

    The weights are metafor's `weights(res)` of the same `fit_random_effects` call as the row
    (w_i / sum w, w_i = 1 / (v_i + tau^2), Viechtbauer 2010 eq. 4), in the row order of
    `group`; NaN when nothing was fitted (k = 0 or no estimator converged).

    k = 0: a row of NA with the note; k = 1: the study's own estimate and Wald CI, nothing
    pooled (heterogeneity as metafor reports it for k = 1, explained in `warnings`);
    k >= 2: `fit_random_effects(yi, vi, [method, method_fallback], test, level)`. If no
    estimator converges the row is NA with the reason. Every NA field is named in `warnings`.
    """
    notes: list[str] = []
    k = len(group)
    row: dict[str, object] = {"k": k, "method": method, "test": test}
    label = "comparison_id" if "comparison_id" in group else "study_id"
    row["studies"] = ";".join(sorted(group[label].astype(str).tolist())) if k else ""
    row["n_participants"] = _n_participants(group, notes) if k else 0.0
    if k == 0:
        row.update({f: float("nan") for f in _RESULT_FIELDS})
        notes.append("k = 0: no study reports this outcome in this window; nothing to pool")
        row["method"] = "none"
        row["warnings"] = "; ".join(notes)
        return row, np.full(0, np.nan)
    try:
        res = fit_random_effects(
            group["yi"].to_numpy(float),
            group["vi"].to_numpy(float),
            method=estimators(method, method_fallback),
            test=test,
            level=level,
        )
    except ConvergenceError as err:
        row.update({f: float("nan") for f in _RESULT_FIELDS})
        row["method"] = "none (not converged)"
        tried = " then ".join(estimators(method, method_fallback))
        detail = str(err).replace("; falling back", "")
        notes.insert(0, f"no tau^2 estimator converged (tried {tried}: {detail}); nothing pooled")
        _explain_missing(row, notes)
        row["warnings"] = "; ".join(notes)
        return row, np.full(k, np.nan)
    row.update({f: float(getattr(res, f)) for f in _RESULT_FIELDS})
    row["method"], row["test"] = res.method, res.test
    if res.method != str(method).upper():
        notes.append(
            f"tau^2 estimator {res.method} used because {str(method).upper()} did not converge "
            "(method_fallback)"
        )
    if k == 1:  # heterogeneity values as metafor reports them for k = 1; see the warning
        row["method"], row["test"] = "none (k = 1)", "z"  # Wald CI of the single study
    if k == 2 and test not in ("knha", "adhoc"):
        notes.append("k = 2: tau^2 rests on two studies and is very imprecise")
    notes = list(res.warnings) + notes
    _explain_missing(row, notes)
    row["warnings"] = "; ".join(notes)
    return row, np.asarray(res.weights, dtype=float)


def _levels(effects: pd.DataFrame, column: str, levels: Sequence[str] | None) -> list[str]:
    if levels:
        return [str(v) for v in levels]
    return sorted(v for v in effects[column].astype(str).unique() if v != "")


def _groups(effects: pd.DataFrame, outcomes: Sequence[str] | None) -> list[tuple[str, str]]:
    pairs = effects[["outcome", "measure"]].drop_duplicates()
    pairs = sorted(map(tuple, pairs.astype(str).to_numpy()))
    if outcomes is not None:
        present = {o for o, _ in pairs}
        pairs = [p for p in pairs if p[0] in outcomes]
        # configured outcomes that no study reports still get k = 0 rows (measure unknown)
        pairs += [(o, "") for o in outcomes if o not in present]
    return pairs  # type: ignore[return-value]


def pool_by_timepoint(
    effects: pd.DataFrame,
    timepoints: Sequence[str],
    *,
    subgroups: Mapping[str, Sequence[str] | None] | None = None,
    method: str = "REML",
    test: str = "knha",
    level: float = 0.95,
    outcomes: Sequence[str] | None = None,
    method_fallback: str | None = "DL",
) -> pd.DataFrame:
    """Pooled table: one row per outcome x measure x timepoint x (all | subgroup level).

    `timepoints` gives the window order; `subgroups` maps an effects column (e.g. `trd`) to the
    levels to pool separately (None: every non-empty level present). Windows and levels with no
    study get a k = 0 row, so the table always has the same shape for the same config.
    """
    return pool_by_timepoint_weighted(
        effects,
        timepoints,
        subgroups=subgroups,
        method=method,
        test=test,
        level=level,
        outcomes=outcomes,
        method_fallback=method_fallback,
    )[0]


def pool_by_timepoint_weighted(
    effects: pd.DataFrame,
    timepoints: Sequence[str],
    *,
    subgroups: Mapping[str, Sequence[str] | None] | None = None,
    method: str = "REML",
    test: str = "knha",
    level: float = 0.95,
    outcomes: Sequence[str] | None = None,
    method_fallback: str | None = "DL",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(pooled table as `pool_by_timepoint`, study weights table `STUDY_WEIGHT_COLUMNS`).

    The weights table has one row per effect row and pooled row it entered (outcome, measure,
    timepoint, subgroup, the effect row's keys) with the weight (percent) from the same fit
    as the pooled row, so that figures draw the fitted result without refitting.
    """
    specs: list[tuple[str, str | None]] = [("all", None)]
    for column, levels in (subgroups or {}).items():
        specs += [(column, lv) for lv in _levels(effects, column, levels)]
    # masks on arrays, one row selection per fit: the pandas masks of each window x level
    # were most of this stage's time (325 fits of the ketamine sheet)
    outcome_of, measure_of = effects["outcome"].to_numpy(), effects["measure"].to_numpy()
    timepoint_of = effects["timepoint"].to_numpy()
    level_of = {c: effects[c].astype(str).to_numpy() for c, lv in specs if lv is not None}
    rows: list[dict[str, object]] = []
    picks: list[np.ndarray] = []
    pick_keys: list[dict[str, str]] = []
    pick_weights: list[np.ndarray] = []
    for outcome, measure in _groups(effects, outcomes):
        in_om = (outcome_of == outcome) & (measure_of == measure)
        for tp in timepoints:
            in_tp = in_om & (timepoint_of == tp)
            for column, lv in specs:
                idx = np.flatnonzero(in_tp if lv is None else in_tp & (level_of[column] == lv))
                row, weights = pool_group_weighted(
                    effects.iloc[idx],
                    method=method,
                    test=test,
                    level=level,
                    method_fallback=method_fallback,
                )
                keys = {
                    "outcome": outcome,
                    "measure": measure,
                    "timepoint": tp,
                    "moderator": column,
                    "level": "all" if lv is None else lv,
                    "subgroup": ALL_STUDIES if lv is None else f"{column}={lv}",
                }
                row.update(keys)
                rows.append(row)
                if len(idx):
                    picks.append(idx)
                    pick_keys.append(keys)
                    pick_weights.append(weights)
    return pd.DataFrame(rows, columns=list(POOLED_COLUMNS)), _weights_table(
        effects, picks, pick_keys, pick_weights
    )


def _weights_table(
    effects: pd.DataFrame,
    picks: Sequence[np.ndarray],
    keys: Sequence[Mapping[str, str]],
    weights: Sequence[np.ndarray],
) -> pd.DataFrame:
    """`STUDY_WEIGHT_COLUMNS`: the effect rows of each fit (`picks`, positions in `effects`)
    with that fit's keys and weights, fits in table order."""
    if not picks:
        return pd.DataFrame(columns=list(STUDY_WEIGHT_COLUMNS))
    sizes = [len(p) for p in picks]
    table = effects.iloc[np.concatenate(picks)][[c for c in WEIGHT_KEYS if c in effects]]
    table = table.reset_index(drop=True)
    for key in keys[0]:
        table[key] = np.repeat(np.array([k[key] for k in keys], dtype=object), sizes)
    table["weight"] = np.concatenate(weights)
    return table.reindex(columns=list(STUDY_WEIGHT_COLUMNS))


def _estimates_text(pooled: pd.DataFrame) -> str:
    parts = []
    columns = ("level", "k", "estimate", "ci_low", "ci_high")
    for lv, k, est, low, high in zip(*(pooled[c].tolist() for c in columns), strict=True):
        parts.append(
            f"{lv}: k = 0" if k == 0 else f"{lv}: {est:.3f} [{low:.3f}, {high:.3f}] (k = {k})"
        )
    return "; ".join(parts)


def subgroup_tests(
    effects: pd.DataFrame,
    pooled: pd.DataFrame,
    timepoints: Sequence[str],
    subgroups: Mapping[str, Sequence[str] | None],
    *,
    method: str = "REML",
    test: str = "knha",
    level: float = 0.95,
    method_fallback: str | None = "DL",
) -> pd.DataFrame:
    """Test for subgroup differences per outcome x measure x timepoint x moderator.

    Q_M of `fit_meta_regression(yi, vi, X=[1, dummies])` over the studies in the configured
    levels (reference = first level). Needs >= 2 levels with studies and k > number of levels;
    otherwise the row says why it was not tested. `pooled` (from `pool_by_timepoint`) supplies
    the separate-tau^2 estimates per level shown beside the test.
    """
    rows = []
    levels_of = {c: _levels(effects, c, configured) for c, configured in subgroups.items()}
    by_key = pooled.groupby(["outcome", "measure", "timepoint", "moderator"], sort=False).indices
    no_rows = np.zeros(0, dtype=np.int64)
    for (outcome, measure), in_om in effects.groupby(["outcome", "measure"], sort=True):
        for tp in timepoints:
            in_tp = in_om[in_om["timepoint"] == tp]
            for column in subgroups:
                levels = levels_of[column]
                text = in_tp[column].astype(str)
                chosen = text.isin(levels).to_numpy()
                sub, sub_text = in_tp[chosen], text[chosen]
                counts = {lv: int((sub_text == lv).sum()) for lv in levels}
                present = [lv for lv in levels if counts[lv]]
                est = pooled.iloc[by_key.get((outcome, measure, tp, column), no_rows)]
                row: dict[str, object] = {
                    "outcome": outcome, "measure": measure, "timepoint": tp,
                    "moderator": column, "levels": ";".join(levels), "k": len(sub),
                    "k_by_level": ";".join(f"{lv}={n}" for lv, n in counts.items()),
                    "estimates_by_level": _estimates_text(est),
                    "method": method, "test": test,
                }  # fmt: skip
                nan = float("nan")
                row.update(QM=nan, QM_df1=nan, QM_df2=nan, QM_p=nan, tau2_residual=nan)
                if len(present) < 2:
                    row["note"] = "not tested: fewer than 2 levels have studies"
                elif len(sub) <= len(present):
                    row["note"] = (
                        f"not tested: k = {len(sub)} cannot support {len(present)} coefficients"
                    )
                else:
                    groups = pd.Categorical(sub_text, categories=present)
                    try:
                        res = subgroup_analysis(
                            sub["yi"].to_numpy(float),
                            sub["vi"].to_numpy(float),
                            groups,
                            method=estimators(method, method_fallback),
                            test=test,
                            tau2="common",
                            level=level,
                        )
                    except ConvergenceError as err:
                        row["note"] = f"not tested: no tau^2 estimator converged ({err})"
                        rows.append(row)
                        continue
                    row.update(
                        QM=res.between_stat,
                        QM_df1=res.between_df,
                        QM_df2=nan if res.between_df2 is None else res.between_df2,
                        QM_p=res.between_p,
                        tau2_residual=res.tau2,
                        method=res.method,
                    )
                    note = f"reference level {present[0]}"
                    if res.warnings:
                        note += "; " + "; ".join(res.warnings)
                    row["note"] = note
                rows.append(row)
    return pd.DataFrame(rows, columns=list(SUBGROUP_COLUMNS))


def pool_proportions(
    proportions: pd.DataFrame,
    timepoints: Sequence[str],
    *,
    method: str = "REML",
    test: str = "knha",
    level: float = 0.95,
    subgroups: Mapping[str, Sequence[str] | None] | None = None,
    method_fallback: str | None = "DL",
) -> pd.DataFrame:
    """Pool logit proportions (`yi`, `vi`) per outcome x arm_role x timepoint, back-transformed.

    Random-effects model on the logit scale (metafor `rma(measure = "PLO")`), then estimate and
    CI back-transformed with the inverse logit (metafor `transf = transf.ilogit`).
    """
    keys = [c for c in ("outcome", "arm_role") if c in proportions]
    if "n_total" not in proportions and "n" in proportions:
        proportions = proportions.assign(n_total=proportions["n"])
    rows = []
    specs: list[tuple[str, str | None]] = [("all", None)]
    for column, levels in (subgroups or {}).items():
        specs += [(column, lv) for lv in _levels(proportions, column, levels)]
    combos = proportions[keys].drop_duplicates().sort_values(keys) if keys else pd.DataFrame([{}])
    for combo in combos.to_dict("records"):
        sel = np.ones(len(proportions), dtype=bool)
        for c, v in combo.items():
            sel &= (proportions[c] == v).to_numpy()
        part = proportions[sel]
        for tp in timepoints:
            in_tp = part[part["timepoint"] == tp]
            for column, lv in specs:
                sub = in_tp if lv is None else in_tp[in_tp[column].astype(str) == lv]
                row = pool_group(
                    sub, method=method, test=test, level=level, method_fallback=method_fallback
                )
                logit = {f: row[f] for f in ("estimate", "ci_low", "ci_high")}
                for f in ("estimate", "ci_low", "ci_high", "pi_low", "pi_high"):
                    row[f"{f}_prop"] = (
                        float(logistic_cdf(row[f])) if np.isfinite(row[f]) else float("nan")
                    )  # type: ignore[arg-type]
                row.update({f"{f}_logit": v for f, v in logit.items()})
                row.update(combo)
                row.update(
                    timepoint=tp,
                    moderator=column,
                    level="all" if lv is None else lv,
                    subgroup=ALL_STUDIES if lv is None else f"{column}={lv}",
                )
                rows.append(row)
    cols = keys + [
        "timepoint",
        "subgroup",
        "moderator",
        "level",
        "k",
        "n_participants",
        "estimate_prop",
        "ci_low_prop",
        "ci_high_prop",
        "pi_low_prop",
        "pi_high_prop",
        "estimate_logit",
        "ci_low_logit",
        "ci_high_logit",
        "tau2",
        "I2",
        "method",
        "test",
        "studies",
        "warnings",
    ]
    return pd.DataFrame(rows, columns=cols)
