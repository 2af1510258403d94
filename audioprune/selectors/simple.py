"""Score-only selectors and controls: `none`, `topk`, `bottomk`, `random`, `uniform`.

Each maps a window's scores `[N] float` and a budget K to `[K] long` indices, distinct and
ascending in time. Ties are broken by time: among equal scores the earlier token ranks first,
for both `topk` and `bottomk`, so a selection never depends on the sort kernel.
"""

from __future__ import annotations

import hashlib

import torch

from audioprune.selectors.base import Selector, ascending, check_inputs, on_host, register_selector
from audioprune.selectors.heads import HeadWeighted


def check_scores_finite(scores: torch.Tensor) -> None:
    """Refuse NaN scores: they would sort to an arbitrary end and silently change a selection.

    On an accelerator `prune_clip` checks them instead (`selectors.base.on_host`)."""
    if on_host(scores) and torch.isnan(scores).any():
        raise ValueError("selector scores contain NaN; the scoring hook produced an invalid score")


def rank_descending(scores: torch.Tensor) -> torch.Tensor:
    """Token indices from highest to lowest score, ties in time order.

    scores: [N] float -> [N] long. A stable sort keeps equal scores in index order.
    """
    check_scores_finite(scores)
    return torch.sort(scores, descending=True, stable=True).indices


def rank_ascending(scores: torch.Tensor) -> torch.Tensor:
    """Token indices from lowest to highest score, ties in time order: [N] float -> [N] long."""
    check_scores_finite(scores)
    return torch.sort(scores, descending=False, stable=True).indices


@register_selector("none")
class NoPruning(Selector):
    """Keep every token: the unpruned reference run. The runner passes k = N."""

    prunes = False

    def __call__(self, scores: torch.Tensor, k: int, *, sample_key: str = "") -> torch.Tensor:
        n = check_inputs(scores, k)
        if k != n:
            raise ValueError(
                f"selector 'none' keeps all N={n} tokens and must be called with k=N, got k={k} "
                "(use retention=1.0 with selector=none)"
            )
        return torch.arange(n, dtype=torch.long, device=scores.device)


@register_selector("topk")
class TopK(HeadWeighted, Selector):
    """The K highest-scoring tokens (global Top-K, the paper's main baseline).

    head_weights: "uniform" (the shared score), "entropy" or a profile file (`selectors.heads`).
    """

    def __init__(self, head_weights: str = "uniform"):
        self._init_head_weights(head_weights)

    def __call__(self, scores: torch.Tensor, k: int, *, sample_key: str = "") -> torch.Tensor:
        check_inputs(scores, k)
        return ascending(rank_descending(scores)[:k])


@register_selector("bottomk")
class BottomK(HeadWeighted, Selector):
    """The K lowest-scoring tokens: the sanity check that the score carries information.

    head_weights: as for `topk`.
    """

    def __init__(self, head_weights: str = "uniform"):
        self._init_head_weights(head_weights)

    def __call__(self, scores: torch.Tensor, k: int, *, sample_key: str = "") -> torch.Tensor:
        check_inputs(scores, k)
        return ascending(rank_ascending(scores)[:k])


def sample_seed(seed: int, sample_key: str) -> int:
    """A 63-bit generator seed from sha256(f"{seed}:{sample_key}").

    Hashing the sample key (not drawing from one shared stream) makes a sample's tokens
    independent of batch order, sharding and resume.
    """
    digest = hashlib.sha256(f"{seed}:{sample_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)


@register_selector("random")
class RandomK(Selector):
    """K tokens uniformly at random, seeded per sample (see `sample_seed`)."""

    def __init__(self, seed: int = 0):
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"selector 'random': option 'seed' must be an int, got {seed!r}")
        self.seed = seed

    def __call__(self, scores: torch.Tensor, k: int, *, sample_key: str = "") -> torch.Tensor:
        n = check_inputs(scores, k)
        generator = torch.Generator(device="cpu").manual_seed(sample_seed(self.seed, sample_key))
        picked = torch.randperm(n, generator=generator)[:k]
        return ascending(picked).to(scores.device)


@register_selector("uniform")
class Uniform(Selector):
    """K evenly spaced tokens: index floor((i + 1/2) * N / K) for i = 0..K-1.

    The centre of each of K equal time slices; the spacing N/K >= 1 keeps them distinct.
    Integer arithmetic avoids float rounding at slice borders.
    """

    def __call__(self, scores: torch.Tensor, k: int, *, sample_key: str = "") -> torch.Tensor:
        n = check_inputs(scores, k)
        i = torch.arange(k, dtype=torch.long, device=scores.device)
        return ((2 * i + 1) * n) // (2 * k)
