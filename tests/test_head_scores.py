"""Head-aware scores through the production path: the tiny Qwen2-Audio's hook against eager
attention maps per head, and the encoder cache keeping (or refusing to reuse without) them."""

from __future__ import annotations

import pytest
import torch
from _tiny import synthetic_clip, tiny_qwen2_audio_adapter

from audioprune.cache import EncoderCache
from audioprune.models.base import EncodedAudio
from audioprune.selectors.base import TokenWindow

ALL_STATS = frozenset({"head_scores", "head_max_scores", "self_scores"})


@pytest.fixture(scope="module")
def adapter(session_cache):
    return tiny_qwen2_audio_adapter(session_cache)


def eager_maps(adapter, clips):
    """Last-layer attention [B, H, T, T] of the same checkpoint under eager, padded query rows
    zeroed, and the valid frame count per clip."""
    from transformers import Qwen2AudioForConditionalGeneration

    tower = Qwen2AudioForConditionalGeneration.from_pretrained(
        adapter.pretrained, attn_implementation="eager"
    ).model.audio_tower.eval()
    feats = adapter.feature_extractor(
        clips, sampling_rate=16_000, padding="max_length", return_attention_mask=True,
        return_tensors="pt",
    )  # fmt: skip
    frames = (feats["attention_mask"].sum(-1) - 1) // 2 + 1
    total = feats["input_features"].shape[-1] // 2
    valid = torch.arange(total)[None, :] < frames[:, None]
    mask = torch.zeros(len(clips), 1, total, total)
    mask = mask.masked_fill(~valid[:, None, None, :], torch.finfo(torch.float32).min)
    with torch.no_grad():
        out = tower(feats["input_features"], attention_mask=mask, output_attentions=True)
    return out.attentions[-1].double() * valid[:, None, :, None], frames


def pool(frame_values: torch.Tensor) -> torch.Tensor:
    """[..., T] -> [..., T/2], averaging frame pairs like AvgPool(2, 2)."""
    return frame_values.reshape(*frame_values.shape[:-1], -1, 2).mean(-1)


def test_head_statistics_equal_eager_attention_maps_on_a_padded_batch(adapter):
    clips = [synthetic_clip(30.0, seed=0), synthetic_clip(10.0, seed=1)]
    encoded = adapter.encode(clips, needs=ALL_STATS | {"keys"})
    maps, frames = eager_maps(adapter, clips)  # [B, H, T, T]
    heads = adapter.model.config.audio_config.encoder_attention_heads
    for b, item in enumerate(encoded):
        (window,) = item.windows
        n = int(frames[b]) // 2
        assert window.head_scores.shape == (heads, n)
        per_head = pool(maps[b].sum(dim=1))[:, :n]  # received per head, pooled
        torch.testing.assert_close(window.head_scores.double(), per_head, atol=1e-5, rtol=1e-5)
        # the head mean of the per-head scores is the shared score
        torch.testing.assert_close(window.head_scores.mean(0), window.scores, atol=1e-6, rtol=0)
        head_max = pool(maps[b].amax(dim=0).sum(dim=0))[:n]
        torch.testing.assert_close(window.head_max_scores.double(), head_max, atol=1e-5, rtol=1e-5)
        mean_map = maps[b].mean(dim=0)  # [T, T]
        t = mean_map.shape[0]
        blocks = mean_map.reshape(t // 2, 2, t // 2, 2).sum(dim=(1, 3)) / 2  # SA-MAP's P[t, u]
        diagonal = torch.diagonal(blocks)[:n]
        torch.testing.assert_close(window.self_scores.double(), diagonal, atol=1e-6, rtol=1e-5)


def test_statistics_only_when_needed_and_scores_unchanged(adapter):
    clip = synthetic_clip(4.0)
    (plain,) = adapter.encode([clip])
    (full,) = adapter.encode([clip], needs=frozenset({"head_scores"}))
    assert plain.windows[0].head_scores is None and plain.windows[0].head_max_scores is None
    assert full.windows[0].head_scores.shape[1] == 100
    assert full.windows[0].head_max_scores is None and full.windows[0].self_scores is None
    assert torch.equal(plain.windows[0].scores, full.windows[0].scores)


def window(head_scores: bool) -> EncodedAudio:
    heads = torch.rand(4, 6)
    return EncodedAudio(
        [
            TokenWindow(
                scores=heads.mean(0),
                hidden=torch.randn(6, 3),
                keys=torch.randn(6, 2),
                head_scores=heads if head_scores else None,
            )
        ]
    )


@pytest.mark.parametrize("tier", ["memory", "disk"])
def test_cache_entry_without_head_scores_is_not_used_when_they_are_needed(tmp_path, tier):
    cache = EncoderCache(memory=tier == "memory", disk=tier == "disk", directory=tmp_path)
    cache.put("model", "clip", window(head_scores=False))
    needs = frozenset({"hidden", "keys", "head_scores"})
    assert cache.lookup("model", ["clip"], frozenset({"hidden", "keys"}))[0] is not None
    assert cache.lookup("model", ["clip"], needs) == [None]  # a miss, not a silent reuse
    assert (cache.hits, cache.misses) == (1, 1)
    fresh = window(head_scores=True)
    cache.put("model", "clip", fresh)  # re-encoded with them: replaces the entry
    (hit,) = cache.lookup("model", ["clip"], needs)
    assert torch.equal(hit.windows[0].head_scores, fresh.windows[0].head_scores)
    # and an entry holding them serves a caller that does not need them
    assert cache.lookup("model", ["clip"])[0] is not None


def test_get_or_encode_reencodes_entries_missing_a_needed_field():
    cache = EncoderCache()
    wave = synthetic_clip(0.5)
    calls = []

    def encode(waves, with_heads):
        calls.append(with_heads)
        return [window(head_scores=with_heads) for _ in waves]

    cache.get_or_encode("m", [wave], lambda w: encode(w, False))
    found, cached = cache.get_or_encode(
        "m", [wave], lambda w: encode(w, True), needs=frozenset({"head_scores"})
    )
    assert calls == [False, True] and cached == [False]
    assert found[0].windows[0].head_scores is not None
    _, cached = cache.get_or_encode(
        "m", [wave], lambda w: encode(w, True), frozenset({"head_scores"})
    )
    assert cached == [True] and calls == [False, True]
