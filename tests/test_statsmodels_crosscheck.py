"""Our engine beside statsmodels' ``combine_effects`` (DL and PM), on metadat's dat.bcg.

DL is closed-form: both libraries must agree to rounding. For PM the two differ by design:
metafor (and, to match it, this package) stops R's uniroot at tol = eps^0.25, while statsmodels
iterates to its own tolerance. The test records that gap so nobody "fixes" one into the other.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import optimize
from statsmodels.stats.meta_analysis import combine_effects

from timecourse_meta import fit_random_effects
from timecourse_meta.models.tau2 import qe

GOLDEN = Path(__file__).parent / "fixtures" / "metafor" / "rma_golden.json"


@pytest.fixture(scope="module")
def bcg():
    data = json.loads(GOLDEN.read_text())["datasets"]["bcg_RR"]
    return np.asarray(data["yi"], float), np.asarray(data["vi"], float)


def test_dl_matches_statsmodels(bcg):
    yi, vi = bcg
    ours = fit_random_effects(yi, vi, method="DL")
    sm = combine_effects(yi, vi, method_re="dl")
    assert ours.tau2 == pytest.approx(sm.tau2, rel=1e-12)
    assert ours.estimate == pytest.approx(sm.mean_effect_re, rel=1e-12)
    assert ours.se == pytest.approx(sm.sd_eff_w_re, rel=1e-12)


def test_pm_tolerance_gap(bcg):
    yi, vi = bcg
    X = np.ones((yi.size, 1))
    exact = optimize.brentq(lambda t: qe(t, yi, vi, X) - (yi.size - 1), 0, 100, xtol=1e-15)
    sm = combine_effects(yi, vi, method_re="pm").tau2
    ours = fit_random_effects(yi, vi, method="PM").tau2
    assert sm == pytest.approx(exact, rel=1e-9)  # statsmodels iterates to the root
    assert abs(ours - exact) < 1.3e-4  # metafor's uniroot tolerance, eps^0.25
    assert abs(ours - exact) / exact > 1e-6  # ...so metafor's value is not the exact root here
