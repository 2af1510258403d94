"""End to end through the real configs and runner on the tiny Qwen2-Audio and synthetic audio:
run folder contents, resume, config keying, rescoring, bad input, relative drops, encoder reuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audioprune import runner, state
from audioprune.budget import keep_count
from audioprune.environment import lock_sha256
from audioprune.models.qwen2_audio import Qwen2AudioAdapter

pytestmark = pytest.mark.slow

BASE = ("model=tiny_qwen2_audio", "dataset=synthetic_captions", "dataset.args.num_clips=3")


@pytest.fixture(autouse=True)
def fresh_process_state():
    runner.reset_process_state()
    yield
    runner.reset_process_state()


@pytest.fixture
def count_calls(monkeypatch):
    """Counts generate calls (batches) and encoded clips of the Qwen2-Audio adapter."""
    counts = {"generate": 0, "encoded_clips": 0}
    generate, encode = Qwen2AudioAdapter.generate, Qwen2AudioAdapter.encode

    def counting_generate(self, prompts, *args, **kwargs):
        counts["generate"] += 1
        return generate(self, prompts, *args, **kwargs)

    def counting_encode(self, waveforms, *args, **kwargs):
        counts["encoded_clips"] += len(waveforms)
        return encode(self, waveforms, *args, **kwargs)

    monkeypatch.setattr(Qwen2AudioAdapter, "generate", counting_generate)
    monkeypatch.setattr(Qwen2AudioAdapter, "encode", counting_encode)
    return counts


def predictions(run_dir: Path) -> dict[str, str]:
    lines = (run_dir / "predictions.jsonl").read_text().splitlines()
    return {json.loads(line)["id"]: json.loads(line)["prediction"] for line in lines}


def test_run_writes_config_predictions_and_metrics(compose_cfg):
    result = runner.run(compose_cfg(*BASE, "selector=segmentwise_topk", "retention=0.25"))
    files = sorted(p.name for p in result.run_dir.iterdir())
    assert files == ["config.yaml", "identity.json", "metrics.json", "predictions.jsonl"]
    records = [
        json.loads(x) for x in (result.run_dir / "predictions.jsonl").read_text().splitlines()
    ]
    assert len(records) == 3
    # the environment the numbers came from: the lock's hash (issue 16 item 1)
    assert result.metrics["environment"]["lock_sha256"] == lock_sha256()
    for r in records:
        assert r["kept_tokens"] == keep_count(r["audio_tokens"], 0.25)
        assert r["kept_per_window"] == [r["kept_tokens"]]
        assert isinstance(r["prediction"], str)
        assert r["timings"]["prefill_ms"] > 0
        assert sorted(r["kept_indices"][0]) == r["kept_indices"][0]
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["metrics"]["n"] == 3 and 0 <= metrics["metrics"]["cider_d"]
    assert metrics["run"]["selector"] == {
        "name": "segmentwise_topk",
        "segments": 10,
        "fill_remainder": True,
        "head_weights": "uniform",
    }
    assert metrics["dataset"]["version"] == "synthetic-v1"
    assert {"audioprune", "transformers", "torch"} <= set(metrics["versions"])
    assert "segmentwise_topk-S10-r0.25-" in result.run_dir.name
    config = (result.run_dir / "config.yaml").read_text()
    assert "retention: 0.25" in config and "tiny_qwen2_audio" in config


def test_rerun_resumes_and_changed_config_does_not_reuse(compose_cfg, count_calls):
    cfg = compose_cfg(*BASE, "selector=topk", "retention=0.5")
    first = runner.run(cfg)
    assert first.computed == 3 and count_calls["generate"] == 3
    again = runner.run(cfg)
    assert again.computed == 0 and count_calls["generate"] == 3  # nothing recomputed
    assert again.run_dir == first.run_dir and predictions(again.run_dir) == predictions(
        first.run_dir
    )
    other = runner.run(compose_cfg(*BASE, "selector=topk", "retention=0.25"))
    assert other.run_dir != first.run_dir and other.computed == 3
    prompt = runner.run(
        compose_cfg(*BASE, "selector=topk", "retention=0.5", "prompt=Caption this.")
    )
    assert prompt.run_dir != first.run_dir and prompt.computed == 3
    # runtime-only settings do not change the key: a smoke run's samples are reused by the full run
    limited = runner.run(compose_cfg(*BASE, "selector=uniform", "limit=1"))
    full = runner.run(compose_cfg(*BASE, "selector=uniform", "batch_size=2"))
    assert full.run_dir == limited.run_dir and (limited.computed, full.computed) == (1, 2)


def test_evaluate_only_rescores_without_loading_the_model(compose_cfg, monkeypatch):
    cfg = compose_cfg(*BASE, "selector=topk", "retention=0.5")
    first = runner.run(cfg)
    runner.reset_process_state()

    def no_model(*args, **kwargs):
        raise AssertionError("evaluate_only must not load the model")

    monkeypatch.setattr(state, "build_adapter", no_model)
    again = runner.run(compose_cfg(*BASE, "selector=topk", "retention=0.5", "evaluate_only=true"))
    assert again.metrics["metrics"]["cider_d"] == pytest.approx(first.metrics["metrics"]["cider_d"])


def test_unpruned_run_gives_relative_drop_and_loyalty(compose_cfg):
    base = runner.run(compose_cfg(*BASE, "selector=none"))
    assert base.metrics["run"]["retention"] == 1.0
    assert all(r["kept_tokens"] == r["audio_tokens"] for r in base.records)
    pruned = runner.run(compose_cfg(*BASE, "selector=bottomk", "retention=0.1"))
    assert pruned.metrics["unpruned_run"] == str(base.run_dir)
    drops = pruned.metrics["relative_drop"]
    b, p = base.metrics["metrics"]["cider_d"], pruned.metrics["metrics"]["cider_d"]
    if b:
        assert drops["cider_d"] == pytest.approx((p - b) / b)
    same = sum(predictions(base.run_dir)[k] == v for k, v in predictions(pruned.run_dir).items())
    assert pruned.metrics["loyalty"]["loyalty"] == pytest.approx(same / 3)


@pytest.mark.parametrize("retention", ["0", "1.5", "-0.25"])
def test_bad_retention_is_rejected_before_anything_is_written(compose_cfg, retention, tmp_path):
    with pytest.raises(ValueError, match=r"retention must be in \(0, 1\]"):
        runner.run(compose_cfg(*BASE, "selector=topk", f"retention={retention}"))
    assert not (tmp_path / "results").exists()


def test_unknown_selector_and_adapter_list_valid_names(compose_cfg, tmp_path):
    with pytest.raises(ValueError, match="valid selectors: .*segmentwise_topk.*topk"):
        runner.run(compose_cfg(*BASE, "selector.name=top_k"))
    with pytest.raises(ValueError, match="valid adapters: .*audio_flamingo_3, .*qwen2_audio"):
        runner.run(compose_cfg(*BASE, "model.adapter=qwen3_audio"))
    assert not list((tmp_path / "results").rglob("predictions.jsonl"))


def test_unknown_config_option_lists_choices(compose_cfg):
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException, match="segmentwise_topk"):
        compose_cfg(*BASE, "selector=segmentwise")


def test_missing_audio_file_names_the_file(compose_cfg, session_cache):
    cfg = compose_cfg(*BASE, "selector=topk")
    samples, _ = runner.load_dataset(cfg.dataset.loader, **cfg.dataset.args)
    victim = Path(samples[1].audio_path)
    saved = victim.read_bytes()
    try:
        victim.unlink()
        with pytest.raises(Exception, match=victim.name):
            runner.run(cfg)
        victim.write_bytes(b"RIFF garbage, not a wav file")
        with pytest.raises(Exception, match=victim.name):
            runner.run(compose_cfg(*BASE, "selector=topk", "retention=0.5"))
    finally:
        victim.write_bytes(saved)


def test_sweep_encodes_each_clip_once_and_matches_separate_runs(compose_cfg, count_calls):
    combos = [
        (s, r) for s in ("topk", "segmentwise_topk", "random", "visionzip") for r in (0.5, 0.25)
    ]
    swept = {}
    for selector, retention in combos:
        result = runner.run(compose_cfg(*BASE, f"selector={selector}", f"retention={retention}"))
        swept[(selector, retention)] = predictions(result.run_dir)
    assert count_calls["encoded_clips"] == 3  # not 8 x 3
    for selector, retention in combos:
        runner.reset_process_state()
        separate = runner.run(
            compose_cfg(
                *BASE,
                f"selector={selector}",
                f"retention={retention}",
                "encoder_cache.memory=false",
                f"run_dir=${{paths.results_dir}}/separate/{selector}-{retention}",
            )
        )
        assert predictions(separate.run_dir) == swept[(selector, retention)], (selector, retention)
    assert count_calls["encoded_clips"] == 3 + 8 * 3


def test_batched_run_equals_one_by_one(compose_cfg):
    one = runner.run(
        compose_cfg(*BASE, "selector=uniform", "retention=0.25", "run_dir=${paths.results_dir}/bs1")
    )
    batched = runner.run(
        compose_cfg(
            *BASE,
            "selector=uniform",
            "retention=0.25",
            "batch_size=3",
            "run_dir=${paths.results_dir}/bs3",
        )
    )
    assert predictions(one.run_dir) == predictions(batched.run_dir)


def test_wrong_model_leaves_no_run_folder(compose_cfg, tmp_path):
    with pytest.raises(TypeError, match="Qwen2AudioForConditionalGeneration"):
        runner.run(compose_cfg(*BASE, "selector=topk", "model.adapter=audio_flamingo_3"))
    assert not list((tmp_path / "results").rglob("*.json*"))


def test_truncated_predictions_file_recomputes_only_the_damaged_sample(
    compose_cfg, count_calls, caplog
):
    cfg = compose_cfg(*BASE, "selector=random", "retention=0.25")
    first = runner.run(cfg)
    path = first.run_dir / "predictions.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:2]) + lines[2][: len(lines[2]) // 2])  # crash mid-line
    before = count_calls["generate"]
    with caplog.at_level("WARNING"):
        again = runner.run(cfg)
    assert again.computed == 1 and count_calls["generate"] == before + 1
    assert str(path) in caplog.text and "line 3" in caplog.text
    assert predictions(again.run_dir) == predictions(first.run_dir)


def test_corrupt_disk_cache_file_is_recomputed_in_a_run(compose_cfg, count_calls, caplog, tmp_path):
    disk = (
        "encoder_cache.disk=true",
        f"encoder_cache.dir={tmp_path / 'enc'}",
        "encoder_cache.memory=false",
    )
    runner.run(compose_cfg(*BASE, "selector=topk", *disk))
    assert count_calls["encoded_clips"] == 3
    victim = sorted((tmp_path / "enc").rglob("*.safetensors"))[0]
    victim.write_bytes(b"not a safetensors file")
    with caplog.at_level("WARNING"):
        result = runner.run(compose_cfg(*BASE, "selector=uniform", *disk))
    assert count_calls["encoded_clips"] == 4  # only the damaged clip is encoded again
    assert victim.name in caplog.text and len(result.records) == 3
