"""Data-frame level effect sizes: pair arms of validated sheet rows into comparisons.

Input: rows of the extraction sheet (docs/extraction_sheet.md) plus ``source_file``,
``source_row`` (ingest) and ``timepoint`` (the window label; one reported time per
study x outcome x window chosen upstream). Output: one effect per study x comparison x outcome x
timepoint (x measure), oriented so that positive = benefit of treatment, and one exclusion row,
with a plain-English reason, for every input row that was not used.

Rules (in order):

1. Row checks: unknown role/outcome/design, missing n, mean, stat_kind, events; an SD that is
   missing with no SE or CI to recover it (``sd_recovery.recover_sd``, Cochrane Handbook
   §6.5.2.2, t quantile when n < 60); precomputed contrasts that cannot be converted.
2. Duplicates of one arm/outcome/time/stat_kind: a primary-source row supersedes secondary ones;
   remaining duplicates are all excluded (no silent choice).
3. Arm pairing within study x outcome x timepoint (and stat_kind for scores): every treatment arm
   is paired with the control arm. Several control arms = ambiguous, excluded. When both final
   values and change scores pair, final values are used (change-score SMDs are not mixed in).
4. Scores -> SMD (Hedges' g, ``effect_sizes.smd``). Crossover with period "all" -> paired SMD
   (``effect_sizes.smd_crossover``) with the trial's ``r_within`` or ``crossover_r``; crossover
   with period "first" -> parallel. Responses/remissions -> log OR ("OR") and log RR ("RR"),
   one row each, events = benefit (no sign flip); binary crossover data are analysed as if
   parallel (Cochrane Handbook §23.2.6; conservative, flagged). Double-zero comparisons are
   excluded (metafor drop00).
5. Multi-arm trials analysed as parallel: the shared control's n (and events) are divided
   evenly among its comparisons (Cochrane Handbook §23.3.4, ``split_shared_control``).
6. Precomputed contrasts (arm_role = contrast) are used only when no arm-level comparison exists
   for that study x outcome x timepoint; ``effect`` is treatment minus control in the scale's
   direction, converted to Hedges' g and oriented (``lower_is_better``, scores only):

   * g as reported; d -> g with J(n1+n2-2); t_stat -> g (metafor escalc SMD ti).
   * g or d without SE/variance/CI: variance from the effect and the arm sizes (metafor SMD
     vtype "LS", ``effect_sizes.smd_var_ls``).
   * md (raw mean difference) with its variance, SE or CI (in that order of preference) and the
     arm sizes. SE from a CI: (hi - lo) / (2 q), q the t quantile with n1 + n2 - 2 df (paired
     crossover: n - 1 df) when the smaller group has fewer than 60 participants, else the
     normal quantile (Cochrane Handbook §6.5.2.3, the same n < 60 rule as §6.5.2.2 for arm
     CIs). Parallel (and crossover period "first"): g from t = md / se and the arm sizes
     (``effect_sizes.smd_from_md_se``). Crossover period "all": n participants (``n``, else
     the smaller of n_treatment/n_control), SD of differences = se sqrt(n), within-condition
     SD = SD_diff / sqrt(2(1 - r)) with the row's ``r_within`` or ``crossover_r``, paired g
     (``effect_sizes.smd_crossover_from_md_se``): the estimate itself depends on r.
   * md without arm sizes (crossover: without n) or without any uncertainty is excluded.

Flags (semicolon-separated): sd_from_se, sd_from_ci, change_scores,
crossover_r_assumed=<r>, crossover_r_reported=<r>, crossover_n_differs_min_used,
crossover_first_period_as_parallel, crossover_binary_as_parallel,
crossover_shared_control_not_split, control_split_<k>_ways, zero_cell_correction,
precomputed_contrast, d_converted_to_g, g_from_t, variance_from_effect_and_n, g_from_md_se,
md_se_from_ci, crossover_md_to_smd_r=<r>, multiple_contrasts_shared_control,
time_hours_differ_between_arms, lower_is_better_differs_between_arms.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from timecourse_meta.effects.arm_pairs import arm_effects, pair_arms, split_double_zero
from timecourse_meta.effects.binary_effects import logit_proportion
from timecourse_meta.effects.contrast_effects import contrast_effects
from timecourse_meta.effects.row_checks import check_rows, comparison_ids, dedup_rows, prepare_rows
from timecourse_meta.effects.row_frame import (
    BINARY,
    KEY,
    flag_rows,
    join_text,
    key_in,
    text_if,
)
from timecourse_meta.schema import (
    ATTRIBUTE_COLUMNS,
    EFFECT_COLUMNS,
    MAX_MAGNITUDE,
    MIN_SPREAD,
    PROPORTION_COLUMNS,
    R_CHANGE,
    R_DZ,
    R_NO_CTRL,
    R_NO_TREAT,
    R_NO_USABLE_CTRL,
    R_NO_USABLE_TREAT,
    R_NONFINITE,
    R_RANGE,
    SCORE_MEASURES,
    SOURCE_ROWS,
)

__all__ = [
    "compute_effects",
    "compute_proportions",
]


# ------------------------------------------------------------------------------------------
# assembling outputs
# ------------------------------------------------------------------------------------------
def _exclusions(df: pd.DataFrame) -> pd.DataFrame:
    ex = df.loc[df["_reason"].notna()]
    out = pd.DataFrame(
        {
            "source_file": ex["source_file"].to_numpy(),
            "source_row": ex["source_row"].to_numpy(),
            "study_id": ex["study_id"].to_numpy(),
            "arm": ex["arm"].to_numpy(),
            "timepoint": ex["timepoint"].to_numpy(),
            "outcome": ex["outcome"].to_numpy(),
            "reason": ex["_reason"].astype(str).to_numpy(),
        }
    )
    out = out.sort_values(["source_file", "source_row"], kind="stable")
    return out.reset_index(drop=True)


def _explain_unused(df: pd.DataFrame, used: set[int], excluded_pairs: dict[int, str]) -> None:
    """Give a reason to candidate arm rows that ended up in no comparison."""
    live = df["_reason"].isna() & ~df["_row_id"].isin(used)
    role = df["_arm_role"]
    # a reason from a dropped comparison (double zero, non-finite) applies to its rows
    dropped = df["_row_id"].map(excluded_pairs)
    for reason in sorted(set(excluded_pairs.values())):
        flag_rows(df, live & (dropped == reason), reason)
    live = df["_reason"].isna() & ~df["_row_id"].isin(used)
    # change-score rows whose arm has a used final-value comparison
    used_final = df.loc[df["_row_id"].isin(used) & (df["_kind"] == "final"), [*KEY, "arm"]]
    has_final = key_in(df, [*KEY, "arm"], used_final)
    flag_rows(df, live & (df["_kind"] == "change") & has_final, R_CHANGE)
    # other side present at all (any row of that role, even excluded)?
    for mine, other, r_none, r_unusable in (
        ("treatment", "control", R_NO_CTRL, R_NO_USABLE_CTRL),
        ("control", "treatment", R_NO_TREAT, R_NO_USABLE_TREAT),
    ):
        exists = key_in(df, KEY, df.loc[role == other])
        live = (df["_reason"].isna() & ~df["_row_id"].isin(used) & (role == mine)).to_numpy()
        flag_rows(df, live & exists, r_unusable)
        flag_rows(df, live & ~exists, r_none)


def _unusable(effects: pd.DataFrame) -> np.ndarray:
    """Per effect row: "" if usable, else why not (non-finite, or outside the valid range,
    where the pooling arithmetic would overflow)."""
    yi = effects["yi"].to_numpy(float)
    vi = effects["vi"].to_numpy(float)
    finite = np.isfinite(yi) & np.isfinite(vi)
    with np.errstate(invalid="ignore"):
        inside = (np.abs(yi) <= MAX_MAGNITUDE) & (vi >= MIN_SPREAD**2) & (vi <= MAX_MAGNITUDE**2)
    return np.where(~finite, R_NONFINITE, np.where(inside, "", R_RANGE)).astype(object)


def _finish(effects: pd.DataFrame, columns: tuple[str, ...], df: pd.DataFrame) -> pd.DataFrame:
    """Final columns; `_used` (row positions in `df`) becomes the structured `SOURCE_ROWS` list
    and its readable rendering `row_ids`."""
    effects = effects.copy()
    effects["sei"] = np.sqrt(effects["vi"].to_numpy(dtype=float))
    labels = df["_row_label"].to_numpy()
    files = df["source_file"].astype(str).to_numpy()
    lines = pd.to_numeric(df["source_row"]).to_numpy()
    effects["row_ids"] = [";".join(labels[i] for i in u) for u in effects["_used"]]
    effects[SOURCE_ROWS] = [
        [{"source_file": str(files[i]), "source_row": int(lines[i])} for i in u]
        for u in effects["_used"]
    ]
    effects = effects.sort_values(
        ["study_id", "comparison_id", "outcome", "time_hours", "timepoint", "measure"],
        kind="stable",
    )
    return effects.reindex(columns=[*columns, SOURCE_ROWS]).reset_index(drop=True)


def _empty_effects() -> pd.DataFrame:
    floats = ("time_hours", "yi", "vi", "sei", "n_treatment", "n_control", "n_total")
    cols = {c: pd.Series(dtype=float if c in floats else object) for c in EFFECT_COLUMNS}
    return pd.DataFrame({**cols, "_used": pd.Series(dtype=object)})


def _check_invariant(df: pd.DataFrame, used: set[int]) -> None:
    excluded = set(df.loc[df["_reason"].notna(), "_row_id"])
    everything = set(df["_row_id"])
    if excluded & used or (excluded | used) != everything:
        raise RuntimeError("internal error: row accounting invariant violated")


def compute_effects(
    rows: pd.DataFrame,
    crossover_r: float = 0.5,
    lower_is_better_default: bool = True,
    score_measure: str = "SMD",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Effect sizes for every study x comparison x outcome x timepoint, plus exclusions.

    ``rows``: validated extraction-sheet rows (docs/extraction_sheet.md) with ``source_file``,
    ``source_row`` and ``timepoint``. ``crossover_r``: within-person correlation assumed for
    crossover trials without ``r_within`` (Cochrane Handbook §23.2.7.2; recorded in flags).
    ``lower_is_better_default``: used where ``lower_is_better`` is empty.

    Returns ``(effects, exclusions)`` with columns ``EFFECT_COLUMNS`` and ``EXCLUSION_COLUMNS``.
    Scores give measure "SMD" (Hedges' g); response/remission give "OR" and "RR" (log scale),
    one row each. yi > 0 means benefit of treatment. ``score_measure`` "MD" gives raw mean
    differences for scores instead (metafor escalc "MD"; crossover period "all": "MC" with the
    same r as the paired SMD; a contrast row only when it reports an md), oriented as the SMD
    by ``lower_is_better``.

    Row accounting (checked on return): every input row's ``source_file:source_row`` is either
    in exactly one exclusions row or in the ``row_ids`` of at least one effect row, never both.
    A row id appears in several effect rows only for the OR/RR pair of one binary comparison and
    for a shared control arm (flag ``control_split_<k>_ways`` or
    ``crossover_shared_control_not_split``).
    """
    if not -1 <= crossover_r <= 1:
        raise ValueError("crossover_r must lie in [-1, 1]")
    if score_measure not in SCORE_MEASURES:
        raise ValueError(f"score_measure must be one of {', '.join(SCORE_MEASURES)}")
    df = prepare_rows(rows, lower_is_better_default)
    df["_cid"] = comparison_ids(df)
    check_rows(df, score_measure)
    dedup_rows(df, df["_arm_role"].isin(["treatment", "control", "contrast"]).to_numpy())

    pairs, dz_pairs = split_double_zero(pair_arms(df))
    # rows of dropped comparisons get that comparison's reason unless used elsewhere
    dropped: dict[int, str] = {
        rid: R_DZ for col in ("_row_id_t", "_row_id_c") for rid in dz_pairs[col]
    }
    frames = []
    used: set[int] = set()
    arm_eff = arm_effects(pairs, crossover_r, score_measure)
    if not arm_eff.empty:
        why = _unusable(arm_eff)
        # a comparison is kept only if all its measures (OR and RR) are finite and in range
        bad = set(arm_eff.loc[why != "", "_used"])
        for reason in (R_NONFINITE, R_RANGE):
            hit = {r for u in arm_eff.loc[why == reason, "_used"] for r in u}
            for rid in sorted(hit):
                dropped.setdefault(rid, reason)
        arm_eff = arm_eff.loc[~arm_eff["_used"].isin(bad).to_numpy()]
        frames.append(arm_eff)
        used |= {r for u in arm_eff["_used"] for r in u}
    covered = arm_eff[KEY] if not arm_eff.empty else pd.DataFrame(columns=KEY)
    con_eff = contrast_effects(df, covered, crossover_r, score_measure)
    if not con_eff.empty:
        why = _unusable(con_eff)
        for u, reason in zip(con_eff.loc[why != "", "_used"], why[why != ""], strict=True):
            dropped.setdefault(u[0], reason)
        con_eff = con_eff.loc[why == ""]
        frames.append(con_eff)
        used |= {r for u in con_eff["_used"] for r in u}
    _explain_unused(df, used, dropped)
    _check_invariant(df, used)
    frames = [f for f in frames if not f.empty]
    effects = pd.concat(frames, ignore_index=True) if frames else _empty_effects()
    return _finish(effects, EFFECT_COLUMNS, df), _exclusions(df)


def compute_proportions(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Treated-arm responder (or remitter) proportion on the logit scale, per arm x timepoint.

    metafor ``escalc(measure="PLO")`` with add = 1/2 for proportions of 0 or 1 (flag
    ``zero_cell_correction``); back-transform with ``binary_effects.expit``. Candidate rows are
    treatment-arm rows with outcome response or remission; other rows are out of scope and not
    reported. Returns ``(proportions, exclusions)``: every candidate row's id is in exactly one
    proportions row or exactly one exclusions row.
    """
    df = prepare_rows(rows, lower_is_better_default=True)
    df["_cid"] = comparison_ids(df)
    cand = ((df["_arm_role"] == "treatment") & df["_outcome"].isin(BINARY)).to_numpy()
    df = df.loc[cand].reset_index(drop=True)
    check_rows(df)
    dedup_rows(df, np.ones(len(df), dtype=bool))
    p = df.loc[df["_reason"].isna()]
    if p.empty:
        out = pd.DataFrame(columns=list(PROPORTION_COLUMNS))
    else:
        res = logit_proportion(p["_events"].to_numpy(), p["_n"].to_numpy())
        out = pd.DataFrame(
            {
                "study_id": p["study_id"].to_numpy(),
                "comparison_id": p["_cid"].to_numpy(),
                "arm": p["arm"].to_numpy(),
                "outcome": p["outcome"].to_numpy(),
                "timepoint": p["timepoint"].to_numpy(),
                "time_hours": p["_time_hours"].to_numpy(),
                "measure": "PLO",
                "events": p["_events"].to_numpy(),
                "n": p["_n"].to_numpy(),
                "proportion": p["_events"].to_numpy() / p["_n"].to_numpy(),
                "yi": res.yi,
                "vi": res.vi,
                "sei": res.sei,
                "design": p["_design"].to_numpy(),
                "source_type": p["_source_type"].to_numpy(),
                "derivation": join_text(
                    [
                        np.full(len(p), "logit of events/n (metafor escalc PLO)", dtype=object),
                        text_if(res.zero_cell_corrected, "; 0.5 added to events and non-events"),
                    ],
                    sep="",
                ),
                "flags": join_text([text_if(res.zero_cell_corrected, "zero_cell_correction")]),
                "row_ids": p["_row_label"].to_numpy(),
            }
        )
        for a in ATTRIBUTE_COLUMNS:
            out[a] = p[a].to_numpy()
        out = out.sort_values(
            ["study_id", "comparison_id", "outcome", "time_hours", "timepoint"], kind="stable"
        )
        out = out.reindex(columns=list(PROPORTION_COLUMNS)).reset_index(drop=True)
    return out, _exclusions(df)
