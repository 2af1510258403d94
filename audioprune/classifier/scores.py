"""Pure math of in-encoder token pruning for audio classifiers (arXiv 2504.01690): budgets,
importance scores, patch statistics, patch-grid geometry, the keep-rate schedule, Kendall τ.

Nothing here touches a model: the seam in `classifier/pruning.py` feeds hooked q/k and the
current token bookkeeping into these functions. Shapes are in the docstrings; B = batch,
n = tokens entering a block (extra tokens included), E = extra tokens (CLS, DIST),
H = heads, d = head size, P = patches of the full grid.
"""

from __future__ import annotations

import math

import torch

from audioprune.budget import check_retention

# How the patches of a spectrogram are ordered in the token sequence.
FREQ_MAJOR = "freq_major"  # AST: the conv runs on (F, T), index = f · T' + t
TIME_MAJOR = "time_major"  # AudioMAE: the conv runs on (T, F), index = t · F' + f
LAYOUTS = (FREQ_MAJOR, TIME_MAJOR)


def stage_keep_count(patches: int, retention: float) -> int:
    """Patches a pruning stage keeps: ceil(r · patches present), at least 1 (extra tokens aside).

    The paper's EViT rule (notes §1): 512 patches at r = 0.7 → 359 → 252 → 177.
    """
    r = check_retention(retention)
    if patches < 1:
        raise ValueError(f"a pruning stage needs at least one patch, got {patches}")
    # The epsilon keeps exact products (0.5 · 256) from rounding up past themselves.
    return max(1, min(patches, math.ceil(r * patches - 1e-9)))


def stage_counts(patches: int, retention: float, stages: int) -> list[int]:
    """Patch counts after each of `stages` pruning stages, e.g. (512, 0.7, 3) -> [359, 252, 177]."""
    counts, n = [], patches
    for _ in range(stages):
        n = stage_keep_count(n, retention)
        counts.append(n)
    return counts


def time_index(patch_ids: torch.Tensor, grid: tuple[int, int], layout: str) -> torch.Tensor:
    """Time column of each patch: patch_ids [...] long, grid = (F', T') -> [...] long.

    AST (freq-major): t = id mod T'. AudioMAE (time-major): t = id div F'.
    """
    freq, time = grid
    if layout == FREQ_MAJOR:
        return patch_ids % time
    if layout == TIME_MAJOR:
        return patch_ids // freq
    raise ValueError(f"unknown patch layout {layout!r}; valid: {', '.join(LAYOUTS)}")


def time_major_key(patch_ids: torch.Tensor, grid: tuple[int, int], layout: str) -> torch.Tensor:
    """A sort key that orders patches by time, then frequency: [...] long (t · F' + f)."""
    freq, time = grid
    if layout == FREQ_MAJOR:
        return (patch_ids % time) * freq + patch_ids // time
    if layout == TIME_MAJOR:
        return patch_ids
    raise ValueError(f"unknown patch layout {layout!r}; valid: {', '.join(LAYOUTS)}")


def cls_attention(
    q: torch.Tensor, k: torch.Tensor, scaling: float, rows: int = 1, extra: int = 2
) -> torch.Tensor:
    """EViT's score: attention from the first `rows` query rows (CLS, +DIST) to each patch.

    q, k: [B, n, H, d] (projected, per head). softmax(q_r · Kᵀ · scaling) over all n keys in
    fp32, averaged over heads and the `rows` query rows, patch columns only -> [B, n − extra].
    Costs rows · n · H · d multiply-adds.
    """
    logits = torch.einsum("brhd,bnhd->bhrn", q[:, :rows].float(), k.float()) * scaling
    probs = logits.softmax(dim=-1)  # [B, H, rows, n]
    return probs.mean(dim=(1, 2))[:, extra:]


def received_attention(
    q: torch.Tensor, k: torch.Tensor, scaling: float, extra: int = 1
) -> torch.Tensor:
    """AudioMAE's score: attention each patch receives from the patch queries.

    q, k: [B, n, H, d]. softmax over all n keys (the CLS key takes part in the normalisation),
    patch columns kept, averaged over heads and patch queries -> [B, n − extra].
    Costs (n − extra) · n · H · d multiply-adds.
    """
    logits = torch.einsum("bqhd,bnhd->bhqn", q[:, extra:].float(), k.float()) * scaling
    probs = logits.softmax(dim=-1)  # [B, H, n − extra, n]
    return probs[..., extra:].mean(dim=(1, 2))


def patch_statistics(features: torch.Tensor, patch: int, layout: str) -> dict[str, torch.Tensor]:
    """Per-patch mean ("intensity") and standard deviation ("variation") of the input fbank.

    features: [B, T, F] normalised log-mel (the model input), non-overlapping patch × patch
    tiles. Returns {"intensity": [B, P], "variation": [B, P]} in the model's patch order.
    """
    b, t, f = features.shape
    tt, ff = t // patch, f // patch
    tiles = features[:, : tt * patch, : ff * patch].float()
    tiles = tiles.reshape(b, tt, patch, ff, patch).permute(0, 1, 3, 2, 4)  # [B, T', F', p, p]
    if layout == FREQ_MAJOR:
        tiles = tiles.transpose(1, 2)  # [B, F', T', p, p]
    elif layout != TIME_MAJOR:
        raise ValueError(f"unknown patch layout {layout!r}; valid: {', '.join(LAYOUTS)}")
    flat = tiles.reshape(b, tt * ff, patch * patch)
    return {"intensity": flat.mean(dim=-1), "variation": flat.std(dim=-1)}


def gather_tokens(hidden: torch.Tensor, positions: torch.Tensor, extra: int) -> torch.Tensor:
    """Keep the extra tokens and the chosen patch tokens.

    hidden: [B, n, D]; positions: [B, k] long, indices into the *patch* part (0 = first patch,
    i.e. sequence position `extra`). Returns [B, extra + k, D]. Offsetting by `extra` is the
    step the authors' intensity/variation path missed.
    """
    index = (positions + extra).unsqueeze(-1).expand(-1, -1, hidden.shape[-1])
    return torch.cat([hidden[:, :extra], hidden.gather(1, index)], dim=1)


def keep_rate_schedule(
    epoch: float, base: float, shrink_start: float, shrink_epochs: float
) -> float:
    """The authors' cosine keep-rate warm-down (the same function in both code bases).

    r = 1 before `shrink_start`; r = base + (1 − base) · ½ · (1 + cos(π (e − e0) / E)) while
    shrinking; `base` afterwards. Pass a whole epoch for the authors' per-epoch schedule, or
    step / steps_per_epoch for the per-step variant.
    """
    if base >= 1.0 or epoch < shrink_start:
        return 1.0
    if shrink_epochs <= 0 or epoch >= shrink_start + shrink_epochs:
        return float(base)
    phase = (epoch - shrink_start) / shrink_epochs
    return float(base + (1.0 - base) * 0.5 * (1.0 + math.cos(math.pi * phase)))


def pair_counts(x: torch.Tensor, y: torch.Tensor) -> dict[str, int]:
    """Pair counts of two rankings over the same n items (all i < j pairs).

    x, y: [n]. Returns concordant, discordant, ties_x (tied in x only), ties_y (in y only),
    ties_both.
    """
    if x.shape != y.shape or x.dim() != 1:
        raise ValueError(f"kendall tau: x and y must be equal-length 1-D, got {x.shape}, {y.shape}")
    dx = torch.sign(x[:, None] - x[None, :])
    dy = torch.sign(y[:, None] - y[None, :])
    upper = torch.triu(torch.ones_like(dx, dtype=torch.bool), diagonal=1)
    prod = (dx * dy)[upper]
    tx, ty = (dx == 0)[upper], (dy == 0)[upper]
    return {
        "concordant": int((prod > 0).sum()),
        "discordant": int((prod < 0).sum()),
        "ties_x": int((tx & ~ty).sum()),
        "ties_y": int((ty & ~tx).sum()),
        "ties_both": int((tx & ty).sum()),
    }


def tau_b(counts: dict[str, int]) -> float:
    """Kendall τ-b from (pooled) pair counts: (C − D) / √((C + D + T_x)(C + D + T_y)).

    Equal to scipy.stats.kendalltau (variant "b") for a single ranking pair.
    """
    c, d = counts["concordant"], counts["discordant"]
    denom = math.sqrt((c + d + counts["ties_x"]) * (c + d + counts["ties_y"]))
    return (c - d) / denom if denom else float("nan")


def tau_ties_concordant(counts: dict[str, int]) -> float:
    """The authors' variant: a pair counts as concordant when sign(Δx)·sign(Δy) ≥ 0, so every
    tied pair is concordant: (C' − D) / (C' + D) with C' = C + all ties. Neither τ-a nor τ-b;
    with 5-level cluster ranks it inflates τ (notes §3)."""
    c = counts["concordant"] + counts["ties_x"] + counts["ties_y"] + counts["ties_both"]
    d = counts["discordant"]
    return (c - d) / (c + d) if c + d else float("nan")


def pooled_pair_counts(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, int]:
    """Pair counts summed over samples (pairs within each sample, as the authors pool them)."""
    total = dict.fromkeys(("concordant", "discordant", "ties_x", "ties_y", "ties_both"), 0)
    for x, y in pairs:
        for key, value in pair_counts(x, y).items():
            total[key] += value
    return total


def cluster_ranks(values: torch.Tensor, thresholds: list[float]) -> torch.Tensor:
    """Rank 0..len(thresholds) of each value by the cluster borders (upper edges, ascending)."""
    return torch.bucketize(values.float(), torch.tensor(thresholds, dtype=torch.float32))


def kmeans_thresholds(values: torch.Tensor, clusters: int = 5, seed: int = 0) -> list[float]:
    """Upper edges of 1-D K-means clusters of `values` (the authors' intensity clusters C1..C5),
    as midpoints between neighbouring sorted cluster centres: len = clusters − 1."""
    from sklearn.cluster import KMeans

    data = values.detach().float().reshape(-1, 1).numpy()
    centres = KMeans(n_clusters=clusters, n_init=4, random_state=seed).fit(data).cluster_centers_
    c = sorted(float(v) for v in centres.ravel())
    return [(a + b) / 2 for a, b in zip(c[:-1], c[1:])]
