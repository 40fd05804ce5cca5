"""The first page of the HTML report: the pooled numbers, the claim verdicts and the figure.

`snakemake --report` shows the workflow description (workflow/report/workflow.rst) as its
landing page and every other output only behind a link. That description includes the
reStructuredText written here (rule report_summary), so the first page shows the numbers
themselves: per window k, estimate with its CI, tau² and I² of the primary outcome (from
pooled_by_timepoint.csv, all studies), the verdict of every configured claim (claims.csv), a
warning when most rows fall outside every window, and the time-course figure, embedded as a
base64 PNG so that the self-contained report needs no other file (RFC 2397 data URL).
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Mapping

import pandas as pd

from timecourse_meta.schema import ALL_STUDIES, rows_for
from timecourse_meta.schema import measure_label as measure_name

__all__ = ["pooled_rows", "summary_rst"]

_SPECIAL = re.compile(r"([\\`*_|<>\[\]])")


def _text(value: object) -> str:
    """One table cell as plain reStructuredText: inline markup characters escaped."""
    text = " ".join(str(value).split())
    return _SPECIAL.sub(r"\\\1", text) if text else "\\ "


def _num(value: object, digits: int = 2) -> str:
    """'0.54', '−6.34' (a minus sign as in the tables of the README); NA for missing."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "NA"
    if not math.isfinite(v):
        return "NA"
    return f"{v:.{digits}f}".replace("-", "\u2212")


def pooled_rows(
    pooled: pd.DataFrame, timepoints: list[str], *, outcome: str, measure: str
) -> pd.DataFrame:
    """The overall rows (subgroup all) of the primary outcome and measure, in window order."""
    sel = rows_for(pooled, outcome, measure, subgroup=ALL_STUDIES)
    order = {tp: i for i, tp in enumerate(timepoints)}
    sel = sel.assign(_o=sel["timepoint"].map(order)).sort_values("_o", kind="mergesort")
    return sel.drop(columns="_o").reset_index(drop=True)


def _list_table(title: str, header: list[str], rows: list[list[str]]) -> list[str]:
    lines = [f".. list-table:: {_text(title)}", "   :header-rows: 1", ""]
    for row in [header, *rows]:
        lines.append(f"   * - {row[0]}")
        lines += [f"     - {cell}" for cell in row[1:]]
    return [*lines, ""]


def summary_rst(
    pooled: pd.DataFrame,
    claims: pd.DataFrame | None,
    timepoints: list[str],
    *,
    outcome: str,
    measure: str,
    level: float,
    labels: Mapping[str, object],
    figure_png: bytes | None = None,
    warning: str | None = None,
) -> str:
    """reStructuredText of the report's first page (included by workflow/report/workflow.rst).

    `labels`: config intervention, comparator, outcome_label, measure_label (the review's own
    words; neutral defaults). `claims`: claims.csv, None or empty when no claims are
    configured (then no verdict table). Numbers with two decimals (tau² three), I² in percent,
    as in the README's table.
    """
    intervention = str(labels.get("intervention") or "intervention")
    comparator = str(labels.get("comparator") or "control")
    outcome_label = str(labels.get("outcome_label") or outcome)
    measure_label = measure_name(measure, labels)
    head = f"{intervention[:1].upper()}{intervention[1:]} vs {comparator}"
    pct = f"{100 * level:g}%"
    lines = [
        f"**Results at a glance.** {_text(head)}: {_text(outcome_label)}, "
        f"{_text(measure_label)} (positive = benefit of {_text(intervention)}); "
        "random-effects model per time window, all studies (pooled_by_timepoint.csv).",
        "",
    ]
    if warning:
        lines += [f"**Warning:** {_text(warning)}", ""]
    rows = pooled_rows(pooled, timepoints, outcome=outcome, measure=measure)
    body = [
        [
            _text(r["timepoint"]),
            _text(int(r["k"]) if pd.notna(r["k"]) else "NA"),
            _num(r["estimate"]),
            f"[{_num(r['ci_low'])}, {_num(r['ci_high'])}]",
            _num(r["tau2"], 3),
            _num(r["I2"], 1),
            _text(r["method"]),
        ]
        for _, r in rows.iterrows()
    ]
    header = ["window", "k", "estimate", f"{pct} CI", "tau²", "I² (%)", "method"]
    if body:
        lines += _list_table(f"Pooled {measure_label} per window", header, body)
    else:
        lines += ["No pooled rows for the primary outcome.", ""]
    if claims is not None and len(claims):
        cols = [
            ("id", "claim"),
            ("claim", "statement"),
            ("verdict", "per window"),
            ("verdict_multivariate", "multivariate"),
            ("verdict_time_response", "time-response curve"),
        ]
        cols = [(c, name) for c, name in cols if c in claims]
        lines += _list_table(
            "Claims checked (claims.csv)",
            [name for _, name in cols],
            [[_text(r[c]) for c, _ in cols] for _, r in claims.iterrows()],
        )
    if figure_png:
        # base64 in lines of 76 characters: docutils refuses lines over 10 000 characters, and
        # URL parsers drop the line breaks (WHATWG URL standard: ASCII tab or newline removed)
        data = base64.encodebytes(figure_png).decode("ascii").split()
        alt = html.escape(f"{head}: effect over time")
        lines += [
            ".. raw:: html",
            "",
            f'   <img alt="{alt}" style="max-width: 100%" src="data:image/png;base64,',
            *(f"   {chunk}" for chunk in data),
            '   "/>',
            "",
        ]
    return "\n".join(lines) + "\n"
