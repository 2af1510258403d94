"""The model adapter interface: the one seam between audioprune and a transformers model.

An adapter does two things:
  1. `encode`: run the audio path (feature extractor, audio encoder with the scoring hook) and
     return, per clip, one `TokenWindow` per 30 s window (scores, encoder tokens, keys).
  2. `generate`: take the kept encoder tokens per clip, project them, place them at exactly
     that many audio placeholders in the prompt, and run the stock `generate` on the shortened
     sequence. The LLM prefill therefore really processes fewer tokens.
Selection happens in between, in the runner, so encoder outputs can be cached and reused
across selectors and retentions.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np
import torch

from audioprune.selectors.base import TokenWindow


@dataclass
class EncodedAudio:
    """Audio path output for one clip: one window per 30 s of audio (Qwen2-Audio: always one)."""

    windows: list[TokenWindow]

    @property
    def num_tokens(self) -> int:
        return sum(w.num_tokens for w in self.windows)


@dataclass
class PrunedAudio:
    """The kept audio of one clip, ready for the LLM.

    tokens:  per window [K_w, D] encoder-space embeddings (the adapter applies the projector)
    indices: per window [K_w] long, time positions of the kept tokens inside the window
    window_sizes: per window N_w (valid tokens before pruning)
    """

    tokens: list[torch.Tensor]
    indices: list[torch.Tensor]
    window_sizes: list[int]

    @property
    def kept(self) -> int:
        return sum(int(t.shape[0]) for t in self.tokens)

    @property
    def total(self) -> int:
        return sum(self.window_sizes)


@dataclass
class Generation:
    """One generated answer."""

    text: str
    token_ids: list[int]
    prompt_tokens: int  # LLM input length of this row (text + kept audio tokens, no padding)
    # Adapter-specific per-sample values merged into the sample's prediction record by the run
    # loop (e.g. Whisper's `cap_hit`, a per-utterance `wer`); JSON-serialisable.
    extra: dict = field(default_factory=dict)


@dataclass
class BatchTiming:
    """Wall-clock split of one batch's generate call, in milliseconds."""

    prefill_ms: float = 0.0  # the LLM forward that consumes the whole prompt
    decode_ms_per_token: float = 0.0
    new_tokens: int = 0
    extra: dict = field(default_factory=dict)


class AudioLMAdapter(ABC):
    """Base class for model adapters; see the module docstring."""

    name: str = ""
    sampling_rate: int = 16_000
    # The shortest waveform (samples at `sampling_rate`) that gives at least one audio token;
    # the runner refuses shorter files at load, naming them (a per-sample error).
    min_samples: int = 1

    @abstractmethod
    def encode(
        self, waveforms: list[np.ndarray], needs: frozenset[str] = frozenset()
    ) -> list[EncodedAudio]:
        """waveforms: mono float32 arrays at `sampling_rate`. `needs` ⊆ {"hidden", "keys"}
        names the optional TokenWindow fields to fill (hidden is always filled, it is what the
        LLM gets). Returns one EncodedAudio per waveform."""

    @abstractmethod
    def generate(
        self,
        prompts: list[str],
        audio: list[PrunedAudio],
        max_new_tokens: int = 32,
        positions: str = "compact",
        **generation_kwargs,
    ) -> tuple[list[Generation], BatchTiming]:
        """One batch: prompts[i] is the user text for clip i, audio[i] its kept tokens."""

    def fingerprint(self) -> str:
        """A string identifying weights + audio path settings, used as encoder-cache key."""
        return self.name
