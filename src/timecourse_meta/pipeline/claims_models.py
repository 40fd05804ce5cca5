"""Claims judged on the models over time: the multivariate window model and the time-response
curve, and the decision between rival claims. See :mod:`timecourse_meta.pipeline.claims`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from timecourse_meta.pipeline.claims_config import _conditions
from timecourse_meta.pipeline.claims_core import _check_one, _excludes, _Outcome
from timecourse_meta.schema import (
    MV_CHECKS,
    NOT_APPLICABLE,
    NOT_SUPPORTED,
    NOT_TESTABLE,
    SUPPORTED,
    TIME_UNIT_HOURS,
    TIME_UNIT_SYMBOLS,
)


def _time(hours: float, unit: str = "hours", spec: str = "g", symbol: bool = True) -> str:
    """A time given in hours as the claims' details show it, in config `time_unit`:
    '24 h', '2 wk' (format `spec` applied to the value in that unit)."""
    value = format(float(hours) / TIME_UNIT_HOURS[unit], spec)
    return f"{value} {TIME_UNIT_SYMBOLS[unit]}" if symbol else value


def _not_applicable(
    cond: Mapping[str, object], model: pd.DataFrame, defaults: Mapping[str, str]
) -> _Outcome | None:
    """ "Not applicable" when a model over time cannot judge the condition, else None.

    Both models (multivariate windows, time-response curve) are fitted to all studies of one
    outcome and measure, and judge only window checks (`MV_CHECKS`).
    """
    check = str(cond["check"])
    if cond.get("subgroup") is not None:
        return _Outcome(NOT_APPLICABLE, 0, ["model fitted to all studies, not per subgroup"])
    if check not in MV_CHECKS:
        return _Outcome(NOT_APPLICABLE, 0, [f"{check} is not a check of window effects"])
    for field in ("outcome", "measure"):
        want = str(cond.get(field, defaults[field]))
        have = sorted(set(model[field].astype(str)))
        if have != [want]:
            return _Outcome(
                NOT_APPLICABLE, 0, [f"model fitted to {field} {'/'.join(have)}, not {want}"]
            )
    return None


def _check_mv(
    cond: Mapping[str, object],
    mv: pd.DataFrame,
    windows: Sequence[str],
    defaults: Mapping[str, str],
) -> _Outcome:
    """One condition judged on the multivariate model's window estimates."""
    not_applicable = _not_applicable(cond, mv, defaults)
    if not_applicable is not None:
        return not_applicable
    bad = sorted(set(mv.loc[mv["k"] > 0, "status"].astype(str)) - {"ok"})
    if bad:
        return _Outcome(NOT_TESTABLE, 0, [f"multivariate model status: {', '.join(bad)}"])
    return _check_one(cond, mv, None, windows, defaults)


def _tr_row(tr: pd.DataFrame, hours: float) -> pd.Series | None:
    rows = tr[(tr["quantity"] == "prediction") & np.isclose(tr["time_hours"], hours)]
    if not len(rows):
        return None
    row = rows.iloc[0].copy()
    row["k"] = 1  # _Outcome reads k; the curve is informed by all studies
    return row


def _fmt_tr(label: str, hours: float, row: pd.Series, unit: str = "hours") -> str:
    return (
        f"{label} ({_time(hours, unit)}): {row['estimate']:.3f} [{row['ci_low']:.3f}, "
        f"{row['ci_high']:.3f}] (time-response curve)"
    )


def _check_tr(
    cond: Mapping[str, object],
    tr: pd.DataFrame,
    window_hours: Mapping[str, float],
    defaults: Mapping[str, str],
    unit: str = "hours",
) -> _Outcome:
    """One condition judged on the time-response curve at the windows' nominal times; times in
    the details shown in `unit` (config `time_unit`)."""
    not_applicable = _not_applicable(cond, tr, defaults)
    if not_applicable is not None:
        return not_applicable
    check = str(cond["check"])
    window = str(cond["window"])
    rows = {w: _tr_row(tr, float(h)) for w, h in window_hours.items()}
    row = rows.get(window)
    if row is None:
        return _Outcome(NOT_TESTABLE, 0, [f"{window}: no time-response prediction"])
    text = [_fmt_tr(window, float(window_hours[window]), row, unit)]
    if "extrapolation" in str(row.get("note", "")):
        return _Outcome(NOT_TESTABLE, 0, [*text, "outside the reported times"], row)
    if check == "largest_of_windows":
        others = {w: r for w, r in rows.items() if w != window and r is not None}
        text = [
            _fmt_tr(w, float(window_hours[w]), r, unit) for w, r in rows.items() if r is not None
        ]
        peak = tr[tr["quantity"] == "peak"]
        if len(peak):
            pk = peak.iloc[0]
            text.append(
                f"peak of the curve at {_time(pk['time_hours'], unit, '.3g')} (bootstrap "
                f"interval {_time(pk['time_ci_low'], unit, '.3g', False)}-"
                f"{_time(pk['time_ci_high'], unit, '.3g')})"
            )
        ok = all(row["estimate"] > r["estimate"] for r in others.values())
        return _Outcome(SUPPORTED if ok else NOT_SUPPORTED, 1, text, row)
    ok = _excludes(row, str(cond.get("direction", "positive")))
    ok = ok if check == "ci_excludes_0" else not _excludes(row, "any")
    return _Outcome(SUPPORTED if ok else NOT_SUPPORTED, 1, text, row)


def _rival_decisions(
    table: pd.DataFrame,
    claims: Sequence[Mapping[str, object]],
    time_response: pd.DataFrame | None = None,
    window_hours: Mapping[str, float] | None = None,
    unit: str = "hours",
) -> list[str]:
    """`rival_decision` per claim: for each verdict set, which rival the data support."""
    groups: dict[str, list[str]] = {}
    windows: dict[str, list[str]] = {}
    for c in claims:
        if c.get("rivals"):
            groups.setdefault(str(c["rivals"]), []).append(str(c["id"]))
            ws = windows.setdefault(str(c["rivals"]), [])
            ws += [str(x["window"]) for x in _conditions(c) if str(x["window"]) not in ws]
    sets = [
        (col, name)
        for col, name in (
            ("verdict", "windows"),
            ("verdict_multivariate", "multivariate"),
            ("verdict_time_response", "time-response"),
        )
        if col in table
    ]
    by_id = table.set_index("id")
    texts = dict.fromkeys(table["id"], "")
    for group, ids in groups.items():
        parts = []
        for col, name in sets:
            verdicts = {i: str(by_id.loc[i, col]) for i in ids}
            won = [i for i, v in verdicts.items() if v == SUPPORTED]
            listed = ", ".join(f"{i}: {v}" for i, v in verdicts.items())
            if len(won) == 1:
                what = f"supports {won[0]}"
            elif len(won) > 1:
                what = f"supports all of {', '.join(won)}"
            else:
                what = "neither decided"
            if col == "verdict_time_response" and time_response is not None:
                hours = {
                    w: float((window_hours or {})[w])
                    for w in windows[group]
                    if w in (window_hours or {})  # a window not configured has no time
                }
                listed += _duration_text(time_response, hours, unit)
            parts.append(f"{name}: {what} ({listed})")
        for i in ids:
            texts[i] = f"rivals '{group}': " + " | ".join(parts)
    return [texts[i] for i in table["id"]]


def _duration_text(tr: pd.DataFrame, hours: Mapping[str, float], unit: str = "hours") -> str:
    """The curve's duration with its interval, and which of the rivals' windows (nominal
    ``hours``) the interval contains (both: the duration does not separate the rivals)."""
    rows = tr[tr["quantity"] == "duration"]
    if not len(rows) or not np.isfinite(rows.iloc[0]["time_hours"]):
        return "; curve: no time with lower CI bound > 0"
    d = rows.iloc[0]
    lo, hi = d["time_ci_low"], d["time_ci_high"]
    text = (
        f"; curve: last time with lower CI bound > 0 = {_time(d['time_hours'], unit, '.4g')}, "
        f"interval {_time(lo, unit, '.4g', False)}-{_time(hi, unit, '.4g')}"
    )
    inside = [f"{w} ({_time(h, unit)})" for w, h in hours.items() if lo <= h <= hi]
    if inside:
        text += f", which contains {' and '.join(inside)}"
    return text
