"""The ``time_response:`` config section as a frozen spec (defaults fill the gaps).

Kept apart from :mod:`~timecourse_meta.pipeline.time_response_tables` so that Snakemake's
parse of ``workflow/rules/time_response.smk`` checks the section without loading the model
(scipy.optimize) or pandas.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from timecourse_meta.errors import ConfigError
from timecourse_meta.models.time_basis import BASES

__all__ = ["TimeResponseSpec", "parse_time_response_config"]


@dataclass(frozen=True)
class TimeResponseSpec:
    """The time-response model as configured (docs/time_response.md describes each field)."""

    basis: str = "spline"
    knots: tuple[float, ...] | None = None
    n_knots: int = 2
    n_knots_grid: tuple[int, ...] = (1, 2, 3)
    phi: float = 0.5
    phi_grid: tuple[float, ...] = (0.2, 0.5, 0.8)
    rho: float | None = None
    rho_grid: tuple[float, ...] = (0.2, 0.5, 0.8)
    method: str = "REML"
    predict_at: tuple[float, ...] = (4, 24, 72, 168, 336)
    test_at: float = 336
    grid_size: int = 200
    robust: bool = False
    bootstrap: int = 2000
    seed: int = 1
    drop_studies: tuple[str, ...] = ()
    leave_one_out: bool = True
    level: float = 0.95

    @property
    def model(self) -> str:
        return self.basis


def parse_time_response_config(cfg: Mapping[str, object] | None, level: float) -> TimeResponseSpec:
    """The ``time_response:`` config section (schema-checked) as a spec; defaults fill gaps."""
    cfg = dict(cfg or {})
    base = TimeResponseSpec(level=float(level))
    unknown = sorted(set(cfg) - (set(base.__dataclass_fields__) - {"level"}))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown}", key="time_response")
    kw: dict[str, object] = {}
    for key, value in cfg.items():
        if value is None and key not in ("knots", "rho"):
            continue
        if key in ("knots", "n_knots_grid", "phi_grid", "rho_grid", "predict_at", "drop_studies"):
            value = None if value is None else tuple(value)  # type: ignore[arg-type]
        kw[key] = value
    spec = replace(base, **kw)  # type: ignore[arg-type]
    if spec.basis not in BASES:
        raise ConfigError(f"basis must be one of {BASES}", key="time_response.basis")
    return spec
