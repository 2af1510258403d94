"""Attention-analysis figures (`python -m audioprune.analyze`): score concentration, event
coverage, kept-token maps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from audioprune.figures.alm import (
    metric_vs_retention,
)
from audioprune.figures.style import (
    STYLE,
    TEXT_WIDTH,
    Panel,
    new_figure,
    selector_color,
    selector_display_name,
    series_order,
    styled,
)

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
    names = series_order(kept)
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
