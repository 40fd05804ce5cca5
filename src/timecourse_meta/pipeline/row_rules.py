"""Which sheet rows are eligible: config filters, the rows no analysis uses, one scale per time.

Eligibility filters (`include`, `exclude_studies`, `exclude_rows`), the row rules (baseline
rows at time <= 0, crossover second periods, `first_period_only`) and the scale choice
(`scale_priority`) run before any window is assigned; every row they drop goes to the
exclusions table with its reason (`exclusion_rows`).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from timecourse_meta.errors import ConfigError
from timecourse_meta.schema import (
    EFFECT_COLUMNS,
    EXCLUSION_COLUMNS,
    R_BASELINE,
    R_EXCLUDE_ROWS,
    R_FIRST_PERIOD_ONLY,
    R_SCALE,
    R_SECOND_PERIOD,
    normalise_level,
)

__all__ = [
    "apply_filters",
    "apply_row_rules",
    "check_effect_columns",
    "choose_scale",
    "exclusion_rows",
    "scale_warning",
]


def exclusion_rows(
    rows: pd.DataFrame, timepoint: pd.Series | str, reason: pd.Series | str
) -> pd.DataFrame:
    """Exclusions-table rows (schema.EXCLUSION_COLUMNS) for `rows`, each with its reason."""
    out = pd.DataFrame(
        {
            "source_file": rows["source_file"].to_numpy(),
            "source_row": rows["source_row"].to_numpy(),
            "study_id": rows["study_id"].to_numpy(),
            "arm": rows["arm"].to_numpy(),
            "timepoint": np.asarray(timepoint) if not isinstance(timepoint, str) else timepoint,
            "outcome": rows["outcome"].to_numpy(),
            "reason": np.asarray(reason) if not isinstance(reason, str) else reason,
        }
    )
    return out.reindex(columns=list(EXCLUSION_COLUMNS))


def check_effect_columns(
    rows: pd.DataFrame,
    subgroups: Mapping[str, object] | None = None,
    subsets: Sequence[Mapping[str, object]] | None = None,
    exclude_rows: Sequence[Mapping[str, object]] | None = None,
) -> None:
    """Config keys that name columns, checked against the sheets' columns at the first stage
    after ingest (as `include` is), not minutes later in pooling.

    `subgroups` act on the effect sizes, so their column must be carried to them (a column the
    sheets have but the effects do not is named as such with the usable columns).
    `sensitivity.subsets` (keep/exclude) and `exclude_rows` (where) may name any column of the
    sheet rows (e.g. an extra `rob` column): subsets are applied through the rows each effect
    was computed from (`sensitivity.subset_effects`). A column absent from the sheets gets a
    "did you mean". Raises ConfigError naming the key.
    """
    usable = sorted(set(EFFECT_COLUMNS) - {"yi", "vi", "sei", "derivation", "flags", "row_ids"})
    in_rows = sorted(set(rows.columns) | set(usable))
    checks: list[tuple[str, object, list[str]]] = [
        (f"subgroups.{c}", c, usable) for c in (subgroups or {})
    ]
    for i, subset in enumerate(subsets or ()):
        for part in ("keep", "exclude"):
            for column in (subset.get(part) or {}) if isinstance(subset, Mapping) else {}:
                checks.append((f"sensitivity.subsets.{i}.{part}.{column}", column, in_rows))
    for i, entry in enumerate(exclude_rows or ()):
        where = entry.get("where") if isinstance(entry, Mapping) else None
        for column in where or {}:
            checks.append((f"exclude_rows.{i}.where.{column}", column, sorted(rows.columns)))
    for key, column, allowed in checks:
        name = str(column)
        if name in allowed:
            continue
        if name in rows.columns:
            raise ConfigError(
                f"column '{name}' is in the sheets but not carried to the effect sizes, which "
                f"subgroups act on; usable columns: {', '.join(allowed)}",
                key=key,
            )
        close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
        hint = (
            f"; did you mean '{close[0]}'?" if close else f"; usable columns: {', '.join(allowed)}"
        )
        raise ConfigError(f"unknown column '{name}' (not in the sheets){hint}", key=key)


def _matches(rows: pd.DataFrame, column: str, values: object, key: str) -> np.ndarray:
    """Rows whose `column` takes one of `values` (a value or a list): numbers compared as
    numbers on numeric columns, everything else as lower-case text (YAML yes/no mapped back)."""
    items = list(values) if isinstance(values, (list, tuple)) else [values]
    series = rows[column]
    if series.dtype.kind in "fiu":
        try:
            wanted = [float(v) for v in items]
        except (TypeError, ValueError):
            raise ConfigError(
                f"column '{column}' holds numbers; expected numbers (found {items!r})", key=key
            ) from None
        return np.isin(series.to_numpy(dtype=float), wanted)
    text = series.fillna("").astype(str).str.strip().str.lower().to_numpy()
    return np.isin(text, [normalise_level(v).strip().lower() for v in items])


def apply_filters(
    rows: pd.DataFrame,
    include: Mapping[str, Sequence[str]] | None = None,
    exclude_studies: Sequence[Mapping[str, str]] | None = None,
    exclude_rows: Sequence[Mapping[str, object]] | None = None,
    *,
    first_period_only: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep rows whose columns take configured values; drop listed studies and rows; report
    the rest.

    `include` maps a column (e.g. `control`) to the values allowed; `exclude_studies` lists
    `{study_id, reason}` entries; `exclude_rows` lists `{where: {column: value or [values],
    ...}, reason}` entries (a row matching every column of `where` is excluded with the
    reason, e.g. one arm of one study); `first_period_only` keeps only the first period of
    crossover trials (Cochrane Handbook 23.2.4: the first period alone is a parallel trial,
    free of carry-over). Returns (kept rows, exclusions with the reason); the first reason
    that applies to a row is the one reported.
    """
    keep = np.ones(len(rows), dtype=bool)
    reasons = np.full(len(rows), "", dtype=object)
    for column, allowed in sorted((include or {}).items()):
        if column not in rows:
            raise ConfigError(f"unknown column '{column}'", key="include")
        allowed_set = {str(v).lower() for v in allowed}
        values = rows[column].astype(str).str.lower().to_numpy()
        bad = keep & ~np.isin(values, sorted(allowed_set))
        shown = np.where(values == "", "(empty)", values)
        reasons[bad] = [
            f"{column} '{v}' not in config include.{column} ({', '.join(sorted(allowed_set))})"
            for v in shown[bad]
        ]
        keep &= ~bad
    for entry in exclude_studies or ():
        study = str(entry.get("study_id", ""))
        why = str(entry.get("reason", "")).strip()
        if not study or not why:
            raise ConfigError("each entry needs study_id and reason", key="exclude_studies")
        bad = keep & (rows["study_id"].to_numpy() == study)
        reasons[bad] = f"study excluded by config: {why}"
        keep &= ~bad
    for i, entry in enumerate(exclude_rows or ()):
        key = f"exclude_rows.{i}"
        where = entry.get("where")
        why = str(entry.get("reason", "") or "").strip()
        if not isinstance(where, Mapping) or not where or not why:
            raise ConfigError("each entry needs where (column: value) and reason", key=key)
        hit = keep.copy()
        for column, values in where.items():
            if column not in rows:
                raise ConfigError(f"unknown column '{column}' (not in the sheets)", key=key)
            hit &= _matches(rows, str(column), values, f"{key}.where.{column}")
        reasons[hit] = R_EXCLUDE_ROWS.format(reason=why)
        keep &= ~hit
    if first_period_only:
        period = _text(rows, "period").str.lower().to_numpy()
        design = _text(rows, "design").str.lower().to_numpy()
        bad = keep & (design == "crossover") & (period != "first")
        reasons[bad] = [R_FIRST_PERIOD_ONLY.format(period=p or "(empty)") for p in period[bad]]
        keep &= ~bad
    excluded = exclusion_rows(rows.loc[~keep], "", reasons[~keep])
    return rows.loc[keep].reset_index(drop=True), excluded


def apply_row_rules(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows a sheet may hold but no analysis uses, excluded with their reason.

    Baseline rows (time_hours <= 0: before or at the dose) and the second period of a crossover
    trial (period `second`: after the crossover, open to carry-over; Cochrane Handbook 23.2.4)
    are kept in the sheet for completeness and leave here. Returns (kept, exclusions).
    """
    times = rows["time_hours"].to_numpy(dtype=float)
    period = _text(rows, "period").str.lower().to_numpy()
    with np.errstate(invalid="ignore"):
        baseline = np.isfinite(times) & (times <= 0)
    second = ~baseline & (period == "second")
    out = baseline | second
    reasons = np.where(baseline, R_BASELINE, R_SECOND_PERIOD)[out]
    return rows.loc[~out].reset_index(drop=True), exclusion_rows(rows.loc[out], "", reasons)


def _text(rows: pd.DataFrame, column: str) -> pd.Series:
    """A text column as stripped strings ("" where absent or missing)."""
    if column not in rows:
        return pd.Series("", index=rows.index, dtype=object)
    return rows[column].fillna("").astype(str).str.strip()


def _scale_rank(scales: np.ndarray, priority: Sequence[str]) -> np.ndarray:
    """Position of each scale in `priority` (case-insensitive); unlisted scales rank after."""
    order = {str(p).strip().lower(): i for i, p in enumerate(priority)}
    return np.array([order.get(str(s).strip().lower(), len(order)) for s in scales])


def choose_scale(
    rows: pd.DataFrame, priority: Sequence[str] | None
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """One scale per study x outcome x timepoint: the first of `priority` the study reports.

    A study reporting one outcome on two scales at one time (e.g. MADRS and HDRS) would
    otherwise give two results for one arm, which the effect-size stage cannot choose between
    (all excluded as duplicates). With `priority` (config `scale_priority`, first listed wins,
    scales not listed rank after every listed one) the rows of the other scales are excluded
    with the reason. `priority` None keeps every row. Returns (kept, exclusions, unresolved):
    `unresolved` describes each study x outcome x timepoint that still has several scales
    (none listed, or two unlisted ones), for a warning.
    """
    key = ["study_id", "outcome", "timepoint"]
    scales = _text(rows, "scale")
    lowered = scales.str.lower()
    keep = np.ones(len(rows), dtype=bool)
    reasons = np.full(len(rows), "", dtype=object)
    if priority:
        rank = pd.Series(_scale_rank(scales.to_numpy(), priority), index=rows.index)
        best = rank.groupby([rows[k] for k in key], sort=False).transform("min")
        lose = (rank > best).to_numpy()
        if lose.any():
            winner = rank == best
            chosen = (
                scales[winner]
                .groupby([rows.loc[winner, k] for k in key], sort=True)
                .agg(lambda s: ", ".join(sorted(set(s))))
            )
            listed = ", ".join(str(p) for p in priority)
            at = pd.MultiIndex.from_frame(rows.loc[lose, key].astype(object))
            reasons[lose] = [
                R_SCALE.format(priority=listed, chosen=c, scale=sc or "(empty)")
                for c, sc in zip(chosen.reindex(at).to_numpy(), scales[lose], strict=True)
            ]
            keep &= ~lose
    kept = rows.loc[keep]
    n_scales = lowered[keep].groupby([kept[k] for k in key], sort=True).nunique()
    unresolved = []
    for idx in n_scales[n_scales > 1].index:
        mask = (kept[key] == pd.Series(idx, index=key)).all(axis=1)
        names = ", ".join(sorted(set(scales[keep][mask.to_numpy()])))
        unresolved.append(f"{idx[0]} {idx[1]} {idx[2]} ({names})")
    excluded = exclusion_rows(rows.loc[~keep], rows.loc[~keep, "timepoint"], reasons[~keep])
    return kept.reset_index(drop=True), excluded, unresolved


def scale_warning(unresolved: Sequence[str], priority: Sequence[str] | None) -> str:
    """The one-line warning for study x outcome x times that report several scales."""
    how = (
        f"scale_priority ({', '.join(map(str, priority))}) does not rank them"
        if priority
        else "config scale_priority is not set"
    )
    return (
        f"WARNING: {len(unresolved)} study x outcome x time(s) report several scales and {how}, "
        "so their rows are excluded as duplicates ('cannot choose', exclusions.csv): "
        + "; ".join(unresolved)
        + ". Set scale_priority, e.g. [MADRS, HDRS], to choose one"
    )
