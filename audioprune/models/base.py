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

from audioprune.errors import ConfigError
from audioprune.selectors.base import Selector, TokenWindow


def selector_option(selector: Selector) -> str:
    """`selector=<name>` as the user wrote it (the class name for an unregistered class)."""
    return f"selector={selector.name or type(selector).__name__}"


@dataclass
class EncodedAudio:
    """Audio path output for one clip: one window per 30 s of audio (Qwen2-Audio: always one).

    padding_hidden: [P, D] encoder output of the padded frames after the valid ones, which no
    selector sees but a decoder may be given back (Whisper with `padding: keep`); else None.
    """

    windows: list[TokenWindow]
    padding_hidden: torch.Tensor | None = None

    @property
    def num_tokens(self) -> int:
        return sum(w.num_tokens for w in self.windows)


@dataclass
class PrunedAudio:
    """The kept audio of one clip, ready for the LLM.

    tokens:  per window [K_w, D] embeddings: encoder space (the adapter applies the projector)
             or, when `space` is "projected", LLM input space [K_w, D_llm] (merged after the
             projector, as SA-MAP and FastAdaSP do), which the adapter uses as they are
    indices: per window [K_w] long, time positions of the kept tokens inside the window
    window_sizes: per window N_w (valid tokens before pruning)
    llm_budget: for an in-LLM selector (every token kept here), (tokens, keep) per budget group
        along the audio run: one group per window (budget=per_window) or one for the clip
    padding_hidden: [P, D] the clip's padded-frame encoder outputs, passed through unpruned
    """

    tokens: list[torch.Tensor]
    indices: list[torch.Tensor]
    window_sizes: list[int]
    space: str = "encoder"
    select_flops: int = 0  # Σ_w selector.selection_flops (similarity, DPP, merge products)
    llm_budget: list[tuple[int, int]] | None = None
    padding_hidden: torch.Tensor | None = None

    @property
    def kept(self) -> int:
        return sum(int(t.shape[0]) for t in self.tokens)

    @property
    def total(self) -> int:
        return sum(self.window_sizes)


@dataclass
class ChoiceScores:
    """One clip's choice scores: per choice, the summed log-probability of its tokens after
    the prompt and how many tokens it has; `extra` as in Generation (an in-LLM selector's
    kept tokens during scoring)."""

    logliks: list[float]
    tokens: list[int]
    extra: dict = field(default_factory=dict)


@dataclass
class Generation:
    """One generated answer."""

    text: str
    token_ids: list[int]
    prompt_tokens: int  # LLM input length of this row (text + kept audio tokens, no padding)
    # Adapter-specific per-sample values merged into the sample's prediction record by the run
    # loop (e.g. Whisper's `cap_hit`, a per-utterance `wer`); JSON-serialisable.
    extra: dict = field(default_factory=dict)
    # Choice scores computed from this generate call's own prefill (generate(choices=...)).
    choice_scores: ChoiceScores | None = None


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
    # What the family supports (checked at config time by `check_support`): an LLM (in-LLM
    # selectors, the projector and text embeddings), and the `positions` modes it honours.
    has_llm: bool = True
    positions: tuple[str, ...] = ("compact", "original")

    @classmethod
    def check_support(
        cls, selector: Selector, *, budget: str, positions: str, prompt: str | None, model: str
    ) -> None:
        """Refuse (ConfigError) a selector / option this model cannot honour, before loading.

        Audio LMs run every built-in selector except the spectrogram-patch ones (classifier
        family); a model without an LLM (Whisper) runs none that works inside the LLM or on
        its input space (fastv, dart; divprune, cdpruner, samap, fastadasp need the projector).
        Every budget policy applies.
        """
        name = selector_option(selector)
        if getattr(selector, "patch_statistic", ""):
            raise ConfigError(
                f"{name}: ranks spectrogram patches, which only classifier models have "
                f"(model={model} is an audio LM); use topk or segmentwise_topk"
            )
        if not cls.has_llm:
            derived = sorted(selector.needs & {"projected", "instruction"})
            if selector.stage == "llm" or derived:
                where = (
                    "inside the LLM"
                    if selector.stage == "llm"
                    else f"on {', '.join(derived)} tokens"
                )
                raise ConfigError(
                    f"{name}: works {where}, but model={model} ({cls.__name__}) has no LLM; "
                    "use a selector on the encoder output (topk, segmentwise_topk, visionzip, ...)"
                )
        if positions not in cls.positions:
            raise ConfigError(
                f"positions={positions}: model={model} honours positions="
                f"{' or '.join(cls.positions)} only"
            )

    @abstractmethod
    def encode(
        self, waveforms: list[np.ndarray], needs: frozenset[str] = frozenset()
    ) -> list[EncodedAudio]:
        """waveforms: mono float32 arrays at `sampling_rate`. `needs` names the optional
        TokenWindow fields to fill ("keys", "head_scores", "head_max_scores", "self_scores";
        hidden is always filled, it is what the LLM gets). Returns one EncodedAudio per
        waveform. The run loop derives "projected" and "instruction" later, per clip
        (`audioprune.models.needs`)."""

    def project_tokens(self, hidden: torch.Tensor) -> torch.Tensor:
        """Encoder tokens [N, D] -> LLM input space [N, D_llm] (the model's projector)."""
        raise NotImplementedError(
            f"{type(self).__name__} cannot project audio tokens; selectors that need "
            "TokenWindow.projected (divprune, cdpruner, samap, fastadasp) cannot run on it"
        )

    def embed_text(self, text: str) -> torch.Tensor:
        """The LLM input embeddings of a text's tokens: [M, D_llm]."""
        raise NotImplementedError(
            f"{type(self).__name__} cannot embed text; cdpruner relevance=instruction cannot "
            "run on it"
        )

    @abstractmethod
    def generate(
        self,
        prompts: list[str],
        audio: list[PrunedAudio],
        max_new_tokens: int = 32,
        positions: str = "compact",
        llm_pruner=None,
        **generation_kwargs,
    ) -> tuple[list[Generation], BatchTiming]:
        """One batch: prompts[i] is the user text for clip i, audio[i] its kept tokens.

        llm_pruner: a selector with `stage = "llm"` (an `audioprune.selectors.llm.LLMSelector`)
        applied inside the LLM at its layer K, one clip per call; `prune_clip` kept every token
        for it, so audio[0] holds every token and its budget (`PrunedAudio.llm_budget`)."""

    def score_choices(
        self,
        prompts: list[str],
        audio: list[PrunedAudio],
        choices: list[list[str]],
        positions: str = "compact",
        llm_pruner=None,
    ) -> list[ChoiceScores]:
        """Choice scoring (`scoring: choice_loglik`): per clip, log P(choice tokens | prompt with
        the kept audio) for every choice, from the same LLM inputs `generate` would get."""
        raise NotImplementedError(
            f"{type(self).__name__} cannot score choices by log-likelihood; scoring=choice_loglik "
            "needs an audio LLM adapter (qwen2_audio, audio_flamingo_3 and models built like them)"
        )

    def fingerprint(self) -> str:
        """A string identifying weights + audio path settings, used as encoder-cache key."""
        return self.name
