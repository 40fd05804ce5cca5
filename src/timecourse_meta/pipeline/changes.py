"""Living review: what changed between a baseline snapshot of the results and this run.

A snapshot (`snapshot_tables`: a run's results as text tables, exactly as the workflow's CSV
writer prints them) of the baseline and one of the current run are compared by
`diff_snapshots`, table by table, into one change table (`CHANGE_COLUMNS`); the `changes` rule
writes it.

Comparing text, not floats, is deliberate: both sides pass through the same writer (6
significant digits, `NA` for missing), so identical inputs give identical strings and an
empty difference, while any change that shows in a results table shows here.

Input rows are matched in three passes, so that inserting a row in the middle of a sheet (which
shifts every later line number) is not reported as an edit of every later row: (1) identical
content hash, in sheet order; (2) the same `file:line` and study; (3) the same study, arm, arm
role, outcome and time when that identifies a single row on each side. A matched pair with a
different hash is an edit (with the fields that differ); what is left is added or removed.

Pure functions only: data frames in, data frames out (no files, no git).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import pandas as pd

from timecourse_meta.pipeline.tables import format_value

__all__ = [
    "CHANGE_COLUMNS",
    "SECTIONS",
    "diff_snapshots",
    "verdict_changes",
]

#: sections of the change table, in the order they are listed
SECTIONS: tuple[str, ...] = (
    "claim",
    "pooled",
    "multivariate",
    "time_response",
    "study",
    "row",
    "effect",
    "exclusion",
    "row_accounting",
    "config",
    "software",
)
CHANGE_COLUMNS: tuple[str, ...] = (
    "section",
    "change",
    "item",
    "field",
    "before",
    "after",
    "difference",
    "detail",
)
#: candidate key columns of a table whose layout this module does not know (time response)
_GENERIC_KEYS = ("outcome", "measure", "model", "timepoint", "window", "term", "parameter",
                 "quantity", "statistic", "subgroup", "id", "name")  # fmt: skip


def _number(text: str) -> float | None:
    try:
        x = float(text)
    except (TypeError, ValueError):
        return None
    return None if x != x else x


def _difference(before: str, after: str) -> str:
    """after - before when both are numbers (6 significant digits), else ''."""
    b, a = _number(before), _number(after)
    if b is None or a is None:
        return ""
    return format_value(a - b)


def _record(section: str, change: str, item: str, field: str = "", before: str = "",
            after: str = "", detail: str = "") -> dict[str, str]:  # fmt: skip
    return {
        "section": section,
        "change": change,
        "item": item,
        "field": field,
        "before": before,
        "after": after,
        "difference": _difference(before, after) if field else "",
        "detail": detail,
    }


def _keyed(frame: pd.DataFrame, keys: Sequence[str]) -> dict[tuple[str, ...], dict[str, str]]:
    """Rows by key tuple in table order; a repeated key gets an occurrence number appended."""
    out: dict[tuple[str, ...], dict[str, str]] = {}
    seen: dict[tuple[str, ...], int] = {}
    for record in frame.to_dict("records"):
        key = tuple(str(record.get(k, "")) for k in keys)
        seen[key] = seen.get(key, 0) + 1
        out[key if seen[key] == 1 else (*key, f"#{seen[key]}")] = record
    return out


def _diff_keyed(
    before: pd.DataFrame,
    after: pd.DataFrame,
    keys: Sequence[str],
    section: str,
    *,
    ignore: Iterable[str] = (),
    change_name: Callable[[str], str] = lambda field: "edited",
    detail: Callable[[dict[str, str]], str] = lambda record: "",
    value: str | None = None,
) -> list[dict[str, str]]:
    """Added, removed and edited rows of a table matched on `keys`, one record per field.

    `value`: for a key-value table (config, software), the column whose content an added or
    removed row shows as its after or before value.
    """
    skip = set(keys) | set(ignore)
    b, a = _keyed(before, keys), _keyed(after, keys)
    shared = [c for c in after.columns if c in set(before.columns) and c not in skip]
    out: list[dict[str, str]] = []
    for column in after.columns:
        if column not in before.columns and column not in skip:
            out.append(_record(section, "column added", column, detail="new column in this run"))
    for column in before.columns:
        if column not in after.columns and column not in skip:
            out.append(_record(section, "column removed", column, detail="not in this run"))
    order = list(a) + [k for k in b if k not in a]
    for key in order:
        item = "/".join(key)
        if key not in b:
            new = str(a[key][value]) if value else ""
            out.append(_record(section, "added", item, "", "", new, detail(a[key])))
        elif key not in a:
            old = str(b[key][value]) if value else ""
            out.append(_record(section, "removed", item, "", old, "", detail(b[key])))
        else:
            for column in shared:
                old, new = str(b[key][column]), str(a[key][column])
                if old != new:
                    out.append(
                        _record(
                            section, change_name(column), item, column, old, new, detail(a[key])
                        )  # fmt: skip
                    )
    return out


def _generic_keys(before: pd.DataFrame, after: pd.DataFrame) -> list[str]:
    return [c for c in _GENERIC_KEYS if c in before.columns and c in after.columns]


def _describe_row(record: Mapping[str, str]) -> str:
    parts = [record.get(c, "") for c in ("study_id", "arm", "outcome")]
    text = ", ".join(p for p in parts if p)
    time = record.get("time_hours", "")
    return f"{text} at {time} h" if time else text


def _match_rows(before: list[dict[str, str]], after: list[dict[str, str]]) -> list[tuple[int, int]]:
    """Pairs (before index, after index) of the same row (three passes, module docstring)."""
    pairs: list[tuple[int, int]] = []
    free_b, free_a = set(range(len(before))), set(range(len(after)))

    def link(key: Callable[[dict[str, str]], tuple[str, ...]], unique: bool) -> None:
        groups_b: dict[tuple[str, ...], list[int]] = {}
        for i in sorted(free_b):
            groups_b.setdefault(key(before[i]), []).append(i)
        groups_a: dict[tuple[str, ...], list[int]] = {}
        for j in sorted(free_a):
            groups_a.setdefault(key(after[j]), []).append(j)
        for k, js in groups_a.items():
            is_ = groups_b.get(k, [])
            if unique and (len(is_) != 1 or len(js) != 1):
                continue
            for i, j in zip(is_, js, strict=False):
                pairs.append((i, j))
                free_b.discard(i)
                free_a.discard(j)

    link(lambda r: (r["row_hash"],), unique=False)
    link(lambda r: (r["row_id"], r.get("study_id", "")), unique=True)
    identity = ("study_id", "arm", "arm_role", "outcome", "time_hours")
    link(lambda r: tuple(r.get(c, "") for c in identity), unique=True)
    return sorted(pairs, key=lambda p: p[1])


def _rows_text(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def _diff_rows(before: pd.DataFrame, after: pd.DataFrame) -> list[dict[str, str]]:
    """Study records (added / removed / edited) then row records (added / removed / edited)."""
    b, a = before.to_dict("records"), after.to_dict("records")
    pairs = _match_rows(b, a)
    matched_b, matched_a = {i for i, _ in pairs}, {j for _, j in pairs}
    position = {"row_id", "source_file", "source_row", "row_hash"}
    fields = [c for c in after.columns if c in set(before.columns) and c not in position]
    rows_out: list[dict[str, str]] = []
    per_study: dict[str, dict[str, list[str]]] = {}

    def note(study: str, kind: str, text: str) -> None:
        per_study.setdefault(study, {}).setdefault(kind, []).append(text)

    for i, j in pairs:
        old, new = b[i], a[j]
        if old["row_hash"] == new["row_hash"]:
            continue
        moved = "" if old["row_id"] == new["row_id"] else f"; was {old['row_id']}"
        where = f"{_describe_row(new)}; row hash {old['row_hash']} → {new['row_hash']}{moved}"
        changed = [c for c in fields if str(old.get(c, "")) != str(new.get(c, ""))]
        for c in changed:
            rows_out.append(_record("row", "edited", new["row_id"], c, old[c], new[c], where))
        note(new.get("study_id", ""), "edited", ", ".join(changed))
    for j in sorted(set(range(len(a))) - matched_a):
        new = a[j]
        rows_out.append(
            _record("row", "added", new["row_id"], "row", "", new["row_hash"], _describe_row(new))
        )
        note(new.get("study_id", ""), "added", new["row_id"])
    for i in sorted(set(range(len(b))) - matched_b):
        old = b[i]
        rows_out.append(
            _record("row", "removed", old["row_id"], "row", old["row_hash"], "", _describe_row(old))
        )
        note(old.get("study_id", ""), "removed", old["row_id"])
    studies_b = {r.get("study_id", "") for r in b}
    studies_a = {r.get("study_id", "") for r in a}
    order = list(
        dict.fromkeys([r.get("study_id", "") for r in a] + [r.get("study_id", "") for r in b])
    )
    study_out = []
    for study in order:
        if study not in per_study:
            continue
        kinds = per_study[study]
        if study not in studies_b:
            n = len(kinds["added"])
            study_out.append(_record("study", "added", study, detail=_rows_text(n)))
        elif study not in studies_a:
            n = len(kinds["removed"])
            study_out.append(_record("study", "removed", study, detail=_rows_text(n)))
        else:
            parts = []
            if "edited" in kinds:
                edited_fields = sorted({f for t in kinds["edited"] for f in t.split(", ") if f})
                parts.append(
                    f"{_rows_text(len(kinds['edited']))} edited ({', '.join(edited_fields)})"
                )
            for kind in ("added", "removed"):
                if kind in kinds:
                    parts.append(f"{_rows_text(len(kinds[kind]))} {kind}")
            study_out.append(_record("study", "edited", study, detail="; ".join(parts)))
    return study_out + rows_out


def _verdict_change(field: str) -> str:
    return "verdict changed" if field.startswith("verdict") else "edited"


def _empty(columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame(columns=list(columns))


def diff_snapshots(
    before: Mapping[str, pd.DataFrame], after: Mapping[str, pd.DataFrame]
) -> pd.DataFrame:
    """The change table (`CHANGE_COLUMNS`): one line per changed field, section by section.

    Sections (`SECTIONS`): claim (every `verdict*` column's change is 'verdict changed', the
    narrative `details*` columns are not compared), pooled and multivariate (per outcome x
    measure x window), time_response (matched on the key-like columns it has), study and row
    (module docstring), effect (matched on comparison, outcome, window, measure; line numbers
    are not compared, the content hashes of the source rows are), exclusion (matched on the
    excluded row's content hash, outcome, window and stage; the reason is compared), row
    accounting, config and software. `difference` is after - before for numbers. Identical
    snapshots give an empty table with the columns.
    """

    def get(snapshot: Mapping[str, pd.DataFrame], name: str, cols: Sequence[str]) -> pd.DataFrame:
        frame = snapshot.get(name)
        return frame if frame is not None else _empty(cols)

    out: list[dict[str, str]] = []
    out += _diff_keyed(
        get(before, "claims", ["id"]), get(after, "claims", ["id"]), ["id"], "claim",
        ignore=[c for c in set(get(before, "claims", ["id"]).columns)
                | set(get(after, "claims", ["id"]).columns) if c.startswith("details")],
        change_name=_verdict_change,
    )  # fmt: skip
    window = ["outcome", "measure", "timepoint"]
    out += _diff_keyed(get(before, "pooled", window), get(after, "pooled", window), window,
                       "pooled")  # fmt: skip
    out += _diff_keyed(get(before, "multivariate", window), get(after, "multivariate", window),
                       window, "multivariate")  # fmt: skip
    tb, ta = before.get("time_response"), after.get("time_response")
    if tb is not None or ta is not None:
        tb = tb if tb is not None else _empty(ta.columns)  # type: ignore[union-attr]
        ta = ta if ta is not None else _empty(tb.columns)
        out += _diff_keyed(tb, ta, _generic_keys(tb, ta), "time_response")
    out += _diff_rows(before["rows"], after["rows"])
    effect_keys = ["comparison_id", "outcome", "timepoint", "measure"]
    out += _diff_keyed(
        before["effects"], after["effects"], effect_keys, "effect", ignore=["row_ids"],
        detail=lambda r: r.get("row_ids", ""),
    )  # fmt: skip
    exclusion_keys = ["row_hash", "outcome", "timepoint", "stage"]
    out += _diff_keyed(
        before["exclusions"], after["exclusions"], exclusion_keys, "exclusion",
        ignore=["source_file", "source_row", "row_id"],
        detail=lambda r: f"{r.get('source_file', '')}:{r.get('source_row', '')} "
        f"{r.get('study_id', '')}; reason: {r.get('reason', '')}",
    )  # fmt: skip
    out += _diff_keyed(before["row_accounting"], after["row_accounting"], ["source_file"],
                       "row_accounting")  # fmt: skip
    out += _diff_keyed(before["config"], after["config"], ["key"], "config", value="value")
    out += _diff_keyed(before["software"], after["software"], ["package"], "software",
                       value="version")  # fmt: skip
    table = pd.DataFrame(out, columns=list(CHANGE_COLUMNS))
    rank = {s: i for i, s in enumerate(SECTIONS)}
    table = table.assign(_s=table["section"].map(rank)).sort_values("_s", kind="mergesort")
    return table.drop(columns="_s").reset_index(drop=True).astype(str)


def verdict_changes(changes: pd.DataFrame) -> pd.DataFrame:
    """The claim verdicts that changed (any model: every `verdict*` column)."""
    mask = (changes["section"] == "claim") & (changes["change"] == "verdict changed")
    return changes[mask].reset_index(drop=True)
