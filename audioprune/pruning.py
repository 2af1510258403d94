"""Apply a selector to one clip's encoder output, window by window.

Budgets are per 30 s window (K_w = keep_count(N_w, retention)); the runner calls this between
the adapter's `encode` and `generate`, so cached encoder outputs serve every selector/retention.
Every selector's answer is checked here (`check_selection`), so a user selector that returns
too many, repeated, unsorted or out-of-range indices fails naming itself instead of silently
changing what reaches the LLM.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from audioprune.budget import keep_count
from audioprune.models.base import EncodedAudio, PrunedAudio
from audioprune.selectors.base import Selection, Selector


class SelectionError(ValueError):
    """A selector returned an invalid selection; the message names the selector."""


def selector_label(selector: Selector) -> str:
    """How errors name a selector: its registered name and its class."""
    cls = type(selector)
    return f"selector {selector.name or cls.__name__!r} ({cls.__module__}.{cls.__qualname__})"


def check_selection(
    selection: Selection, selector: Selector, hidden: torch.Tensor, k: int, where: str = ""
) -> None:
    """Raise SelectionError unless `selection` is a valid answer for a window with budget k.

    hidden: [N, D] the window's encoder tokens. Valid: indices a 1-D integer tensor of exactly
    `selector.expected_count(N, k)` entries, strictly ascending (so distinct), in [0, N); and
    embeddings, when given, [len(indices), D] (one row per kept index).
    """
    n, dim = int(hidden.shape[0]), int(hidden.shape[-1])
    at = f" {where}" if where else ""

    def fail(reason: str) -> None:
        raise SelectionError(f"{selector_label(selector)}{at}: {reason}")

    if not isinstance(selection, Selection):
        fail(f"select_window returned a {type(selection).__name__}, expected a Selection")
    idx = selection.indices
    if not isinstance(idx, torch.Tensor) or idx.dim() != 1:
        fail(f"indices must be a 1-D tensor, got {getattr(idx, 'shape', type(idx).__name__)}")
    if idx.dtype.is_floating_point or idx.dtype == torch.bool or idx.is_complex():
        fail(f"indices must be integers, got dtype {idx.dtype}")
    expected = selector.expected_count(n, k)
    if idx.numel() != expected:
        fail(
            f"returned {idx.numel()} indices for a window of N={n} with K={k}; expected {expected}"
        )
    if idx.numel():
        if int(idx.min()) < 0 or int(idx.max()) >= n:
            fail(f"indices must lie in [0, {n}), got min {int(idx.min())}, max {int(idx.max())}")
        if idx.numel() > 1 and not bool(torch.all(idx[1:] > idx[:-1])):
            kind = "repeated" if idx.unique().numel() < idx.numel() else "not ascending"
            fail(f"indices must be distinct and ascending in time, got {kind} indices")
    emb = selection.embeddings
    if emb is not None and tuple(emb.shape) != (idx.numel(), dim):
        fail(
            f"embeddings have shape {tuple(emb.shape)}, expected one row per kept index: "
            f"({idx.numel()}, {dim})"
        )


def prune_clip(
    encoded: EncodedAudio, selector: Selector, retention: float, sample_id: str
) -> PrunedAudio:
    """Select the kept tokens of every window of one clip.

    encoded: the clip's windows (scores [N_w], hidden [N_w, D], keys [N_w, d])
    returns: PrunedAudio with tokens [K_w, D] and ascending indices [K_w] per window.
    A window with no valid token (an AF3 window ≤ 20 ms past a multiple of 30 s, which the stock
    model also gives no token) keeps nothing; the clip as a whole must have at least one token.
    """
    if encoded.num_tokens < 1:
        raise ValueError(f"sample {sample_id!r}: the audio gives no encoder token (too short)")
    tokens, indices, sizes = [], [], []
    for w, window in enumerate(encoded.windows):
        n = window.num_tokens
        if window.hidden is None:
            raise ValueError(
                "the audio path returned no encoder tokens (TokenWindow.hidden is None)"
            )
        if n == 0:
            tokens.append(window.hidden[:0])
            indices.append(torch.zeros(0, dtype=torch.long))
            sizes.append(0)
            continue
        k = keep_count(n, retention) if selector.prunes else n
        keyed = replace(window, sample_key=f"{sample_id}#{w}")
        selection = selector.select_window(keyed, k)
        check_selection(
            selection, selector, window.hidden, k, f"(sample {sample_id!r}, window {w})"
        )
        tokens.append(selection.tokens(window.hidden))
        indices.append(selection.indices.to(torch.long))
        sizes.append(n)
    return PrunedAudio(tokens=tokens, indices=indices, window_sizes=sizes)
