"""Field-by-field comparison of the two independent extraction passes (double extraction).

Pass 1: data/raw/ketamine_trials.csv and data/raw/ketamine_trials_ext.csv (``sheet_row`` is the
1-based line number in the file, header = line 1, so data row i sits on line i + 2).
Pass 2: data/raw/double_extraction/pass2.csv (one row per sheet/sheet_row, ``found`` yes/no).

Agreement rules (Cochrane Handbook ch. 5.5 style double data extraction):
- both cells empty -> agree;
- numeric fields are compared after float parsing ("12.0" == "12"), with an absolute
  tolerance of 1e-3 so that 40 min written as 0.6667 h equals 40/60 written in full precision;
- text fields (effect_type, design, control) are compared case-insensitively after stripping.
Rows where pass 2 did not find the source (found = no) are reported separately and are not
counted in the agreement rate.

Run from anywhere:  /opt/venv/bin/python data/raw/double_extraction/compare.py
Writes disagreements.csv next to this script (same input -> same bytes).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
RAW = HERE.parent
SHEETS = ("ketamine_trials.csv", "ketamine_trials_ext.csv")
NUMERIC = [
    "n",
    "mean",
    "sd",
    "se",
    "ci_low",
    "ci_high",
    "events",
    "effect",
    "effect_se",
    "effect_ci_low",
    "effect_ci_high",
    "n_treatment",
    "n_control",
    "time_hours",
]
TEXT = ["effect_type", "design", "control"]
FIELDS = NUMERIC + TEXT
ABS_TOL = 1e-3


def load_pass1(raw_dir: Path = RAW) -> pd.DataFrame:
    """Stack the pass-1 sheets with their file line number as ``sheet_row``."""
    frames = []
    for name in SHEETS:
        d = pd.read_csv(raw_dir / name, dtype=str, keep_default_na=False)
        d.insert(0, "sheet_row", d.index + 2)  # header is line 1
        d.insert(0, "sheet", name)
        frames.append(d)
    return pd.concat(frames, ignore_index=True)


def load_pass2(path: Path = HERE / "pass2.csv") -> pd.DataFrame:
    """Read pass 2 with every cell as text (empty = not reported)."""
    d = pd.read_csv(path, dtype=str, keep_default_na=False)
    d["sheet_row"] = d["sheet_row"].astype(int)
    return d


def _num_equal(a: str, b: str) -> bool:
    """Both empty, or both parse to floats within ABS_TOL; unparsable text falls back to ==."""
    a, b = a.strip(), b.strip()
    if a == "" or b == "":
        return a == b
    try:
        return math.isclose(float(a), float(b), rel_tol=0.0, abs_tol=ABS_TOL)
    except ValueError:
        return a == b


def _text_equal(a: str, b: str) -> bool:
    return a.strip().lower() == b.strip().lower()


def compare(p1: pd.DataFrame, p2: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (long table of every compared field, rows pass 2 could not find).

    The long table has one row per (sheet, sheet_row, field) with both values and ``agree``.
    """
    m = p2.merge(p1, on=["sheet", "sheet_row"], how="left", suffixes=("_p2", "_p1"))
    missing = m[m["study_id_p1"].isna()]
    if len(missing):
        raise ValueError(f"pass-2 rows without a pass-1 row: {missing[['sheet', 'sheet_row']]}")
    bad_id = m[m["study_id_p1"] != m["study_id_p2"]]
    if len(bad_id):
        raise ValueError(f"study_id mismatch: {bad_id[['sheet', 'sheet_row']]}")
    not_found = m.loc[m["found"] != "yes", ["sheet", "sheet_row", "study_id_p2"]]
    found = m[m["found"] == "yes"]
    recs = []
    for f in FIELDS:
        eq = _num_equal if f in NUMERIC else _text_equal
        a, b = found[f + "_p1"].astype(str), found[f + "_p2"].astype(str)
        recs.append(
            pd.DataFrame(
                {
                    "sheet": found["sheet"],
                    "sheet_row": found["sheet_row"],
                    "study_id": found["study_id_p2"],
                    "field": f,
                    "pass1": a,
                    "pass2": b,
                    "agree": [eq(x, y) for x, y in zip(a, b, strict=True)],
                }
            )
        )
    long = pd.concat(recs, ignore_index=True)
    order = {s: i for i, s in enumerate(SHEETS)}
    long = long.assign(_o=long["sheet"].map(order), _f=long["field"].map(FIELDS.index))
    long = long.sort_values(["_o", "sheet_row", "_f"]).drop(columns=["_o", "_f"])
    return long.reset_index(drop=True), not_found.reset_index(drop=True)


def summarise(long: pd.DataFrame) -> dict[str, float]:
    """Agreement counts: all fields, fields where at least one pass has a value, whole rows."""
    informative = long[(long["pass1"].str.strip() != "") | (long["pass2"].str.strip() != "")]
    rows = long.groupby(["sheet", "sheet_row"])["agree"].all()
    return {
        "fields_compared": len(long),
        "fields_agree": int(long["agree"].sum()),
        "informative_fields": len(informative),
        "informative_agree": int(informative["agree"].sum()),
        "rows_compared": len(rows),
        "rows_fully_agree": int(rows.sum()),
    }


def main() -> None:
    long, not_found = compare(load_pass1(), load_pass2())
    s = summarise(long)
    print(
        f"fields compared: {s['fields_compared']}, agreeing: {s['fields_agree']} "
        f"({100 * s['fields_agree'] / s['fields_compared']:.1f}%)"
    )
    print(
        f"fields with a value in either pass: {s['informative_fields']}, agreeing: "
        f"{s['informative_agree']} ({100 * s['informative_agree'] / s['informative_fields']:.1f}%)"
    )
    print(
        f"rows fully agreeing: {s['rows_fully_agree']} / {s['rows_compared']} "
        f"({100 * s['rows_fully_agree'] / s['rows_compared']:.1f}%)"
    )
    print(
        f"rows not compared (pass 2 found no source): {len(not_found)} "
        f"{not_found.to_dict('records')}"
    )
    dis = long[~long["agree"]].drop(columns="agree")
    print("\ndisagreements by field:")
    print(dis["field"].value_counts().reindex(FIELDS).dropna().astype(int).to_string())
    no_control = long[long["field"] != "control"]
    print(
        f"\nexcluding the 'control' category field: "
        f"{int(no_control['agree'].sum())}/{len(no_control)} fields agree; rows fully agreeing "
        f"{int(no_control.groupby(['sheet', 'sheet_row'])['agree'].all().sum())}"
        f"/{s['rows_compared']}"
    )
    dis.to_csv(HERE / "disagreements.csv", index=False, lineterminator="\n")
    print(f"\n{len(dis)} disagreeing fields written to {HERE / 'disagreements.csv'}")


if __name__ == "__main__":
    main()
