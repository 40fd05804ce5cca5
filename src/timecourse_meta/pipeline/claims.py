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

import pandas as pd

from timecourse_meta.pipeline.claims_config import _conditions, validate_claims
from timecourse_meta.pipeline.claims_core import _check_one, _combine, _Outcome
from timecourse_meta.pipeline.claims_models import _check_mv, _check_tr, _rival_decisions
from timecourse_meta.schema import (
    CHECKS,
    CLAIM_COLUMNS,
    MV_CLAIM_COLUMNS,
    NOT_TESTABLE,
    TR_CLAIM_COLUMNS,
    normalise_level,
)

__all__ = [
    "CHECKS",
    "CLAIM_COLUMNS",
    "MV_CLAIM_COLUMNS",
    "TR_CLAIM_COLUMNS",
    "check_claims",
    "normalise_level",
]


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
    time_response: pd.DataFrame | None = None,
    window_hours: Mapping[str, float] | None = None,
    subgroups: Sequence[str] | None = None,
    strict_windows: bool = True,
    time_unit: str = "hours",
) -> pd.DataFrame:
    """Evaluate each claim on the pooled table (and pooled proportions); one row per claim.

    Times in the time-response details are shown in `time_unit` (config `time_unit`).

    `pooled` has the `pooling.POOLED_COLUMNS`; `outcome`/`measure` are the defaults a condition
    uses when it names none. `k` is the smallest k among the claim's conditions.
    `multivariate` (outcome, measure, timepoint, k, estimate, ci_low, ci_high, status; one row
    per window) adds the `MV_CLAIM_COLUMNS`; `time_response` (the time-response summary
    table) with `window_hours` (window label -> nominal hours) adds the `TR_CLAIM_COLUMNS`;
    claims with a `rivals` key add `rival_decision` (see the module docstring). `subgroups`:
    the configured subgroup columns (a configured subgroup with no rows, e.g. when every study
    was excluded, makes its conditions "not testable"); default: those present in `pooled`.
    `strict_windows=False`: a condition at a window that is not configured is "not testable".
    """
    if time_response is not None and window_hours is None:
        raise ValueError("time_response needs window_hours (window label -> nominal hours)")
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
        if time_response is not None:
            res_tr = _combine(
                [
                    _unconfigured(c, windows)
                    or _check_tr(c, time_response, window_hours, defaults, time_unit)  # type: ignore[arg-type]
                    for c in conds
                ]
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
        table["rival_decision"] = _rival_decisions(
            table, claims, time_response, window_hours, time_unit
        )
    return table
