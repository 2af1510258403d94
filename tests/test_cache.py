"""Encoder cache: memory and disk tiers, corruption handling, size budget."""

from __future__ import annotations

import logging

import numpy as np
import torch

from audioprune.cache import EncoderCache
from audioprune.models.base import EncodedAudio
from audioprune.selectors.base import TokenWindow


class CountingEncoder:
    def __init__(self):
        self.clips = 0

    def __call__(self, waves):
        self.clips += len(waves)
        out = []
        for w in waves:
            n = max(1, len(w) // 100)
            base = torch.as_tensor(w[: n * 100], dtype=torch.float32).view(n, 100)
            out.append(
                EncodedAudio(
                    windows=[TokenWindow(scores=base.mean(1), hidden=base[:, :8], keys=base[:, :4])]
                )
            )
        return out


def waves(seed=0, count=3):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(1000 + 100 * i).astype(np.float32) for i in range(count)]


def test_memory_tier_encodes_each_clip_once():
    cache, enc = EncoderCache(memory=True), CountingEncoder()
    first, cached = cache.get_or_encode("m", waves(), enc)
    assert cached == [False, False, False]
    second, cached = cache.get_or_encode("m", waves(), enc)
    assert cached == [True, True, True] and enc.clips == 3
    for a, b in zip(first, second):
        assert torch.equal(a.windows[0].hidden, b.windows[0].hidden)
    cache.get_or_encode("other-model", waves(), enc)  # a different fingerprint never hits
    assert enc.clips == 6


def test_disk_tier_is_shared_between_instances(tmp_path):
    enc = CountingEncoder()
    EncoderCache(memory=False, disk=True, directory=tmp_path).get_or_encode("m", waves(), enc)
    out, cached = EncoderCache(memory=False, disk=True, directory=tmp_path).get_or_encode(
        "m", waves(), enc
    )
    assert enc.clips == 3 and all(cached)
    assert torch.equal(out[1].windows[0].keys, CountingEncoder()(waves())[1].windows[0].keys)


def test_corrupt_disk_file_is_recomputed_with_warning(tmp_path, caplog):
    enc = CountingEncoder()
    EncoderCache(memory=False, disk=True, directory=tmp_path).get_or_encode("m", waves(), enc)
    victim = sorted(tmp_path.rglob("*.safetensors"))[0]
    victim.write_bytes(victim.read_bytes()[:20])
    with caplog.at_level(logging.WARNING):
        out, cached = EncoderCache(memory=False, disk=True, directory=tmp_path).get_or_encode(
            "m", waves(), enc
        )
    assert cached.count(False) == 1 and enc.clips == 4
    assert victim.name in caplog.text
    assert victim.exists()  # rewritten with a good copy


def test_disk_budget_evicts_oldest(tmp_path):
    cache = EncoderCache(memory=False, disk=True, directory=tmp_path, max_gb=1e-9 * 10_000)
    cache.get_or_encode("m", waves(count=6), CountingEncoder())
    total = sum(p.stat().st_size for p in tmp_path.rglob("*.safetensors"))
    assert 0 < total <= 10_000


def test_bounded_memory_evicts_least_recently_used_and_keeps_the_newest():
    """The one in-memory cache (EncoderCache's memory tier, the classifier's fbank features)."""
    from audioprune.cache import BoundedMemory

    memory = BoundedMemory(max_bytes=10, size=len)
    memory.put("a", "xxxx")
    memory.put("b", "xxxx")
    assert memory.get("a") == "xxxx"  # now the most recently used
    memory.put("c", "xxxx")  # 12 bytes > 10: the least recently used ("b") leaves
    assert "b" not in memory and "a" in memory and "c" in memory and memory.used == 8
    memory.put("big", "x" * 50)  # over budget alone: the newest stays
    assert len(memory) == 1 and memory.get("big") is not None
    memory.put("big", "xy")  # replacing an entry counts its new size
    assert memory.used == 2
