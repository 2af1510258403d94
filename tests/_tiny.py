"""Shared helpers for the model-adapter tests: synthetic clips, pruning as the runner does it,
hooks that record a module's calls, and one tiny Qwen2-Audio adapter per session.

Imported by tests/test_qwen2_audio.py, tests/test_audio_flamingo3.py and tests/test_scorer.py.
The tiny Qwen2-Audio is built once per pytest session through the adapter's own `build_tiny`
option, at the path the tiny_qwen2_audio config uses under conftest's `session_cache` (so runner
tests reuse it), and the loaded adapter is shared, so the modules pay for one build and one load.
"""

from __future__ import annotations

import numpy as np
import torch

from audioprune.budget import keep_count
from audioprune.models.base import PrunedAudio

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


def topk_indices(scores: torch.Tensor, k: int) -> torch.Tensor:
    """The project's `topk` selector when registered, else plain torch.topk in time order."""
    try:
        from audioprune.selectors import build_selector

        return build_selector("topk")(scores, k)
    except (ImportError, ValueError):
        return torch.topk(scores, k).indices.sort().values


def prune(encoded, retention: float) -> list[PrunedAudio]:
    """Top-k per window with budgets K_w = keep_count(N_w, r), as the runner applies them;
    retention 1.0 keeps every token."""
    pruned = []
    for item in encoded:
        tokens, indices, sizes = [], [], []
        for window in item.windows:
            n = window.num_tokens
            idx = (
                torch.arange(n)
                if retention == 1.0
                else topk_indices(window.scores, keep_count(n, retention))
            )
            tokens.append(window.hidden[idx])
            indices.append(idx)
            sizes.append(n)
        pruned.append(PrunedAudio(tokens, indices, sizes))
    return pruned


def cut_at_eos(ids: list[int], adapter) -> list[int]:
    """ids up to (without) the adapter's first stop token, as its Generation.token_ids are."""
    stop = adapter._stop_ids()
    return ids[: next((j for j, t in enumerate(ids) if t in stop), len(ids))]


class FirstCall:
    """Keeps the outputs (or kwargs) of a module's calls while attached; values[0] is the first."""

    def __init__(self, module, kwargs: bool = False):
        self.values = []
        if kwargs:
            self.handle = module.register_forward_pre_hook(
                lambda m, a, kw: self.values.append(kw), with_kwargs=True
            )
        else:
            self.handle = module.register_forward_hook(lambda m, a, out: self.values.append(out))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()
