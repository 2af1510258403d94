"""Shared helpers of the classifier-family tests: tiny random ASTs / AudioMAEs built through the
same `from_pretrained` path as real checkpoints, and an explicit-attention reference forward
that prunes with its own indexing (the oracle the sdpa + hooks seam is compared with)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from audioprune.classifier import scores as S

LABELS = [f"class_{i}" for i in range(5)]


def tiny_pair(build, root) -> dict:
    """{4: a 4-layer D64 model, 12: a 12-layer D32 model}, both random, saved under root."""
    return {
        4: build(root / "l4", LABELS, seed=1),
        12: build(
            root / "l12",
            LABELS,
            seed=2,
            num_hidden_layers=12,
            hidden_size=32,
            intermediate_size=64,
            num_attention_heads=2,
        ),  # fmt: skip
    }


def random_features(batch: int, frames: int = 128, mel: int = 128, seed: int = 0) -> torch.Tensor:
    """[B, T, F] fbank-like input with structure (so patch statistics differ)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(batch, frames, mel, generator=g)
    ramp = torch.linspace(-1, 1, frames)[None, :, None] * torch.rand(batch, 1, 1, generator=g)
    return base * 0.5 + ramp


def explicit_forward(adapter, features, selector, retention, keys):
    """Logits [B, C] with explicit softmax attention in every layer and explicit pruning.

    Works for both builds: AST (layers under .audio_spectrogram_transformer, pooled (CLS+DIST)/2,
    classifier head) and the AudioMAE build (layers under .vit, mean of patches, fc_norm, head).
    """
    spec = adapter.spec
    extra = spec.extra
    _, layers = adapter.backbone_and_layers()
    x = adapter.embed(features)
    b = x.shape[0]
    patch_ids = torch.arange(spec.patches).expand(b, -1)
    stats = S.patch_statistics(features, spec.patch, spec.layout)
    stat = getattr(selector, "patch_statistic", None)
    prunes = selector is not None and selector.prunes and retention < 1.0
    for i, layer in enumerate(layers):
        a = layer.attention
        h = layer.layernorm_before(x)
        n = h.shape[1]

        def proj(lin, t, n=n, a=a):
            return (
                F.linear(t, lin.weight, lin.bias)
                .view(b, n, a.num_attention_heads, -1)
                .transpose(1, 2)
            )

        q, k, v = proj(a.q_proj, h), proj(a.k_proj, h), proj(a.v_proj, h)
        probs = torch.softmax(q @ k.transpose(-1, -2) * a.scaling, dim=-1)  # [B, H, n, n]
        out = (probs @ v).transpose(1, 2).reshape(b, n, -1)
        x = x + F.linear(out, a.o_proj.weight, a.o_proj.bias)
        if prunes and i in spec.layers:
            stage = spec.layers.index(i)
            if stat:
                sc = torch.stack([stats[stat][j, patch_ids[j]] for j in range(b)])
            elif spec.score == "cls":
                sc = probs[:, :, 0, extra:].mean(1)
            elif spec.score == "cls_dist":
                sc = probs[:, :, :2, extra:].mean((1, 2))
            else:
                sc = probs[:, :, extra:, extra:].mean((1, 2))
            present = patch_ids.shape[1]
            keep = max(1, math.ceil(retention * present - 1e-9))
            rows, new_ids = [], []
            for j in range(b):
                t = S.time_index(patch_ids[j], spec.grid, spec.layout)
                f = (
                    patch_ids[j] // spec.grid[1]
                    if spec.layout == S.FREQ_MAJOR
                    else patch_ids[j] % spec.grid[0]
                )
                order = sorted(range(present), key=lambda p: (int(t[p]), int(f[p])))
                order = torch.tensor(order)
                if hasattr(selector, "select_in_segments"):  # segments of whole time columns
                    bounds = time_column_bounds(t[order], spec.grid[1], selector.segments)
                    picked = selector.select_in_segments(sc[j][order], keep, bounds)
                else:
                    picked = selector(sc[j][order], keep, sample_key=f"{keys[j]}@{stage}")
                pos = torch.sort(order[picked]).values
                rows.append(torch.cat([x[j, :extra], x[j, extra + pos]]))
                new_ids.append(patch_ids[j, pos])
            x = torch.stack(rows)
            patch_ids = torch.stack(new_ids)
        x = x + layer.mlp(layer.layernorm_after(x))
    return adapter.head_from_tokens(x)


def time_column_bounds(times: list | torch.Tensor, time_columns: int, segments: int) -> list:
    """[start, stop) spans of the time-ordered tokens per segment of whole time columns: the
    columns split as torch.tensor_split(torch.arange(T'), S), a token in the segment of its
    column (counted one by one, independently of the seam's searchsorted)."""
    spans = torch.tensor_split(torch.arange(time_columns), segments)
    segment_of = {int(c): i for i, span in enumerate(spans) for c in span}
    counts = [0] * segments
    for t in times:
        counts[segment_of[int(t)]] += 1
    starts = [sum(counts[:i]) for i in range(segments)]
    return [(a, a + c) for a, c in zip(starts, counts, strict=True)]
