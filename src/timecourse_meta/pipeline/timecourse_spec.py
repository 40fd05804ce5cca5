"""Settings of the multivariate time-course model: config `timecourse`, checked against the
configured windows (structures, estimation method, within-study correlation, contrasts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from timecourse_meta.errors import ConfigError
from timecourse_meta.models.mv_structures import CATEGORICAL_STRUCTS as STRUCTS
from timecourse_meta.models.mv_structures import METHODS, WITHIN_KINDS, check_within
from timecourse_meta.models.mv_structures import STRUCTS as ALL_STRUCTS

__all__ = ["TimecourseSpec", "default_contrasts", "parse_timecourse_config"]


@dataclass(frozen=True)
class TimecourseSpec:
    """Settings of the multivariate model (config key ``timecourse``).

    ``contrasts``: pairs (a, b) estimated as mean(a) - mean(b). ``maxiter`` caps the optimiser
    (not a config key; lowered only in tests).
    """

    struct: str = "HAR"
    within: str = "ar"
    rho: float = 0.5
    method: str = "REML"
    level: float = 0.95
    rho_grid: tuple[float, ...] = (0.2, 0.5, 0.8)
    structures: tuple[str, ...] = STRUCTS
    contrasts: tuple[tuple[str, str], ...] = ()
    maxiter: int = 2000
    # log of each window's nominal hours: the numeric time of struct CAR and within "car"
    # (set by build_timecourse_tables from the windows)
    log_hours: tuple[tuple[str, float], ...] = ()


AUTO_CONTRASTS = "auto"


def default_contrasts(timepoints: Sequence[str]) -> list[list[str]]:
    """Contrasts used when config `timecourse.contrasts` is `auto` (the default): the earliest
    window against each later one, i.e. how the effect changes after the first window. Derived
    from the configured windows, so any labels (one window: no contrast) work."""
    return [[str(timepoints[0]), str(t)] for t in timepoints[1:]]


def parse_timecourse_config(
    spec: Mapping[str, object] | None, timepoints: Sequence[str], level: float = 0.95
) -> TimecourseSpec:
    """Validate config ``timecourse`` against the configured windows; ConfigError naming the key."""
    spec = dict(spec or {})
    base = TimecourseSpec(level=float(level))

    def key(name: str) -> str:
        return f"timecourse.{name}"

    struct = str(spec.get("struct", base.struct)).upper()
    if struct not in ALL_STRUCTS:
        raise ConfigError(f"'{struct}' is not one of {', '.join(ALL_STRUCTS)}", key=key("struct"))
    structures = tuple(str(s).upper() for s in spec.get("structures", base.structures))  # type: ignore[union-attr]
    bad = [s for s in structures if s not in ALL_STRUCTS]
    if bad or not structures or len(set(structures)) != len(structures):
        raise ConfigError(
            f"needs distinct structures from {', '.join(ALL_STRUCTS)} (got {list(structures)})",
            key=key("structures"),
        )
    method = str(spec.get("method", base.method)).upper()
    if method not in METHODS:
        raise ConfigError(f"'{method}' is not one of {', '.join(METHODS)}", key=key("method"))
    within = str(spec.get("within", base.within)).lower()
    if within not in WITHIN_KINDS:
        raise ConfigError(f"'{within}' is not one of {', '.join(WITHIN_KINDS)}", key=key("within"))

    def rhos(name: str, values: object) -> tuple[float, ...]:
        try:
            return tuple(check_within(within, r)[1] for r in values)  # type: ignore[attr-defined]
        except (TypeError, ValueError) as err:
            raise ConfigError(str(err), key=key(name)) from None

    (rho,) = rhos("rho", [spec.get("rho", base.rho)])
    grid = rhos("rho_grid", spec.get("rho_grid", base.rho_grid))
    if not grid:
        raise ConfigError("needs at least one value", key=key("rho_grid"))
    pairs = []
    written = spec.get("contrasts", AUTO_CONTRASTS)
    if written == AUTO_CONTRASTS:  # derived from the configured windows, whatever they are
        written = default_contrasts(timepoints)
    for pair in written or []:  # type: ignore[union-attr]
        items = [str(x) for x in pair] if isinstance(pair, Sequence) else []
        if isinstance(pair, str) or len(items) != 2 or items[0] == items[1]:
            raise ConfigError(
                f"each contrast is a pair of two different windows, got {pair!r}",
                key=key("contrasts"),
            )
        unknown = [w for w in items if w not in timepoints]
        if unknown:
            raise ConfigError(
                f"window(s) {unknown} are not configured windows ({', '.join(timepoints)})",
                key=key("contrasts"),
            )
        pairs.append((items[0], items[1]))
    return replace(
        base,
        struct=struct,
        within=within,
        rho=rho,
        method=method,
        rho_grid=grid,
        structures=structures,
        contrasts=tuple(pairs),
    )


# --------------------------------------------------------------------------------------------
# data and fitting
