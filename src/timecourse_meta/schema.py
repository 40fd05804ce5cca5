"""Data contracts shared by every stage: column lists, exclusion reasons, verdicts, levels.

The lowest module of the package (it imports nothing from it): each stage imports the columns
it writes and reads from here, so a table's layout is defined once. Stages, in data-flow order:
sheet rows (pipeline.ingest) -> effects (effects.comparisons) -> pooled, subgroup and sensitivity
tables (pipeline.pooling) -> claims (pipeline.claims) -> provenance and row accounting
(pipeline.tables).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the contracts module itself needs no pandas at run time
    import pandas as pd

# --- sheet rows -----------------------------------------------------------------------------
# Trial attributes of a sheet row (subgroup and sensitivity columns; an arm-level minimal sheet
# may lack them and gets "not reported").
TRIAL_ATTRIBUTES: tuple[str, ...] = (
    "population", "trd", "concomitant_ad", "control", "drug", "route", "dose", "scale",
)  # fmt: skip

# --- effect sizes (one row per comparison x outcome x time point) ---------------------------
ATTRIBUTE_COLUMNS: tuple[str, ...] = ("citation", "doi", "pmid", *TRIAL_ATTRIBUTES, "period")
EFFECT_COLUMNS: tuple[str, ...] = (
    "study_id",
    "comparison_id",
    "outcome",
    "timepoint",
    "time_hours",
    "measure",
    "yi",
    "vi",
    "sei",
    "n_treatment",
    "n_control",
    "n_total",
    "design",
    "source_type",
    "derivation",
    "flags",
    "row_ids",
    *ATTRIBUTE_COLUMNS,
    "stat_kind",
)
# Structured provenance of an effect row: a list of {"source_file", "source_row"} records (the
# input rows it was computed from). Kept beside EFFECT_COLUMNS in the parquet tables; `row_ids`
# is only its readable rendering ("file:line;file:line") for CSV and is never parsed back.
SOURCE_ROWS = "source_rows"
EXCLUSION_COLUMNS: tuple[str, ...] = (
    "source_file",
    "source_row",
    "study_id",
    "arm",
    "timepoint",
    "outcome",
    "reason",
)
PROPORTION_COLUMNS: tuple[str, ...] = (
    "study_id",
    "comparison_id",
    "arm",
    "outcome",
    "timepoint",
    "time_hours",
    "measure",
    "events",
    "n",
    "proportion",
    "yi",
    "vi",
    "sei",
    "design",
    "source_type",
    "derivation",
    "flags",
    "row_ids",
    *ATTRIBUTE_COLUMNS,
)

# Exclusion reasons (plain English; tests match on these).
R_ROLE = "arm_role must be treatment, control or contrast"
R_OUTCOME = "outcome must be score, response or remission"
R_DESIGN = "design must be parallel or crossover"
R_PERIOD = "crossover trial without period all or first"
R_KEYS = "study_id, arm or timepoint missing"
R_TIME = "time_hours missing"
R_N = "n missing or not positive"
R_KIND = "stat_kind missing (final or change)"
R_MEAN = "mean missing"
R_SD = "SD missing and no SE or CI to recover it"
R_EVENTS = "events missing (needed for response/remission)"
R_EVENTS_RANGE = "events outside 0..n"
R_R = "r_within outside [-1, 1]"
R_C_OUTCOME = "precomputed contrasts are only supported for score outcomes"
R_C_MD_N = "mean difference without arm sizes: cannot standardise"
R_C_MD_CI_N = "mean difference with only a CI and no arm sizes: the t quantile of its SE needs them"
R_C_MD_UNC = "mean difference without SE, variance or CI: cannot standardise"
R_C_TYPE = "effect_type must be g, d or md when effect is given"
R_C_NONE = "contrast row has neither effect nor t_stat"
R_C_TN = "t_stat needs n_treatment and n_control"
R_C_DN = "Cohen's d needs n_treatment and n_control for Hedges' J"
R_C_VAR = "precomputed effect has no variance, SE, CI or arm sizes"
R_C_USED_ARMS = "precomputed contrast not used: arm-level data available for this comparison"
R_SUPERSEDED = "superseded by a primary-source row for the same arm, outcome and time point"
R_DUP = "duplicate rows for the same arm, outcome, time point and stat_kind: cannot choose"
R_MULTI_CTRL = "several control arms at this time point: pairing is ambiguous"
R_NO_CTRL = "treatment arm has no control arm at this time point"
R_NO_USABLE_CTRL = (
    "treatment arm has no usable control arm at this time point "
    "(control row excluded or reports a different stat_kind)"
)
R_NO_TREAT = "control arm has no treatment arm at this time point"
R_NO_USABLE_TREAT = (
    "control arm has no usable treatment arm at this time point "
    "(treatment rows excluded or report a different stat_kind)"
)
R_CHANGE = "change-score row not used: final values available for this comparison"
R_DZ = "double-zero study: no information on the OR (metafor drop00)"
R_C_NOT_MD = (
    "standardised contrast (effect_type g or d, or t_stat) cannot give a raw mean difference "
    "(primary_measure MD): give effect_type md with its SE, variance or CI"
)
# Rows in no window (pipeline.windows); templates filled with str.format.
R_LABEL_NOT_A_WINDOW = "label '{label}' is not a configured window"
R_TIME_IN_NO_WINDOW = "time {time} is in no configured window"
R_NO_TIME = "no time given"
# Row selection before effect sizes (pipeline.windows): baseline rows, crossover periods,
# config exclude_rows and scale_priority. Templates are filled with str.format.
R_BASELINE = "baseline (time <= 0)"
R_SECOND_PERIOD = (
    "crossover second period (after the crossover) not analysed: carry-over; use period "
    "first or all"
)
R_FIRST_PERIOD_ONLY = "crossover period '{period}' not used (config first_period_only: true)"
R_EXCLUDE_ROWS = "excluded by config exclude_rows: {reason}"
R_SCALE = "scale not preferred (scale_priority: {priority}; {chosen} used, not {scale})"
R_NONFINITE = "effect could not be computed (non-finite yi or vi, e.g. zero SDs or n too small)"
# Valid numeric range of sheet values and of effect sizes (docs/extraction_sheet.md): beyond it
# values are typing or unit errors and the pooling arithmetic overflows.
MAX_MAGNITUDE = 1e9
MIN_SPREAD = 1e-6
R_RANGE = (
    f"effect size outside the valid range (|yi| <= {MAX_MAGNITUDE:g}, vi from "
    f"{MIN_SPREAD**2:g} to {MAX_MAGNITUDE**2:g}; e.g. a mean difference of 1e9 over an SD of "
    "1e-6): check the means and SDs of this comparison"
)

# --- model summaries --------------------------------------------------------------------------
# Columns of the diagnostics tables (leave-one-out, cumulative, influence): one fit per row.
FIT_COLUMNS: tuple[str, ...] = (
    "estimate",
    "se",
    "stat",
    "pval",
    "ci_low",
    "ci_high",
    "Q",
    "Q_p",
    "tau2",
    "I2",
    "H2",
)

# --- pooled tables ------------------------------------------------------------------------------
POOLED_COLUMNS: tuple[str, ...] = (
    "outcome",
    "measure",
    "timepoint",
    "subgroup",
    "moderator",
    "level",
    "k",
    "n_participants",
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "pval",
    "tau2",
    "tau2_ci_low",
    "tau2_ci_high",
    "I2",
    "H2",
    "Q",
    "Q_p",
    "pi_low",
    "pi_high",
    "method",
    "test",
    "studies",
    "warnings",
)
SUBGROUP_COLUMNS: tuple[str, ...] = (
    "outcome",
    "measure",
    "timepoint",
    "moderator",
    "levels",
    "k",
    "k_by_level",
    "estimates_by_level",
    "QM",
    "QM_df1",
    "QM_df2",
    "QM_p",
    "tau2_residual",
    "method",
    "test",
    "note",
)
SENSITIVITY_COLUMNS: tuple[str, ...] = (
    "analysis",
    "outcome",
    "measure",
    "timepoint",
    "omitted",
    "k",
    "n_participants",
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "pval",
    "tau2",
    "I2",
    "method",
    "test",
    "studies",
    "warnings",
)

# Study weights of each pooled fit (pipeline.pooling), read by the forest plots.
WEIGHT_KEYS = ("study_id", "comparison_id", "time_hours", "row_ids")
#: Columns of the study-weights table written next to the pooled table (`pool_timepoints`).
STUDY_WEIGHT_COLUMNS: tuple[str, ...] = (
    "outcome",
    "measure",
    "timepoint",
    "subgroup",
    "moderator",
    "level",
    *WEIGHT_KEYS,
    "weight",
)

#: The subgroup value of a pooled or weight row that pools all studies of its window.
ALL_STUDIES = "all"


def rows_for(
    table: pd.DataFrame,
    outcome: str,
    measure: str,
    timepoint: str | None = None,
    subgroup: str | None = None,
) -> pd.DataFrame:
    """Rows of `table` for one outcome and measure (and window, and subgroup), in table order.

    The key every stage after pooling selects by (effects, pooled and weights tables): one
    implementation, so a figure, a check and a table cannot pick different rows. `timepoint`
    None keeps every window; `subgroup` (e.g. ``ALL_STUDIES``) filters the `subgroup` column of
    pooled and weight tables.
    """
    mask = (table["outcome"] == outcome) & (table["measure"] == measure)
    if timepoint is not None:
        mask &= table["timepoint"] == timepoint
    if subgroup is not None:
        mask &= table["subgroup"] == subgroup
    return table[mask]


def overall_row(
    pooled: pd.DataFrame, outcome: str, measure: str, timepoint: str
) -> pd.Series | None:
    """The pooled row of all studies of one window (None when the table has none)."""
    rows = rows_for(pooled, outcome, measure, timepoint, ALL_STUDIES)
    return rows.iloc[0] if len(rows) else None


# --- multivariate time-course model tables (pipeline.timecourse_tables) ------------------------
MODEL_COLUMNS: tuple[str, ...] = (
    "outcome",
    "measure",
    "timepoint",
    "hours",
    "k",
    "studies",
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "pval",
    "tau2",
    "struct",
    "within",
    "rho",
    "method",
    "converged",
    "status",
    "warnings",
)
CONTRAST_COLUMNS: tuple[str, ...] = (
    "outcome",
    "measure",
    "contrast",
    "type",
    "windows",
    "k",
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "statistic",
    "stat_type",
    "df",
    "pval",
    "struct",
    "within",
    "rho",
    "method",
    "status",
    "warnings",
)
STRUCTURE_COLUMNS: tuple[str, ...] = (
    "outcome",
    "measure",
    "struct",
    "configured",
    "status",
    "converged",
    "loglik",
    "n_params",
    "n_var_params",
    "resid_df",
    "AIC",
    "BIC",
    "AICc",
    "delta_AIC",
    "reduced",
    "LRT",
    "df",
    "pval",
    "tau2",
    "G_rho",
    "within",
    "rho",
    "method",
    "note",
)
RHO_COLUMNS: tuple[str, ...] = (
    "outcome",
    "measure",
    "rho",
    "term_type",
    "term",
    "k",
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "pval",
    "struct",
    "within",
    "method",
    "status",
    "warnings",
)

# --- claims -------------------------------------------------------------------------------------
CHECKS: tuple[str, ...] = (
    "ci_excludes_0",
    "ci_includes_0",
    "largest_of_windows",
    "all_ci_exclude_0",
    "proportion_ci_overlaps",
)
DIRECTIONS: tuple[str, ...] = ("positive", "negative", "any")
SUPPORTED, NOT_SUPPORTED, NOT_TESTABLE = "supported", "not supported", "not testable"
NOT_APPLICABLE = "not applicable"  # multivariate verdict only: the model does not cover it
MIN_K = 2
CLAIM_COLUMNS: tuple[str, ...] = (
    "id",
    "claim",
    "source",
    "check",
    "windows",
    "verdict",
    "k",
    "estimate",
    "ci_low",
    "ci_high",
    "details",
)
MV_CLAIM_COLUMNS: tuple[str, ...] = (
    "verdict_multivariate",
    "k_mv",
    "estimate_mv",
    "ci_low_mv",
    "ci_high_mv",
    "details_mv",
)
MV_CHECKS: tuple[str, ...] = ("ci_excludes_0", "ci_includes_0", "largest_of_windows")
TR_CLAIM_COLUMNS: tuple[str, ...] = (
    "verdict_time_response",
    "estimate_tr",
    "ci_low_tr",
    "ci_high_tr",
    "details_tr",
)


# --- measures -----------------------------------------------------------------------------------
#: Measures compute_effects gives for score outcomes (config primary_measure for scores).
SCORE_MEASURES: tuple[str, ...] = ("SMD", "MD")


def score_measure(primary_measure: str) -> str:
    """The measure of score outcomes for config `primary_measure`: itself when SMD or MD, else
    (OR, RR: a binary primary outcome) SMD."""
    return str(primary_measure) if str(primary_measure) in SCORE_MEASURES else "SMD"


#: Name of each effect measure in tables and figures (yi scale; positive = benefit).
MEASURE_LABELS: dict[str, str] = {
    "SMD": "Hedges' g",
    "MD": "mean difference",
    "OR": "log odds ratio",
    "RR": "log risk ratio",
    "PLO": "logit proportion",
}


def measure_label(measure: str, labels: Mapping[str, object] | None = None) -> str:
    """How a measure is named on axes and in table notes: the config's ``measure_label`` when
    ``labels`` (the config's label keys) sets one, else the measure's name ('SMD' -> "Hedges'
    g", 'MD' -> "mean difference"); an unknown measure is shown as given."""
    given = (labels or {}).get("measure_label")
    return str(given) if given else MEASURE_LABELS.get(str(measure), str(measure))


def normalise_level(value: object) -> str:
    """YAML 1.1 reads unquoted yes/no as booleans: map them back to the sheet's 'yes'/'no'."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


# --- provenance and row accounting ----------------------------------------------------------------
PROVENANCE_COLUMNS: tuple[str, ...] = (
    "study_id",
    "comparison_id",
    "outcome",
    "timepoint",
    "measure",
    "row_id",
    "source_type",
    "value_origin",
    "citation",
    "doi",
    "pmid",
    "source_address",
    "source_locator",
    "source_quote",
    "time_as_reported",
    "arm",
    "arm_role",
    "extraction_note",
)
ACCOUNTING_COLUMNS: tuple[str, ...] = ("source_file", "rows_in", "rows_used", "rows_excluded")

# --- time units -----------------------------------------------------------------------------
# Hours per unit of time: the one conversion table of the package (config `time_unit`, sheet
# `time_unit` columns, display units). Internally every time is in hours (`time_hours`).
# A minute is 1/60 h and a day 24 h (non-SI units accepted for use with the SI, BIPM SI
# Brochure 9th ed., Table 8), a week 7 d = 168 h; a month is a twelfth of the Julian year of
# 365.25 d (the IAU's Julian year): 365.25 d / 12 = 30.4375 d = 730.5 h.
TIME_UNIT_HOURS: dict[str, float] = {"minutes": 1/60, "hours": 1.0, "days": 24.0, "weeks": 168.0, "months": 730.5}  # noqa: E501  # fmt: skip
# Short symbol of each unit in labels ("4 h", "2 wk").
TIME_UNIT_SYMBOLS: dict[str, str] = {
    "minutes": "min",
    "hours": "h",
    "days": "d",
    "weeks": "wk",
    "months": "mo",
}


# ---- living review: the baseline snapshot -------------------------------------------------
#: snapshot table name -> file name in the baseline directory
SNAPSHOT_FILES: dict[str, str] = {
    "claims": "claims.csv",
    "pooled": "pooled_by_timepoint.csv",
    "multivariate": "timecourse_model.csv",
    "time_response": "time_response_summary.csv",
    "rows": "rows.csv",
    "effects": "effects.csv",
    "exclusions": "exclusions.csv",
    "row_accounting": "row_accounting.csv",
    "config": "config.csv",
    "software": "software_versions.csv",
}
#: tables every snapshot has (the multivariate model and time-response summary are optional)
OPTIONAL_TABLES: tuple[str, ...] = ("multivariate", "time_response")
REQUIRED_TABLES: tuple[str, ...] = tuple(k for k in SNAPSHOT_FILES if k not in OPTIONAL_TABLES)
