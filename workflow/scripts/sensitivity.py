"""Stage 4 (rule sensitivity): crossover r varied, subsets removed, leave-one-out per window."""

import importlib

import pandas as pd

from timecourse_meta.effects.comparisons import compute_effects
from timecourse_meta.errors import exit_on_error
from timecourse_meta.pipeline.ingest import precomputed_effects
from timecourse_meta.pipeline.sensitivity import leave_one_out_rows, pool_variants, subset_effects
from timecourse_meta.pipeline.tables import write_csv
from timecourse_meta.schema import SENSITIVITY_COLUMNS

smk = snakemake  # noqa: F821 - injected by Snakemake's script directive
# estimator if `method` does not converge (metafor c("REML", "DL")); params when the rule
# passes it, else the config (schema default DL)
FALLBACK = getattr(smk.params, "method_fallback", smk.config.get("method_fallback", "DL"))

with exit_on_error(smk.log[0], "sensitivity") as log:
    p = smk.params
    spec = p.sensitivity
    windowed = pd.read_parquet(smk.input.windowed)
    effects = pd.read_parquet(smk.input.effects)
    sheet = windowed[windowed["sheet_format"] == "extraction"]
    pre = precomputed_effects(windowed, measure_default=p.precomputed_measure)
    variants = {"primary": effects}
    for r in spec.get("crossover_r", [0.2, 0.5, 0.8]):  # schema defaults
        eff, _ = compute_effects(
            sheet,
            crossover_r=r,
            lower_is_better_default=p.lower_is_better_default,
            score_measure=p.score_measure,
        )
        variants[f"crossover_r={r:g}"] = pd.concat([eff, pre], ignore_index=True)
    for subset in spec.get("subsets", []):
        variants[subset["name"]] = subset_effects(
            effects, keep=subset.get("keep"), exclude=subset.get("exclude"), rows=windowed
        )
    rob_input = list(getattr(smk.input, "risk_of_bias", []) or [])
    if rob_input:  # studies whose overall risk of bias is low (pipeline/risk_of_bias.py)
        rob = pd.read_parquet(rob_input[0])
        low = sorted(rob.loc[rob["overall"] == "low", "study_id"].astype(str).unique())
        variants["low_risk_of_bias_only"] = subset_effects(effects, keep={"study_id": low})
        log(f"low risk of bias only: {len(low)} studies ({', '.join(low) or 'none'})")
    fit = {
        "outcome": p.outcome,
        "measure": p.measure,
        "method": p.method,
        "test": p.test,
        "level": p.level,
        "method_fallback": FALLBACK,
    }
    tables = [pool_variants(variants, p.timepoints, **fit)]
    if spec.get("leave_one_out", True):
        try:
            diagnostics = importlib.import_module("timecourse_meta.diagnostics.influence")
            loo = diagnostics.leave_one_out
        except (ImportError, AttributeError):
            log("leave-one-out skipped: timecourse_meta.diagnostics.leave_one_out not available")
            note = "not run: timecourse_meta.diagnostics.leave_one_out not available"
            tables.append(pd.DataFrame([{"analysis": "leave_one_out", "warnings": note}]))
        else:
            tables.append(leave_one_out_rows(effects, p.timepoints, loo, **fit))
    table = pd.concat(tables, ignore_index=True).reindex(columns=list(SENSITIVITY_COLUMNS))
    write_csv(table, smk.output.csv)
    log(f"{len(table)} sensitivity rows over {len(variants)} variants")
