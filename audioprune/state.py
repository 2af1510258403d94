"""Process-wide state of the run loop: the loaded model adapter, the encoder-output cache and
the classifier family's feature cache.

Hydra's default launcher runs every job of a multirun in one process, so the model is loaded
once and encoder outputs (fbank features) are shared between jobs. `reset_process_state`
forgets all three (tests, benchmarks).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import torch
from omegaconf import DictConfig

from audioprune.cache import BoundedMemory, EncoderCache
from audioprune.config import plain
from audioprune.models import build_adapter
from audioprune.models.base import AudioLMAdapter

ADAPTER_ARGS = (
    "pretrained",
    "dtype",
    "device",
    "attn_implementation",
    "build_tiny",
    "build_args",  # mini_qwen2_audio: another projector file (audioprune.models.tiny)
    "convert_from",
    "padding",
    "pruning",  # classifier family: pruning blocks and score
    "features",  # classifier family: fbank length, statistics, padding
    "pos_crop",  # classifier family (AudioMAE): positional crop for shorter inputs
)

_ADAPTER: tuple[str, AudioLMAdapter] | None = None
_CACHE: tuple[str, EncoderCache] | None = None
_FEATURES: BoundedMemory[tuple[str, str], torch.Tensor] | None = None
FEATURE_CACHE_BYTES = 1 << 30


def process_state():
    """accelerate's process state; on a machine without CUDA, several processes use gloo on CPU."""
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def get_adapter(model_cfg: DictConfig) -> AudioLMAdapter:
    """Load (or reuse) the model adapter named by `model.adapter`."""
    global _ADAPTER
    args = {k: model_cfg[k] for k in ADAPTER_ARGS if k in model_cfg and model_cfg[k] is not None}
    if args.get("device") == "auto":
        args["device"] = str(process_state().device)
    key = json.dumps([model_cfg.adapter, args], sort_keys=True, default=str)
    if _ADAPTER is None or _ADAPTER[0] != key:
        _ADAPTER = None  # free the previous model before loading the next
        _ADAPTER = (key, build_adapter(model_cfg.adapter, **args))
    return _ADAPTER[1]


def loaded_adapter() -> AudioLMAdapter | None:
    """The adapter loaded in this process, if any."""
    return None if _ADAPTER is None else _ADAPTER[1]


def get_cache(cfg: DictConfig) -> EncoderCache:
    """The process's encoder cache for `cfg.encoder_cache` (rebuilt when those options change)."""
    return cache_for(plain(cfg.encoder_cache))


def cache_for(options: Mapping[str, Any]) -> EncoderCache:
    """The process's encoder cache for these `encoder_cache` options (memory, disk, dir,
    max_gb), rebuilt when they change (`RunSpec.encoder_cache`)."""
    global _CACHE
    key = json.dumps(dict(options), sort_keys=True)
    if _CACHE is None or _CACHE[0] != key:
        cache = EncoderCache(
            memory=options["memory"],
            disk=options["disk"],
            directory=options["dir"],
            max_gb=options["max_gb"],
        )
        _CACHE = (key, cache)
    return _CACHE[1]


def feature_cache() -> BoundedMemory[tuple[str, str], torch.Tensor]:
    """The process's classifier-family feature cache: fbank per (feature settings, audio file
    identity), so a sweep over selectors / keep rates reads and transforms each clip once."""
    global _FEATURES
    if _FEATURES is None:
        _FEATURES = BoundedMemory(FEATURE_CACHE_BYTES, lambda t: t.numel() * t.element_size())
    return _FEATURES


def current_cache() -> EncoderCache | None:
    """The encoder cache of this process, if one was built."""
    return None if _CACHE is None else _CACHE[1]


def reset_process_state() -> None:
    """Forget the loaded model and the in-memory encoder cache (tests, benchmarks)."""
    global _ADAPTER, _CACHE, _FEATURES
    _ADAPTER = None
    _CACHE = None
    _FEATURES = None
