"""forest_data._arm_means (vectorised) equals the row-by-row lookup it replaced (small cases)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from timecourse_meta.effects.sd_recovery import recover_sd
from timecourse_meta.pipeline.forest_data import ArmLookup, _arm_means


def _slow_sd(arm: pd.Series) -> float:
    num = [pd.to_numeric(pd.Series([arm.get(c)]), errors="coerce").iloc[0]
           for c in ("sd", "se", "ci_low", "ci_high", "n", "ci_level")]  # fmt: skip
    level = num[5] if pd.notna(num[5]) else 0.95
    return float(recover_sd(*([v] for v in num[:5]), ci_level=[level]).sd[0])


def _slow_arm_means(sel: pd.DataFrame, arms: pd.DataFrame) -> pd.DataFrame:
    """The former implementation: one lookup per effect row."""
    out = pd.DataFrame(np.nan, index=sel.index, columns=["mean_t", "sd_t", "mean_c", "sd_c"])
    key = arms["source_file"].astype(str) + ":" + arms["source_row"].astype(str)
    lookup = arms.assign(_key=key).drop_duplicates("_key").set_index("_key")
    for idx, ids in sel["row_ids"].items():
        rows = [lookup.loc[r] for r in str(ids).split(";") if r in lookup.index]
        roles = {str(r["arm_role"]): r for r in rows}
        if len(rows) != 2 or set(roles) != {"treatment", "control"}:
            continue
        vals = [v for a in ("treatment", "control") for v in (roles[a]["mean"], _slow_sd(roles[a]))]
        if all(pd.notna(v) for v in vals):
            out.loc[idx] = [float(v) for v in vals]
    return out


def test_arm_means_equals_row_by_row_lookup() -> None:
    nan = np.nan
    arms = pd.DataFrame({
        "source_file": ["s.csv"] * 9,
        "source_row": [2, 3, 4, 5, 6, 7, 8, 9, 9],  # row 9 twice: the first one counts
        "arm_role": ["treatment", "control", "treatment", "control", "treatment", "treatment",
                     "control", None, "control"],
        "mean": [10.0, 12.5, 9.0, nan, 8.0, 7.5, 11.0, 3.0, 4.0],
        "sd": [2.0, nan, nan, 3.0, 1.0, 1.0, nan, 1.0, 1.0],
        "se": [nan, 0.5, nan, nan, nan, nan, nan, nan, nan],
        "ci_low": [nan, nan, 8.0, nan, nan, nan, 10.0, nan, nan],
        "ci_high": [nan, nan, 10.0, nan, nan, nan, 12.0, nan, nan],
        "ci_level": [nan, nan, 0.9, nan, nan, nan, nan, nan, nan],
        "n": [20, 22, 15, 15, 10, 10, 12, 5, 5],
    })  # fmt: skip
    sel = pd.DataFrame(
        {
            "row_ids": [
                "s.csv:2;s.csv:3",  # SD reported / from SE
                "s.csv:4;s.csv:8",  # SD from CI (90 %) and from CI (95 %)
                "s.csv:4;s.csv:5",  # control mean missing -> NaN
                "s.csv:6;s.csv:7",  # two treatment arms -> NaN
                "s.csv:2;s.csv:3;s.csv:8",  # three rows -> NaN
                "s.csv:2;other.csv:3",  # a row not in the sheet -> one row -> NaN
                "s.csv:6;s.csv:9",  # duplicated key: first row (role None) -> NaN
                None,
                "s.csv:3;s.csv:2",  # order does not matter
            ]
        },
        index=[10, 11, 12, 13, 14, 15, 16, 17, 18],
    )
    fast, slow = _arm_means(sel, arms), _slow_arm_means(sel, arms)
    pd.testing.assert_frame_equal(fast, slow)
    assert fast.loc[[10, 11, 18]].notna().all().all()
    assert fast.loc[[12, 13, 14, 15, 16, 17]].isna().all().all()
    assert _arm_means(sel, None).isna().all().all()
    # the lookup built once for every window gives the same means as the rows themselves
    pd.testing.assert_frame_equal(_arm_means(sel, ArmLookup.of(arms)), fast)
    assert _arm_means(sel, arms.iloc[:0]).isna().all().all()
