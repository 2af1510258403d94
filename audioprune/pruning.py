"""Apply a selector to one clip's encoder output under a budget policy.

The runner calls `prune_clip` between the adapter's `encode` and `generate`, so cached encoder
outputs serve every selector / retention / budget. `budget=per_window` (default) gives every
30 s window K_w = keep_count(N_w, r); `global` and `adaptive` (scope clip) let the selector see
the clip's windows as one sequence and split the kept tokens back per window
(`audioprune.budget`). In-LLM selectors (`stage = "llm"`) keep every token here; the budget
travels in `PrunedAudio.llm_budget` to the adapter's `generate(..., llm_pruner=...)`.
"""

from __future__ import annotations

from dataclasses import fields, replace

import torch

from audioprune.budget import Budget, calibrate_mass
from audioprune.models.base import EncodedAudio, PrunedAudio
from audioprune.selectors.base import Selector, TokenWindow

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
    be 0 for a window under a clip-level budget). `none` keeps every token whatever the budget.
    """
    budget = budget or PER_WINDOW
    windows = encoded.windows
    for window in windows:
        if window.hidden is None:
            raise ValueError(
                "the audio path returned no encoder tokens (TokenWindow.hidden is None)"
            )
    sizes = [w.num_tokens for w in windows]
    if not selector.prunes:
        return PrunedAudio(
            tokens=[w.hidden for w in windows],
            indices=[torch.arange(n) for n in sizes],
            window_sizes=sizes,
        )
    groups = budget.groups([w.scores for w in windows], retention)
    if getattr(selector, "stage", "encoder") == "llm":
        return PrunedAudio(
            tokens=[w.hidden for w in windows],
            indices=[torch.arange(n) for n in sizes],
            window_sizes=sizes,
            llm_budget=[(sum(sizes[w] for w in g.windows), g.keep) for g in groups],
        )
    tokens: list[torch.Tensor] = [None] * len(windows)  # type: ignore[list-item]
    indices: list[torch.Tensor] = [None] * len(windows)  # type: ignore[list-item]
    for group in groups:
        key = f"{sample_id}#{group.windows[0]}" if len(group.windows) == 1 else f"{sample_id}#all"
        merged = concat_windows([windows[w] for w in group.windows], key)
        selection = selector.select_window(merged, group.keep)
        rows = selection.tokens(merged.hidden)
        offset = 0
        for w in group.windows:
            inside = (selection.indices >= offset) & (selection.indices < offset + sizes[w])
            tokens[w] = rows[inside.to(rows.device)]
            indices[w] = selection.indices[inside] - offset
            offset += sizes[w]
    return PrunedAudio(tokens=tokens, indices=indices, window_sizes=sizes)


def calibrate_budget(budget: Budget, encoded: list[EncodedAudio], retention: float) -> Budget:
    """`budget` with its adaptive mass calibrated to `retention` on `encoded` clips (or as is)."""
    if not budget.needs_calibration:
        return budget
    scores = [[w.scores for w in clip.windows] for clip in encoded]
    return replace(budget, mass=calibrate_mass(scores, retention, budget.scope))
