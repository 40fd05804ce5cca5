"""Risk-of-bias sheet: read, validate, derive an overall judgement per study, weight summary.

The sheet (data/raw/risk_of_bias_README.md) is long format, one row per study x outcome x
domain: ``study_id, outcome, tool, domain, judgement, support_quote, source_address,
source_locator, note``. Two tools are supported:

* ``RoB1``: the Cochrane Collaboration's tool (Higgins et al. 2011, BMJ 343:d5928; Cochrane
  Handbook 5.1, Table 8.5.a), seven domains, judgements low / unclear / high.
* ``RoB2``: the revised tool (Sterne et al. 2019, BMJ 366:l4898), five domains, judgements
  low / some_concerns / high.

``not_assessed`` is allowed in both: nothing was read for that domain. It is never turned into
a judgement. A study with no table at all has one row with ``domain = overall``.

Overall judgement (`overall_judgement`), stated in the output's ``overall_rule`` column:

* RoB 1, Cochrane Handbook 5.1 section 8.7 (Table 8.7.a, "possible approach for summary
  assessments"): **low** if every key domain is low, **high** if any key domain is high,
  otherwise **unclear**. Key domains are the review team's choice (config
  ``risk_of_bias_key_domains``; default all seven).
* RoB 2, Sterne et al. 2019 (overall risk-of-bias judgement): **low** if every domain is low,
  **high** if any domain is high, otherwise **some_concerns**; the guidance adds that "some
  concerns" in several domains may lower confidence enough to judge the result high. That is
  a judgement call: config ``risk_of_bias_some_concerns_high`` (a number of domains, or null
  for never).
* Either tool: a known **high** decides the overall judgement (no unread domain can undo it).
  Otherwise, if a key domain is ``not_assessed`` the overall judgement is ``not_assessed``
  (it could still be high), and the rule column says which domains were not read.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from timecourse_meta.errors import SheetError
from timecourse_meta.pipeline.csv_reader import read_text_table

__all__ = [
    "DOMAINS",
    "JUDGEMENTS",
    "ROB_COLUMNS",
    "TOOLS",
    "domain_table",
    "overall_judgements",
    "read_risk_of_bias",
    "study_weights",
    "weighted_summary",
]

ROB_COLUMNS: tuple[str, ...] = (
    "study_id",
    "outcome",
    "tool",
    "domain",
    "judgement",
    "support_quote",
    "source_address",
    "source_locator",
    "note",
)
_REQUIRED = ("study_id", "outcome", "tool", "domain", "judgement")
TOOLS: tuple[str, ...] = ("RoB1", "RoB2")
#: Domains of each tool in the order Cochrane prints them (Handbook 5.1 Table 8.5.a; RoB 2).
DOMAINS: dict[str, tuple[str, ...]] = {
    "RoB1": (
        "random_sequence_generation",
        "allocation_concealment",
        "blinding_participants_personnel",
        "blinding_outcome_assessment",
        "incomplete_outcome_data",
        "selective_reporting",
        "other_bias",
    ),
    "RoB2": (
        "randomization_process",
        "deviations_from_intended_interventions",
        "missing_outcome_data",
        "measurement_of_outcome",
        "selection_of_reported_result",
    ),
}
#: Judgements of each tool, best first, then not_assessed.
JUDGEMENTS: dict[str, tuple[str, ...]] = {
    "RoB1": ("low", "unclear", "high", "not_assessed"),
    "RoB2": ("low", "some_concerns", "high", "not_assessed"),
}
NOT_ASSESSED = "not_assessed"


def _norm(value: str) -> str:
    return "_".join(value.strip().lower().replace("-", " ").split())


def _check_row(path: str, line: int, row: Mapping[str, str]) -> None:
    """One row of the sheet: tool, domain and judgement from the tool's vocabulary."""
    for column in _REQUIRED:
        if not row[column]:
            raise SheetError(path, "empty cell; this column is required", line=line, column=column)
    tool = row["tool"]
    if tool not in TOOLS:
        raise SheetError(
            path,
            f"unknown tool; expected one of {', '.join(TOOLS)}",
            line=line,
            column="tool",
            found=tool,
        )
    domains = (*DOMAINS[tool], "overall")
    if row["domain"] not in domains:
        raise SheetError(
            path,
            f"unknown {tool} domain; expected one of {', '.join(domains)}",
            line=line,
            column="domain",
            found=row["domain"],
        )
    if row["judgement"] not in JUDGEMENTS[tool]:
        raise SheetError(
            path,
            f"not a {tool} judgement; expected one of {', '.join(JUDGEMENTS[tool])}",
            line=line,
            column="judgement",
            found=row["judgement"],
        )
    if row["judgement"] != NOT_ASSESSED and not row.get("source_address", ""):
        raise SheetError(
            path,
            "a judgement needs its source (where the assessment was read)",
            line=line,
            column="source_address",
        )


def read_risk_of_bias(
    path: str | Path, *, label: str | None = None, study_ids: Iterable[str] | None = None
) -> pd.DataFrame:
    """Read and validate a risk-of-bias sheet; one-line `SheetError` on any problem.

    Checks: required columns present and filled; tool, domain and judgement from the tool's
    vocabulary (case-insensitive; "Some concerns" is read as some_concerns); a source address
    for every judgement other than not_assessed; one tool per study and outcome; no domain
    twice for a study and outcome; an ``overall`` row only when it is the study's single row
    (no table found). With `study_ids` (the studies of the extraction sheets), an id close to
    one of them but not equal is an error (a misspelt id would silently leave a study
    unassessed); ids of studies not in the sheets at all are set aside and listed in
    ``frame.attrs["not_in_sheets"]`` (the caller logs them).
    """
    name = label if label is not None else Path(path).as_posix()
    frame = read_text_table(path, label=name)
    missing = [c for c in _REQUIRED if c not in frame]
    if missing:
        raise SheetError(name, f"missing column(s) {', '.join(missing)}", line=1)
    for column in ROB_COLUMNS:
        if column not in frame:
            frame[column] = ""
    tools = {t.lower(): t for t in TOOLS}
    frame["tool"] = [tools.get(t.lower(), t) for t in frame["tool"]]
    for column in ("domain", "judgement"):
        frame[column] = [_norm(v) for v in frame[column]]
    frame["outcome"] = frame["outcome"].str.lower()
    known = set(study_ids) if study_ids is not None else None
    for record in frame.to_dict("records"):
        _check_row(name, int(record["source_row"]), record)
        if known is not None and record["study_id"] not in known:
            close = difflib.get_close_matches(record["study_id"], sorted(known), n=1, cutoff=0.8)
            if close:
                raise SheetError(
                    name,
                    f"study_id is in no extraction sheet; did you mean '{close[0]}'?",
                    line=int(record["source_row"]),
                    column="study_id",
                    found=record["study_id"],
                )
    _check_groups(name, frame)
    if known is not None:  # assessed studies that are not analysed here (another sheet set)
        other = ~frame["study_id"].isin(known)
        frame.attrs["not_in_sheets"] = sorted(set(frame.loc[other, "study_id"]))
        frame = frame.loc[~other]
    frame["source_file"] = name
    out = frame.reset_index(drop=True)
    out.attrs = dict(frame.attrs)
    return out


def _check_groups(path: str, frame: pd.DataFrame) -> None:
    """One tool per study and outcome, no domain twice, `overall` only as the single row."""
    for (study, outcome), group in frame.groupby(["study_id", "outcome"], sort=False):
        if group["tool"].nunique() > 1:
            line = int(group["source_row"].iloc[list(group["tool"]).index(group["tool"].iloc[-1])])
            raise SheetError(
                path,
                f"study {study} ({outcome}) is assessed with two tools",
                line=line,
                column="tool",
            )
        twice = group[group["domain"].duplicated()]
        if len(twice):
            raise SheetError(
                path,
                f"domain appears twice for study {study} ({outcome})",
                line=int(twice["source_row"].iloc[0]),
                column="domain",
                found=twice["domain"].iloc[0],
            )
        overall = group[group["domain"] == "overall"]
        if len(overall) and len(group) > 1:
            raise SheetError(
                path,
                "an 'overall' row is only for a study without a domain-level table "
                "(the overall judgement is derived from the domains)",
                line=int(overall["source_row"].iloc[0]),
                column="domain",
            )


def _overall(
    tool: str,
    judgements: Mapping[str, str],
    key_domains: Sequence[str] | None,
    some_concerns_high: int | None,
) -> tuple[str, str]:
    """Overall judgement of one study from its domain judgements, and the rule applied."""
    if set(judgements) == {"overall"}:
        return NOT_ASSESSED, "no risk-of-bias table for this study (nothing was read)"
    keys = [d for d in DOMAINS[tool] if key_domains is None or d in key_domains]
    values = {d: judgements.get(d, NOT_ASSESSED) for d in keys}
    high = [d for d, j in values.items() if j == "high"]
    unread = [d for d, j in values.items() if j == NOT_ASSESSED]
    source = (
        "Cochrane Handbook 5.1 section 8.7 (Table 8.7.a)"
        if tool == "RoB1"
        else "RoB 2 (Sterne et al. 2019)"
    )
    if high:
        return "high", f"{source}: high in {', '.join(high)}"
    middle = "unclear" if tool == "RoB1" else "some_concerns"
    concerns = [d for d, j in values.items() if j == middle]
    if unread:
        bound = f"; at least {middle.replace('_', ' ')} ({', '.join(concerns)})" if concerns else ""
        return NOT_ASSESSED, (
            f"{source}: not derivable, key domain(s) not assessed: {', '.join(unread)}{bound}"
        )
    if not concerns:
        return "low", f"{source}: low in all {len(keys)} key domains"
    if tool == "RoB2" and some_concerns_high is not None and len(concerns) >= some_concerns_high:
        return "high", (
            f"{source}: some concerns in {len(concerns)} domains (>= {some_concerns_high}, "
            "config risk_of_bias_some_concerns_high)"
        )
    return middle, f"{source}: {middle.replace('_', ' ')} in {', '.join(concerns)}"


def overall_judgements(
    rob: pd.DataFrame,
    *,
    key_domains: Sequence[str] | None = None,
    some_concerns_high: int | None = None,
) -> pd.DataFrame:
    """One row per study and outcome: tool, overall judgement and the rule that gave it."""
    rows = []
    for (study, outcome), group in rob.groupby(["study_id", "outcome"], sort=False):
        tool = str(group["tool"].iloc[0])
        judged = dict(zip(group["domain"], group["judgement"], strict=True))
        overall, rule = _overall(tool, judged, key_domains, some_concerns_high)
        rows.append(
            {
                "study_id": study,
                "outcome": outcome,
                "tool": tool,
                "overall": overall,
                "overall_rule": rule,
            }
        )
    return pd.DataFrame(rows, columns=["study_id", "outcome", "tool", "overall", "overall_rule"])


def domain_table(
    rob: pd.DataFrame, overall: pd.DataFrame, study_ids: Sequence[str] | None = None
) -> pd.DataFrame:
    """Study x domain table (one row per study and outcome) with the overall judgement.

    Columns: study_id, outcome, tool, one column per domain (judgement), overall,
    overall_rule, and for each domain ``<domain>_quote`` and ``<domain>_source`` (address and
    locator). Studies in `study_ids` without any row in the sheet are added as not_assessed
    with the rule "no row in the risk-of-bias sheet".
    """
    tool_domains = [d for t in TOOLS if t in set(rob["tool"]) for d in DOMAINS[t]]
    rows = []
    for _, o in overall.iterrows():
        sel = rob[(rob["study_id"] == o["study_id"]) & (rob["outcome"] == o["outcome"])]
        row: dict[str, object] = {
            "study_id": o["study_id"],
            "outcome": o["outcome"],
            "tool": o["tool"],
        }
        by_domain = {r["domain"]: r for r in sel.to_dict("records")}
        for d in tool_domains:
            r = by_domain.get(d)
            row[d] = (
                r["judgement"] if r else ("" if d not in DOMAINS[str(o["tool"])] else NOT_ASSESSED)
            )
        row["overall"], row["overall_rule"] = o["overall"], o["overall_rule"]
        for d in tool_domains:
            r = by_domain.get(d)
            row[f"{d}_quote"] = r["support_quote"] if r else ""
            row[f"{d}_source"] = (
                "; ".join(x for x in (r["source_address"], r["source_locator"]) if x) if r else ""
            )
        rows.append(row)
    table = pd.DataFrame(rows)
    extra = sorted(set(study_ids or []) - set(overall["study_id"]))
    if extra:
        filler = pd.DataFrame(
            {
                "study_id": extra,
                "outcome": "all",
                "tool": "",
                "overall": NOT_ASSESSED,
                "overall_rule": "no row in the risk-of-bias sheet",
            }
        )
        table = pd.concat([table, filler], ignore_index=True)
    return (
        table.fillna("")
        .sort_values(["study_id", "outcome"], kind="mergesort")
        .reset_index(drop=True)
    )


def study_overall(table: pd.DataFrame, study: str, outcome: str) -> str:
    """Overall judgement for one study and outcome: the outcome's own row, else 'all'."""
    for key in (outcome, "all"):
        hit = table[(table["study_id"] == study) & (table["outcome"] == key)]
        if len(hit):
            return str(hit["overall"].iloc[0])
    return NOT_ASSESSED


def study_weights(effects: pd.DataFrame, pooled_row: Mapping[str, object]) -> pd.DataFrame:
    """Random-effects weight share of each study in one pooled window (from the pooled tau^2).

    w_i = 1 / (v_i + tau^2), normalised to sum to 1 (the weights of metafor ``rma``, the same
    for test = knha); a study with several comparisons gets the sum of its comparisons'
    weights. Nothing is refitted: tau^2 is the pooled table's. `effects` must already be the
    window's rows of the pooled outcome and measure; with k = 1 the one study has weight 1.
    """
    tau2 = float(pooled_row.get("tau2", 0.0) or 0.0)  # type: ignore[arg-type]
    if not np.isfinite(tau2):
        tau2 = 0.0
    w = 1.0 / (effects["vi"].to_numpy(float) + tau2)
    out = pd.DataFrame({"study_id": effects["study_id"].to_numpy(), "weight": w / w.sum()})
    return out.groupby("study_id", sort=True, as_index=False)["weight"].sum()


def weighted_summary(table: pd.DataFrame, weights: pd.DataFrame, *, outcome: str) -> pd.DataFrame:
    """Share of weight per judgement per domain (robvis summary plot), plus 'overall'.

    One row per domain x judgement: domain, judgement, weight (share, sums to 1 per domain),
    studies (';'-joined). A domain a study's tool does not have is counted as not_assessed.
    """
    tools = [t for t in TOOLS if t in set(table["tool"])]
    domains = [d for t in tools for d in DOMAINS[t]] + ["overall"]
    judgements = [j for t in tools for j in JUDGEMENTS[t]]
    order = list(dict.fromkeys(judgements or list(JUDGEMENTS["RoB1"])))
    rows = []
    for domain in domains:
        acc: dict[str, list[object]] = {j: [0.0, []] for j in order}
        for study, w in zip(weights["study_id"], weights["weight"], strict=True):
            hit = table[(table["study_id"] == study) & (table["outcome"].isin([outcome, "all"]))]
            hit = hit.sort_values("outcome", key=lambda s: s != outcome, kind="mergesort")
            value = str(hit[domain].iloc[0]) if len(hit) and domain in hit else NOT_ASSESSED
            value = value or NOT_ASSESSED
            acc.setdefault(value, [0.0, []])
            acc[value][0] = float(acc[value][0]) + float(w)  # type: ignore[arg-type]
            acc[value][1].append(study)  # type: ignore[union-attr]
        for judgement, (share, studies) in acc.items():
            rows.append(
                {
                    "domain": domain,
                    "judgement": judgement,
                    "weight": share,
                    "studies": ";".join(studies),
                }
            )  # type: ignore[arg-type]
    return pd.DataFrame(rows, columns=["domain", "judgement", "weight", "studies"])
