"""SA-MAP: merge by intra-group similarity, then DPP (docs/methods.md).

Source: Tencent/AngelSlim, branch SA-MAP @fb920fbf,
`SA-MAP/almeval/models/qwen2_audio/qwen2_audio_pruner.py` (`method == 'SA-MAP'`).
Stage 1 walks the projected tokens in time: token i+1 joins the current group G while
mean_{g∈G} cos(x_g, x_{i+1}) ≥ τ (average linkage), else it starts a new group. A group's
embedding is Σ w_g·x_g / Σ w_g and its relevance the mean of ρ over its members. Stage 2 runs
greedy DPP MAP (as CDPruner) on L = diag(ρ̄)·S'·diag(ρ̄), S' = cos between group embeddings,
for K groups, kept in time order; a group sits at its first member.

Signals, as SA-MAP's own: w = head-max pooled received attention of the last encoder layer and
ρ = the self-attention diagonal of its head-mean pooled map (`TokenWindow.head_max_scores` and
`self_scores`, from the scorer's same chunked pass; w is SA-MAP's mean over queries times N,
which a weighted mean does not see). `samap_shared` is our variant with w = ρ = the shared score
(head-mean received attention); it has its own name, so tables and run folders never mix the two.

Difference from the original: when stage 1 leaves fewer than K groups (the original's assert
fails there) the merge is skipped — every token is its own group — so the DPP still returns
exactly K tokens. Merged rows are projected tokens (LLM input space), as in the original.
"""

from __future__ import annotations

import math

import torch

from audioprune import flops
from audioprune.selectors.base import (
    Selection,
    TokenWindow,
    WindowSelector,
    check_inputs,
    register_selector,
    require_field,
)
from audioprune.selectors.diversity import dpp_kernel
from audioprune.selectors.fastadasp import merge_weights
from audioprune.selectors.merging import cosine_matrix, greedy_dpp_map, group_means, linkage_groups


def samap_flops(n: int, groups: int, k: int, d: int) -> int:
    """gram_flops(N, D) + merge_flops(N, D) + gram_flops(G, D) + greedy_dpp_flops(G, K)."""
    merge = flops.merge_flops(n, d) if groups < n else 0
    return (
        flops.gram_flops(n, d)
        + merge
        + flops.gram_flops(groups, d)
        + flops.greedy_dpp_flops(groups, k)
    )


@register_selector("samap")
class SAMAP(WindowSelector):
    """Similarity-merged groups of projected tokens, pruned to K by greedy DPP MAP.

    threshold: τ, the mean cosine a token needs to join the current group (0.85 in run_eval.sh).
    attention: "original" (SA-MAP's head-max merge weights and head-mean self-attention
        relevance), the only value; the shared-score variant is the selector `samap_shared`.
    """

    needs = frozenset({"projected"})
    ATTENTION = ("original",)

    def __init__(self, threshold: float = 0.85, attention: str = "original"):
        if attention == "shared":
            raise ValueError(
                "selector 'samap': attention=shared is the selector 'samap_shared' (its own name "
                "in tables and run folders); 'samap' uses SA-MAP's own attention signals"
            )
        if attention not in self.ATTENTION:
            raise ValueError(
                f"selector 'samap': option 'attention' must be one of {', '.join(self.ATTENTION)}, "
                f"got {attention!r}"
            )
        self.attention = attention
        self.needs = type(self).needs | {"head_max_scores", "self_scores"}
        self._set_threshold(threshold)

    def _set_threshold(self, threshold: float) -> None:
        try:
            tau = float(threshold)
        except (TypeError, ValueError):
            tau = float("nan")
        if isinstance(threshold, bool) or not math.isfinite(tau):
            raise ValueError(
                f"selector {self.name!r}: option 'threshold' must be a finite number (mean cosine τ to "
                f"join a group), got {threshold!r}"
            )
        self.threshold = tau

    # Stage 1 is a sequential scan whose every step depends on the last: the similarity matrix
    # comes to the host once per window, the scan runs there (its group count sizes stage 2).
    host_sync = "stage 1's sequential linkage scan: one [N, N] transfer per window"

    def host_groups(self, window: TokenWindow, k: int) -> tuple[torch.Tensor, int]:
        """Stage 1 labels [N] long on the CPU (first member per group; all singletons if fewer
        than k groups) and the group count G."""
        n = check_inputs(window.scores, k)
        projected = require_field(window, "projected", self.name)
        group = linkage_groups(cosine_matrix(projected).cpu(), self.threshold)
        count = len(torch.unique(group))
        if count < k:
            return torch.arange(n), n
        return group, count

    def groups(self, window: TokenWindow, k: int) -> torch.Tensor:
        """Stage 1 labels [N] long (first member per group); all singletons if < k groups."""
        return self.host_groups(window, k)[0]

    def select_window(self, window: TokenWindow, k: int) -> Selection:
        """Selection(indices [K] ascending, embeddings [K, D_llm] in the projected space)."""
        group, count = self.host_groups(window, k)
        x = window.projected
        group = group.to(x.device)
        weights, rho = self.attention_terms(window)
        reps, merged = group_means(x, group, weights, count=count)  # [G], [G, D]
        _, relevance = group_means(rho[:, None], group, count=count)  # [G, 1]
        chosen = torch.sort(greedy_dpp_map(dpp_kernel(merged, relevance[:, 0]), k)).values
        cost = samap_flops(len(group), count, k, x.shape[1])
        return Selection(reps[chosen], merged[chosen].to(x.dtype), "projected", cost)

    def attention_terms(self, window: TokenWindow) -> tuple[torch.Tensor, torch.Tensor]:
        """(merge weights w [N], relevance ρ [N]) in fp32, per the `attention` option."""
        if self.attention == "shared":
            return merge_weights(window.scores), window.scores.float()
        terms = []
        for field in ("head_max_scores", "self_scores"):
            value = getattr(window, field)
            if value is None or value.shape != (window.num_tokens,):
                got = None if value is None else tuple(value.shape)
                raise ValueError(
                    f"selector 'samap' with attention=original needs TokenWindow.{field} of "
                    f"shape [N={window.num_tokens}] (ask the audio path for {field!r}), got {got}"
                )
            terms.append(value.float())
        return merge_weights(terms[0]), terms[1]

    def selection_flops(self, window: TokenWindow, k: int) -> int:
        """samap_flops(N, G, K, D_llm); G (groups after stage 1) is data-dependent, so stage 1
        is replayed here; `select_window` reports the same count without replaying."""
        groups = self.host_groups(window, k)[1]
        return samap_flops(window.num_tokens, groups, k, window.projected.shape[1])


@register_selector("samap_shared")
class SAMAPShared(SAMAP):
    """SA-MAP's two stages with w = ρ = the shared score (head-mean received attention) in
    place of its head-max merge weights and self-attention relevance: our variant, named apart."""

    attention = "shared"  # fixed: the name says it, so it is not a parameter

    def __init__(self, threshold: float = 0.85):
        self._set_threshold(threshold)
