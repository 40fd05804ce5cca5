"""Forest-plot inputs: join the pooled result, the study weights and the effect rows of a window.

This stage refits nothing. The pooled numbers come from the pooled table (`pool_timepoints`,
data/processed/pooled.parquet) and the study weights from the weights table written by the
same rule from the same fits (`pooling.pool_by_timepoint_weighted`); here they are only
joined and formatted for `plots.forest.forest_plot`. A window whose model failed keeps its
study rows and gets the pooled table's reason as a note ("not pooled: ...").

Study labels are citation-style ("Daly 2018, 56 mg"): first author's surname and year from the
`citation` column (year from `study_id` when it names the same author, so labels match the
tables), plus the arm's dose for multi-arm comparisons; `study_id` when no citation parses.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from timecourse_meta.distributions import norm_isf
from timecourse_meta.effects.sd_recovery import recover_sd
from timecourse_meta.schema import ALL_STUDIES, TIME_UNIT_HOURS, TIME_UNIT_SYMBOLS, rows_for

__all__ = ["ArmLookup", "forest_data", "pooled_mapping", "study_label"]

SECONDARY_FLAG = "\u2020"
_YEAR = re.compile(r"(?<!\d)(19|20)\d{2}(?!\d)")
_SURNAME = re.compile(r"^\s*([A-Z][A-Za-z'\u00c0-\u017f\-]+)")
_DOSE = re.compile(r"\d+(?:\.\d+)?\s*(?:mg/kg|mg|\u00b5g|ug|g)\b")


def study_label(
    citation: object, study_id: object, comparison_id: object | None = None
) -> tuple[str, float]:
    """('Daly 2018, 56 mg', 2018.0): citation-style label and publication year (NaN if none).

    Surname: the citation's first word ("Daly EJ et al. ..." -> "Daly"). Year: from `study_id`
    when it starts with that surname and holds a year (the team's label, e.g. "Fava2018" for
    a paper printed 2020 but online 2018), else the citation's first year. A `study_id` tail
    after the year (e.g. "_ASPIRE2") is kept. For a comparison id "<study> / <arm>" the arm's
    dose (or the whole arm text) is appended. Falls back to `study_id`.
    """
    sid = "" if study_id is None else str(study_id)
    cit = citation if isinstance(citation, str) else ""
    name = _SURNAME.match(cit)
    label, year = sid, math.nan
    if name:
        surname = name.group(1)
        own = _YEAR.search(sid) if sid.lower().startswith(surname.lower()) else None
        found = own or _YEAR.search(cit)
        if found:
            year = float(found.group(0))
            label = f"{surname} {found.group(0)}"
            tail = sid[own.end() :].strip("_ -") if own else ""
            if tail:
                label += f" {tail.replace('_', ' ')}"
    comp = "" if comparison_id is None else str(comparison_id)
    if " / " in comp:
        arm = comp.split(" / ", 1)[1].strip()
        dose = _DOSE.search(arm)
        label += f", {dose.group(0) if dose else arm}"
    elif comp and comp != sid and not name:
        label = comp
    return label, year


def pooled_mapping(row: Mapping[str, object] | pd.Series) -> dict[str, object] | None:
    """The pooled-table row as the mapping `forest_plot` draws; None when nothing was pooled.

    k = 0 and k = 1 give None (no diamond). A failed fit (k >= 2, estimate NA) gives a mapping
    without estimate whose note is "not pooled: <warnings of the pooled table>". The test
    statistic is estimate / se (metafor `zval`/`tval` = b / se; Knapp-Hartung se already
    adjusted), on k - 1 df under Knapp-Hartung; Q has k - 1 df (Viechtbauer 2010, eqs. 5, 9).
    """
    k = int(row["k"])  # type: ignore[call-overload]
    if k <= 1:
        return None
    warnings = str(row.get("warnings") or "").strip()
    est = float(row["estimate"])  # type: ignore[arg-type]
    knha = str(row.get("test")) == "knha"
    method = str(row.get("method"))
    if not math.isfinite(est):
        return {"k": k, "label": "Random-effects model", "note": f"not pooled: {warnings}"}
    fields = ("estimate", "ci_low", "ci_high", "pi_low", "pi_high", "tau2", "I2", "Q", "Q_p")
    out: dict[str, object] = {f: float(row[f]) for f in fields}  # type: ignore[arg-type]
    out.update(
        k=k,
        Q_df=k - 1,
        stat=est / float(row["se"]),  # type: ignore[arg-type]
        stat_name="t" if knha else "z",
        df=k - 1 if knha else None,
        pval=float(row["pval"]),  # type: ignore[arg-type]
        method=method,
        label="Random-effects model",
    )
    if warnings:
        out["note"] = warnings
    return out


def _arm_sd(arms: pd.DataFrame) -> np.ndarray:
    """Each arm row's SD as the effect used it: reported, else from SE or CI (`recover_sd`)."""
    num = [pd.to_numeric(arms[c], errors="coerce").to_numpy(float) if c in arms
           else np.full(len(arms), np.nan) for c in ("sd", "se", "ci_low", "ci_high", "n",
                                                     "ci_level")]  # fmt: skip
    level = np.where(np.isnan(num[5]), 0.95, num[5])
    return np.asarray(recover_sd(*num[:5], ci_level=level).sd, dtype=float)


@dataclass(frozen=True)
class ArmLookup:
    """The windowed sheet rows by row id ("file:row"): arm role, mean and SD (first row of each
    id). Built once per sheet (:meth:`of`) and shared by the forest data of every window."""

    table: pd.DataFrame

    @classmethod
    def of(cls, arms: pd.DataFrame) -> ArmLookup:
        key = arms["source_file"].astype(str) + ":" + arms["source_row"].astype(str)
        first = ~key.duplicated().to_numpy()
        return cls(pd.DataFrame({
            "role": arms["arm_role"].astype(str).to_numpy()[first],
            "mean": pd.to_numeric(arms["mean"], errors="coerce").to_numpy(float)[first],
            "sd": _arm_sd(arms.loc[first]),
        }, index=pd.Index(key.to_numpy()[first], name="_key")))  # fmt: skip


def _arm_means(sel: pd.DataFrame, arms: pd.DataFrame | ArmLookup | None) -> pd.DataFrame:
    """mean_t, sd_t, mean_c, sd_c of the arm rows an effect was computed from (NaN if none).

    An effect row's `row_ids` ("file:row;file:row") name the sheet rows it used; means are
    shown only when exactly one treatment and one control arm row with a mean and an SD
    (reported or recovered from SE or CI as the effect sizes were, `recover_sd`) were used.
    Vectorised: the (effect, row id) pairs are looked up at once, not effect by effect.
    `arms`: the windowed sheet rows, or their :class:`ArmLookup`.
    """
    cols = ["mean_t", "sd_t", "mean_c", "sd_c"]
    out = pd.DataFrame(np.nan, index=sel.index, columns=cols)
    if arms is None or "row_ids" not in sel or not len(sel):
        return out
    if not isinstance(arms, ArmLookup):
        if not len(arms):
            return out
        arms = ArmLookup.of(arms)
    lookup = arms.table
    ids = [str(v).split(";") for v in sel["row_ids"].tolist()]  # tolist: no per-cell pandas
    pos = np.repeat(np.arange(len(sel)), [len(i) for i in ids])
    flat = pd.Index([r for i in ids for r in i], dtype=object)
    hit = lookup.index.get_indexer(flat)
    pos, hit = pos[hit >= 0], hit[hit >= 0]
    role = lookup["role"].to_numpy()[hit]
    n_rows = np.bincount(pos, minlength=len(sel))
    n_t = np.bincount(pos, weights=role == "treatment", minlength=len(sel))
    n_c = np.bincount(pos, weights=role == "control", minlength=len(sel))
    ok = (n_rows == 2) & (n_t == 1) & (n_c == 1)
    vals = np.full((len(sel), 4), np.nan)
    for offset, r in ((0, "treatment"), (2, "control")):
        use = ok[pos] & (role == r)
        vals[pos[use], offset] = lookup["mean"].to_numpy()[hit[use]]
        vals[pos[use], offset + 1] = lookup["sd"].to_numpy()[hit[use]]
    complete = ok & ~np.isnan(vals).any(axis=1)
    out.loc[complete] = vals[complete]
    return out


def forest_data(
    effects: pd.DataFrame,
    pooled: pd.DataFrame,
    weights: pd.DataFrame,
    timepoint: str,
    *,
    outcome: str,
    measure: str,
    level: float = 0.95,
    arms: pd.DataFrame | ArmLookup | None = None,
    rob: Mapping[str, str] | None = None,
    time_unit: str = "hours",
) -> tuple[pd.DataFrame, dict[str, object] | None]:
    """Study rows and pooled mapping for `forest_plot` for one window; joins, never fits.

    `time_unit` (config `time_unit`): the unit of the reported time added to study labels
    when the times inside the window differ ('Smith 2020 (26 h)', '(2.5 wk)').

    Study CIs are Wald intervals yi +- z sqrt(vi) at `level` (as metafor's forest). Weights are
    read from `weights` (subgroup 'all'); an effect row without a weight keeps NaN (the plot
    notes it). Optional `arms` (the windowed sheet rows, or their `ArmLookup` built once for
    all windows) add arm Mean (SD) columns; `rob` maps
    study_id to the overall risk-of-bias judgement. When the reported times used differ inside
    the window, each label names its time ("Lii 2023 (72 h)").
    """
    sel = rows_for(effects, outcome, measure, timepoint).sort_values(
        ["comparison_id", "time_hours"], kind="mergesort"
    )
    w = rows_for(weights, outcome, measure, timepoint, ALL_STUDIES)
    # an effect row is identified by its comparison, time and source rows (those present)
    keys = [c for c in ("comparison_id", "time_hours", "row_ids")
            if c in sel and c in w and w[c].notna().any()] or ["comparison_id"]  # fmt: skip
    w = w.drop_duplicates(keys)[[*keys, "weight"]]
    sel = sel.merge(w, on=keys, how="left", validate="many_to_one").set_axis(sel.index)
    crit = float(norm_isf((1 - level) / 2))
    yi, vi = sel["yi"].to_numpy(float), sel["vi"].to_numpy(float)
    cits = sel["citation"] if "citation" in sel else pd.Series([None] * len(sel), sel.index)
    columns = (cits.tolist(), sel["study_id"].tolist(), sel["comparison_id"].tolist())
    labels = [study_label(c, s, comp) for c, s, comp in zip(*columns, strict=True)]
    flags = sel["flags"].fillna("").astype(str) if "flags" in sel else pd.Series("", sel.index)
    studies = pd.DataFrame({
        "label": [lab for lab, _ in labels],
        "year": [y for _, y in labels],
        "study_id": sel["study_id"].astype(str).to_numpy(),
        "time_hours": sel["time_hours"].to_numpy(float),
        "n_treatment": sel["n_treatment"].to_numpy(float),
        "n_control": sel["n_control"].to_numpy(float),
        "yi": yi, "ci_low": yi - crit * np.sqrt(vi), "ci_high": yi + crit * np.sqrt(vi),
        "weight": sel["weight"].to_numpy(float),
        "flag": np.where(sel.get("source_type", pd.Series("", sel.index)).to_numpy()
                         == "secondary", SECONDARY_FLAG, ""),
        "crossover": (sel.get("design", pd.Series("", sel.index)).astype(str)
                      == "crossover").to_numpy(),
        "split_control": flags.str.contains("control_split_").to_numpy(),
    })  # fmt: skip
    hours = studies["time_hours"]
    if hours.nunique() > 1:  # reported times differ inside the window: show the one used
        factor, symbol = TIME_UNIT_HOURS[time_unit], TIME_UNIT_SYMBOLS[time_unit]
        shown = [f"{h:g}" if factor == 1.0 else f"{float(f'{h / factor:.4g}'):g}" for h in hours]
        studies["label"] = [f"{lab} ({t} {symbol})"
                            for lab, t in zip(studies["label"], shown, strict=True)]  # fmt: skip
    dup = studies["label"].duplicated(keep=False).to_numpy()
    if dup.any():  # same citation label twice: fall back to the comparison id for those rows
        studies.loc[dup, "label"] = sel["comparison_id"].astype(str).to_numpy()[dup]
    means = _arm_means(sel, arms)
    for col in means.columns:
        studies[col] = means[col].to_numpy()
    if "stat_kind" in sel:  # change-from-baseline means are marked in the Mean (SD) cells
        studies["mean_change"] = (sel["stat_kind"].astype(str) == "change").to_numpy()
    if rob is not None:
        studies["rob"] = [rob.get(s, "not_assessed") for s in studies["study_id"]]
    match = rows_for(pooled, outcome, measure, timepoint, ALL_STUDIES)
    if len(match) == 0 and studies.empty:  # nothing pooled, nothing to draw (e.g. all excluded)
        return studies.reset_index(drop=True), None
    if len(match) != 1:
        raise ValueError(
            f"pooled table: expected one row for {outcome}/{measure}/{timepoint}/all, "
            f"found {len(match)}"
        )
    return studies.reset_index(drop=True), pooled_mapping(match.iloc[0])
