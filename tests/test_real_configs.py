"""The published Qwen2-Audio-7B-Instruct and Audio Flamingo 3 architectures, built on the meta
device (shapes only, no weights, no hub): our adapters accept them, the scorer sits on the last
encoder layer, parameter counts match the published sizes, and the analytic FLOPs agree with
docs/models-audio-llms.md and with torch's FlopCounterMode on meta forwards."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from audioprune import flops
from audioprune.budget import keep_count
from audioprune.models.audio_flamingo3 import AudioFlamingo3Adapter
from audioprune.models.qwen2_audio import Qwen2AudioAdapter

# config.json of Qwen/Qwen2-Audio-7B-Instruct (docs/models-audio-llms.md)
QWEN2_AUDIO_ENCODER = dict(
    model_type="qwen2_audio_encoder", num_mel_bins=128, encoder_layers=32,
    encoder_attention_heads=20, encoder_ffn_dim=5120, d_model=1280, max_source_positions=1500,
    activation_function="gelu", scale_embedding=False,
)  # fmt: skip
QWEN2_AUDIO_LLM = dict(
    model_type="qwen2", hidden_size=4096, num_hidden_layers=32, num_attention_heads=32,
    num_key_value_heads=32, intermediate_size=11008, vocab_size=156032,
    max_position_embeddings=8192, rms_norm_eps=1e-5, tie_word_embeddings=False,
)  # fmt: skip
# config.json of nvidia/audio-flamingo-3-hf: Whisper-large-v3 encoder, Qwen2.5-7B LLM. The note
# gives the vocabulary as ≈ 151.7k; 151,672 moves the count by < 0.01 % either way.
AF3_ENCODER = dict(
    model_type="audioflamingo3_encoder", num_mel_bins=128, hidden_size=1280,
    intermediate_size=5120, num_attention_heads=20, num_hidden_layers=32,
    max_source_positions=1500,
)  # fmt: skip
AF3_LLM = dict(
    model_type="qwen2", hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
    num_attention_heads=28, num_key_value_heads=4, vocab_size=151672, hidden_act="silu",
    max_position_embeddings=32768, tie_word_embeddings=False,
)  # fmt: skip

# Published sizes: model cards (Qwen2-Audio-7B-Instruct 8.4B, audio-flamingo-3-hf 8.3B) and the
# Qwen2.5-7B card (7.61B, the AF3 LLM with its head).
PUBLISHED = {"qwen2_audio": 8.4e9, "audio_flamingo_3": 8.3e9}
QWEN25_7B = 7.61e9
TEXT_TOKENS = 37  # ~37 text tokens around a 30 s clip's 750 audio tokens (real-scale.md)


def _build(kind: str):
    """(adapter, model) for the real architecture on meta, wrapped with a tiny processor.

    The processor only supplies a tokenizer for the adapter's id check, so the config's audio
    token id is the tiny tokenizer's; every shape is the published one.
    """
    from transformers import (
        AudioFlamingo3Config,
        AudioFlamingo3ForConditionalGeneration,
        Qwen2AudioConfig,
        Qwen2AudioForConditionalGeneration,
    )

    from audioprune.models.tiny import (
        AF3_CHAT_TEMPLATE,
        AF3_SPECIAL_TOKENS,
        QWEN2_AUDIO_CHAT_TEMPLATE,
        QWEN2_AUDIO_SPECIAL_TOKENS,
        _chatml_processor,
    )

    if kind == "qwen2_audio":
        from transformers import Qwen2AudioProcessor

        processor = _chatml_processor(
            Qwen2AudioProcessor, QWEN2_AUDIO_SPECIAL_TOKENS, QWEN2_AUDIO_CHAT_TEMPLATE
        )
        config = Qwen2AudioConfig(
            audio_config=QWEN2_AUDIO_ENCODER,
            text_config=QWEN2_AUDIO_LLM,
            audio_token_index=processor.tokenizer.convert_tokens_to_ids("<|AUDIO|>"),
        )
        model_class, adapter_class = Qwen2AudioForConditionalGeneration, Qwen2AudioAdapter
    else:
        from transformers import AudioFlamingo3Processor

        processor = _chatml_processor(
            AudioFlamingo3Processor, AF3_SPECIAL_TOKENS, AF3_CHAT_TEMPLATE
        )
        config = AudioFlamingo3Config(
            audio_config=AF3_ENCODER,
            text_config=AF3_LLM,
            audio_token_id=processor.tokenizer.convert_tokens_to_ids("<sound>"),
        )
        model_class, adapter_class = AudioFlamingo3ForConditionalGeneration, AudioFlamingo3Adapter
    with torch.device("meta"):
        model = model_class._from_config(config, attn_implementation="sdpa", dtype=torch.bfloat16)
    adapter_class.check_model(model, "real-scale.md")
    return adapter_class.from_model(model, processor, label=f"meta-{kind}"), model


@pytest.fixture(scope="module", params=["qwen2_audio", "audio_flamingo_3"])
def real(request):
    adapter, model = _build(request.param)
    return request.param, adapter, model


def counted(fn) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def test_structure_check_accepts_and_scorer_sits_on_the_last_encoder_layer(real, monkeypatch):
    kind, adapter, model = real
    assert model.device.type == "meta"
    layers = model.model.audio_tower.layers
    assert len(layers) == 32
    assert adapter.scorer.attention is layers[-1].self_attn
    # Only the last layer carries a forward hook, and it fires once per encoder forward.
    hooked = [i for i, layer in enumerate(layers) if layer.self_attn._forward_hooks]
    assert hooked == [31]
    tower = model.model.audio_tower
    features = torch.empty(2, 128, 3000, device="meta", dtype=model.dtype)
    if kind == "audio_flamingo_3":
        # The tower builds its mask with a data-dependent check that meta tensors cannot run;
        # with every frame valid the mask is "attend everywhere", i.e. None.
        import transformers.models.audioflamingo3.modeling_audioflamingo3 as af3

        monkeypatch.setattr(af3, "create_bidirectional_mask", lambda **kwargs: None)
        mask = torch.ones(2, 3000, dtype=torch.long, device="meta")
        total = counted(lambda: tower(features, input_features_mask=mask))
    else:
        total = counted(lambda: tower(features))
    assert adapter.scorer.token_scores.shape == (2, 750)
    assert adapter.scorer.frame_scores.shape == (2, 1500)
    # FlopCounterMode on the real module tree: 2 windows of encoder + hook (softmax not counted)
    audio = model.config.audio_config
    softmax = flops.SOFTMAX_FLOPS_PER_SCORE * 20 * 1500 * 1500
    assert total == 2 * (flops.encoder_flops(audio) + flops.scoring_flops(audio) - softmax)
    assert adapter.audio_flops(2) == flops.audio_path_flops(audio, 2)


def test_parameter_counts_match_published_sizes(real):
    kind, _, model = real
    total = sum(p.numel() for p in model.parameters())
    assert abs(total / PUBLISHED[kind] - 1) < 0.01, f"{kind}: {total / 1e9:.3f}B"
    tower = sum(p.numel() for p in model.model.audio_tower.parameters())
    assert 0.63e9 < tower < 0.64e9  # Whisper-large-v3 encoder (+ the pooling-side LayerNorm)
    if kind == "audio_flamingo_3":
        llm = sum(p.numel() for p in model.model.language_model.parameters())
        llm += model.lm_head.weight.numel()
        assert abs(llm / QWEN25_7B - 1) < 0.005


def test_analytic_flops_agree_with_real_scale_note(real):
    kind, adapter, model = real
    text, audio = model.config.text_config, model.config.audio_config
    # Encoder ≈ 2.2 TFLOP per 30 s window, either model (same Whisper-large-v3 shape).
    encoder = flops.encoder_flops(audio, 1500)
    assert encoder == pytest.approx(2.2e12, rel=0.05)
    assert flops.scoring_flops(audio) / encoder < 0.01  # the hook is < 1 % of the encoder
    full = TEXT_TOKENS + 750  # 787, the note's unpruned prompt
    pruned = TEXT_TOKENS + keep_count(750, 0.25)  # 224; the note rounds 37 + 187.5 to 225
    if kind == "qwen2_audio":
        assert adapter.logits_at_every_position
        assert flops.llm_flops_per_token(text) == pytest.approx(13e9, rel=0.01)
        head = flops.llm_flops_per_token(text, lm_head=True) - flops.llm_flops_per_token(text)
        assert head == pytest.approx(1.3e9, rel=0.02)
        assert adapter.prefill_flops(full) == pytest.approx(11.5e12, rel=0.02)
        assert adapter.prefill_flops(225) == pytest.approx(3.2e12, rel=0.02)
        # the note's "token-count bound on the speed-up is 3.5×"
        assert adapter.prefill_flops(full) / adapter.prefill_flops(pruned) == pytest.approx(
            3.5, rel=0.02
        )
    else:
        assert not adapter.logits_at_every_position
        head = flops.linear_flops(1, 3584, 151672)
        assert (
            adapter.prefill_flops(full) - head
            == flops.llm_prefill_breakdown(text, full, 0)["layers"]
        )
    assert adapter.prefill_flops(pruned) < adapter.prefill_flops(full)


def test_prefill_formula_equals_flop_counter_on_the_real_llm(real):
    kind, adapter, model = real
    seq_len = TEXT_TOKENS + 750
    text = model.config.text_config
    embeds = torch.empty(1, seq_len, text.hidden_size, device="meta", dtype=torch.bfloat16)
    logits_positions = seq_len if adapter.logits_at_every_position else 1

    def prefill():
        hidden = model.model.language_model(inputs_embeds=embeds).last_hidden_state
        model.lm_head(hidden[:, -logits_positions:])

    # sdpa is counted over the full square; the causal count is the default elsewhere
    expected = flops.llm_prefill_flops(text, seq_len, logits_positions, causal=False)
    assert counted(prefill) == expected
    assert adapter.prefill_flops(seq_len) == flops.llm_prefill_flops(
        text, seq_len, logits_positions
    )
