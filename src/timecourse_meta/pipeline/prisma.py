"""Counts for the PRISMA 2020 flow diagram (Page et al. 2021, BMJ 372:n71, Figure 1).

Two sources, never mixed up: the search and screening counts the review team reports (config
``prisma``; each one optional, and an absent count is shown as "not reported", never
estimated), and what the workflow itself knows: studies and rows in the extraction sheets,
studies excluded by the config with their reasons, rows excluded by the analysis with their
reasons (results/tables/exclusions.csv), and the studies that reach the analysis.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import pandas as pd

__all__ = ["PRISMA_KEYS", "prisma_boxes"]

#: Config keys (under ``prisma``) in PRISMA 2020 order, with the box text.
PRISMA_KEYS: dict[str, str] = {
    "records_identified": "Records identified from databases and registers",
    "records_removed_before_screening": "Records removed before screening",
    "records_screened": "Records screened",
    "records_excluded": "Records excluded",
    "reports_sought": "Reports sought for retrieval",
    "reports_not_retrieved": "Reports not retrieved",
    "reports_assessed": "Reports assessed for eligibility",
    "reports_excluded": "Reports excluded",
    "studies_included": "Studies included in review",
}


def _n(value: object) -> str:
    return "not reported" if value is None else str(int(value))  # type: ignore[call-overload]


def _generic(reason: str) -> str:
    """Group reasons that differ only in a reported time ("time 48 h is in no ...")."""
    return re.sub(
        r"^time [0-9.]+ h is in no configured window", "time in no configured window", reason
    )


def prisma_boxes(
    cfg: Mapping[str, object],
    rows: pd.DataFrame,
    exclusions: pd.DataFrame,
    effects: pd.DataFrame,
) -> pd.DataFrame:
    """One row per box of the diagram: box, phase, text, n (text), detail (reasons).

    Review boxes come from `cfg` (PRISMA_KEYS; ``reports_excluded`` may be a number or a list
    of {reason, n}); workflow boxes are counted from `rows` (ingested sheets), `exclusions`
    and `effects`. ``source`` says where each number comes from.
    """
    src = str(cfg.get("source") or "config prisma")
    out = []
    for key, text in PRISMA_KEYS.items():
        value = cfg.get(key)
        detail = ""
        if key == "reports_excluded" and isinstance(value, list):
            detail = "; ".join(f"{r['reason']} (n = {int(r['n'])})" for r in value)
            value = sum(int(r["n"]) for r in value) if value else None
        out.append(
            {
                "box": key,
                "phase": "review",
                "text": text,
                "n": _n(value),
                "detail": detail,
                "source": src if value is not None else "",
            }
        )
    sheet_studies = sorted(rows["study_id"].astype(str).unique())
    out.append(
        {
            "box": "sheet_studies",
            "phase": "workflow",
            "text": "Studies in the extraction sheets",
            "n": str(len(sheet_studies)),
            "detail": f"{len(rows)} rows",
            "source": "ingested sheets",
        }
    )
    config = exclusions[exclusions["stage"] == "eligibility"]
    by_study = config.groupby("study_id", sort=True)["reason"].first()
    analysed = set(effects["study_id"].astype(str))
    config_only = [s for s in by_study.index if s not in analysed]
    out.append(
        {
            "box": "excluded_by_config",
            "phase": "workflow",
            "text": "Studies excluded by the configuration",
            "n": str(len(config_only)),
            "detail": "; ".join(
                f"{s}: {by_study[s].removeprefix('study excluded by config: ')}"
                for s in config_only
            ),
            "source": "exclusions.csv (stage eligibility)",
        }
    )
    later = exclusions[exclusions["stage"] != "eligibility"]
    counts = (
        later.assign(reason=later["reason"].astype(str).map(_generic))
        .groupby("reason", sort=True)
        .size()
    )
    out.append(
        {
            "box": "rows_excluded",
            "phase": "workflow",
            "text": "Rows not analysed",
            "n": str(len(later)),
            "detail": "; ".join(f"{r} (n = {n})" for r, n in counts.items()),
            "source": "exclusions.csv (stages windows, effects)",
        }
    )
    lost = [s for s in sheet_studies if s not in analysed and s not in config_only]
    reasons = later.groupby("study_id")["reason"].agg(lambda x: sorted(set(map(_generic, x))))
    out.append(
        {
            "box": "studies_without_effect",
            "phase": "workflow",
            "text": "Studies with no analysable row",
            "n": str(len(lost)),
            "detail": "; ".join(f"{s}: {', '.join(reasons.get(s, ['no row']))}" for s in lost),
            "source": "exclusions.csv",
        }
    )
    out.append(
        {
            "box": "studies_analysed",
            "phase": "workflow",
            "text": "Studies in the meta-analyses",
            "n": str(len(analysed)),
            "detail": "outcomes: " + ", ".join(sorted(set(effects["outcome"].astype(str)))),
            "source": "effects",
        }
    )
    return pd.DataFrame(out, columns=["box", "phase", "text", "n", "detail", "source"])
