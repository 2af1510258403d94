"""Analytic FLOPs (audioprune.flops): hand-computed small configs, torch's FlopCounterMode on real
modules, scaling, the adapters' per-row costs, and what the runner records and summarises."""

from __future__ import annotations

import json

import pytest
import torch
from _tiny import prune, synthetic_clip, tiny_qwen2_audio_adapter
from torch.utils.flop_counter import FlopCounterMode
from transformers import Qwen2AudioEncoderConfig, Qwen2Config

from audioprune import flops, runner, state
from audioprune.models.hooks import LastLayerScorer

# hidden 8, 2 query heads of 4, 1 key-value head (GQA), 2 layers, ffn 16, vocab 10
SMALL_TEXT = dict(
    hidden_size=8, num_attention_heads=2, num_key_value_heads=1, num_hidden_layers=2,
    intermediate_size=16, vocab_size=10,
)  # fmt: skip
# 4 mel bins, d_model 8, 2 heads, 1 layer, ffn 16
SMALL_AUDIO = dict(
    num_mel_bins=4, d_model=8, encoder_attention_heads=2, encoder_layers=1, encoder_ffn_dim=16,
    max_source_positions=5,
)  # fmt: skip


def small_text(**overrides) -> Qwen2Config:
    return Qwen2Config(**{**SMALL_TEXT, **overrides})


def small_audio(**overrides) -> Qwen2AudioEncoderConfig:
    return Qwen2AudioEncoderConfig(**{**SMALL_AUDIO, **overrides})


def counted(module: torch.nn.Module, *args, **kwargs) -> int:
    """FLOPs torch counts for one forward (matmuls, convolutions: 2 × multiply-adds)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*args, **kwargs)
    return counter.get_total_flops()


# ---------------------------------------------------------------- hand-computed, exact


def test_llm_prefill_small_config_by_hand():
    # L = 3 tokens, logits at all 3. Per token and layer (multiply-adds):
    #   q 8·8 + k 8·4 + v 8·4 + o 8·8 = 192; mlp 3·8·16 = 384.
    # projections 2·2 layers·3·192 = 2304; mlp 2·2·3·384 = 4608
    # attention, causal pairs 3·4/2 = 6, QKᵀ + AV = 2·(2 heads·4) = 16 per pair: 2·2·6·16 = 384
    # lm_head 2·3·8·10 = 480
    parts = flops.llm_prefill_breakdown(small_text(), seq_len=3, logits_positions=3)
    assert parts == {
        "projections": 2304,
        "attention": 384,
        "mlp": 4608,
        "lm_head": 480,
        "layers": 2304 + 384 + 4608,
        "total": 2304 + 384 + 4608 + 480,
    }
    # full square: 9 pairs instead of 6
    assert flops.llm_prefill_breakdown(small_text(), 3, 3, causal=False)["attention"] == 576
    # AF3-style: logits at the last position only
    assert flops.llm_prefill_flops(small_text(), 3, 1) == 2304 + 384 + 4608 + 2 * 8 * 10
    assert flops.llm_flops_per_token(small_text()) == 2 * 2 * (192 + 384)
    assert flops.llm_flops_per_token(small_text(), lm_head=True) == 2 * 2 * (192 + 384) + 160


def test_explicit_head_dim_is_used():
    # head_dim 6 (not 8 / 2): q 8·12, k 8·6, v 8·6, o 12·8 = 288 per token and layer
    parts = flops.llm_prefill_breakdown(small_text(head_dim=6), 1, 0)
    assert parts["projections"] == 2 * 2 * 288
    assert parts["attention"] == 2 * 2 * 1 * 2 * 12


def test_encoder_and_scoring_small_config_by_hand():
    # T = 5 frames (10 mel frames), m = 4, D = 8, F = 16, 1 layer.
    # conv1 10·4·8·3 = 960, conv2 5·8·8·3 = 960 -> 2·1920 = 3840
    # layer: 4·5·64 = 1280 (q k v out) + 2·25·8 = 400 (QKᵀ, AV) + 2·5·8·16 = 1280 -> 2·2960
    assert flops.encoder_breakdown(small_audio(), frames=5) == {
        "conv": 3840,
        "layers": 5920,
        "total": 9760,
    }
    # scoring: QKᵀ 2·25·8 = 400, softmax 5·2 heads·25 = 250 (q, k are the module's own)
    assert flops.scoring_flops(small_audio(), frames=5) == 650
    # head max: 1 per score, 2 heads·25 = 50; recomputing q, k: 2·(2·5·64) = 1280
    assert flops.scoring_flops(small_audio(), frames=5, head_max=True) == 700
    assert flops.scoring_flops(small_audio(), frames=5, recompute_qk=True) == 1930
    assert flops.audio_path_flops(small_audio(), windows=3, frames=5) == 3 * (9760 + 650)
    assert flops.audio_path_flops(small_audio(), windows=0, frames=5) == 0


# ---------------------------------------------------------------- against real modules


@pytest.mark.parametrize("seq_len", [1, 5, 17])
def test_llm_formula_equals_flop_counter_on_a_qwen2_forward(seq_len):
    from transformers import Qwen2ForCausalLM

    config = small_text(num_hidden_layers=3)
    # eager: attention is two counted matmuls over the full (masked) square
    model = Qwen2ForCausalLM._from_config(config, attn_implementation="eager").eval()
    ids = torch.arange(seq_len)[None] % config.vocab_size
    expected = flops.llm_prefill_flops(config, seq_len, seq_len, causal=False)
    assert counted(model, input_ids=ids) == expected  # logits at every position
    last_only = flops.llm_prefill_flops(config, seq_len, 1, causal=False)
    assert counted(model, input_ids=ids, logits_to_keep=1) == last_only


def test_encoder_and_scorer_formulas_equal_flop_counter():
    from transformers.models.qwen2_audio.modeling_qwen2_audio import Qwen2AudioEncoder

    config = small_audio(encoder_layers=2, max_source_positions=6)
    encoder = Qwen2AudioEncoder._from_config(config, attn_implementation="eager").eval()
    features = torch.randn(1, config.num_mel_bins, 12)
    assert counted(encoder, features) == flops.encoder_flops(config, frames=6)
    scorer = LastLayerScorer(encoder.layers[-1].self_attn)
    with_hook = counted(encoder, features)
    assert scorer.token_scores.shape == (1, 3)
    softmax = flops.SOFTMAX_FLOPS_PER_SCORE * config.encoder_attention_heads * 6 * 6
    assert with_hook - flops.encoder_flops(config, 6) == flops.scoring_flops(config, 6) - softmax


# ---------------------------------------------------------------- scaling and errors


def test_prefill_scaling_in_length_heads_and_logits():
    config = small_text(hidden_size=64, num_attention_heads=8, num_key_value_heads=8)
    one = flops.llm_prefill_breakdown(config, 1, 1)
    for length in (7, 100, 750):
        parts = flops.llm_prefill_breakdown(config, length, length)
        assert parts["projections"] == length * one["projections"]
        assert parts["mlp"] == length * one["mlp"]
        assert parts["lm_head"] == length * one["lm_head"]
        assert parts["attention"] == length * (length + 1) // 2 * one["attention"]
        full = flops.llm_prefill_breakdown(config, length, length, causal=False)
        assert full["attention"] == length * length * one["attention"]
    # pruning shortens the prompt: cost strictly increases with every kept token
    costs = [flops.llm_prefill_flops(config, n, n) for n in range(1, 60)]
    assert all(a < b for a, b in zip(costs, costs[1:]))
    # the LM head is the only part that depends on logits_positions
    a, b = flops.llm_prefill_breakdown(config, 50, 50), flops.llm_prefill_breakdown(config, 50, 1)
    assert a["layers"] == b["layers"] and a["lm_head"] == 50 * b["lm_head"]
    # GQA only shrinks the k and v projections: 2 · h · (n_q − n_kv) · d per token and layer
    gqa_config = small_text(hidden_size=64, num_attention_heads=8, num_key_value_heads=2)
    gqa = flops.llm_prefill_breakdown(gqa_config, 1, 1)
    # 2 FLOPs · 2 layers · 2 projections (k, v) · h 64 · (8 − 2) heads · d 8
    assert one["projections"] - gqa["projections"] == 2 * 2 * 2 * 64 * (8 - 2) * 8
    assert one["attention"] == gqa["attention"] and one["mlp"] == gqa["mlp"]


def test_encoder_scaling_in_frames_and_windows():
    config = small_audio(d_model=32, encoder_attention_heads=4, encoder_layers=3)
    base, double = flops.encoder_breakdown(config, 10), flops.encoder_breakdown(config, 20)
    assert double["conv"] == 2 * base["conv"]
    # linear part doubles, attention part quadruples: difference is 2 · T² · D per layer, × 2
    attention_10 = 2 * 3 * 2 * 10 * 10 * 32
    assert double["layers"] == 2 * (base["layers"] - attention_10) + 4 * attention_10
    one = flops.audio_path_flops(config, 1, 10)
    assert [flops.audio_path_flops(config, w, 10) for w in range(4)] == [0, one, 2 * one, 3 * one]


def test_bad_arguments_name_the_field():
    with pytest.raises(ValueError, match="logits_positions must be in \\[0, seq_len=3\\]"):
        flops.llm_prefill_flops(small_text(), 3, 4)
    with pytest.raises(ValueError, match="seq_len must be >= 0"):
        flops.llm_prefill_flops(small_text(), -1, 0)
    with pytest.raises(ValueError, match="use_sliding_window"):
        flops.llm_prefill_flops(small_text(use_sliding_window=True, sliding_window=4), 3, 1)

    class NoVocab:
        hidden_size, num_attention_heads, num_hidden_layers, intermediate_size = 8, 2, 1, 16
        vocab_size = None

    with pytest.raises(ValueError, match="NoVocab.vocab_size must be a positive int"):
        flops.llm_prefill_flops(NoVocab(), 3, 1)
    with pytest.raises(ValueError, match="frames must be >= 1"):
        flops.encoder_flops(small_audio(), frames=0)


# ---------------------------------------------------------------- adapters


@pytest.fixture(scope="module")
def qwen_adapter(session_cache):
    return tiny_qwen2_audio_adapter(session_cache)


def test_qwen2_audio_adapter_prices_logits_at_every_position_and_records_rows(qwen_adapter):
    adapter = qwen_adapter
    assert adapter.logits_at_every_position  # P12
    text = adapter.model.config.text_config
    assert adapter.prefill_flops(40) == flops.llm_prefill_flops(text, 40, 40)
    audio = adapter.model.config.audio_config
    assert adapter.audio_flops(1) == flops.encoder_flops(audio, 1500) + flops.scoring_flops(
        audio, 1500
    )
    encoded = adapter.encode([synthetic_clip(4.0), synthetic_clip(2.0, seed=1)])
    pruned = prune(encoded, 0.5)
    generations, timing = adapter.generate(["Describe.", "Describe."], pruned, max_new_tokens=2)
    rows = [g.prompt_tokens for g in generations]
    assert rows[0] != rows[1]  # padding differs, so per-row costs must differ too
    assert timing.extra["prefill_flops"] == [adapter.prefill_flops(n) for n in rows]
    assert timing.extra["audio_flops"] == [adapter.audio_flops(1)] * 2
    assert timing.extra["peak_mem_mb"] is None  # CPU: not measured


def test_audio_flamingo3_adapter_prices_logits_at_the_last_position_and_windows():
    from audioprune.models.audio_flamingo3 import AudioFlamingo3Adapter
    from audioprune.models.tiny import tiny_audio_flamingo3

    adapter = AudioFlamingo3Adapter.from_model(*tiny_audio_flamingo3(seed=0))
    assert not adapter.logits_at_every_position
    text = adapter.model.config.text_config
    assert adapter.prefill_flops(40) == flops.llm_prefill_flops(text, 40, 1)
    assert adapter.audio_flops(3) == 3 * adapter.audio_flops(1) > 0
    (encoded,) = adapter.encode([synthetic_clip(45.0)])  # two 30 s windows
    (pruned,) = prune([encoded], 0.25)
    (generation,), timing = adapter.generate(["Describe."], [pruned], max_new_tokens=1)
    assert timing.extra["audio_flops"] == [adapter.audio_flops(2)]
    assert timing.extra["prefill_flops"] == [adapter.prefill_flops(generation.prompt_tokens)]


# ---------------------------------------------------------------- runner records and summary


def test_summarize_excludes_warmup_from_timing_means_only():
    def record(prefill_ms, warmup, cached=False, peak=None, prefill_flops=2e12, audio_flops=1e12):
        return {
            "kept_tokens": 10,
            "audio_tokens": 20,
            "prefill_flops": prefill_flops,
            "audio_flops": audio_flops,
            "timings": {
                "audio_ms": None if cached else prefill_ms / 2,
                "encoder_cached": cached,
                "prefill_ms": prefill_ms,
                "decode_ms_per_token": prefill_ms / 10,
                "peak_mem_mb": peak,
                "warmup": warmup,
            },
        }

    records = [
        record(1000.0, True, peak=900.0, prefill_flops=4e12),  # slow first batch
        record(10.0, False, peak=500.0),
        record(30.0, False, cached=True, peak=700.0),
        {"id": "x", "prediction": None, "error": "audio file missing"},
    ]
    summary = runner.summarize(records)
    assert summary["prefill_ms_mean"] == pytest.approx(20.0)
    assert summary["decode_ms_per_token_mean"] == pytest.approx(2.0)
    assert summary["audio_ms_mean"] == pytest.approx(5.0)  # cached clip and warm-up left out
    assert summary["timed_samples"] == 2 and summary["warmup_samples"] == 1
    assert summary["prefill_tflops_mean"] == pytest.approx(8 / 3)  # analytic: all records
    assert summary["audio_tflops_mean"] == pytest.approx(1.0)
    assert summary["peak_mem_mb_max"] == 900.0  # the warm-up batch's memory was really needed
    assert summary["kept_ratio"] == pytest.approx(0.5)

    cpu = runner.summarize([record(5.0, False, peak=None)])
    assert cpu["peak_mem_mb_max"] is None
    only_warmup = runner.summarize([record(5.0, True)])
    assert only_warmup["prefill_ms_mean"] is None and only_warmup["timed_samples"] == 0


@pytest.mark.slow
def test_runner_records_flops_peak_memory_and_marks_only_the_first_batch(compose_cfg):
    runner.reset_process_state()
    try:
        base = ("model=tiny_qwen2_audio", "dataset=synthetic_captions", "dataset.args.num_clips=3")
        first = runner.run(compose_cfg(*base, "selector=topk", "retention=0.5", "batch_size=2"))
        adapter = state.loaded_adapter()
        records = [
            json.loads(x) for x in (first.run_dir / "predictions.jsonl").read_text().splitlines()
        ]
        assert [r["timings"]["warmup"] for r in records] == [True, True, False]
        for r in records:
            assert r["prefill_flops"] == adapter.prefill_flops(r["prompt_tokens"])
            assert r["audio_flops"] == adapter.audio_flops(len(r["kept_per_window"]))
            assert r["timings"]["peak_mem_mb"] is None  # CPU
        summary = json.loads((first.run_dir / "metrics.json").read_text())["summary"]
        assert summary["timed_samples"] == 1
        assert summary["prefill_ms_mean"] == records[2]["timings"]["prefill_ms"]
        mean = sum(r["prefill_flops"] for r in records) / 3 / 1e12
        assert summary["prefill_tflops_mean"] == pytest.approx(mean)

        # Same loaded model, next job of a sweep: already warm; the encoder outputs come from
        # the cache and audio_flops still prices computing them.
        second = runner.run(compose_cfg(*base, "selector=topk", "retention=0.25", "batch_size=2"))
        again = [
            json.loads(x) for x in (second.run_dir / "predictions.jsonl").read_text().splitlines()
        ]
        assert not any(r["timings"]["warmup"] for r in again)
        assert all(r["timings"]["encoder_cached"] for r in again)
        assert [r["audio_flops"] for r in again] == [r["audio_flops"] for r in records]
        assert all(a["prefill_flops"] < b["prefill_flops"] for a, b in zip(again, records))
    finally:
        runner.reset_process_state()


def test_peak_memory_is_read_on_cuda_and_none_elsewhere(monkeypatch):
    # No GPU in CI: the CUDA calls are stubbed to check what we do with them.
    from audioprune.models import runtime

    calls = []
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda d: calls.append(("reset", d)))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda d: 3 * 2**20 + 2**19)
    cuda = torch.device("cuda", 1)
    runtime.reset_peak_memory(cuda)
    assert runtime.peak_memory_mb(cuda) == 3.5
    assert calls == [("reset", cuda)]
    runtime.reset_peak_memory(torch.device("cpu"))
    assert runtime.peak_memory_mb(torch.device("cpu")) is None
    assert calls == [("reset", cuda)]  # nothing touched CUDA for the CPU device
