"""GRADE summary of findings per outcome x window (Guyatt et al. 2011, GRADE guidelines 1-9).

Certainty starts at `start` (high for randomised trials, GRADE guidelines 3) and is rated
down one level per "serious" and two per "very serious" concern, never below very low.
Rules computed from the data are stated in each reason; the thresholds they use are the
review team's judgement and come from config ``grade`` with their reason:

* risk of bias (GRADE 4): share of the window's random-effects weight from studies whose
  overall risk of bias is high (``pipeline.risk_of_bias``); weight from studies not assessed
  is stated and, only if ``not_assessed_as_high`` is set, counted as high.
* inconsistency (GRADE 7): I^2 against ``i2_serious`` / ``i2_very_serious``, and a
  prediction interval that crosses the null while the CI does not.
* indirectness (GRADE 8): not computable from the data; taken from config per outcome,
  otherwise "not assessed".
* imprecision (GRADE 6, Guyatt et al. 2011, J Clin Epidemiol 64:1283-1293): the CI crosses
  the null or a minimal important difference (MID, config); or the number of participants is
  below the optimal information size (OIS: the sample size of one adequately powered trial,
  two-sided alpha and power from config). Two levels when the CI spans both +MID and -MID.
* publication bias (GRADE 5): Egger's test only when k >= 10 (Sterne et al. 2011);
  otherwise "not assessed (k < 10)".

`grade_markdown.sof_markdown` lays the resulting table out as a Cochrane summary-of-findings
table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from timecourse_meta.distributions import norm_isf
from timecourse_meta.pipeline.risk_of_bias import study_overall, study_weights
from timecourse_meta.schema import ALL_STUDIES, rows_for

__all__ = [
    "CERTAINTY",
    "SOF_COLUMNS",
    "absolute_risk",
    "grade_row",
    "optimal_information_size",
    "summary_of_findings",
]

CERTAINTY: tuple[str, ...] = ("very low", "low", "moderate", "high")
LEVEL_NAMES = {0: "not serious", 1: "serious", 2: "very serious"}
RATIO_MEASURES = ("OR", "RR")
DOMAINS = ("risk_of_bias", "inconsistency", "indirectness", "imprecision", "publication_bias")

SOF_COLUMNS: tuple[str, ...] = (
    "outcome",
    "measure",
    "timepoint",
    "k",
    "n_studies",
    "n_participants",
    "estimate",
    "ci_low",
    "ci_high",
    "relative_effect",
    "baseline_risk",
    "risk_control_per_1000",
    "risk_treatment_per_1000",
    "risk_treatment_ci_low_per_1000",
    "risk_treatment_ci_high_per_1000",
    "absolute_effect",
    "start",
    "certainty",
    "certainty_note",
    "downgrades",
    *(f"{d}{s}" for d in DOMAINS for s in ("", "_downgrade", "_reason")),
    "studies",
)


def optimal_information_size(
    measure: str,
    *,
    alpha: float,
    power: float,
    smd: float | None = None,
    baseline_risk: float | None = None,
    relative_change: float | None = None,
) -> float | None:
    """Total participants of one trial powered to detect the configured effect (two arms 1:1).

    GRADE 6 (Guyatt et al. 2011) defines the OIS as the sample size of a single adequately
    powered trial. Continuous (SMD): n per arm = 2 (z_{1-a/2} + z_{1-b})^2 / d^2 (Cohen's
    normal-theory formula). Binary: n per arm = (z_{1-a/2} + z_{1-b})^2 [p0(1-p0) + p1(1-p1)]
    / (p1 - p0)^2 with p1 = p0 (1 + relative_change). None when an input is not configured.
    """
    z = float(norm_isf(alpha / 2) + norm_isf(1 - power))
    if measure == "SMD":
        return None if not smd else 2 * 2 * z**2 / smd**2
    if baseline_risk is None or not relative_change:
        return None
    p0, p1 = baseline_risk, min(baseline_risk * (1 + relative_change), 1.0)
    return 2 * z**2 * (p0 * (1 - p0) + p1 * (1 - p1)) / (p1 - p0) ** 2


def absolute_risk(measure: str, log_ratio: float, p0: float) -> float:
    """Risk with treatment from a control risk p0 and a pooled log OR or log RR (per 1)."""
    ratio = math.exp(log_ratio)
    if measure == "OR":
        return ratio * p0 / (1 - p0 + ratio * p0)  # odds p0/(1-p0) times OR, back to a risk
    return min(ratio * p0, 1.0)


def _rob(
    window: pd.DataFrame,
    pooled: Mapping[str, object],
    rob: pd.DataFrame | None,
    cfg: Mapping[str, object],
) -> tuple[int, str]:
    if rob is None:
        return -1, "not assessed: no risk-of-bias sheet configured (risk_of_bias: null)"
    w = study_weights(window, pooled)
    outcome = str(pooled["outcome"])
    w["overall"] = [study_overall(rob, s, outcome) for s in w["study_id"]]
    share = {j: float(w.loc[w["overall"] == j, "weight"].sum()) for j in set(w["overall"])}
    high, unread = share.get("high", 0.0), share.get("not_assessed", 0.0)
    as_high = bool(cfg.get("not_assessed_as_high"))
    counted = high + (unread if as_high else 0.0)
    serious = float(cfg.get("serious_share", 0.5))  # type: ignore[arg-type]
    very_cfg = cfg.get("very_serious_share")
    very = None if very_cfg is None else float(very_cfg)  # type: ignore[arg-type]
    down = 2 if very is not None and counted >= very else int(counted >= serious)
    names = ", ".join(w.loc[w["overall"] == "not_assessed", "study_id"])
    text = f"{high:.0%} of the weight from studies at high risk of bias (serious from {serious:.0%}"
    text += f", very serious from {very:.0%}" if very is not None else ""
    text += f"; {cfg['reason']})" if cfg.get("reason") else ")"
    if unread > 0:
        how = "counted as high" if as_high else "not counted as high"
        text += (
            f"; {unread:.0%} of the weight from studies whose risk of bias was not assessed "
            f"({names}; {how})"
        )
    # unread weight that would by itself make risk of bias serious: the domain is not assessed
    if unread >= serious and not as_high and down == 0:
        return -1, "not assessed for most of the weight (at least serious_share): " + text
    return down, text


def _scale(x: float, row: Mapping[str, object]) -> str:
    """A bound on the reported scale: ratios exponentiated, with the measure's name."""
    measure = str(row.get("measure", ""))
    return f"{math.exp(x):.2f}" if measure in RATIO_MEASURES else f"{x:.2f}"


def _inconsistency(row: Mapping[str, object], cfg: Mapping[str, object]) -> tuple[int, str]:
    k = int(row["k"])  # type: ignore[call-overload]
    if k < 2:
        return -2, "not applicable (one study)"
    i2 = float(row["I2"])  # type: ignore[arg-type]
    serious, very = float(cfg.get("i2_serious", 50)), cfg.get("i2_very_serious")  # type: ignore[arg-type]
    pi_lo, pi_hi = float(row["pi_low"]), float(row["pi_high"])  # type: ignore[arg-type]
    ci_lo, ci_hi = float(row["ci_low"]), float(row["ci_high"])  # type: ignore[arg-type]
    pi_cross = pi_lo < 0 < pi_hi and not ci_lo < 0 < ci_hi
    if very is not None and i2 >= float(very) and pi_cross:  # type: ignore[arg-type]
        down = 2
    else:
        down = int(i2 >= serious or pi_cross)
    text = (
        f"I\u00b2 = {i2:.0f}% (serious from {serious:g}%"
        + (
            f", very serious from {float(very):g}% with the PI crossing the null"
            if very is not None
            else ""
        )  # type: ignore[arg-type]
        + f"); prediction interval {_scale(pi_lo, row)} to {_scale(pi_hi, row)}"
        + (" crosses the null while the CI does not" if pi_cross else "")
        + (f" ({cfg['reason']})" if cfg.get("reason") else "")
    )
    return down, text


def _imprecision(
    row: Mapping[str, object], measure: str, cfg: Mapping[str, object], p0: float | None
) -> tuple[int, str]:
    lo, hi = float(row["ci_low"]), float(row["ci_high"])  # type: ignore[arg-type]
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return -1, "not assessed: no confidence interval"
    mid_cfg = cfg.get("mid") or {}
    mid = mid_cfg.get(measure) if isinstance(mid_cfg, Mapping) else None
    m = None if mid is None else (math.log(float(mid)) if measure in RATIO_MEASURES else float(mid))
    ois_cfg = cfg.get("ois") or {}
    ois = optimal_information_size(
        measure,
        alpha=float(ois_cfg.get("alpha", 0.05)),
        power=float(ois_cfg.get("power", 0.8)),  # type: ignore[union-attr]
        smd=ois_cfg.get("smd"),
        baseline_risk=p0,
        relative_change=ois_cfg.get("relative_change"),  # type: ignore[union-attr]
    )
    n = float(row["n_participants"])  # type: ignore[arg-type]
    crosses_null = lo < 0 < hi
    shown = (math.exp(lo), math.exp(hi)) if measure in RATIO_MEASURES else (lo, hi)
    reasons = [
        f"95% CI {measure} {shown[0]:.2f} to {shown[1]:.2f} "
        + ("crosses" if crosses_null else "excludes")
        + " the null"
    ]
    crosses_mid = m is not None and (lo < m < hi or lo < -m < hi)
    both = m is not None and lo < -abs(m) and hi > abs(m)
    if m is not None:
        reasons.append(f"MID {mid:g} ({measure}) " + ("crossed" if crosses_mid else "not crossed"))
    else:
        reasons.append("no MID configured")
    small = ois is not None and np.isfinite(n) and n < ois
    if ois is not None:
        reasons.append(
            f"{n:.0f} participants vs OIS {math.ceil(ois)} ("
            + ("not met" if small else "met")
            + ")"
        )
    else:
        reasons.append("OIS not computed (inputs not configured)")
    down = 2 if both else int(crosses_null or crosses_mid or small)
    if down == 0 and ois is None:
        down = -1  # the CI is fine, but the information size could not be checked
    text = (
        "; ".join(reasons)
        + " (GRADE 6, Guyatt 2011"
        + (f"; {cfg['reason']}" if cfg.get("reason") else "")
        + ")"
    )
    return down, text


def _publication(
    row: Mapping[str, object], small: pd.DataFrame | None, cfg: Mapping[str, object]
) -> tuple[int, str]:
    k = int(row["k"])  # type: ignore[call-overload]
    min_k = int(cfg.get("min_k", 10))  # type: ignore[call-overload]
    if k < min_k:
        return -1, f"not assessed (k < {min_k})"
    hit = (
        None if small is None else rows_for(small, row["outcome"], row["measure"], row["timepoint"])
    )
    if hit is None or hit.empty or not np.isfinite(float(hit["pval"].iloc[0])):
        return -1, "not assessed (no Egger test result)"
    p, alpha = float(hit["pval"].iloc[0]), float(cfg.get("alpha", 0.1))  # type: ignore[arg-type]
    text = (
        f"Egger test p = {p:.3g} (serious if p < {alpha:g}"
        + (f"; {cfg['reason']}" if cfg.get("reason") else "")
        + ")"
    )
    return int(p < alpha), text


def _label(down: int, text_ok: str = "not serious") -> str:
    return {-1: "not assessed", -2: "not applicable"}.get(down, LEVEL_NAMES.get(down, text_ok))


def _control_arms(window: pd.DataFrame, control: pd.DataFrame | None) -> pd.DataFrame:
    if control is None or window.empty:
        return pd.DataFrame(columns=["study_id", "events", "n"])
    outcome, tp = window["outcome"].iloc[0], window["timepoint"].iloc[0]
    sel = control[
        (control["outcome"] == outcome)
        & (control["timepoint"] == tp)
        & control["study_id"].isin(set(window["study_id"]))
    ]
    return sel.drop_duplicates(["study_id", "arm"])


def _control_risk(window: pd.DataFrame, control: pd.DataFrame | None) -> float | None:
    """Median control-arm risk (events / n) of the window's studies; None without arms."""
    arms = _control_arms(window, control)
    if arms.empty:
        return None
    return float(np.median(arms["events"].to_numpy(float) / arms["n"].to_numpy(float)))


def _control_source(window: pd.DataFrame, control: pd.DataFrame | None) -> str:
    arms = _control_arms(window, control)
    parts = [
        f"{s} {int(e)}/{int(n)}"
        for s, e, n in zip(arms["study_id"], arms["events"], arms["n"], strict=True)
    ]
    return f"(median control-arm risk: {', '.join(parts)})" if parts else "(no control arm)"


def _effects_text(
    out: dict[str, object],
    row: Mapping[str, object],
    window: pd.DataFrame,
    cfg: Mapping[str, object],
    control: pd.DataFrame | None,
) -> float | None:
    """Fill the relative and absolute effect of `out`; return the control risk used (or None).

    Absolute effects only for ratio measures with a control risk in (0, 1): from config, or
    ``control_arms`` = the median control-arm risk of the window's studies.
    """
    outcome, measure = str(row["outcome"]), str(row["measure"])
    est, lo, hi = (float(row[c]) for c in ("estimate", "ci_low", "ci_high"))  # type: ignore[arg-type]
    base = (cfg.get("baseline_risk") or {}).get(outcome)  # type: ignore[union-attr]
    if base == "control_arms":
        p0, base = _control_risk(window, control), {"source": _control_source(window, control)}
    else:
        p0 = None if base is None else float(base["risk"] if isinstance(base, Mapping) else base)
    src = str(base.get("source", "")) if isinstance(base, Mapping) else ""
    if measure in RATIO_MEASURES:
        out["relative_effect"] = (
            f"{measure} {math.exp(est):.2f} ({math.exp(lo):.2f} to {math.exp(hi):.2f})"
        )
    elif measure == "MD":  # in the outcome's own units: the absolute effect itself
        out["relative_effect"] = "not applicable (mean difference)"
        out["absolute_effect"] = f"MD {est:.2f} ({lo:.2f} to {hi:.2f}); positive = benefit"
        return p0
    else:
        out["relative_effect"] = f"{measure} {est:.2f} ({lo:.2f} to {hi:.2f})"
        out["absolute_effect"] = "not applicable (standardised mean difference)"
        return p0
    if p0 is None:
        out["absolute_effect"] = "no baseline risk configured (grade.baseline_risk)"
        return None
    if not 0 < p0 < 1:
        out["absolute_effect"] = f"not computed: control risk {p0:g} {src}"
        return None
    r1, r_lo, r_hi = (absolute_risk(measure, x, p0) * 1000 for x in (est, lo, hi))
    c = p0 * 1000
    out.update(
        baseline_risk=p0,
        risk_control_per_1000=c,
        risk_treatment_per_1000=r1,
        risk_treatment_ci_low_per_1000=r_lo,
        risk_treatment_ci_high_per_1000=r_hi,
        absolute_effect=f"{r1 - c:+.0f} per 1000 ({r_lo - c:+.0f} to {r_hi - c:+.0f}); "
        f"control risk {c:.0f} per 1000 {src}".strip(),
    )
    return p0


def grade_row(
    row: Mapping[str, object],
    window: pd.DataFrame,
    *,
    rob: pd.DataFrame | None,
    small: pd.DataFrame | None,
    cfg: Mapping[str, object],
    control: pd.DataFrame | None = None,
) -> dict[str, object]:
    """One summary-of-findings row from a pooled row and the window's effects.

    `control` holds control-arm events and n (study_id, arm, outcome, timepoint, events, n)
    for ``baseline_risk: control_arms``: the assumed control risk is then the median of the
    window's control-arm risks (computed, and listed in the absolute-effect text).
    """
    outcome, measure = str(row["outcome"]), str(row["measure"])
    keep = ("outcome", "measure", "timepoint", "k", "n_participants", "estimate", "ci_low")
    out: dict[str, object] = {c: row.get(c) for c in (*keep, "ci_high", "studies")}
    out["n_studies"] = int(window["study_id"].nunique())
    p0 = _effects_text(out, row, window, cfg, control)
    indirect = (cfg.get("indirectness") or {}).get(outcome)  # type: ignore[union-attr]
    judged = {
        "risk_of_bias": _rob(window, row, rob, cfg.get("risk_of_bias") or {}),  # type: ignore[arg-type]
        "inconsistency": _inconsistency(row, cfg.get("inconsistency") or {}),  # type: ignore[arg-type]
        "indirectness": (int(indirect["downgrade"]), str(indirect.get("reason", "")))
        if isinstance(indirect, Mapping)
        else (-1, "not assessed (a judgement: set grade.indirectness for this outcome)"),
        "imprecision": _imprecision(row, measure, cfg.get("imprecision") or {}, p0),  # type: ignore[arg-type]
        "publication_bias": _publication(row, small, cfg.get("publication_bias") or {}),  # type: ignore[arg-type]
    }
    start = str(cfg.get("start", "high"))
    total = sum(max(d, 0) for d, _ in judged.values())
    out["start"] = start
    out["certainty"] = CERTAINTY[max(CERTAINTY.index(start) - total, 0)]
    out["downgrades"] = total
    for name, (down, text) in judged.items():
        out[name], out[f"{name}_downgrade"], out[f"{name}_reason"] = (
            _label(down),
            max(down, 0),
            text,
        )
    unrated = [n.replace("_", " ") for n, (d, _) in judged.items() if d == -1]
    out["certainty_note"] = (
        "upper bound: not assessed: " + ", ".join(unrated) if unrated else "all domains rated"
    )
    return out


def summary_of_findings(
    pooled: pd.DataFrame,
    effects: pd.DataFrame,
    *,
    rob: pd.DataFrame | None,
    small: pd.DataFrame | None,
    cfg: Mapping[str, object],
    timepoints: list[str],
    control: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Summary of findings for every outcome x window with k >= 1 (overall rows only).

    ``cfg['outcomes']`` maps outcome -> measure to report (null: every pooled pair).
    """
    overall = pooled[(pooled["subgroup"] == ALL_STUDIES) & (pooled["k"] > 0)]
    wanted = cfg.get("outcomes")
    rows = []
    for _, row in overall.iterrows():
        if isinstance(wanted, Mapping) and wanted.get(row["outcome"]) != row["measure"]:
            continue
        window = rows_for(effects, row["outcome"], row["measure"], row["timepoint"])
        rows.append(
            grade_row(row.to_dict(), window, rob=rob, small=small, cfg=cfg, control=control)
        )
    table = pd.DataFrame(rows).reindex(columns=list(SOF_COLUMNS))
    order = {tp: i for i, tp in enumerate(timepoints)}
    table["_o"] = table["timepoint"].map(order)
    table = table.sort_values(["outcome", "measure", "_o"], kind="mergesort").drop(columns="_o")
    return table.reset_index(drop=True)
