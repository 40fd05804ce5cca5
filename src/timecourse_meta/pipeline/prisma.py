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


def _box(box: str, phase: str, text: str, n: str, detail: str, source: str) -> dict[str, str]:
    return {"box": box, "phase": phase, "text": text, "n": n, "detail": detail, "source": source}


def _review_boxes(cfg: Mapping[str, object]) -> list[dict[str, str]]:
    """The review team's counts (config), "not reported" where absent."""
    src = str(cfg.get("source") or "config prisma")
    out = []
    for key, text in PRISMA_KEYS.items():
        value = cfg.get(key)
        detail = ""
        if key == "reports_excluded" and isinstance(value, list):
            detail = "; ".join(f"{r['reason']} (n = {int(r['n'])})" for r in value)
            value = sum(int(r["n"]) for r in value) if value else None
        if value is not None and not detail:
            detail = f"as stated in {src}"
        out.append(_box(key, "review", text, _n(value), detail, src if value is not None else ""))
    return out


def _workflow_boxes(
    rows: pd.DataFrame, exclusions: pd.DataFrame, effects: pd.DataFrame
) -> list[dict[str, str]]:
    """What the workflow counted: sheets, exclusions by the config and by the analysis."""
    sheet = sorted(rows["study_id"].astype(str).unique())
    config = exclusions[exclusions["stage"] == "eligibility"]
    by_study = config.groupby("study_id", sort=True)["reason"].first()
    analysed = set(effects["study_id"].astype(str))
    config_only = [s for s in by_study.index if s not in analysed]
    later = exclusions[exclusions["stage"] != "eligibility"]
    generic = later.assign(reason=later["reason"].astype(str).map(_generic))
    counts = generic.groupby("reason", sort=True).size()
    reasons = generic.groupby("study_id")["reason"].agg(lambda x: sorted(set(x)))
    lost = [s for s in sheet if s not in analysed and s not in config_only]
    prefix = "study excluded by config: "
    return [
        _box("sheet_studies", "workflow", "Studies in the extraction sheets", str(len(sheet)),
             f"{len(rows)} rows", "ingested sheets"),
        _box("excluded_by_config", "workflow", "Studies excluded by the configuration",
             str(len(config_only)),
             "; ".join(f"{s}: {by_study[s].removeprefix(prefix)}" for s in config_only),
             "exclusions.csv (stage eligibility)"),
        _box("rows_excluded", "workflow", "Rows not analysed", str(len(later)),
             "; ".join(f"{r} (n = {n})" for r, n in counts.items()),
             "exclusions.csv (stages windows, effects)"),
        _box("studies_without_effect", "workflow", "Studies with no analysable row",
             str(len(lost)),
             "; ".join(f"{s}: {', '.join(reasons.get(s, ['no row']))}" for s in lost),
             "exclusions.csv"),
        _box("studies_analysed", "workflow", "Studies in the meta-analyses", str(len(analysed)),
             "outcomes: " + ", ".join(sorted(set(effects["outcome"].astype(str)))), "effects"),
    ]  # fmt: skip


def prisma_boxes(
    cfg: Mapping[str, object],
    rows: pd.DataFrame,
    exclusions: pd.DataFrame,
    effects: pd.DataFrame,
) -> pd.DataFrame:
    """One row per box of the diagram: box, phase, text, n (text), detail (reasons), source.

    Review boxes come from `cfg` (PRISMA_KEYS; ``reports_excluded`` may be a number or a list
    of {reason, n}); workflow boxes are counted from `rows` (ingested sheets), `exclusions`
    and `effects`. ``source`` says where each number comes from.
    """
    boxes = _review_boxes(cfg) + _workflow_boxes(rows, exclusions, effects)
    return pd.DataFrame(boxes, columns=["box", "phase", "text", "n", "detail", "source"])
