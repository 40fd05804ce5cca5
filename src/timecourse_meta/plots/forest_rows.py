"""Rows of the forest plot: what each table row says and what it draws (no geometry).

A row is a dict of cell texts per column plus the interval it draws in the plot panel. The
rules here decide content, not placement: study rows (with markers for secondary sources,
crossover trials and split shared controls), pooled rows (diamond; a prediction interval
only with k >= 3 and tau^2 > 0), the heterogeneity and test lines, and the footnotes that
explain every marker and abbreviation used.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from timecourse_meta.plots.forest_text import (
    ci_text,
    greek,
    heterogeneity_text,
    int_text,
    num,
    overall_test_text,
    to_float,
    truncate,
)
from timecourse_meta.plots.study_cap import heaviest

__all__ = [
    "CROSSOVER_FLAG",
    "DEFAULT_FLAG_NOTES",
    "SORT_ORDERS",
    "SPLIT_CONTROL_FLAG",
    "Block",
    "Row",
    "build_rows",
    "cap_studies",
    "check_studies",
    "footnotes",
    "participants_total",
    "rob_present",
    "sort_studies",
]

REQUIRED = ("label", "n_treatment", "n_control", "yi", "ci_low", "ci_high", "weight")
MEANS = ("mean_t", "sd_t", "mean_c", "sd_c")
CROSSOVER_FLAG = "\u00a7"
SPLIT_CONTROL_FLAG = "\u2016"
DEFAULT_FLAG_NOTES = {
    "\u2020": "value taken from a secondary source (published meta-analysis)",
    CROSSOVER_FLAG: "crossover trial: the same participants in both conditions (N per "
    "condition; counted once in the participant total)",
    SPLIT_CONTROL_FLAG: "multi-arm trial: the shared control group was split between its "
    "comparisons (Cochrane Handbook 23.3.4); control N after splitting",
}
CHANGE_MARK = "\u0394"
SORT_ORDERS = ("study", "effect", "weight", "year")
#: Higgins, Thompson & Spiegelhalter 2009 (J R Stat Soc A 172:137), eq. 12: t with k - 2 df.
PI_MIN_K = 3
NOTE_NO_PI = (
    "No prediction interval for k < 3: it uses a t distribution with k \u2212 2 df (Higgins, "
    "Thompson & Spiegelhalter 2009)"
)
Block = tuple[str | None, pd.DataFrame, Mapping[str, object] | None]


@dataclass
class Row:
    """One table row: texts per column plus what to draw in the plot panel."""

    kind: str  # section | study | pooled | pi | line | note | blank
    cells: dict[str, str] = field(default_factory=dict)
    weight: str = "normal"
    style: str = "normal"
    est: float = math.nan
    lo: float = math.nan
    hi: float = math.nan
    w: float = math.nan  # study weight (percent)
    overall: bool = False
    rob: str | None = None


def check_studies(df: pd.DataFrame, what: str) -> None:
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; required {list(REQUIRED)}")


def cap_studies(df: pd.DataFrame, max_studies: int | None) -> tuple[pd.DataFrame, str | None]:
    """(rows to draw, note) for a forest plot of at most `max_studies` study rows.

    With more rows than `max_studies`, the `max_studies` rows with the largest weights are
    kept (missing weights last; ties in the given order), in the given order, and the note
    says so (it goes on the figure and into the rule's log); otherwise all rows and no note.
    The pooled row's N and weight totals are still those of all rows (`build_rows` totals).
    """
    k = len(df)
    if max_studies is None or k <= max_studies:
        return df, None
    if max_studies < 1:
        raise ValueError(f"forest max_studies must be >= 1, got {max_studies}")
    keep = heaviest(pd.to_numeric(df["weight"], errors="coerce"), max_studies)
    note = (
        f"Capped: only the {max_studies} studies with the largest weights of k\u00a0=\u00a0{k} "
        "are drawn (config forest.max_studies); the pooled result, the weights and the N and "
        f"weight totals are those of all {k} studies"
    )
    return df[keep], note


def sort_studies(df: pd.DataFrame, order: str = "study") -> pd.DataFrame:
    """Rows in the requested order; ties keep the given order (stable mergesort).

    study: as given (the caller's order, e.g. by study id); effect: by yi ascending; weight:
    heaviest first; year: by the ``year`` column (missing last), then as given.
    """
    if order not in SORT_ORDERS:
        raise ValueError(f"forest sort: {order!r} is not one of {list(SORT_ORDERS)}")
    if order == "study" or len(df) < 2:
        return df
    if order == "effect":
        key, asc = pd.to_numeric(df["yi"], errors="coerce"), True
    elif order == "weight":
        key, asc = pd.to_numeric(df["weight"], errors="coerce"), False
    else:
        if "year" not in df.columns:
            raise ValueError("forest sort 'year' needs a 'year' column in the study rows")
        key, asc = pd.to_numeric(df["year"], errors="coerce"), True
    pos = np.argsort(key.to_numpy() if asc else -key.to_numpy(), kind="mergesort")
    return df.iloc[pos]


def _flags(rec: Mapping[str, object]) -> list[str]:
    flag = rec.get("flag")
    out = flag.split() if isinstance(flag, str) else []
    if bool(rec.get("crossover")) is True:
        out.append(CROSSOVER_FLAG)
    if bool(rec.get("split_control")) is True:
        out.append(SPLIT_CONTROL_FLAG)
    return out


def _mean_sd(m: float, s: float, digits: int) -> str:
    if math.isfinite(m) and math.isfinite(s):
        return f"{num(m, digits)} ({num(s, digits)})"
    return "\u2013"


def study_rows(df: pd.DataFrame, with_means: bool, mean_digits: int, max_chars: int) -> list[Row]:
    rows: list[Row] = []
    for rec in df.to_dict("records"):
        label = truncate(str(rec["label"]), max_chars)
        flags = _flags(rec)
        if flags:
            label = f"{label} {''.join(flags)}"
        yi, lo, hi, w = (to_float(rec[c]) for c in ("yi", "ci_low", "ci_high", "weight"))
        cells = {
            "study": label,
            "n_t": int_text(rec["n_treatment"]),
            "n_c": int_text(rec["n_control"]),
            "effect": ci_text(yi, lo, hi) if math.isfinite(yi) else "Not estimable",
            "weight": f"{num(w, 1)}%" if math.isfinite(w) else "\u2013",
        }
        if with_means:
            delta = CHANGE_MARK if bool(rec.get("mean_change")) is True else ""
            for arm in ("t", "c"):
                m, s = to_float(rec.get(f"mean_{arm}")), to_float(rec.get(f"sd_{arm}"))
                cell = _mean_sd(m, s, mean_digits)
                cells[f"mean_{arm}"] = delta + cell if cell != "\u2013" else cell
        rob = rec.get("rob")
        rob = str(rob) if isinstance(rob, str) and rob else None
        rows.append(Row("study", cells, est=yi, lo=lo, hi=hi, w=w, rob=rob))
    return rows


def participants_total(df: pd.DataFrame) -> float:
    """Participants in the rows: n_t + n_c, a crossover trial's participants counted once
    (max of its two condition sizes); NaN if any size is missing."""
    nt = pd.to_numeric(df["n_treatment"], errors="coerce").to_numpy(float)
    nc = pd.to_numeric(df["n_control"], errors="coerce").to_numpy(float)
    if not len(nt) or np.isnan(nt).any() or np.isnan(nc).any():
        return math.nan
    cross = df["crossover"].fillna(False).astype(bool).to_numpy() if "crossover" in df else None
    per = nt + nc if cross is None else np.where(cross, np.maximum(nt, nc), nt + nc)
    return float(per.sum())


def _k_of(pooled: Mapping[str, object], df: pd.DataFrame) -> int:
    k = to_float(pooled.get("k"))
    if math.isfinite(k):
        return int(k)
    return int(np.isfinite(pd.to_numeric(df["yi"], errors="coerce").to_numpy(float)).sum())


def _pi_row(pooled: Mapping[str, object], k: int, overall: bool) -> tuple[Row | None, bool]:
    """(prediction-interval row or None, whether the k < 3 note applies)."""
    pi_lo, pi_hi = to_float(pooled.get("pi_low")), to_float(pooled.get("pi_high"))
    if not (math.isfinite(pi_lo) and math.isfinite(pi_hi)):
        return None, False
    if k < PI_MIN_K:
        return None, True
    cells = {"study": "Prediction interval"}
    if to_float(pooled.get("tau2")) == 0.0:  # PI = CI: annotate, do not draw a precise band
        cells["effect"] = "= CI (\u03c4\u00b2 = 0)"
        return Row("pi", cells, style="italic", overall=overall), False
    cells["effect"] = f"[{num(pi_lo)}, {num(pi_hi)}]"
    return Row("pi", cells, style="italic", lo=pi_lo, hi=pi_hi, overall=overall), False


def pooled_rows(
    pooled: Mapping[str, object] | None,
    df: pd.DataFrame,
    *,
    overall: bool,
    default_label: str,
    show_weight: bool,
    max_chars: int = 45,
) -> tuple[list[Row], list[Row], list[str]]:
    """(rows inside the table, heterogeneity/test lines, notes) for one pooled block."""
    if pooled is None:
        return [], [], []
    est = to_float(pooled.get("estimate"))
    cells = {"study": truncate(str(pooled.get("label") or default_label), max_chars)}
    for key, col in (("n_t", "n_treatment"), ("n_c", "n_control")):
        n = pd.to_numeric(df[col], errors="coerce") if len(df) else pd.Series(dtype=float)
        if len(n) and n.notna().all():
            cells[key] = f"{n.sum():.0f}"
    w = pd.to_numeric(df["weight"], errors="coerce") if len(df) else pd.Series(dtype=float)
    if show_weight and len(w) and w.notna().all() and math.isfinite(est):
        cells["weight"] = f"{num(w.sum(), 1)}%"
    notes = [greek(str(pooled["note"]))] if pooled.get("note") else []
    if not math.isfinite(est):
        cells["effect"] = "Not estimable"
        return [Row("pooled", cells, weight="bold", overall=overall)], [], notes
    lo, hi = to_float(pooled.get("ci_low")), to_float(pooled.get("ci_high"))
    cells["effect"] = ci_text(est, lo, hi)
    table = [Row("pooled", cells, weight="bold", est=est, lo=lo, hi=hi, overall=overall)]
    pi, no_pi = _pi_row(pooled, _k_of(pooled, df), overall)
    if pi is not None:
        table.append(pi)
    if no_pi:
        notes.append(NOTE_NO_PI)
    lines = []
    if "Q" in pooled or "tau2" in pooled:
        lines.append(Row("line", {"span": heterogeneity_text(pooled)}))
    if "stat" in pooled:
        lines.append(Row("line", {"span": overall_test_text(pooled)}))
    return table, lines, notes


def _mean_digits(all_df: pd.DataFrame, with_means: bool) -> int:
    if not with_means:
        return 2
    vals = pd.to_numeric(all_df[list(MEANS)].stack(), errors="coerce").abs()
    return 1 if vals.max() >= 10 else 2


def build_rows(
    all_df: pd.DataFrame,
    blocks: Sequence[Block],
    pooled: Mapping[str, object] | None,
    with_means: bool,
    max_label_chars: int,
    totals: pd.DataFrame | None = None,
) -> tuple[list[Row], list[Row], list[str]]:
    """(body rows inside the plot panel, footer lines under it, model notes).

    `totals`: the rows whose N and weights the overall pooled row sums (default `all_df`;
    all studies when the drawn rows were capped, `cap_studies`).
    """
    digits = _mean_digits(all_df, with_means)
    body: list[Row] = []
    footer: list[Row] = []
    notes: list[str] = []
    sectioned = blocks[0][0] is not None
    for name, df, sub_pooled in blocks:
        if sectioned:
            body.append(Row("section", {"study": str(name)}, weight="bold"))
        body.extend(study_rows(df, with_means, digits, max_label_chars))
        if sectioned:
            table, text, sub_notes = pooled_rows(
                sub_pooled,
                df,
                overall=False,
                default_label="Subtotal",
                show_weight=True,
                max_chars=max_label_chars,
            )
            if sub_pooled is None and len(df) == 1:
                text = [Row("note", {"span": "Single study: no pooled estimate"}, style="italic")]
            body.extend(table + text)
            body.append(Row("blank"))
            notes += [f"{name}: {n}" for n in sub_notes]
    if pooled is not None:
        table, text, top_notes = pooled_rows(
            pooled,
            all_df if totals is None else totals,
            overall=True,
            default_label="Random-effects model",
            show_weight=not sectioned,
            max_chars=max_label_chars,
        )
        if not sectioned:
            body.append(Row("blank"))
        body.extend(table)
        footer.extend(text)
        notes += top_notes
        if pooled.get("subgroup_test"):
            footer.append(Row("line", {"span": str(pooled["subgroup_test"])}))
    elif len(all_df) == 1 and not sectioned:
        notes.append("Single study: no pooled estimate")
    while body and body[-1].kind == "blank":
        body.pop()
    return body, footer, notes


ROB_LABELS = {
    "low": "low",
    "some_concerns": "some concerns",
    "unclear": "unclear",
    "high": "high",
    "not_assessed": "not assessed",
}


def footnotes(
    all_df: pd.DataFrame,
    body: Sequence[Row],
    flag_notes: Mapping[str, str],
    model_notes: list,
    totals: pd.DataFrame | None = None,
) -> list[str]:
    """Footnotes: every marker and abbreviation used, then the model's notes.

    `totals`: the rows the participant total counts (default `all_df`; see `build_rows`).
    """
    notes: list[str] = []
    used: list[str] = []
    for rec in all_df.to_dict("records"):
        used += [f for f in _flags(rec) if f not in used]
    for flag in sorted(used):
        if flag not in flag_notes:
            warnings.warn(f"forest_plot: no explanation for flag {flag!r}", stacklevel=4)
        notes.append(f"{flag} {flag_notes.get(flag, 'flag without explanation')}")
    if any("NR" in r.cells.values() for r in body):
        notes.append("NR: not reported")
    if any(r.cells.get(k) == "\u2013" for r in body for k in ("mean_t", "mean_c")):
        notes.append("Mean (SD) \u2013: effect not computed from arm means and SDs")
    if any(r.cells.get("mean_t", "").startswith(CHANGE_MARK) for r in body):
        notes.append(f"{CHANGE_MARK}: mean change from baseline (other means: values after dosing)")
    if any(r.kind == "study" and math.isfinite(r.est) and not math.isfinite(r.w) for r in body):
        warnings.warn(
            "forest_plot: some studies have no weight; drawn at minimum size", stacklevel=4
        )
        notes.append("\u2013: weight not available (square drawn at minimum size)")
    totals = all_df if totals is None else totals
    if "crossover" in totals and totals["crossover"].fillna(False).astype(bool).any():
        total = participants_total(totals)
        if math.isfinite(total):
            notes.append(f"Participants: {total:.0f} (each crossover participant counted once)")
    return notes + list(model_notes)


def rob_present(body: Sequence[Row]) -> list[str]:
    """Risk-of-bias judgements used in the rows, in legend order (known levels first)."""
    robs = {r.rob for r in body if r.rob}
    return [v for v in ROB_LABELS if v in robs] + sorted(v for v in robs if v not in ROB_LABELS)
