"""In-LLM selectors (pure math): FastV and DART pick audio tokens at an LLM layer K.

They run inside the LLM (`stage = "llm"`): layers 0…K−1 see the whole prompt, the seam in
`audioprune.models.llm_pruning` hands the selector what layer K−1 produced (`LLMLayerState`:
post-RoPE queries / keys of layer K−1, the normed output of layer K−1) and the audio groups with
their budgets, and the selector returns the kept audio positions; layers ≥ K run on the
shorter sequence with the kept tokens' original positions. Specs: docs/methods.md
(FastV, pkunlp-icler/FastV @d1659729; DART, xqy1111111/DART @5a19452f).

Positions here are prompt positions (0 … S−1 of the one row the LLM sees); an `AudioGroup` is a
contiguous run of audio positions sharing one budget (one 30 s window under `budget=per_window`,
the whole audio run under `budget=global`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from audioprune.selectors.base import Selector, TokenWindow, ascending, register_selector
from audioprune.selectors.simple import rank_descending

QUERY_CHUNK = 256


@dataclass(frozen=True)
class AudioGroup:
    """Audio prompt positions [start, start + size) that keep exactly `keep` tokens."""

    start: int
    size: int
    keep: int

    def positions(self) -> torch.Tensor:
        return torch.arange(self.start, self.start + self.size)


@dataclass
class LLMLayerState:
    """What layer K−1 of the LLM produced for one prompt row (batch size 1).

    queries: [H, Sq, d] post-RoPE queries of layer K−1 (not scaled), Sq = 1 (the last prompt
             row) or S (every row), or None when the selector does not need them
    keys:    [H_kv, S, d] post-RoPE keys of layer K−1 (unique KV heads, no repeat for GQA)
    hidden:  [S, D] output of layer K−1 through the LLM's final norm (or None if not needed)
    scaling: the attention's 1/sqrt(d)
    text_after: [T'] long, prompt positions after the audio run (DART's text pivots)
    """

    keys: torch.Tensor
    scaling: float
    queries: torch.Tensor | None = None
    hidden: torch.Tensor | None = None
    text_after: torch.Tensor | None = None


def last_row_attention(queries: torch.Tensor, keys: torch.Tensor, scaling: float) -> torch.Tensor:
    """FastV's code score: attention of the last prompt row, averaged over heads.

    queries: [H, 1, d] (the last row), keys: [H_kv, S, d] -> [S] float32. The last row sees
    every key, so no causal mask is needed; softmax in fp32 like the eager kernel.
    """
    heads, _, dim = queries.shape
    kv_heads = keys.shape[0]
    q = queries.float().view(kv_heads, heads // kv_heads, dim)  # GQA: heads grouped by KV head
    logits = torch.einsum("kgd,ksd->kgs", q, keys.float()) * scaling
    return logits.softmax(-1).mean(dim=(0, 1))


def causal_received_attention(
    queries: torch.Tensor, keys: torch.Tensor, scaling: float, chunk: int = QUERY_CHUNK
) -> torch.Tensor:
    """FastV's paper score: attention each key receives from every query (causal), head mean.

    queries: [H, S, d], keys: [H_kv, S, d] -> [S] float32 (summed over queries; the paper's
    1/S factor does not change a ranking). Query chunks keep the peak at H·chunk·S floats.
    """
    heads, seq, dim = queries.shape
    kv_heads = keys.shape[0]
    q = queries.float().view(kv_heads, heads // kv_heads, seq, dim)
    k = keys.float()
    received = torch.zeros(seq, dtype=torch.float32, device=queries.device)
    cols = torch.arange(seq, device=queries.device)
    for start in range(0, seq, chunk):
        rows = cols[start : start + chunk]
        logits = torch.einsum("kgqd,ksd->kgqs", q[:, :, start : start + chunk], k) * scaling
        logits = logits.masked_fill(cols[None, :] > rows[:, None], float("-inf"))
        received += logits.softmax(-1).sum(dim=(0, 1, 2))
    return received / heads


def topk_per_group(scores: torch.Tensor, groups: list[AudioGroup]) -> torch.Tensor:
    """The `keep` highest-scoring positions of every group (ties in time order), ascending.

    scores: [S] float over prompt positions -> [Σ keep] long prompt positions.
    """
    kept = [g.start + rank_descending(scores[g.start : g.start + g.size])[: g.keep] for g in groups]
    return ascending(torch.cat(kept)) if kept else torch.zeros(0, dtype=torch.long)


def dart_quotas(budget: int, image_pivots: int, pivots: int) -> list[int]:
    """Exact-K quota rule: q = ⌊(K − p_i)/(p_i + p_t)⌋ per pivot, the remainder one each to the
    first pivots in position order, so p_i + Σ quotas = K (methods.md §2, pitfalls)."""
    rest = budget - image_pivots
    if pivots == 0:
        return []
    base, extra = divmod(rest, pivots)
    return [base + (1 if i < extra else 0) for i in range(pivots)]


def dart_select(
    key_norms: torch.Tensor,
    hidden: torch.Tensor,
    group: AudioGroup,
    text_after: torch.Tensor,
    image_pivots: int,
    text_pivots: int,
) -> torch.Tensor:
    """DART for one group: pivots by key L1 norm, then per pivot the least similar candidates.

    key_norms: [S] ‖k_j‖₁ of layer K−1's post-RoPE keys (unique KV heads); hidden: [S, D] normed
    output of layer K−1; text_after: [T'] prompt positions after the audio run.
    Returns [group.keep] long prompt positions, ascending. Image pivots are kept; text pivots
    only steer. Pivots are visited in ascending position order; each takes its quota of the
    remaining candidates with the lowest cosine similarity to it (ties: earliest position).
    """
    positions = group.positions().to(key_norms.device)
    text_after = text_after.to(key_norms.device)
    txt = text_after[rank_descending(key_norms[text_after])[: min(text_pivots, len(text_after))]]
    # No text after the audio and no audio pivot asked for: one audio pivot steers instead.
    p_img = min(image_pivots if image_pivots or len(txt) else 1, group.keep)
    img = positions[rank_descending(key_norms[positions])[:p_img]]
    pivots = torch.sort(torch.cat([img, txt])).values
    quotas = dart_quotas(group.keep, p_img, len(pivots))
    # Cosine of every candidate to every pivot in one product: [N, P].
    unit = torch.nn.functional.normalize(hidden[positions].float(), dim=-1)
    to_pivots = unit @ torch.nn.functional.normalize(hidden[pivots].float(), dim=-1).T
    available = torch.ones(group.size, dtype=torch.bool, device=unit.device)
    available[img - group.start] = False
    kept = [img]
    for column, quota in enumerate(quotas):
        if quota == 0:
            continue
        similarity = to_pivots[:, column].masked_fill(~available, float("inf"))
        order = torch.sort(similarity, stable=True).indices[:quota]
        available[order] = False
        kept.append(positions[order])
    return ascending(torch.cat(kept))


class LLMSelector(Selector):
    """Base class of selectors applied inside the LLM (`stage = "llm"`).

    The pre-LLM `prune_clip` keeps every token for them and records the budget; the adapter's
    `generate(..., llm_pruner=selector)` runs them at LLM layer `layer` (K ≥ 1): layers < K see
    the whole prompt, layers ≥ K only the kept positions. `llm_needs` ⊆ {"queries_last",
    "queries_all", "keys", "hidden"} says what the seam must capture at layer K−1.
    """

    stage: ClassVar[str] = "llm"
    llm_needs: ClassVar[frozenset[str]] = frozenset({"keys"})
    layer: int = 2

    def select_llm(self, state: LLMLayerState, groups: list[AudioGroup]) -> torch.Tensor:
        """-> [Σ keep] long kept audio prompt positions, ascending."""
        raise NotImplementedError

    def select_window(self, window: TokenWindow, k: int):
        raise TypeError(
            f"selector {self.name!r} runs inside the LLM (stage='llm'); it has no pre-LLM "
            "select_window: pass it to adapter.generate(..., llm_pruner=selector)"
        )


def _check_layer(name: str, layer: int) -> int:
    if not isinstance(layer, int) or isinstance(layer, bool) or layer < 1:
        raise ValueError(f"selector {name!r}: layer must be an int >= 1 (K), got {layer!r}")
    return layer


@register_selector("fastv")
class FastV(LLMSelector):
    """FastV: rank audio tokens by layer K−1 attention, drop the rest before layer K.

    layer: K (paper default 2); query: "last" (released code: the last prompt row, head mean)
    or "all" (the paper's text: attention received from every query, causal). The budget
    comes from retention (R = 1 − r), per group.
    """

    def __init__(self, layer: int = 2, query: str = "last"):
        if query not in ("last", "all"):
            raise ValueError(f"selector 'fastv': query must be 'last' or 'all', got {query!r}")
        self.layer = _check_layer("fastv", layer)
        self.query = query

    @property
    def llm_needs(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset({"keys", "queries_last" if self.query == "last" else "queries_all"})

    def scores(self, state: LLMLayerState) -> torch.Tensor:
        """[S] float32 score of every prompt position."""
        if self.query == "last":
            return last_row_attention(state.queries[:, -1:], state.keys, state.scaling)
        return causal_received_attention(state.queries, state.keys, state.scaling)

    def select_llm(self, state: LLMLayerState, groups: list[AudioGroup]) -> torch.Tensor:
        return topk_per_group(self.scores(state), groups)


@register_selector("dart")
class DART(LLMSelector):
    """DART: keep `image_pivots` audio pivots (largest key L1 norm) and, for every pivot (audio
    and `text_pivots` text tokens after the audio), the candidates least similar to it, with
    the exact-K quota rule. layer: K (paper default 2). Audio pivots are clamped to the budget:
    a window with K < image_pivots keeps its K largest-key-norm audio tokens and nothing else."""

    llm_needs = frozenset({"keys", "hidden"})

    def __init__(self, layer: int = 2, image_pivots: int = 4, text_pivots: int = 4):
        self.layer = _check_layer("dart", layer)
        for label, value in (("image_pivots", image_pivots), ("text_pivots", text_pivots)):
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"selector 'dart': {label} must be an int >= 0, got {value!r}")
        if image_pivots + text_pivots == 0:
            raise ValueError("selector 'dart': image_pivots + text_pivots must be >= 1")
        self.image_pivots = image_pivots
        self.text_pivots = text_pivots

    def select_llm(self, state: LLMLayerState, groups: list[AudioGroup]) -> torch.Tensor:
        # GQA repeats each KV head g times: the L1 norm over unique heads ranks the same.
        norms = state.keys.float().abs().sum(dim=(0, 2))
        text_after = (
            state.text_after if state.text_after is not None else torch.zeros(0, dtype=torch.long)
        )
        kept = [
            dart_select(norms, state.hidden, g, text_after, self.image_pivots, self.text_pivots)
            for g in groups
        ]
        return ascending(torch.cat(kept)) if kept else torch.zeros(0, dtype=torch.long)
