"""Token merging before the LLM: `tome`, `ltbm_style`, `atome` (docs/methods.md).

- `tome`: ToMe's bipartite soft matching (facebookresearch/ToMe @af95e4b1, `tome/merge.py`)
  applied once to the encoder output, repeated until K tokens remain. ToMe merges inside every
  ViT block; here it runs once between the encoder and the LLM on the scoring layer's
  head-mean keys, and every round alternates A/B over the current tokens **in time order**
  (ToMe's own block output order, [unmerged A, B], has no meaning for audio).
- `ltbm_style`: OUR RECONSTRUCTION of LTBM (arXiv 2605.25179, abstract only): the same matching
  inside contiguous windows of `window` tokens; `window` ≥ N is the paper's "global merge" control.
- `atome`: A-ToMe (arXiv 2306.16009; code not public): adjacent-token merging by key cosine.
  Overlap rule: greedy non-overlapping pairs per round (the common ASR re-implementation),
  repeated until exactly K tokens remain.

Merged embeddings are size-weighted means of the encoder tokens (`hidden`, before the projector),
which equals the plain mean of the original tokens a merged token covers; a merged token sits at
its destination's position (ToMe, LTBM-style) or at its first member (A-ToMe). ToMe's
proportional attention (log size as a key bias inside the LLM) is not applied.
"""

from __future__ import annotations

import torch

from audioprune import flops
from audioprune.selectors.base import (
    Selection,
    TokenWindow,
    WindowSelector,
    check_choice,
    check_inputs,
    register_selector,
    require_field,
)
from audioprune.selectors.merging import adjacent_groups, group_means, tome_groups

METRICS = ("keys", "hidden")


def merged_selection(hidden: torch.Tensor, group: torch.Tensor, k: int) -> Selection:
    """Selection from group labels: kept positions ascending, rows = member means of hidden.

    hidden: [N, D]; group: [N] long representative per token, k distinct -> indices [K],
    embeddings [K, D] in hidden's dtype.
    """
    reps, means = group_means(hidden, group, count=k)
    return Selection(reps, means.to(hidden.dtype))


def effective_window(num_tokens: int, window: int, k: int) -> int:
    """The window actually used: `window`, widened to ⌈N/K⌉ when K < ⌈N/window⌉.

    Every window keeps at least one token, so at strong compression (K below the number of
    windows) the windows grow just enough for K tokens to remain; locality is kept.
    """
    return max(window, -(-num_tokens // k))


def window_budgets(num_tokens: int, window: int, k: int) -> list[int]:
    """Tokens each window keeps: k_w = 1 + a share of (K − M) proportional to (n_w − 1).

    M = ⌈N/w⌉ windows of n_w tokens (the last may be shorter), M ≤ K required. Every window
    keeps at least one token, so merges per window are proportional to n_w − 1 (equal for equal
    windows); shares are floored and the remainder goes to the largest fractional parts, ties
    to the earlier window. Returns [M] ints summing to K.
    """
    sizes = [min(window, num_tokens - s) for s in range(0, num_tokens, window)]
    m = len(sizes)
    if k < m:
        raise ValueError(f"K={k} is smaller than the {m} windows of {window} tokens")
    spare, capacity = k - m, num_tokens - m
    if capacity == 0:
        return [1] * m
    # Integer arithmetic: equal fractional parts must tie exactly (floats broke ties at random).
    shares = [divmod(spare * (n - 1), capacity) for n in sizes]
    budgets = [whole for whole, _ in shares]
    left = spare - sum(budgets)
    order = sorted(range(m), key=lambda w: (-shares[w][1], w))
    for w in order[:left]:
        budgets[w] += 1
    return [1 + b for b in budgets]


def atome_flops(rounds: list[int], window: TokenWindow, metric: str) -> int:
    """Σ_rounds 2·(T_t − 1)·d adjacent cosines + flops.merge_flops(N, D_hidden)."""
    d = getattr(window, metric).shape[1]
    merge = flops.merge_flops(window.num_tokens, window.hidden.shape[1]) if rounds else 0
    return sum(2 * (t - 1) * d for t in rounds) + merge


@register_selector("tome")
class ToMe(WindowSelector):
    """ToMe's bipartite soft matching, repeated once before the LLM until K tokens remain.

    metric: "keys" (ToMe's choice: the scoring layer's head-mean keys) or "hidden".
    prop_attn: ToMe's proportional attention (log size added to every attention logit toward a
        merged key inside the LLM). Only false is supported: the LLM runs with sdpa and no float
        mask, so a merged token counts once (ToMe's default for off-the-shelf models is true).
    """

    needs = frozenset({"hidden", "keys"})

    def __init__(self, metric: str = "keys", prop_attn: bool = False):
        self.metric = check_choice("tome", "metric", metric, METRICS)
        if prop_attn is not False:
            raise ValueError(
                "selector 'tome': option 'prop_attn' must be false; proportional attention "
                "(log size as a key bias in every LLM layer) needs a float attention mask in the "
                f"LLM, which audioprune does not build, got {prop_attn!r}"
            )
        self.prop_attn = prop_attn

    def groups(self, window: TokenWindow, k: int) -> torch.Tensor:
        """[N] long: the kept position each token merges into (K distinct values)."""
        check_inputs(window.scores, k)
        return tome_groups(require_field(window, self.metric, self.name), k)

    def select_window(self, window: TokenWindow, k: int) -> Selection:
        """Selection(indices [K] ascending, embeddings [K, D] merged encoder tokens)."""
        hidden = require_field(window, "hidden", self.name)
        return merged_selection(hidden, self.groups(window, k), k)

    def selection_flops(self, window: TokenWindow, k: int) -> int:
        """flops.tome_flops(N, K, d_metric, D_hidden): matching rounds + the final merge."""
        d = getattr(window, self.metric).shape[1]
        return flops.tome_flops(window.num_tokens, k, d, window.hidden.shape[1])


@register_selector("ltbm_style")
class LTBMStyle(WindowSelector):
    """Our reconstruction of LTBM: ToMe matching inside contiguous windows of `window` tokens.

    window: tokens per local window (≥ 2); a value ≥ N gives the global-merge control, which is
    exactly `tome`. Budgets per window: `window_budgets`; when K is below the number of windows
    the window widens to ⌈N/K⌉ (`effective_window`). metric: "keys" or "hidden".
    """

    needs = frozenset({"hidden", "keys"})

    def __init__(self, window: int = 8, metric: str = "keys"):
        if not isinstance(window, int) or isinstance(window, bool) or window < 2:
            raise ValueError(
                f"selector 'ltbm_style': option 'window' must be an int >= 2 (tokens per local "
                f"window), got {window!r}"
            )
        self.window = window
        self.metric = check_choice("ltbm_style", "metric", metric, METRICS)

    def groups(self, window: TokenWindow, k: int) -> torch.Tensor:
        """[N] long: the kept position each token merges into, never across a local window."""
        n = check_inputs(window.scores, k)
        metric = require_field(window, self.metric, self.name)
        size = effective_window(n, self.window, k)
        group = torch.empty(n, dtype=torch.long, device=metric.device)
        for start, keep in zip(range(0, n, size), window_budgets(n, size, k)):
            stop = min(n, start + size)
            group[start:stop] = start + tome_groups(metric[start:stop], keep)
        return group

    def select_window(self, window: TokenWindow, k: int) -> Selection:
        """Selection(indices [K] ascending, embeddings [K, D] merged encoder tokens)."""
        hidden = require_field(window, "hidden", self.name)
        return merged_selection(hidden, self.groups(window, k), k)

    def selection_flops(self, window: TokenWindow, k: int) -> int:
        """Σ over local windows of flops.tome_flops(n_w, k_w, d_metric, D_hidden)."""
        n, d = window.num_tokens, getattr(window, self.metric).shape[1]
        size = effective_window(n, self.window, k)
        budgets = window_budgets(n, size, k)
        return sum(
            flops.tome_flops(min(size, n - start), keep, d, window.hidden.shape[1])
            for start, keep in zip(range(0, n, size), budgets)
        )


@register_selector("atome")
class AToMe(WindowSelector):
    """A-ToMe: merge the most similar adjacent tokens (greedy, non-overlapping per round).

    metric: "keys" (A-ToMe's choice) or "hidden". A merged token sits at its first member.
    """

    needs = frozenset({"hidden", "keys"})
    host_sync = "the greedy non-overlapping pair scan: one pair ranking to the host per round"

    def __init__(self, metric: str = "keys"):
        self.metric = check_choice("atome", "metric", metric, METRICS)

    def groups(self, window: TokenWindow, k: int) -> torch.Tensor:
        """[N] long: the first member of each token's run of merged adjacent tokens."""
        check_inputs(window.scores, k)
        return adjacent_groups(require_field(window, self.metric, self.name), k)

    def select_window(self, window: TokenWindow, k: int) -> Selection:
        """Selection(indices [K] ascending, embeddings [K, D] means of merged runs)."""
        check_inputs(window.scores, k)
        hidden = require_field(window, "hidden", self.name)
        rounds: list[int] = []
        metric = require_field(window, self.metric, self.name)
        selection = merged_selection(hidden, adjacent_groups(metric, k, trace=rounds), k)
        selection.flops = atome_flops(rounds, window, self.metric)
        return selection

    def selection_flops(self, window: TokenWindow, k: int) -> int:
        """atome_flops over the greedy rounds; they depend on the data, so the grouping is
        replayed here; `select_window` reports the same count without replaying."""
        rounds: list[int] = []
        adjacent_groups(getattr(window, self.metric), k, trace=rounds)
        return atome_flops(rounds, window, self.metric)
