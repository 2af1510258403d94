"""Classifier-family figures: accuracy vs GMACs, Kendall's tau per pruning block."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from audioprune.figures import style

# ---------------------------------------------------------------- classifier family


@style.styled
def accuracy_vs_gmacs(
    frame: pd.DataFrame, metric: str = "accuracy", title: str = ""
) -> tuple[Figure, pd.DataFrame]:
    """Classifier family: `metric` (accuracy or mAP, %) against GMACs per clip, one line per
    selector, one panel per mode (inference-only / fine-tuned). frame: one row per (mode,
    selector, retention) with columns mode, selector, retention, gmacs, `metric` and optionally
    `<metric>_std` (seed spread, drawn as error bars)."""
    modes = list(dict.fromkeys(frame["mode"]))
    fig, axes = style.new_figure(len(modes), height=2.2)
    drawn = []
    for ax, mode in zip(axes, modes):
        part = frame[frame["mode"] == mode]
        for selector in style.series_order(part["selector"].unique()):
            rows = part[part["selector"] == selector].sort_values("gmacs")
            err = rows[f"{metric}_std"] if f"{metric}_std" in rows else None
            ax.errorbar(
                rows["gmacs"], rows[metric], yerr=err, capsize=2,
                color=style.selector_color(selector), marker=style.selector_marker(selector),
                label=style.selector_display_name(selector),
            )  # fmt: skip
            drawn.append(
                style.tag_points(
                    rows[["gmacs", metric]].rename(columns={"gmacs": "x", metric: "y"}),
                    panel=mode,
                    series=selector,
                    source="ours",
                )  # fmt: skip
            )
        ax.set_title(mode)
        ax.set_xlabel("GMACs per clip")
        ax.set_ylabel(style.column_label(metric))
    style.add_legend(fig, style.series_order(frame["selector"].unique()))
    if title:
        fig.suptitle(title)
    return fig, pd.concat(drawn, ignore_index=True) if drawn else pd.DataFrame()


@style.styled
def tau_per_block(frame: pd.DataFrame, title: str = "") -> tuple[Figure, pd.DataFrame]:
    """Classifier family: Kendall τ between attention and a patch statistic per pruning block.
    frame: columns block (1-based), statistic, variant (tau_b | tau_ties_concordant), tau."""
    fig, (ax,) = style.new_figure(1)
    drawn = []
    for (statistic, variant), rows in frame.groupby(["statistic", "variant"], sort=False):
        ax.plot(rows["block"], rows["tau"], marker="o", ls="-" if variant == "tau_b" else "--",
                label=f"{statistic}, {variant}")  # fmt: skip
        drawn.append(
            style.tag_points(
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
