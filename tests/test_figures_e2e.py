"""End to end on the tiny Audio Flamingo 3: saved runs -> `scripts/reproduce.py --tables-only`
(what `--tiny` calls after its runs) writes every figure and the LaTeX + CSV tables of every
experiment, and the values drawn equal the runs' metrics; `python -m audioprune.analyze
attention` writes analysis.json and its figures into a keyed folder, reusing the encoder cache."""

from __future__ import annotations

import json
import sys

import pandas as pd
import pytest
from test_figures import load_reproduce

from audioprune import runner
from audioprune.config import compose
from audioprune.tables import collect, find_runs

pytestmark = pytest.mark.slow

# A small subset of every recipe's grid, on two synthetic clips: Table 1/3 (captions), the
# Table 4 timing runs (tagged and limited as the recipe does) and the S sweep (MMAU-style items).
RUNS = [
    ("dataset=synthetic_captions", "selector=none", "retention=1.0"),
    ("dataset=synthetic_captions", "selector=segmentwise_topk", "retention=0.5"),
    ("dataset=synthetic_captions", "selector=none", "tag=efficiency-bs1", "limit=200"),
    (
        "dataset=synthetic_captions",
        "selector=segmentwise_topk",
        "retention=0.25",
        "tag=efficiency-bs1",
        "limit=200",
    ),  # fmt: skip
    ("dataset=synthetic_mmau", "selector=none"),
    (
        "dataset=synthetic_mmau",
        "selector=segmentwise_topk",
        "retention=0.25",
        "selector.segments=2",
    ),  # fmt: skip
    (
        "dataset=synthetic_mmau",
        "selector=segmentwise_topk",
        "retention=0.25",
        "selector.segments=10",
    ),  # fmt: skip
]


@pytest.fixture(scope="module")
def results(tmp_path_factory, session_cache):
    out = tmp_path_factory.mktemp("figures")
    runner.reset_process_state()
    for overrides in RUNS:
        runner.run(
            compose(
                [
                    "model=tiny_audio_flamingo_3",
                    "dataset.args.num_clips=2",
                    f"paths.cache_dir={session_cache}",
                    f"paths.results_dir={out}",
                    "progress=false",
                    *overrides,
                ]
            )
        )
    return out


def test_reproduce_writes_every_figure_and_table_with_the_runs_values(results, monkeypatch):
    reproduce = load_reproduce()
    # The runs above are on 2 clips: the tables take the recipes' runs on those clips.
    argv = ["reproduce.py", "--tables-only", "--results-dir", str(results), "++dataset.args.num_clips=2"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    reproduce.main()
    frame = collect(find_runs(results)).set_index("run_dir")
    # the paper recipes have saved runs here; the mini_* recipes have none, so nothing of
    # theirs is written (their tables over --tiny runs: tests/test_reproduce.py)
    for name in reproduce.FIGURES:
        if name.startswith("mini_"):
            assert not list((results / "tables").glob(f"{name}.*")), name
    for name, kinds in reproduce.FIGURES.items():
        if name.startswith("mini_"):
            continue
        for suffix in ("md", "tex", "csv"):
            assert (results / "tables" / f"{name}.{suffix}").stat().st_size > 100, (name, suffix)
        assert "\\toprule" in (results / "tables" / f"{name}.tex").read_text()
        for kind in kinds:
            stem = results / "figures" / (name if len(kinds) == 1 else f"{name}_{kind}")
            for suffix in ("png", "pdf"):
                assert stem.with_suffix(f".{suffix}").stat().st_size > 5000, (stem, suffix)
            data = pd.read_csv(stem.with_suffix(".csv"))
            ours = data[data["source"] == "ours"]
            for row in ours.itertuples():
                assert row.y == pytest.approx(frame.loc[row.run_dir, row.column] * row.scale)
                assert row.x == pytest.approx(frame.loc[row.run_dir, row.x_name])
    # every recipe drew its own runs and only those
    sweep = pd.read_csv(results / "figures" / "paper_segments_sweep.csv")
    assert sorted(sweep.loc[sweep["source"] == "ours", "x"]) == [2, 10]
    timing = pd.read_csv(results / "figures" / "paper_table4_efficiency.csv")
    timed = set(timing.loc[timing["source"] == "ours", "run_dir"])
    assert len(timed) == 2 and all("efficiency-bs1" in d for d in timed)
    assert (timing["source"] == "paper").sum() == 8  # Table 4: 4 prefill + 4 decode values
    table3 = pd.read_csv(results / "figures" / "paper_table3_ablation_metric_vs_retention.csv")
    assert set(table3.loc[table3["source"] == "ours", "series"]) == {"none", "segmentwise_topk"}
    layout = pd.read_csv(results / "tables" / "paper_table3_ablation.csv")
    row = layout[(layout["selector"] == "segmentwise_topk") & (layout["retention"] == 0.5)].iloc[0]
    assert row["clotho_v2 cider_d (paper)"] == 0.49
    ours = frame[(frame["selector"] == "segmentwise_topk") & (frame["dataset"] == "synthetic_captions") & frame["tag"].isna()]  # fmt: skip
    assert row["clotho_v2 cider_d"] == pytest.approx(ours["cider_d"].iloc[0])


def test_attention_analysis_on_the_tiny_model(results, session_cache, monkeypatch):
    from audioprune import analyze

    cfg = compose(
        [
            "model=tiny_audio_flamingo_3",
            "dataset=synthetic_captions",
            "dataset.args.num_clips=2",
            "limit=2",
            f"paths.cache_dir={session_cache}",
            f"paths.results_dir={results}",
            "analysis.selectors=[topk,segmentwise_topk,uniform]",
        ],
        config_name="analyze",
    )
    encoded = []
    original = runner.get_adapter(cfg.model).encode
    monkeypatch.setattr(type(runner.get_adapter(cfg.model)), "encode", lambda self, w, needs=frozenset(): encoded.append(needs) or original(w, needs))  # fmt: skip
    out = analyze.analyze_attention(cfg)
    assert out.parent == results / "analysis" / "tiny_audio_flamingo_3" / "synthetic_captions"
    assert out.name.startswith("attention-")
    result = json.loads((out / "analysis.json").read_text())
    assert result["num_clips"] == 2 and result["seconds_per_token"] == pytest.approx(0.04)
    stats = result["concentration"]
    for key in ("top_1%", "top_5%", "top_10%", "top_25%", "top_50%", "gini", "entropy"):
        assert stats[key]["n"] == result["num_windows"]
    assert 0.01 <= stats["top_1%"]["mean"] <= stats["top_50%"]["mean"] <= 1.0
    # the scorer fills TokenWindow.head_scores; clips the runs above cached (with them: the ALM
    # loop always keeps them) are not encoded again, the others are encoded asking for them
    heads = result["per_head"]
    assert heads["available"]
    assert all("head_scores" in n for n in encoded)
    coverage = {(r["selector"], r["retention"]): r for r in result["coverage"]}
    for retention in (0.5, 0.25, 0.1):  # K >= S = 10 on these clips
        assert coverage[("segmentwise_topk", retention)]["covered_fraction"]["mean"] == 1.0
        assert coverage[("uniform", retention)]["covered_fraction"]["mean"] == 1.0
    kept = result["map"]["kept_indices"]
    assert set(kept) == {"topk", "segmentwise_topk", "uniform"}
    for stem in ("concentration", "coverage", "kept_token_map"):
        for suffix in ("png", "pdf", "csv"):
            assert (out / f"{stem}.{suffix}").stat().st_size > 1000
    drawn = pd.read_csv(out / "kept_token_map.csv")
    assert drawn[drawn["series"] == "topk"]["token"].tolist() == kept["topk"]
    # keyed like runs: the folder name is the hash of the identity saved beside it
    identity = json.loads((out / "identity.json").read_text())
    assert (
        out.name == f"attention-{runner.identity_hash(identity)}" == f"attention-{result['hash']}"
    )
    assert identity["samples"]["count"] == 2 and identity["segments"] == 10
    # without per-head statistics, clips the runs above encoded come from the encoder cache
    encoded.clear()
    cfg.analysis.per_head = False
    samples = analyze.load_dataset(cfg.dataset.loader, **runner.plain(cfg.dataset.args))[0][:2]
    clips = analyze.encoded_clips(cfg, runner.get_adapter(cfg.model), samples)
    assert len(clips) == 2 and encoded == []
