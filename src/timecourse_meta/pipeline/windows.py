"""Decide which rows enter the analysis: eligibility filters and time-window harmonisation.

Trials report outcomes at different times (240 min, day 1, 48 h, ...). Each configured window
(e.g. 24h = 18-30 h after the first dose) collects the reported times that fall inside it; when a
study reports several times for one outcome inside a window, one is chosen by a configured rule
so that a study contributes at most one effect per window. Every row that is not kept goes to the
exclusions table with its reason, and the choice made for each study is returned as a table.
The window definitions live in `window_specs`, the eligibility rules in `row_rules`; both are
re-exported here, the stage's one entry point.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from timecourse_meta.errors import ConfigError, SheetError, excerpt
from timecourse_meta.pipeline.duplicates import DUPLICATE_KEY, check_duplicates
from timecourse_meta.pipeline.row_rules import (
    apply_filters,
    apply_row_rules,
    check_effect_columns,
    choose_scale,
    exclusion_rows,
    scale_warning,
)
from timecourse_meta.pipeline.window_specs import (
    KETAMINE_WINDOWS,
    RULES,
    derive_windows,
    outside_warning,
    parse_windows,
    unit_hours,
    window_specs,
    windows_in_hours,
)
from timecourse_meta.schema import (
    EXCLUSION_COLUMNS,
    R_LABEL_NOT_A_WINDOW,
    R_NO_TIME,
    R_TIME_IN_NO_WINDOW,
)

__all__ = [
    "KETAMINE_WINDOWS",
    "EXCLUSION_COLUMNS",
    "RULES",
    "WindowResult",
    "apply_filters",
    "apply_row_rules",
    "assign_windows",
    "check_effect_columns",
    "choose_scale",
    "outside_counts",
    "derive_windows",
    "outside_warning",
    "parse_windows",
    "scale_warning",
    "select_all_times",
    "select_windows",
    "time_label",
    "unit_hours",
    "window_specs",
    "windows_in_hours",
]


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


def _joined_times(cand: pd.DataFrame, key: list[str]) -> pd.Series:
    """Per group of `key` (sorted groups, as groupby), its times "_t" joined as "24, 26".

    The same as ``groupby(key)["_t"].agg(lambda s: ", ".join(f"{v:g}" for v in s))``, without
    a Python call per group: the times are formatted once and joined along the group runs.
    """
    grouped = cand.groupby(key, sort=True)
    gid = grouped.ngroup().to_numpy()
    text = np.array([f"{v:g}" for v in cand["_t"].tolist()], dtype=object)
    keep = gid >= 0  # rows with a missing key belong to no group (groupby drops them)
    gid, text = gid[keep], text[keep]
    order = np.argsort(gid, kind="stable")  # group by group, rows in their given order
    gid, text = gid[order], text[order]
    joined: list[str] = []
    last = -1
    for g, t in zip(gid.tolist(), text.tolist(), strict=True):
        if g == last:
            joined[-1] += ", " + t
        else:
            joined.append(t)
            last = g
    index = grouped.size().index
    if not joined:  # no groups: groupby's empty result keeps the column's dtype
        return pd.Series(index=index, dtype=cand["_t"].dtype, name="times_reported_h")
    return pd.Series(joined, index=index, name="times_reported_h")


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
            f"timepoint {excerpt(given[i])} disagrees with time_hours {times[i]:g} "
            f"(which falls in window '{assigned[i] or 'none'}')",
            line=int(rows["source_row"].iloc[i]),
            column="timepoint",
        )
    nominal = windows["nominal"].to_numpy()[np.maximum(index, 0)]
    effective = np.where(by_label, nominal, times)

    outside = index < 0
    reason_out = [
        R_LABEL_NOT_A_WINDOW.format(label=g)
        if lab
        else (R_TIME_IN_NO_WINDOW.format(time=_fmt(t)) if np.isfinite(t) else R_NO_TIME)
        for g, t, lab in zip(given[outside], times[outside], by_label[outside], strict=True)
    ]
    excluded = [exclusion_rows(rows.loc[outside], "", reason_out)]

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
    listed = _joined_times(cand.sort_values(key + ["_t"], kind="mergesort"), key)
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
            *(inside[c].tolist() for c in ("chosen_h", "times_reported_h", "rule")), strict=True
        )
    ]
    dropped = inside.loc[~used]
    excluded.append(
        exclusion_rows(
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


def _template_pattern(template: str) -> str:
    """A regular expression matching the reasons a str.format template produces."""
    return re.sub(r"\\\{\w+\\\}", ".*", re.escape(template))


_IN_NO_WINDOW = re.compile(
    "|".join(
        f"^{_template_pattern(t)}$" for t in (R_LABEL_NOT_A_WINDOW, R_TIME_IN_NO_WINDOW, R_NO_TIME)
    )
)


def outside_counts(n_rows: int, excluded: pd.DataFrame) -> tuple[int, int]:
    """(rows in no window, rows that could have been in one) for :func:`outside_warning`.

    `excluded`: the exclusions of :func:`select_windows`. Rows in no window are those the
    windows stage excluded for their time or label; rows excluded before (eligibility filters)
    or by a row rule (baseline, second period) could never have been in a window and are left
    out of the count they are compared with.
    """
    stage = excluded["stage"].astype(str)
    reason = excluded["reason"].astype(str)
    in_no_window = (stage == "windows") & reason.str.match(_IN_NO_WINDOW)
    ruled_out = (stage == "eligibility") | (
        (stage == "windows") & (excluded["timepoint"].astype(str) == "") & ~in_no_window
    )
    return int(in_no_window.sum()), n_rows - int(ruled_out.sum())


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
    distinct, at = np.unique(times, return_inverse=True)  # few distinct times: label each once
    labels = np.array([time_label(t) if np.isfinite(t) else "" for t in distinct.tolist()],
                      dtype=object)[at.ravel()]  # fmt: skip
    labels[by_label] = given[by_label]
    out = kept.copy()
    out["timepoint"] = labels
    out.loc[by_label, "time_hours"] = [nominal[g] for g in given[by_label]]
    missing = ~np.isfinite(times) & ~by_label
    reason = [R_LABEL_NOT_A_WINDOW.format(label=g) if g else R_NO_TIME for g in given[missing]]
    out, by_scale, _ = choose_scale(out.loc[~missing].reset_index(drop=True), scale_priority)
    excluded = pd.concat(
        [
            filtered,
            exclusion_rows(kept.loc[missing], "", reason).assign(stage="all_times"),
            by_scale.assign(stage="all_times"),
        ],
        ignore_index=True,
    ).sort_values(["source_file", "source_row"], kind="mergesort")
    out = out.sort_values(["source_file", "source_row"], kind="mergesort")
    return out.reset_index(drop=True), excluded.reset_index(drop=True)
