"""The Whisper adapter: what the scorer measures, which frames reach the decoder, padding
keep/drop, the new-token cap, and retention 1.0 == stock Whisper (tiny random model; the
real tiny.en in the slow tests of test_asr_real.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from audioprune.models.whisper import WhisperAdapter
from audioprune.pruning import prune_clip
from audioprune.selectors import build_selector
from tests._whisper import fixture_tiny_whisper_dir  # noqa: F401  (fixtures)


def clips(seconds=(4.0, 9.5)) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [(0.1 * rng.standard_normal(int(s * 16_000))).astype(np.float32) for s in seconds]


@pytest.fixture(scope="module")
def adapters(tiny_whisper_dir):
    keep = WhisperAdapter(str(tiny_whisper_dir), padding="keep")
    drop = WhisperAdapter.from_model(keep.model, keep.processor, padding="drop")
    return keep, drop


class CrossAttentionInputs:
    """Records what the decoder's cross-attention receives from the encoder side."""

    def __init__(self, model):
        self.seen: list[torch.Tensor] = []
        attn = model.model.decoder.layers[0].encoder_attn
        self.handle = attn.k_proj.register_forward_hook(lambda m, a, o: self.seen.append(a[0]))

    def remove(self):
        self.handle.remove()


def test_encode_scores_valid_frames_with_received_attention(adapters):
    keep, _ = adapters
    waves = clips()
    encoded = keep.encode(waves, frozenset({"hidden", "keys"}))
    # eager reference: last encoder layer's attention map, summed over queries, mean over heads
    model = keep.model
    features = keep.feature_extractor(
        waves, sampling_rate=16_000, padding="max_length", return_tensors="pt"
    )
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            ref = model.model.encoder(features["input_features"], output_attentions=True)
    finally:
        model.set_attn_implementation("sdpa")
    received = ref.attentions[-1].sum(dim=2).mean(dim=1)  # [B, 1500]
    for i, (wave, clip) in enumerate(zip(waves, encoded)):
        n = math.ceil(len(wave) / 160 / 2)  # 10 ms mel frames, conv stride 2
        (window,) = clip.windows
        assert window.num_tokens == n
        torch.testing.assert_close(window.scores, received[i, :n], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            window.hidden, ref.last_hidden_state[i, :n], atol=1e-5, rtol=1e-5
        )
        assert window.keys.shape == (n, model.config.d_model // 2)
        assert clip.padding_hidden.shape == (1500 - n, model.config.d_model)
        torch.testing.assert_close(
            clip.padding_hidden, ref.last_hidden_state[i, n:], atol=1e-5, rtol=1e-5
        )


@pytest.mark.parametrize("padding", ["keep", "drop"])
def test_decoder_gets_exactly_the_kept_frames_in_time_order(adapters, padding):
    keep, drop = adapters
    adapter = keep if padding == "keep" else drop
    (clip,) = adapter.encode(clips((6.0,)), frozenset({"hidden", "keys"}))
    window = clip.windows[0]
    for name in ("topk", "bottomk", "random", "uniform", "segmentwise_topk", "visionzip"):
        pruned = prune_clip(clip, build_selector(name), 0.25, "clip-a")
        k = math.floor(0.25 * window.num_tokens)
        assert pruned.indices[0].shape == (k,)
        assert torch.all(pruned.indices[0][1:] > pruned.indices[0][:-1])  # time order
        probe = CrossAttentionInputs(adapter.model)
        try:
            adapter.generate([""], [pruned], max_new_tokens=3)
        finally:
            probe.remove()
        seen = probe.seen[0][0]  # first decoder step: [L, D]
        expected = pruned.tokens[0]
        if padding == "keep":
            expected = torch.cat([expected, clip.padding_hidden])
        assert seen.shape == expected.shape, name
        torch.testing.assert_close(seen, expected, atol=0, rtol=0)
        if name != "visionzip":  # VisionZip's merged tokens are new vectors at target positions
            torch.testing.assert_close(seen[:k], window.hidden[pruned.indices[0]], atol=0, rtol=0)


def test_full_retention_with_padding_kept_is_stock_generate(adapters):
    keep, _ = adapters
    waves = clips()
    encoded = keep.encode(waves, frozenset({"hidden"}))
    none = build_selector("none")
    features = keep.feature_extractor(
        waves, sampling_rate=16_000, padding="max_length", return_tensors="pt"
    )["input_features"]
    for i, clip in enumerate(encoded):
        pruned = prune_clip(clip, none, 1.0, f"c{i}")
        (gen,), _ = keep.generate([""], [pruned], max_new_tokens=20)
        with torch.no_grad():
            stock = keep.model.generate(
                features[i : i + 1], max_new_tokens=gen.extra["new_token_cap"]
            )
        stock_ids = stock[0].tolist()
        stop = keep.model.generation_config.eos_token_id
        stock_ids = stock_ids[: stock_ids.index(stop)] if stop in stock_ids else stock_ids
        assert gen.token_ids == stock_ids
        assert gen.extra["encoder_frames"] == 1500


def test_new_token_cap_follows_clip_duration_and_is_recorded(adapters):
    _, drop = adapters
    waves = clips((4.0, 9.5))
    encoded = drop.encode(waves, frozenset({"hidden"}))
    pruned = [prune_clip(c, build_selector("uniform"), 0.5, f"c{i}") for i, c in enumerate(encoded)]
    gens, _ = drop.generate(
        ["", ""], pruned, max_new_tokens=440, new_tokens_per_second=2.0, new_tokens_extra=1
    )
    for gen, item, seconds in zip(gens, pruned, (4.0, 9.5)):
        cap = math.ceil(2.0 * item.total * 0.02) + 1
        assert abs(item.total * 0.02 - seconds) <= 0.02
        assert gen.extra["new_token_cap"] == cap
        assert len(gen.token_ids) <= cap
        assert gen.extra["cap_hit"] == (len(gen.token_ids) == cap)
        assert gen.extra["encoder_frames"] == item.kept  # drop: kept frames only
    gens, _ = drop.generate([""], pruned[:1], max_new_tokens=3)
    assert gens[0].extra["new_token_cap"] == 3


def test_bad_options_are_named(adapters, tiny_whisper_dir):
    keep, _ = adapters
    with pytest.raises(ValueError, match="model.padding must be one of drop, keep"):
        WhisperAdapter(str(tiny_whisper_dir), padding="sometimes")
    (clip,) = keep.encode(clips((3.0,)))
    pruned = prune_clip(clip, build_selector("none"), 1.0, "x")
    with pytest.raises(ValueError, match="no text prompt"):
        keep.generate(["Transcribe this"], [pruned])
    with pytest.raises(ValueError, match="positions=original"):
        keep.generate([""], [pruned], positions="original")


def test_disk_cache_keeps_the_padding_frames(adapters, tmp_path):
    from audioprune.cache import EncoderCache

    keep, _ = adapters
    (clip,) = keep.encode(clips((3.0,)), frozenset({"hidden", "keys"}))
    cache = EncoderCache(memory=False, disk=True, directory=tmp_path, max_gb=1.0)
    cache.put(keep.fingerprint(), "clip", clip)
    (back,) = cache.lookup(keep.fingerprint(), ["clip"])
    assert torch.equal(back.padding_hidden, clip.padding_hidden)
    assert torch.equal(back.windows[0].hidden, clip.windows[0].hidden)
    assert "padding=keep" in keep.fingerprint()
