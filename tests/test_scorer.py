"""The last-layer scorer hook against transformers' own eager attention maps (tiny Qwen2-Audio).

Reference: the same checkpoint loaded with eager attention, `output_attentions=True`, the last
layer's map summed over valid queries, averaged over heads, frame pairs averaged to tokens.
"""

from __future__ import annotations

import pytest
import torch
from _tiny import synthetic_clip, tiny_qwen2_audio_adapter


@pytest.fixture(scope="module")
def adapter(session_cache):
    return tiny_qwen2_audio_adapter(session_cache)


@pytest.fixture(scope="module")
def eager_tower(adapter):
    from transformers import Qwen2AudioForConditionalGeneration

    model = Qwen2AudioForConditionalGeneration.from_pretrained(
        adapter.pretrained, attn_implementation="eager"
    ).eval()
    assert model.model.audio_tower.config._attn_implementation == "eager"
    return model.model.audio_tower


def eager_reference(adapter, tower, clips):
    """Token scores [B, 750] and hidden [B, 750, D] from eager attention maps; valid frames [B]."""
    feats = adapter.feature_extractor(
        clips,
        sampling_rate=16_000,
        padding="max_length",
        return_attention_mask=True,
        return_tensors="pt",
    )
    mel_valid = feats["attention_mask"].sum(-1)
    frames = (mel_valid - 1) // 2 + 1  # conv2 has stride 2
    total = feats["input_features"].shape[-1] // 2
    key_valid = torch.arange(total)[None, :] < frames[:, None]  # [B, T]
    mask = None
    if not bool(key_valid.all()):
        mask = torch.zeros(len(clips), 1, total, total)
        mask = mask.masked_fill(~key_valid[:, None, None, :], torch.finfo(torch.float32).min)
    with torch.no_grad():
        out = tower(feats["input_features"], attention_mask=mask, output_attentions=True)
    attn = out.attentions[-1].float()  # [B, H, T, T]
    received = (attn * key_valid[:, None, :, None]).sum(dim=2).mean(dim=1)  # [B, T]
    tokens = received.view(len(clips), total // 2, 2).mean(-1)
    return tokens, out.last_hidden_state, frames


@pytest.mark.parametrize("seconds", [[30.0], [30.0, 10.0]], ids=["unpadded", "padded"])
def test_hook_scores_equal_eager_output_attentions(adapter, eager_tower, seconds):
    clips = [synthetic_clip(s, seed=i) for i, s in enumerate(seconds)]
    encoded = adapter.encode(clips)
    ref_scores, ref_hidden, frames = eager_reference(adapter, eager_tower, clips)
    for i, item in enumerate(encoded):
        (window,) = item.windows
        n = int(frames[i]) // 2
        assert window.num_tokens == n == int(seconds[i] * 25)
        diff = (window.scores - ref_scores[i, :n]).abs().max().item()
        assert diff < 1e-5, f"clip {i}: hook vs eager max abs diff {diff:.2e}"
        # The encoder output the LLM gets is the stock (masked) encoder's output too.
        assert torch.allclose(window.hidden, ref_hidden[i, :n], atol=1e-4)
    frame_scores = adapter.scorer.frame_scores
    for i in range(len(clips)):
        valid = int(frames[i])
        # Each valid query spreads attention 1 over the keys: the scores add up to the query count.
        assert frame_scores[i].sum().item() == pytest.approx(valid, rel=1e-5)
        assert torch.all(frame_scores[i, valid:] == 0)


def test_scoring_keeps_every_layer_on_sdpa(adapter, monkeypatch):
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
    from transformers.models.qwen2_audio import modeling_qwen2_audio

    calls = []
    sdpa = ALL_ATTENTION_FUNCTIONS["sdpa"]

    def counting_sdpa(module, *args, **kwargs):
        calls.append(type(module).__name__)
        return sdpa(module, *args, **kwargs)

    def no_eager(*args, **kwargs):
        raise AssertionError("eager attention was used")

    monkeypatch.setitem(ALL_ATTENTION_FUNCTIONS, "sdpa", counting_sdpa)
    monkeypatch.setattr(modeling_qwen2_audio, "eager_attention_forward", no_eager)
    tower = adapter.model.model.audio_tower
    requested = []

    def record(module, args, kwargs):
        requested.append(bool(kwargs.get("output_attentions")))

    handles = [tower.register_forward_pre_hook(record, with_kwargs=True)]
    handles += [
        layer.self_attn.register_forward_pre_hook(record, with_kwargs=True)
        for layer in tower.layers
    ]
    try:
        (item,) = adapter.encode([synthetic_clip(10.0)])
    finally:
        for handle in handles:
            handle.remove()
    assert calls == ["Qwen2AudioAttention"] * len(tower.layers)
    assert requested and not any(requested)
    assert adapter.model.config._attn_implementation == "sdpa"
    assert tower.config._attn_implementation == "sdpa"
    assert item.windows[0].scores.shape == (250,)


def test_keys_only_when_needed(adapter):
    clip = synthetic_clip(4.0)
    (plain,) = adapter.encode([clip])
    (with_keys,) = adapter.encode([clip], needs=frozenset({"keys"}))
    attn = adapter.model.model.audio_tower.layers[-1].self_attn
    assert plain.windows[0].keys is None
    assert with_keys.windows[0].keys.shape == (100, attn.head_dim)
    assert torch.equal(plain.windows[0].scores, with_keys.windows[0].scores)
