"""Small-study effects per window: Egger's regression test (metafor ``regtest``) as a table.

Egger et al. (1997) via ``diagnostics.small_study.regtest`` (model "rma", predictor "sei":
metafor's default, with the pooled model's estimator and test). Sterne et al. (2011, BMJ
343:d4002) recommend tests for funnel-plot asymmetry only with at least 10 studies; below
`min_k` the test is not run and the row says "not recommended (k < 10; Sterne 2011)". The
funnel plot itself is drawn for every window (``plots.funnel``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from timecourse_meta.diagnostics.small_study import regtest
from timecourse_meta.pipeline.pooling import estimators
from timecourse_meta.schema import rows_for

__all__ = ["SMALL_STUDY_COLUMNS", "small_study_table"]

SMALL_STUDY_COLUMNS: tuple[str, ...] = (
    "outcome",
    "measure",
    "timepoint",
    "k",
    "test",
    "stat_name",
    "stat",
    "df",
    "pval",
    "limit_estimate",
    "limit_ci_low",
    "limit_ci_high",
    "result",
)
TEST_NAME = "Egger regression test (metafor regtest: model rma, predictor sei)"


def small_study_table(
    effects: pd.DataFrame,
    timepoints: Sequence[str],
    *,
    outcome: str,
    measure: str,
    method: str = "REML",
    test: str = "knha",
    level: float = 0.95,
    method_fallback: str | None = "DL",
    min_k: int = 10,
) -> pd.DataFrame:
    """One row per window: k and, when k >= `min_k`, Egger's test with its limit estimate."""
    rows = []
    sel = rows_for(effects, outcome, measure)
    for tp in timepoints:
        group = sel[sel["timepoint"] == tp].sort_values("comparison_id", kind="mergesort")
        k = len(group)
        row: dict[str, object] = {
            "outcome": outcome,
            "measure": measure,
            "timepoint": tp,
            "k": k,
            "test": TEST_NAME,
        }
        if k < min_k:
            row["result"] = f"not recommended (k < {min_k}; Sterne 2011)"
            rows.append(row)
            continue
        res = None
        for est in estimators(method, method_fallback):
            try:
                res = regtest(
                    group["yi"].to_numpy(float),
                    group["vi"].to_numpy(float),
                    model="rma",
                    predictor="sei",
                    method=est,
                    test=test,
                    level=level,
                )
                break
            except Exception as err:  # noqa: BLE001 - a failed fit is reported, not raised
                row["result"] = f"not computed ({est}: {err})"
        if res is None:
            rows.append(row)
            continue
        row.update(
            {
                "stat_name": res.stat_name,
                "stat": res.stat,
                "df": np.nan if res.df is None else float(res.df),
                "pval": res.pval,
                "limit_estimate": res.est,
                "limit_ci_low": res.ci_low,
                "limit_ci_high": res.ci_high,
                "result": f"{res.stat_name} = {res.stat:.2f}, p = {res.pval:.3g} ({res.method})",
            }
        )
        rows.append(row)
    return pd.DataFrame(rows).reindex(columns=list(SMALL_STUDY_COLUMNS))
