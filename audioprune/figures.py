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
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

log = logging.getLogger(__name__)
# fontTools (PDF font subsetting) logs every table it prunes at INFO under Hydra's root logger.
logging.getLogger("fontTools").setLevel(logging.WARNING)

COLUMN_WIDTH = 3.4  # inches: one column of a two-column paper (ICASSP / NeurIPS style)
TEXT_WIDTH = 7.0  # inches: full text width
PANEL_HEIGHT = 1.75  # inches per row of panels

STYLE = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "lines.linewidth": 1.2,
    "lines.markersize": 4,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "savefig.dpi": 150,
    "pdf.fonttype": 42,  # TrueType in the PDF: editable text, accepted by conference checkers
}

# Okabe-Ito (colour-blind safe) for the selectors of the papers; markers differ too, so lines
# stay apart in greyscale print.
SELECTOR_COLORS = {
    "none": "#000000",
    "segmentwise_topk": "#D55E00",
    "topk": "#0072B2",
    "visionzip": "#009E73",
    "random": "#999999",
    "bottomk": "#CC79A7",
    "uniform": "#E69F00",
}
# Stable colours for every other selector name (picked by a hash of the name, not by order, so
# a selector keeps its colour whichever runs a figure holds).
EXTRA_COLORS = ["#56B4E9", "#882255", "#44AA99", "#117733", "#332288", "#AA4499", "#DDCC77", "#88CCEE", "#661100", "#6699CC", "#999933", "#AA4466"]  # fmt: skip
SELECTOR_MARKERS = {"none": "s", "segmentwise_topk": "o", "topk": "^", "visionzip": "D", "random": "v", "bottomk": "X", "uniform": "P"}  # fmt: skip
EXTRA_MARKERS = ["<", ">", "h", "p", "*", "d", "8", "H"]
SELECTOR_LABELS = {"none": "Unpruned", "topk": "Top-K", "bottomk": "Bottom-K", "random": "Random", "uniform": "Uniform", "segmentwise_topk": "Segmentwise Top-K", "visionzip": "VisionZip"}  # fmt: skip
DATASET_LABELS = {"clotho_v2": "Clotho v2", "audiocaps": "AudioCaps", "clotho_aqa": "ClothoAQA unanimous", "clotho_aqa_non_binary": "ClothoAQA non-binary", "mmau_test_mini": "MMAU test-mini", "synthetic_captions": "synthetic captions", "synthetic_aqa": "synthetic AQA", "synthetic_mmau": "synthetic MMAU"}  # fmt: skip
# Column -> axis label with its unit.
COLUMN_LABELS = {
    "retention": "retention",
    "segments": "segments S",
    "kept_tokens": "kept audio tokens per clip",
    "prefill_ms": "LLM prefill (ms)",
    "decode_ms_per_token": "decoding (ms / token)",
    "prefill_tflops": "LLM prefill (TFLOPs, analytic)",
    "audio_ms": "audio path (ms)",
    "peak_mem_mb": "peak memory (MB)",
    "cider_d": "CIDEr-D",
    "bleu_4": "BLEU-4",
    "meteor": "METEOR",
    "rouge_l": "ROUGE-L",
    "accuracy": "accuracy (%)",
    "overall": "accuracy (%)",
    "gmacs": "GMACs per clip",
    "wer": "WER (%)",
    "cer": "CER (%)",
    "covered_fraction": "fraction of segments",
    "longest_gap_s": "gap (s)",
    "max_segment_share": "share of kept tokens",
}
FULL_WINDOW_TOKENS = 750  # Whisper-style encoders: 25 tokens/s x 30 s
PAPER_STYLE = {"markerfacecolor": "none", "markeredgewidth": 1.1, "linestyle": "none"}


def _hash_index(name: str, size: int) -> int:
    return int(hashlib.sha256(name.encode()).hexdigest(), 16) % size


def selector_color(name: str) -> str:
    """The colour of a selector in every figure (hex); unknown names get a stable colour."""
    return SELECTOR_COLORS.get(name) or EXTRA_COLORS[_hash_index(name, len(EXTRA_COLORS))]


def selector_marker(name: str) -> str:
    return SELECTOR_MARKERS.get(name) or EXTRA_MARKERS[_hash_index(name, len(EXTRA_MARKERS))]


def selector_display_name(name: str) -> str:
    """The selector's name in legends and axis labels (the paper's spelling, e.g. "Top-K")."""
    return SELECTOR_LABELS.get(name, name)


def column_label(column: str) -> str:
    """Axis label (with unit) of a runs-table column, e.g. 'sbert.speech' -> 'speech acc. (%), SBERT'."""
    if column in COLUMN_LABELS:
        return COLUMN_LABELS[column]
    if column.startswith("relative_drop."):
        inner = column_label(column.split(".", 1)[1]).replace(" (%)", "")
        return f"rel. change in {inner} (%)"
    if column.rpartition(".")[2] in ("overall", "sound", "music", "speech"):
        return "accuracy (%)"
    return column


@dataclass(frozen=True)
class Panel:
    """One axes: a metric column of the runs table on one dataset."""

    dataset: str
    metric: str
    label: str | None = None  # title; default: the dataset (and the metric's variant)

    @property
    def title(self) -> str:
        """Dataset, plus the metric's variant when the y label alone does not name it."""
        if self.label:
            return self.label
        name = DATASET_LABELS.get(self.dataset, self.dataset)
        head, _, tail = self.metric.rpartition(".")
        if tail in ("overall", "sound", "music", "speech"):
            name = name.replace(" test-mini", "")
            return f"{name} {tail}" + (
                f" ({head.upper() if head == 'sbert' else head})" if head else ""
            )
        return name


def styled(function: Callable) -> Callable:
    """Run a figure function under the paper style (fonts are fixed when artists are created)."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return function(*args, **kwargs)

    return wrapper


def new_figure(panels: int, ncols: int | None = None, height: float = PANEL_HEIGHT):
    """An Agg-backed figure sized for print: one column for one panel, text width otherwise."""
    ncols = ncols or min(panels, 4)
    nrows = math.ceil(panels / ncols)
    width = COLUMN_WIDTH if ncols == 1 else TEXT_WIDTH
    if ncols == 1:  # the legend takes a larger share of a narrow figure
        height = max(height, 2.3)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(width, height * nrows + 0.45), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[panels:]:
        ax.set_visible(False)
    return fig, list(axes[:panels])


def save_figure(fig: Figure, stem: Path, data: pd.DataFrame) -> list[Path]:
    """Write stem.png, stem.pdf and stem.csv (the plotted values); returns the three paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf"), stem.with_suffix(".csv")]
    with matplotlib.rc_context(STYLE):
        fig.savefig(paths[0])
        fig.savefig(paths[1])
    data.to_csv(paths[2], index=False)
    return paths


# ---------------------------------------------------------------- selecting what is drawn


def _rows_for(runs: pd.DataFrame, dataset: str, aliases: Mapping[str, str] | None) -> pd.DataFrame:
    """Runs of `dataset`, or of the dataset standing in for it (tiny runs: synthetic data)."""
    names = {dataset}
    if aliases and dataset in aliases:
        names.add(aliases[dataset])
    return runs[runs["dataset"].isin(names)]


def _ours(
    runs: pd.DataFrame,
    panel: Panel,
    x: str,
    column: str,
    hue: str,
    scale: float = 1.0,
    aliases: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Our points of one panel: [series, x, y, run_dir, column, scale], NaN values dropped."""
    rows = _rows_for(runs, panel.dataset, aliases)
    if column not in rows.columns or x not in rows.columns:
        return pd.DataFrame(
            columns=["series", "x", "y", "run_dir", "run_dataset", "column", "scale"]
        )
    rows = rows[rows[column].notna() & rows[x].notna()]
    out = pd.DataFrame(
        {
            "series": rows[hue].astype(str).to_numpy(),
            "x": rows[x].astype(float).to_numpy(),
            "y": rows[column].astype(float).to_numpy() * scale,
            "run_dir": rows["run_dir"].to_numpy() if "run_dir" in rows else None,
            "run_dataset": rows["dataset"].astype(str).to_numpy(),
            "column": column,
            "scale": scale,
        }
    )
    duplicated = out.duplicated(["series", "x"])
    if duplicated.any():
        log.warning(
            "%s / %s: several runs share a (%s, %s) point; filter the runs table first",
            panel.dataset,
            column,
            hue,
            x,
        )
    return out.sort_values(["series", "x"]).reset_index(drop=True)


def _reference_points(reference: pd.DataFrame | None, panel: Panel, x: str) -> pd.DataFrame:
    """Published values of one panel: [series, x, y] (reference columns dataset, metric,
    selector, value and the x column; none when the reference has no such column)."""
    if reference is None or reference.empty:
        return pd.DataFrame(columns=["series", "x", "y"])
    ref = reference[(reference["dataset"] == panel.dataset) & (reference["metric"] == panel.metric)]
    if x not in ref.columns:  # e.g. GMACs for a paper that reports retention only
        return pd.DataFrame(columns=["series", "x", "y"])
    xs = ref[x]
    return pd.DataFrame(
        {
            "series": ref["selector"].astype(str),
            "x": xs.astype(float),
            "y": ref["value"].astype(float),
        }
    ).reset_index(drop=True)


def _tag(frame: pd.DataFrame, **columns) -> pd.DataFrame:
    frame = frame.copy()
    for name, value in columns.items():
        frame[name] = value
    return frame


def _series_order(names) -> list[str]:
    known = list(SELECTOR_COLORS)
    return sorted(set(names), key=lambda n: (known.index(n) if n in known else len(known), n))


def _draw_series(ax, ours: pd.DataFrame, paper: pd.DataFrame, skip: Sequence[str] = ()) -> None:
    for name in _series_order([*ours["series"], *paper["series"]]):
        if name in skip:
            continue
        color, marker = selector_color(name), selector_marker(name)
        mine = ours[ours["series"] == name]
        if len(mine):
            ax.plot(
                mine["x"], mine["y"], color=color, marker=marker, label=selector_display_name(name)
            )
        theirs = paper[paper["series"] == name]
        if len(theirs):
            ax.plot(theirs["x"], theirs["y"], color=color, marker=marker, **PAPER_STYLE)


def _legend(fig: Figure, series: Sequence[str], extra: Sequence[Line2D] = ()) -> None:
    handles = [
        Line2D(
            [],
            [],
            color=selector_color(n),
            marker=selector_marker(n),
            label=selector_display_name(n),
        )
        for n in _series_order(series)
    ]
    handles += list(extra)
    if handles:
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncol=min(len(handles), 2 if fig.get_figwidth() < 4 else 5),
            frameon=False,
            handlelength=1.8,
            columnspacing=1.2,
        )


PAPER_HANDLE = Line2D([], [], color="0.3", marker="o", label="paper (hollow)", **PAPER_STYLE)


def _retention_axis(ax, values) -> None:
    values = sorted({float(v) for v in values if v and v > 0})
    ax.set_xscale("log")
    if values:
        ax.set_xticks(values, [f"{v:.0%}" for v in values])
        ax.set_xlim(min(values) / 1.25, max(values) * 1.25)
    ax.minorticks_off()


def _stand_in_note(fig: Figure, parts: Sequence[tuple[Panel, pd.DataFrame]]) -> None:
    """Say once, above the panels, when our runs are on stand-in datasets (tiny runs)."""
    pairs = {
        (DATASET_LABELS.get(p.dataset, p.dataset), DATASET_LABELS.get(d, d))
        for p, ours in parts
        for d in set(ours.get("run_dataset", []))
        if d != p.dataset
    }
    if pairs:
        used = ", ".join(sorted({d for _, d in pairs}))
        sep = "\n" if fig.get_figwidth() < 4 else " "
        fig.suptitle(f"ours on stand-in data ({used}):{sep}a plumbing check, not comparable with the paper", fontsize=7, color="0.3")  # fmt: skip


def _empty(ax, text: str) -> None:
    ax.text(0.97, 0.04, text, ha="right", va="bottom", transform=ax.transAxes, fontsize=6, color="0.4", bbox={"facecolor": "white", "alpha": 0.8, "linewidth": 0, "pad": 1})  # fmt: skip


# ---------------------------------------------------------------- figures


@styled
def metric_vs_retention(
    runs: pd.DataFrame,
    panels: Sequence[Panel],
    reference: pd.DataFrame | None = None,
    *,
    x: str = "retention",
    hue: str = "selector",
    aliases: Mapping[str, str] | None = None,
    relative: bool = False,
) -> tuple[Figure, pd.DataFrame]:
    """One panel per dataset x metric: the metric against `x`, one line per `hue` value.

    runs: the collected runs table (one model); reference: published values (columns dataset,
    metric, selector, retention, value), drawn as hollow markers of the series' colour.
    The unpruned run (selector none) is a dotted horizontal line. relative=True plots the
    runs' `relative_drop.<metric>` in percent instead (the paper's relative change computed
    from its own unpruned value). Panels with nothing to draw are left out.
    """
    data, drawn = [], []
    for panel in panels:
        column = f"relative_drop.{panel.metric}" if relative else panel.metric
        ours = _ours(runs, panel, x, column, hue, 100.0 if relative else 1.0, aliases)
        paper = _reference_points(reference, panel, x)
        if relative:
            paper = _relative(paper)
        base = _ours(runs, panel, x, panel.metric, hue, aliases=aliases)
        base = base[base["series"] == "none"]
        if ours.empty and paper.empty:
            continue
        drawn.append((panel, ours, paper, base))
    fig, axes = new_figure(max(1, len(drawn)))
    series: set[str] = set()
    for ax, (panel, ours, paper, base) in zip(axes, drawn):
        _draw_series(ax, ours, paper)
        if not relative and len(base):
            ax.axhline(base["y"].iloc[0], color=selector_color("none"), linestyle=":", linewidth=1)
        if relative:
            ax.axhline(0.0, color="0.5", linewidth=0.8)
        if ours.empty and relative and len(base) and base["y"].iloc[0] == 0:
            _empty(ax, "ours: unpruned = 0")
        elif ours.empty:
            _empty(ax, "no run of ours")
        ax.set_title(panel.title)
        ax.set_ylabel(column_label(f"relative_drop.{panel.metric}" if relative else panel.metric))
        if x == "retention":
            _retention_axis(ax, [*ours["x"], *paper["x"]])
        series |= set(ours["series"]) | set(paper["series"])
        meta = {"panel": panel.title, "dataset": panel.dataset, "metric": panel.metric}
        data += [_tag(ours, source="ours", **meta), _tag(paper, source="paper", **meta)]
    if not drawn:
        _empty(axes[0], "no runs and no published values")
    _bottom_xlabels(axes, column_label(x))
    _stand_in_note(fig, [(p, pd.concat([o, b])) for p, o, _, b in drawn])
    extra = [PAPER_HANDLE] if any(len(p) for _, _, p, _ in drawn) else []
    _legend(fig, sorted(series), extra)
    return fig, _concat(data, x)


def _bottom_xlabels(axes: Sequence, label: str) -> None:
    """x label under the lowest panel of each column only (panels share their x)."""
    for ax in axes:
        below = [o for o in axes if o is not ax and o.get_subplotspec().colspan == ax.get_subplotspec().colspan and o.get_subplotspec().rowspan.start > ax.get_subplotspec().rowspan.start]  # fmt: skip
        if not below:
            ax.set_xlabel(label)


def _relative(paper: pd.DataFrame) -> pd.DataFrame:
    """Paper values as relative change (%) against the paper's own unpruned value."""
    base = paper[paper["series"] == "none"]["y"]
    if base.empty or base.iloc[0] == 0:
        return paper.iloc[0:0]
    out = paper[paper["series"] != "none"].copy()
    out["y"] = 100.0 * (out["y"] - base.iloc[0]) / base.iloc[0]
    return out


@styled
def segments_sweep(
    runs: pd.DataFrame,
    panels: Sequence[Panel],
    *,
    hue: str = "selector",
    aliases: Mapping[str, str] | None = None,
) -> tuple[Figure, pd.DataFrame]:
    """The metric against the number of segments S (runs with a `segments` value), with the
    unpruned run as a dotted line and other selectors at the same retention as dashed lines."""
    data, drawn = [], []
    for panel in panels:
        rows = runs[runs["segments"].notna()] if "segments" in runs else runs.iloc[0:0]
        ours = _ours(rows, panel, "segments", panel.metric, hue, aliases=aliases)
        flat = _ours(runs[runs["segments"].isna()], panel, "retention", panel.metric, hue, aliases=aliases)  # fmt: skip
        if retentions := sorted(set(_rows_for(rows, panel.dataset, aliases)["retention"])):
            flat = flat[(flat["series"] == "none") | flat["x"].isin(retentions)]
        if ours.empty:
            continue
        drawn.append((panel, ours, flat, retentions))
    single = len(drawn) <= 1
    fig, axes = new_figure(max(1, len(drawn)), height=2.0 if single else PANEL_HEIGHT)
    series: set[str] = set()
    extra: dict[str, Line2D] = {}
    for ax, (panel, ours, flat, retentions) in zip(axes, drawn):
        _draw_series(ax, ours, ours.iloc[0:0])
        for row in flat.itertuples(index=False):
            style = ":" if row.series == "none" else "--"
            ax.axhline(row.y, color=selector_color(row.series), linestyle=style, linewidth=1)
            name = (
                "unpruned"
                if row.series == "none"
                else f"{selector_display_name(row.series)} (same r)"
            )
            extra[name] = Line2D([], [], color=selector_color(row.series), linestyle=style, linewidth=1, label=name)  # fmt: skip
        kept = ", ".join(f"{r:.0%}" for r in retentions)
        ax.set_title(f"{panel.title}, retention {kept}")
        ax.set_xlabel(column_label("segments"))
        ax.set_ylabel(column_label(panel.metric))
        ax.set_xticks(sorted(set(ours["x"])))
        if len(set(ours["x"])) > 8:
            ax.tick_params(axis="x", labelsize=6)
        series |= set(ours["series"])
        meta = {"panel": panel.title, "dataset": panel.dataset, "metric": panel.metric}
        data += [_tag(ours, source="ours", **meta)]
        data += [_tag(flat, source="unpruned" if s == "none" else "ours_flat", **meta).query("series == @s") for s in set(flat["series"])]  # fmt: skip
    _stand_in_note(fig, [(p, o) for p, o, _, _ in drawn])
    if not drawn:
        _empty(axes[0], "no runs with a segments value")
    _legend(fig, sorted(series), list(extra.values()))
    return fig, _concat(data, "segments")


@styled
def efficiency(
    runs: pd.DataFrame,
    reference: pd.DataFrame | None = None,
    *,
    x: str = "kept_tokens",
    hue: str = "selector",
    dataset: str | None = None,
    aliases: Mapping[str, str] | None = None,
) -> tuple[Figure, pd.DataFrame]:
    """LLM prefill ms, analytic prefill TFLOPs and decoding ms/token against kept tokens.

    The token-count bound (the unpruned value scaled by kept / all audio tokens: what the cost
    would be if it were proportional to the audio tokens) is drawn on the prefill panels; the
    paper's Table 4 values (reference metrics prefill_ms, decode_ms_per_token) are hollow
    markers placed at retention x our mean audio tokens per clip (the paper gives shares only).
    """
    dataset = dataset or (str(runs["dataset"].iloc[0]) if len(runs) else "")
    columns = ["prefill_ms", "prefill_tflops", "decode_ms_per_token"]
    fig, axes = new_figure(3, ncols=3, height=2.0)
    data, series = [], set()
    rows = _rows_for(runs, dataset, aliases)
    full = rows[(rows["selector"] == "none")] if len(rows) else rows
    # The paper gives shares only: its markers sit at retention x our unpruned mean tokens per
    # clip, or x 750 (a full 30 s window) when there is no run to take N from.
    tokens = float(full["audio_tokens"].iloc[0]) if len(full) else (
        float(rows["audio_tokens"].mean()) if len(rows) else float(FULL_WINDOW_TOKENS)
    )  # fmt: skip
    paper_drawn = bound_drawn = False
    for ax, column in zip(axes, columns):
        panel = Panel(dataset, column)
        ours = _ours(runs, panel, x, column, hue, aliases=aliases)
        _draw_series(ax, ours, ours.iloc[0:0])
        series |= set(ours["series"])
        meta = {"panel": column_label(column), "dataset": dataset, "metric": column}
        data.append(_tag(ours, source="ours", **meta))
        base = ours[ours["series"] == "none"]
        if column != "decode_ms_per_token" and len(base):
            grid = np.linspace(0.0, tokens, 50)
            bound = pd.DataFrame(
                {"series": "bound", "x": grid, "y": base["y"].iloc[0] * grid / tokens}
            )
            ax.plot(bound["x"], bound["y"], color="0.5", linestyle="--", linewidth=0.9)
            data.append(_tag(bound, source="bound", **meta))
            bound_drawn = True
        paper = _reference_points(reference, panel, "retention")
        if len(paper):
            paper["x"] = paper["x"] * tokens
            for name in set(paper["series"]):
                mine = paper[paper["series"] == name]
                ax.plot(mine["x"], mine["y"], color=selector_color(name), marker=selector_marker(name), **PAPER_STYLE)  # fmt: skip
            data.append(_tag(paper, source="paper", **meta))
            series |= set(paper["series"])
            paper_drawn = True
        if ours.empty:
            _empty(ax, "no timed run")
        ax.set_xlabel(column_label(x))
        ax.set_ylabel(column_label(column))
        ax.set_ylim(bottom=0)
        ax.set_xlim(left=0)
    used = sorted(set(rows["dataset"])) if len(rows) else [dataset]
    names = ", ".join(DATASET_LABELS.get(d, d) for d in used)
    fig.suptitle(f"{names}: cost against kept audio tokens (mean N = {tokens:.0f} tokens per clip)", fontsize=8)  # fmt: skip
    extra = []
    if bound_drawn:
        extra.append(Line2D([], [], color="0.5", linestyle="--", linewidth=0.9, label="token-count bound"))  # fmt: skip
    if paper_drawn:
        extra.append(Line2D([], [], color="0.3", marker="o", label="paper Table 4 (at r·N)", **PAPER_STYLE))  # fmt: skip
    _legend(fig, sorted(series), extra)
    return fig, _concat(data, x)


def _concat(parts: list[pd.DataFrame], x: str) -> pd.DataFrame:
    columns = ["panel", "dataset", "metric", "source", "series", "x", "y", "run_dir", "run_dataset", "column", "scale"]  # fmt: skip
    parts = [p for p in parts if len(p)]
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    for name in columns:
        if name not in frame:
            frame[name] = None
    frame = frame[columns]
    frame.insert(5, "x_name", x)
    return frame


# ---------------------------------------------------------------- attention analysis


@styled
def concentration_figure(
    curve: pd.DataFrame, stats: Mapping[str, Mapping[str, float]], per_head: Mapping
) -> tuple[Figure, pd.DataFrame]:
    """Left: share of the received-attention mass held by the top x of the tokens (mean ± std
    over windows; the diagonal is a uniform score). Right: Kendall τ-b of each head of the
    scored layer against the head average (or a note when per-head scores are unavailable)."""
    fig, (left, right) = new_figure(2, ncols=2, height=2.2)
    x = 100 * curve["x"]
    left.plot(x, 100 * curve["mean"], color=selector_color("topk"), label="mean over windows")
    left.fill_between(x, 100 * (curve["mean"] - curve["std"]), 100 * (curve["mean"] + curve["std"]), color=selector_color("topk"), alpha=0.2, linewidth=0, label="± 1 std")  # fmt: skip
    left.plot([0, 100], [0, 100], color="0.5", linestyle="--", linewidth=0.8, label="uniform")
    left.set_xlabel("top tokens by score (%)")
    left.set_ylabel("share of attention mass (%)")
    gini, top = stats["gini"], stats["top_10%"]
    left.set_title(f"Gini {gini['mean']:.2f} ± {gini['std']:.2f}; top 10 %: {100 * top['mean']:.0f} %")  # fmt: skip
    left.legend(loc="lower right", frameon=False)
    left.set_xlim(0, 100)
    left.set_ylim(0, 100)
    data = [pd.DataFrame({"panel": "concentration", "series": "mean", "x": curve["x"], "y": curve["mean"], "std": curve["std"]})]  # fmt: skip
    if per_head.get("available"):
        heads = per_head["heads"]
        tau = [h["kendall_tau_b"]["mean"] for h in heads]
        err = [h["kendall_tau_b"]["std"] for h in heads]
        index = [h["head"] for h in heads]
        right.bar(index, tau, yerr=err, color=selector_color("segmentwise_topk"), capsize=1.5, error_kw={"linewidth": 0.6})  # fmt: skip
        right.set_xlabel("head of the scored layer")
        right.set_ylabel("Kendall τ-b vs head average")
        right.set_ylim(min(0.0, min(tau) - 0.1), 1.0)
        right.set_title(f"each head vs the head average ({per_head['windows']} windows)")
        right.xaxis.set_major_locator(MaxNLocator(integer=True))
        data.append(pd.DataFrame({"panel": "kendall_tau_b", "series": "head", "x": index, "y": tau, "std": err}))  # fmt: skip
    else:
        right.axis("off")
        right.text(0.5, 0.5, "per-head statistics unavailable:\n" + per_head.get("reason", ""), ha="center", va="center", wrap=True, fontsize=7, color="0.35", transform=right.transAxes)  # fmt: skip
    return fig, pd.concat(data, ignore_index=True)


@styled
def coverage_figure(coverage: pd.DataFrame, segments: int) -> tuple[Figure, pd.DataFrame]:
    """Temporal coverage per selector against retention (mean over windows): segments covered,
    longest gap, share of the kept tokens in the fullest segment. coverage: one row per
    selector x retention with {stat: {"mean", "std", "n"}} columns, as analysis.json holds it."""
    stats = ["covered_fraction", "longest_gap_s", "max_segment_share"]
    runs = coverage[["selector", "retention"]].copy()
    runs["dataset"] = "coverage"
    runs["run_dir"] = None
    for stat in stats:
        runs[stat] = [cell["mean"] for cell in coverage[stat]]
    titles = [f"segments covered (S = {segments})", "longest gap without a kept token", "share in the fullest segment"]  # fmt: skip
    panels = [Panel("coverage", stat, title) for stat, title in zip(stats, titles)]
    return metric_vs_retention.__wrapped__(runs, panels)


@styled
def kept_token_map(
    log_mel: np.ndarray,
    scores: Sequence[float],
    kept: Mapping[str, Sequence[int]],
    seconds_per_token: float,
    title: str = "",
) -> tuple[Figure, pd.DataFrame]:
    """The clip's log-mel spectrogram, its received-attention score over time, and one row per
    selector marking the kept token positions (token i spans [i, i + 1) x seconds_per_token)."""
    n = len(scores)
    duration = n * seconds_per_token
    rows = len(kept)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(TEXT_WIDTH, 1.6 + 0.75 + 0.24 * rows + 0.3), layout="constrained")
        FigureCanvasAgg(fig)
        spec = fig.add_gridspec(3, 1, height_ratios=[1.6, 0.75, 0.24 * max(rows, 1)])
        mel_ax = fig.add_subplot(spec[0])
        score_ax = fig.add_subplot(spec[1], sharex=mel_ax)
        kept_ax = fig.add_subplot(spec[2], sharex=mel_ax)
    mel_ax.imshow(log_mel, origin="lower", aspect="auto", cmap="magma", extent=(0, duration, 0, log_mel.shape[0]), interpolation="nearest")  # fmt: skip
    mel_ax.set_ylabel("mel bin")
    mel_ax.set_title(title)
    mel_ax.grid(False)
    centres = (np.arange(n) + 0.5) * seconds_per_token
    score_ax.plot(centres, scores, color="0.2", linewidth=0.8)
    score_ax.set_ylabel("attention\nreceived")
    names = _series_order(kept)
    data = [pd.DataFrame({"series": "score", "token": np.arange(n), "time_s": centres, "value": list(scores)})]  # fmt: skip
    for row, name in enumerate(reversed(names)):
        positions = (np.asarray(kept[name], dtype=float) + 0.5) * seconds_per_token
        kept_ax.eventplot([positions], lineoffsets=row, linelengths=0.8, linewidths=0.7, colors=[selector_color(name)])  # fmt: skip
        data.append(pd.DataFrame({"series": name, "token": kept[name], "time_s": positions, "value": 1.0}))  # fmt: skip
    kept_ax.set_yticks(range(rows), [selector_display_name(n) for n in reversed(names)])
    kept_ax.set_ylim(-0.6, rows - 0.4)
    kept_ax.set_xlim(0, duration)
    kept_ax.set_xlabel("time (s)")
    kept_ax.grid(False)
    for ax in (mel_ax, score_ax):
        ax.tick_params(labelbottom=False)
    return fig, pd.concat(data, ignore_index=True)


# ---------------------------------------------------------------- classifier family


@styled
def accuracy_vs_gmacs(
    frame: pd.DataFrame, metric: str = "accuracy", title: str = ""
) -> tuple[Figure, pd.DataFrame]:
    """Classifier family: `metric` (accuracy or mAP, %) against GMACs per clip, one line per
    selector, one panel per mode (inference-only / fine-tuned). frame: one row per (mode,
    selector, retention) with columns mode, selector, retention, gmacs, `metric` and optionally
    `<metric>_std` (seed spread, drawn as error bars)."""
    modes = list(dict.fromkeys(frame["mode"]))
    fig, axes = new_figure(len(modes), height=2.2)
    drawn = []
    for ax, mode in zip(axes, modes):
        part = frame[frame["mode"] == mode]
        for selector in _series_order(part["selector"].unique()):
            rows = part[part["selector"] == selector].sort_values("gmacs")
            err = rows[f"{metric}_std"] if f"{metric}_std" in rows else None
            ax.errorbar(
                rows["gmacs"], rows[metric], yerr=err, capsize=2,
                color=selector_color(selector), marker=selector_marker(selector),
                label=selector_display_name(selector),
            )  # fmt: skip
            drawn.append(
                _tag(
                    rows[["gmacs", metric]].rename(columns={"gmacs": "x", metric: "y"}),
                    panel=mode,
                    series=selector,
                    source="ours",
                )  # fmt: skip
            )
        ax.set_title(mode)
        ax.set_xlabel("GMACs per clip")
        ax.set_ylabel(column_label(metric))
    _legend(fig, _series_order(frame["selector"].unique()))
    if title:
        fig.suptitle(title)
    return fig, pd.concat(drawn, ignore_index=True) if drawn else pd.DataFrame()


@styled
def tau_per_block(frame: pd.DataFrame, title: str = "") -> tuple[Figure, pd.DataFrame]:
    """Classifier family: Kendall τ between attention and a patch statistic per pruning block.
    frame: columns block (1-based), statistic, variant (tau_b | tau_ties_concordant), tau."""
    fig, (ax,) = new_figure(1)
    drawn = []
    for (statistic, variant), rows in frame.groupby(["statistic", "variant"], sort=False):
        ax.plot(rows["block"], rows["tau"], marker="o", ls="-" if variant == "tau_b" else "--",
                label=f"{statistic}, {variant}")  # fmt: skip
        drawn.append(
            _tag(
                rows[["block", "tau"]].rename(columns={"block": "x", "tau": "y"}),
                panel=statistic,
                series=variant,
                source="ours",
            )  # fmt: skip
        )
    ax.set_xticks(sorted(frame["block"].unique()))
    ax.set_xlabel("block")
    ax.set_ylabel("Kendall τ (attention vs patch statistic)")
    ax.legend(loc="best")
    if title:
        ax.set_title(title)
    return fig, pd.concat(drawn, ignore_index=True) if drawn else pd.DataFrame()
