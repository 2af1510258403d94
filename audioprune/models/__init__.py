"""Model adapters by name. Adding a model = one adapter file + one entry here (or
`@ADAPTERS.register("name")` on the class, in a module named in `imports`) + a YAML."""

from __future__ import annotations

from audioprune.models.base import AudioLMAdapter, EncodedAudio, Generation, PrunedAudio
from audioprune.registry import Registry

# name -> adapter class; the built-in ones are imported on first use (transformers is heavy).
ADAPTERS: Registry[type[AudioLMAdapter]] = Registry("model adapter", plural="adapters")
ADAPTERS.register_lazy("qwen2_audio", "audioprune.models.qwen2_audio:Qwen2AudioAdapter")
ADAPTERS.register_lazy(
    "audio_flamingo_3", "audioprune.models.audio_flamingo3:AudioFlamingo3Adapter"
)
ADAPTERS.register_lazy("whisper", "audioprune.models.whisper:WhisperAdapter")
# classifier family (in-encoder pruning, arXiv 2504.01690)
ADAPTERS.register_lazy("ast", "audioprune.models.ast:ASTAdapter")
ADAPTERS.register_lazy("audiomae", "audioprune.models.audiomae:AudioMAEAdapter")


def build_adapter(name: str, **kwargs) -> AudioLMAdapter:
    """Instantiate the adapter registered as `name` (e.g. "qwen2_audio") with the model YAML's args."""
    return ADAPTERS.get(name)(**kwargs)


__all__ = [
    "ADAPTERS",
    "AudioLMAdapter",
    "EncodedAudio",
    "Generation",
    "PrunedAudio",
    "build_adapter",
]
