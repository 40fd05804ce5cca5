"""Living review: the change table (`changes.diff_snapshots`) told in words.

`changes_markdown` writes results/changes.md: verdict changes in bold at the top, then one
plain-language paragraph ("Adding X moved the 7 d estimate from ... to ...; claim duration_7d
changed from not testable to supported"), then a short table per section. `markdown_to_html`
turns that Markdown (the few constructs it uses) into the HTML page shown in the Snakemake
report. Same input, same text: no timestamps, fixed order.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence

import pandas as pd

from timecourse_meta.pipeline.changes import SECTIONS, verdict_changes
from timecourse_meta.pipeline.tables import to_markdown_text

__all__ = ["changes_markdown", "markdown_to_html", "plain_summary", "window_label"]

_TITLES = {
    "claim": "Claims",
    "pooled": "Pooled estimates per outcome and window",
    "multivariate": "Multivariate time-course model (window means)",
    "time_response": "Time-response summary",
    "study": "Studies",
    "row": "Input rows",
    "effect": "Effect sizes",
    "exclusion": "Exclusions",
    "row_accounting": "Row accounting",
    "config": "Configuration",
    "software": "Software versions",
}
_POOLED_SHOWN = ("k", "estimate", "ci_low", "ci_high", "tau2", "I2")
_MAX_LINES = 40  # lines per section table in the Markdown (changes.csv has all of them)


def window_label(label: str) -> str:
    """'7d' -> '7 d', '24h' -> '24 h'; other labels unchanged."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([A-Za-z]+)", label)
    return f"{m.group(1)} {m.group(2)}" if m else label


def _num(text: str, decimals: int = 3) -> str:
    try:
        x = float(text)
    except (TypeError, ValueError):
        return text or "NA"
    if x != x:
        return "NA"
    out = f"{x:.{decimals}f}"
    return out[1:] if out.startswith("-") and float(out) == 0 else out


def _estimate(record: Mapping[str, str] | None) -> str:
    """'0.253 [-0.394, 0.900] (k = 1)', or 'no estimate (k = 0)'."""
    if record is None:
        return "no estimate (window not analysed)"
    k = record.get("k", "")
    if record.get("estimate", "NA") in ("", "NA"):
        return f"no estimate (k = {k or 0})"
    ci = f"[{_num(record.get('ci_low', ''))}, {_num(record.get('ci_high', ''))}]"
    return f"{_num(record['estimate'])} {ci} (k = {k})"


def _join(parts: Sequence[str]) -> str:
    parts = [p for p in parts if p]
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _input_phrases(changes: pd.DataFrame) -> list[str]:
    """'adding X', 'removing Y', 'editing Z (mean)', 'changing the configuration (...)'."""
    study = changes[changes["section"] == "study"]
    phrases = []
    added = list(study.loc[study["change"] == "added", "item"])
    removed = list(study.loc[study["change"] == "removed", "item"])
    if added:
        phrases.append("adding " + _join(added))
    if removed:
        phrases.append("removing " + _join(removed))
    for r in study[study["change"] == "edited"].itertuples(index=False):
        for part in r.detail.split("; "):
            m = re.fullmatch(r"(\d+ rows?) (edited|added|removed)(?: \((.*)\))?", part)
            if m is None:
                continue
            count, kind, fields = m.groups()
            if kind == "edited":
                phrases.append(f"editing {count} of {r.item} ({fields})")
            else:
                verb, prep = ("adding", "to") if kind == "added" else ("removing", "from")
                phrases.append(f"{verb} {count} {prep} {r.item}")
    config = changes[changes["section"] == "config"]
    if len(config):
        shown = [
            f"{r.item}: {r.before or '(absent)'} → {r.after or '(absent)'}"
            for r in config.itertuples(index=False)
        ]
        more = f" and {len(shown) - 3} more" if len(shown) > 3 else ""
        phrases.append("changing the configuration (" + "; ".join(shown[:3]) + more + ")")
    software = changes[changes["section"] == "software"]
    if len(software):
        phrases.append(
            "running other software ("
            + "; ".join(f"{r.item} {r.before} → {r.after}" for r in software.itertuples())
            + ")"
        )
    return phrases


def _moved_windows(
    changes: pd.DataFrame,
    before: Mapping[str, pd.DataFrame],
    after: Mapping[str, pd.DataFrame],
    outcome: str,
    measure: str,
) -> list[str]:
    pooled = changes[(changes["section"] == "pooled") & changes["field"].isin(_POOLED_SHOWN[:4])]
    pooled = pooled[pooled["item"].str.startswith(f"{outcome}/{measure}/")]
    pooled_all = changes[(changes["section"] == "pooled") & changes["item"].str.startswith(
        f"{outcome}/{measure}/") & changes["change"].isin(["added", "removed"])]  # fmt: skip
    items = list(dict.fromkeys(list(pooled["item"]) + list(pooled_all["item"])))
    b = _by_window(before.get("pooled"))
    a = _by_window(after.get("pooled"))
    out = []
    for item in items:
        label = window_label(item.split("/", 2)[2])
        out.append(
            f"the {label} estimate from {_estimate(b.get(item))} to {_estimate(a.get(item))}"
        )
    return out


def _by_window(frame: pd.DataFrame | None) -> dict[str, dict[str, str]]:
    if frame is None or not len(frame):
        return {}
    keys = frame["outcome"] + "/" + frame["measure"] + "/" + frame["timepoint"]
    return dict(zip(keys, frame.to_dict("records"), strict=True))


def plain_summary(
    changes: pd.DataFrame,
    before: Mapping[str, pd.DataFrame],
    after: Mapping[str, pd.DataFrame],
    *,
    outcome: str,
    measure: str,
) -> str:
    """One paragraph in plain words: what changed in the inputs, what it did to the primary
    outcome's window estimates, and which claim verdicts changed."""
    if not len(changes):
        return (
            "No change: the rerun gives the same input rows, effect sizes, pooled estimates, "
            "claim verdicts, exclusions, configuration and software versions as the baseline."
        )
    inputs = _input_phrases(changes)
    subject = _join(inputs) if inputs else "Rerunning with the same data and configuration"
    subject = subject[0].upper() + subject[1:]
    moved = _moved_windows(changes, before, after, outcome, measure)
    if moved:
        sentence = f"{subject} moved " + "; ".join(moved)
    else:
        other = changes[changes["section"].isin(["pooled", "multivariate"])]
        tail = " (other results changed; see below)" if len(other) else ""
        sentence = f"{subject} left the {outcome} ({measure}) window estimates unchanged{tail}"
    flips = verdict_changes(changes)
    if len(flips):
        claims = []
        for r in flips.itertuples(index=False):
            model = "" if r.field == "verdict" else f" ({r.field.removeprefix('verdict_')} model)"
            claims.append(f"claim {r.item}{model} changed from {r.before} to {r.after}")
        sentence += "; " + "; ".join(claims)
    else:
        sentence += "; no claim verdict changed"
    return sentence + "."


def _short(text: object, width: int = 120) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _section_table(changes: pd.DataFrame, section: str) -> str:
    part = changes[changes["section"] == section]
    frame = part.drop(columns=["section"])
    if section in ("claim", "config", "software", "study"):
        frame = frame.drop(columns=["difference"])
    shown = frame.head(_MAX_LINES).map(_short)
    text = to_markdown_text(shown)
    if len(frame) > _MAX_LINES:
        text += f"\n... and {len(frame) - _MAX_LINES} more lines in changes.csv.\n"
    return text


def _window_table(
    changes: pd.DataFrame,
    before: Mapping[str, pd.DataFrame],
    after: Mapping[str, pd.DataFrame],
    section: str,
) -> str:
    """Changed outcome x window of the `section` table (pooled or multivariate): each statistic
    'before → after' (those the table has), plus the estimate's change."""
    part = changes[(changes["section"] == section) & changes["item"].str.count("/").eq(2)]
    items = list(dict.fromkeys(part["item"]))
    b, a = _by_window(before.get(section)), _by_window(after.get(section))
    columns: set[str] = set()
    for frame in (before.get(section), after.get(section)):
        if frame is not None:
            columns |= set(frame.columns)
    lines = []
    for item in items:
        old, new = b.get(item, {}), a.get(item, {})
        outcome, measure, window = item.split("/", 2)
        row = {"outcome": outcome, "measure": measure, "window": window}
        for field in (f for f in _POOLED_SHOWN if f in columns):
            dec = 0 if field == "k" else (1 if field == "I2" else 3)
            row[field] = f"{_num(old.get(field, ''), dec)} → {_num(new.get(field, ''), dec)}"
        diff = part[(part["item"] == item) & (part["field"] == "estimate")]
        row["estimate change"] = _num(diff["difference"].iloc[0]) if len(diff) else "0"
        lines.append(row)
    return to_markdown_text(pd.DataFrame(lines)) if lines else ""


def _claims_table(changes: pd.DataFrame) -> str:
    """One line per changed claim: each verdict column 'before → after' (or as it was), and
    the other fields that changed (their values are in changes.csv)."""
    part = changes[changes["section"] == "claim"]
    edited = part[part["change"].isin(["edited", "verdict changed"])]
    lines = []
    for item in dict.fromkeys(edited["item"]):
        mine = edited[edited["item"] == item]
        verdicts = mine[mine["change"] == "verdict changed"]
        row = {"claim": item}
        row["verdict changes"] = (
            "; ".join(f"{r.field}: **{r.before} → {r.after}**" for r in verdicts.itertuples())
            or "none"
        )
        others = mine[mine["change"] != "verdict changed"]
        row["other changed fields"] = ", ".join(others["field"]) or "none"
        lines.append(row)
    out = to_markdown_text(pd.DataFrame(lines)) if lines else ""
    rest = part[~part["change"].isin(["edited", "verdict changed"])]
    return out + ("\n" + _section_table(rest, "claim") if len(rest) else "")


def changes_markdown(
    changes: pd.DataFrame,
    before: Mapping[str, pd.DataFrame],
    after: Mapping[str, pd.DataFrame],
    *,
    baseline: str,
    outcome: str,
    measure: str,
) -> str:
    """results/changes.md: verdict changes (bold), plain summary, then one table per section."""
    lines = ["# What changed since the baseline", ""]
    flips = verdict_changes(changes)
    if len(flips):
        shown = "; ".join(
            f"{r.item} ({r.field}): {r.before} → {r.after}" for r in flips.itertuples()
        )
        lines += [f"**Claim verdicts changed: {shown}.**", ""]
    lines += [plain_summary(changes, before, after, outcome=outcome, measure=measure), ""]
    n = len(changes)
    lines += [
        f"Baseline: {baseline}. Every change is a line of results/tables/changes.csv "
        f"({n} line{'s' if n != 1 else ''}); 'before → after', difference = after - before.",
        "",
    ]
    for section in SECTIONS:
        if not (changes["section"] == section).any():
            continue
        lines += [f"## {_TITLES[section]}", ""]
        if section in ("pooled", "multivariate"):
            lines += [_window_table(changes, before, after, section).rstrip(), ""]
            rest = changes[(changes["section"] == section) & ~changes["item"].str.count("/").eq(2)]
            if len(rest):
                lines += [_section_table(rest, section).rstrip(), ""]
        elif section == "claim":
            lines += [_claims_table(changes).rstrip(), ""]
        elif section == "exclusion":
            part = changes[(changes["section"] == section)]
            new = part[part["change"] == "added"]
            if len(new):
                lines += [f"New exclusions ({len(new)}), with reasons:", ""]
                for r in new.itertuples():
                    _, out, window, stage = (r.item.split("/") + ["", "", "", ""])[:4]
                    where = f"{out}, {window or 'no window'}, stage {stage}"
                    lines.append(f"- {r.detail} ({where})")
                lines += [""]
            rest = part[part["change"] != "added"]
            if len(rest):
                lines += [_section_table(rest, section).rstrip(), ""]
        else:
            lines += [_section_table(changes, section).rstrip(), ""]
    return "\n".join(lines).rstrip() + "\n"


_BOLD = re.compile(r"\*\*(.+?)\*\*")
_CODE = re.compile(r"`([^`]+)`")


def _inline(text: str) -> str:
    out = html.escape(text, quote=False)
    out = _BOLD.sub(r"<strong>\1</strong>", out)
    return _CODE.sub(r"<code>\1</code>", out)


def _table_cells(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [c.strip().replace("\\|", "|") for c in cells]


def markdown_to_html(markdown: str, *, title: str = "What changed") -> str:
    """HTML page of the Markdown `changes_markdown` writes (headings, paragraphs, bold, code,
    '- ' lists and pipe tables; everything else is escaped text)."""
    body: list[str] = []
    blocks = markdown.strip().split("\n\n")
    for block in blocks:
        lines = block.splitlines()
        if lines[0].startswith("#"):
            level = len(lines[0]) - len(lines[0].lstrip("#"))
            body.append(f"<h{level}>{_inline(lines[0][level:].strip())}</h{level}>")
            lines = lines[1:]
            if not lines:
                continue
        if lines[0].startswith("|") and len(lines) > 1 and set(lines[1]) <= set("|-: "):
            head = "".join(f"<th>{_inline(c)}</th>" for c in _table_cells(lines[0]))
            rows = [
                "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in _table_cells(line)) + "</tr>"
                for line in lines[2:]
                if line.startswith("|")
            ]
            extra = [f"<p>{_inline(line)}</p>" for line in lines[2:] if not line.startswith("|")]
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody>"
                        "</table>")  # fmt: skip
            body.extend(extra)
        elif all(line.startswith("- ") for line in lines):
            items = "".join(f"<li>{_inline(line[2:])}</li>" for line in lines)
            body.append(f"<ul>{items}</ul>")
        else:
            body.append(f"<p>{_inline(' '.join(lines))}</p>")
    style = (
        "body{font-family:sans-serif;font-size:14px;max-width:70em;margin:1em}"
        "table{border-collapse:collapse;margin:0.5em 0}"
        "th,td{border:1px solid #bbb;padding:2px 6px;text-align:left;vertical-align:top}"
    )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{style}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
