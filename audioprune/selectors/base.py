"""The selector interface and its registry.

A selector answers one question per 30 s audio window: which K of the N tokens reach the LLM.
Simple selectors only look at the shared scores and return indices (`__call__`); selectors that
also build new embeddings (VisionZip's merged contextual tokens) override `select_window`,
which receives everything the audio path produced for the window (`TokenWindow`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch


@dataclass
class TokenWindow:
    """What the audio path produced for one 30 s window of one clip.

    scores: [N] float    attention received per LLM token (the shared score)
    hidden: [N, D] float encoder output tokens, before the projector (None if not needed)
    keys:   [N, d] float scoring-layer keys, head-averaged, pooled to token resolution (or None)
    sample_key: stable string identifying sample and window (seeds the `random` selector)
    """

    scores: torch.Tensor
    hidden: torch.Tensor | None = None
    keys: torch.Tensor | None = None
    sample_key: str = ""

    @property
    def num_tokens(self) -> int:
        return int(self.scores.shape[0])


@dataclass
class Selection:
    """A selector's answer for one window.

    indices:    [K'] long, ascending, distinct (K' = K except `segmentwise_topk` without fill)
    embeddings: [K', D] float or None; None means "gather hidden[indices]". Selectors that
                merge tokens put the merged vectors here, row i sitting at position indices[i].
    """

    indices: torch.Tensor
    embeddings: torch.Tensor | None = None

    def tokens(self, hidden: torch.Tensor) -> torch.Tensor:
        """The kept token embeddings: [K', D]."""
        if self.embeddings is not None:
            return self.embeddings
        return hidden[self.indices.to(hidden.device)]


class Selector:
    """Base class. Subclasses implement `__call__(scores, k)` or override `select_window`.

    `needs` lists the TokenWindow fields beyond `scores` the selector reads ("hidden", "keys"),
    so the audio path only keeps what is needed.
    """

    name: ClassVar[str] = ""
    needs: ClassVar[frozenset[str]] = frozenset()
    prunes: ClassVar[bool] = True  # False only for `none`

    def __call__(self, scores: torch.Tensor, k: int, *, sample_key: str = "") -> torch.Tensor:
        """scores: [N] float, k: int in [1, N] -> [k] long, distinct, ascending."""
        raise NotImplementedError

    def select_window(self, window: TokenWindow, k: int) -> Selection:
        return Selection(self(window.scores, k, sample_key=window.sample_key))

    def expected_count(self, num_tokens: int, k: int) -> int:
        """How many indices a window of N tokens with budget K gets: K unless a selector
        documents otherwise (`segmentwise_topk` without fill). The shared path checks it."""
        return k

    def params(self) -> dict:
        """The selector's parameters, for run records."""
        return {key: value for key, value in vars(self).items() if not key.startswith("_")}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


def check_inputs(scores: torch.Tensor, k: int) -> int:
    """Validate a selector call; returns N."""
    if scores.dim() != 1:
        raise ValueError(
            f"scores must be a 1-D tensor of N token scores, got shape {tuple(scores.shape)}"
        )
    n = int(scores.shape[0])
    if not isinstance(k, int) or isinstance(k, bool):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, N={n}], got k={k}")
    return n


def ascending(indices: torch.Tensor) -> torch.Tensor:
    """Sort kept indices into time order (pitfall P10) as a LongTensor."""
    return torch.sort(indices.to(torch.long)).values


SELECTORS: dict[str, type[Selector]] = {}


def register_selector(name: str) -> Callable[[type[Selector]], type[Selector]]:
    """Class decorator: make a selector available to `build_selector(name)` and configs."""

    def wrap(cls: type[Selector]) -> type[Selector]:
        if name in SELECTORS and SELECTORS[name] is not cls:
            raise ValueError(f"selector name {name!r} is already registered by {SELECTORS[name]}")
        cls.name = name
        SELECTORS[name] = cls
        return cls

    return wrap


def build_selector(name: str, **params) -> Selector:
    """Instantiate a registered selector by name, e.g. build_selector("segmentwise_topk", segments=10)."""
    if name not in SELECTORS:
        valid = ", ".join(sorted(SELECTORS))
        raise ValueError(f"unknown selector {name!r}; valid selectors: {valid}")
    cls = SELECTORS[name]
    accepted = [
        p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "args", "kwargs")
    ]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(
            f"selector {name!r} got unknown parameter(s) {', '.join(unknown)}; "
            f"it accepts: {', '.join(accepted) or 'no parameters'}"
        )
    return cls(**params)
