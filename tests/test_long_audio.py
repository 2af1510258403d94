"""Audio longer than 30 s through the real runner: AF3 windows it (a 45 s clip is two windows,
each with its own budget); Qwen2-Audio truncates at 30 s. Uses the real `clotho_v2` config on a
small dataset written here in the Clotho layout."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf

from audioprune import runner
from audioprune.budget import keep_count

pytestmark = pytest.mark.slow
RATE = 44_100


@pytest.fixture
def clotho_like(tmp_path):
    root = tmp_path / "clotho"
    (root / "evaluation").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for name, seconds in (("long_45s.wav", 45.0), ("short_10s.wav", 10.0)):
        t = np.arange(int(seconds * RATE)) / RATE
        wave = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)
        sf.write(root / "evaluation" / name, wave.astype(np.float32), RATE)
        rows.append([name, *(f"a steady tone number {i}" for i in range(5))])
    with open(root / "clotho_captions_evaluation.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file_name", *(f"caption_{i}" for i in range(1, 6))])
        writer.writerows(rows)
    return [
        "dataset=clotho_v2",
        f"dataset.args.root={root}",
        "dataset.args.expected_count=null",
        "dataset.args.allow_subset=true",
        "dataset.metrics.captioning_metrics=[cider_d]",
    ]


@pytest.fixture(autouse=True)
def fresh_process_state():
    runner.reset_process_state()
    yield
    runner.reset_process_state()


def records(run_dir):
    lines = (run_dir / "predictions.jsonl").read_text().splitlines()
    return {json.loads(x)["id"]: json.loads(x) for x in lines}


def test_af3_budgets_each_30s_window_and_batches_like_single(compose_cfg, clotho_like):
    common = [
        *clotho_like,
        "model=tiny_audio_flamingo_3",
        "selector=segmentwise_topk",
        "retention=0.25",
    ]
    batched = runner.run(compose_cfg(*common, "batch_size=2", "run_dir=${paths.results_dir}/bs2"))
    got = records(batched.run_dir)
    long, short = got["long_45s.wav"], got["short_10s.wav"]
    assert long["audio_tokens"] == 750 + 375 and long["kept_per_window"] == [
        keep_count(750, 0.25),
        keep_count(375, 0.25),
    ]
    assert short["kept_per_window"] == [keep_count(250, 0.25)]
    assert [len(w) for w in long["kept_indices"]] == long["kept_per_window"]
    assert max(long["kept_indices"][1]) < 375  # indices are per window
    assert (
        long["prompt_tokens"] - short["prompt_tokens"] == long["kept_tokens"] - short["kept_tokens"]
    )
    single = runner.run(compose_cfg(*common, "batch_size=1", "run_dir=${paths.results_dir}/bs1"))
    assert {k: r["prediction"] for k, r in records(single.run_dir).items()} == {
        k: r["prediction"] for k, r in got.items()
    }


def test_qwen2_audio_sees_only_the_first_30s(compose_cfg, clotho_like):
    result = runner.run(
        compose_cfg(*clotho_like, "model=tiny_qwen2_audio", "selector=topk", "retention=0.5")
    )
    long = records(result.run_dir)["long_45s.wav"]
    assert long["audio_tokens"] == 750 and long["kept_per_window"] == [375]
