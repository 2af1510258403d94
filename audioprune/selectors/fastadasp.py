"""FastAdaSP's merge, ported before the LLM: `fastadasp` (docs/methods.md).

FastAdaSP (yichen14/FastAdaSP @582565a6, `QWenBlock`) merges inside LLM layer ℓ. The pre-LLM
port follows SA-MAP's `fastadasp-attention` (Tencent/AngelSlim, branch SA-MAP @fb920fbf):
- similarity of adjacent projected tokens, cos(x_i, x_{i+1}) in fp32;
- the m = N − K most similar edges (ties to the earlier edge), grouped into chains: a run of j
  selected edges merges j + 1 tokens, so exactly K tokens remain;
- merge "weighted" (the paper's): Σ w_i·x_i / Σ w_i with w = attention received, per the
  `attention` option: "shared" (default; the shared score, head-mean received attention — ours)
  or "head_max" (head-max pooled received attention of the last encoder layer, the weights of
  SA-MAP's `fastadasp-attention` port; `TokenWindow.head_max_scores`). FastAdaSP itself weights
  by the attention received in LLM layer ℓ (summed over queries and heads), which a pre-LLM port
  cannot see. "mean": plain mean (no weights, so `attention` must stay "shared");
- the merged token sits at its first member and lives in the LLM input space (the merged rows
  are projected tokens, which reach the LLM as they are).
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
from audioprune.selectors.merging import chain_groups, group_means, stable_descending, unit_rows

MERGES = ("weighted", "mean")
ATTENTION = ("shared", "head_max")


def merge_weights(scores: torch.Tensor) -> torch.Tensor:
    """Attention weights for a weighted merge: the scores [N] in fp32 (≥ 0 in practice)."""
    return scores.float()


def adjacent_edges(features: torch.Tensor, merges: int) -> torch.Tensor:
    """The `merges` most similar adjacent edges: features [N, D] -> edge ids [m] long ascending."""
    unit = unit_rows(features)
    sims = (unit[:-1] * unit[1:]).sum(-1)  # [N-1]: edge e joins tokens e and e+1
    return torch.sort(stable_descending(sims)[:merges]).values


@register_selector("fastadasp")
class FastAdaSP(WindowSelector):
    """Chains of the N − K most similar adjacent projected tokens, attention-weighted merge.

    merge: "weighted" | "mean". attention: the merge weights, "shared" (the shared score) or
    "head_max" (head-max pooled received attention, as SA-MAP's port).
    """

    needs = frozenset({"projected"})

    def __init__(self, merge: str = "weighted", attention: str = "shared"):
        self.merge = check_choice("fastadasp", "merge", merge, MERGES)
        self.attention = check_choice("fastadasp", "attention", attention, ATTENTION)
        if self.merge == "mean" and self.attention != "shared":
            raise ValueError(
                f"selector 'fastadasp': attention={attention!r} sets merge weights, which "
                "merge=mean does not use; use merge=weighted"
            )
        if self.attention == "head_max":
            self.needs = type(self).needs | {"head_max_scores"}

    def weights(self, window: TokenWindow) -> torch.Tensor:
        """Merge weights [N] fp32 per the `attention` option."""
        if self.attention == "shared":
            return merge_weights(window.scores)
        value = window.head_max_scores
        if value is None or value.shape != (window.num_tokens,):
            got = None if value is None else tuple(value.shape)
            raise ValueError(
                "selector 'fastadasp' with attention=head_max needs TokenWindow.head_max_scores "
                f"of shape [N={window.num_tokens}] (ask the audio path for 'head_max_scores'), "
                f"got {got}"
            )
        return merge_weights(value)

    def groups(self, window: TokenWindow, k: int) -> torch.Tensor:
        """[N] long: the first member of each token's chain (K distinct values)."""
        n = check_inputs(window.scores, k)
        projected = require_field(window, "projected", self.name)
        return chain_groups(adjacent_edges(projected, n - k), n)

    def select_window(self, window: TokenWindow, k: int) -> Selection:
        """Selection(indices [K] ascending, embeddings [K, D_llm] in the projected space)."""
        group = self.groups(window, k)
        projected = window.projected
        weights = self.weights(window) if self.merge == "weighted" else None
        reps, merged = group_means(projected, group, weights, count=k)
        return Selection(reps, merged.to(projected.dtype), space="projected")

    def selection_flops(self, window: TokenWindow, k: int) -> int:
        """2·(N − 1)·D_llm adjacent cosines + flops.merge_flops(N, D_llm)."""
        n, d = window.num_tokens, window.projected.shape[1]
        return 2 * (n - 1) * d + (flops.merge_flops(n, d) if k < n else 0)
