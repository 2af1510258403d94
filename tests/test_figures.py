"""Figures and LaTeX/CSV tables from a hand-made runs table (no model): the values drawn are the
runs' values, paper values sit beside them, files are written, colours are stable."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from audioprune import figures
from audioprune.figures import Panel
from audioprune.tables import lower_is_better, to_latex

REPO = Path(__file__).resolve().parents[1]


def load_reproduce():
    """The reproduce logic (`audioprune.reproduce`; scripts/reproduce.py only calls its main)."""
    from audioprune import reproduce

    return reproduce


def runs_table() -> pd.DataFrame:
    """Two selectors x three retentions + the unpruned run, distinct values everywhere."""
    rows = [{"selector": "none", "retention": 1.0, "segments": None, "cider_d": 0.50}]
    for i, r in enumerate((0.5, 0.25, 0.1)):
        rows.append({"selector": "topk", "retention": r, "segments": None, "cider_d": 0.40 - 0.05 * i})  # fmt: skip
        rows.append({"selector": "segmentwise_topk", "retention": r, "segments": 10, "cider_d": 0.45 - 0.03 * i})  # fmt: skip
    frame = pd.DataFrame(rows)
    frame["model"], frame["dataset"], frame["tag"] = "audio_flamingo_3", "clotho_v2", None
    frame["run_dir"] = [f"runs/{i}" for i in range(len(frame))]
    frame["relative_drop.cider_d"] = (frame["cider_d"] - 0.5) / 0.5
    frame.loc[frame["selector"] == "none", "relative_drop.cider_d"] = None
    frame["kept_tokens"] = 600 * frame["retention"]
    frame["audio_tokens"] = 600.0
    frame["prefill_ms"] = 10 + 100 * frame["retention"]
    frame["prefill_tflops"] = 2.0 * frame["retention"]
    frame["decode_ms_per_token"] = 25 + frame["retention"]
    return frame


REFERENCE = pd.DataFrame(
    {
        "dataset": "clotho_v2",
        "metric": "cider_d",
        "selector": ["none", "topk", "segmentwise_topk"],
        "retention": [1.0, 0.25, 0.25],
        "value": [0.50, 0.48, 0.49],
    }
)


def test_selector_colours_are_fixed_for_known_and_stable_for_unknown_names():
    assert figures.selector_color("segmentwise_topk") == "#D55E00"
    assert figures.selector_color("topk") != figures.selector_color("segmentwise_topk")
    unknown = figures.selector_color("my_lab_selector")
    assert unknown == figures.selector_color("my_lab_selector") and unknown.startswith("#")
    assert unknown in figures.EXTRA_COLORS


def test_metric_vs_retention_draws_exactly_the_runs_values(tmp_path):
    runs = runs_table()
    fig, data = figures.metric_vs_retention(runs, [Panel("clotho_v2", "cider_d")], REFERENCE)
    assert isinstance(fig.canvas, FigureCanvasAgg)
    ours = data[data["source"] == "ours"]
    assert len(ours) == len(runs)
    by_dir = runs.set_index("run_dir")
    for row in ours.itertuples():
        assert row.y == by_dir.loc[row.run_dir, "cider_d"]
        assert row.x == by_dir.loc[row.run_dir, "retention"]
        assert row.series == by_dir.loc[row.run_dir, "selector"]
    # every axes line holds the same points as the CSV: segmentwise's line, in retention order
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    seg = lines["Segmentwise Top-K"]
    assert list(seg.get_ydata()) == pytest.approx([0.39, 0.42, 0.45])
    paper = data[data["source"] == "paper"].set_index("series")
    assert paper.loc["topk", "y"] == 0.48 and paper.loc["topk", "x"] == 0.25
    paths = figures.save_figure(fig, tmp_path / "fig", data)
    assert [p.suffix for p in paths] == [".png", ".pdf", ".csv"]
    assert all(p.stat().st_size > 1000 for p in paths[:2])
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[1].read_bytes()[:4] == b"%PDF"
    assert pd.read_csv(paths[2])["y"].tolist() == pytest.approx(data["y"].tolist())


def test_relative_drop_figure_uses_the_runs_relative_drop_and_the_papers_own_baseline():
    runs = runs_table()
    _, data = figures.metric_vs_retention(runs, [Panel("clotho_v2", "cider_d")], REFERENCE, relative=True)  # fmt: skip
    ours = data[data["source"] == "ours"].set_index("run_dir")
    assert "runs/0" not in ours.index  # the unpruned run has no relative drop
    for run_dir, row in ours.iterrows():
        assert row["y"] == pytest.approx(100 * runs.set_index("run_dir").loc[run_dir, "relative_drop.cider_d"])  # fmt: skip
    paper = data[data["source"] == "paper"].set_index("series")["y"]
    assert paper["topk"] == pytest.approx(100 * (0.48 - 0.50) / 0.50)
    assert "none" not in paper.index


def test_stand_in_datasets_are_named_in_the_title():
    runs = runs_table().assign(dataset="synthetic_captions")
    fig, data = figures.metric_vs_retention(
        runs, [Panel("clotho_v2", "cider_d")], aliases={"clotho_v2": "synthetic_captions"}
    )
    assert "ours on stand-in data (synthetic captions)" in fig.get_suptitle()
    assert set(data.loc[data["source"] == "ours", "run_dataset"]) == {"synthetic_captions"}


def test_segments_sweep_and_efficiency_values():
    runs = runs_table()
    sweep = pd.concat([runs[runs["selector"] == "none"]] + [
        runs.iloc[[2]].assign(segments=s, cider_d=0.3 + s / 100, run_dir=f"runs/S{s}") for s in (2, 5, 10)
    ])  # fmt: skip
    _, data = figures.segments_sweep(sweep, [Panel("clotho_v2", "cider_d")])
    ours = data[data["source"] == "ours"]
    assert ours["x"].tolist() == [2, 5, 10] and ours["y"].tolist() == pytest.approx([0.32, 0.35, 0.40])  # fmt: skip
    assert data.loc[data["source"] == "unpruned", "y"].tolist() == [0.5]

    reference = pd.DataFrame({"dataset": "clotho_v2", "metric": "prefill_ms", "selector": ["none", "segmentwise_topk"], "retention": [1.0, 0.25], "value": [162.54, 29.55]})  # fmt: skip
    timing = runs[runs["selector"].isin(["none", "segmentwise_topk"])]
    _, data = figures.efficiency(timing, reference)
    for column in ("prefill_ms", "prefill_tflops", "decode_ms_per_token"):
        mine = data[(data["metric"] == column) & (data["source"] == "ours")].set_index("run_dir")
        assert len(mine) == len(timing)
        for run_dir, row in mine.iterrows():
            source = timing.set_index("run_dir").loc[run_dir]
            assert row["y"] == source[column] and row["x"] == source["kept_tokens"]
    bound = data[(data["source"] == "bound") & (data["metric"] == "prefill_ms")]
    assert bound["y"].iloc[-1] == pytest.approx(110.0) and bound["x"].iloc[-1] == 600.0
    paper = data[data["source"] == "paper"].set_index("series")
    assert paper.loc["segmentwise_topk", "x"] == 150.0  # 25 % of our 600 tokens per clip


def test_latex_table_is_booktabs_escaped_and_bolds():
    frame = pd.DataFrame({"selector": ["top_k", "50%"], "cider_d": [0.5, 0.25]})
    bold = pd.DataFrame({"selector": [False, False], "cider_d": [True, False]})
    latex = to_latex(frame, bold=bold, caption="a & b", label="tab:x", digits=2)
    assert r"\toprule" in latex and r"\midrule" in latex and r"\bottomrule" in latex
    assert r"top\_k & \textbf{0.50} \\" in latex and r"50\% & 0.25 \\" in latex
    assert r"\caption{a \& b}" in latex and r"\begin{tabular}{lr}" in latex
    assert lower_is_better("prefill_ms") and lower_is_better("wer") and not lower_is_better("cider_d")  # fmt: skip


def test_paper_layout_latex_bolds_our_best_per_column_at_each_keep():
    reproduce = load_reproduce()
    runs = runs_table()
    reference = pd.DataFrame(
        {
            "table": "t", "model": "audio_flamingo_3", "dataset": "clotho_v2", "metric": "cider_d",
            "selector": ["none", "topk", "segmentwise_topk", "topk", "segmentwise_topk"],
            "retention": [1.0, 0.5, 0.5, 0.1, 0.1], "value": [0.5, 0.48, 0.49, 0.42, 0.45],
        }
    )  # fmt: skip
    layout = reproduce.paper_layout_frame(runs, reference, "t", "audio_flamingo_3")
    assert layout["clotho_v2 cider_d"].tolist() == pytest.approx([0.50, 0.40, 0.45, 0.30, 0.39])
    latex = reproduce.paper_layout_latex(layout, "cap", "tab:t")
    assert r"Original & 100\% & 0.50 (0.50) \\" in latex  # a block of one row: nothing bold
    assert r"Segmentwise Top-K & 50\% & \textbf{0.45} (0.49) \\" in latex
    assert r"Top-K & 50\% & 0.40 (0.48) \\" in latex
    assert r"Segmentwise Top-K & 10\% & \textbf{0.39} (0.45) \\" in latex
    assert latex.count(r"\midrule") == 3  # header + between the three keep blocks


def test_experiment_runs_keep_only_the_recipes_runs():
    reproduce = load_reproduce()
    runs = runs_table()
    extra = pd.concat(
        [
            runs.iloc[[2]].assign(segments=4, run_dir="runs/S4"),  # from the S sweep
            runs.iloc[[0]].assign(tag="efficiency-bs1", run_dir="runs/t0"),  # timing run
            runs.iloc[[2]].assign(model="qwen2_audio", run_dir="runs/q"),
        ]
    )
    frame = pd.concat([runs, extra], ignore_index=True)
    table3 = reproduce.experiment_runs(frame, "paper_table3_ablation")
    assert set(table3["run_dir"]) == {"runs/0", "runs/2", "runs/4", "runs/6"}  # none + S=10
    timing = reproduce.experiment_runs(frame, "paper_table4_efficiency")
    assert set(timing["run_dir"]) == {"runs/t0"}


def test_runs_with_original_positions_stay_out_of_a_compact_recipes_table():
    """`positions=original` changes predictions (its own run key): such a run of a cell is not
    a second version of the recipe's compact-position run, it belongs to the recipe that asks
    for original positions (mini_positions)."""
    reproduce = load_reproduce()
    runs = runs_table().assign(positions="compact")
    original = runs.iloc[[2]].assign(positions="original", run_dir="runs/orig")
    frame = pd.concat([runs, original], ignore_index=True)
    table3 = reproduce.experiment_runs(frame, "paper_table3_ablation")
    assert "runs/orig" not in set(table3["run_dir"]) and "runs/2" in set(table3["run_dir"])
    mini = frame.assign(
        model="mini_qwen2_audio", dataset="synthetic_scenes", scoring="choice_loglik"
    )
    study = reproduce.experiment_runs(mini, "mini_positions")
    assert "runs/orig" in set(study["run_dir"]) and "runs/2" in set(study["run_dir"])


def test_runs_on_other_clips_weights_or_limits_stay_out_of_the_recipes_tables():
    """A held-out check of another seed, a run of a replaced projector and a partial `limit`
    run of the same cells share the results folder with the recipe's runs: with the recipe's
    identities (its clips and current weights as the run key records them) the table holds
    only the recipe's runs, instead of refusing the folder or mixing them in."""
    reproduce = load_reproduce()
    [(model, dataset, args, built_from, limit)] = reproduce.recipe_identities("mini_ablation")
    assert (model, dataset, limit) == ("mini_qwen2_audio", "synthetic_scenes", None)
    assert json.loads(args)["seed"] == 0 and json.loads(args)["num_clips"] == 100
    assert json.loads(built_from)["projector_sha256"]  # the shipped projector's hash
    runs = runs_table().assign(
        model=model, dataset=dataset, scoring="choice_loglik", segments=None,
        dataset_args=args, built_from=built_from, limit=None,
    )  # fmt: skip
    runs.loc[runs["selector"] == "segmentwise_topk", "segments"] = 10
    other_seed = json.dumps({**json.loads(args), "seed": 3000}, sort_keys=True)
    stale = json.dumps({**json.loads(built_from), "projector_sha256": "0" * 64}, sort_keys=True)
    strays = pd.concat(
        [
            runs.iloc[[0]].assign(dataset_args=other_seed, run_dir="runs/heldout"),
            runs.iloc[[2]].assign(built_from=stale, run_dir="runs/stale"),
            runs.iloc[[2]].assign(limit=5, run_dir="runs/limit5"),
        ]
    )
    frame = pd.concat([runs, strays], ignore_index=True)
    with pytest.raises(ValueError, match="runs/heldout"):  # without them: two versions of a cell
        reproduce.experiment_runs(frame, "mini_ablation")
    own = reproduce.experiment_runs(
        frame, "mini_ablation", reproduce.recipe_identities("mini_ablation")
    )
    assert set(own["run_dir"]) == {"runs/0", "runs/2", "runs/4", "runs/6"}  # none + segmentwise


def test_two_versions_of_one_table_cell_are_refused_naming_both_folders():
    """Runs of the same cell with different run keys (other weights, clips or settings, e.g. an
    older projector) in one results folder: the table would mix two versions, so it is refused."""
    reproduce = load_reproduce()
    runs = runs_table()
    older = runs.iloc[[2]].assign(run_dir="runs/older")  # same cell, another run key
    frame = pd.concat([runs, older], ignore_index=True)
    with pytest.raises(ValueError, match="runs/older") as err:
        reproduce.experiment_runs(frame, "paper_table3_ablation")
    assert runs.iloc[2]["run_dir"] in str(err.value)


def test_other_families_plug_in_with_their_own_x_and_metric():
    """A classifier family: accuracy against GMACs, one line per selector; no special case."""
    runs = pd.DataFrame(
        {
            "model": "ast", "dataset": "esc50", "selector": ["none", "topk", "topk"],
            "retention": [1.0, 0.5, 0.25], "gmacs": [100.0, 55.0, 30.0],
            "accuracy": [90.0, 88.0, 80.0], "run_dir": ["a", "b", "c"],
        }
    )  # fmt: skip
    fig, data = figures.metric_vs_retention(runs, [Panel("esc50", "accuracy")], x="gmacs")
    ours = data[data["source"] == "ours"].set_index("run_dir")
    assert ours.loc["c", "x"] == 30.0 and ours.loc["c", "y"] == 80.0
    assert fig.axes[0].get_xscale() == "linear" and fig.axes[0].get_xlabel() == "GMACs per clip"


def test_paper_values_without_the_x_column_are_not_placed_on_another_axis():
    runs = runs_table().assign(gmacs=lambda f: 100 * f["retention"])
    _, data = figures.metric_vs_retention(runs, [Panel("clotho_v2", "cider_d")], REFERENCE, x="gmacs")  # fmt: skip
    assert (data["source"] == "paper").sum() == 0 and (data["source"] == "ours").sum() == len(runs)


def test_classifier_figures_draw_exactly_the_table_values(tmp_path):
    """The classifier family plugs into the same module: accuracy vs GMACs per selector and
    Kendall τ per block; the CSV beside each figure holds exactly the values of the table."""
    from audioprune import figures

    table = pd.DataFrame(
        [
            {"mode": mode, "selector": sel, "retention": r, "gmacs": g, "accuracy": a, "accuracy_std": 1.0}
            for mode in ("inference-only", "fine-tuned")
            for sel, a0 in (("topk", 60.0), ("random", 62.0))
            for r, g, a in ((0.5, 0.0096, a0), (0.9, 0.0147, a0 + 5))
        ]
    )  # fmt: skip
    fig, drawn = figures.accuracy_vs_gmacs(table)
    paths = figures.save_figure(fig, tmp_path / "acc", drawn)
    assert all(p.stat().st_size > 0 for p in paths)
    saved = pd.read_csv(paths[2])
    merged = saved.merge(
        table, left_on=["panel", "series", "x"], right_on=["mode", "selector", "gmacs"]
    )
    assert len(merged) == len(table) and (merged["y"] == merged["accuracy"]).all()
    tau = pd.DataFrame(
        [{"block": b, "statistic": "intensity", "variant": v, "tau": 0.1 * b + (v != "tau_b")}
         for b in (1, 2, 3) for v in ("tau_b", "tau_ties_concordant")]
    )  # fmt: skip
    fig, drawn = figures.tau_per_block(tau)
    assert sorted(drawn["y"]) == sorted(tau["tau"])


def test_seed_means_print_the_retention_as_run():
    """A table printed with one digit keeps the retention as run (0.25, not 0.2)."""
    from audioprune.tables import seed_means, to_markdown

    frame = pd.DataFrame(
        {"selector": "random", "seed": [0, 1], "retention": 0.25, "accuracy": [60.0, 48.0]}
    )
    means = seed_means(frame, ["accuracy"])
    row = to_markdown(means, digits=1).splitlines()[2]
    assert row.split("|")[2].strip() == "0.25", row
    assert means["accuracy"].tolist() == [54.0]


def test_seed_means_never_average_across_models_or_other_settings():
    """Two models (or two segment counts, budgets, positions) each run with random seed 0 are
    not "a mean of 2 seeds": only runs that differ in the seed alone are averaged, and each
    mean names what it is of."""
    from audioprune.tables import seed_means

    frame = pd.DataFrame(
        {
            "model": ["a", "b", "a", "a"],
            "selector": "random",
            "seed": [0, 0, 1, 2],
            "retention": 0.25,
            "positions": "compact",
            "accuracy": [58.0, 56.0, 40.0, 43.0],
        }
    )
    means = seed_means(frame, ["accuracy"])
    assert len(means) == 1 and means["seeds"].tolist() == [3]
    assert means["accuracy"].tolist() == [47.0] and means["model"].tolist() == ["a"]
    two_models = frame.iloc[:2]
    assert seed_means(two_models, ["accuracy"]).empty


def test_a_selector_run_with_several_seeds_is_drawn_as_its_mean_with_the_range():
    """Random with three seeds: one line through the means per retention (not a zigzag through
    every seed), with the seeds' min-max as error bars."""
    from audioprune.figures import Panel, metric_vs_retention

    runs = pd.DataFrame(
        {
            "model": "m", "dataset": "d", "run_dir": [f"r{i}" for i in range(7)],
            "selector": ["none"] + ["random"] * 6,
            "seed": [None, 0, 1, 2, 0, 1, 2],
            "retention": [1.0, 0.25, 0.25, 0.25, 0.5, 0.5, 0.5],
            "accuracy": [90.0, 60.0, 48.0, 52.0, 78.0, 77.0, 76.0],
        }
    )  # fmt: skip
    fig, _ = metric_vs_retention(runs, [Panel("d", "accuracy")])
    lines = [  # connected lines through both retentions (caps are unconnected markers)
        ln
        for ln in fig.axes[0].get_lines()
        if list(ln.get_xdata()) == [0.25, 0.5] and ln.get_linestyle() not in ("None", "none")
    ]
    assert len(lines) == 1
    assert list(lines[0].get_ydata()) == pytest.approx([160 / 3, 77.0])


def test_several_seeds_at_one_point_draw_a_range_without_a_warning(caplog):
    """Random at three seeds shares (selector, retention) points by design (drawn as mean and
    range): no "filter the runs table" warning; two runs of one seed at one point still warn."""
    from audioprune.figures.style import our_points

    runs = pd.DataFrame(
        {
            "dataset": "d", "selector": "random", "retention": [0.5, 0.5, 0.5],
            "seed": [0, 1, 2], "acc": [60.0, 62.0, 64.0], "run_dir": ["a", "b", "c"],
        }
    )  # fmt: skip
    panel = Panel("d", "acc")
    with caplog.at_level("WARNING"):
        points = our_points(runs, panel, "retention", "acc", "selector")
    assert len(points) == 3 and "several runs share" not in caplog.text
    with caplog.at_level("WARNING"):
        our_points(runs.assign(seed=0), panel, "retention", "acc", "selector")
    assert "several runs share" in caplog.text
