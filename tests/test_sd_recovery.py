"""SD recovery from SE or CI (Cochrane Handbook §6.5.2.2), hand-checked."""

from __future__ import annotations

import numpy as np
import pytest

from timecourse_meta.effects.sd_recovery import (
    LABEL_NONE,
    LABEL_REPORTED,
    LABEL_SE,
    recover_sd,
    sd_from_ci,
    sd_from_se,
)

# quantiles used below (scipy): t_{24,.975} = 2.0638985616280245, t_{58,.975} = 2.0017174841452356,
# z_{.975} = 1.959963984540054, z_{.95} = 1.6448536269514722


def test_sd_from_se() -> None:
    # SE 2, n 25 -> 2 * 5 = 10; SE 1.5, n 16 -> 1.5 * 4 = 6
    res = sd_from_se([2.0, 1.5], [25, 16])
    np.testing.assert_allclose(res.sd, [10.0, 6.0], rtol=1e-15)
    assert res.method.tolist() == [LABEL_SE, LABEL_SE] == ["SD from SE x sqrt(n)"] * 2


def test_sd_from_ci_t() -> None:
    # n = 25, 95% CI (10, 18.2556): sqrt(25) * 8.2556 / (2 * 2.0638985616280245)
    # = 5 * 8.2556 / 4.127797123256049 = 10.000006969...
    res = sd_from_ci([10.0], [18.2556], [25], dist="t")
    np.testing.assert_allclose(res.sd, 10.000006969198981, rtol=1e-12)
    assert res.method.tolist() == ["SD from 95% CI (t, df=n-1)"]


def test_sd_from_ci_z() -> None:
    # n = 100, 95% CI (50, 53.92): 10 * 3.92 / (2 * 1.959963984540054) = 10.000183755723219
    res = sd_from_ci([50.0], [53.92], [100], dist="z")
    np.testing.assert_allclose(res.sd, 10.000183755723219, rtol=1e-12)
    assert res.method.tolist() == ["SD from 95% CI (z)"]


def test_sd_from_ci_other_level() -> None:
    # n = 100, 90% CI (50, 53.29): 10 * 3.29 / (2 * 1.6448536269514722) = 10.0008904...
    res = sd_from_ci([50.0], [53.29], [100], level=0.9, dist="z")
    np.testing.assert_allclose(res.sd, 10 * 3.29 / (2 * 1.6448536269514722), rtol=1e-12)
    assert res.method.tolist() == ["SD from 90% CI (z)"]


def test_default_rule_t_below_60_else_z() -> None:
    # n = 59 -> t with 58 df: sqrt(59) * 4 / (2 * 2.0017174841452356) = 7.6817...
    # n = 60 -> z: sqrt(60) * 4 / (2 * 1.959963984540054) = 7.9038...
    res = sd_from_ci([0.0, 0.0], [4.0, 4.0], [59, 60])
    np.testing.assert_allclose(
        res.sd,
        [np.sqrt(59) * 4 / (2 * 2.0017174841452356), np.sqrt(60) * 4 / (2 * 1.959963984540054)],
        rtol=1e-12,
    )
    assert res.method.tolist() == ["SD from 95% CI (t, df=n-1)", "SD from 95% CI (z)"]


def test_sd_from_ci_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        sd_from_ci(5.0, 4.0, 10)
    with pytest.raises(ValueError):
        sd_from_ci(4.0, 5.0, 10, dist="normal")
    with pytest.raises(ValueError):
        sd_from_se(-1.0, 10)


def test_recover_sd_precedence() -> None:
    nan = np.nan
    # row 0: SD reported (SE and CI ignored); row 1: SE 2, n 25 -> 10; row 2: CI t as above;
    # row 3: nothing -> NaN with an explicit label; row 4: CI with missing level -> 95% z (n=100)
    res = recover_sd(
        sd=[7.0, nan, nan, nan, nan],
        se=[1.0, 2.0, nan, nan, nan],
        ci_low=[0.0, 0.0, 10.0, nan, 50.0],
        ci_high=[1.0, 1.0, 18.2556, nan, 53.92],
        n=[25, 25, 25, 25, 100],
        ci_level=[0.95, 0.95, 0.95, nan, nan],
    )
    np.testing.assert_allclose(
        res.sd, [7.0, 10.0, 10.000006969198981, nan, 10.000183755723219], rtol=1e-12
    )
    assert res.method.tolist() == [
        LABEL_REPORTED,
        LABEL_SE,
        "SD from 95% CI (t, df=n-1)",
        LABEL_NONE,
        "SD from 95% CI (z)",
    ]
