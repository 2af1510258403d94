"""Apply a selector to one clip's encoder output under a budget policy.

The runner calls `prune_clip` between the adapter's `encode` and `generate`, so cached encoder
outputs serve every selector / retention / budget. `budget=per_window` (default) gives every
30 s window K_w = keep_count(N_w, r); `global` and `adaptive` (scope clip) let the selector see
the clip's windows as one sequence and split the kept tokens back per window
(`audioprune.budget`). In-LLM selectors (`stage = "llm"`) keep every token here; the budget
travels in `PrunedAudio.llm_budget` to the adapter's `generate(..., llm_pruner=...)`.
Every selector's answer is checked here (`check_selection`), so a user selector that returns
too many, repeated, unsorted or out-of-range indices fails naming itself instead of silently
changing what reaches the LLM.
"""

from __future__ import annotations

from dataclasses import fields, replace

import torch

from audioprune.budget import Budget, BudgetGroup, calibrate_mass
from audioprune.models.base import EncodedAudio, PrunedAudio
from audioprune.selectors.base import Selection, Selector, TokenWindow


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


PER_WINDOW = Budget()
# TokenWindow tensor fields laid out [..., N] rather than [N, ...] (per-head scores).
TOKEN_AXIS = {"head_scores": -1}


def concat_windows(windows: list[TokenWindow], sample_key: str) -> TokenWindow:
    """Several windows as one sequence: every tensor field concatenated along its token axis."""
    if len(windows) == 1:
        return replace(windows[0], sample_key=sample_key)
    values = {}
    for f in fields(TokenWindow):
        parts = [getattr(w, f.name) for w in windows]
        if all(isinstance(p, torch.Tensor) for p in parts):
            values[f.name] = torch.cat(parts, dim=TOKEN_AXIS.get(f.name, 0))
        elif f.name != "sample_key":
            values[f.name] = parts[0] if all(p is None for p in parts) else None
    return TokenWindow(**values, sample_key=sample_key)


def prune_clip(
    encoded: EncodedAudio,
    selector: Selector,
    retention: float,
    sample_id: str,
    budget: Budget | None = None,
) -> PrunedAudio:
    """Select the kept tokens of every window of one clip.

    encoded: the clip's windows (scores [N_w], hidden [N_w, D], keys [N_w, d])
    returns: PrunedAudio with tokens [K_w, D] and ascending indices [K_w] per window (K_w may
    be 0 for a window under a clip-level budget); tokens are in the LLM input space
    (`space="projected"`) for selectors that merge after the projector. `none` keeps every
    token whatever the budget. A window with no valid token (an AF3 window ≤ 20 ms past a
    multiple of 30 s, which the stock model also gives no token) keeps nothing; the clip as a
    whole must have at least one token.
    """
    budget = budget or PER_WINDOW
    windows = encoded.windows
    for window in windows:
        if window.hidden is None:
            raise ValueError(
                "the audio path returned no encoder tokens (TokenWindow.hidden is None)"
            )
    if encoded.num_tokens < 1:
        raise ValueError(f"sample {sample_id!r}: the audio gives no encoder token (too short)")
    sizes = [w.num_tokens for w in windows]
    if not selector.prunes:
        return PrunedAudio(
            tokens=[w.hidden for w in windows],
            indices=[torch.arange(n) for n in sizes],
            window_sizes=sizes,
            padding_hidden=encoded.padding_hidden,
        )
    live = [w for w, n in enumerate(sizes) if n > 0]  # empty windows get no budget
    groups = [
        BudgetGroup([live[i] for i in g.windows], g.keep)
        for g in budget.groups([windows[w].scores for w in live], retention)
    ]
    if getattr(selector, "stage", "encoder") == "llm":
        return PrunedAudio(
            tokens=[w.hidden for w in windows],
            indices=[torch.arange(n) for n in sizes],
            window_sizes=sizes,
            llm_budget=[(sum(sizes[w] for w in g.windows), g.keep) for g in groups],
            padding_hidden=encoded.padding_hidden,
        )
    tokens = [w.hidden[:0] for w in windows]
    indices = [torch.zeros(0, dtype=torch.long) for _ in windows]
    spaces, cost = set(), 0
    for group in groups:
        key = f"{sample_id}#{group.windows[0]}" if len(group.windows) == 1 else f"{sample_id}#all"
        merged = concat_windows([windows[w] for w in group.windows], key)
        selection = selector.select_window(merged, group.keep)
        projected = getattr(selection, "space", "") == "projected" and merged.projected is not None
        where = f"(sample {sample_id!r}, window {', '.join(map(str, group.windows))})"
        check_selection(
            selection, selector, merged.projected if projected else merged.hidden, group.keep, where
        )
        rows = selection.tokens(merged.hidden)
        spaces.add(selection.space)
        counted = selection.flops
        cost += counted if counted is not None else selector.selection_flops(merged, group.keep)
        offset = 0
        for w in group.windows:
            inside = (selection.indices >= offset) & (selection.indices < offset + sizes[w])
            tokens[w] = rows[inside.to(rows.device)]
            indices[w] = selection.indices[inside].to(torch.long) - offset
            offset += sizes[w]
    if len(spaces) > 1:
        raise ValueError(f"selector {selector.name!r} mixed embedding spaces within one clip")
    space = spaces.pop() if spaces else "encoder"
    if space == "projected":  # windows that kept nothing: zero rows of the LLM input width
        width = next(t.shape[-1] for t in tokens if t.shape[0])
        tokens = [t if t.shape[0] else t.new_zeros(0, width) for t in tokens]
    return PrunedAudio(
        tokens=tokens,
        indices=indices,
        window_sizes=sizes,
        space=space,
        select_flops=cost,
        padding_hidden=encoded.padding_hidden,
    )


def calibrate_budget(budget: Budget, encoded: list[EncodedAudio], retention: float) -> Budget:
    """`budget` with its adaptive mass calibrated to `retention` on `encoded` clips (or as is)."""
    if not budget.needs_calibration:
        return budget
    scores = [[w.scores for w in clip.windows] for clip in encoded]
    return replace(budget, mass=calibrate_mass(scores, retention, budget.scope))
