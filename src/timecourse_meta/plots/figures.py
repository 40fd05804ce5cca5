"""Shared figure style and byte-reproducible saving for all plots of the package.

Why: a reproducible workflow must give the same bytes for the same input. Matplotlib embeds
creation dates, the software version and (in SVG) random ids by default; here they are removed
or fixed (matplotlib docs: ``Figure.savefig`` ``metadata``; rcParams ``svg.hashsalt``), the
font is pinned to DejaVu Sans (shipped with matplotlib, so available everywhere) and PDF fonts
are embedded as TrueType (``pdf.fonttype`` 42) so that text stays editable in journals' tools.
The embedded fonts leave out the OpenType layout tables, which no PDF reader uses (see
:func:`_pdf_fonts_without_layout`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import matplotlib as mpl
from matplotlib.figure import Figure

__all__ = [
    "DPI",
    "FONT_FAMILY",
    "FONT_SIZE",
    "PALETTE",
    "STYLE",
    "save_figure",
    "style_context",
]

#: Raster resolution of saved PNGs (dots per inch); also the figures' own dpi so that text
#: measured while laying out a figure is measured at the resolution it is rendered at.
DPI = 300
FONT_FAMILY = "DejaVu Sans"
#: Base font size in points for table text, tick labels and annotations.
FONT_SIZE = 8.0

#: Colour-blind safe palette: seaborn's "colorblind" (seaborn/palettes.py, SEABORN_PALETTES,
#: after Wong 2011, Nat Methods 8:441), copied as hex so that drawing does not import seaborn.
_COLORBLIND_HEX = (
    "#0173B2", "#DE8F05", "#029E73", "#D55E00", "#CC78BC",
    "#CA9161", "#FBAFE4", "#949494", "#ECE133", "#56B4E9",
)  # fmt: skip
PALETTE: dict[str, tuple[float, float, float]] = {
    name: tuple(int(h[i : i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[misc]
    for name, h in zip(
        ["blue", "orange", "green", "red", "purple", "brown", "pink", "grey", "yellow", "cyan"],
        _COLORBLIND_HEX,
        strict=True,
    )
}

#: rcParams applied while building and while saving every figure.
STYLE: dict[str, object] = {
    "font.family": "sans-serif",
    "font.sans-serif": [FONT_FAMILY],
    "font.size": FONT_SIZE,
    "mathtext.fontset": "dejavusans",
    "text.usetex": False,
    "axes.unicode_minus": True,
    "axes.formatter.use_mathtext": False,
    "axes.linewidth": 0.8,
    "axes.titlesize": FONT_SIZE + 1,
    "axes.labelsize": FONT_SIZE,
    "xtick.labelsize": FONT_SIZE,
    "ytick.labelsize": FONT_SIZE,
    "legend.fontsize": FONT_SIZE - 0.5,
    "legend.frameon": False,
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "savefig.transparent": False,
    "savefig.bbox": None,
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "pdf.compression": 6,
    "svg.hashsalt": "timecourse_meta",
    "svg.fonttype": "path",
    "path.simplify": True,
}

# Metadata that would otherwise carry the date or the software version into the file.
_METADATA: dict[str, dict[str, None]] = {
    "png": {"Software": None},
    "pdf": {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None},
    "svg": {"Date": None, "Creator": None},
}


@contextlib.contextmanager
def style_context() -> Iterator[None]:
    """Apply :data:`STYLE` for the duration of a ``with`` block (never changes global state)."""
    with mpl.rc_context(STYLE):
        yield


#: OpenType layout tables (substitution, positioning, glyph classes; OpenType spec 1.9,
#: "Advanced Typographic Tables") that the PDF's embedded font subsets leave out. A PDF places
#: every glyph itself (matplotlib lays the text out before it saves; ISO 32000-1 9.4), so a
#: reader never applies them. Parsing them was most of fontTools' subsetting time, itself most
#: of the time to save a PDF (0.082 -> 0.030 s per embedded DejaVu Sans, benchmarks/RESULTS.md).
PDF_DROPPED_FONT_TABLES = ("GSUB", "GPOS", "GDEF")


@contextlib.contextmanager
def _pdf_fonts_without_layout() -> Iterator[None]:
    """Subset PDF fonts without :data:`PDF_DROPPED_FONT_TABLES` for a ``with`` block.

    matplotlib's PDF backend builds its own ``fontTools.subset.Options`` (backends/
    _backend_pdf_ps.py, ``get_glyphs_subset``), so the class default of ``drop_tables`` is
    extended for the block and restored after it (tests/test_plots.py checks both).
    """
    from fontTools import subset

    default = subset.Options._drop_tables_default
    subset.Options._drop_tables_default = [*default, *PDF_DROPPED_FONT_TABLES]
    try:
        yield
    finally:
        subset.Options._drop_tables_default = default


def _targets(path: Path, formats: Iterable[str]) -> list[Path]:
    """Output paths: ``path`` without a known image suffix, plus one suffix per format."""
    known = {f".{f}" for f in _METADATA}
    base = path.with_suffix("") if path.suffix.lower() in known else path
    return [base.parent / f"{base.name}.{fmt}" for fmt in formats]


def save_figure(
    fig: Figure, path: str | os.PathLike[str], *, formats: Iterable[str] | None = None
) -> list[Path]:
    """Write ``fig`` with byte-identical output on every call; returns the paths written.

    ``formats`` names the formats; one file per format is written next to ``path`` with the
    format's suffix. Without it, a ``path`` ending in ``.png``/``.pdf``/``.svg`` is written in
    that format only (``out/forest_24h.png`` gives ``out/forest_24h.png``) and a ``path``
    without one as PNG and PDF (``out/forest_24h`` gives both), so a script that names each of
    its outputs writes each once. Reproducibility: fixed dpi, timestamps and software/producer
    strings removed from the metadata, fixed SVG hash salt, fonts pinned (see module
    docstring). The figure is saved exactly at its own size (no ``bbox_inches="tight"``
    cropping, which could change with the renderer).
    """
    if formats is None:
        suffix = Path(path).suffix.lower().lstrip(".")
        formats = [suffix] if suffix in _METADATA else ["png", "pdf"]
    formats = [f.lower().lstrip(".") for f in formats]
    unknown = sorted(set(formats) - set(_METADATA))
    if unknown:
        raise ValueError(f"unsupported figure format(s) {unknown}; use {sorted(_METADATA)}")
    out = _targets(Path(path), formats)
    for target in out:
        target.parent.mkdir(parents=True, exist_ok=True)
    with style_context(), _pdf_fonts_without_layout():
        for fmt, target in zip(formats, out, strict=True):
            fig.savefig(target, format=fmt, dpi=DPI, metadata=_METADATA[fmt])
    return out


def placeholder_figure(message: str, *, width_in: float = 4.0) -> Figure:
    """A small figure that only says why there is nothing to draw (e.g. no effects in a window).

    Used where a rule must still write its figure so that the run finishes with empty tables
    and "not testable" verdicts instead of failing.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    with style_context():
        fig = Figure(figsize=(width_in, 1.0), dpi=DPI)
        FigureCanvasAgg(fig)
        fig.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return fig
