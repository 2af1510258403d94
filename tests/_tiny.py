"""Shared helpers for the Qwen2-Audio tests: synthetic clips and one tiny model per session.

Imported by tests/test_qwen2_audio.py and tests/test_scorer.py. The tiny model is built once per
pytest session through the adapter's own `build_tiny` option, at the path the tiny_qwen2_audio
config uses under conftest's `session_cache` (so runner tests reuse it), and the loaded adapter is
shared, so the two modules pay for one build and one load.
"""

from __future__ import annotations

import numpy as np

SAMPLING_RATE = 16_000

_CACHE: dict[str, object] = {}


def synthetic_clip(seconds: float, seed: int = 0) -> np.ndarray:
    """[seconds * 16 kHz] float32: a chirp, a pulse train and noise, so frames differ in content."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * SAMPLING_RATE))) / SAMPLING_RATE
    chirp = 0.3 * np.sin(2 * np.pi * (200 + 150 * seed + 80 * t) * t)
    pulses = 0.2 * (np.sin(2 * np.pi * 3 * t) > 0.9)
    return (chirp + pulses + 0.05 * rng.standard_normal(t.shape)).astype(np.float32)


def tiny_qwen2_audio_adapter(cache_dir):
    """The session's tiny Qwen2-Audio adapter, built on first use at cache_dir/models/..."""
    if "adapter" not in _CACHE:
        from audioprune.models.qwen2_audio import Qwen2AudioAdapter

        path = cache_dir / "models" / "tiny-qwen2-audio"
        _CACHE["adapter"] = Qwen2AudioAdapter(str(path), build_tiny="qwen2_audio")
    return _CACHE["adapter"]
