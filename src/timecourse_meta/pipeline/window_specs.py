"""Time windows: their definitions, units, and windows derived from the reported times.

A window (label, low, high, nominal; bounds inclusive) collects the reported times that fall
inside it. Config windows are given in config `time_unit` and used in hours; `windows: null`
derives one window per distinct reported time (`derive_windows`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from timecourse_meta.errors import ConfigError
from timecourse_meta.schema import TIME_UNIT_HOURS, TIME_UNIT_SYMBOLS

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "KETAMINE_WINDOWS",
    "RULES",
    "check_windows",
    "derive_windows",
    "outside_warning",
    "parse_windows",
    "unit_hours",
    "window_specs",
    "windows_in_hours",
]

# The ketamine review's windows (config/ketamine.yaml; the onset/duration claims of the
# published meta-analyses): label, low, high, nominal in hours, bounds inclusive. For tests and
# examples only: no code path falls back to them (tests/test_windows.py checks they match).
KETAMINE_WINDOWS: tuple[dict[str, float | str], ...] = (
    {"label": "4h", "low": 2, "high": 6, "nominal": 4},
    {"label": "24h", "low": 18, "high": 30, "nominal": 24},
    {"label": "3d", "low": 60, "high": 84, "nominal": 72},
    {"label": "7d", "low": 144, "high": 192, "nominal": 168},
    {"label": "14d", "low": 312, "high": 360, "nominal": 336},
)
RULES: tuple[str, ...] = ("closest_to_nominal", "earliest", "latest")


def check_windows(spec: Sequence[Mapping[str, object]]) -> dict[str, list]:
    """Validate window definitions; return their columns (label, low, high, nominal) in config
    order, as lists (no pandas: Snakemake's parse checks the config with it).

    Each window needs a unique label and low <= nominal <= high; windows may not overlap, so a
    reported time belongs to at most one window. `nominal` defaults to the midpoint.
    """
    if spec is None:  # no silent fallback to one review's windows
        raise ConfigError(
            "no time windows given: list them, or set windows: null in the config to derive "
            "them from the reported times",
            key="windows",
        )
    items = list(spec)
    if not items:
        raise ConfigError("at least one time window is required", key="windows")
    columns: dict[str, list] = {"label": [], "low": [], "high": [], "nominal": []}
    for i, item in enumerate(items):
        label = str(item.get("label", "")).strip()
        if not label:
            raise ConfigError(f"window {i + 1} has no label", key="windows")
        try:
            low, high = float(item["low"]), float(item["high"])  # type: ignore[arg-type]
            nominal = float(item.get("nominal", (low + high) / 2))  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError):
            raise ConfigError(
                f"window '{label}' needs numeric low and high (hours)", key="windows"
            ) from None
        if not (0 <= low <= nominal <= high):
            raise ConfigError(
                f"window '{label}' must satisfy 0 <= low <= nominal <= high "
                f"(got low={low:g}, nominal={nominal:g}, high={high:g})",
                key="windows",
            )
        for key, value in zip(columns, (label, low, high, nominal), strict=True):
            columns[key].append(value)
    seen: set[str] = set()
    for label in columns["label"]:  # the first label given a second time
        if label in seen:
            raise ConfigError(f"window label '{label}' is used twice", key="windows")
        seen.add(label)
    ordered = sorted(range(len(items)), key=lambda k: columns["low"][k])
    for a, b in zip(ordered[:-1], ordered[1:], strict=True):
        if columns["low"][b] <= columns["high"][a]:
            raise ConfigError(
                f"windows '{columns['label'][a]}' and '{columns['label'][b]}' overlap",
                key="windows",
            )
    return columns


def parse_windows(spec: Sequence[Mapping[str, object]]) -> pd.DataFrame:
    """The windows of :func:`check_windows` as a frame (label, low, high, nominal)."""
    import pandas as pd

    return pd.DataFrame(check_windows(spec))


def unit_hours(unit: str, key: str = "time_unit") -> float:
    """Hours per `unit` (schema.TIME_UNIT_HOURS); ConfigError naming `key` for another word."""
    if unit not in TIME_UNIT_HOURS:
        raise ConfigError(
            f"unknown time unit {unit!r}, expected one of {', '.join(TIME_UNIT_HOURS)}", key=key
        )
    return TIME_UNIT_HOURS[unit]


def windows_in_hours(
    spec: Sequence[Mapping[str, object]], unit: str = "hours"
) -> list[dict[str, object]]:
    """Config windows given in `unit` (config `time_unit`) as windows in hours (low, high and
    nominal multiplied by the unit's hours, schema.TIME_UNIT_HOURS); labels unchanged.

    Values that are not numbers are passed through, so that `parse_windows` reports them.
    """
    factor = unit_hours(unit)
    out = []
    for item in spec:
        converted = dict(item)
        for bound in ("low", "high", "nominal"):
            value = converted.get(bound)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                converted[bound] = float(value) * factor if factor != 1.0 else value
        out.append(converted)
    return out


def _unit_label(value: float, symbol: str, digits: int) -> str:
    return f"{float(f'{value:.{digits}g}'):g}{symbol}"


def derive_windows(times_hours: Sequence[float], unit: str = "hours") -> list[dict[str, object]]:
    """Windows derived from the data (config `windows: null`): one per distinct reported time.

    Each window is one time exactly (low = high = nominal = that time, in hours), labelled in
    the display `unit` with 4 significant digits and the unit's symbol, without a space so that
    the label can name files ("4h", "2wk"; figures show "4 h", "2 wk"; more digits when two
    times would get one label). Non-finite and non-positive times are ignored (such rows are
    excluded later with their reason). Windows are ordered by time; ConfigError when no time
    is left.
    """
    factor = unit_hours(unit)
    values = np.asarray(list(times_hours), dtype=float)
    values = np.unique(values[np.isfinite(values) & (values > 0)])
    if values.size == 0:
        raise ConfigError(
            "windows: null derives one window per reported time, but the sheets report no "
            "time (time_hours); give windows explicitly",
            key="windows",
        )
    symbol = TIME_UNIT_SYMBOLS[unit]
    for digits in (4, 6, 8, 10, 12, 15, 17):
        labels = [_unit_label(v / factor, symbol, digits) for v in values]
        if len(set(labels)) == len(labels):
            break
    return [
        {"label": lab, "low": float(v), "high": float(v), "nominal": float(v)}
        for lab, v in zip(labels, values, strict=True)
    ]


def window_specs(
    spec: Sequence[Mapping[str, object]] | None,
    unit: str = "hours",
    times_hours: Sequence[float] | None = None,
) -> list[dict[str, object]]:
    """The windows the workflow uses, in hours: config `windows` (given in `unit`) converted,
    or, when `spec` is None, `derive_windows` of the reported times. Checked by `parse_windows`.
    """
    if spec is None:
        if times_hours is None:
            raise ConfigError("windows: null needs the reported times", key="windows")
        items = derive_windows(times_hours, unit)
    else:
        items = windows_in_hours(spec, unit)
    check_windows(items)
    return items


def outside_warning(
    n_outside: int, n_rows: int, windows: pd.DataFrame, unit: str = "hours"
) -> str | None:
    """A warning when most rows (more than half) fall outside every window, else None.

    "N of M rows fall outside every window (windows: 4 h: 2-6 h, ...)": with windows that do
    not match the sheets' times (e.g. hours given where the config's `time_unit` is weeks),
    almost nothing would be analysed without a word. Bounds shown in `unit`.
    """
    if n_rows <= 0 or 2 * n_outside <= n_rows:
        return None
    factor, symbol = unit_hours(unit), TIME_UNIT_SYMBOLS[unit]

    def shown(label: object, low: float, high: float) -> str:
        low, high = float(low) / factor, float(high) / factor
        span = f"{low:.4g}" if low == high else f"{low:.4g}\u2013{high:.4g}"
        return f"{label}: {span} {symbol}"

    columns = (windows[c] for c in ("label", "low", "high"))
    listed = "; ".join(shown(*r) for r in zip(*columns, strict=True))
    return f"{n_outside} of {n_rows} rows fall outside every window (windows: {listed})"
