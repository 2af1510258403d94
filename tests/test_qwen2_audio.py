"""Qwen2-Audio adapter on a tiny random-weight checkpoint: loading, pruned generation, timing."""

from __future__ import annotations

import pytest
import torch
from _tiny import FirstCall, cut_at_eos, prune, synthetic_clip, tiny_qwen2_audio_adapter

from audioprune.budget import keep_count
from audioprune.models.base import PrunedAudio
from audioprune.models.qwen2_audio import Qwen2AudioAdapter
from audioprune.models.tiny import ensure_tiny_model, tiny_qwen2_audio
from audioprune.models.whisper_style import original_positions

PROMPT = "Describe the audio in one sentence."
NEW_TOKENS = 6


@pytest.fixture(scope="module")
def adapter(session_cache):
    return tiny_qwen2_audio_adapter(session_cache)


def text_tokens(adapter, prompt: str) -> int:
    """Tokens of the chat prompt without audio (its single placeholder removed)."""
    text = adapter.chat_text(prompt).replace(adapter.audio_token, "")
    return len(adapter.tokenizer(text, add_special_tokens=False)["input_ids"])


# ---------------------------------------------------------------- checkpoint and loading


def test_tiny_model_round_trips_through_from_pretrained(adapter):
    fresh, processor = tiny_qwen2_audio(seed=0)
    loaded = adapter.model.state_dict()
    built = fresh.state_dict()
    assert loaded.keys() == built.keys()
    assert "lm_head.weight" in loaded  # P1: the head must come back from disk, not re-initialised
    for name, tensor in built.items():
        assert torch.equal(loaded[name], tensor), name
    assert type(adapter.model).__name__ == "Qwen2AudioForConditionalGeneration"
    assert type(adapter.processor).__name__ == "Qwen2AudioProcessor"
    assert adapter.feature_extractor.feature_size == 128
    assert adapter.tokenizer.padding_side == "left"
    assert adapter.tokenizer.get_vocab() == processor.tokenizer.get_vocab()
    assert adapter.model.config.audio_token_id == adapter.tokenizer.convert_tokens_to_ids(
        "<|AUDIO|>"
    )


def test_non_qwen2_audio_checkpoint_is_rejected(tmp_path):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, intermediate_size=64,
    )  # fmt: skip
    model = Qwen2ForCausalLM(config)
    model.save_pretrained(tmp_path / "qwen2")
    with pytest.raises(
        TypeError, match=r"Qwen2ForCausalLM.*expected a Qwen2AudioForConditionalGeneration"
    ):
        Qwen2AudioAdapter(str(tmp_path / "qwen2"))
    with pytest.raises(
        TypeError,
        match=r"Qwen2ForCausalLM, which lacks model.audio_tower, model.multi_modal_projector, "
        r"model.language_model; expected a Qwen2AudioForConditionalGeneration",
    ):
        Qwen2AudioAdapter.check_model(model)


def test_tiny_tokenizer_is_deterministic_and_keeps_special_tokens():
    from audioprune.models.tiny import (
        QWEN2_AUDIO_CHAT_TEMPLATE,
        QWEN2_AUDIO_SPECIAL_TOKENS,
        build_tiny_tokenizer,
    )

    def build():
        return build_tiny_tokenizer(
            list(QWEN2_AUDIO_SPECIAL_TOKENS),
            "<|im_end|>",
            "<|endoftext|>",
            QWEN2_AUDIO_CHAT_TEMPLATE,
        )

    first, second = build(), build()
    assert first.backend_tokenizer.to_str() == second.backend_tokenizer.to_str()
    assert first.padding_side == "left" and len(first) == 400
    assert [first.convert_ids_to_tokens(i) for i in range(6)] == list(QWEN2_AUDIO_SPECIAL_TOKENS)
    ids = first("a dog<|AUDIO|><|AUDIO|> barks<|im_end|>", add_special_tokens=False)["input_ids"]
    assert ids.count(first.convert_tokens_to_ids("<|AUDIO|>")) == 2
    assert ids[-1] == first.eos_token_id
    assert first.decode(ids, skip_special_tokens=True) == "a dog barks"
    batch = first(["a", "a dog barks"], padding=True)["input_ids"]
    assert batch[0][0] == first.pad_token_id  # left padding
    with pytest.raises(ValueError, match="pad_token='<pad>' must be one of special_tokens"):
        build_tiny_tokenizer(["<eos>"], "<eos>", "<pad>", "")


def test_an_unknown_tiny_kind_is_refused(tmp_path):
    """(The atomic build itself: tests/test_atomic.py.)"""
    with pytest.raises(ValueError, match="unknown tiny model kind 'nope'.*qwen2_audio"):
        ensure_tiny_model("nope", tmp_path / "model")
    assert list(tmp_path.iterdir()) == []


def test_build_tiny_and_fingerprint(adapter):
    assert (
        adapter.model.config.audio_config.encoder_layers,
        adapter.model.config.text_config.hidden_size,
    ) == (2, 256)
    # Building again is a no-op: the existing model is kept.
    assert ensure_tiny_model("qwen2_audio", adapter.pretrained).samefile(adapter.pretrained)
    fingerprint = adapter.fingerprint()
    assert adapter.pretrained.split("/")[-1] in fingerprint and "float32" in fingerprint
    other = Qwen2AudioAdapter(adapter.pretrained, dtype="bfloat16")
    assert other.fingerprint() != fingerprint
    assert other.model.dtype == torch.bfloat16


def test_long_clip_is_truncated_with_one_warning(adapter, caplog):
    adapter._warned_truncation = False
    with caplog.at_level("WARNING", logger="audioprune.models.qwen2_audio"):
        first = adapter.encode([synthetic_clip(31.0)])
        adapter.encode([synthetic_clip(31.0)])
    assert first[0].num_tokens == 750
    assert sum("truncates" in r.getMessage() for r in caplog.records) == 1


# ---------------------------------------------------------------- generation


@pytest.mark.parametrize("seconds", [[10.0], [10.0, 4.0]], ids=["single", "batch"])
def test_full_retention_generates_like_stock_model(adapter, seconds):
    clips = [synthetic_clip(s, seed=i) for i, s in enumerate(seconds)]
    prompts = [PROMPT, "What is the sound?"][: len(clips)]
    head = adapter.model.lm_head
    with FirstCall(head) as ours_logits:
        ours, timing = adapter.generate(
            prompts, prune(adapter.encode(clips), 1.0), max_new_tokens=NEW_TOKENS
        )

    texts = [adapter.chat_text(p) for p in prompts]
    stock_inputs = adapter.processor(text=texts, audio=clips, padding=True, return_tensors="pt")
    with torch.no_grad(), FirstCall(head) as stock_logits:
        stock = adapter.model.generate(**stock_inputs, max_new_tokens=NEW_TOKENS, do_sample=False)
    new = stock[:, stock_inputs["input_ids"].shape[1] :]
    for row, gen in enumerate(ours):
        assert gen.token_ids == cut_at_eos(new[row].tolist(), adapter)
        assert gen.prompt_tokens == int(stock_inputs["attention_mask"][row].sum())
    valid = stock_inputs["attention_mask"].bool()
    diff = (ours_logits.values[0][valid] - stock_logits.values[0][valid]).abs().max().item()
    assert diff < 1e-4, f"prefill logits differ from the stock model's by {diff:.2e}"
    assert timing.extra["prefill_seq_len"] == stock_inputs["input_ids"].shape[1]
    assert timing.new_tokens == new.shape[1]
    assert timing.extra["decode_steps"] == timing.new_tokens - 1
    assert timing.prefill_ms > 0 and timing.decode_ms_per_token > 0
    assert timing.prefill_ms > 0


def test_pruned_prefill_is_text_plus_kept_tokens(adapter):
    clips = [synthetic_clip(30.0), synthetic_clip(10.0, seed=1)]
    encoded = adapter.encode(clips)
    text = text_tokens(adapter, PROMPT)
    kept = [keep_count(750, 0.25), keep_count(250, 0.25)]
    assert kept == [187, 62]

    (full,), full_timing = adapter.generate([PROMPT], prune(encoded[:1], 1.0), max_new_tokens=2)
    (single,), timing = adapter.generate([PROMPT], prune(encoded[:1], 0.25), max_new_tokens=2)
    assert full_timing.extra["prefill_seq_len"] == full.prompt_tokens == text + 750
    assert timing.extra["prefill_seq_len"] == single.prompt_tokens == text + kept[0]

    with FirstCall(adapter.model.model.language_model, kwargs=True) as seen:
        gens, timing = adapter.generate([PROMPT] * 2, prune(encoded, 0.25), max_new_tokens=2)
    assert [g.prompt_tokens for g in gens] == [text + k for k in kept]
    assert timing.extra["prefill_seq_len"] == text + max(kept)
    assert seen.values[0]["inputs_embeds"].shape[1] == text + max(kept)
    assert seen.values[0]["attention_mask"].sum().item() == 2 * text + sum(kept)
    assert timing.extra["audio_tokens"] == kept


def test_batched_generation_equals_one_by_one(adapter):
    clips = [synthetic_clip(s, seed=i) for i, s in enumerate([30.0, 10.0, 4.0])]
    singles = [adapter.encode([c])[0] for c in clips]
    batched = adapter.encode(clips)
    for one, many in zip(singles, batched):
        assert torch.allclose(one.windows[0].scores, many.windows[0].scores, atol=1e-5)
        assert torch.allclose(one.windows[0].hidden, many.windows[0].hidden, atol=1e-4)

    pruned = prune(singles, 0.25)
    prompts = [PROMPT, "What is the sound?", "Is anyone speaking?"]
    head = adapter.model.lm_head
    with FirstCall(head) as seen:
        together, _ = adapter.generate(prompts, pruned, max_new_tokens=NEW_TOKENS)
    batch_logits = seen.values[0]
    for row, (prompt, audio) in enumerate(zip(prompts, pruned)):
        with FirstCall(head) as seen:
            (alone,), _ = adapter.generate([prompt], [audio], max_new_tokens=NEW_TOKENS)
        assert together[row].token_ids == alone.token_ids
        assert together[row].prompt_tokens == alone.prompt_tokens
        n = alone.prompt_tokens
        single_logits = seen.values[0][0, -n:]
        diff = (batch_logits[row, -n:] - single_logits).abs().max().item()
        assert diff < 1e-4, f"row {row}: prefill logits differ by {diff:.2e}"


def test_original_positions_keep_time_spacing(adapter):
    (encoded,) = adapter.encode([synthetic_clip(10.0)])
    (pruned,) = prune([encoded], 0.25)
    idx = pruned.indices[0]
    lm = adapter.model.model.language_model
    with FirstCall(lm, kwargs=True) as seen:
        (gen,), timing = adapter.generate(
            [PROMPT], [pruned], max_new_tokens=3, positions="original"
        )
    prefill = seen.values[0]["position_ids"][0]
    assert timing.extra["prefill_position_ids"][0] == prefill.tolist()
    ids = adapter.tokenizer(
        adapter.chat_text(PROMPT).replace(adapter.audio_token, adapter.audio_token * len(idx)),
        add_special_tokens=False,
        return_tensors="pt",
    )["input_ids"][0]
    slots = (ids == adapter.audio_token_id).nonzero().flatten()
    first, after = int(slots[0]), int(slots[-1]) + 1
    assert torch.equal(prefill[:first], torch.arange(first))
    assert torch.equal(prefill[first:after], first + idx)
    assert torch.equal(prefill[after:], first + 250 + torch.arange(len(ids) - after))
    # Decoding continues one position after the last prompt position.
    assert seen.values[1]["position_ids"].flatten().tolist() == [int(prefill[-1]) + 1]
    assert gen.prompt_tokens == len(ids)

    # With every token kept, original spacing is the compact one: same positions, same answer.
    (full,) = prune([encoded], 1.0)
    (orig,), t_orig = adapter.generate(
        [PROMPT], [full], max_new_tokens=NEW_TOKENS, positions="original"
    )
    (comp,), _ = adapter.generate([PROMPT], [full], max_new_tokens=NEW_TOKENS)
    assert t_orig.extra["prefill_position_ids"][0] == list(range(comp.prompt_tokens))
    assert orig.token_ids == comp.token_ids


def test_original_positions_with_left_padding():
    audio_id, pad = 7, 0
    input_ids = torch.tensor([[pad, 1, 2, 7, 7, 7, 3], [1, 2, 7, 7, 7, 7, 3]])
    mask = (torch.arange(7) >= torch.tensor([[1], [0]])).long()
    audio = [
        PrunedAudio([torch.zeros(3, 4)], [torch.tensor([1, 4, 9])], [10]),
        PrunedAudio([torch.zeros(4, 4)], [torch.tensor([0, 1, 2, 5])], [6]),
    ]
    pos = original_positions(input_ids, mask, audio_id, audio)
    assert pos.tolist() == [[0, 0, 1, 3, 6, 11, 12], [0, 1, 2, 3, 4, 7, 8]]


def test_generate_rejects_bad_arguments(adapter):
    (encoded,) = adapter.encode([synthetic_clip(4.0)])
    pruned = prune([encoded], 1.0)
    with pytest.raises(ValueError, match="positions must be one of compact, original"):
        adapter.generate([PROMPT], pruned, positions="shifted")
    with pytest.raises(ValueError, match="2 prompts but 1 audio"):
        adapter.generate([PROMPT, PROMPT], pruned)


def test_too_short_clip_is_rejected(adapter):
    import numpy as np

    with pytest.raises(ValueError, match=r"clip 1 \(160 samples\) is too short"):
        adapter.encode([synthetic_clip(1.0), np.zeros(160, dtype=np.float32)])
    # The boundary: ceil(T / 160) mel frames, conv then pooling need 3 of them (20 ms + 1 sample).
    assert adapter.min_samples == 321
    with pytest.raises(ValueError, match=r"clip 0 \(320 samples\) is too short.*at least 321"):
        adapter.encode([np.zeros(320, dtype=np.float32)])
    (shortest,) = adapter.encode([np.full(321, 0.1, dtype=np.float32)])
    assert shortest.num_tokens == 1
