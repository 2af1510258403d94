"""Paper figures drawn from the collected runs table (`audioprune.tables.collect`), never by
re-running a model.

Every figure function takes the runs table (one row per run: model, dataset, selector, segments,
retention, kept_tokens, timings, every metric as a column) and returns `(Figure, data)`, where
`data` is the long table of exactly the values drawn (one row per point: panel, series, x, y,
`source` = ours / paper / unpruned / bound, and for our points the run folder and the runs-table
column the value came from). `save_figure` writes both: PNG + PDF + CSV.

The functions are generic over the x column (retention, segments, kept tokens, GMACs...), the
metric columns (one panel per `Panel(dataset, metric)`) and the hue column (selector), so other
model families plug in with their own columns. Figures are built on matplotlib's Agg canvas
without pyplot: no window opens and the global backend is left alone. Sizes follow a two-column
paper: `COLUMN_WIDTH` for one panel, `TEXT_WIDTH` for a row of panels, 7-8 pt fonts.

The package: `style` (sizes, colours, `Panel`, `save_figure`, shared drawing helpers), `alm`
(metric vs retention, segments sweep, efficiency), `attention` (attention analysis) and
`classifier` (classifier family). The names below are the public ones, importable from here.
"""

from audioprune.figures.alm import efficiency, metric_vs_retention, segments_sweep
from audioprune.figures.attention import concentration_figure, coverage_figure, kept_token_map
from audioprune.figures.classifier import accuracy_vs_gmacs, tau_per_block
from audioprune.figures.style import (
    COLUMN_WIDTH,
    EXTRA_COLORS,
    EXTRA_MARKERS,
    PANEL_HEIGHT,
    SELECTOR_COLORS,
    SELECTOR_LABELS,
    SELECTOR_MARKERS,
    STYLE,
    TEXT_WIDTH,
    Panel,
    column_label,
    new_figure,
    save_figure,
    selector_color,
    selector_display_name,
    selector_marker,
)

__all__ = [
    "COLUMN_WIDTH",
    "EXTRA_COLORS",
    "EXTRA_MARKERS",
    "PANEL_HEIGHT",
    "SELECTOR_COLORS",
    "SELECTOR_LABELS",
    "SELECTOR_MARKERS",
    "STYLE",
    "TEXT_WIDTH",
    "Panel",
    "accuracy_vs_gmacs",
    "column_label",
    "concentration_figure",
    "coverage_figure",
    "efficiency",
    "kept_token_map",
    "metric_vs_retention",
    "new_figure",
    "save_figure",
    "segments_sweep",
    "selector_color",
    "selector_display_name",
    "selector_marker",
    "tau_per_block",
]
