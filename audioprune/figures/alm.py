"""Audio-LM figures from the runs table: metric vs retention, the segments sweep, efficiency."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from audioprune.figures.style import (
    DATASET_LABELS,
    FULL_WINDOW_TOKENS,
    PANEL_HEIGHT,
    PAPER_HANDLE,
    PAPER_STYLE,
    Panel,
    add_legend,
    column_label,
    draw_series,
    mark_empty,
    new_figure,
    our_points,
    reference_points,
    retention_axis,
    rows_for,
    selector_color,
    selector_display_name,
    selector_marker,
    stand_in_note,
    styled,
    tag_points,
)

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
        ours = our_points(runs, panel, x, column, hue, 100.0 if relative else 1.0, aliases)
        paper = reference_points(reference, panel, x)
        if relative:
            paper = _relative(paper)
        base = our_points(runs, panel, x, panel.metric, hue, aliases=aliases)
        base = base[base["series"] == "none"]
        if ours.empty and paper.empty:
            continue
        drawn.append((panel, ours, paper, base))
    fig, axes = new_figure(max(1, len(drawn)))
    series: set[str] = set()
    for ax, (panel, ours, paper, base) in zip(axes, drawn):
        draw_series(ax, ours, paper)
        if not relative and len(base):
            ax.axhline(base["y"].iloc[0], color=selector_color("none"), linestyle=":", linewidth=1)
        if relative:
            ax.axhline(0.0, color="0.5", linewidth=0.8)
        if ours.empty and relative and len(base) and base["y"].iloc[0] == 0:
            mark_empty(ax, "ours: unpruned = 0")
        elif ours.empty:
            mark_empty(ax, "no run of ours")
        ax.set_title(panel.title)
        ax.set_ylabel(column_label(f"relative_drop.{panel.metric}" if relative else panel.metric))
        if x == "retention":
            retention_axis(ax, [*ours["x"], *paper["x"]])
        series |= set(ours["series"]) | set(paper["series"])
        meta = {"panel": panel.title, "dataset": panel.dataset, "metric": panel.metric}
        data += [tag_points(ours, source="ours", **meta), tag_points(paper, source="paper", **meta)]
    if not drawn:
        mark_empty(axes[0], "no runs and no published values")
    _bottom_xlabels(axes, column_label(x))
    stand_in_note(fig, [(p, pd.concat([o, b])) for p, o, _, b in drawn])
    extra = [PAPER_HANDLE] if any(len(p) for _, _, p, _ in drawn) else []
    add_legend(fig, sorted(series), extra)
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
        ours = our_points(rows, panel, "segments", panel.metric, hue, aliases=aliases)
        flat = our_points(runs[runs["segments"].isna()], panel, "retention", panel.metric, hue, aliases=aliases)  # fmt: skip
        if retentions := sorted(set(rows_for(rows, panel.dataset, aliases)["retention"])):
            flat = flat[(flat["series"] == "none") | flat["x"].isin(retentions)]
        if ours.empty:
            continue
        drawn.append((panel, ours, flat, retentions))
    single = len(drawn) <= 1
    fig, axes = new_figure(max(1, len(drawn)), height=2.0 if single else PANEL_HEIGHT)
    series: set[str] = set()
    extra: dict[str, Line2D] = {}
    for ax, (panel, ours, flat, retentions) in zip(axes, drawn):
        draw_series(ax, ours, ours.iloc[0:0])
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
        data += [tag_points(ours, source="ours", **meta)]
        data += [tag_points(flat, source="unpruned" if s == "none" else "ours_flat", **meta).query("series == @s") for s in set(flat["series"])]  # fmt: skip
    stand_in_note(fig, [(p, o) for p, o, _, _ in drawn])
    if not drawn:
        mark_empty(axes[0], "no runs with a segments value")
    add_legend(fig, sorted(series), list(extra.values()))
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
    rows = rows_for(runs, dataset, aliases)
    full = rows[(rows["selector"] == "none")] if len(rows) else rows
    # The paper gives shares only: its markers sit at retention x our unpruned mean tokens per
    # clip, or x 750 (a full 30 s window) when there is no run to take N from.
    tokens = float(full["audio_tokens"].iloc[0]) if len(full) else (
        float(rows["audio_tokens"].mean()) if len(rows) else float(FULL_WINDOW_TOKENS)
    )  # fmt: skip
    paper_drawn = bound_drawn = False
    for ax, column in zip(axes, columns):
        panel = Panel(dataset, column)
        ours = our_points(runs, panel, x, column, hue, aliases=aliases)
        draw_series(ax, ours, ours.iloc[0:0])
        series |= set(ours["series"])
        meta = {"panel": column_label(column), "dataset": dataset, "metric": column}
        data.append(tag_points(ours, source="ours", **meta))
        base = ours[ours["series"] == "none"]
        if column != "decode_ms_per_token" and len(base):
            grid = np.linspace(0.0, tokens, 50)
            bound = pd.DataFrame(
                {"series": "bound", "x": grid, "y": base["y"].iloc[0] * grid / tokens}
            )
            ax.plot(bound["x"], bound["y"], color="0.5", linestyle="--", linewidth=0.9)
            data.append(tag_points(bound, source="bound", **meta))
            bound_drawn = True
        paper = reference_points(reference, panel, "retention")
        if len(paper):
            paper["x"] = paper["x"] * tokens
            for name in set(paper["series"]):
                mine = paper[paper["series"] == name]
                ax.plot(mine["x"], mine["y"], color=selector_color(name), marker=selector_marker(name), **PAPER_STYLE)  # fmt: skip
            data.append(tag_points(paper, source="paper", **meta))
            series |= set(paper["series"])
            paper_drawn = True
        if ours.empty:
            mark_empty(ax, "no timed run")
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
    add_legend(fig, sorted(series), extra)
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
