"""The batch engine against one-by-one fits with ``fit_random_effects`` (itself golden-tested
against metafor in test_rma_golden.py).

Tolerance: rtol = 1e-10 on every numeric output. The two engines reach each number along
different floating-point paths (QR-based projection vs masked closed-form sums), so where a value
is itself a difference of much larger numbers (tau^2 near 0, I^2 computed from it, an estimate
near 0) a small absolute tolerance is added: 1e-12 for tau^2-scale quantities and 1e-10 for I^2
(per cent). Integer outputs (k, iterations, df), methods, tests and the warning texts must be
identical, and so must the NaN pattern. The same holds under a non-default ``Control``
(metafor's ``control``): tightly converged (threshold/tol 1e-12), tiny iteration limits (rows
fail or CI bounds go NaN identically) and a small ``tau2_max``.
"""

from __future__ import annotations

import subprocess
import textwrap

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from timecourse_meta import RMAResult, fit_random_effects
from timecourse_meta.models.batch import fit_random_effects_batch, fit_random_effects_batch_long
from timecourse_meta.models.control import Control
from timecourse_meta.models.rootfind import zeroin, zeroin_rows
from timecourse_meta.models.tau2 import ConvergenceError

METHODS = ["FE", "DL", "HE", "HS", "SJ", "PM", "EB", "ML", "REML"]
TESTS = ["z", "knha"]
FLOAT_FIELDS = [
    "estimate", "se", "stat", "ci_low", "ci_high", "pval", "tau2", "tau2_se", "tau2_ci_low",
    "tau2_ci_high", "I2", "H2", "Q", "Q_p", "pi_low", "pi_high",
]  # fmt: skip
ATOL = {"I2": 1e-10}
ATOL_DEFAULT = 1e-12
RTOL = 1e-10
# Rows whose sampling variances differ by >= 1e7 (metafor warns "results may be unstable"): there
# the QR path of fit_random_effects loses up to ~1e-9 to cancellation in y'Py, while the batch's
# centred sums stay exact (test_ill_conditioned_row_is_exact_in_batch), so compare at 1e-8.
RTOL_ILL = 1e-8

# metafor's converged variant: rma(..., control = list(threshold = 1e-12, tol = 1e-12,
# maxiter = 1000)) and confint(res, control = list(tol = 1e-12)), as in rma_golden.R.
TIGHT = Control(threshold=1e-12, tol=1e-12, maxiter=1000, ci_tol=1e-12)
# metafor's failure semantics: Fisher scoring that does not converge fails the fit.
STRICT = Control(bracket=False)

# A row on which REML Fisher scoring oscillates and stops after 100 iterations. Found by a random
# search (numpy default_rng(3), k = 8); metafor 3.8.1 stops on it too with "Fisher scoring
# algorithm did not converge" (test_reml_failure_matches_metafor checks this live).
REML_FAIL_Y = [
    0.275129680983907, 0.043252292282341176, 0.30666758135022165, 0.7718196366166816,
    0.1438490110356937, 0.5201227626590615, 0.5351958773578194, 0.2939807468003742,
]  # fmt: skip
REML_FAIL_V = [
    0.03076058129538483, 0.24006113671960655, 0.09016783913545263, 0.2440754167261997,
    0.09882649119853049, 0.01073718655703579, 0.21666050581683086, 0.21984996705318455,
]  # fmt: skip


def make_rows(seed: int = 20240611, n_random: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Rows of different k (NaN padding), incl. k = 1, k = 2, tau^2 = 0 and special cases."""
    rng = np.random.default_rng(seed)
    K = 16
    rows: list[tuple[np.ndarray, np.ndarray]] = []
    for i in range(n_random):
        k = int(rng.integers(2, K + 1)) if i % 6 else 2
        v = rng.uniform(0.01, 0.5, k)
        tau2 = (0.0, 0.04, 0.3)[i % 3]
        rows.append((rng.normal(rng.normal(0.3, 0.5), np.sqrt(v + tau2)), v))
    rows.append((np.array([0.4]), np.array([0.05])))  # k = 1
    rows.append((np.array([-1.2]), np.array([0.3])))  # k = 1
    rows.append((np.full(3, 0.7), np.array([0.1, 0.2, 0.05])))  # identical effects
    rows.append((np.full(6, -0.25), rng.uniform(0.02, 0.2, 6)))  # identical effects
    near = 0.5 + 1e-4 * rng.normal(size=10)  # Q below its lower quantile: CI upper bound at 0
    rows.append((near, np.full(10, 0.2)))
    rows.append((rng.normal(0, 40, 7), rng.uniform(0.01, 0.1, 7)))  # tau^2 in the hundreds
    rows.append((rng.normal(0.2, 0.3, 5), np.array([1e-8, 0.2, 0.3, 0.1, 0.4])))  # v ratio 1e7+
    rows.append((np.array(REML_FAIL_Y), np.array(REML_FAIL_V)))
    Y = np.full((len(rows), K), np.nan)
    V = np.full((len(rows), K), np.nan)
    for i, (y, v) in enumerate(rows):
        Y[i, : y.size], V[i, : v.size] = y, v
    return Y, V


Y, V = make_rows()


def row_of(Y: np.ndarray, V: np.ndarray, i: int) -> tuple[np.ndarray, np.ndarray]:
    keep = ~(np.isnan(Y[i]) & np.isnan(V[i]))
    return Y[i][keep], V[i][keep]


def assert_row_equal(
    ref: RMAResult, batch, i: int, label: str, control: Control | None = None
) -> None:
    """One batch row against the one-by-one fit, field by field.

    Under a root-finding tolerance near rounding level (TIGHT: tol 1e-12) Brent's last steps
    evaluate Q(tau^2) - target where it is a few ulps of Q (|f| ~ 1e-15), and the two
    floating-point paths may disagree on its sign: the PM iteration count may then differ by
    one (the roots still agree far below rtol). Everywhere else the counts must be equal.
    """
    ill = ref.vi.max() / ref.vi.min() >= 1e7
    slack = 1 if control is not None and control.tol < 1e-10 else 0
    assert batch.k[i] == ref.k, label
    assert batch.method[i] == ref.method, label
    assert batch.test[i] == ref.test, label
    assert abs(batch.iterations[i] - ref.iterations) <= slack, f"{label}: iterations"
    assert batch.converged[i], label
    assert batch.warnings[i] == ref.warnings, f"{label}: warnings"
    df = np.nan if ref.df is None else ref.df
    np.testing.assert_equal(batch.df[i], df, err_msg=label)
    assert batch.Q_df[i] == ref.Q_df, label
    for f in FLOAT_FIELDS:
        np.testing.assert_allclose(
            getattr(batch, f)[i], getattr(ref, f), rtol=RTOL_ILL if ill else RTOL,
            atol=ATOL.get(f, ATOL_DEFAULT), err_msg=f"{label}: {f}",
        )  # fmt: skip


def compare_all_rows(method: str, test: str, control: Control | None = None) -> list[int]:
    """Batch vs one-by-one on every row of Y/V; returns the rows that failed in both."""
    res = fit_random_effects_batch(Y, V, method=method, test=test, control=control)
    assert len(res) == Y.shape[0]
    failed = []
    for i in range(Y.shape[0]):
        y, v = row_of(Y, V, i)
        label = f"{method}/{test}/{control}/row {i} (k={y.size})"
        try:
            ref = fit_random_effects(y, v, method=method, test=test, control=control)
        except ConvergenceError as err:
            failed.append(i)
            assert not res.converged[i], label
            assert res.warnings[i][0] == str(err), label
            assert np.isnan(res.estimate[i]) and np.isnan(res.tau2[i]), label
            continue
        assert_row_equal(ref, res, i, label, control)
    return failed


@pytest.mark.parametrize("test", TESTS)
@pytest.mark.parametrize("method", METHODS)
def test_batch_equals_one_by_one(method: str, test: str) -> None:
    # Default Control(bracket=True): the REML oscillation row is solved by bracketing.
    assert compare_all_rows(method, test) == []
    # metafor's behaviour (bracket=False): only the oscillation row fails, only for REML/ML/EB.
    n_failed = len(compare_all_rows(method, test, STRICT))
    assert n_failed <= 1
    if method == "REML":
        assert n_failed == 1


@pytest.mark.parametrize("test", TESTS)
@pytest.mark.parametrize("method", ["DL", "PM", "EB", "ML", "REML"])
def test_batch_equals_one_by_one_tight_control(method: str, test: str) -> None:
    """Converged to 1e-12 (fit and tau^2 CI), both engines still agree row by row."""
    failed = compare_all_rows(method, test, TIGHT)
    # nothing fails: even the REML row that oscillates past 100 iterations settles within 1000
    assert failed == []


@pytest.mark.parametrize(
    ("method", "control"),
    [("REML", Control(maxiter=3, ci_maxiter=4, bracket=False)),
     ("EB", Control(maxiter=2, bracket=False)),
     ("PM", Control(maxiter=5, ci_maxiter=6)), ("PM", Control(tau2_max=2.0)),
     ("DL", Control(tau2_max=2.0))],
)  # fmt: skip
def test_batch_equals_one_by_one_short_control(method: str, control: Control) -> None:
    """Tiny iteration limits and a small tau2_max: the same rows fail, the same CI bounds go
    NaN or hit the end of the search, with identical warnings."""
    failed = compare_all_rows(method, "knha", control)
    res = fit_random_effects_batch(Y, V, method=method, test="knha", control=control)
    notes = [w for ws in res.warnings for w in ws]
    if control.maxiter < 100:  # the limit bites: some rows fail and some do not
        assert 0 < len(failed) < int((res.k > 1).sum()), failed
    if control.ci_maxiter < 1000:
        assert any("did not converge in" in w and "ci_maxiter" in w for w in notes)
    if control.tau2_max is not None:
        assert any("end of the search interval" in w for w in notes)
        if method == "PM":
            assert failed and all("tau2.max too low" in res.warnings[i][0] for i in failed)


def test_special_rows_behave_as_documented() -> None:
    """Spot checks that the special rows exercise what they are meant to."""
    res = fit_random_effects_batch(Y, V, method="REML", test="knha")
    n = Y.shape[0]
    single = np.flatnonzero(res.k == 1)
    assert single.size == 2 and np.all(res.test[single] == "z")  # k = 1 falls back to z
    identical = n - 6
    assert res.tau2[identical] == 0.0
    assert (
        "Knapp-Hartung scale factor is 0 (residuals vanish): SEs are 0" in res.warnings[identical]
    )
    assert any(w.startswith("tau^2 CI: upper bound at 0") for w in res.warnings[n - 4])
    assert res.tau2[n - 3] > 100
    assert any("ratio of largest to smallest" in w for w in res.warnings[n - 2])
    assert res.converged[n - 1]
    assert (
        "Fisher scoring did not converge; tau^2 from bracketing root of the REML score"
        in (res.warnings[n - 1])
    )
    strict = fit_random_effects_batch(Y, V, method="REML", test="knha", control=STRICT)
    assert not strict.converged[n - 1]


def test_bracketing_root_is_the_converged_reml() -> None:
    """The bracketed REML root on the oscillation row equals metafor-tight Fisher scoring."""
    y, v = np.array(REML_FAIL_Y), np.array(REML_FAIL_V)
    br = fit_random_effects(y, v, method="REML")
    tight = fit_random_effects(y, v, method="REML", control=TIGHT)
    assert br.converged and tight.converged
    np.testing.assert_allclose(br.tau2, tight.tau2, rtol=0, atol=1e-5)  # threshold 1e-5


def test_ill_conditioned_row_is_exact_in_batch() -> None:
    """Q and the FE estimate of the 1e7-variance-ratio row against exact rational arithmetic."""
    from fractions import Fraction

    i = Y.shape[0] - 2
    y, v = row_of(Y, V, i)
    w = [1 / Fraction(x) for x in v]
    yf = [Fraction(x) for x in y]
    ybar = sum(a * b for a, b in zip(w, yf, strict=True)) / sum(w)
    q = sum(a * (b - ybar) ** 2 for a, b in zip(w, yf, strict=True))
    res = fit_random_effects_batch(Y[i : i + 1], V[i : i + 1], method="FE")
    np.testing.assert_allclose(res.Q[0], float(q), rtol=1e-14)
    np.testing.assert_allclose(res.estimate[0], float(ybar), rtol=1e-14)


def test_fallback_sequence_matches_one_by_one() -> None:
    """method = ["REML", "DL"]: the REML failure falls back to DL in both engines."""
    res = fit_random_effects_batch(Y, V, method=["REML", "DL"], test="knha")
    for i in range(Y.shape[0]):
        y, v = row_of(Y, V, i)
        ref = fit_random_effects(y, v, method=["REML", "DL"], test="knha")
        assert_row_equal(ref, res, i, f"row {i}")
    assert res.method[-1] == "DL" and np.all(res.method[res.k > 1][:-1] == "REML")
    assert res.converged.all()


def test_failed_row_does_not_disturb_others() -> None:
    """A failing row is reported, and every other row equals the fit without it."""
    full = fit_random_effects_batch(Y, V, method="REML", control=STRICT)
    rest = fit_random_effects_batch(Y[:-1], V[:-1], method="REML", control=STRICT)
    assert not full.converged[-1]
    assert full.warnings[-1] == [
        "REML failed (REML: Fisher scoring did not converge in 100 iterations); falling back",
        "no estimator converged: row not fitted",
    ]
    for f in FLOAT_FIELDS:
        np.testing.assert_array_equal(getattr(full, f)[:-1], getattr(rest, f))
        if f not in ("Q", "Q_p"):  # Q does not depend on tau^2 and is still reported
            assert np.isnan(getattr(full, f)[-1]), f


def test_nan_only_with_a_reason() -> None:
    """No silent NaN: a NaN in a fitted row is one that metafor also leaves undefined."""
    for method in ("FE", "REML"):
        for test in TESTS:
            res = fit_random_effects_batch(Y, V, method=method, test=test)
            frame = res.to_frame()
            for i, row in frame.iterrows():
                nan_cols = {c for c in FLOAT_FIELDS if pd.isna(row[c])}
                if not res.converged[i]:
                    assert row["warnings"], i
                    continue
                allowed = set()
                if res.method[i] == "FE":
                    allowed |= {"tau2_se", "tau2_ci_low", "tau2_ci_high"}
                if res.k[i] == 1:
                    allowed |= {"tau2_se", "tau2_ci_low", "tau2_ci_high"}
                assert nan_cols <= allowed, (method, test, i, nan_cols)


def test_invalid_rows_are_flagged_not_dropped() -> None:
    y = np.array(
        [[0.1, 0.3, np.nan], [np.nan, np.nan, np.nan], [0.2, np.nan, 0.4], [0.1, 0.2, 0.3],
         [0.5, np.nan, 0.1]]
    )  # fmt: skip
    v = np.array(
        [[0.1, 0.2, np.nan], [np.nan, np.nan, np.nan], [0.1, 0.2, 0.3], [0.1, 0.0, 0.3],
         [0.1, np.nan, 0.2]]
    )  # fmt: skip
    res = fit_random_effects_batch(y, v)
    assert res.converged.tolist() == [True, False, False, False, True]
    assert res.k.tolist() == [2, 0, 3, 3, 2]
    assert res.warnings[1] == ["row not fitted: no studies: yi is empty"]
    assert res.warnings[2] == ["row not fitted: yi/vi not finite at positions [1]"]
    assert res.warnings[3] == ["row not fitted: vi must be > 0; not at positions [1]"]
    assert np.isnan(res.estimate[1:4]).all()
    # Padding in the middle of a row is skipped (row 4 is the studies 0 and 2).
    ref = fit_random_effects([0.5, 0.1], [0.1, 0.2])
    assert_row_equal(ref, res, 4, "row 4")


def test_long_table_equals_wide() -> None:
    rng = np.random.default_rng(5)
    parts = []
    for i in range(Y.shape[0] - 1):  # without the REML failure row
        y, v = row_of(Y, V, i)
        parts.append(
            pd.DataFrame(
                {"outcome": f"o{i % 3}", "tp": i, "g": y, "var": v, "study": range(y.size)}
            )
        )
    long = pd.concat(parts, ignore_index=True)
    long = long.iloc[rng.permutation(len(long))]  # groups interleaved in the table
    res = fit_random_effects_batch_long(long, ["outcome", "tp"], yi="g", vi="var", test="knha")
    frame = res.to_frame()
    assert list(frame.columns[:2]) == ["outcome", "tp"]
    assert len(frame) == Y.shape[0] - 1
    for j, key in enumerate(zip(frame["outcome"], frame["tp"], strict=True)):
        grp = long[(long["outcome"] == key[0]) & (long["tp"] == key[1])]
        ref = fit_random_effects(grp["g"].to_numpy(), grp["var"].to_numpy(), test="knha")
        assert_row_equal(ref, res, j, f"group {key}")


def test_long_table_missing_value_flags_its_group() -> None:
    df = pd.DataFrame(
        {"tp": ["a", "a", "a", "b", "b"], "yi": [0.1, np.nan, 0.3, 0.2, 0.5],
         "vi": [0.1, 0.1, 0.1, 0.2, 0.2]}
    )  # fmt: skip
    res = fit_random_effects_batch_long(df, "tp")
    assert res.groups["tp"].tolist() == ["a", "b"]
    assert res.converged.tolist() == [False, True]
    assert res.k.tolist() == [3, 2]
    assert res.warnings[0] == ["row not fitted: yi/vi not finite at positions [1]"]


def test_to_frame_has_the_univariate_columns() -> None:
    res = fit_random_effects_batch(Y[:5], V[:5], test="knha")
    frame = res.to_frame()
    y, v = row_of(Y, V, 0)
    one = fit_random_effects(y, v, test="knha").to_frame()
    assert list(frame.columns) == list(one.columns)
    assert frame["df"].dtype == "Int64" and frame.loc[0, "df"] == one.loc[0, "df"]
    np.testing.assert_allclose(frame.loc[0, "estimate"], one.loc[0, "estimate"], rtol=RTOL)


@settings(max_examples=30, deadline=None)
@given(
    data=st.lists(
        st.lists(
            st.tuples(st.floats(-3, 3, allow_nan=False), st.floats(1e-3, 2.0, allow_nan=False)),
            min_size=2,
            max_size=7,
        ),
        min_size=1,
        max_size=4,
    ),
    method=st.sampled_from(["DL", "PM", "REML", "ML", "SJ"]),
    test=st.sampled_from(TESTS),
    control=st.sampled_from([None, TIGHT]),
)
def test_batch_equals_one_by_one_property(data, method, test, control) -> None:
    K = max(len(r) for r in data)
    y = np.full((len(data), K), np.nan)
    v = np.full((len(data), K), np.nan)
    for i, r in enumerate(data):
        y[i, : len(r)] = [a for a, _ in r]
        v[i, : len(r)] = [b for _, b in r]
    res = fit_random_effects_batch(y, v, method=method, test=test, control=control)
    for i in range(len(data)):
        yi, vi = row_of(y, v, i)
        try:
            ref = fit_random_effects(yi, vi, method=method, test=test, control=control)
        except ConvergenceError:
            assert not res.converged[i]
            continue
        assert_row_equal(ref, res, i, f"row {i}", control)


def test_zeroin_batch_visits_the_scalar_iterates() -> None:
    """Lock-step Brent equals rootfind.zeroin exactly (same arithmetic, same iterates)."""
    rng = np.random.default_rng(11)
    n = 200
    c = rng.uniform(0.01, 60, n)  # root in (lo, hi): lo^3 <= 0 < c < 64 <= hi^3
    lo = rng.uniform(-4, 0, n)
    hi = rng.uniform(4, 40, n)

    def f_scalar(ci: float):
        return lambda x: x * x * x - ci

    def f_batch(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return x * x * x - c[idx]

    for maxiter in (1000, 4):
        root, it, conv = zeroin_rows(
            f_batch, lo, hi, lo * lo * lo - c, hi * hi * hi - c, maxiter=maxiter
        )
        for i in range(n):
            ref = zeroin(f_scalar(c[i]), lo[i], hi[i], maxiter=maxiter)
            assert root[i] == ref.root, (maxiter, i)
            assert it[i] == ref.iterations and conv[i] == ref.converged, (maxiter, i)
        if maxiter == 4:
            assert not conv.all()


def test_reml_failure_matches_metafor(require_metafor: None) -> None:
    """metafor also stops on the oscillating REML row (live R; skipped without R/metafor)."""
    script = textwrap.dedent(
        f"""
        suppressMessages(library(metafor))
        yi <- c({", ".join(repr(x) for x in REML_FAIL_Y)})
        vi <- c({", ".join(repr(x) for x in REML_FAIL_V)})
        r <- try(rma(yi, vi, method = "REML"), silent = TRUE)
        cat(if (inherits(r, "try-error")) conditionMessage(attr(r, "condition")) else "fitted")
        """
    )
    out = subprocess.run(
        ["Rscript", "--vanilla", "-e", script], capture_output=True, text=True, timeout=120
    )
    assert "Fisher scoring algorithm did not converge" in out.stdout


def test_paule_mandel_bound_failure_is_reported() -> None:
    """One far outlier: Q(tau2.max) still exceeds k - 1, so PM stops (as metafor) in both."""
    y = np.array([[0.0, 0.01, -0.02, 0.03, 1000.0], [0.1, 0.3, 0.2, np.nan, np.nan]])
    v = np.array([[0.01, 0.02, 0.01, 0.02, 0.01], [0.1, 0.2, 0.1, np.nan, np.nan]])
    with pytest.raises(ConvergenceError) as err:
        fit_random_effects(y[0], v[0], method="PM")
    res = fit_random_effects_batch(y, v, method="PM")
    assert res.converged.tolist() == [False, True]
    assert res.warnings[0][0] == str(err.value)
    assert "tau2.max too low" in res.warnings[0][0]
    both = fit_random_effects_batch(y, v, method=["PM", "DL"])
    ref = fit_random_effects(y[0], v[0], method=["PM", "DL"])
    assert_row_equal(ref, both, 0, "PM -> DL")


@pytest.mark.parametrize("test", ["t", "adhoc"])
@pytest.mark.parametrize("method", ["DL", "REML", "FE"])
def test_batch_equals_one_by_one_t_and_adhoc(method: str, test: str) -> None:
    """metafor's test = "t" and "adhoc" (golden-tested one by one in test_rma_golden.py)."""
    assert compare_all_rows(method, test) == []
    res = fit_random_effects_batch(Y, V, method=method, test=test)
    fitted = res.k > 1
    if test == "adhoc":  # never narrower than the Wald-variance t interval
        t_res = fit_random_effects_batch(Y, V, method=method, test="t")
        assert np.all(res.se[fitted] >= t_res.se[fitted] * (1 - 1e-15))
