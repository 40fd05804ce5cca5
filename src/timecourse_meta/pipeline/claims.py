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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from timecourse_meta.errors import ConfigError, excerpt
from timecourse_meta.pipeline.config import load_yaml, schema_problems
from timecourse_meta.schema import (
    CHECKS,
    CLAIM_COLUMNS,
    DIRECTIONS,
    MIN_K,
    MV_CHECKS,
    MV_CLAIM_COLUMNS,
    NOT_APPLICABLE,
    NOT_SUPPORTED,
    NOT_TESTABLE,
    SUPPORTED,
    normalise_level,
)

__all__ = [
    "CHECKS",
    "CLAIM_COLUMNS",
    "MV_CLAIM_COLUMNS",
    "check_claims",
    "load_claims",
    "validate_claims",
]


def _conditions(claim: Mapping[str, object]) -> list[Mapping[str, object]]:
    if "all_of" in claim:
        items = claim["all_of"]
        if not isinstance(items, Sequence) or isinstance(items, str) or not items:
            raise ConfigError(
                f"claim '{claim.get('id')}': all_of must be a non-empty list", key="claims"
            )
        return list(items)  # type: ignore[arg-type]
    return [claim]


def _claim_where(claims: object, path: str) -> str:
    """'claim 3 (id 'x')' for a schema key path such as 'claims.2.all_of.0.window'."""
    parts = path.split(".")
    if len(parts) < 2 or parts[0] != "claims" or not parts[1].isdigit():
        return path
    index = int(parts[1])
    where = f"claim {index + 1}"
    item = claims[index] if isinstance(claims, list) and index < len(claims) else None
    if isinstance(item, Mapping) and isinstance(item.get("id"), str):
        where += f" (id {excerpt(item['id'])})"
    rest = ".".join(parts[2:])
    return where + (f", {rest}" if rest else "")


def load_claims(
    path: str | Path,
    schema: Mapping[str, object],
    windows: Sequence[str],
    subgroups: Sequence[str] = (),
    *,
    shown: str | None = None,
    strict_windows: bool = True,
) -> list[Mapping[str, object]]:
    """Read the claims file and check it before any rule runs; return its list of claims.

    Plain YAML only (`config.load_yaml`: no Python tags, no key given twice), the JSON schema
    `config/schema/claims.schema.yaml` (a claim that is a plain string, an `all_of` entry that
    is not a condition, `levels: true` ...), then `validate_claims` (known checks, configured
    windows and subgroups). Raises ConfigError (key `claims_file`) naming the file and the claim;
    when there are several problems the first is shown with the number of others.
    """
    name = shown or Path(path).as_posix()
    if not Path(path).is_file():
        what = "is not a file" if Path(path).exists() else "not found"
        raise ConfigError(f"{name} {what}", key="claims_file")
    data = load_yaml(path)
    if data is None:
        data = {}
    problems = schema_problems(data, schema)
    if problems:
        where, message = problems[0]
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        claims = data.get("claims") if isinstance(data, Mapping) else None
        where = _claim_where(claims, where) if where != "(top level)" else "top level"
        raise ConfigError(f"{name}, {where}: {message}{more}", key="claims_file")
    claims = list(data["claims"])  # type: ignore[index]
    try:
        validate_claims(claims, windows, subgroups, strict_windows=strict_windows)
    except ConfigError as err:
        raise ConfigError(
            f"{name}: {str(err).removeprefix('config ' + repr('claims') + ': ')}", key="claims_file"
        ) from None
    return claims


def validate_claims(
    claims: Sequence[Mapping[str, object]],
    windows: Sequence[str],
    subgroups: Sequence[str] = (),
    *,
    strict_windows: bool = True,
) -> None:
    """Raise `ConfigError` for an unknown check, window, direction or unconfigured subgroup.

    `strict_windows=False`: a window that is not configured is allowed (its conditions are
    "not testable", see `check_claims`), so the shipped claims do not stop a run whose windows
    were changed on the command line.
    """
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
            if strict_windows and str(cond.get("window")) not in windows:
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
            if (
                check in ("ci_excludes_0", "ci_includes_0")
                and sub is not None
                and len(cond.get("levels") or []) != 1  # type: ignore[arg-type]
            ):
                raise ConfigError(
                    f"claim '{cid}': {check} with a subgroup needs exactly one level in levels",
                    key="claims",
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


def _unconfigured(cond: Mapping[str, object], windows: Sequence[str]) -> _Outcome | None:
    """A condition at a window that is not configured is "not testable" (with the reason)."""
    if str(cond["window"]) in windows:
        return None
    why = f"window '{cond['window']}' is not a configured window ({', '.join(windows)})"
    return _Outcome(NOT_TESTABLE, 0, [why])


def _checked(
    cond: Mapping[str, object],
    pooled: pd.DataFrame,
    proportions: pd.DataFrame | None,
    windows: Sequence[str],
    defaults: Mapping[str, str],
) -> _Outcome:
    return _unconfigured(cond, windows) or _check_one(cond, pooled, proportions, windows, defaults)


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
    subgroups: Sequence[str] | None = None,
    strict_windows: bool = True,
) -> pd.DataFrame:
    """Evaluate each claim on the pooled table (and pooled proportions); one row per claim.

    `pooled` has the `pooling.POOLED_COLUMNS`; `outcome`/`measure` are the defaults a condition
    uses when it names none. `k` is the smallest k among the claim's conditions.
    `multivariate` (outcome, measure, timepoint, k, estimate, ci_low, ci_high, status; one row
    per window) adds the `MV_CLAIM_COLUMNS` (see the module docstring). `subgroups`: the
    configured subgroup columns (a configured subgroup with no rows, e.g. when every study was
    excluded, makes its conditions "not testable"); default: those present in `pooled`.
    """
    if subgroups is None:  # the configured subgroups; else those present in the tables
        subgroups = sorted(set(pooled["moderator"]) - {"all"})
        if proportions is not None and "moderator" in proportions:
            subgroups = sorted(set(subgroups) | (set(proportions["moderator"]) - {"all"}))
    validate_claims(claims, windows, subgroups, strict_windows=strict_windows)
    defaults = {"outcome": outcome, "measure": measure}
    mv = None
    if multivariate is not None:  # one "all studies" row per window, as _select expects
        mv = multivariate.assign(subgroup="all", moderator="all", level="all")
    rows = []
    for claim in claims:
        conds = _conditions(claim)
        result = _combine([_checked(c, pooled, proportions, windows, defaults) for c in conds])
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
            res_mv = _combine(
                [_unconfigured(c, windows) or _check_mv(c, mv, windows, defaults) for c in conds]
            )
            est, lo, hi = res_mv.numbers
            rows[-1].update({
                "verdict_multivariate": res_mv.verdict, "k_mv": res_mv.k,
                "estimate_mv": est, "ci_low_mv": lo, "ci_high_mv": hi,
                "details_mv": "; ".join(dict.fromkeys(res_mv.details)),
            })  # fmt: skip
    columns = list(CLAIM_COLUMNS) + (list(MV_CLAIM_COLUMNS) if mv is not None else [])
    return pd.DataFrame(rows, columns=columns)
