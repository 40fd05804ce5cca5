"""Apply the accepted double-extraction corrections to the pass-1 sheets (idempotent).

decisions.csv lists every proposed correction (from corrections.csv) with the lead's decision.
Accepted ones are written into ../ketamine_trials.csv and ../ketamine_trials_ext.csv, and the
row's extraction_note records the change. Run from anywhere:
    python data/raw/double_extraction/apply_corrections.py
"""

from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
RAW = HERE.parent


def main() -> None:
    dec = pd.read_csv(HERE / "decisions.csv", dtype=str, keep_default_na=False)
    for sheet, group in dec.groupby("sheet"):
        path = RAW / sheet
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        for r in group.itertuples():
            i = int(r.sheet_row) - 2  # line 1 is the header
            note = df.at[i, "extraction_note"]
            if r.decision == "accept":
                current = df.at[i, r.column]
                if current == r.new_value:
                    continue
                if current != r.old_value:
                    raise SystemExit(
                        f"{sheet} line {r.sheet_row} {r.column}: expected "
                        f"{r.old_value!r}, found {current!r}"
                    )
                df.at[i, r.column] = r.new_value
                tag = (
                    f"[double extraction: {r.column} {r.old_value or '(empty)'} -> "
                    f"{r.new_value or '(empty)'}; {r.decision_reason}]"
                )
            else:
                tag = f"[double extraction: {r.column} kept; {r.decision_reason}]"
            if tag not in note:
                df.at[i, "extraction_note"] = f"{note} {tag}".strip()
        df.to_csv(path, index=False, lineterminator="\n")
        print(f"{sheet}: {int((group.decision == 'accept').sum())} accepted corrections applied")


if __name__ == "__main__":
    main()
