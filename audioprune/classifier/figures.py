"""Figures of the classifier family (matplotlib, Agg): accuracy (or mAP) against GMACs per
selector, and Kendall τ per block. Same signature style as `audioprune.figures` (CONTRACTS §6):
each writes stem.png, stem.pdf and stem.csv with the plotted values and returns the paths."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

COLORS = {
    "none": "#444444",
    "topk": "#1f77b4",
    "random": "#ff7f0e",
    "bottomk": "#d62728",
    "intensity": "#2ca02c",
    "variation": "#9467bd",
    "segmentwise_topk": "#8c564b",
}


def save_figure(fig, stem: Path, data: pd.DataFrame) -> list[Path]:
    """stem.png / .pdf / .csv (the plotted values); closes the figure."""
    import matplotlib.pyplot as plt

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf"), stem.with_suffix(".csv")]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    data.to_csv(paths[2], index=False)
    plt.close(fig)
    return paths


def accuracy_vs_gmacs(
    frame: pd.DataFrame, stem: Path, metric: str = "accuracy", title: str = ""
) -> list[Path]:
    """frame: one row per (mode, selector, retention) with columns mode, selector, retention,
    gmacs, `metric` and optionally `<metric>_std`; one panel per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(dict.fromkeys(frame["mode"]))
    fig, axes = plt.subplots(
        1, len(modes), figsize=(5 * len(modes), 3.6), sharey=True, squeeze=False
    )
    for ax, mode in zip(axes[0], modes):
        part = frame[frame["mode"] == mode]
        for selector, rows in part.groupby("selector", sort=False):
            rows = rows.sort_values("gmacs")
            err = rows.get(f"{metric}_std")
            ax.errorbar(
                rows["gmacs"], rows[metric], yerr=err, marker="o", capsize=3,
                label=selector, color=COLORS.get(selector),
            )  # fmt: skip
        ax.set_title(mode)
        ax.set_xlabel("GMACs per clip")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel(metric)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, stem, frame)


def tau_per_block(frame: pd.DataFrame, stem: Path, title: str = "") -> list[Path]:
    """frame: columns block (1-based), statistic, variant (tau_b | tau_ties_concordant), tau."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4))
    for (statistic, variant), rows in frame.groupby(["statistic", "variant"], sort=False):
        ax.plot(rows["block"], rows["tau"], marker="o", ls="-" if variant == "tau_b" else "--",
                label=f"{statistic}, {variant}")  # fmt: skip
    ax.set_xticks(sorted(frame["block"].unique()))
    ax.set_xlabel("block")
    ax.set_ylabel("Kendall τ (attention vs patch statistic)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return save_figure(fig, stem, frame)
