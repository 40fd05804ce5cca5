"""Precomputed contrasts (arm_role = contrast): convert a reported effect to Hedges' g.

Rule 6 of `comparisons`: g as reported, d -> g, t -> g, mean difference with its variance, SE
or CI -> g (parallel, or paired for crossovers with r); used only where no arm-level comparison
exists for the study x outcome x timepoint. Called by `comparisons.compute_effects`.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from timecourse_meta.effects.effect_sizes import (
    EffectSizeWarning,
    hedges_j,
    orient,
    se_from_ci,
    smd_crossover_from_md_se,
    smd_from_d,
    smd_from_md_se,
    smd_from_t,
    smd_var_ls,
    var_from_ci,
    var_from_se,
)
from timecourse_meta.effects.row_frame import (
    KEY,
    crossover_n,
    flag_rows,
    fmt_num,
    join_text,
    key_in,
    paired_contrast,
    text_if,
)
from timecourse_meta.effects.sd_recovery import T_RULE_MAX_N
from timecourse_meta.schema import ATTRIBUTE_COLUMNS, R_C_NOT_MD, R_C_USED_ARMS

__all__ = ["contrast_effects"]


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


def contrast_effects(
    df: pd.DataFrame, covered: pd.DataFrame, crossover_r: float, score_measure: str = "SMD"
) -> pd.DataFrame:
    """Effects of the contrast rows not covered by an arm-level comparison.

    `score_measure` "MD": a reported mean difference is used as it is (yi = md oriented, vi =
    its variance, SE squared or SE from the CI, metafor ``escalc(yi=, sei=)``); standardised
    contrasts (g, d, t) cannot give a raw mean difference and are excluded (``R_C_NOT_MD``).
    """
    live = df["_reason"].isna() & (df["_arm_role"] == "contrast")
    if covered.empty:
        hit = np.zeros(len(df), dtype=bool)
    else:
        hit = key_in(df, KEY, covered)
    flag_rows(df, live & hit, R_C_USED_ARMS)
    if score_measure == "MD":
        not_md = ~(df["_effect"].notna() & (df["_effect_type"] == "md"))
        flag_rows(df, (df["_arm_role"] == "contrast") & not_md, R_C_NOT_MD)
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
    paired = paired_contrast(c)
    md_xo, md_par = is_md & paired, is_md & ~paired
    n_xo = crossover_n(c)
    # reported variance of the effect as given: var > SE > CI
    var_rep = c["_effect_var"].to_numpy().copy()
    var_src = np.where(~np.isnan(var_rep), "variance", "").astype(object)
    se = c["_effect_se"].to_numpy()
    use_se = np.isnan(var_rep) & ~np.isnan(se)
    var_rep[use_se] = var_from_se(se[use_se])
    var_src[use_se] = "SE"
    use_ci = np.isnan(var_rep) & has_ci
    pct = fmt_num(level * 100).astype(str)
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
        np.char.add(" (t, df=", np.char.add(fmt_num(q_df).astype(str), ")")),
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
        std = score_measure != "MD"  # MD: every row left is an md row (others were flagged)
        if not std:
            yi[is_md] = eff[is_md]
            with np.errstate(invalid="ignore"):
                vi[is_md] = np.where(var_rep[is_md] >= 0, var_rep[is_md], np.nan)
        if std and md_par.any():
            yi[md_par], vi[md_par] = smd_from_md_se(
                eff[md_par], se_md[md_par], n1[md_par], n2[md_par]
            )
        if std and md_xo.any():
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
            "measure": score_measure,
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
    r_str = fmt_num(r).astype(str)
    n_differs = md_xo & ~(c["_n"].to_numpy() > 0) & (n1 != n2) & ~np.isnan(n1 + n2)
    xo_txt = join_text(
        [
            np.full(len(c), "paired Hedges' g from crossover mean difference and SE", dtype=object),
            np.full(len(c), " (SD of differences = SE x sqrt(n), n=", dtype=object),
            fmt_num(n_xo),
            np.full(len(c), "; within-condition SD = SD_diff / sqrt(2(1-r)), r=", dtype=object),
            r_str,
            np.where(np.isnan(r_rep), " assumed", " reported"),
            np.full(len(c), "; J with n-1 df; Cochrane Handbook 23.2.7)", dtype=object),
            text_if(n_differs, "; n = smaller of n_treatment, n_control"),
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
    if score_measure == "MD":
        head = np.char.add(
            "mean difference as reported (metafor escalc yi, sei)", se_txt.astype(str)
        ).astype(object)
    n_con = out.groupby(KEY, dropna=False)["study_id"].transform("size").to_numpy()
    out["derivation"] = join_text(
        [head, text_if(lib, "; sign flipped (lower score is better)")], sep=""
    )
    r_flag = np.char.add(
        np.where(np.isnan(r_rep), "crossover_r_assumed=", "crossover_r_reported="), r_str
    )
    out["flags"] = join_text(
        [
            np.full(len(c), "precomputed_contrast", dtype=object),
            text_if(is_d, "d_converted_to_g"),
            text_if(is_t, "g_from_t"),
            text_if(vi_from_n, "variance_from_effect_and_n"),
            text_if(md_par & std, "g_from_md_se"),
            text_if(md_xo & std, np.char.add("crossover_md_to_smd_r=", r_str)),
            text_if(md_xo & std, r_flag),
            text_if(ci_md, "md_se_from_ci"),
            text_if(n_differs, "crossover_n_differs_min_used"),
            text_if(n_con > 1, "multiple_contrasts_shared_control"),
        ]
    )
    return out
