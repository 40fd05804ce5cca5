"""Arm-level comparisons: pair treatment with control arms and compute SMD / OR / RR.

Rules 3-5 of `comparisons` (arm pairing within study x outcome x timepoint x stat_kind, Hedges'
g for scores with the paired crossover form, log OR and log RR for binary outcomes, double-zero
comparisons set aside as metafor drop00, shared control arms split evenly, Cochrane Handbook
§23.3.4). Vectorised over pairs; called by `comparisons.compute_effects`.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from timecourse_meta.effects.binary_effects import log_odds_ratio, log_risk_ratio
from timecourse_meta.effects.effect_sizes import (
    EffectSizeWarning,
    mean_difference,
    mean_difference_paired,
    orient,
    smd,
    smd_crossover,
    split_shared_control,
)
from timecourse_meta.effects.row_frame import (
    BINARY,
    KEY,
    flag_rows,
    fmt_num,
    join_text,
    key_in,
    text_if,
)
from timecourse_meta.effects.sd_recovery import LABEL_REPORTED
from timecourse_meta.schema import ATTRIBUTE_COLUMNS, R_MULTI_CTRL

__all__ = ["arm_effects", "pair_arms", "split_double_zero"]

# ------------------------------------------------------------------------------------------
# arm-level comparisons
# ------------------------------------------------------------------------------------------
_ARM_COLS = [
    *KEY,
    "_kind",
    "arm",
    "_row_id",
    "_n",
    "_mean",
    "_sd_used",
    "_sd_method",
    "_events",
    "_time_hours",
    "_design",
    "_period",
    "_source_type",
    "_lib",
    "_r_within",
]


def pair_arms(df: pd.DataFrame) -> pd.DataFrame:
    """Treatment x control pairs within study x outcome x timepoint x stat_kind."""
    live = df["_reason"].isna()
    ctrl_mask = live & (df["_arm_role"] == "control")
    n_ctrl = df.loc[ctrl_mask].groupby([*KEY, "_kind"], dropna=False)["arm"].transform("nunique")
    multi_groups = df.loc[n_ctrl[n_ctrl > 1].index, [*KEY, "_kind"]].drop_duplicates()
    if len(multi_groups):
        hit = key_in(df, [*KEY, "_kind"], multi_groups)
        in_multi = hit & df["_arm_role"].isin(["treatment", "control"]).to_numpy()
        flag_rows(df, in_multi, R_MULTI_CTRL)
    live = df["_reason"].isna()
    treat = df.loc[
        live & (df["_arm_role"] == "treatment"), _ARM_COLS + ["_cid", *ATTRIBUTE_COLUMNS]
    ]
    ctrl = df.loc[live & (df["_arm_role"] == "control"), _ARM_COLS]
    pairs = treat.merge(ctrl, on=[*KEY, "_kind"], suffixes=("_t", "_c"))
    # prefer final values over change scores for the same treatment arm
    pairs["_is_final"] = pairs["_kind"] == "final"
    has_final = pairs.groupby([*KEY, "arm_t"], dropna=False)["_is_final"].transform("any")
    return pairs.loc[~(has_final & (pairs["_kind"] == "change"))].reset_index(drop=True)


def split_double_zero(pairs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Separate binary pairs with no events (or only events) in both arms (metafor drop00)."""
    binary = pairs["outcome"].isin(BINARY).to_numpy()
    a, n1 = pairs["_events_t"].to_numpy(), pairs["_n_t"].to_numpy()
    c, n2 = pairs["_events_c"].to_numpy(), pairs["_n_c"].to_numpy()
    dz = binary & (((a == 0) & (c == 0)) | ((a == n1) & (c == n2)))
    return pairs.loc[~dz].reset_index(drop=True), pairs.loc[dz]


def arm_effects(
    pairs: pd.DataFrame, crossover_r: float, score_measure: str = "SMD"
) -> pd.DataFrame:
    """Compute SMD (or MD) / OR / RR rows from arm pairs (vectorised over pairs).

    `score_measure` "MD": raw mean differences for scores (``effect_sizes.mean_difference``;
    crossover period "all": ``mean_difference_paired`` with the same r as the paired SMD).
    """
    if pairs.empty:
        return pd.DataFrame()
    score = (pairs["outcome"] == "score").to_numpy()
    crossover = (pairs["_design_t"] == "crossover").to_numpy()
    paired = score & crossover & (pairs["_period_t"] == "all").to_numpy()
    parallel = ~paired  # includes crossover first period and binary crossover
    # shared control split among the comparisons analysed as parallel (Handbook §23.3.4)
    k_all = pairs.groupby("_row_id_c")["_row_id_c"].transform("size").to_numpy()
    k = np.where(parallel, k_all, 1)
    n_t, n_c_raw = pairs["_n_t"].to_numpy(), pairs["_n_c"].to_numpy()
    n_c = split_shared_control(n_c_raw, k)
    ev_c = split_shared_control(pairs["_events_c"].to_numpy(), k)

    r_rep = pairs["_r_within_t"].fillna(pairs["_r_within_c"]).to_numpy()
    r = np.where(np.isnan(r_rep), crossover_r, r_rep)
    n_pair = np.minimum(n_t, n_c_raw)

    base = pd.DataFrame(
        {
            "study_id": pairs["study_id"],
            "comparison_id": pairs["_cid"],
            "outcome": pairs["outcome"],
            "timepoint": pairs["timepoint"],
            "time_hours": pairs["_time_hours_t"],
            "n_treatment": n_t,
            "n_control": np.where(paired, n_c_raw, n_c),
            "n_total": np.where(
                crossover & ~(pairs["_period_t"] == "first").to_numpy(),
                np.maximum(n_t, n_c_raw),
                n_t + n_c,
            ),
            "design": pairs["_design_t"],
            "source_type": np.where(
                pairs["_source_type_t"] == pairs["_source_type_c"], pairs["_source_type_t"], "mixed"
            ),
            "stat_kind": pairs["_kind"],
        }
    )
    for c in ATTRIBUTE_COLUMNS:
        base[c] = pairs[c].to_numpy()
    base["_used"] = list(zip(pairs["_row_id_t"], pairs["_row_id_c"], strict=True))

    common_flags = [
        text_if(
            parallel & (k > 1), np.char.add(np.char.add("control_split_", k.astype(str)), "_ways")
        ),
        text_if(paired & (k_all > 1), "crossover_shared_control_not_split"),
        text_if(
            crossover & (pairs["_period_t"] == "first").to_numpy(),
            "crossover_first_period_as_parallel",
        ),
        text_if(
            pairs["_time_hours_t"].to_numpy() != pairs["_time_hours_c"].to_numpy(),
            "time_hours_differ_between_arms",
        ),
    ]
    split_txt = text_if(
        parallel & (k > 1),
        np.char.add(
            np.char.add("; control arm n", np.where(score, "", " and events")),
            np.char.add(" split ", np.char.add(k.astype(str), " ways (Cochrane Handbook 23.3.4)")),
        ),
    )
    frames = []
    with warnings.catch_warnings():
        # undefined values become explicit exclusions (R_NONFINITE) in compute_effects
        warnings.simplefilter("ignore", EffectSizeWarning)
        if score.any():
            frames.append(
                _smd_rows(
                    pairs,
                    base,
                    score,
                    paired,
                    n_c,
                    n_pair,
                    r,
                    r_rep,
                    common_flags,
                    split_txt,
                    score_measure,
                )
            )
        if (~score).any():
            for measure in ("OR", "RR"):
                frames.append(
                    _binary_rows(
                        pairs, base, ~score, measure, n_c, ev_c, common_flags, split_txt, crossover
                    )
                )
    return pd.concat(frames, ignore_index=True)


def _smd_rows(
    pairs, base, score, paired, n_c, n_pair, r, r_rep, common_flags, split_txt, measure="SMD"
):
    p = pairs.loc[score]
    s = np.flatnonzero(score)
    yi = np.full(len(s), np.nan)
    vi = np.full(len(s), np.nan)
    pp = paired[s]
    args = (
        p["_mean_t"].to_numpy(),
        p["_sd_used_t"].to_numpy(),
        p["_mean_c"].to_numpy(),
        p["_sd_used_c"].to_numpy(),
    )
    parallel_fn, paired_fn = (
        (mean_difference, mean_difference_paired) if measure == "MD" else (smd, smd_crossover)
    )
    if (~pp).any():
        y, v = parallel_fn(
            args[0][~pp],
            args[1][~pp],
            p["_n_t"].to_numpy()[~pp],
            args[2][~pp],
            args[3][~pp],
            n_c[s][~pp],
        )
        yi[~pp], vi[~pp] = y, v
    if pp.any():
        y, v = paired_fn(
            args[0][pp], args[1][pp], args[2][pp], args[3][pp], n_pair[s][pp], r[s][pp]
        )
        yi[pp], vi[pp] = y, v
    lib = p["_lib_t"].to_numpy().astype(bool)
    out = base.loc[score].reset_index(drop=True)
    out["measure"] = measure
    out["yi"] = orient(yi, lib)
    out["vi"] = vi
    out["n_total"] = np.where(pp, n_pair[s], out["n_total"])

    def sd_part(side: str) -> np.ndarray:
        method = p[f"_sd_method_{side}"].to_numpy().astype(str)
        src = np.char.replace(method, "SD from ", "")
        txt = np.char.add(
            np.char.add("; SD of ", p[f"arm_{side}"].to_numpy().astype(str)),
            np.char.add(" arm from ", src),
        )
        return text_if(method != LABEL_REPORTED, txt)

    kind = p["_kind"].to_numpy().astype(str)
    rr = r[s]
    r_txt = np.char.add(
        np.char.add(
            "; crossover paired analysis (Cochrane Handbook 23.2.7), r=", fmt_num(rr).astype(str)
        ),
        np.where(np.isnan(r_rep[s]), " assumed", " reported"),
    )
    out["derivation"] = join_text(
        [
            np.char.add(
                np.char.add(
                    "mean difference from " if measure == "MD" else "Hedges' g from ", kind
                ),
                np.where(
                    pp,
                    " means/SDs, paired (metafor escalc MC)"
                    if measure == "MD"
                    else " means/SDs, paired (J with n-1 df)",
                    " means/SDs (metafor escalc MD)" if measure == "MD" else " means/SDs",
                ),
            ),
            sd_part("t"),
            sd_part("c"),
            text_if(pp, r_txt),
            split_txt[s],
            text_if(lib, "; sign flipped (lower score is better)"),
        ],
        sep="",
    )
    t_method = p["_sd_method_t"].to_numpy().astype(str)
    c_method = p["_sd_method_c"].to_numpy().astype(str)
    from_se = np.char.startswith(t_method, "SD from SE") | np.char.startswith(
        c_method, "SD from SE"
    )
    from_ci = (np.char.find(t_method, "% CI") >= 0) | (np.char.find(c_method, "% CI") >= 0)
    r_flag = np.char.add(
        np.where(np.isnan(r_rep[s]), "crossover_r_assumed=", "crossover_r_reported="),
        fmt_num(rr).astype(str),
    )
    n_differs = pp & (p["_n_t"].to_numpy() != p["_n_c"].to_numpy())
    lib_differs = lib != p["_lib_c"].to_numpy().astype(bool)
    out["flags"] = join_text(
        [
            text_if(from_se, "sd_from_se"),
            text_if(from_ci, "sd_from_ci"),
            text_if(kind == "change", "change_scores"),
            text_if(pp, r_flag),
            text_if(n_differs, "crossover_n_differs_min_used"),
            *[f[s] for f in common_flags],
            text_if(lib_differs, "lower_is_better_differs_between_arms"),
        ]
    )
    return out


def _binary_rows(pairs, base, binary, measure, n_c, ev_c, common_flags, split_txt, crossover):
    p = pairs.loc[binary]
    b = np.flatnonzero(binary)
    fn = log_odds_ratio if measure == "OR" else log_risk_ratio
    res = fn(p["_events_t"].to_numpy(), p["_n_t"].to_numpy(), ev_c[b], n_c[b])
    out = base.loc[binary].reset_index(drop=True)
    out["measure"] = measure
    out["yi"], out["vi"] = res.yi, res.vi  # events are benefits: no sign flip
    name = "log odds ratio" if measure == "OR" else "log risk ratio"
    xo = crossover[b]
    out["derivation"] = join_text(
        [
            np.full(len(b), f"{name} from events/n (metafor escalc {measure})", dtype=object),
            text_if(res.zero_cell_corrected, "; 0.5 added to all cells (zero cell)"),
            split_txt[b],
            text_if(xo, "; crossover analysed as if parallel (Cochrane Handbook 23.2.6)"),
        ],
        sep="",
    )
    out["flags"] = join_text(
        [
            text_if(res.zero_cell_corrected, "zero_cell_correction"),
            text_if(xo & (p["_period_t"] == "all").to_numpy(), "crossover_binary_as_parallel"),
            *[f[b] for f in common_flags],
        ]
    )
    out["stat_kind"] = ""
    return out
