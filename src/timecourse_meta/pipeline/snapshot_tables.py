"""The living review's snapshot of a run: its results as a small set of text tables.

A *snapshot* holds the input rows with a content hash, the pooled estimates per outcome x
window, the multivariate window means, the claims, the effects with their source rows, the
exclusions, the row accounting, the analysis configuration and the software versions (and the
time-response summary when the workflow writes one), every cell a string exactly as the
workflow's CSV writer prints it. `make_snapshot` builds one from a run's tables; `snakemake
baseline` writes it to `results/baseline/` (`snapshot.write_snapshot`), and the `changes` rule
builds the same snapshot of the current run and compares the two (`changes.diff_snapshots`).

Split from `changes` (the comparison) because building a snapshot is its own job: what is kept
of each table, and the row content hash that lets the comparison recognise a row that only
moved. Pure functions only: data frames in, data frames out (no files, no git).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping

import pandas as pd

from timecourse_meta.pipeline.tables import format_value, to_csv_text
from timecourse_meta.schema import ALL_STUDIES

__all__ = [
    "LIVING_KEYS",
    "as_text",
    "config_table",
    "make_snapshot",
    "row_snapshot",
    "software_table",
]

#: configuration keys of the living review itself: not part of the analysis being compared
LIVING_KEYS: tuple[str, ...] = ("baseline", "fail_on")
#: columns of effects.csv kept in the snapshot (what an effect is and where it comes from)
EFFECT_COLUMNS: tuple[str, ...] = (
    "study_id",
    "comparison_id",
    "outcome",
    "timepoint",
    "measure",
    "time_hours",
    "yi",
    "vi",
    "n_treatment",
    "n_control",
    "n_total",
    "derivation",
    "flags",
    "row_ids",
)
_POSITION = ("source_file", "source_row")
# derived by ingest, not a cell of the sheet: left out of the content hash
_DERIVED = ("sheet_layout",)
_HASH_DIGITS = 16  # hex digits of the row content hash (64 bits)


def as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` as the workflow's CSV writer prints it, read back as strings (exact round trip).

    A snapshot read from a baseline file and one built in memory are then comparable cell by
    cell: both are what `tables.to_csv_text` writes.
    """
    text = to_csv_text(frame.reset_index(drop=True))
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False)


def _cell(value: object) -> str:
    """A sheet cell as text: missing -> '', floats with 15 significant digits (exact for typed
    decimals), integral floats without a decimal point."""
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, float) and value != value:
        return ""
    text = format_value(value, digits=15)
    return "" if text == "NA" and not isinstance(value, str) else text


def row_snapshot(rows: pd.DataFrame) -> pd.DataFrame:
    """Every input row with its `file:line` id and a content hash, all cells as text.

    The hash is SHA-256 over `column=value` lines of the non-empty cells, columns sorted, the
    position (file, line) and the layout ingest derived (`sheet_layout`) left out: a row that
    only moves has the same hash, a column that is empty everywhere (e.g. one added to the
    sheet format later) does not change it.
    """
    columns = [c for c in rows.columns if c not in _POSITION + _DERIVED]
    body = pd.DataFrame({c: rows[c].map(_cell) for c in columns}, index=rows.index)
    hashes = []
    for record in body.to_dict("records"):
        text = "\n".join(f"{c}={record[c]}" for c in sorted(columns) if record[c] != "")
        hashes.append(hashlib.sha256(text.encode("utf-8")).hexdigest()[:_HASH_DIGITS])
    line = rows["source_row"].astype("int64")
    out = pd.DataFrame(
        {
            "row_id": rows["source_file"].astype(str) + ":" + line.astype(str),
            "source_file": rows["source_file"].astype(str),
            "source_row": line,
            "row_hash": hashes,
        },
        index=rows.index,
    )
    out = pd.concat([out, body], axis=1)
    out = out.sort_values(["source_file", "source_row"], kind="mergesort")
    return as_text(out)


def config_table(config: Mapping[str, object]) -> pd.DataFrame:
    """The analysis configuration as `key`, `value` lines (nested keys dotted; text as is,
    other values as JSON).

    The living-review keys themselves (`LIVING_KEYS`) are left out: where the baseline comes
    from is not a property of the analysis.
    """
    lines: list[tuple[str, str]] = []

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, Mapping) and value:
            for key in sorted(value, key=str):
                walk(f"{prefix}.{key}" if prefix else str(key), value[key])
        else:
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            lines.append((prefix, text))

    for key in sorted(config, key=str):
        if key not in LIVING_KEYS:
            walk(str(key), config[key])
    return as_text(pd.DataFrame(lines, columns=["key", "value"]))


def software_table(text: str) -> pd.DataFrame:
    """`software_versions.txt` ('name version' lines) as `package`, `version` columns."""
    lines = [line.split(maxsplit=1) for line in text.splitlines() if line.strip()]
    return as_text(
        pd.DataFrame(
            [(p[0], p[1] if len(p) > 1 else "") for p in lines], columns=["package", "version"]
        )
    )


def make_snapshot(
    *,
    rows: pd.DataFrame,
    pooled: pd.DataFrame,
    claims: pd.DataFrame,
    effects: pd.DataFrame,
    exclusions: pd.DataFrame,
    row_accounting: pd.DataFrame,
    config: Mapping[str, object],
    software: str,
    multivariate: pd.DataFrame | None = None,
    time_response: pd.DataFrame | None = None,
) -> dict[str, pd.DataFrame]:
    """The snapshot of one run (see module docstring); tables are the run's CSV outputs.

    `pooled` keeps the overall rows (subgroup 'all': one per outcome x measure x window);
    effects keep what identifies them, yi, vi, n and their source rows, plus the content hashes
    of those rows (`row_hashes`), so an effect is compared by what it was computed from, not by
    line numbers; exclusions get the content hash of the excluded row.
    """
    rows_text = row_snapshot(rows)
    hash_of = dict(zip(rows_text["row_id"], rows_text["row_hash"], strict=True))

    def hashes(ids: str) -> str:
        return ";".join(hash_of.get(i.strip(), "?") for i in str(ids).split(";") if i.strip())

    pooled = as_text(pooled)
    if "subgroup" in pooled:
        pooled = pooled[pooled["subgroup"] == ALL_STUDIES]
        pooled = pooled.drop(columns=[c for c in ("subgroup", "moderator", "level") if c in pooled])
    effects = as_text(effects)
    effects = effects[[c for c in EFFECT_COLUMNS if c in effects]].copy()
    effects["row_hashes"] = effects["row_ids"].map(hashes) if "row_ids" in effects else ""
    exclusions = as_text(exclusions).copy()
    ids = exclusions["source_file"] + ":" + exclusions["source_row"]
    exclusions.insert(2, "row_hash", ids.map(lambda i: hash_of.get(i, "?")))
    snapshot = {
        "claims": as_text(claims),
        "pooled": as_text(pooled),
        "rows": rows_text,
        "effects": as_text(effects),
        "exclusions": as_text(exclusions),
        "row_accounting": as_text(row_accounting),
        "config": config_table(config),
        "software": software_table(software),
    }
    if multivariate is not None:
        snapshot["multivariate"] = as_text(multivariate)
    if time_response is not None:
        snapshot["time_response"] = as_text(time_response)
    return snapshot
