"""Segmentwise Top-K, the paper's proposed selector (arXiv 2511.14293, section 2.3).

Global Top-K clusters its picks in time; splitting the window into S contiguous segments and
taking the top ⌊K/S⌋ of each spreads them out. Segments are laid out like
`torch.tensor_split(torch.arange(N), S)`: sizes differ by at most one, the first N mod S are the
longer ones, and a segment is empty when S > N.
"""

from __future__ import annotations

import torch

from audioprune.selectors.base import Selector, ascending, check_inputs, register_selector
from audioprune.selectors.heads import HeadWeighted
from audioprune.selectors.simple import rank_descending


def segment_bounds(num_tokens: int, segments: int) -> list[tuple[int, int]]:
    """[start, stop) of each of the S segments, as torch.tensor_split(torch.arange(N), S) cuts."""
    base, extra = divmod(num_tokens, segments)
    bounds = []
    start = 0
    for s in range(segments):
        stop = start + base + (1 if s < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


@register_selector("segmentwise_topk")
class SegmentwiseTopK(HeadWeighted, Selector):
    """Top ⌊K/S⌋ per segment (capped at the segment's size), then optionally fill to K.

    fill_remainder=True (default): the K − Σ tokens still missing are the highest-scoring tokens
    not yet chosen, so the selector spends exactly K like every other selector.
    fill_remainder=False: the paper's literal S·⌊K/S⌋, which may be fewer than K. When K < S
    that count is 0 and a window would send no token to the LLM, so the selector falls back to
    the K highest-scoring tokens (global Top-K, the S = 1 case) — never an empty selection.
    `expected_count` gives the realised count; the runner records it per window.
    Ties inside a segment and in the fill go to the earlier token.
    head_weights: "uniform" (the shared score), "entropy" or a profile file (`selectors.heads`).
    """

    def __init__(
        self, segments: int = 10, fill_remainder: bool = True, head_weights: str = "uniform"
    ):
        if not isinstance(segments, int) or isinstance(segments, bool) or segments < 1:
            raise ValueError(
                f"selector 'segmentwise_topk': option 'segments' must be an int >= 1, got {segments!r}"
            )
        if not isinstance(fill_remainder, bool):
            raise ValueError(
                "selector 'segmentwise_topk': option 'fill_remainder' must be true or false, "
                f"got {fill_remainder!r}"
            )
        self.segments = segments
        self.fill_remainder = fill_remainder
        self._init_head_weights(head_weights)

    def expected_count(self, num_tokens: int, k: int) -> int:
        """K with fill; without, S·⌊K/S⌋ (⌊K/S⌋ ≤ ⌊N/S⌋ ≤ every segment's size), or K when that is 0."""
        if self.fill_remainder:
            return k
        return self.segments * (k // self.segments) or k

    def __call__(self, scores: torch.Tensor, k: int, *, sample_key: str = "") -> torch.Tensor:
        """scores: [N] float -> [expected_count(N, K)] long ascending (K unless fill_remainder=False)."""
        n = check_inputs(scores, k)
        return self.select_in_segments(scores, k, segment_bounds(n, self.segments))

    def select_in_segments(
        self, scores: torch.Tensor, k: int, bounds: list[tuple[int, int]]
    ) -> torch.Tensor:
        """The rule on given segments: bounds = S contiguous [start, stop) spans covering 0..N
        in order (`segment_bounds` by default; the classifier family passes spans of whole time
        columns). scores: [N] float -> long ascending, K with fill_remainder."""
        n = check_inputs(scores, k)
        if len(bounds) != self.segments or [a for a, _ in bounds[1:]] != [
            b for _, b in bounds[:-1]
        ]:
            raise ValueError(
                f"segmentwise_topk: expected {self.segments} contiguous segments, got {bounds}"
            )
        if bounds[0][0] != 0 or bounds[-1][1] != n:
            raise ValueError(f"segmentwise_topk: segments {bounds} do not cover the {n} tokens")
        per_segment = k // self.segments
        if per_segment == 0:  # K < S: global Top-K, with or without fill (never empty)
            return ascending(rank_descending(scores)[:k])
        # Counts are known on the host (segments are disjoint), so nothing is read back from the
        # device: the fill takes the first `missing` unchosen tokens in rank order (a stable sort
        # of the chosen flags along the ranking puts them first) and nonzero_static has its size.
        chosen = torch.zeros(n, dtype=torch.bool, device=scores.device)
        taken = 0
        for start, stop in bounds:
            # Equal-count segments hold ⌊N/S⌋ ≥ ⌊K/S⌋ tokens; time-column segments may hold
            # fewer (or none): the cap applies and the fill makes up the rest.
            take = min(per_segment, stop - start)
            if take > 0:
                chosen[start + rank_descending(scores[start:stop])[:take]] = True
                taken += take
        missing = k - taken
        if self.fill_remainder and missing > 0:
            order = rank_descending(scores)
            unchosen_first = torch.sort(chosen[order].to(torch.uint8), stable=True).indices
            chosen[order[unchosen_first[:missing]]] = True
            taken += missing
        return torch.nonzero_static(chosen, size=taken).flatten()
