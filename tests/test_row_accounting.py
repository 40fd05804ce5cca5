"""Row accounting, as a property: rows in = rows analysed + rows excluded, for any sheet.

Hypothesis builds random extraction sheets from studies of known kinds: usable ones (two-arm,
multi-arm, crossover, binary, several times per window, contrast beside arm data) and ones that
must be excluded with a reason (no control, no treatment arm, time outside every window, no SD,
double-zero events, excluded by the config). Each sheet goes through ingest -> windows ->
effect sizes exactly as the workflow runs them (tests/pipeline_helpers.py). Checked:

* every input line is either used by an effect or in the exclusions table, never both, never
  twice, and the exclusion has a reason; rows in = used + excluded (row_accounting);
* every row of a usable study is used, every row of an excludable study is excluded;
* adding excludable studies anywhere in the sheet leaves the effects of the others unchanged.

The values are synthetic test inputs drawn by Hypothesis.
"""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pipeline_helpers import run_pipeline

COLUMNS = [
    "study_id", "citation", "doi", "source_address", "source_locator", "source_quote",
    "source_type", "value_origin", "design", "period", "population", "trd", "concomitant_ad",
    "control", "drug", "route", "dose", "scale", "arm", "arm_role", "outcome", "time_hours",
    "time_as_reported", "n", "stat_kind", "mean", "sd", "events", "effect", "effect_type",
    "effect_se", "n_treatment", "n_control",
]  # fmt: skip
USABLE = ("two_arm", "multi_arm", "crossover", "binary", "two_times", "contrast_and_arms")
EXCLUDABLE = ("no_control", "no_treatment", "outside", "no_sd", "double_zero", "by_config")
# hours inside the default windows (2-6, 18-30, 60-84, 144-192, 312-360) and outside them
INSIDE = st.sampled_from([2.0, 4.0, 5.5, 18.0, 24.0, 29.0, 60.0, 72.0, 168.0, 190.0, 336.0])
OUTSIDE = st.sampled_from([0.5, 10.0, 48.0, 100.0, 240.0, 500.0])
N = st.integers(min_value=2, max_value=300)
MEAN = st.floats(min_value=0.0, max_value=60.0, allow_nan=False).map(lambda x: round(x, 2))
SD = st.floats(min_value=0.5, max_value=20.0, allow_nan=False).map(lambda x: round(x, 2))


@st.composite
def study_rows(draw: st.DrawFn, kind: str, sid: str) -> list[dict[str, str]]:
    """The rows of one study of `kind`, arm data on the score outcome unless stated."""
    design = "crossover" if kind == "crossover" else "parallel"
    base = {
        "study_id": sid, "citation": f"Synthetic {sid}", "doi": f"10.0000/{sid.lower()}",
        "source_address": f"https://example.org/{sid}", "source_locator": "Table 1",
        "source_quote": "synthetic", "source_type": draw(st.sampled_from(["primary", "secondary"])),
        "value_origin": "table", "design": design, "period": "all", "population": "unipolar",
        "trd": draw(st.sampled_from(["yes", "no", "unclear"])), "concomitant_ad": "no",
        "control": draw(st.sampled_from(["saline", "midazolam"])), "drug": "ketamine",
        "route": "iv", "dose": "0.5 mg/kg", "scale": "MADRS", "outcome": "score",
        "stat_kind": "final",
    }  # fmt: skip

    # a paired (crossover) SMD needs n >= 4 for a finite Hedges' J with n - 1 df
    n_arm = st.integers(4, 300) if kind == "crossover" else N

    def arm(role: str, label: str, t: float, **cells: object) -> dict[str, str]:
        row = {**base, "arm": label, "arm_role": role, "time_hours": f"{t:g}",
               "time_as_reported": f"{t:g} h", "n": str(draw(n_arm)), "mean": str(draw(MEAN)),
               "sd": str(draw(SD))}  # fmt: skip
        row.update({k: str(v) for k, v in cells.items()})
        return row

    t = draw(OUTSIDE if kind == "outside" else INSIDE)
    if kind == "no_control":
        return [arm("treatment", "ket", t)]
    if kind == "no_treatment":
        return [arm("control", "pbo", t)]
    if kind == "no_sd":
        return [arm("treatment", "ket", t, sd=""), arm("control", "pbo", t)]
    if kind in ("binary", "double_zero"):
        rows = []
        for role, label in (("treatment", "ket"), ("control", "pbo")):
            n = draw(N)  # usable: 1..n-1 events, so no double-zero or all-event pair
            events = 0 if kind == "double_zero" else draw(st.integers(1, n - 1))
            rows.append(arm(role, label, t, outcome="response", stat_kind="", mean="", sd="",
                            n=n, events=events))  # fmt: skip
        return rows
    # a shared control is split between the arms: give it >= 6 so each comparison keeps >= 3
    n_treat = draw(n_arm)
    n_control = draw(st.integers(6, 300)) if kind == "multi_arm" else draw(n_arm)
    if kind == "crossover":  # the same participants in both periods
        n_control = n_treat
    rows = [arm("treatment", "ket", t, n=n_treat), arm("control", "pbo", t, n=n_control)]
    if kind == "multi_arm":
        rows.append(arm("treatment", "ket high", t))
    if kind == "two_times":  # a second reported time in the same window
        t2 = t + draw(st.sampled_from([0.5, 1.0]))
        rows += [arm("treatment", "ket", t2), arm("control", "pbo", t2)]
    if kind == "contrast_and_arms":  # the contrast is not used: arm data exist
        rows.append({**base, "arm": "ket vs pbo", "arm_role": "contrast", "time_hours": f"{t:g}",
                     "time_as_reported": f"{t:g} h", "effect": "-0.5", "effect_type": "g",
                     "effect_se": "0.3", "n_treatment": "20", "n_control": "20"})  # fmt: skip
    return rows


@st.composite
def sheets(draw: st.DrawFn, kinds: tuple[str, ...], prefix: str, max_studies: int = 5):
    chosen = draw(st.lists(st.sampled_from(kinds), min_size=1, max_size=max_studies))
    return [(k, draw(study_rows(k, f"{prefix}{i}"))) for i, k in enumerate(chosen)]


def write(path: Path, rows: list[dict[str, str]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([r.get(c, "") for c in COLUMNS])
    path.write_text(buf.getvalue(), encoding="utf-8")


def run(rows: list[dict[str, str]], excluded_ids: list[str]):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sheet.csv"
        write(path, rows)
        out = run_pipeline(
            [path],
            exclude_studies=[
                {"study_id": s, "reason": "synthetic: excluded"} for s in excluded_ids
            ],
        )
    return out


def check_accounting(result, studies: list[tuple[str, list[dict]]]) -> None:
    rows, effects, excl = result.rows, result.effects, result.exclusions
    ids = rows["source_file"] + ":" + rows["source_row"].astype(str)
    used = {r for cell in effects["row_ids"] for r in cell.split(";")}
    excluded = list(excl["source_file"] + ":" + excl["source_row"].astype(str))
    assert len(excluded) == len(set(excluded)), "a row is excluded twice"
    assert not used & set(excluded), "a row is both used and excluded"
    assert used | set(excluded) == set(ids), "a row is neither used nor excluded"
    assert (excl["reason"].str.len() > 0).all()
    total = result.accounting.iloc[-1]
    assert total["rows_in"] == len(rows) == total["rows_used"] + total["rows_excluded"]
    assert total["rows_used"] == len(used) and total["rows_excluded"] == len(excluded)
    # how many rows of each study are excluded follows from its kind
    counts = excl["study_id"].value_counts()
    used_studies = set(rows.loc[ids.isin(used).to_numpy(), "study_id"])
    for kind, study in studies:
        sid = study[0]["study_id"]
        if kind in EXCLUDABLE:  # all its rows, none used
            expected = len(study)
            assert sid not in used_studies, (sid, kind)
        else:  # the other reported time's two arms; a contrast beside arm data
            expected = {"two_times": 2, "contrast_and_arms": 1}.get(kind, 0)
            assert sid in used_studies, (sid, kind)
        assert counts.get(sid, 0) == expected, (sid, kind, counts.get(sid, 0))


def comparable(effects: pd.DataFrame) -> pd.DataFrame:
    cols = ["study_id", "comparison_id", "outcome", "timepoint", "measure", "yi", "vi",
            "n_treatment", "n_control", "flags", "derivation"]  # fmt: skip
    return effects[cols].sort_values(cols[:5]).reset_index(drop=True)


EXAMPLES = 60


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],  # no slow "explain"
)
@given(
    base=sheets(USABLE + EXCLUDABLE, "S"),
    extra=sheets(EXCLUDABLE, "X", max_studies=4),
    positions=st.lists(st.integers(min_value=0, max_value=10_000), min_size=12, max_size=12),
)
@pytest.mark.slow
def test_rows_in_equal_rows_used_plus_excluded(base, extra, positions) -> None:
    base_rows = [r for _, rs in base for r in rs]
    by_config = [rs[0]["study_id"] for k, rs in base + extra if k == "by_config"]
    first = run(base_rows, by_config)
    check_accounting(first, base)
    # add the excludable studies at arbitrary places: others' effects must not change
    rows = list(base_rows)
    for i, r in enumerate(r for _, rs in extra for r in rs):
        rows.insert(positions[i % len(positions)] % (len(rows) + 1), r)
    second = run(rows, by_config)
    check_accounting(second, base + extra)
    pd.testing.assert_frame_equal(comparable(first.effects), comparable(second.effects))
