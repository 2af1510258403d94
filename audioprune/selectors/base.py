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

from audioprune.registry import Registry

# Where merged embeddings live: before the projector, or after it (LLM input space).
EMBEDDING_SPACES = ("encoder", "projected")
# What a selector may ask the audio path for, beyond `scores` (see TokenWindow).
KNOWN_NEEDS = frozenset(
    {"hidden", "keys", "projected", "instruction", "head_scores", "head_max_scores", "self_scores"}
)


@dataclass
class TokenWindow:
    """What the audio path produced for one 30 s window of one clip.

    scores: [N] float    attention received per LLM token (the shared score)
    hidden: [N, D] float encoder output tokens, before the projector (None if not needed)
    keys:   [N, d] float scoring-layer keys, head-averaged, pooled to token resolution (or None)
    sample_key: stable string identifying sample and window (seeds the `random` selector)
    projected:   [N, D_llm] float the tokens after the projector (LLM input space); filled only
                 when the selector `needs` "projected" (DivPrune, CDPruner, SA-MAP, FastAdaSP)
    instruction: [M, D_llm] float the LLM input embeddings of the prompt's M text tokens; filled
                 only when the selector `needs` "instruction" (CDPruner's instruction relevance)
    Filled only when a selector's `needs` names them (the scorer's same chunked pass):
    head_scores:     [H, N] float per-head received attention, pooled like `scores`
                     (its mean over heads is `scores`)
    head_max_scores: [N] float received attention under an element-wise max over heads
                     (SA-MAP's merge weight w_u, up to its constant 1/N)
    self_scores:     [N] float head-mean attention inside each token's own 2x2 pooling block,
                     P[u, u] = ½ Σ_{a,b} A[2u+a, 2u+b] (SA-MAP's prune relevance)
    """

    scores: torch.Tensor
    hidden: torch.Tensor | None = None
    keys: torch.Tensor | None = None
    sample_key: str = ""
    projected: torch.Tensor | None = None
    instruction: torch.Tensor | None = None
    head_scores: torch.Tensor | None = None
    head_max_scores: torch.Tensor | None = None
    self_scores: torch.Tensor | None = None

    @property
    def num_tokens(self) -> int:
        return int(self.scores.shape[0])


@dataclass
class Selection:
    """A selector's answer for one window.

    indices:    [K'] long, ascending, distinct (K' = K except `segmentwise_topk` without fill)
    embeddings: [K', D] float or None; None means "gather hidden[indices]". Selectors that
                merge tokens put the merged vectors here, row i sitting at position indices[i].
    space:      which space `embeddings` live in: "encoder" (before the projector; the adapter
                projects them) or "projected" (LLM input space, as SA-MAP and FastAdaSP merge;
                they reach the LLM unchanged).
    flops:      the selection's analytic cost when the selector counted it while selecting
                (data-dependent counts); None means "ask `Selector.selection_flops`".
    """

    indices: torch.Tensor
    embeddings: torch.Tensor | None = None
    space: str = "encoder"
    flops: int | None = None

    def __post_init__(self):
        if self.space not in EMBEDDING_SPACES:
            raise ValueError(
                f"Selection.space must be one of {', '.join(EMBEDDING_SPACES)}, got {self.space!r}"
            )
        if self.space == "projected" and self.embeddings is None:
            raise ValueError('Selection.space="projected" needs the projected embeddings')

    def tokens(self, hidden: torch.Tensor) -> torch.Tensor:
        """The kept token embeddings: [K', D]."""
        if self.embeddings is not None:
            return self.embeddings
        return hidden[self.indices.to(hidden.device)]


class Selector:
    """Base class. Subclasses implement `__call__(scores, k)` or override `select_window`.

    `needs` lists the TokenWindow fields beyond `scores` the selector reads (a subset of
    KNOWN_NEEDS: "hidden", "keys", "projected", "instruction", "head_scores", "head_max_scores",
    "self_scores"), so the audio path only computes and keeps what is needed.
    """

    name: ClassVar[str] = ""
    needs: ClassVar[frozenset[str]] = frozenset()
    prunes: ClassVar[bool] = True  # False only for `none`
    # "encoder": applied between encoder and LLM (prune_clip); "llm": inside the LLM at layer K
    # (audioprune.selectors.llm): prune_clip keeps every token for it and records the budget,
    # which the adapter's generate(..., llm_pruner=selector) spends at that layer.
    stage: ClassVar[str] = "encoder"
    # Selection runs on the tokens' device without reading values on the host. A selector whose
    # algorithm must (a sequential scan over data-dependent choices) says why here; the device
    # discipline test holds every other selector to zero host reads (docs/gpu.md).
    host_sync: ClassVar[str] = ""

    def __call__(self, scores: torch.Tensor, k: int, *, sample_key: str = "") -> torch.Tensor:
        """scores: [N] float, k: int in [1, N] -> [k] long, distinct, ascending."""
        raise NotImplementedError

    def window_scores(self, window: TokenWindow) -> torch.Tensor:
        """The [N] score this selector ranks a window by (head-weighted ones: `selectors.heads`)."""
        return window.scores

    def select_window(self, window: TokenWindow, k: int) -> Selection:
        return Selection(self(self.window_scores(window), k, sample_key=window.sample_key))

    def expected_count(self, num_tokens: int, k: int) -> int:
        """How many indices a window of N tokens with budget K gets: K unless a selector
        documents otherwise (`segmentwise_topk` without fill). The shared path checks it."""
        return k

    def selection_flops(self, window: TokenWindow, k: int) -> int:
        """Analytic FLOPs of choosing K tokens in this window (`audioprune.flops` conventions).

        0 for score-only selectors (sorting is not counted); merging and diversity methods
        count their similarity products, DPP updates and merges.
        """
        return 0

    def params(self) -> dict:
        """The selector's parameters, for run records (`needs` follows from them)."""
        return {
            key: value
            for key, value in vars(self).items()
            if not key.startswith("_") and key != "needs"
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


class WindowSelector(Selector):
    """A selector that reads more of the window than its scores (merging, diversity methods):
    only `select_window(TokenWindow, k)` applies."""

    def __call__(self, scores: torch.Tensor, k: int, *, sample_key: str = "") -> torch.Tensor:
        check_inputs(scores, k)
        raise TypeError(
            f"selector {self.name!r} reads TokenWindow fields {sorted(self.needs)}; "
            "call select_window(TokenWindow(...), k)"
        )


def check_choice(selector: str, option: str, value, choices: tuple[str, ...]) -> str:
    """`value` if it is one of `choices`, else an error naming the selector and the option."""
    if value not in choices:
        raise ValueError(
            f"selector {selector!r}: option {option!r} must be one of {', '.join(choices)}, "
            f"got {value!r}"
        )
    return value


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


def on_host(t: torch.Tensor) -> bool:
    """Whether reading `t`'s values costs nothing: a CPU tensor.

    Value checks (NaN scores, a merged group whose weights sum to 0) run only there: on an
    accelerator each would wait for the device, so there `prune_clip` checks a clip's inputs and
    merged rows once, together with the one transfer of its kept indices.
    """
    return t.device.type == "cpu"


def ascending(indices: torch.Tensor) -> torch.Tensor:
    """Sort kept indices into time order (pitfall P10) as a LongTensor."""
    return torch.sort(indices.to(torch.long)).values


def require_field(window: TokenWindow, field: str, selector: str) -> torch.Tensor:
    """window.<field> as a [N, *] tensor, or a clear error naming the selector and the field."""
    value = getattr(window, field)
    n = window.num_tokens
    if value is None:
        raise ValueError(
            f"selector {selector!r} needs TokenWindow.{field} ([N={n}, *] per token), got None; "
            f"the audio path fills it when the selector lists {field!r} in `needs`"
        )
    if value.dim() != 2 or value.shape[0] != n:
        raise ValueError(
            f"selector {selector!r}: TokenWindow.{field} must have shape [N={n}, *], "
            f"got {tuple(value.shape)}"
        )
    return value


SELECTORS: Registry[type[Selector]] = Registry("selector")


def register_selector(name: str) -> Callable[[type[Selector]], type[Selector]]:
    """Class decorator: make a selector available to `build_selector(name)` and configs."""

    def wrap(cls: type[Selector]) -> type[Selector]:
        needs = getattr(cls, "needs", frozenset())
        if isinstance(needs, frozenset) and not needs <= KNOWN_NEEDS:
            raise ValueError(
                f"selector {name!r} needs unknown TokenWindow fields "
                f"{sorted(needs - KNOWN_NEEDS)}; known: {sorted(KNOWN_NEEDS)}"
            )
        SELECTORS.register(name)(cls)
        cls.name = name
        return cls

    return wrap


def build_selector(name: str, **params) -> Selector:
    """Instantiate a registered selector by name, e.g. build_selector("segmentwise_topk", segments=10)."""
    cls = SELECTORS.get(name)
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
