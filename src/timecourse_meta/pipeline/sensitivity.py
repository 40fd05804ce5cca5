"""Sensitivity analyses: the primary analysis re-run on subsets and leave-one-out per window.

Each variant is pooled exactly as the primary analysis (``pooling.pool_by_timepoint``); rows
follow ``schema.SENSITIVITY_COLUMNS``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from timecourse_meta.errors import ConfigError
from timecourse_meta.pipeline.pooling import estimators, pool_by_timepoint
from timecourse_meta.schema import SENSITIVITY_COLUMNS, SOURCE_ROWS, normalise_level, rows_for

__all__ = ["leave_one_out_rows", "pool_variants", "subset_effects"]


def _norm(values: Sequence[object]) -> list[str]:
    items = values if isinstance(values, (list, tuple)) else [values]
    return [normalise_level(v).lower() for v in items]


def _row_values(effects: pd.DataFrame, rows: pd.DataFrame, column: str) -> list[list[str]]:
    """Per effect: the lower-case `column` values of the sheet rows it was computed from
    (`SOURCE_ROWS`: its {source_file, source_row} records)."""
    lookup = dict(
        zip(
            zip(rows["source_file"].astype(str), rows["source_row"].astype("int64"), strict=True),
            rows[column].fillna("").astype(str).str.strip().str.lower(),
            strict=True,
        )
    )
    out = []
    for records in effects[SOURCE_ROWS]:
        out.append([lookup.get((str(r["source_file"]), int(r["source_row"])), "") for r in records])
    return out


def subset_effects(
    effects: pd.DataFrame,
    *,
    keep: Mapping[str, Sequence[object]] | None = None,
    exclude: Mapping[str, Sequence[object]] | None = None,
    rows: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Effects whose columns take `keep` values and avoid `exclude` values (sensitivity subsets).

    Values are compared as lower-case strings (YAML booleans yes/no are mapped back first). A
    column the effects do not carry (e.g. an extra `rob` column of the sheet) is read from the
    sheet `rows` the effect was computed from (its `source_rows`): an effect is kept by `keep`
    when every one of its rows takes a listed value, and removed by `exclude` when any of them
    does (a comparison is in a subset only when all its arms are). Raises ConfigError for a
    column in neither.
    """
    sel = np.ones(len(effects), dtype=bool)
    for part, spec in (("keep", keep), ("exclude", exclude)):
        for column, values in (spec or {}).items():
            wanted = set(_norm(values))
            if column in effects:
                hit = effects[column].astype(str).str.lower().isin(sorted(wanted)).to_numpy()
            elif rows is not None and column in rows and SOURCE_ROWS in effects:
                per_row = _row_values(effects, rows, column)
                test = all if part == "keep" else any
                hit = np.array([bool(v) and test(x in wanted for x in v) for v in per_row])
                hit = hit.astype(bool) if len(hit) else np.zeros(0, dtype=bool)
            else:
                raise ConfigError(
                    f"unknown column '{column}' (not in the effects or the sheet rows)",
                    key=f"sensitivity.subsets.{part}.{column}",
                )
            sel &= hit if part == "keep" else ~hit
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
        sel = rows_for(effects, outcome, measure)
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
    sel = rows_for(effects, outcome, measure)
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
                "studies": ";".join(sorted(kept["study_id"].astype(str).tolist())),
                "warnings": notes if bool(r.get("converged", True)) else "did not converge",
            })  # fmt: skip
    return pd.DataFrame(rows).reindex(columns=list(SENSITIVITY_COLUMNS))
