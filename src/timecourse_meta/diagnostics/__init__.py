"""Diagnostics on fitted models: leave-one-out, influence, cumulative meta-analysis,
subgroup analysis and small-study effects (regtest, trim-and-fill)."""
