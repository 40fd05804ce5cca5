"""The GRADE summary of findings (`grade.summary_of_findings`) as a Markdown table laid out like
a Cochrane summary-of-findings table, with every reason as a numbered footnote.

Split from `grade` (which rates the certainty) because laying the table out for readers is its
own job: the certainty symbols, footnote marks, participant and study counts, the comments
column and the direction note. Cells pass through `tables.md_cell`, so text from the sheets
cannot inject Markdown or HTML.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from timecourse_meta.pipeline.grade import DOMAINS
from timecourse_meta.pipeline.tables import md_cell
from timecourse_meta.schema import measure_label

__all__ = ["sof_markdown"]

_SYMBOLS = {
    "high": "\u2295\u2295\u2295\u2295",
    "moderate": "\u2295\u2295\u2295\u25ef",
    "low": "\u2295\u2295\u25ef\u25ef",
    "very low": "\u2295\u25ef\u25ef\u25ef",
}


def _md(text: object) -> str:
    """A Markdown cell or footnote: '|' escaped, HTML made inert (`tables.md_cell`)."""
    return md_cell(str(text))


_SUPERSCRIPT = str.maketrans(
    "0123456789", "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079"
)


def sof_markdown(
    table: pd.DataFrame,
    *,
    title: str,
    intervention: str = "intervention",
    outcome_labels: Mapping[str, str] | None = None,
) -> str:
    """The table laid out like a Cochrane summary-of-findings table, reasons as footnotes.

    Columns as in Cochrane SoF tables (Handbook 5.1 section 11.5): outcome, anticipated
    absolute effects, relative effect (95% CI), number of participants (studies), certainty
    of the evidence (GRADE), comments. Every domain that is rated down, not assessed or not
    applicable gets a numbered footnote with its reason; the footnotes name every rule used.
    `intervention`: the review's word for it (config `intervention`) in the direction note;
    `outcome_labels`: the review's name of an outcome (config `outcome_label` of the primary
    outcome), else the outcome key.
    """
    names = dict(outcome_labels or {})
    head = [
        "Outcome (window)",
        "Anticipated absolute effects (95% CI)",
        "Relative effect (95% CI)",
        "No. of participants (studies)",
        "Certainty of the evidence (GRADE)",
        "Comments",
    ]
    lines = [f"# {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    notes: list[str] = []
    for _, r in table.iterrows():
        marks = []
        for d in DOMAINS:
            if r[d] == "not serious":
                continue
            notes.append(f"{d.replace('_', ' ').capitalize()}: {r[d]}. {r[f'{d}_reason']}")
            marks.append(str(len(notes)))
        ns, k = int(r["n_studies"]), int(r["k"])
        k_text = f"{ns} stud{'y' if ns == 1 else 'ies'}, {k} comparison{'' if k == 1 else 's'}"
        n = r["n_participants"]
        n_text = f"{int(n)} ({k_text})" if pd.notna(n) else f"not reported ({k_text})"
        cert = f"{_SYMBOLS[r['certainty']]} {r['certainty'].capitalize()}"
        # footnote marks as superscript digits (a <sup> tag would be made inert by md_cell)
        cert += f" {','.join(m.translate(_SUPERSCRIPT) for m in marks)}" if marks else ""
        if r["certainty_note"] != "all domains rated":
            cert += f" ({r['certainty_note']})"
        downs = [
            f"{d.replace('_', ' ')} (-{int(r[f'{d}_downgrade'])})"
            for d in DOMAINS
            if int(r[f"{d}_downgrade"]) > 0
        ]
        comment = ("Rated down for " + ", ".join(downs)) if downs else "Not rated down"
        cells = [
            f"{names.get(str(r['outcome'])) or r['outcome']} ({r['timepoint']})",
            r["absolute_effect"],
            r["relative_effect"],
            n_text,
            cert,
            f"{comment}; started at {r['start']}",
        ]
        lines.append("| " + " | ".join(_md(c) for c in cells) + " |")
    measures = [*dict.fromkeys(measure_label(m) for m in table.get("measure", []))]
    scales = "; ".join([*measures, "log-scale ratios shown exponentiated"])
    lines += [
        "",
        "Certainty: start high for randomised trials; -1 per serious and -2 per very "
        f"serious concern (GRADE). Effects: positive = benefit of {intervention} ({scales}).",
        "",
    ]
    lines += [f"{i}. {_md(t)}" for i, t in enumerate(notes, start=1)]
    return "\n".join(lines) + "\n"
