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

import warnings

import numpy as np
import pandas as pd

from timecourse_meta.effects.effect_sizes import (
    EffectSizeWarning,
    hedges_j,
    log_odds_ratio,
    log_risk_ratio,
    logit_proportion,
    orient,
    se_from_ci,
    smd,
    smd_crossover,
    smd_crossover_from_md_se,
    smd_from_d,
    smd_from_md_se,
    smd_from_t,
    smd_var_ls,
    split_shared_control,
    var_from_ci,
    var_from_se,
)
from timecourse_meta.effects.sd_recovery import LABEL_REPORTED, T_RULE_MAX_N, recover_sd
from timecourse_meta.schema import (
    ATTRIBUTE_COLUMNS,
    EFFECT_COLUMNS,
    PROPORTION_COLUMNS,
    R_C_DN,
    R_C_MD_N,
    R_C_MD_UNC,
    R_C_NONE,
    R_C_OUTCOME,
    R_C_TN,
    R_C_TYPE,
    R_C_USED_ARMS,
    R_C_VAR,
    R_CHANGE,
    R_DESIGN,
    R_DUP,
    R_DZ,
    R_EVENTS,
    R_EVENTS_RANGE,
    R_KEYS,
    R_KIND,
    R_MEAN,
    R_MULTI_CTRL,
    R_N,
    R_NO_CTRL,
    R_NO_TREAT,
    R_NO_USABLE_CTRL,
    R_NO_USABLE_TREAT,
    R_NONFINITE,
    R_OUTCOME,
    R_PERIOD,
    R_R,
    R_ROLE,
    R_SD,
    R_SUPERSEDED,
    R_TIME,
)

__all__ = [
    "compute_effects",
    "compute_proportions",
]


_REQUIRED = (
    "study_id",
    "arm",
    "arm_role",
    "outcome",
    "timepoint",
    "time_hours",
    "design",
    "source_file",
    "source_row",
)
_NUMERIC = (
    "n",
    "time_hours",
    "mean",
    "sd",
    "se",
    "ci_low",
    "ci_high",
    "ci_level",
    "events",
    "effect",
    "effect_se",
    "effect_var",
    "effect_ci_low",
    "effect_ci_high",
    "t_stat",
    "n_treatment",
    "n_control",
    "r_within",
)
_CODES = (
    "arm_role",
    "outcome",
    "design",
    "period",
    "stat_kind",
    "effect_type",
    "source_type",
    "lower_is_better",
)
_BINARY = ("response", "remission")
_KEY = ["study_id", "outcome", "timepoint"]


# ------------------------------------------------------------------------------------------
# preparation and row checks
# ------------------------------------------------------------------------------------------
def _row_id(rows: pd.DataFrame) -> pd.Series:
    row = rows["source_row"]
    num = pd.to_numeric(row, errors="coerce")
    whole = num.notna() & (num == np.floor(num))
    text = row.astype(str).where(~whole, num.where(whole, 0).astype("int64").astype(str))
    return rows["source_file"].astype(str) + ":" + text


def _prepare(rows: pd.DataFrame, lower_is_better_default: bool) -> pd.DataFrame:
    missing = [c for c in _REQUIRED if c not in rows.columns]
    if missing:
        raise ValueError(f"rows lack required column(s): {', '.join(missing)}")
    keep = [*_REQUIRED, *ATTRIBUTE_COLUMNS, *_NUMERIC, *_CODES]
    df = rows[[c for c in dict.fromkeys(keep) if c in rows.columns]].reset_index(drop=True)
    for c in _NUMERIC:
        if c in df.columns:
            col = df[c].where(df[c].astype(str).str.strip() != "")  # "" = not reported
            df[f"_{c}"] = pd.to_numeric(col).astype(float)
        else:
            df[f"_{c}"] = np.nan
    for c in _CODES:
        raw = df[c] if c in df.columns else pd.Series("", index=df.index)
        df[f"_{c}"] = raw.fillna("").astype(str).str.strip().str.lower()
    for c in ATTRIBUTE_COLUMNS:
        if c not in df.columns:
            df[c] = ""
    df["_row_id"] = _row_id(df)
    dup = df["_row_id"].duplicated(keep=False)
    if dup.any():
        raise ValueError(f"source_file:source_row not unique: {sorted(set(df['_row_id'][dup]))}")
    lib = df["_lower_is_better"]
    df["_lib"] = np.where(
        lib.isin(["yes", "true", "1"]),
        True,
        np.where(lib.isin(["no", "false", "0"]), False, lower_is_better_default),
    )
    df["_kind"] = np.where(df["_outcome"] == "score", df["_stat_kind"], "")
    df["_reason"] = pd.Series(pd.NA, index=df.index, dtype=object)
    return df


def _flag_rows(df: pd.DataFrame, mask: pd.Series | np.ndarray, reason: str) -> None:
    """Give `reason` to rows in `mask` that have no reason yet (the first reason wins)."""
    m = np.asarray(mask, dtype=bool) & df["_reason"].isna().to_numpy()
    df.loc[m, "_reason"] = reason


def _blank(s: pd.Series) -> pd.Series:
    return s.isna() | (s.astype(str).str.strip() == "")


def _paired_contrast(df: pd.DataFrame) -> np.ndarray:
    """Contrast rows of crossover trials over all periods (analysed as paired)."""
    return ((df["_design"] == "crossover") & (df["_period"] == "all")).to_numpy()


def _crossover_n(df: pd.DataFrame) -> np.ndarray:
    """Participants of a crossover contrast: ``n``, else the smaller of n_treatment, n_control."""
    n = df["_n"].to_numpy()
    n_arms = np.fmin(df["_n_treatment"].to_numpy(), df["_n_control"].to_numpy())
    return np.where(n > 0, n, n_arms)


def _check_rows(df: pd.DataFrame) -> None:
    role, out = df["_arm_role"], df["_outcome"]
    arm = role.isin(["treatment", "control"])
    score, binary = out == "score", out.isin(_BINARY)
    _flag_rows(df, _blank(df["study_id"]) | _blank(df["arm"]) | _blank(df["timepoint"]), R_KEYS)
    _flag_rows(df, ~role.isin(["treatment", "control", "contrast"]), R_ROLE)
    _flag_rows(df, ~out.isin(["score", *_BINARY]), R_OUTCOME)
    _flag_rows(df, ~df["_design"].isin(["parallel", "crossover"]), R_DESIGN)
    _flag_rows(df, (df["_design"] == "crossover") & ~df["_period"].isin(["all", "first"]), R_PERIOD)
    _flag_rows(df, df["_time_hours"].isna(), R_TIME)
    _flag_rows(df, df["_r_within"].abs() > 1, R_R)
    # arm rows
    _flag_rows(df, arm & ~(df["_n"] > 0), R_N)
    _flag_rows(df, arm & score & ~df["_stat_kind"].isin(["final", "change"]), R_KIND)
    _flag_rows(df, arm & score & df["_mean"].isna(), R_MEAN)
    _flag_rows(df, arm & binary & df["_events"].isna(), R_EVENTS)
    _flag_rows(
        df, arm & binary & ((df["_events"] < 0) | (df["_events"] > df["_n"])), R_EVENTS_RANGE
    )
    # SD recovery for score arms that are still candidates
    cand = (arm & score & df["_reason"].isna()).to_numpy()
    sd = np.full(len(df), np.nan)
    method = np.full(len(df), "", dtype=object)
    if cand.any():
        rec = recover_sd(
            df["_sd"].to_numpy()[cand],
            df["_se"].to_numpy()[cand],
            df["_ci_low"].to_numpy()[cand],
            df["_ci_high"].to_numpy()[cand],
            df["_n"].to_numpy()[cand],
            df["_ci_level"].to_numpy()[cand],
        )
        sd[cand], method[cand] = rec.sd, rec.method
    df["_sd_used"], df["_sd_method"] = sd, method
    _flag_rows(df, cand & ~np.isfinite(sd), R_SD)
    # contrast rows
    con = role == "contrast"
    etype, has_eff = df["_effect_type"], df["_effect"].notna()
    has_nn = (df["_n_treatment"] > 0) & (df["_n_control"] > 0)
    has_unc = (
        df["_effect_var"].notna()
        | df["_effect_se"].notna()
        | (df["_effect_ci_low"].notna() & df["_effect_ci_high"].notna())
    )
    md = con & has_eff & (etype == "md")
    sizes_ok = np.where(_paired_contrast(df), _crossover_n(df) > 0, has_nn)
    _flag_rows(df, con & ~score, R_C_OUTCOME)
    _flag_rows(df, con & has_eff & ~etype.isin(["g", "d", "md"]), R_C_TYPE)
    _flag_rows(df, md & ~sizes_ok, R_C_MD_N)
    _flag_rows(df, md & ~has_unc, R_C_MD_UNC)
    _flag_rows(df, con & ~has_eff & df["_t_stat"].isna(), R_C_NONE)
    _flag_rows(df, con & ~has_eff & ~has_nn, R_C_TN)
    _flag_rows(df, con & has_eff & (etype == "d") & ~has_nn, R_C_DN)
    _flag_rows(df, con & has_eff & (etype == "g") & ~has_unc & ~has_nn, R_C_VAR)


def _dedup(df: pd.DataFrame, mask: np.ndarray) -> None:
    """Among candidate rows in `mask`: primary beats secondary; remaining duplicates all go."""
    live = mask & df["_reason"].isna().to_numpy()
    sub = df.loc[live]
    key = [*_KEY, "_arm_role", "arm", "_kind"]
    size = sub.groupby(key, dropna=False)["_row_id"].transform("size")
    n_primary = (
        (sub["_source_type"] == "primary")
        .groupby([sub[k] for k in key], dropna=False)
        .transform("sum")
    )
    beaten = (size > 1) & (n_primary > 0) & (sub["_source_type"] != "primary")
    _flag_rows(df, df.index.isin(beaten[beaten].index), R_SUPERSEDED)
    live = mask & df["_reason"].isna().to_numpy()
    sub = df.loc[live]
    size = sub.groupby(key, dropna=False)["_row_id"].transform("size")
    _flag_rows(df, df.index.isin(size[size > 1].index), R_DUP)


def _comparison_ids(df: pd.DataFrame) -> pd.Series:
    """study_id, plus ' / <arm>' when the study has several treatment arms.

    Treatment-arm labels and contrast-row labels (often "X vs Y") are counted separately, so a
    two-arm trial with both arm rows and a contrast row keeps the plain study_id.
    """
    n_arms = [
        df["study_id"].map(df.loc[df["_arm_role"] == role].groupby("study_id")["arm"].nunique())
        for role in ("treatment", "contrast")
    ]
    multi = np.fmax(n_arms[0].to_numpy(float), n_arms[1].to_numpy(float)) > 1
    return pd.Series(
        np.where(multi, df["study_id"].astype(str) + " / " + df["arm"].astype(str), df["study_id"]),
        index=df.index,
    )


def _key_in(df: pd.DataFrame, cols: list[str], other: pd.DataFrame) -> np.ndarray:
    """Row-wise: is df's key (cols) among the keys of `other`?"""
    if other.empty:
        return np.zeros(len(df), dtype=bool)
    mine = pd.MultiIndex.from_frame(df[cols].astype(str))
    return mine.isin(pd.MultiIndex.from_frame(other[cols].astype(str)))


def _join(parts: list[np.ndarray | pd.Series], sep: str = ";") -> np.ndarray:
    """Join per-row string parts, skipping empty ones (vectorised over rows)."""
    out = np.asarray(parts[0], dtype=object).astype(str)
    for p in parts[1:]:
        p = np.asarray(p, dtype=object).astype(str)
        out = np.where((out != "") & (p != ""), out + sep + p, out + p)
    return out.astype(object)


def _if(mask: np.ndarray | pd.Series, text: str | np.ndarray) -> np.ndarray:
    return np.where(np.asarray(mask, dtype=bool), text, "")


def _fmt_num(x: np.ndarray) -> np.ndarray:
    return np.array([f"{v:g}" for v in np.asarray(x, dtype=float)], dtype=object)


# ------------------------------------------------------------------------------------------
# arm-level comparisons
# ------------------------------------------------------------------------------------------
_ARM_COLS = [
    *_KEY,
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


def _pairs(df: pd.DataFrame) -> pd.DataFrame:
    """Treatment x control pairs within study x outcome x timepoint x stat_kind."""
    live = df["_reason"].isna()
    ctrl_mask = live & (df["_arm_role"] == "control")
    n_ctrl = df.loc[ctrl_mask].groupby([*_KEY, "_kind"], dropna=False)["arm"].transform("nunique")
    multi_groups = df.loc[n_ctrl[n_ctrl > 1].index, [*_KEY, "_kind"]].drop_duplicates()
    if len(multi_groups):
        hit = _key_in(df, [*_KEY, "_kind"], multi_groups)
        in_multi = hit & df["_arm_role"].isin(["treatment", "control"]).to_numpy()
        _flag_rows(df, in_multi, R_MULTI_CTRL)
    live = df["_reason"].isna()
    treat = df.loc[
        live & (df["_arm_role"] == "treatment"), _ARM_COLS + ["_cid", *ATTRIBUTE_COLUMNS]
    ]
    ctrl = df.loc[live & (df["_arm_role"] == "control"), _ARM_COLS]
    pairs = treat.merge(ctrl, on=[*_KEY, "_kind"], suffixes=("_t", "_c"))
    # prefer final values over change scores for the same treatment arm
    pairs["_is_final"] = pairs["_kind"] == "final"
    has_final = pairs.groupby([*_KEY, "arm_t"], dropna=False)["_is_final"].transform("any")
    return pairs.loc[~(has_final & (pairs["_kind"] == "change"))].reset_index(drop=True)


def _split_double_zero(pairs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Separate binary pairs with no events (or only events) in both arms (metafor drop00)."""
    binary = pairs["outcome"].isin(_BINARY).to_numpy()
    a, n1 = pairs["_events_t"].to_numpy(), pairs["_n_t"].to_numpy()
    c, n2 = pairs["_events_c"].to_numpy(), pairs["_n_c"].to_numpy()
    dz = binary & (((a == 0) & (c == 0)) | ((a == n1) & (c == n2)))
    return pairs.loc[~dz].reset_index(drop=True), pairs.loc[dz]


def _arm_effects(pairs: pd.DataFrame, crossover_r: float) -> pd.DataFrame:
    """Compute SMD / OR / RR rows from arm pairs (vectorised over pairs)."""
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
        _if(parallel & (k > 1), np.char.add(np.char.add("control_split_", k.astype(str)), "_ways")),
        _if(paired & (k_all > 1), "crossover_shared_control_not_split"),
        _if(
            crossover & (pairs["_period_t"] == "first").to_numpy(),
            "crossover_first_period_as_parallel",
        ),
        _if(
            pairs["_time_hours_t"].to_numpy() != pairs["_time_hours_c"].to_numpy(),
            "time_hours_differ_between_arms",
        ),
    ]
    split_txt = _if(
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
                    pairs, base, score, paired, n_c, n_pair, r, r_rep, common_flags, split_txt
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


def _smd_rows(pairs, base, score, paired, n_c, n_pair, r, r_rep, common_flags, split_txt):
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
    if (~pp).any():
        y, v = smd(
            args[0][~pp],
            args[1][~pp],
            p["_n_t"].to_numpy()[~pp],
            args[2][~pp],
            args[3][~pp],
            n_c[s][~pp],
        )
        yi[~pp], vi[~pp] = y, v
    if pp.any():
        y, v = smd_crossover(
            args[0][pp], args[1][pp], args[2][pp], args[3][pp], n_pair[s][pp], r[s][pp]
        )
        yi[pp], vi[pp] = y, v
    lib = p["_lib_t"].to_numpy().astype(bool)
    out = base.loc[score].reset_index(drop=True)
    out["measure"] = "SMD"
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
        return _if(method != LABEL_REPORTED, txt)

    kind = p["_kind"].to_numpy().astype(str)
    rr = r[s]
    r_txt = np.char.add(
        np.char.add(
            "; crossover paired analysis (Cochrane Handbook 23.2.7), r=", _fmt_num(rr).astype(str)
        ),
        np.where(np.isnan(r_rep[s]), " assumed", " reported"),
    )
    out["derivation"] = _join(
        [
            np.char.add(
                np.char.add("Hedges' g from ", kind),
                np.where(pp, " means/SDs, paired (J with n-1 df)", " means/SDs"),
            ),
            sd_part("t"),
            sd_part("c"),
            _if(pp, r_txt),
            split_txt[s],
            _if(lib, "; sign flipped (lower score is better)"),
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
        _fmt_num(rr).astype(str),
    )
    n_differs = pp & (p["_n_t"].to_numpy() != p["_n_c"].to_numpy())
    lib_differs = lib != p["_lib_c"].to_numpy().astype(bool)
    out["flags"] = _join(
        [
            _if(from_se, "sd_from_se"),
            _if(from_ci, "sd_from_ci"),
            _if(kind == "change", "change_scores"),
            _if(pp, r_flag),
            _if(n_differs, "crossover_n_differs_min_used"),
            *[f[s] for f in common_flags],
            _if(lib_differs, "lower_is_better_differs_between_arms"),
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
    out["derivation"] = _join(
        [
            np.full(len(b), f"{name} from events/n (metafor escalc {measure})", dtype=object),
            _if(res.zero_cell_corrected, "; 0.5 added to all cells (zero cell)"),
            split_txt[b],
            _if(xo, "; crossover analysed as if parallel (Cochrane Handbook 23.2.6)"),
        ],
        sep="",
    )
    out["flags"] = _join(
        [
            _if(res.zero_cell_corrected, "zero_cell_correction"),
            _if(xo & (p["_period_t"] == "all").to_numpy(), "crossover_binary_as_parallel"),
            *[f[b] for f in common_flags],
        ]
    )
    out["stat_kind"] = ""
    return out


# ------------------------------------------------------------------------------------------
# precomputed contrasts
# ------------------------------------------------------------------------------------------
def _md_se_df(n1: np.ndarray, n2: np.ndarray, n_xo: np.ndarray, paired: np.ndarray) -> np.ndarray:
    """df of the t quantile for the SE of a mean difference from its CI (inf = normal).

    Cochrane Handbook §6.5.2.3: small samples (here: smaller group < 60, as §6.5.2.2's rule for
    arm CIs in ``sd_recovery``) -> t with n1 + n2 - 2 df; paired crossover -> n - 1 df.
    """
    df = np.where(paired, n_xo - 1, n1 + n2 - 2)
    small = np.where(paired, n_xo, np.fmin(n1, n2)) < T_RULE_MAX_N
    return np.where(small, df, np.inf)


def _contrast_effects(df: pd.DataFrame, covered: pd.DataFrame, crossover_r: float) -> pd.DataFrame:
    live = df["_reason"].isna() & (df["_arm_role"] == "contrast")
    if covered.empty:
        hit = np.zeros(len(df), dtype=bool)
    else:
        hit = _key_in(df, _KEY, covered)
    _flag_rows(df, live & hit, R_C_USED_ARMS)
    c = df.loc[df["_reason"].isna() & (df["_arm_role"] == "contrast")]
    if c.empty:
        return pd.DataFrame()
    eff, t = c["_effect"].to_numpy(), c["_t_stat"].to_numpy()
    n1, n2 = c["_n_treatment"].to_numpy(), c["_n_control"].to_numpy()
    etype = c["_effect_type"].to_numpy().astype(str)
    has_eff = ~np.isnan(eff)
    level = c["_ci_level"].fillna(0.95).to_numpy()
    lo, hi = c["_effect_ci_low"].to_numpy(), c["_effect_ci_high"].to_numpy()
    has_ci = ~np.isnan(lo) & ~np.isnan(hi)
    is_t = ~has_eff
    is_d = has_eff & (etype == "d")
    is_g = has_eff & (etype == "g")
    is_md = has_eff & (etype == "md")
    paired = _paired_contrast(c)
    md_xo, md_par = is_md & paired, is_md & ~paired
    n_xo = _crossover_n(c)
    # reported variance of the effect as given: var > SE > CI
    var_rep = c["_effect_var"].to_numpy().copy()
    var_src = np.where(~np.isnan(var_rep), "variance", "").astype(object)
    se = c["_effect_se"].to_numpy()
    use_se = np.isnan(var_rep) & ~np.isnan(se)
    var_rep[use_se] = var_from_se(se[use_se])
    var_src[use_se] = "SE"
    use_ci = np.isnan(var_rep) & has_ci
    pct = _fmt_num(level * 100).astype(str)
    # SMD CIs: normal theory (var_from_ci); mean-difference CIs: t or z (Handbook §6.5.2.3)
    ci_g = use_ci & ~is_md
    var_rep[ci_g] = var_from_ci(lo[ci_g], hi[ci_g], level[ci_g])
    var_src[ci_g] = np.char.add(pct[ci_g], "% CI (normal)")
    ci_md = use_ci & is_md
    q_df = _md_se_df(n1, n2, n_xo, paired)
    var_rep[ci_md] = se_from_ci(lo[ci_md], hi[ci_md], level[ci_md], q_df[ci_md]) ** 2
    q_txt = np.where(
        np.isinf(q_df),
        " (z)",
        np.char.add(" (t, df=", np.char.add(_fmt_num(q_df).astype(str), ")")),
    )
    var_src[ci_md] = np.char.add(np.char.add(pct[ci_md], "% CI"), q_txt[ci_md])
    r_rep = c["_r_within"].to_numpy()
    r = np.where(np.isnan(r_rep), crossover_r, r_rep)

    yi, vi = np.full(len(c), np.nan), np.full(len(c), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EffectSizeWarning)
        if is_t.any():
            yi[is_t], vi[is_t] = smd_from_t(t[is_t], n1[is_t], n2[is_t])
        if is_d.any():
            yi[is_d], vi_n = smd_from_d(eff[is_d], n1[is_d], n2[is_d])
            j2 = hedges_j(n1[is_d] + n2[is_d] - 2) ** 2
            vi[is_d] = np.where(np.isnan(var_rep[is_d]), vi_n, j2 * var_rep[is_d])
        yi[is_g] = eff[is_g]
        vi[is_g] = np.where(
            np.isnan(var_rep[is_g]), smd_var_ls(eff[is_g], n1[is_g], n2[is_g]), var_rep[is_g]
        )
        with np.errstate(invalid="ignore"):
            se_md = np.sqrt(var_rep)  # a negative variance -> NaN -> excluded as non-finite
        if md_par.any():
            yi[md_par], vi[md_par] = smd_from_md_se(
                eff[md_par], se_md[md_par], n1[md_par], n2[md_par]
            )
        if md_xo.any():
            yi[md_xo], vi[md_xo] = smd_crossover_from_md_se(
                eff[md_xo], se_md[md_xo], n_xo[md_xo], r[md_xo]
            )
    vi_from_n = (is_d | is_g) & np.isnan(var_rep)
    lib = c["_lib"].to_numpy().astype(bool)
    # crossover md rows: everyone is in both conditions -> sizes are the participants
    n1_out = np.where(md_xo & np.isnan(n1), n_xo, n1)
    n2_out = np.where(md_xo & np.isnan(n2), n_xo, n2)
    n_total = np.where(np.isnan(n1 + n2), c["_n"].to_numpy(), n1 + n2)

    out = pd.DataFrame(
        {
            "study_id": c["study_id"].to_numpy(),
            "comparison_id": c["_cid"].to_numpy(),
            "outcome": c["outcome"].to_numpy(),
            "timepoint": c["timepoint"].to_numpy(),
            "time_hours": c["_time_hours"].to_numpy(),
            "measure": "SMD",
            "yi": orient(yi, lib),
            "vi": vi,
            "n_treatment": n1_out,
            "n_control": n2_out,
            "n_total": np.where(md_xo, n_xo, n_total),
            "design": c["_design"].to_numpy(),
            "source_type": c["_source_type"].to_numpy(),
            "stat_kind": c["_stat_kind"].to_numpy(),
        }
    )
    for a in ATTRIBUTE_COLUMNS:
        out[a] = c[a].to_numpy()
    out["_used"] = [(r,) for r in c["_row_id"]]
    var_txt = np.where(
        vi_from_n,
        "variance from effect and arm sizes (metafor SMD LS formula)",
        np.char.add("variance from reported ", var_src.astype(str)),
    )
    se_txt = np.char.add("; SE of MD from reported ", var_src.astype(str))
    r_str = _fmt_num(r).astype(str)
    n_differs = md_xo & ~(c["_n"].to_numpy() > 0) & (n1 != n2) & ~np.isnan(n1 + n2)
    xo_txt = _join(
        [
            np.full(len(c), "paired Hedges' g from crossover mean difference and SE", dtype=object),
            np.full(len(c), " (SD of differences = SE x sqrt(n), n=", dtype=object),
            _fmt_num(n_xo),
            np.full(len(c), "; within-condition SD = SD_diff / sqrt(2(1-r)), r=", dtype=object),
            r_str,
            np.where(np.isnan(r_rep), " assumed", " reported"),
            np.full(len(c), "; J with n-1 df; Cochrane Handbook 23.2.7)", dtype=object),
            _if(n_differs, "; n = smaller of n_treatment, n_control"),
        ],
        sep="",
    )
    head = np.select(
        [is_t, is_d, md_par, md_xo],
        [
            "Hedges' g from two-sample t statistic (metafor escalc SMD ti)",
            np.char.add("Cohen's d converted to Hedges' g (J with n1+n2-2 df); ", var_txt),
            np.char.add(
                "Hedges' g from mean difference and SE (t = MD/SE, metafor escalc SMD ti; "
                "Cochrane Handbook 6.5.2.3)",
                se_txt,
            ),
            np.char.add(xo_txt.astype(str), se_txt),
        ],
        default=np.char.add("precomputed Hedges' g; ", var_txt),
    )
    n_con = out.groupby(_KEY, dropna=False)["study_id"].transform("size").to_numpy()
    out["derivation"] = _join([head, _if(lib, "; sign flipped (lower score is better)")], sep="")
    r_flag = np.char.add(
        np.where(np.isnan(r_rep), "crossover_r_assumed=", "crossover_r_reported="), r_str
    )
    out["flags"] = _join(
        [
            np.full(len(c), "precomputed_contrast", dtype=object),
            _if(is_d, "d_converted_to_g"),
            _if(is_t, "g_from_t"),
            _if(vi_from_n, "variance_from_effect_and_n"),
            _if(md_par, "g_from_md_se"),
            _if(md_xo, np.char.add("crossover_md_to_smd_r=", r_str)),
            _if(md_xo, r_flag),
            _if(ci_md, "md_se_from_ci"),
            _if(n_differs, "crossover_n_differs_min_used"),
            _if(n_con > 1, "multiple_contrasts_shared_control"),
        ]
    )
    return out


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


def _explain_unused(df: pd.DataFrame, used: set[str], excluded_pairs: dict[str, str]) -> None:
    """Give a reason to candidate arm rows that ended up in no comparison."""
    live = df["_reason"].isna() & ~df["_row_id"].isin(used)
    role = df["_arm_role"]
    # a reason from a dropped comparison (double zero, non-finite) applies to its rows
    dropped = df["_row_id"].map(excluded_pairs)
    for reason in sorted(set(excluded_pairs.values())):
        _flag_rows(df, live & (dropped == reason), reason)
    live = df["_reason"].isna() & ~df["_row_id"].isin(used)
    # change-score rows whose arm has a used final-value comparison
    used_final = df.loc[df["_row_id"].isin(used) & (df["_kind"] == "final"), [*_KEY, "arm"]]
    has_final = _key_in(df, [*_KEY, "arm"], used_final)
    _flag_rows(df, live & (df["_kind"] == "change") & has_final, R_CHANGE)
    # other side present at all (any row of that role, even excluded)?
    for mine, other, r_none, r_unusable in (
        ("treatment", "control", R_NO_CTRL, R_NO_USABLE_CTRL),
        ("control", "treatment", R_NO_TREAT, R_NO_USABLE_TREAT),
    ):
        exists = _key_in(df, _KEY, df.loc[role == other])
        live = (df["_reason"].isna() & ~df["_row_id"].isin(used) & (role == mine)).to_numpy()
        _flag_rows(df, live & exists, r_unusable)
        _flag_rows(df, live & ~exists, r_none)


def _finish(effects: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    effects = effects.copy()
    effects["sei"] = np.sqrt(effects["vi"].to_numpy(dtype=float))
    effects["row_ids"] = [";".join(u) for u in effects["_used"]]
    effects = effects.sort_values(
        ["study_id", "comparison_id", "outcome", "time_hours", "timepoint", "measure"],
        kind="stable",
    )
    return effects.reindex(columns=list(columns)).reset_index(drop=True)


def _empty_effects() -> pd.DataFrame:
    floats = ("time_hours", "yi", "vi", "sei", "n_treatment", "n_control", "n_total")
    cols = {c: pd.Series(dtype=float if c in floats else object) for c in EFFECT_COLUMNS}
    return pd.DataFrame({**cols, "_used": pd.Series(dtype=object)})


def _check_invariant(df: pd.DataFrame, used: set[str]) -> None:
    excluded = set(df.loc[df["_reason"].notna(), "_row_id"])
    everything = set(df["_row_id"])
    if excluded & used or (excluded | used) != everything:
        raise RuntimeError("internal error: row accounting invariant violated")


def compute_effects(
    rows: pd.DataFrame,
    crossover_r: float = 0.5,
    lower_is_better_default: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Effect sizes for every study x comparison x outcome x timepoint, plus exclusions.

    ``rows``: validated extraction-sheet rows (docs/extraction_sheet.md) with ``source_file``,
    ``source_row`` and ``timepoint``. ``crossover_r``: within-person correlation assumed for
    crossover trials without ``r_within`` (Cochrane Handbook §23.2.7.2; recorded in flags).
    ``lower_is_better_default``: used where ``lower_is_better`` is empty.

    Returns ``(effects, exclusions)`` with columns ``EFFECT_COLUMNS`` and ``EXCLUSION_COLUMNS``.
    Scores give measure "SMD" (Hedges' g); response/remission give "OR" and "RR" (log scale),
    one row each. yi > 0 means benefit of treatment.

    Row accounting (checked on return): every input row's ``source_file:source_row`` is either
    in exactly one exclusions row or in the ``row_ids`` of at least one effect row, never both.
    A row id appears in several effect rows only for the OR/RR pair of one binary comparison and
    for a shared control arm (flag ``control_split_<k>_ways`` or
    ``crossover_shared_control_not_split``).
    """
    if not -1 <= crossover_r <= 1:
        raise ValueError("crossover_r must lie in [-1, 1]")
    df = _prepare(rows, lower_is_better_default)
    df["_cid"] = _comparison_ids(df)
    _check_rows(df)
    _dedup(df, df["_arm_role"].isin(["treatment", "control", "contrast"]).to_numpy())

    pairs, dz_pairs = _split_double_zero(_pairs(df))
    # rows of dropped comparisons get that comparison's reason unless used elsewhere
    dropped: dict[str, str] = {
        rid: R_DZ for col in ("_row_id_t", "_row_id_c") for rid in dz_pairs[col]
    }
    frames = []
    used: set[str] = set()
    arm_eff = _arm_effects(pairs, crossover_r)
    if not arm_eff.empty:
        ok = np.isfinite(arm_eff["yi"].to_numpy(float)) & np.isfinite(arm_eff["vi"].to_numpy(float))
        # a comparison is kept only if all its measures (OR and RR) are finite
        bad = set(arm_eff.loc[~ok, "_used"])
        for rid in sorted({r for u in bad for r in u}):
            dropped.setdefault(rid, R_NONFINITE)
        arm_eff = arm_eff.loc[~arm_eff["_used"].isin(bad).to_numpy()]
        frames.append(arm_eff)
        used |= {r for u in arm_eff["_used"] for r in u}
    covered = arm_eff[_KEY] if not arm_eff.empty else pd.DataFrame(columns=_KEY)
    con_eff = _contrast_effects(df, covered, crossover_r)
    if not con_eff.empty:
        ok = np.isfinite(con_eff["yi"].to_numpy(float)) & np.isfinite(con_eff["vi"].to_numpy(float))
        for u in con_eff.loc[~ok, "_used"]:
            dropped.setdefault(u[0], R_NONFINITE)
        con_eff = con_eff.loc[ok]
        frames.append(con_eff)
        used |= {r for u in con_eff["_used"] for r in u}
    _explain_unused(df, used, dropped)
    _check_invariant(df, used)
    frames = [f for f in frames if not f.empty]
    effects = pd.concat(frames, ignore_index=True) if frames else _empty_effects()
    return _finish(effects, EFFECT_COLUMNS), _exclusions(df)


def compute_proportions(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Treated-arm responder (or remitter) proportion on the logit scale, per arm x timepoint.

    metafor ``escalc(measure="PLO")`` with add = 1/2 for proportions of 0 or 1 (flag
    ``zero_cell_correction``); back-transform with ``effect_sizes.expit``. Candidate rows are
    treatment-arm rows with outcome response or remission; other rows are out of scope and not
    reported. Returns ``(proportions, exclusions)``: every candidate row's id is in exactly one
    proportions row or exactly one exclusions row.
    """
    df = _prepare(rows, lower_is_better_default=True)
    df["_cid"] = _comparison_ids(df)
    cand = ((df["_arm_role"] == "treatment") & df["_outcome"].isin(_BINARY)).to_numpy()
    df = df.loc[cand].reset_index(drop=True)
    _check_rows(df)
    _dedup(df, np.ones(len(df), dtype=bool))
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
                "derivation": _join(
                    [
                        np.full(len(p), "logit of events/n (metafor escalc PLO)", dtype=object),
                        _if(res.zero_cell_corrected, "; 0.5 added to events and non-events"),
                    ],
                    sep="",
                ),
                "flags": _join([_if(res.zero_cell_corrected, "zero_cell_correction")]),
                "row_ids": p["_row_id"].to_numpy(),
            }
        )
        for a in ATTRIBUTE_COLUMNS:
            out[a] = p[a].to_numpy()
        out = out.sort_values(
            ["study_id", "comparison_id", "outcome", "time_hours", "timepoint"], kind="stable"
        )
        out = out.reindex(columns=list(PROPORTION_COLUMNS)).reset_index(drop=True)
    return out, _exclusions(df)
