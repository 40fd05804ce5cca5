"""Text of the forest plot: numbers, p-values, heterogeneity and test lines, titles, notes.

Pure string functions (no matplotlib) so that every label can be tested without drawing.
Number style follows the Cochrane RevMan forest plot: two decimals, a true minus sign,
p-values in APA style.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from timecourse_meta.schema import TIME_UNIT_HOURS, TIME_UNIT_SYMBOLS

__all__ = [
    "ci_text",
    "format_p",
    "greek",
    "heterogeneity_text",
    "num",
    "overall_test_text",
    "title_text",
    "window_text",
]

MINUS = "\u2212"
ELLIPSIS = "\u2026"
_GREEK = (
    (re.compile(r"\btau\s*\^\s*2"), "\u03c4\u00b2"),
    (re.compile(r"\btau2\b"), "\u03c4\u00b2"),
    (re.compile(r"\bI\s*\^\s*2"), "I\u00b2"),
    (re.compile(r"\bchi\s*\^\s*2"), "\u03c7\u00b2"),
    (re.compile(r"\btau\b"), "\u03c4"),
)


def to_float(x: object) -> float:
    """Float or NaN for None / missing / non-numeric."""
    if x is None:
        return math.nan
    try:
        return float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def num(x: object, digits: int = 2) -> str:
    """Fixed-decimals number with a true minus sign; 'NA' when missing."""
    v = to_float(x)
    if not math.isfinite(v):
        return "NA"
    s = f"{v:.{digits}f}"
    if float(s) == 0.0:
        s = s.lstrip("-")  # no "-0.00"
    return s.replace("-", MINUS)


def small(x: object) -> str:
    """tau^2 style: 2 decimals, or 2 significant digits below 0.01 (so 0.003 is not '0.00')."""
    v = to_float(x)
    if not math.isfinite(v):
        return "NA"
    if v == 0.0:
        return "0"
    if abs(v) >= 0.01:
        return num(v, 2)
    return f"{v:.2g}".replace("-", MINUS)


def format_p(p: object) -> str:
    """'p = 0.017' / 'p < 0.001' / 'p > 0.99'; two significant digits otherwise (APA style)."""
    v = to_float(p)
    if not math.isfinite(v):
        return "p = NA"
    if v < 0.001:
        return "p < 0.001"
    if v > 0.99:
        return "p > 0.99"
    return f"p = {float(f'{v:.2g}'):g}"


def df_text(df: object) -> str:
    v = to_float(df)
    if not math.isfinite(v):
        return "NA"
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.1f}"


def ci_text(est: object, lo: object, hi: object) -> str:
    return f"{num(est)} [{num(lo)}, {num(hi)}]"


def int_text(x: object) -> str:
    v = to_float(x)
    return f"{v:.0f}" if math.isfinite(v) else "NR"


def greek(s: str) -> str:
    """Model notes with Greek letters: 'tau^2' -> 'τ²', 'I^2' -> 'I²', 'chi^2' -> 'χ²'."""
    for pattern, repl in _GREEK:
        s = pattern.sub(repl, s)
    return s


def truncate(label: str, max_chars: int) -> str:
    return label if len(label) <= max_chars else label[: max_chars - 1].rstrip() + ELLIPSIS


def heterogeneity_text(pooled: Mapping[str, object]) -> str:
    """'Heterogeneity: τ² = 0.12; I² = 45%; Q = 10.21 (df = 7, p = 0.18)'.

    ``I2`` is read as a percentage (metafor's ``I2``); missing values print as 'NA'.
    """
    i2 = to_float(pooled.get("I2"))
    i2_txt = f"{i2:.0f}%" if math.isfinite(i2) else "NA"
    return (
        f"Heterogeneity: \u03c4\u00b2 = {small(pooled.get('tau2'))}; I\u00b2 = {i2_txt}; "
        f"Q = {num(pooled.get('Q'))} (df = {df_text(pooled.get('Q_df'))}, "
        f"{format_p(pooled.get('Q_p'))})"
    )


def overall_test_text(pooled: Mapping[str, object]) -> str:
    """'Test for overall effect: t = 3.10 (df = 7), p = 0.017' (or 'z = 3.10, p = 0.002')."""
    name = str(pooled.get("stat_name") or "z")
    df = to_float(pooled.get("df"))
    df_part = f" (df = {df_text(df)})" if math.isfinite(df) else ""
    return (
        f"Test for overall effect: {name} = {num(pooled.get('stat'))}{df_part}, "
        f"{format_p(pooled.get('pval'))}"
    )


def _bound(hours: float, unit: str) -> str:
    v = hours / TIME_UNIT_HOURS[_UNIT_NAMES.get(unit, unit)]
    return f"{float(f'{v:.6g}'):g}"


# unit symbols ('h', 'd', 'wk', ...) -> unit names (schema.TIME_UNIT_HOURS)
_UNIT_NAMES = {symbol: name for name, symbol in TIME_UNIT_SYMBOLS.items()}


def window_text(
    label: str, low: float | None = None, high: float | None = None, unit: str = "h"
) -> str:
    """'window 3d (60–84 h)' or, with unit 'd' (or 'days'), 'window 3d (2.5–3.5 d)'; bounds
    given in hours, shown in `unit` (a time unit or its symbol, schema.TIME_UNIT_SYMBOLS); a
    window of one time: 'window 2wk (2 wk)' (a no-break space keeps number and unit together)."""
    lo, hi = to_float(low), to_float(high)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"window {label}"
    symbol = TIME_UNIT_SYMBOLS.get(unit, unit)
    if lo == hi:
        return f"window {label} ({_bound(lo, unit)}\u00a0{symbol})"
    return f"window {label} ({_bound(lo, unit)}\u2013{_bound(hi, unit)}\u00a0{symbol})"


def title_text(
    *,
    intervention: str = "Treatment",
    comparator: str = "control",
    outcome: str = "",
    window: str = "",
    model: str = "",
) -> str:
    """'Ketamine vs placebo: depression score, window 3d (60–84 h after dose); REML, KH'."""
    head = f"{intervention[:1].upper()}{intervention[1:]} vs {comparator}"
    parts = [p for p in (outcome, window) if p]
    s = f"{head}: {', '.join(parts)}" if parts else head
    return f"{s}; {model}" if model else s
