"""Subgroup analysis: pooled estimates per subgroup and the test for subgroup differences.

Two ways of handling tau^2, both as shown in the metafor documentation
(metafor-project.org, "Comparing estimates of independent meta-analyses or subgroups"):

* ``tau2="separate"``: a random-effects model per subgroup, each with its own tau^2. Subgroup
  differences are tested by fitting a fixed-effect model to the m subgroup estimates with their
  standard errors, ``rma(yi=estimates, sei=ses, method="FE")``, and using its heterogeneity
  statistic Q_between (chi-square, m - 1 df).
* ``tau2="common"``: one meta-regression with the subgroup as a categorical moderator (dummy
  coding against the first level), hence one tau^2 for all subgroups. Subgroup differences are
  tested by the omnibus moderator test Q_M (chi-square, m - 1 df; under Knapp-Hartung the F
  statistic Q_M / (m - 1) on m - 1 and k - m df, as metafor reports). The per-subgroup estimates
  are the cell means of that model, b_1 and b_1 + b_j, with variances from its vcov.

Within-subgroup heterogeneity Q_within = sum of the subgroups' Q (k - m df) is the QE of the
moderator model, so it is the same in both modes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from timecourse_meta.diagnostics.influence import (
    as_study_arrays,
    fit_pooled,
    pooled_row,
)
from timecourse_meta.distributions import chi2_sf, norm_isf, norm_sf, t_isf, t_sf
from timecourse_meta.models.rma import fit_meta_regression, fit_random_effects
from timecourse_meta.schema import FIT_COLUMNS

__all__ = ["SubgroupResult", "subgroup_analysis"]


@dataclass(frozen=True)
class SubgroupResult:
    """Per-subgroup pooled rows and the test for subgroup differences.

    ``subgroups`` has one row per level (index ``group``): k, estimate, se, stat, df, pval,
    ci_low, ci_high, tau2 and, for tau2="separate", also Q, Q_df, Q_p, I2, H2 of that subgroup.
    ``between_*`` is the test for subgroup differences (``between_dist`` "chisq" or "F";
    ``between_df2`` is the denominator df of the F test, else None). ``tau2``, ``I2``, ``H2`` and
    ``R2`` describe the common-tau^2 moderator model (None for "separate").
    """

    tau2_mode: str
    method: str
    test: str
    level: float
    levels: tuple[str, ...]
    subgroups: pd.DataFrame
    between_stat: float
    between_df: int
    between_df2: int | None
    between_p: float
    between_dist: str
    within_Q: float
    within_df: int
    within_p: float
    tau2: float | None = None
    I2: float | None = None
    H2: float | None = None
    R2: float | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)


def _levels(groups: ArrayLike | pd.Series, k: int) -> tuple[np.ndarray, list[str]]:
    """Group labels as strings and their level order.

    A pandas Categorical keeps its category order (unused categories dropped, as R's
    ``factor()``); anything else is sorted, which matches R's factor levels in the C locale.
    """
    g = pd.Series(groups).reset_index(drop=True)
    if len(g) != k:
        raise ValueError(f"groups has length {len(g)}, expected {k}")
    if g.isna().any():
        missing = np.flatnonzero(g.isna().to_numpy()).tolist()
        raise ValueError(f"groups missing at positions {missing}")
    if isinstance(g.dtype, pd.CategoricalDtype):
        present = set(g.astype(str))
        levels = [str(c) for c in g.cat.categories if str(c) in present]
    else:
        levels = sorted(set(g.astype(str)))
    if len(levels) < 2:
        raise ValueError("subgroup analysis needs at least two groups")
    return g.astype(str).to_numpy(), levels


def _separate(
    y: np.ndarray, v: np.ndarray, g: np.ndarray, levels: list[str],
    method: str, test: str, level: float,
) -> SubgroupResult:  # fmt: skip
    log: list[str] = []
    fits = [
        fit_pooled(y[g == lv], v[g == lv], method=method, test=test, level=level) for lv in levels
    ]
    for lv, f in zip(levels, fits, strict=True):
        log.extend(f"subgroup {lv!r}: {w}" for w in f.warnings)
    rows = pd.DataFrame(
        [pooled_row(f) for f in fits],
        columns=list(FIT_COLUMNS),
        index=pd.Index(levels, name="group"),
    )
    rows.insert(0, "k", [f.k for f in fits])
    rows.insert(4, "df", pd.array([f.df for f in fits], dtype="Int64"))
    rows.insert(rows.columns.get_loc("Q") + 1, "Q_df", [f.Q_df for f in fits])

    # test for subgroup differences: FE model of the subgroup estimates, sei = their SEs
    between = fit_random_effects(rows["estimate"], rows["se"] ** 2, method="FE", test="z")
    q_within = float(rows["Q"].sum())
    df_within = int(rows["Q_df"].sum())
    return SubgroupResult(
        tau2_mode="separate", method="/".join(dict.fromkeys(f.method for f in fits)),
        test=test, level=level, levels=tuple(levels),
        subgroups=rows, between_stat=float(between.Q), between_df=int(between.Q_df),
        between_df2=None, between_p=float(between.Q_p), between_dist="chisq",
        within_Q=q_within, within_df=df_within, within_p=float(chi2_sf(q_within, df_within)),
        warnings=tuple(log),
    )  # fmt: skip


def _common(
    y: np.ndarray, v: np.ndarray, g: np.ndarray, levels: list[str],
    method: str, test: str, level: float,
) -> SubgroupResult:  # fmt: skip
    m = len(levels)
    dummies = (g[:, None] == np.asarray(levels)[None, 1:]).astype(float)
    X = np.column_stack([np.ones(y.size), dummies])
    reg = fit_meta_regression(y, v, X, method=method, test=test, level=level)
    # cell means: first level = b_1, level j = b_1 + b_j
    L = np.column_stack([np.ones(m), np.vstack([np.zeros(m - 1), np.eye(m - 1)])])
    est = L @ reg.beta
    se = np.sqrt(np.einsum("ij,jk,ik->i", L, reg.vcov, L))
    with np.errstate(divide="ignore", invalid="ignore"):  # Knapp-Hartung factor 0: SEs are 0
        stat = est / se
    if reg.df is not None:
        pval = 2 * t_sf(np.abs(stat), reg.df)
        crit = float(t_isf((1 - level) / 2, reg.df))
    else:
        pval = 2 * norm_sf(np.abs(stat))
        crit = float(norm_isf((1 - level) / 2))
    rows = pd.DataFrame(
        {
            "k": [int(np.sum(g == lv)) for lv in levels],
            "estimate": est, "se": se, "stat": stat,
            "df": pd.array([reg.df] * m, dtype="Int64"), "pval": pval,
            "ci_low": est - crit * se, "ci_high": est + crit * se, "tau2": reg.tau2,
        },
        index=pd.Index(levels, name="group"),
    )  # fmt: skip
    qm_df, qm_df2 = reg.QM_df
    return SubgroupResult(
        tau2_mode="common", method=reg.method, test=test, level=level, levels=tuple(levels),
        subgroups=rows, between_stat=float(reg.QM), between_df=int(qm_df),
        between_df2=None if qm_df2 is None else int(qm_df2), between_p=float(reg.QM_p),
        between_dist="chisq" if qm_df2 is None else "F", within_Q=float(reg.QE),
        within_df=int(reg.QE_df), within_p=float(reg.QE_p), tau2=float(reg.tau2),
        I2=float(reg.I2), H2=float(reg.H2), R2=None if reg.R2 is None else float(reg.R2),
        warnings=tuple(reg.warnings),
    )  # fmt: skip


def subgroup_analysis(
    yi: ArrayLike,
    vi: ArrayLike,
    groups: ArrayLike | pd.Series | Sequence[object],
    method: str | Sequence[str] = "REML",
    test: str = "z",
    tau2: str = "separate",
    level: float = 0.95,
) -> SubgroupResult:
    """Pool each subgroup and test for subgroup differences (see the module docstring).

    ``tau2="separate"`` fits each subgroup on its own (a single-study subgroup is reported as
    the study itself, z test, as metafor's k = 1 rule); ``tau2="common"`` fits one moderator
    model with a shared tau^2 (needs k > m).
    """
    if tau2 not in ("separate", "common"):
        raise ValueError(f"tau2 must be 'separate' or 'common', got {tau2!r}")
    y, v = as_study_arrays(yi, vi, min_k=2)
    g, levels = _levels(groups, y.size)
    fit = _separate if tau2 == "separate" else _common
    return fit(y, v, g, levels, method, test, level)
