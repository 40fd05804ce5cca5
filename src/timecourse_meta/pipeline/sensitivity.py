"""Sensitivity analyses: the primary analysis re-run on subsets and leave-one-out per window.

Each variant is pooled exactly as the primary analysis (``pooling.pool_by_timepoint``); rows
follow ``schema.SENSITIVITY_COLUMNS``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from timecourse_meta.pipeline.pooling import estimators, pool_by_timepoint
from timecourse_meta.schema import SENSITIVITY_COLUMNS

__all__ = ["leave_one_out_rows", "pool_variants", "subset_effects"]


def subset_effects(
    effects: pd.DataFrame,
    *,
    keep: Mapping[str, Sequence[object]] | None = None,
    exclude: Mapping[str, Sequence[object]] | None = None,
) -> pd.DataFrame:
    """Effects whose columns take `keep` values and avoid `exclude` values (sensitivity subsets).

    Values are compared as lower-case strings (YAML booleans yes/no are mapped back first).
    """

    def norm(values: Sequence[object]) -> list[str]:
        return [("yes" if v else "no") if isinstance(v, bool) else str(v).lower() for v in values]

    sel = np.ones(len(effects), dtype=bool)
    for column, values in (keep or {}).items():
        sel &= effects[column].astype(str).str.lower().isin(norm(values)).to_numpy()
    for column, values in (exclude or {}).items():
        sel &= ~effects[column].astype(str).str.lower().isin(norm(values)).to_numpy()
    return effects.loc[sel].reset_index(drop=True)


def pool_variants(
    variants: Mapping[str, pd.DataFrame],
    timepoints: Sequence[str],
    *,
    outcome: str,
    measure: str,
    method: str = "REML",
    test: str = "knha",
    level: float = 0.95,
    method_fallback: str | None = "DL",
) -> pd.DataFrame:
    """Pool each named effects table per window for one outcome/measure (sensitivity rows)."""
    frames = []
    for name, effects in variants.items():
        sel = effects[(effects["outcome"] == outcome) & (effects["measure"] == measure)]
        table = pool_by_timepoint(
            sel,
            timepoints,
            method=method,
            test=test,
            level=level,
            outcomes=[outcome],
            method_fallback=method_fallback,
        )
        table = table[table["measure"].isin([measure, ""])].assign(
            analysis=name, omitted="", measure=measure
        )
        frames.append(table)
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return out.reindex(columns=list(SENSITIVITY_COLUMNS))


def leave_one_out_rows(
    effects: pd.DataFrame,
    timepoints: Sequence[str],
    leave_one_out: Callable[..., pd.DataFrame],
    *,
    outcome: str,
    measure: str,
    method: str = "REML",
    test: str = "knha",
    level: float = 0.95,
    method_fallback: str | None = "DL",
) -> pd.DataFrame:
    """Leave-one-out refits per window (metafor `leave1out`) as sensitivity rows.

    `leave_one_out(yi, vi, method, test, level, labels)` is `diagnostics.leave_one_out`. Windows
    with k < 3 get one row saying why nothing was refitted (omitting one of two studies leaves
    a single study, which is not a pooled model).
    """
    rows = []
    sel = effects[(effects["outcome"] == outcome) & (effects["measure"] == measure)]
    for tp in timepoints:
        group = sel[sel["timepoint"] == tp].sort_values("comparison_id", kind="mergesort")
        base = {
            "analysis": "leave_one_out",
            "outcome": outcome,
            "measure": measure,
            "timepoint": tp,
            "method": method,
            "test": test,
        }
        if len(group) < 3:
            rows.append(
                {
                    **base,
                    "omitted": "",
                    "k": len(group),
                    "warnings": f"not run: k = {len(group)} (needs k >= 3)",
                }
            )
            continue
        labels = group["comparison_id"].astype(str).tolist()
        table = leave_one_out(
            group["yi"].to_numpy(float),
            group["vi"].to_numpy(float),
            method=estimators(method, method_fallback),
            test=test,
            level=level,
            labels=labels,
        )
        notes = "; ".join(table.attrs.get("warnings", []))
        for label, r in table.iterrows():
            kept = group[group["comparison_id"].astype(str) != str(label)]
            rows.append({
                **base, "omitted": str(label), "k": len(kept),
                "n_participants": float(kept["n_total"].sum()),
                **{c: float(r[c]) for c in ("estimate", "se", "ci_low", "ci_high", "pval",
                                            "tau2", "I2")},
                "studies": ";".join(sorted(kept["study_id"].astype(str))),
                "warnings": notes if bool(r.get("converged", True)) else "did not converge",
            })  # fmt: skip
    return pd.DataFrame(rows).reindex(columns=list(SENSITIVITY_COLUMNS))
