"""Audio Flamingo 3 adapter on a tiny random-weight checkpoint: 30 s windowing, equality with the
stock model, per-window budgets, batching, the scorer against eager attention, wrong checkpoints."""

from __future__ import annotations

import pytest
import torch
from _tiny import FirstCall, cut_at_eos, prune, synthetic_clip

from audioprune.budget import keep_count
from audioprune.models.audio_flamingo3 import AudioFlamingo3Adapter
from audioprune.models.tiny import build_tiny_audio_flamingo3

PROMPTS = ["Describe the audio in one sentence.", "What is the sound?"]
NEW_TOKENS = 6


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    # Built through the YAML route: `build_tiny` on a missing local path.
    path = tmp_path_factory.mktemp("models") / "tiny-audio-flamingo-3"
    return AudioFlamingo3Adapter(str(path), build_tiny="audio_flamingo_3")


@pytest.fixture(scope="module")
def clips():
    """A 45 s clip (two windows: 30 s + 15 s) and a 10 s clip (one padded window)."""
    return [synthetic_clip(45.0, seed=1), synthetic_clip(10.0, seed=2)]


@pytest.fixture(scope="module")
def encoded(adapter, clips):
    return adapter.encode(clips, needs=frozenset({"keys"}))


def text_tokens(adapter, prompt: str) -> int:
    """Tokens of the chat prompt without audio: its single `<sound>` is one special token."""
    return len(adapter.tokenizer(adapter.chat_text(prompt))["input_ids"]) - 1


# ---------------------------------------------------------------- checkpoint and loading


def test_tiny_model_is_a_stock_checkpoint(adapter, tmp_path):
    from transformers import AudioFlamingo3ForConditionalGeneration, AudioFlamingo3Processor

    assert type(adapter.model) is AudioFlamingo3ForConditionalGeneration
    assert type(adapter.processor) is AudioFlamingo3Processor
    assert adapter.feature_extractor.feature_size == 128
    assert adapter.model.config.audio_config._attn_implementation == "sdpa"
    assert adapter.model.config.audio_token_id == adapter.tokenizer.convert_tokens_to_ids("<sound>")
    # Same seed, same weights; the head comes back from disk, not re-initialised (P1).
    again = AudioFlamingo3ForConditionalGeneration.from_pretrained(
        build_tiny_audio_flamingo3(tmp_path / "again", seed=0)
    )
    loaded = adapter.model.state_dict()
    assert "lm_head.weight" in loaded and loaded.keys() == again.state_dict().keys()
    for name, tensor in again.state_dict().items():
        assert torch.equal(loaded[name], tensor), name
    assert adapter.pretrained.split("/")[-1] in adapter.fingerprint()


def test_qwen2_audio_checkpoint_is_rejected(tmp_path):
    from audioprune.models.tiny import build_tiny_qwen2_audio

    path = build_tiny_qwen2_audio(tmp_path / "qwen2-audio")
    with pytest.raises(
        TypeError,
        match=r"Qwen2AudioForConditionalGeneration \(model_type 'qwen2_audio'\); "
        r"expected a AudioFlamingo3ForConditionalGeneration",
    ):
        AudioFlamingo3Adapter(str(path))


def test_model_without_audio_tower_layers_is_rejected(tmp_path):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    # An AF3 checkpoint whose encoder has no layer to score.
    path = build_tiny_audio_flamingo3(tmp_path / "no-layers", audio_layers=0)
    with pytest.raises(TypeError, match=r"lacks model.audio_tower.layers\[-1\].self_attn"):
        AudioFlamingo3Adapter(str(path))
    # A plain LLM: no audio tower, no projector.
    config = Qwen2Config(
        vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, intermediate_size=64,
    )  # fmt: skip
    with pytest.raises(
        TypeError,
        match=r"Qwen2ForCausalLM, which lacks model.audio_tower, model.multi_modal_projector, "
        r"model.language_model; expected a AudioFlamingo3ForConditionalGeneration",
    ):
        AudioFlamingo3Adapter.check_model(Qwen2ForCausalLM(config))


# ---------------------------------------------------------------- audio path


def test_encode_follows_the_stock_windows_and_feature_path(adapter, clips, encoded):
    assert [[w.num_tokens for w in e.windows] for e in encoded] == [[750, 375], [250]]
    head_dim = adapter.model.config.audio_config.hidden_size // 4
    for item in encoded:
        for w in item.windows:
            assert w.scores.dtype == torch.float32 and w.scores.shape == (w.num_tokens,)
            assert w.hidden.shape == (w.num_tokens, 256)
            assert w.keys.shape == (w.num_tokens, head_dim)
    assert adapter.encode(clips[1:])[0].windows[0].keys is None  # keys only when needed

    # Projecting our pre-projector rows, window by window, gives the stock audio embeddings.
    stock_inputs = adapter.processor(text=[adapter.audio_token] * 2, audio=clips)
    assert stock_inputs["input_features"].shape[0] == 3
    with torch.no_grad():
        stock = adapter.model.model.get_audio_features(
            stock_inputs["input_features"], stock_inputs["input_features_mask"]
        ).pooler_output
        hidden = torch.cat([w.hidden for e in encoded for w in e.windows])
        ours = adapter.model.model.multi_modal_projector(hidden)
    assert ours.shape == stock.shape == (1375, 256)
    assert torch.allclose(ours, stock, atol=1e-5)


def test_encode_truncates_at_the_processors_max_audio_len(adapter):
    # The windowing is the processor's own: lowering its cap changes what encode sees.
    saved = adapter.processor.max_audio_len
    adapter.processor.max_audio_len = 60
    try:
        (item,) = adapter.encode([synthetic_clip(75.0)])
    finally:
        adapter.processor.max_audio_len = saved
    assert [w.num_tokens for w in item.windows] == [750, 750]


def test_scorer_matches_eager_attention_on_padded_windows(adapter, clips, encoded):
    from transformers import AudioFlamingo3ForConditionalGeneration

    eager = AudioFlamingo3ForConditionalGeneration.from_pretrained(
        adapter.pretrained, attn_implementation="eager"
    ).eval()
    inputs = adapter.processor(text=[adapter.audio_token] * 2, audio=clips)
    mask = inputs["input_features_mask"]
    with torch.no_grad():
        out = eager.model.audio_tower(
            inputs["input_features"], input_features_mask=mask, output_attentions=True
        )
    attn = out.attentions[-1]  # [3 windows, H, 1500, 1500]
    frames = attn.shape[-1]
    valid = torch.arange(frames)[None, :] < ((mask.sum(-1) - 1) // 2 + 1)[:, None]
    received = (attn * valid[:, None, :, None]).sum(2).mean(1)  # over valid queries, then heads
    reference = received.view(-1, frames // 2, 2).mean(-1)
    windows = [w for e in encoded for w in e.windows]
    assert [int(v.sum()) // 2 for v in valid] == [w.num_tokens for w in windows] == [750, 375, 250]
    for row, window in enumerate(windows):
        diff = (window.scores - reference[row, : window.num_tokens]).abs().max().item()
        assert diff < 1e-5, f"window {row}: scores differ from eager by {diff:.2e}"
    assert reference[1:].sum(-1).gt(0).all() and reference.std() > 0


# ---------------------------------------------------------------- generation


def test_full_retention_generates_like_stock_model(adapter, clips, encoded):
    ours, timing = adapter.generate(PROMPTS, prune(encoded, 1.0), max_new_tokens=NEW_TOKENS)

    texts = [adapter.chat_text(p) for p in PROMPTS]
    stock_inputs = adapter.processor(text=texts, audio=clips)
    ours_inputs = adapter.prepare_inputs(PROMPTS, prune(encoded, 1.0))
    assert torch.equal(ours_inputs["input_ids"], stock_inputs["input_ids"])
    assert torch.equal(ours_inputs["attention_mask"], stock_inputs["attention_mask"])
    with torch.no_grad():
        stock = adapter.model.generate(**stock_inputs, max_new_tokens=NEW_TOKENS, do_sample=False)
    new = stock[:, stock_inputs["input_ids"].shape[1] :]
    for row, gen in enumerate(ours):
        assert gen.token_ids == cut_at_eos(new[row].tolist(), adapter)
        assert gen.prompt_tokens == int(stock_inputs["attention_mask"][row].sum())
    assert [g.prompt_tokens for g in ours] == [
        text_tokens(adapter, p) + n for p, n in zip(PROMPTS, [1125, 250])
    ]
    assert timing.extra["prefill_seq_len"] == stock_inputs["input_ids"].shape[1]
    assert timing.extra["audio_windows"] == [2, 1]
    assert timing.prefill_ms > 0 and timing.decode_ms_per_token > 0
    # The tiny model's answers depend on the audio, so the equality above says something.
    assert ours[0].token_ids != ours[1].token_ids


def test_quarter_retention_budgets_per_window_and_batches_like_single(adapter, encoded):
    pruned = prune(encoded, 0.25)
    kept = [[keep_count(750, 0.25), keep_count(375, 0.25)], [keep_count(250, 0.25)]]
    assert kept == [[187, 93], [62]]
    assert [[int(t.shape[0]) for t in p.tokens] for p in pruned] == kept
    text = [text_tokens(adapter, p) for p in PROMPTS]
    expected = [t + sum(k) for t, k in zip(text, kept)]

    head = adapter.model.lm_head
    lm = adapter.model.model.language_model
    with FirstCall(head) as logits, FirstCall(lm, kwargs=True) as seen:
        together, timing = adapter.generate(PROMPTS, pruned, max_new_tokens=NEW_TOKENS)
    assert [g.prompt_tokens for g in together] == expected
    assert timing.extra["prefill_seq_len"] == max(expected)
    assert seen.values[0]["inputs_embeds"].shape[1] == max(expected)  # the LLM really gets fewer
    assert seen.values[0]["attention_mask"].sum().item() == sum(expected)
    assert timing.extra["audio_tokens"] == [sum(k) for k in kept]

    batch_logits = logits.values[0]
    for row, (prompt, audio) in enumerate(zip(PROMPTS, pruned)):
        with FirstCall(head) as seen_single:
            (alone,), single_timing = adapter.generate([prompt], [audio], max_new_tokens=NEW_TOKENS)
        assert single_timing.extra["prefill_seq_len"] == expected[row]
        assert together[row].token_ids == alone.token_ids
        diff = (batch_logits[row, -1] - seen_single.values[0][0, -1]).abs().max().item()
        assert diff < 1e-4, f"row {row}: prefill logits differ by {diff:.2e}"


def test_original_positions_keep_the_unpruned_spacing(adapter, encoded):
    pruned = prune(encoded[:1], 0.25)
    (gen,), timing = adapter.generate(PROMPTS[:1], pruned, max_new_tokens=3, positions="original")
    positions = torch.tensor(timing.extra["prefill_position_ids"][0])
    ids = adapter.prepare_inputs(PROMPTS[:1], pruned)["input_ids"][0].cpu()
    slots = (ids == adapter.audio_token_id).nonzero().flatten()
    first = int(slots[0])
    # Window 2 starts after window 1's 750 tokens; the text resumes after all 1125.
    original = torch.cat([pruned[0].indices[0], 750 + pruned[0].indices[1]])
    assert torch.equal(positions[slots], first + original)
    assert int(positions[-1]) == text_tokens(adapter, PROMPTS[0]) + 1125 - 1
    assert gen.prompt_tokens == len(ids)

    full = prune(encoded, 1.0)
    orig, t_orig = adapter.generate(PROMPTS, full, max_new_tokens=NEW_TOKENS, positions="original")
    comp, _ = adapter.generate(PROMPTS, full, max_new_tokens=NEW_TOKENS)
    assert [g.token_ids for g in orig] == [g.token_ids for g in comp]


def test_generate_rejects_bad_arguments(adapter, encoded):
    pruned = prune(encoded[1:], 1.0)
    with pytest.raises(ValueError, match="positions must be one of compact, original"):
        adapter.generate(PROMPTS[:1], pruned, positions="shifted")
    with pytest.raises(ValueError, match="2 prompts but 1 audio"):
        adapter.generate(PROMPTS, pruned)


def test_tiny_yaml_builds_the_adapter(compose_cfg):
    from omegaconf import OmegaConf

    from audioprune.models import build_adapter

    cfg = compose_cfg("model=tiny_audio_flamingo_3")
    model = OmegaConf.to_container(cfg.model, resolve=True)
    assert model["adapter"] == "audio_flamingo_3" and model["build_tiny"] == "audio_flamingo_3"
    args = {
        k: model[k] for k in ("pretrained", "dtype", "device", "attn_implementation", "build_tiny")
    }
    built = build_adapter(model["adapter"], **args)
    assert isinstance(built, AudioFlamingo3Adapter)
    assert built.model.config.audio_config.num_hidden_layers == 2


def test_clip_just_past_a_30s_multiple_runs_like_stock(adapter):
    # 30.01 s: the second window holds 160 samples = 1 mel frame = 0 tokens (60.015 s: 240
    # samples, same). The stock processor + generate give such a window no placeholder; so must we.
    from audioprune.pruning import prune_clip
    from audioprune.selectors import build_selector

    _, mask, placeholders = adapter.stock_windows(synthetic_clip(60.015, seed=4))
    assert adapter.token_lengths(mask).tolist() == [750, 750, 0] and placeholders == 1500
    wave = synthetic_clip(30.01, seed=3)
    (encoded,) = adapter.encode([wave])
    assert [w.num_tokens for w in encoded.windows] == [750, 0]
    full = prune_clip(encoded, build_selector("none"), 1.0, "30.01s")
    (ours,), _ = adapter.generate(PROMPTS[:1], [full], max_new_tokens=2)
    stock_inputs = adapter.processor(text=[adapter.chat_text(PROMPTS[0])], audio=[wave])
    assert torch.equal(
        adapter.prepare_inputs(PROMPTS[:1], [full])["input_ids"], stock_inputs["input_ids"]
    )
    with torch.no_grad():
        stock = adapter.model.generate(**stock_inputs, max_new_tokens=2, do_sample=False)
    assert ours.token_ids == cut_at_eos(
        stock[0, stock_inputs["input_ids"].shape[1] :].tolist(), adapter
    )
    pruned = prune_clip(encoded, build_selector("topk"), 0.25, "30.01s")
    assert [int(t.shape[0]) for t in pruned.tokens] == [187, 0]
    (gen,), timing = adapter.generate(PROMPTS[:1], [pruned], max_new_tokens=1)
    assert timing.extra["audio_windows"] == [2]  # the empty window was still encoded
