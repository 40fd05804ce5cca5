"""The working frame of the effect-size stage and the checks on its rows, before any pairing.

``prepare_rows`` turns validated extraction-sheet rows into the working frame that ``arm_pairs``,
``contrast_effects`` and ``comparisons`` share (parsed columns prefixed with "_", ``_reason``,
``_row_id``; see ``row_frame``). ``check_rows`` gives each row that cannot be used its first
exclusion reason (rule 1 of ``comparisons``: unknown codes, missing numbers, an SD that cannot
be recovered, a precomputed contrast that cannot be converted), ``dedup_rows`` resolves
duplicate rows of one arm (rule 2) and ``comparison_ids`` names the comparisons. Split from
``comparisons`` so that module holds only the assembly of effects and exclusions; both
``compute_effects`` and ``compute_proportions`` start here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from timecourse_meta.effects.row_frame import (
    BINARY,
    KEY,
    blank,
    crossover_n,
    flag_rows,
    paired_contrast,
)
from timecourse_meta.effects.sd_recovery import recover_sd
from timecourse_meta.schema import (
    ATTRIBUTE_COLUMNS,
    R_C_DN,
    R_C_MD_CI_N,
    R_C_MD_N,
    R_C_MD_UNC,
    R_C_NONE,
    R_C_OUTCOME,
    R_C_TN,
    R_C_TYPE,
    R_C_VAR,
    R_DESIGN,
    R_DUP,
    R_EVENTS,
    R_EVENTS_RANGE,
    R_KEYS,
    R_KIND,
    R_MEAN,
    R_N,
    R_OUTCOME,
    R_PERIOD,
    R_R,
    R_ROLE,
    R_SD,
    R_SUPERSEDED,
    R_TIME,
)

__all__ = ["check_rows", "comparison_ids", "dedup_rows", "prepare_rows"]


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


def _row_label(rows: pd.DataFrame) -> pd.Series:
    """Readable `file:line` of each row (for the `row_ids` rendering only; never parsed)."""
    row = rows["source_row"]
    num = pd.to_numeric(row, errors="coerce")
    whole = num.notna() & (num == np.floor(num))
    text = row.astype(str).where(~whole, num.where(whole, 0).astype("int64").astype(str))
    return rows["source_file"].astype(str) + ":" + text


def prepare_rows(rows: pd.DataFrame, lower_is_better_default: bool) -> pd.DataFrame:
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
    # a row's id is its position here; (source_file, source_row) must identify it uniquely
    df["_row_label"] = _row_label(df)
    dup = df[["source_file", "source_row"]].astype(str).duplicated(keep=False)
    if dup.any():
        raise ValueError(f"source_file:source_row not unique: {sorted(set(df['_row_label'][dup]))}")
    df["_row_id"] = np.arange(len(df), dtype=np.int64)
    lib = df["_lower_is_better"]
    df["_lib"] = np.where(
        lib.isin(["yes", "true", "1"]),
        True,
        np.where(lib.isin(["no", "false", "0"]), False, lower_is_better_default),
    )
    df["_kind"] = np.where(df["_outcome"] == "score", df["_stat_kind"], "")
    df["_reason"] = pd.Series(pd.NA, index=df.index, dtype=object)
    return df


def check_rows(df: pd.DataFrame, score_measure: str = "SMD") -> None:
    role, out = df["_arm_role"], df["_outcome"]
    arm = role.isin(["treatment", "control"])
    score, binary = out == "score", out.isin(BINARY)
    flag_rows(df, blank(df["study_id"]) | blank(df["arm"]) | blank(df["timepoint"]), R_KEYS)
    flag_rows(df, ~role.isin(["treatment", "control", "contrast"]), R_ROLE)
    flag_rows(df, ~out.isin(["score", *BINARY]), R_OUTCOME)
    flag_rows(df, ~df["_design"].isin(["parallel", "crossover"]), R_DESIGN)
    flag_rows(df, (df["_design"] == "crossover") & ~df["_period"].isin(["all", "first"]), R_PERIOD)
    flag_rows(df, df["_time_hours"].isna(), R_TIME)
    flag_rows(df, df["_r_within"].abs() > 1, R_R)
    # arm rows
    flag_rows(df, arm & ~(df["_n"] > 0), R_N)
    flag_rows(df, arm & score & ~df["_stat_kind"].isin(["final", "change"]), R_KIND)
    flag_rows(df, arm & score & df["_mean"].isna(), R_MEAN)
    flag_rows(df, arm & binary & df["_events"].isna(), R_EVENTS)
    flag_rows(df, arm & binary & ((df["_events"] < 0) | (df["_events"] > df["_n"])), R_EVENTS_RANGE)
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
    flag_rows(df, cand & ~np.isfinite(sd), R_SD)
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
    sizes_ok = np.where(paired_contrast(df), crossover_n(df) > 0, has_nn)
    flag_rows(df, con & ~score, R_C_OUTCOME)
    flag_rows(df, con & has_eff & ~etype.isin(["g", "d", "md"]), R_C_TYPE)
    if score_measure == "MD":  # the MD itself needs no sizes; the t quantile of a CI does
        has_var = df["_effect_var"].notna() | df["_effect_se"].notna()
        flag_rows(df, md & ~sizes_ok & ~has_var, R_C_MD_CI_N)
    flag_rows(df, md & ~sizes_ok & (score_measure != "MD"), R_C_MD_N)
    flag_rows(df, md & ~has_unc, R_C_MD_UNC)
    flag_rows(df, con & ~has_eff & df["_t_stat"].isna(), R_C_NONE)
    flag_rows(df, con & ~has_eff & ~has_nn, R_C_TN)
    flag_rows(df, con & has_eff & (etype == "d") & ~has_nn, R_C_DN)
    flag_rows(df, con & has_eff & (etype == "g") & ~has_unc & ~has_nn, R_C_VAR)


def dedup_rows(df: pd.DataFrame, mask: np.ndarray) -> None:
    """Among candidate rows in `mask`: primary beats secondary; remaining duplicates all go."""
    live = mask & df["_reason"].isna().to_numpy()
    sub = df.loc[live]
    key = [*KEY, "_arm_role", "arm", "_kind"]
    size = sub.groupby(key, dropna=False)["_row_id"].transform("size")
    n_primary = (
        (sub["_source_type"] == "primary")
        .groupby([sub[k] for k in key], dropna=False)
        .transform("sum")
    )
    beaten = (size > 1) & (n_primary > 0) & (sub["_source_type"] != "primary")
    flag_rows(df, df.index.isin(beaten[beaten].index), R_SUPERSEDED)
    live = mask & df["_reason"].isna().to_numpy()
    sub = df.loc[live]
    size = sub.groupby(key, dropna=False)["_row_id"].transform("size")
    flag_rows(df, df.index.isin(size[size > 1].index), R_DUP)


def comparison_ids(df: pd.DataFrame) -> pd.Series:
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
