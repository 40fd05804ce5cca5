"""Check published claims against the pooled results: supported / not supported / not testable.

Each claim in the config has words (`claim`), a `source`, and a machine-checkable form:

* `ci_excludes_0` (with `direction`: positive, negative or any) and `ci_includes_0` at a `window`;
* `largest_of_windows`: the window's estimate is the largest of all windows with k >= 2;
* `all_ci_exclude_0`: every listed subgroup `levels` of `subgroup` has a CI excluding 0;
* `proportion_ci_overlaps`: the pooled proportion's CI overlaps `range` [low, high];
* `all_of`: a list of the above, all of which must hold.

A verdict rests on pooled models only: a condition informed by fewer than two studies (k < 2) is
"not testable", and the table reports k and the numbers behind every verdict.

With a `multivariate` table (one row per window from `timecourse_tables.model_table`: all
windows of the primary outcome fitted jointly), the window-based checks (`ci_excludes_0`,
`ci_includes_0`, `largest_of_windows`) are also judged on the multivariate estimates, in the
columns `verdict_multivariate`, `k_mv`, `estimate_mv`, `ci_low_mv`, `ci_high_mv`, `details_mv`.
Checks on subgroups, other outcomes or proportions are "not applicable" there (the model has
the primary outcome, all studies, only); a model whose status is not "ok" (failed, not
converged, over-parameterised) makes every applicable check "not testable".

With a `time_response` summary (``time_response_summary.csv``: the effect as a smooth function
of time fitted to every reported time), the same window checks are judged on the curve at each
window's nominal time (`window_hours`): `ci_excludes_0` / `ci_includes_0` on the pointwise CI of
the prediction there, `largest_of_windows` on the predictions at all windows' nominal times;
columns `verdict_time_response`, `estimate_tr`, `ci_low_tr`, `ci_high_tr`, `details_tr`. A
prediction outside the reported times (extrapolation) is "not testable".

Rival claims: claims sharing a `rivals: <group>` key (e.g. the two duration claims "limited to
3 days" and "superiority at 7 days") get a `rival_decision` that says, for each verdict set,
which one the data support, that both hold, or that neither is decided -- with the verdicts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from timecourse_meta.errors import ConfigError

__all__ = [
    "CHECKS",
    "CLAIM_COLUMNS",
    "MV_CLAIM_COLUMNS",
    "TR_CLAIM_COLUMNS",
    "check_claims",
    "normalise_level",
    "validate_claims",
]

CHECKS: tuple[str, ...] = (
    "ci_excludes_0",
    "ci_includes_0",
    "largest_of_windows",
    "all_ci_exclude_0",
    "proportion_ci_overlaps",
)
DIRECTIONS: tuple[str, ...] = ("positive", "negative", "any")
SUPPORTED, NOT_SUPPORTED, NOT_TESTABLE = "supported", "not supported", "not testable"
NOT_APPLICABLE = "not applicable"  # multivariate verdict only: the model does not cover it
MIN_K = 2
CLAIM_COLUMNS: tuple[str, ...] = (
    "id",
    "claim",
    "source",
    "check",
    "windows",
    "verdict",
    "k",
    "estimate",
    "ci_low",
    "ci_high",
    "details",
)
MV_CLAIM_COLUMNS: tuple[str, ...] = (
    "verdict_multivariate",
    "k_mv",
    "estimate_mv",
    "ci_low_mv",
    "ci_high_mv",
    "details_mv",
)
MV_CHECKS: tuple[str, ...] = ("ci_excludes_0", "ci_includes_0", "largest_of_windows")
TR_CLAIM_COLUMNS: tuple[str, ...] = (
    "verdict_time_response",
    "estimate_tr",
    "ci_low_tr",
    "ci_high_tr",
    "details_tr",
)


def normalise_level(value: object) -> str:
    """YAML 1.1 reads unquoted yes/no as booleans: map them back to the sheet's 'yes'/'no'."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _conditions(claim: Mapping[str, object]) -> list[Mapping[str, object]]:
    if "all_of" in claim:
        items = claim["all_of"]
        if not isinstance(items, Sequence) or isinstance(items, str) or not items:
            raise ConfigError(
                f"claim '{claim.get('id')}': all_of must be a non-empty list", key="claims"
            )
        return list(items)  # type: ignore[arg-type]
    return [claim]


def validate_claims(
    claims: Sequence[Mapping[str, object]],
    windows: Sequence[str],
    subgroups: Sequence[str] = (),
) -> None:
    """Raise `ConfigError` for an unknown check, window, direction or unconfigured subgroup."""
    seen: set[str] = set()
    for claim in claims:
        cid = str(claim.get("id", "")).strip()
        if not cid or cid in seen:
            raise ConfigError(f"every claim needs a unique id (problem: {cid!r})", key="claims")
        seen.add(cid)
        for field in ("claim", "source"):
            if not str(claim.get(field, "")).strip():
                raise ConfigError(f"claim '{cid}' needs '{field}'", key="claims")
        for cond in _conditions(claim):
            check = cond.get("check")
            if check not in CHECKS:
                raise ConfigError(
                    f"claim '{cid}': unknown check {check!r} (expected one of {', '.join(CHECKS)})",
                    key="claims",
                )
            if str(cond.get("window")) not in windows:
                raise ConfigError(
                    f"claim '{cid}': window {cond.get('window')!r} is not a "
                    f"configured window ({', '.join(windows)})",
                    key="claims",
                )
            if cond.get("direction", "positive") not in DIRECTIONS:
                raise ConfigError(
                    f"claim '{cid}': direction must be one of {', '.join(DIRECTIONS)}", key="claims"
                )
            sub = cond.get("subgroup")
            if sub is not None and sub not in subgroups:
                raise ConfigError(
                    f"claim '{cid}': subgroup '{sub}' is not a configured subgroup", key="claims"
                )
            if check == "all_ci_exclude_0" and (sub is None or not cond.get("levels")):
                raise ConfigError(
                    f"claim '{cid}': all_ci_exclude_0 needs subgroup and levels", key="claims"
                )
            if check == "proportion_ci_overlaps":
                rng = cond.get("range")
                ok = (
                    isinstance(rng, Sequence)
                    and len(rng) == 2
                    and all(isinstance(x, (int, float)) for x in rng)
                    and rng[0] <= rng[1]
                )
                if not ok:
                    raise ConfigError(
                        f"claim '{cid}': proportion_ci_overlaps needs range: "
                        "[low, high] with low <= high",
                        key="claims",
                    )


def _select(
    table: pd.DataFrame, cond: Mapping[str, object], level: str | None, defaults: Mapping[str, str]
) -> pd.Series | None:
    """The one pooled row a condition refers to (None if the table has no such row)."""
    sel = table["timepoint"] == str(cond["window"])
    for field in ("outcome", "measure", "arm_role"):
        if field in table:
            want = cond.get(field, defaults.get(field))
            if want is not None:
                sel &= table[field] == str(want)
    if level is None:
        sel &= table["subgroup"] == "all"
    else:
        sel &= (table["moderator"] == str(cond["subgroup"])) & (table["level"] == level)
    rows = table[sel]
    return rows.iloc[0] if len(rows) else None


def _fmt_row(label: str, row: pd.Series | None, prefix: str = "") -> str:
    if row is None or row["k"] == 0:
        return f"{label}: k = 0"
    est, lo, hi = (row[f"{c}{prefix}"] for c in ("estimate", "ci_low", "ci_high"))
    return f"{label}: {est:.3f} [{lo:.3f}, {hi:.3f}], k = {int(row['k'])}"


def _excludes(row: pd.Series, direction: str) -> bool:
    if direction == "positive":
        return bool(row["ci_low"] > 0)
    if direction == "negative":
        return bool(row["ci_high"] < 0)
    return bool(row["ci_low"] > 0 or row["ci_high"] < 0)


class _Outcome:
    """Result of one condition: verdict, smallest k, numbers, and a single estimate if any."""

    def __init__(
        self,
        verdict: str,
        k: int,
        details: list[str],
        row: pd.Series | None = None,
        prefix: str = "",
    ) -> None:
        self.verdict, self.k, self.details = verdict, k, details
        self.numbers = (
            tuple(float(row[f"{c}{prefix}"]) for c in ("estimate", "ci_low", "ci_high"))
            if row is not None and row["k"] >= 1
            else (np.nan, np.nan, np.nan)
        )


def _check_one(
    cond: Mapping[str, object],
    pooled: pd.DataFrame,
    proportions: pd.DataFrame | None,
    windows: Sequence[str],
    defaults: Mapping[str, str],
) -> _Outcome:
    check = str(cond["check"])
    window = str(cond["window"])
    direction = str(cond.get("direction", "positive"))
    sub = cond.get("subgroup")
    levels = [normalise_level(v) for v in cond.get("levels", [])]  # type: ignore[union-attr]
    if check in ("ci_excludes_0", "ci_includes_0"):
        if sub is not None and len(levels) != 1:
            raise ConfigError(f"{check} with a subgroup needs exactly one level", key="claims")
        level = levels[0] if sub is not None else None
        label = window + (f" {sub}={level}" if level else "")
        row = _select(pooled, cond, level, defaults)
        k = 0 if row is None else int(row["k"])
        text = [_fmt_row(label, row)]
        if k < MIN_K:
            return _Outcome(NOT_TESTABLE, k, text, row)
        ok = _excludes(row, direction) if check == "ci_excludes_0" else not _excludes(row, "any")
        return _Outcome(SUPPORTED if ok else NOT_SUPPORTED, k, text, row)
    if check == "all_ci_exclude_0":
        outs = [
            _check_one(
                {**cond, "check": "ci_excludes_0", "levels": [lv]},
                pooled,
                proportions,
                windows,
                defaults,
            )
            for lv in levels
        ]
        return _combine(outs)
    if check == "largest_of_windows":
        rows = {w: _select(pooled, {**cond, "window": w}, None, defaults) for w in windows}
        k = 0 if rows[window] is None else int(rows[window]["k"])
        text = [_fmt_row(w, r) for w, r in rows.items()]
        others = {
            w: r for w, r in rows.items() if w != window and r is not None and r["k"] >= MIN_K
        }
        if k < MIN_K or not others:
            why = f"{window} has k < 2" if k < MIN_K else "no other window has k >= 2"
            return _Outcome(NOT_TESTABLE, k, [*text, f"not testable: {why}"], rows[window])
        best = max(others.values(), key=lambda r: r["estimate"])
        ok = rows[window]["estimate"] > best["estimate"]
        text.append(f"compared with windows with k >= 2: {', '.join(others)}")
        return _Outcome(SUPPORTED if ok else NOT_SUPPORTED, k, text, rows[window])
    # proportion_ci_overlaps
    low, high = (float(x) for x in cond["range"])  # type: ignore[union-attr]
    if proportions is None or proportions.empty:
        return _Outcome(NOT_TESTABLE, 0, [f"{window}: no proportions available"])
    level = levels[0] if sub is not None and levels else None
    pdefaults = {"outcome": "response", "arm_role": "treatment"}
    row = _select(proportions, cond, level, pdefaults)
    k = 0 if row is None else int(row["k"])
    text = [_fmt_row(f"{window} proportion", row, "_prop") + f"; claimed range [{low:g}, {high:g}]"]
    if k < MIN_K:
        return _Outcome(NOT_TESTABLE, k, text, row, "_prop")
    ok = row["ci_low_prop"] <= high and row["ci_high_prop"] >= low
    return _Outcome(SUPPORTED if ok else NOT_SUPPORTED, k, text, row, "_prop")


def _combine(outs: list[_Outcome]) -> _Outcome:
    verdicts = {o.verdict for o in outs}
    verdict = (
        NOT_APPLICABLE
        if NOT_APPLICABLE in verdicts
        else NOT_TESTABLE
        if NOT_TESTABLE in verdicts
        else NOT_SUPPORTED
        if NOT_SUPPORTED in verdicts
        else SUPPORTED
    )
    out = _Outcome(verdict, min(o.k for o in outs), [d for o in outs for d in o.details])
    if len(outs) == 1:
        out.numbers = outs[0].numbers
    return out


def _check_mv(
    cond: Mapping[str, object],
    mv: pd.DataFrame,
    windows: Sequence[str],
    defaults: Mapping[str, str],
) -> _Outcome:
    """One condition judged on the multivariate model's window estimates."""
    check = str(cond["check"])
    if cond.get("subgroup") is not None:
        return _Outcome(NOT_APPLICABLE, 0, ["model fitted to all studies, not per subgroup"])
    if check not in MV_CHECKS:
        return _Outcome(NOT_APPLICABLE, 0, [f"{check} is not a check of window effects"])
    for field in ("outcome", "measure"):
        want = str(cond.get(field, defaults[field]))
        have = sorted(set(mv[field].astype(str)))
        if have != [want]:
            return _Outcome(
                NOT_APPLICABLE, 0, [f"model fitted to {field} {'/'.join(have)}, not {want}"]
            )
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


def _fmt_tr(label: str, hours: float, row: pd.Series) -> str:
    return (
        f"{label} ({hours:g} h): {row['estimate']:.3f} [{row['ci_low']:.3f}, "
        f"{row['ci_high']:.3f}] (time-response curve)"
    )


def _check_tr(
    cond: Mapping[str, object],
    tr: pd.DataFrame,
    window_hours: Mapping[str, float],
    defaults: Mapping[str, str],
) -> _Outcome:
    """One condition judged on the time-response curve at the windows' nominal times."""
    check = str(cond["check"])
    if cond.get("subgroup") is not None:
        return _Outcome(NOT_APPLICABLE, 0, ["model fitted to all studies, not per subgroup"])
    if check not in MV_CHECKS:
        return _Outcome(NOT_APPLICABLE, 0, [f"{check} is not a check of window effects"])
    for field in ("outcome", "measure"):
        want = str(cond.get(field, defaults[field]))
        have = sorted(set(tr[field].astype(str)))
        if have != [want]:
            return _Outcome(
                NOT_APPLICABLE, 0, [f"model fitted to {field} {'/'.join(have)}, not {want}"]
            )
    window = str(cond["window"])
    rows = {w: _tr_row(tr, float(h)) for w, h in window_hours.items()}
    row = rows.get(window)
    if row is None:
        return _Outcome(NOT_TESTABLE, 0, [f"{window}: no time-response prediction"])
    text = [_fmt_tr(window, float(window_hours[window]), row)]
    if "extrapolation" in str(row.get("note", "")):
        return _Outcome(NOT_TESTABLE, 0, [*text, "outside the reported times"], row)
    if check == "largest_of_windows":
        others = {w: r for w, r in rows.items() if w != window and r is not None}
        text = [_fmt_tr(w, float(window_hours[w]), r) for w, r in rows.items() if r is not None]
        peak = tr[tr["quantity"] == "peak"]
        if len(peak):
            pk = peak.iloc[0]
            text.append(
                f"peak of the curve at {pk['time_hours']:.3g} h (bootstrap interval "
                f"{pk['time_ci_low']:.3g}-{pk['time_ci_high']:.3g} h)"
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
                hours = {w: float((window_hours or {})[w]) for w in windows[group]}
                listed += _duration_text(time_response, hours)
            parts.append(f"{name}: {what} ({listed})")
        for i in ids:
            texts[i] = f"rivals '{group}': " + " | ".join(parts)
    return [texts[i] for i in table["id"]]


def _duration_text(tr: pd.DataFrame, hours: Mapping[str, float]) -> str:
    """The curve's duration with its interval, and which of the rivals' windows (nominal
    ``hours``) the interval contains (both: the duration does not separate the rivals)."""
    rows = tr[tr["quantity"] == "duration"]
    if not len(rows) or not np.isfinite(rows.iloc[0]["time_hours"]):
        return "; curve: no time with lower CI bound > 0"
    d = rows.iloc[0]
    lo, hi = d["time_ci_low"], d["time_ci_high"]
    text = (
        f"; curve: last time with lower CI bound > 0 = {d['time_hours']:.4g} h, "
        f"interval {lo:.4g}-{hi:.4g} h"
    )
    inside = [f"{w} ({h:g} h)" for w, h in hours.items() if lo <= h <= hi]
    if inside:
        text += f", which contains {' and '.join(inside)}"
    return text


def _describe(cond: Mapping[str, object]) -> str:
    parts = [str(cond["check"]), f"window={cond['window']}"]
    for field in ("direction", "outcome", "measure", "subgroup", "arm_role"):
        if field in cond:
            parts.append(f"{field}={cond[field]}")
    if "levels" in cond:
        parts.append("levels=" + "/".join(normalise_level(v) for v in cond["levels"]))
    if "range" in cond:
        parts.append("range=" + "-".join(f"{x:g}" for x in cond["range"]))
    return " ".join(parts)


def check_claims(
    claims: Sequence[Mapping[str, object]],
    pooled: pd.DataFrame,
    windows: Sequence[str],
    *,
    proportions: pd.DataFrame | None = None,
    outcome: str = "score",
    measure: str = "SMD",
    multivariate: pd.DataFrame | None = None,
    time_response: pd.DataFrame | None = None,
    window_hours: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Evaluate each claim on the pooled table (and pooled proportions); one row per claim.

    `pooled` has the `pooling.POOLED_COLUMNS`; `outcome`/`measure` are the defaults a condition
    uses when it names none. `k` is the smallest k among the claim's conditions.
    `multivariate` (outcome, measure, timepoint, k, estimate, ci_low, ci_high, status; one row
    per window) adds the `MV_CLAIM_COLUMNS`; `time_response` (the time-response summary
    table) with `window_hours` (window label -> nominal hours) adds the `TR_CLAIM_COLUMNS`;
    claims with a `rivals` key add `rival_decision` (see the module docstring).
    """
    if time_response is not None and window_hours is None:
        raise ValueError("time_response needs window_hours (window label -> nominal hours)")
    subgroups = sorted(set(pooled["moderator"]) - {"all"})
    if proportions is not None and "moderator" in proportions:
        subgroups = sorted(set(subgroups) | (set(proportions["moderator"]) - {"all"}))
    validate_claims(claims, windows, subgroups)
    defaults = {"outcome": outcome, "measure": measure}
    mv = None
    if multivariate is not None:  # one "all studies" row per window, as _select expects
        mv = multivariate.assign(subgroup="all", moderator="all", level="all")
    rows = []
    for claim in claims:
        conds = _conditions(claim)
        result = _combine([_check_one(c, pooled, proportions, windows, defaults) for c in conds])
        est, lo, hi = result.numbers
        rows.append({
            "id": str(claim["id"]), "claim": str(claim["claim"]), "source": str(claim["source"]),
            "check": " AND ".join(_describe(c) for c in conds),
            "windows": ";".join(dict.fromkeys(str(c["window"]) for c in conds)),
            "verdict": result.verdict,
            "k": result.k, "estimate": est, "ci_low": lo, "ci_high": hi,
            "details": "; ".join(result.details),
        })  # fmt: skip
        if mv is not None:
            res_mv = _combine([_check_mv(c, mv, windows, defaults) for c in conds])
            est, lo, hi = res_mv.numbers
            rows[-1].update({
                "verdict_multivariate": res_mv.verdict, "k_mv": res_mv.k,
                "estimate_mv": est, "ci_low_mv": lo, "ci_high_mv": hi,
                "details_mv": "; ".join(dict.fromkeys(res_mv.details)),
            })  # fmt: skip
        if time_response is not None:
            res_tr = _combine(
                [_check_tr(c, time_response, window_hours, defaults) for c in conds]  # type: ignore[arg-type]
            )
            est, lo, hi = res_tr.numbers
            rows[-1].update({
                "verdict_time_response": res_tr.verdict, "estimate_tr": est, "ci_low_tr": lo,
                "ci_high_tr": hi, "details_tr": "; ".join(dict.fromkeys(res_tr.details)),
            })  # fmt: skip
    columns = list(CLAIM_COLUMNS) + (list(MV_CLAIM_COLUMNS) if mv is not None else [])
    columns += list(TR_CLAIM_COLUMNS) if time_response is not None else []
    table = pd.DataFrame(rows, columns=columns)
    if any(c.get("rivals") for c in claims):
        table["rival_decision"] = _rival_decisions(table, claims, time_response, window_hours)
    return table
