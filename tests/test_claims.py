"""Claims check: verdicts, k, the numbers behind them, and config validation."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml
from pipeline_helpers import shipped_config

from timecourse_meta.errors import ConfigError
from timecourse_meta.pipeline.claims import (
    CLAIM_COLUMNS,
    MV_CLAIM_COLUMNS,
    check_claims,
    normalise_level,
)
from timecourse_meta.pipeline.claims_config import validate_claims

ROOT = Path(__file__).resolve().parents[1]
WINDOWS = ["4h", "24h", "3d", "7d", "14d"]


def pooled_row(
    tp: str, k: int, est: float, lo: float, hi: float, moderator: str = "all", level: str = "all"
) -> dict:
    sub = "all" if moderator == "all" else f"{moderator}={level}"
    return {
        "outcome": "score",
        "measure": "SMD",
        "timepoint": tp,
        "subgroup": sub,
        "moderator": moderator,
        "level": level,
        "k": k,
        "estimate": est,
        "ci_low": lo,
        "ci_high": hi,
    }


@pytest.fixture
def pooled() -> pd.DataFrame:
    return pd.DataFrame([
        pooled_row("4h", 3, 0.64, 0.22, 1.06),
        pooled_row("24h", 7, 0.62, 0.33, 0.90),
        pooled_row("3d", 2, 0.50, -6.3, 7.3),
        pooled_row("7d", 1, 0.25, -0.39, 0.90),
        pooled_row("14d", 0, math.nan, math.nan, math.nan),
        pooled_row("24h", 4, 0.92, 0.73, 1.11, "trd", "yes"),
        pooled_row("24h", 2, 0.30, 0.04, 0.56, "trd", "no"),
        pooled_row("24h", 1, 0.30, 0.04, 0.56, "population", "bipolar"),
        pooled_row("14d", 0, math.nan, math.nan, math.nan, "population", "bipolar"),
    ])  # fmt: skip


def one(claims: list[dict], pooled: pd.DataFrame, **kw: object) -> pd.Series:
    table = check_claims(claims, pooled, WINDOWS, **kw)
    extra = list(MV_CLAIM_COLUMNS) if kw.get("multivariate") is not None else []
    assert list(table.columns) == list(CLAIM_COLUMNS) + extra
    return table.iloc[0]


def claim(**check: object) -> dict:
    return {"id": "c1", "claim": "words", "source": "a review", **check}


def test_ci_excludes_zero(pooled: pd.DataFrame) -> None:
    row = one([claim(check="ci_excludes_0", window="24h", direction="positive")], pooled)
    assert row["verdict"] == "supported" and row["k"] == 7
    assert (row["estimate"], row["ci_low"], row["ci_high"]) == (0.62, 0.33, 0.90)
    assert row["details"] == "24h: 0.620 [0.330, 0.900], k = 7"
    assert row["windows"] == "24h"
    row = one([claim(check="ci_excludes_0", window="3d")], pooled)
    assert row["verdict"] == "not supported" and row["k"] == 2
    row = one([claim(check="ci_excludes_0", window="24h", direction="negative")], pooled)
    assert row["verdict"] == "not supported"


def test_k_below_two_is_not_testable(pooled: pd.DataFrame) -> None:
    row = one([claim(check="ci_excludes_0", window="7d")], pooled)
    assert row["verdict"] == "not testable" and row["k"] == 1
    assert row["estimate"] == 0.25  # the single study's numbers are still shown
    row = one([claim(check="ci_includes_0", window="14d")], pooled)
    assert row["verdict"] == "not testable" and row["k"] == 0
    assert row["details"] == "14d: k = 0"


def test_ci_includes_zero(pooled: pd.DataFrame) -> None:
    assert one([claim(check="ci_includes_0", window="3d")], pooled)["verdict"] == "supported"
    assert one([claim(check="ci_includes_0", window="4h")], pooled)["verdict"] == "not supported"


def test_largest_of_windows(pooled: pd.DataFrame) -> None:
    # 24h (0.62) vs windows with k >= 2: 4h (0.64), 3d (0.50) -> 4h is larger
    row = one([claim(check="largest_of_windows", window="24h")], pooled)
    assert row["verdict"] == "not supported"
    assert row["details"].endswith("compared with windows with k >= 2: 4h, 3d")
    row = one([claim(check="largest_of_windows", window="4h")], pooled)
    assert row["verdict"] == "supported" and row["k"] == 3
    assert one([claim(check="largest_of_windows", window="7d")], pooled)["verdict"] == (
        "not testable"
    )


def test_all_levels_exclude_zero(pooled: pd.DataFrame) -> None:
    row = one(
        [claim(check="all_ci_exclude_0", window="24h", subgroup="trd", levels=[True, False])],
        pooled,
    )
    assert row["verdict"] == "supported" and row["k"] == 2
    assert row["details"] == (
        "24h trd=yes: 0.920 [0.730, 1.110], k = 4; 24h trd=no: 0.300 [0.040, 0.560], k = 2"
    )
    assert math.isnan(row["estimate"])  # several numbers: see details


def test_all_of_and_missing_subgroup_rows(pooled: pd.DataFrame) -> None:
    spec = claim(all_of=[
        {"check": "ci_excludes_0", "window": "24h", "subgroup": "population",
         "levels": ["bipolar"]},
        {"check": "ci_includes_0", "window": "14d", "subgroup": "population",
         "levels": ["bipolar"]},
    ])  # fmt: skip
    row = one([spec], pooled)
    assert row["verdict"] == "not testable" and row["k"] == 0
    assert row["windows"] == "24h;14d"
    assert " AND " in row["check"]


def test_proportion_overlap() -> None:
    props = pd.DataFrame(
        [
            {
                "outcome": "response",
                "timepoint": "24h",
                "subgroup": "all",
                "moderator": "all",
                "level": "all",
                "k": 6,
                "estimate_prop": 0.479,
                "ci_low_prop": 0.365,
                "ci_high_prop": 0.596,
            }
        ]
    )
    pooled = pd.DataFrame([pooled_row("24h", 7, 0.6, 0.3, 0.9)])
    spec = claim(check="proportion_ci_overlaps", window="24h", outcome="response", range=[0.6, 0.8])
    row = one([spec], pooled, proportions=props)
    # CI [0.365, 0.596] ends below 0.6: no overlap
    assert row["verdict"] == "not supported" and row["k"] == 6
    assert row["details"] == (
        "24h proportion: 0.479 [0.365, 0.596], k = 6; claimed range [0.6, 0.8]"
    )
    spec["range"] = [0.5, 0.8]
    assert one([spec], pooled, proportions=props)["verdict"] == "supported"
    assert one([spec], pooled, proportions=None)["verdict"] == "not testable"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (claim(check="ci_wide", window="24h"), "unknown check"),
        (claim(check="ci_excludes_0", window="2d"), "window '2d' is not a configured window"),
        (claim(check="ci_excludes_0", window="24h", direction="up"), "direction must be"),
        (
            claim(check="ci_excludes_0", window="24h", subgroup="sex", levels=["f"]),
            "subgroup 'sex' is not a configured subgroup",
        ),
        (claim(check="all_ci_exclude_0", window="24h"), "needs subgroup and levels"),
        (claim(check="proportion_ci_overlaps", window="24h", range=[0.8, 0.6]), "range"),
        (
            {"id": "x", "claim": "", "source": "s", "check": "ci_excludes_0", "window": "24h"},
            "needs 'claim'",
        ),
    ],
)
def test_invalid_claims(spec: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_claims([spec], WINDOWS, ["trd"])


def test_duplicate_ids_rejected() -> None:
    spec = claim(check="ci_excludes_0", window="24h")
    with pytest.raises(ConfigError, match="unique id"):
        validate_claims([spec, spec], WINDOWS)


def test_yaml_booleans_map_back() -> None:
    assert yaml.safe_load("[yes, no]") == [True, False]
    assert [normalise_level(v) for v in (True, False, "bipolar")] == ["yes", "no", "bipolar"]


def test_default_claims_match_default_config() -> None:
    config = shipped_config("ketamine")
    claims = yaml.safe_load((ROOT / config["claims_file"]).read_text())["claims"]
    windows = [w["label"] for w in config["windows"]]
    validate_claims(claims, windows, list(config["subgroups"]))
    # the ten claims of the claims.md table, in its order
    assert [c["id"] for c in claims] == [
        "onset_4h",
        "consistent_24h",
        "peak_24h",
        "duration_3d",
        "duration_7d",
        "null_14d",
        "trd_and_nontrd",
        "concomitant_and_free",
        "bipolar",
        "response_60_80",
    ]


# ---- verdicts on the multivariate time-course model ------------------------------------------
def mv_table(status: str = "ok") -> pd.DataFrame:
    """One row per window as timecourse_tables.model_table writes it (numbers arbitrary)."""
    rows = [
        ("4h", 3, 0.48, 0.03, 0.93),
        ("24h", 7, 0.65, 0.37, 0.92),
        ("3d", 2, 0.54, -0.33, 1.41),
        ("7d", 1, 0.34, -0.28, 0.97),
        ("14d", 0, math.nan, math.nan, math.nan),
    ]
    return pd.DataFrame(
        [
            {"outcome": "score", "measure": "SMD", "timepoint": tp, "k": k, "estimate": e,
             "ci_low": lo, "ci_high": hi, "status": status if k else "no data"}
            for tp, k, e, lo, hi in rows
        ]
    )  # fmt: skip


def test_multivariate_columns_added(pooled: pd.DataFrame) -> None:
    table = check_claims(
        [claim(check="ci_excludes_0", window="4h")], pooled, WINDOWS, multivariate=mv_table()
    )
    assert list(table.columns) == list(CLAIM_COLUMNS) + list(MV_CLAIM_COLUMNS)
    row = table.iloc[0]
    assert row["verdict"] == "supported" and row["verdict_multivariate"] == "supported"
    assert (row["k_mv"], row["estimate_mv"], row["ci_low_mv"], row["ci_high_mv"]) == (
        3, 0.48, 0.03, 0.93,
    )  # fmt: skip
    assert row["details_mv"] == "4h: 0.480 [0.030, 0.930], k = 3"


def test_multivariate_verdicts_can_differ(pooled: pd.DataFrame) -> None:
    mv = mv_table()
    # 3d: univariate CI [-6.3, 7.3] and multivariate [-0.33, 1.41] both include 0
    row = one([claim(check="ci_includes_0", window="3d")], pooled, multivariate=mv)
    assert row["verdict"] == row["verdict_multivariate"] == "supported"
    # largest_of_windows at 24h: univariate 0.62 < 0.64 at 4h (not supported); multivariate
    # 0.65 > 0.48 (4h) and 0.54 (3d), the other windows with k >= 2 (supported)
    row = one([claim(check="largest_of_windows", window="24h")], pooled, multivariate=mv)
    assert row["verdict"] == "not supported" and row["verdict_multivariate"] == "supported"
    assert row["details_mv"].endswith("compared with windows with k >= 2: 4h, 3d")
    # k = 1 at 7d: not testable in both
    row = one([claim(check="ci_excludes_0", window="7d")], pooled, multivariate=mv)
    assert row["verdict_multivariate"] == "not testable" and row["k_mv"] == 1
    row = one([claim(check="ci_includes_0", window="14d")], pooled, multivariate=mv)
    assert row["verdict_multivariate"] == "not testable" and row["details_mv"] == "14d: k = 0"


def test_multivariate_not_applicable_to_subgroups_and_proportions(pooled: pd.DataFrame) -> None:
    mv = mv_table()
    spec = claim(check="all_ci_exclude_0", window="24h", subgroup="trd", levels=["yes", "no"])
    row = one([spec], pooled, multivariate=mv)
    assert row["verdict"] == "supported" and row["verdict_multivariate"] == "not applicable"
    assert row["details_mv"] == "model fitted to all studies, not per subgroup"
    assert row["k_mv"] == 0 and math.isnan(row["estimate_mv"])
    # all_of: one condition the model cannot judge makes the claim not applicable
    spec = claim(all_of=[
        {"check": "ci_excludes_0", "window": "24h"},
        {"check": "ci_includes_0", "window": "14d", "subgroup": "population",
         "levels": ["bipolar"]},
    ])  # fmt: skip
    assert one([spec], pooled, multivariate=mv)["verdict_multivariate"] == "not applicable"
    # another outcome than the model's
    spec = claim(check="ci_excludes_0", window="24h", outcome="response", measure="OR")
    row = one([spec], pooled, multivariate=mv)
    assert row["verdict_multivariate"] == "not applicable"
    assert row["details_mv"] == "model fitted to outcome score, not response"


def test_multivariate_model_not_ok_is_not_testable(pooled: pd.DataFrame) -> None:
    for status in ("failed", "not converged", "over-parameterised"):
        row = one(
            [claim(check="ci_excludes_0", window="24h")], pooled, multivariate=mv_table(status)
        )
        assert row["verdict"] == "supported"
        assert row["verdict_multivariate"] == "not testable"
        assert row["details_mv"] == f"multivariate model status: {status}"
