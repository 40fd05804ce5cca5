"""Metapsy comparison-level data -> minimal precomputed (yi/sei) sheet.

The Metapsy data standard (docs.metapsy.org, "Data Format"; variable descriptions as shipped in
the databases' ``metadata/variable_description.json``, e.g. GitHub
metapsy-project/data-ptsd-psyctr) stores one row per trial arm comparison and outcome and
measurement point ("wide format"). The columns read here, with their documented meaning:

* ``study``: author and year of publication; ``condition_arm1`` / ``condition_arm2``: type of
  treatment / comparator; ``multi_arm1`` / ``multi_arm2``: which arm of a multi-arm trial (NA
  when the trial is not multi-arm);
* ``time``: measurement point (e.g. post or follow-up); ``time_weeks``: the same in weeks after
  randomisation (NA if not available);
* ``.g`` / ``.g_se``: metapsyTools-generated Hedges' g and its standard error;
* ``n_arm1`` / ``n_arm2``: participants in arm 1 / arm 2; ``outcome_type``, ``instrument``,
  ``rating`` (self-report or clinician), ``.id`` (metapsyTools row id), ``full_ref``.

The standard's variable descriptions do not say in which direction ``.g`` is oriented, so the
caller states it (``benefit``: "positive" if a positive ``.g`` favours arm 1, "negative" if a
negative one does); the sheet's ``yi`` is then positive = benefit of arm 1 (the treatment) over
arm 2 (the control), as the minimal sheet requires. Times: ``time_hours = time_weeks x
TIME_UNIT_HOURS["weeks"]``; without ``time_weeks`` the row keeps the ``time`` label as its
``timepoint`` (a window label: it is then excluded with its reason at the windows stage unless a
window of that label is configured). Rows without ``.g`` or ``.g_se`` (e.g. binary outcomes
with only ``.log_rr``) are returned as not imported with the reason.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from timecourse_meta.errors import SheetError
from timecourse_meta.schema import TIME_UNIT_HOURS

__all__ = ["METAPSY_REQUIRED", "NOT_IMPORTED_COLUMNS", "metapsy_to_precomputed"]

METAPSY_REQUIRED: tuple[str, ...] = ("study", "condition_arm1", "condition_arm2", ".g", ".g_se")
NOT_IMPORTED_COLUMNS: tuple[str, ...] = ("row", "study", "reason")
R_NO_G = "no Hedges' g (.g) or its standard error (.g_se) on this row"


def _text(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame:
        return pd.Series("", index=frame.index, dtype=object)
    values = frame[column].astype(object).where(frame[column].notna(), "")
    return values.map(lambda v: str(v).strip()).replace({"NA": "", "nan": ""})


def _number(frame: pd.DataFrame, column: str, name: str) -> np.ndarray:
    if column not in frame:
        return np.full(len(frame), np.nan)
    text = _text(frame, column)
    out = pd.to_numeric(text.where(text != ""), errors="coerce").to_numpy(dtype=float)
    bad = np.isnan(out) & (text != "").to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise SheetError(name, "expected a number", line=i + 2, column=column, found=text.iloc[i])
    return out


def metapsy_to_precomputed(
    data: pd.DataFrame, *, benefit: str, source: str = "", name: str = "metapsy data"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A Metapsy comparison-level frame as a minimal precomputed sheet, plus rows not imported.

    ``benefit``: "positive" or "negative", the sign of ``.g`` that favours arm 1 (see the module
    docstring). ``source``: where the data came from (database name, version, DOI), written to
    ``source_address`` of every row; ``citation`` is ``full_ref`` if given, else ``study``, and
    ``source_type`` is "secondary" (a database's per-comparison row). ``name`` names the input
    in messages (line numbers count the header as line 1).

    Returns ``(sheet, not_imported)``: ``sheet`` has study_id, arm (the comparison), scale
    (instrument), outcome score, measure SMD, time_hours / timepoint, time_as_reported, yi, sei,
    n_treatment, n_control, n_total and the source columns; ``not_imported`` has
    ``NOT_IMPORTED_COLUMNS`` (row = line in the input CSV).
    """
    if benefit not in ("positive", "negative"):
        raise ValueError("benefit must be 'positive' or 'negative'")
    frame = data.rename(columns={c: str(c).strip().lower() for c in data.columns})
    missing = [c for c in METAPSY_REQUIRED if c not in frame]
    if missing:
        raise SheetError(
            name,
            f"not a Metapsy comparison-level sheet: column(s) missing: {', '.join(missing)}",
            line=1,
        )
    frame = frame.reset_index(drop=True)
    lines = np.arange(len(frame)) + 2
    g = _number(frame, ".g", name)
    se = _number(frame, ".g_se", name)
    weeks = _number(frame, "time_weeks", name)
    n1, n2 = _number(frame, "n_arm1", name), _number(frame, "n_arm2", name)
    study = _text(frame, "study")
    arm1 = _text(frame, "condition_arm1")
    arm2 = _text(frame, "condition_arm2")
    for multi, base in (("multi_arm1", arm1), ("multi_arm2", arm2)):
        spec = _text(frame, multi)
        base.update(base.where(spec == "", base + " (" + spec + ")"))
    time_label = _text(frame, "time")
    usable = np.isfinite(g) & np.isfinite(se) & (se > 0)
    sign = 1.0 if benefit == "positive" else -1.0
    has_weeks = np.isfinite(weeks)
    weeks_text = pd.Series([f"{w:g} weeks" if np.isfinite(w) else "" for w in weeks])
    reported = [
        f"{lab} ({wk})" if lab and wk else (lab or wk)
        for lab, wk in zip(time_label, weeks_text, strict=True)
    ]
    full_ref = _text(frame, "full_ref")
    row_id = _text(frame, ".id")
    sheet = pd.DataFrame(
        {
            "study_id": study,
            "arm": arm1 + " vs " + arm2,
            "scale": _text(frame, "instrument"),
            "outcome": "score",
            "measure": "SMD",
            "time_hours": np.where(has_weeks, weeks * TIME_UNIT_HOURS["weeks"], np.nan),
            "timepoint": np.where(has_weeks, "", time_label),
            "time_as_reported": reported,
            "yi": sign * g,
            "sei": se,
            "n_treatment": n1,
            "n_control": n2,
            "n_total": n1 + n2,
            "citation": full_ref.where(full_ref != "", study),
            "source_address": source,
            "source_locator": np.where(row_id != "", "Metapsy .id " + row_id, ""),
            "source_type": "secondary",
            "extraction_note": (
                "imported from Metapsy: yi = "
                + ("" if sign > 0 else "-")
                + ".g (Hedges' g), sei = .g_se; outcome_type "
                + _text(frame, "outcome_type")
                + ", rating "
                + _text(frame, "rating")
            ),
        }
    )
    sheet = sheet.loc[usable].reset_index(drop=True)
    not_imported = pd.DataFrame(
        {"row": lines[~usable], "study": study[~usable].to_numpy(), "reason": R_NO_G},
        columns=list(NOT_IMPORTED_COLUMNS),
    )
    return sheet, not_imported
