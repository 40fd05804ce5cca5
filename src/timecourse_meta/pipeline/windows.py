"""Decide which rows enter the analysis: eligibility filters and time-window harmonisation.

Trials report outcomes at different times (240 min, day 1, 48 h, ...). Each configured window
(e.g. 24h = 18-30 h after the first dose) collects the reported times that fall inside it; when a
study reports several times for one outcome inside a window, one is chosen by a configured rule
so that a study contributes at most one effect per window. Every row that is not kept goes to the
exclusions table with its reason, and the choice made for each study is returned as a table.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from timecourse_meta.errors import ConfigError, SheetError
from timecourse_meta.pipeline.sheet_checks import DUPLICATE_KEY, check_duplicates
from timecourse_meta.schema import (
    EFFECT_COLUMNS,
    EXCLUSION_COLUMNS,
    R_BASELINE,
    R_EXCLUDE_ROWS,
    R_FIRST_PERIOD_ONLY,
    R_SCALE,
    R_SECOND_PERIOD,
    TIME_UNIT_HOURS,
    TIME_UNIT_SYMBOLS,
    normalise_level,
)

__all__ = [
    "DEFAULT_WINDOWS",
    "EXCLUSION_COLUMNS",
    "RULES",
    "WindowResult",
    "apply_filters",
    "apply_row_rules",
    "assign_windows",
    "check_effect_columns",
    "choose_scale",
    "scale_warning",
    "derive_windows",
    "outside_warning",
    "parse_windows",
    "select_all_times",
    "select_windows",
    "time_label",
    "unit_hours",
    "window_specs",
    "windows_in_hours",
]

# Default windows (issue text): label, low, high, nominal time in hours; bounds inclusive.
DEFAULT_WINDOWS: tuple[dict[str, float | str], ...] = (
    {"label": "4h", "low": 2, "high": 6, "nominal": 4},
    {"label": "24h", "low": 18, "high": 30, "nominal": 24},
    {"label": "3d", "low": 60, "high": 84, "nominal": 72},
    {"label": "7d", "low": 144, "high": 192, "nominal": 168},
    {"label": "14d", "low": 312, "high": 360, "nominal": 336},
)
RULES: tuple[str, ...] = ("closest_to_nominal", "earliest", "latest")


def parse_windows(spec: Sequence[Mapping[str, object]] | None) -> pd.DataFrame:
    """Validate window definitions; return a frame (label, low, high, nominal) in config order.

    Each window needs a unique label and low <= nominal <= high; windows may not overlap, so a
    reported time belongs to at most one window. `nominal` defaults to the midpoint.
    """
    items = list(DEFAULT_WINDOWS if spec is None else spec)
    if not items:
        raise ConfigError("at least one time window is required", key="windows")
    rows = []
    for i, item in enumerate(items):
        label = str(item.get("label", "")).strip()
        if not label:
            raise ConfigError(f"window {i + 1} has no label", key="windows")
        try:
            low, high = float(item["low"]), float(item["high"])  # type: ignore[arg-type]
            nominal = float(item.get("nominal", (low + high) / 2))  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError):
            raise ConfigError(
                f"window '{label}' needs numeric low and high (hours)", key="windows"
            ) from None
        if not (0 <= low <= nominal <= high):
            raise ConfigError(
                f"window '{label}' must satisfy 0 <= low <= nominal <= high "
                f"(got low={low:g}, nominal={nominal:g}, high={high:g})",
                key="windows",
            )
        rows.append({"label": label, "low": low, "high": high, "nominal": nominal})
    frame = pd.DataFrame(rows)
    if frame["label"].duplicated().any():
        dup = frame.loc[frame["label"].duplicated(), "label"].iloc[0]
        raise ConfigError(f"window label '{dup}' is used twice", key="windows")
    ordered = frame.sort_values("low")
    overlap = ordered["low"].to_numpy()[1:] <= ordered["high"].to_numpy()[:-1]
    if overlap.any():
        i = int(np.flatnonzero(overlap)[0])
        a, b = ordered["label"].iloc[i], ordered["label"].iloc[i + 1]
        raise ConfigError(f"windows '{a}' and '{b}' overlap", key="windows")
    return frame.reset_index(drop=True)


def unit_hours(unit: str, key: str = "time_unit") -> float:
    """Hours per `unit` (schema.TIME_UNIT_HOURS); ConfigError naming `key` for another word."""
    if unit not in TIME_UNIT_HOURS:
        raise ConfigError(
            f"unknown time unit {unit!r}, expected one of {', '.join(TIME_UNIT_HOURS)}", key=key
        )
    return TIME_UNIT_HOURS[unit]


def windows_in_hours(
    spec: Sequence[Mapping[str, object]], unit: str = "hours"
) -> list[dict[str, object]]:
    """Config windows given in `unit` (config `time_unit`) as windows in hours (low, high and
    nominal multiplied by the unit's hours, schema.TIME_UNIT_HOURS); labels unchanged.

    Values that are not numbers are passed through, so that `parse_windows` reports them.
    """
    factor = unit_hours(unit)
    out = []
    for item in spec:
        converted = dict(item)
        for bound in ("low", "high", "nominal"):
            value = converted.get(bound)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                converted[bound] = float(value) * factor if factor != 1.0 else value
        out.append(converted)
    return out


def _unit_label(value: float, symbol: str, digits: int) -> str:
    return f"{float(f'{value:.{digits}g}'):g}{symbol}"


def derive_windows(times_hours: Sequence[float], unit: str = "hours") -> list[dict[str, object]]:
    """Windows derived from the data (config `windows: null`): one per distinct reported time.

    Each window is one time exactly (low = high = nominal = that time, in hours), labelled in
    the display `unit` with 4 significant digits and the unit's symbol, without a space so that
    the label can name files ("4h", "2wk"; figures show "4 h", "2 wk"; more digits when two
    times would get one label). Non-finite and non-positive times are ignored (such rows are
    excluded later with their reason). Windows are ordered by time; ConfigError when no time
    is left.
    """
    factor = unit_hours(unit)
    values = np.asarray(list(times_hours), dtype=float)
    values = np.unique(values[np.isfinite(values) & (values > 0)])
    if values.size == 0:
        raise ConfigError(
            "windows: null derives one window per reported time, but the sheets report no "
            "time (time_hours); give windows explicitly",
            key="windows",
        )
    symbol = TIME_UNIT_SYMBOLS[unit]
    for digits in (4, 6, 8, 10, 12, 15, 17):
        labels = [_unit_label(v / factor, symbol, digits) for v in values]
        if len(set(labels)) == len(labels):
            break
    return [
        {"label": lab, "low": float(v), "high": float(v), "nominal": float(v)}
        for lab, v in zip(labels, values, strict=True)
    ]


def window_specs(
    spec: Sequence[Mapping[str, object]] | None,
    unit: str = "hours",
    times_hours: Sequence[float] | None = None,
) -> list[dict[str, object]]:
    """The windows the workflow uses, in hours: config `windows` (given in `unit`) converted,
    or, when `spec` is None, `derive_windows` of the reported times. Checked by `parse_windows`.
    """
    if spec is None:
        if times_hours is None:
            raise ConfigError("windows: null needs the reported times", key="windows")
        items = derive_windows(times_hours, unit)
    else:
        items = windows_in_hours(spec, unit)
    parse_windows(items)
    return items


def outside_warning(
    n_outside: int, n_rows: int, windows: pd.DataFrame, unit: str = "hours"
) -> str | None:
    """A warning when most rows (more than half) fall outside every window, else None.

    "N of M rows fall outside every window (windows: 4 h: 2-6 h, ...)": with windows that do
    not match the sheets' times (e.g. hours given where the config's `time_unit` is weeks),
    almost nothing would be analysed without a word. Bounds shown in `unit`.
    """
    if n_rows <= 0 or 2 * n_outside <= n_rows:
        return None
    factor, symbol = unit_hours(unit), TIME_UNIT_SYMBOLS[unit]

    def shown(row: pd.Series) -> str:
        low, high = float(row["low"]) / factor, float(row["high"]) / factor
        span = f"{low:.4g}" if low == high else f"{low:.4g}\u2013{high:.4g}"
        return f"{row['label']}: {span} {symbol}"

    listed = "; ".join(shown(r) for _, r in windows.iterrows())
    return f"{n_outside} of {n_rows} rows fall outside every window (windows: {listed})"


def _exclusions(rows: pd.DataFrame, timepoint: pd.Series | str, reason: pd.Series | str):
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
    excluded = _exclusions(rows.loc[~keep], "", reasons[~keep])
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
    return rows.loc[~out].reset_index(drop=True), _exclusions(rows.loc[out], "", reasons)


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
    excluded = _exclusions(rows.loc[~keep], rows.loc[~keep, "timepoint"], reasons[~keep])
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


@dataclass(frozen=True)
class WindowResult:
    """Rows kept (with their window), rows excluded (with reason), and the time chosen per study."""

    rows: pd.DataFrame
    excluded: pd.DataFrame
    choices: pd.DataFrame
    warnings: tuple[str, ...] = ()


def _fmt(hours: float) -> str:
    return f"{hours:g} h"


def _window_of(times: np.ndarray, windows: pd.DataFrame) -> np.ndarray:
    """Index of the window containing each time (bounds inclusive), -1 if none; vectorised."""
    low = windows["low"].to_numpy()[None, :]
    high = windows["high"].to_numpy()[None, :]
    inside = (times[:, None] >= low) & (times[:, None] <= high)
    return np.where(inside.any(axis=1), inside.argmax(axis=1), -1)


def assign_windows(
    rows: pd.DataFrame, windows: pd.DataFrame, rule: str = "closest_to_nominal"
) -> WindowResult:
    """Assign each row to a window and keep one reported time per study x outcome x window.

    Rules: `closest_to_nominal` (|time - nominal| smallest, ties -> earlier time), `earliest`,
    `latest`. Rows of the precomputed sheet format may give a window label in `timepoint` instead
    of `time_hours`; they count as reported at the window's nominal time.
    """
    if rule not in RULES:
        raise ConfigError(
            f"unknown rule '{rule}', expected one of {', '.join(RULES)}", key="window_choice"
        )
    labels = windows["label"].to_numpy()
    times = rows["time_hours"].to_numpy(dtype=float)
    index = _window_of(np.nan_to_num(times, nan=-1.0), windows)
    given = (
        rows["timepoint"].astype(str).to_numpy()
        if "timepoint" in rows
        else np.full(len(rows), "", dtype=object)
    )
    by_label = ~np.isfinite(times) & (given != "")
    label_pos = {lab: i for i, lab in enumerate(labels)}
    from_label = np.array([label_pos.get(g, -1) for g in given], dtype=np.int64)
    index = np.where(by_label, from_label, index).astype(np.int64)
    assigned = np.where(index >= 0, labels[np.maximum(index, 0)], "")
    clash = np.isfinite(times) & (given != "") & (given != assigned)
    if clash.any():
        i = int(np.flatnonzero(clash)[0])
        raise SheetError(
            rows["source_file"].iloc[i],
            f"timepoint '{given[i]}' disagrees with time_hours {times[i]:g} "
            f"(which falls in window '{assigned[i] or 'none'}')",
            line=int(rows["source_row"].iloc[i]),
            column="timepoint",
        )
    nominal = windows["nominal"].to_numpy()[np.maximum(index, 0)]
    effective = np.where(by_label, nominal, times)

    outside = index < 0
    reason_out = [
        f"label '{g}' is not a configured window"
        if lab
        else (f"time {_fmt(t)} is in no configured window" if np.isfinite(t) else "no time given")
        for g, t, lab in zip(given[outside], times[outside], by_label[outside], strict=True)
    ]
    excluded = [_exclusions(rows.loc[outside], "", reason_out)]

    inside = rows.loc[~outside].copy()
    inside["timepoint"] = assigned[~outside]
    inside["window_low"] = windows["low"].to_numpy()[index[~outside]]
    inside["window_high"] = windows["high"].to_numpy()[index[~outside]]
    inside["window_nominal"] = nominal[~outside]
    inside["_t"] = effective[~outside]
    key = ["study_id", "outcome", "timepoint"]
    cand = inside[key + ["_t", "window_nominal"]].drop_duplicates(key + ["_t"])
    if rule == "closest_to_nominal":
        cand = cand.assign(_d=(cand["_t"] - cand["window_nominal"]).abs())
        order = ["_d", "_t"]
    elif rule == "earliest":
        cand = cand.assign(_d=cand["_t"])
        order = ["_t"]
    else:
        cand = cand.assign(_d=-cand["_t"])
        order = ["_d"]
    cand = cand.sort_values(key + order, kind="mergesort")
    listed = (
        cand.sort_values(key + ["_t"], kind="mergesort")
        .groupby(key, sort=True)["_t"]
        .agg(lambda s: ", ".join(f"{v:g}" for v in s))
        .rename("times_reported_h")
    )
    counts = cand.groupby(key, sort=True)["_t"].size().rename("n_times")
    chosen = cand.groupby(key, sort=True).head(1).set_index(key)["_t"].rename("chosen_h")
    choices = pd.concat([listed, counts, chosen], axis=1).reset_index()
    choices["rule"] = np.where(choices["n_times"] > 1, rule, "only time in window")
    inside = inside.merge(
        choices[key + ["chosen_h", "times_reported_h", "rule"]],
        on=key,
        how="left",
        validate="many_to_one",
    )
    used = inside["_t"].to_numpy() == inside["chosen_h"].to_numpy()
    inside["time_choice"] = [
        f"{_fmt(c)} (only time in window)"
        if r == "only time in window"
        else f"{_fmt(c)} chosen of {lst} h by {r}"
        for c, lst, r in zip(
            inside["chosen_h"], inside["times_reported_h"], inside["rule"], strict=True
        )
    ]
    dropped = inside.loc[~used]
    excluded.append(
        _exclusions(
            dropped,
            dropped["timepoint"],
            [
                f"window {tp}: study reports {lst} h; {_fmt(c)} used ({r}), not {_fmt(t)}"
                for tp, lst, c, r, t in zip(
                    dropped["timepoint"],
                    dropped["times_reported_h"],
                    dropped["chosen_h"],
                    dropped["rule"],
                    dropped["_t"],
                    strict=True,
                )
            ],
        )
    )
    kept = inside.loc[used].drop(columns=["_t", "chosen_h", "times_reported_h", "rule"])
    choices = choices.rename(columns={"chosen_h": "chosen_time_h"})
    choices = choices[
        ["study_id", "outcome", "timepoint", "times_reported_h", "n_times", "chosen_time_h", "rule"]
    ]
    order = {lab: i for i, lab in enumerate(labels)}
    choices = (
        choices.assign(_o=choices["timepoint"].map(order))
        .sort_values(["study_id", "outcome", "_o"], kind="mergesort")
        .drop(columns="_o")
        .reset_index(drop=True)
    )
    excl = pd.concat(excluded, ignore_index=True)
    excl = excl.sort_values(["source_file", "source_row"], kind="mergesort").reset_index(drop=True)
    kept = kept.sort_values(["source_file", "source_row"], kind="mergesort").reset_index(drop=True)
    return WindowResult(rows=kept, excluded=excl, choices=choices)


def _eligible(
    rows: pd.DataFrame,
    include: Mapping[str, Sequence[str]] | None,
    exclude_studies: Sequence[Mapping[str, str]] | None,
    exclude_rows: Sequence[Mapping[str, object]] | None,
    first_period_only: bool,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Config filters (stage "eligibility"), then baseline and second-period rows (stage
    "windows"); then the duplicate check, on the rows that remain only: two different results
    at one time in rows that are excluded anyway (a baseline, a second period, an arm excluded
    by config) are not a contradiction the analysis meets."""
    kept, filtered = apply_filters(
        rows, include, exclude_studies, exclude_rows, first_period_only=first_period_only
    )
    kept, ruled = apply_row_rules(kept)
    absent = [c for c in DUPLICATE_KEY if c not in kept]
    check_duplicates(kept.assign(**{c: "" for c in absent}) if absent else kept)
    excluded = pd.concat(
        [filtered.assign(stage="eligibility"), ruled.assign(stage="windows")], ignore_index=True
    )
    return kept, excluded


def select_windows(
    rows: pd.DataFrame,
    windows: pd.DataFrame,
    rule: str = "closest_to_nominal",
    include: Mapping[str, Sequence[str]] | None = None,
    exclude_studies: Sequence[Mapping[str, str]] | None = None,
    exclude_rows: Sequence[Mapping[str, object]] | None = None,
    *,
    first_period_only: bool = False,
    scale_priority: Sequence[str] | None = None,
) -> WindowResult:
    """The windows stage of the workflow: eligibility filters, then `assign_windows`, then one
    scale per study x outcome x window (`choose_scale`).

    Returns the kept rows, every excluded row with its `reason` and `stage` ("eligibility" or
    "windows"), sorted by file and line, the time chosen per study x outcome x window, and a
    warning when a study still reports several scales at one window.
    """
    kept, earlier = _eligible(rows, include, exclude_studies, exclude_rows, first_period_only)
    result = assign_windows(kept, windows, rule)
    chosen, by_scale, unresolved = choose_scale(result.rows, scale_priority)
    excluded = pd.concat(
        [earlier, result.excluded.assign(stage="windows"), by_scale.assign(stage="windows")],
        ignore_index=True,
    ).sort_values(["source_file", "source_row"], kind="mergesort")
    chosen = chosen.sort_values(["source_file", "source_row"], kind="mergesort")
    return WindowResult(
        rows=chosen.reset_index(drop=True),
        excluded=excluded.reset_index(drop=True),
        choices=result.choices,
        warnings=(scale_warning(unresolved, scale_priority),) if unresolved else (),
    )


def time_label(hours: float) -> str:
    """Label of a reported time in the all-times table: hours to 4 significant digits + 'h'."""
    return f"{hours:.4g}h"


def select_all_times(
    rows: pd.DataFrame,
    windows: pd.DataFrame,
    include: Mapping[str, Sequence[str]] | None = None,
    exclude_studies: Sequence[Mapping[str, str]] | None = None,
    exclude_rows: Sequence[Mapping[str, object]] | None = None,
    *,
    first_period_only: bool = False,
    scale_priority: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every reported time, not only those inside windows (input of the time-response model).

    The same eligibility filters, row rules and scale choice (per study x outcome x reported
    time) as :func:`select_windows`; then each row keeps its own time:
    ``timepoint`` = :func:`time_label` of ``time_hours``. Rows of the precomputed format that
    give only a window label get that window's nominal time (as the windows stage treats them)
    and keep the label. Rows with neither are excluded ("no time given"). Returns (rows,
    exclusions with reason and stage), both sorted by file and line.
    """
    kept, filtered = _eligible(rows, include, exclude_studies, exclude_rows, first_period_only)
    times = kept["time_hours"].to_numpy(dtype=float)
    given = (
        kept["timepoint"].astype(str).to_numpy()
        if "timepoint" in kept
        else np.full(len(kept), "", dtype=object)
    )
    nominal = windows.set_index("label")["nominal"].to_dict()
    by_label = ~np.isfinite(times) & np.isin(given, list(nominal))
    labels = np.array([time_label(t) if np.isfinite(t) else "" for t in times], dtype=object)
    labels[by_label] = given[by_label]
    out = kept.copy()
    out["timepoint"] = labels
    out.loc[by_label, "time_hours"] = [nominal[g] for g in given[by_label]]
    missing = ~np.isfinite(times) & ~by_label
    reason = [
        f"label '{g}' is not a configured window" if g else "no time given" for g in given[missing]
    ]
    out, by_scale, _ = choose_scale(out.loc[~missing].reset_index(drop=True), scale_priority)
    excluded = pd.concat(
        [
            filtered,
            _exclusions(kept.loc[missing], "", reason).assign(stage="all_times"),
            by_scale.assign(stage="all_times"),
        ],
        ignore_index=True,
    ).sort_values(["source_file", "source_row"], kind="mergesort")
    out = out.sort_values(["source_file", "source_row"], kind="mergesort")
    return out.reset_index(drop=True), excluded.reset_index(drop=True)
