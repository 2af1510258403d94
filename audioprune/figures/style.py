"""The look every figure shares (sizes of a two-column paper, fonts, one colour / marker /
display name per selector, axis labels), `Panel`, `new_figure` / `save_figure`, and the
helpers that pick and draw our runs beside the paper's points.
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
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

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
DATASET_LABELS = {"clotho_v2": "Clotho v2", "audiocaps": "AudioCaps", "clotho_aqa": "ClothoAQA unanimous", "clotho_aqa_non_binary": "ClothoAQA non-binary", "mmau_test_mini": "MMAU test-mini", "synthetic_captions": "synthetic captions", "synthetic_aqa": "synthetic AQA", "synthetic_mmau": "synthetic MMAU", "synthetic_scenes": "synthetic scenes"}  # fmt: skip
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
    "accuracy_choice_loglik": "accuracy (%)",
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


def rows_for(runs: pd.DataFrame, dataset: str, aliases: Mapping[str, str] | None) -> pd.DataFrame:
    """Runs of `dataset`, or of the dataset standing in for it (tiny runs: synthetic data)."""
    names = {dataset}
    if aliases and dataset in aliases:
        names.add(aliases[dataset])
    return runs[runs["dataset"].isin(names)]


def our_points(
    runs: pd.DataFrame,
    panel: Panel,
    x: str,
    column: str,
    hue: str,
    scale: float = 1.0,
    aliases: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Our points of one panel: [series, x, y, run_dir, column, scale], NaN values dropped."""
    rows = rows_for(runs, panel.dataset, aliases)
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
    # Several seeds of one selector share a point by design (drawn as mean and range); two runs
    # of one seed there are two versions of a point.
    seeds = rows["seed"].to_numpy() if "seed" in rows else None
    duplicated = out.assign(_seed=seeds).duplicated(["series", "x", "_seed"])
    if duplicated.any():
        log.warning(
            "%s / %s: several runs share a (%s, %s) point; filter the runs table first",
            panel.dataset,
            column,
            hue,
            x,
        )
    return out.sort_values(["series", "x"]).reset_index(drop=True)


def reference_points(reference: pd.DataFrame | None, panel: Panel, x: str) -> pd.DataFrame:
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


def tag_points(frame: pd.DataFrame, **columns) -> pd.DataFrame:
    frame = frame.copy()
    for name, value in columns.items():
        frame[name] = value
    return frame


def series_order(names) -> list[str]:
    known = list(SELECTOR_COLORS)
    return sorted(set(names), key=lambda n: (known.index(n) if n in known else len(known), n))


def draw_series(ax, ours: pd.DataFrame, paper: pd.DataFrame, skip: Sequence[str] = ()) -> None:
    for name in series_order([*ours["series"], *paper["series"]]):
        if name in skip:
            continue
        color, marker = selector_color(name), selector_marker(name)
        mine = ours[ours["series"] == name]
        by_x = mine.groupby("x", sort=True)["y"]
        if len(mine) and (by_x.size() > 1).any():  # several runs per x (seeds): mean and range
            mean, low, high = by_x.mean(), by_x.min(), by_x.max()
            ax.errorbar(
                mean.index, mean.to_numpy(), yerr=[mean - low, high - mean], color=color,
                marker=marker, capsize=2.5, label=selector_display_name(name),
            )  # fmt: skip
        elif len(mine):
            ax.plot(
                mine["x"], mine["y"], color=color, marker=marker, label=selector_display_name(name)
            )
        theirs = paper[paper["series"] == name]
        if len(theirs):
            ax.plot(theirs["x"], theirs["y"], color=color, marker=marker, **PAPER_STYLE)


def add_legend(fig: Figure, series: Sequence[str], extra: Sequence[Line2D] = ()) -> None:
    handles = [
        Line2D(
            [],
            [],
            color=selector_color(n),
            marker=selector_marker(n),
            label=selector_display_name(n),
        )
        for n in series_order(series)
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


def retention_axis(ax, values) -> None:
    values = sorted({float(v) for v in values if v and v > 0})
    ax.set_xscale("log")
    if values:
        ax.set_xticks(values, [f"{v:.0%}" for v in values])
        ax.set_xlim(min(values) / 1.25, max(values) * 1.25)
    ax.minorticks_off()


def stand_in_note(fig: Figure, parts: Sequence[tuple[Panel, pd.DataFrame]]) -> None:
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


def mark_empty(ax, text: str) -> None:
    ax.text(0.97, 0.04, text, ha="right", va="bottom", transform=ax.transAxes, fontsize=6, color="0.4", bbox={"facecolor": "white", "alpha": 0.8, "linewidth": 0, "pad": 1})  # fmt: skip
