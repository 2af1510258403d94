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

Selection runs on the tokens' device (the runner moves a clip's windows to the model's device
first). The per-window loop reads nothing back: a clip's kept indices come to the host in one
transfer after it, with a flag for NaN inputs or merged rows (checked there off the CPU, since a
selector's own value checks run on CPU tensors only); `PrunedAudio.indices` are CPU tensors.
"""

from __future__ import annotations

from dataclasses import fields, replace

import torch

from audioprune.budget import Budget, BudgetGroup, calibrate_mass
from audioprune.models.base import EncodedAudio, PrunedAudio
from audioprune.selectors.base import Selection, Selector, TokenWindow


class SelectionError(ValueError):
    """A selector returned an invalid selection; the message names the selector."""


def describe_selector(selector: Selector) -> str:
    """How errors name a selector: its registered name and its class."""
    cls = type(selector)
    return f"selector {selector.name or cls.__name__!r} ({cls.__module__}.{cls.__qualname__})"


def check_selection(
    selection: Selection,
    selector: Selector,
    hidden: torch.Tensor,
    k: int,
    where: str = "",
    host_indices: torch.Tensor | None = None,
) -> None:
    """Raise SelectionError unless `selection` is a valid answer for a window with budget k.

    hidden: [N, D] the window's encoder tokens. Valid: indices a 1-D integer tensor of exactly
    `selector.expected_count(N, k)` entries, strictly ascending (so distinct), in [0, N); and
    embeddings, when given, [len(indices), D] (one row per kept index).
    host_indices: the indices already copied to the CPU (`prune_clip` copies a clip's at once);
    the value checks read them instead of the selection's, so they wait for no device.
    """
    check_selection_shape(selection, selector, hidden, k, where)
    idx = selection.indices if host_indices is None else host_indices
    n = int(hidden.shape[0])
    at = f" {where}" if where else ""
    if idx.numel():
        if int(idx.min()) < 0 or int(idx.max()) >= n:
            raise SelectionError(
                f"{describe_selector(selector)}{at}: indices must lie in [0, {n}), got min "
                f"{int(idx.min())}, max {int(idx.max())}"
            )
        if idx.numel() > 1 and not bool(torch.all(idx[1:] > idx[:-1])):
            kind = "repeated" if idx.unique().numel() < idx.numel() else "not ascending"
            raise SelectionError(
                f"{describe_selector(selector)}{at}: indices must be distinct and ascending in time, "
                f"got {kind} indices"
            )


def check_selection_shape(
    selection: Selection, selector: Selector, hidden: torch.Tensor, k: int, where: str = ""
) -> None:
    """The checks of `check_selection` that read no tensor value (type, dtype, count, shape)."""
    n, dim = int(hidden.shape[0]), int(hidden.shape[-1])
    at = f" {where}" if where else ""

    def fail(reason: str) -> None:
        raise SelectionError(f"{describe_selector(selector)}{at}: {reason}")

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
    chosen = []  # (group, merged window, selection, the tokens its indices address, where)
    for group in groups:
        key = f"{sample_id}#{group.windows[0]}" if len(group.windows) == 1 else f"{sample_id}#all"
        merged = concat_windows([windows[w] for w in group.windows], key)
        selection = selector.select_window(merged, group.keep)
        projected = getattr(selection, "space", "") == "projected" and merged.projected is not None
        where = f"(sample {sample_id!r}, window {', '.join(map(str, group.windows))})"
        space_rows = merged.projected if projected else merged.hidden
        check_selection_shape(selection, selector, space_rows, group.keep, where)
        chosen.append((group, merged, selection, space_rows, where))
        spaces.add(selection.space)
        counted = selection.flops
        cost += counted if counted is not None else selector.selection_flops(merged, group.keep)
    host = _indices_to_host(chosen, selector, sample_id)
    for (group, merged, selection, space_rows, where), idx in zip(chosen, host):
        check_selection(selection, selector, space_rows, group.keep, where, host_indices=idx)
        rows = selection.tokens(merged.hidden)
        offset = 0
        for w in group.windows:
            # idx ascends, so window w's kept tokens are one run of it (host arithmetic)
            lo, hi = torch.searchsorted(idx, torch.tensor([offset, offset + sizes[w]])).tolist()
            tokens[w] = rows[lo:hi]
            indices[w] = idx[lo:hi] - offset
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


def _indices_to_host(chosen: list, selector: Selector, sample_id: str) -> list[torch.Tensor]:
    """Every selection's indices on the CPU (long), in one transfer for the whole clip.

    The transfer also carries a flag for NaN in the scores, the selector's `needs` fields or its
    merged rows (a selector's own NaN checks run on CPU tensors only), so a clip is refused the
    same way on every device.
    """
    if not chosen:
        return []
    device = chosen[0][1].scores.device
    parts = [c[2].indices.to(device, torch.long) for c in chosen]
    flags = []
    for _, merged, selection, _, _ in chosen:
        read = [merged.scores] + [
            getattr(merged, f)
            for f in sorted(selector.needs)
            if isinstance(getattr(merged, f, None), torch.Tensor)
        ]
        if selection.embeddings is not None:
            read.append(selection.embeddings)
        flags += [torch.isnan(t).any().view(1).to(device) for t in read if t.is_floating_point()]
    parts.append(torch.cat(flags).any().view(1).to(device, torch.long))
    flat = torch.cat(parts).cpu()
    if bool(flat[-1]):
        raise ValueError(
            f"{describe_selector(selector)} (sample {sample_id!r}): NaN in the scores or token "
            "features it read, or in its merged rows (a merged group whose weights sum to 0)"
        )
    sizes = [p.numel() for p in parts[: len(chosen)]]
    return list(flat[: sum(sizes)].split(sizes))


def to_device(encoded: EncodedAudio, device: torch.device | str) -> EncodedAudio:
    """`encoded` with every tensor field of its windows on `device` (no copy where it is).

    The encoder cache keeps CPU copies; the run loop moves a clip to the model's device before
    selection, so selectors and merges run where the LLM will read their output.
    """
    device = torch.device(device)

    def move(value):
        return value.to(device) if isinstance(value, torch.Tensor) else value

    windows = [
        replace(w, **{f.name: move(getattr(w, f.name)) for f in fields(TokenWindow)})
        for w in encoded.windows
    ]
    return replace(encoded, windows=windows, padding_hidden=move(encoded.padding_hidden))


def calibrate_budget(budget: Budget, encoded: list[EncodedAudio], retention: float) -> Budget:
    """`budget` with its adaptive mass calibrated to `retention` on `encoded` clips (or as is)."""
    if not budget.needs_calibration:
        return budget
    scores = [[w.scores for w in clip.windows] for clip in encoded]
    return replace(budget, mass=calibrate_mass(scores, retention, budget.scope))
