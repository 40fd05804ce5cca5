"""Contour-enhanced funnel plot geometry and Egger's test per window vs metafor 3.8.1.

Golden values: tests/fixtures/metafor/publication_golden.json (publication_golden.R; keys
``funnel`` and ``regtest``, README_publication.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from timecourse_meta.pipeline.small_study_effects import small_study_table
from timecourse_meta.plots.funnel import VECTOR_POINTS_MAX, funnel_geometry, funnel_plot

GOLDEN = json.loads(
    (Path(__file__).parent / "fixtures" / "metafor" / "publication_golden.json").read_text()
)
FUNNEL = GOLDEN["funnel"]
RTOL = 1e-9


def test_geometry_matches_metafor_refline0() -> None:
    """funnel(res, level = c(90, 95, 99), refline = 0) on dat.bcg (REML fit)."""
    gold = FUNNEL["contour_refline0"]
    geo = funnel_geometry(FUNNEL["data"]["yi"], FUNNEL["sei"], levels=FUNNEL["level_in"])
    assert np.allclose(geo["xlim"], gold["xlim"], rtol=RTOL)
    assert np.allclose(geo["ylim_plot"], gold["ylim_plot"], rtol=RTOL)
    assert np.allclose(geo["y_ticks"], gold["y_ticks"], rtol=RTOL)
    assert np.allclose(geo["ylim_contour"], gold["ylim_contour"], rtol=RTOL)
    for mine, theirs in zip(geo["contours"], gold["contours"], strict=True):
        assert np.isclose(mine["alpha"], theirs["alpha"]) and np.isclose(mine["z"], theirs["z"])
        assert np.allclose(mine["top"], (theirs["left_at_top"], theirs["right_at_top"]))
        assert np.allclose(
            mine["at_max_sei"], (theirs["left_at_max_sei"], theirs["right_at_max_sei"])
        )
        assert np.allclose(mine["at_0"], (theirs["left_at_0"], theirs["right_at_0"]))


def test_drawn_axes_match_metafor_par_usr() -> None:
    """The axes of the drawn figure span R's par("usr") (4% axis extension, reversed y)."""
    gold = FUNNEL["drawn_contour"]
    fig = funnel_plot(FUNNEL["data"]["yi"], FUNNEL["sei"], title="bcg", xlabel="log RR")
    ax = fig.axes[0]
    assert np.allclose(ax.get_xlim(), gold["par_usr"][:2], rtol=RTOL)
    assert np.allclose(ax.get_ylim(), gold["par_usr"][2:], rtol=RTOL)
    points = ax.collections[0].get_offsets()
    assert np.allclose(points[:, 0], gold["returned_x"]) and np.allclose(
        points[:, 1], gold["returned_y"]
    )


def test_many_points_are_small_translucent_and_one_image_in_the_pdf() -> None:
    """Up to VECTOR_POINTS_MAX studies: opaque 18 pt^2 vector markers (metafor-like); above
    it: 2 pt^2 at opacity 0.15 (the density shows), rasterized in the PDF."""
    rng = np.random.default_rng(3)
    for k, size, alpha, raster in ((VECTOR_POINTS_MAX, 18.0, None, False),
                                   (VECTOR_POINTS_MAX + 1, 2.0, 0.15, True)):  # fmt: skip
        se = rng.uniform(0.1, 0.5, k)
        fig = funnel_plot(rng.normal(0.3, se), se, title="t", xlabel="g")
        points = fig.axes[0].collections[0]
        assert len(points.get_offsets()) == k
        assert points.get_sizes().tolist() == [size]
        assert points.get_alpha() == alpha and points.get_rasterized() is raster


def _bcg_effects(timepoint: str = "24h") -> pd.DataFrame:
    data = GOLDEN["regtest"]["datasets"]["bcg_RR"]
    k = len(data["yi"])
    return pd.DataFrame(
        {
            "study_id": [f"s{i:02d}" for i in range(k)],
            "comparison_id": [f"s{i:02d}" for i in range(k)],
            "outcome": "score",
            "measure": "SMD",
            "timepoint": timepoint,
            "yi": data["yi"],
            "vi": data["vi"],
        }
    )


@pytest.mark.parametrize(
    ("case_id", "method", "test"),
    [
        ("bcg_RR/REML/rma/sei", "REML", "z"),
        ("bcg_RR/DL/rma/sei", "DL", "z"),
        ("bcg_RR/REML_knha/rma/sei", "REML", "knha"),
    ],
)
def test_egger_row_matches_metafor_regtest(case_id: str, method: str, test: str) -> None:
    """k = 13 >= 10: the window's row holds regtest(fit0, model = "rma", predictor = "sei")."""
    gold = next(c for c in GOLDEN["regtest"]["cases"] if c["id"] == case_id)
    table = small_study_table(
        _bcg_effects(),
        ["24h"],
        outcome="score",
        measure="SMD",
        method=method,
        test=test,
        method_fallback=None,
    )
    row = table.iloc[0]
    assert row["k"] == 13
    assert np.isclose(row["stat"], gold["stat"], rtol=1e-6)
    assert np.isclose(row["pval"], gold["pval"], rtol=1e-6)
    assert np.isclose(row["limit_estimate"], gold["limit_est"], rtol=1e-6)
    assert np.isclose(row["limit_ci_low"], gold["limit_ci_lb"], rtol=1e-6)
    assert np.isclose(row["limit_ci_high"], gold["limit_ci_ub"], rtol=1e-6)
    assert (row["df"] == gold["dfs"]) if gold["dfs"] is not None else np.isnan(row["df"])


def test_below_ten_studies_the_test_is_not_run() -> None:
    effects = _bcg_effects().iloc[:9]
    row = small_study_table(effects, ["24h", "7d"], outcome="score", measure="SMD").iloc[0]
    assert row["result"] == "not recommended (k < 10; Sterne 2011)"
    assert np.isnan(row["pval"])
    empty = small_study_table(effects, ["24h", "7d"], outcome="score", measure="SMD").iloc[1]
    assert empty["k"] == 0
