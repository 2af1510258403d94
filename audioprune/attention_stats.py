"""Pure math of the attention analysis (`python -m audioprune.analyze ...`).

Three questions the Segmentwise paper's argument rests on, asked of score vectors and
selections only (no model code here):
  - how concentrated is the received attention? (share of the mass held by the top p % of the
    tokens, Gini coefficient, entropy, the concentration curve);
  - does one head look like the head average? (the same statistics per head, and Kendall's τ-b
    between each head's scores and the head-averaged scores);
  - how does a selection cover the clip in time? (fraction of the S segments holding a kept
    token, the longest stretch without one, the share of kept tokens in the fullest segment).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from scipy.stats import kendalltau

from audioprune.selectors.segmentwise import segment_bounds

TOP_FRACTIONS = (0.01, 0.05, 0.10, 0.25, 0.50)
CURVE_POINTS = 101


def _values(scores: torch.Tensor | np.ndarray | Sequence[float]) -> np.ndarray:
    """A 1-D float64 array of non-negative scores; raises on anything else."""
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().cpu().double().numpy()
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"scores must be a non-empty 1-D vector, got shape {values.shape}")
    if not np.all(np.isfinite(values)) or (values < 0).any():
        raise ValueError("scores must be finite and non-negative (attention received)")
    return values


def top_count(num_tokens: int, fraction: float) -> int:
    """How many tokens the top `fraction` of N is: ceil(fraction · N), at least one."""
    return max(1, math.ceil(fraction * num_tokens - 1e-9))


def top_share(scores, fraction: float) -> float:
    """Share of the total score held by the top ceil(fraction · N) tokens (1.0 = all of it)."""
    values = np.sort(_values(scores))[::-1]
    total = values.sum()
    if total == 0:
        return float("nan")
    return float(values[: top_count(values.size, fraction)].sum() / total)


def gini(scores) -> float:
    """Gini coefficient of the scores: 0 = uniform, (N-1)/N = all mass on one token.

    G = Σ_i (2i - N - 1) x_(i) / (N Σ x) with x sorted ascending, i = 1..N.
    """
    values = np.sort(_values(scores))
    n, total = values.size, values.sum()
    if total == 0:
        return float("nan")
    ranks = np.arange(1, n + 1)
    return float(((2 * ranks - n - 1) * values).sum() / (n * total))


def entropy(scores) -> tuple[float, float]:
    """Shannon entropy (nats) of the scores normalised to a distribution, and the same divided
    by log N (1 = uniform, 0 = one token; 1 by convention when N = 1)."""
    values = _values(scores)
    total = values.sum()
    if total == 0:
        return float("nan"), float("nan")
    p = values[values > 0] / total
    h = float(-(p * np.log(p)).sum())
    return h, (h / math.log(values.size) if values.size > 1 else 1.0)


def concentration_curve(scores, points: int = CURVE_POINTS) -> np.ndarray:
    """[points] share of the mass held by the top x of the tokens, x on linspace(0, 1, points)
    (the Lorenz curve seen from the top; the diagonal is a uniform score)."""
    values = np.sort(_values(scores))[::-1]
    cumulative = np.concatenate([[0.0], np.cumsum(values) / values.sum()])
    positions = np.arange(values.size + 1) / values.size
    return np.interp(np.linspace(0.0, 1.0, points), positions, cumulative)


def concentration(scores, fractions: Sequence[float] = TOP_FRACTIONS) -> dict[str, float]:
    """Every concentration statistic of one score vector, flat: top_1%, ..., gini, entropy,
    normalized_entropy."""
    h, h_norm = entropy(scores)
    stats = {f"top_{fraction:.0%}": top_share(scores, fraction) for fraction in fractions}
    return stats | {"gini": gini(scores), "entropy": h, "normalized_entropy": h_norm}


def mean_std(rows: Iterable[dict[str, float]]) -> dict[str, dict[str, float]]:
    """{stat: {"mean", "std", "n"}} over rows (population std, NaNs skipped)."""
    rows = list(rows)
    out = {}
    for key in dict.fromkeys(k for row in rows for k in row):
        values = np.array([row[key] for row in rows if key in row], dtype=float)
        values = values[np.isfinite(values)]
        out[key] = {
            "mean": float(values.mean()) if values.size else float("nan"),
            "std": float(values.std()) if values.size else float("nan"),
            "n": int(values.size),
        }
    return out


def head_agreement(head_scores: torch.Tensor | np.ndarray) -> list[dict[str, float]]:
    """Per head of one window: its concentration statistics and Kendall's τ-b between its
    scores and the head-averaged scores (1 = the head ranks tokens exactly like the average).

    head_scores: [H, N] attention received per head (same pooling as the shared score).
    """
    if isinstance(head_scores, torch.Tensor):
        head_scores = head_scores.detach().cpu().double().numpy()
    heads = np.asarray(head_scores, dtype=np.float64)
    if heads.ndim != 2:
        raise ValueError(f"head_scores must be [H, N], got shape {heads.shape}")
    average = heads.mean(axis=0)
    rows = []
    for head in heads:
        tau = kendalltau(head, average, variant="b").statistic if heads.shape[1] > 1 else 1.0
        rows.append(concentration(head) | {"kendall_tau_b": float(tau)})
    return rows


def coverage(
    indices: torch.Tensor | Sequence[int],
    num_tokens: int,
    segments: int = 10,
    seconds_per_token: float = 0.04,
) -> dict[str, float]:
    """How a selection covers one window in time.

    indices: kept token positions in [0, N). Segments are laid out like segmentwise_topk's
    (`segment_bounds`); empty segments (S > N) are not counted.
    Returns covered_fraction (segments with ≥ 1 kept token / non-empty segments),
    longest_gap_s (the longest run of pruned tokens, the clip's start and end included, times
    seconds_per_token) and max_segment_share (kept tokens in the fullest segment / kept).
    """
    kept = sorted({int(i) for i in (indices.tolist() if isinstance(indices, torch.Tensor) else indices)})  # fmt: skip
    if kept and (kept[0] < 0 or kept[-1] >= num_tokens):
        raise ValueError(f"kept indices must lie in [0, {num_tokens}), got {kept[0]}..{kept[-1]}")
    bounds = [(a, b) for a, b in segment_bounds(num_tokens, segments) if b > a]
    counts = [sum(a <= i < b for i in kept) for a, b in bounds]
    previous, longest = -1, 0
    for i in [*kept, num_tokens]:
        longest = max(longest, i - previous - 1)
        previous = i
    return {
        "covered_fraction": sum(c > 0 for c in counts) / len(bounds),
        "longest_gap_s": longest * seconds_per_token,
        "max_segment_share": max(counts) / len(kept) if kept else float("nan"),
    }
