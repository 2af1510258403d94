"""Model adapters by name. Adding a model = one adapter file + one entry here + a YAML."""

from __future__ import annotations

import importlib

from audioprune.models.base import AudioLMAdapter, EncodedAudio, Generation, PrunedAudio

# name -> "module:Class"; imported lazily so `import audioprune` stays light.
ADAPTERS: dict[str, str] = {
    "qwen2_audio": "audioprune.models.qwen2_audio:Qwen2AudioAdapter",
    "audio_flamingo_3": "audioprune.models.audio_flamingo3:AudioFlamingo3Adapter",
    "whisper": "audioprune.models.whisper:WhisperAdapter",
    # classifier family (in-encoder pruning, arXiv 2504.01690)
    "ast": "audioprune.models.ast:ASTAdapter",
    "audiomae": "audioprune.models.audiomae:AudioMAEAdapter",
}


def build_adapter(name: str, **kwargs) -> AudioLMAdapter:
    """Instantiate the adapter registered as `name` (e.g. "qwen2_audio") with the model YAML's args."""
    if name not in ADAPTERS:
        raise ValueError(
            f"unknown model adapter {name!r}; valid adapters: {', '.join(sorted(ADAPTERS))}"
        )
    module, cls = ADAPTERS[name].split(":")
    return getattr(importlib.import_module(module), cls)(**kwargs)


__all__ = [
    "ADAPTERS",
    "AudioLMAdapter",
    "EncodedAudio",
    "Generation",
    "PrunedAudio",
    "build_adapter",
]
