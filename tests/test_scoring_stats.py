"""The one-pass attention statistics: the fast path equals the pre-issue-11 implementation and
the definitions (per-head received attention, SA-MAP's head-max map and self-attention block)."""

from __future__ import annotations

import math

import pytest
import torch

from audioprune import attention_scores


def previous_received_attention(queries, keys, valid=None):
    """The implementation before issue 11 (512-row chunks, additive key bias, nan_to_num,
    query mask multiply), verbatim: the speed-up must not change its results beyond 1e-6."""
    q, k = queries.float(), keys.float()
    bsz, heads, t, _ = q.shape
    if valid is None:
        valid = torch.ones(bsz, t, dtype=torch.bool)
    key_bias = torch.zeros(bsz, 1, 1, t).masked_fill(~valid[:, None, None, :], float("-inf"))
    total = torch.zeros(bsz, heads, t)
    for start in range(0, t, 512):
        stop = min(start + 512, t)
        probs = torch.softmax(q[:, :, start:stop] @ k.transpose(-1, -2) + key_bias, dim=-1)
        probs = torch.nan_to_num(probs, nan=0.0)
        total += (probs * valid[:, None, start:stop, None].float()).sum(dim=2)
    return total.mean(dim=1)


def naive_maps(q, k, valid):
    """Full [H, T, T] float64 maps per clip, padded keys at -inf, padded query rows zeroed."""
    maps = []
    for b in range(q.shape[0]):
        logits = q[b].double() @ k[b].double().transpose(-1, -2)
        logits[:, :, ~valid[b]] = -math.inf
        probs = torch.nan_to_num(torch.softmax(logits, dim=-1), nan=0.0)
        maps.append(probs * valid[b][None, :, None])
    return maps


def random_qk(bsz, heads, t, d, seed):
    gen = torch.Generator().manual_seed(seed)
    return (
        torch.randn(bsz, heads, t, d, generator=gen) * d**-0.5 * 3,
        torch.randn(bsz, heads, t, d, generator=gen),
    )


def test_fast_path_equals_the_previous_implementation_at_full_length():
    q, k = random_qk(2, 4, 1500, 16, seed=0)
    valid = torch.arange(1500)[None, :] < torch.tensor([1500, 500])[:, None]
    for v in (None, valid):
        before = previous_received_attention(q, k, v)
        after = attention_scores.received_attention(q, k, v)
        assert (after - before).abs().max().item() <= 1e-6 * max(1.0, before.abs().max().item())
        if v is not None:
            assert torch.all(after[1, 500:] == 0)


@pytest.mark.parametrize("chunk", [3, 128])
def test_statistics_equal_their_definitions_with_prefix_and_holed_masks(chunk):
    q, k = random_qk(3, 3, 22, 4, seed=chunk)
    valid = torch.ones(3, 22, dtype=torch.bool)
    valid[1, 15:] = False  # end padding (how audio is padded)
    valid[2, [0, 3, 4, 9, 21]] = False  # holes: the general path
    got = attention_scores.attention_statistics(
        q, k, valid, per_head=True, head_max=True, self_block=True, chunk=chunk
    )
    for b, probs in enumerate(naive_maps(q, k, valid)):  # probs [H, T, T]
        per_head = probs.sum(dim=1)  # [H, T]
        torch.testing.assert_close(got.per_head[b].double(), per_head, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(got.received[b].double(), per_head.mean(0), atol=1e-5, rtol=1e-5)
        head_max = probs.amax(dim=0).sum(dim=0)  # element-wise max over heads, then queries
        torch.testing.assert_close(got.head_max[b].double(), head_max, atol=1e-5, rtol=1e-5)
        mean_map = probs.mean(dim=0)  # [T, T]
        block = torch.tensor(
            [mean_map[i, 2 * (i // 2) : 2 * (i // 2) + 2].sum().item() for i in range(22)]
        )
        torch.testing.assert_close(got.self_block[b].double(), block.double(), atol=1e-6, rtol=1e-5)
        for value in (got.received[b], got.head_max[b], got.self_block[b], got.per_head[b]):
            assert torch.all(value[..., ~valid[b]] == 0)


def test_self_scores_pool_to_samaps_diagonal():
    """frames_to_tokens(self_block)[u] = P[u, u] = ½ Σ_{a,b} A_mean[2u+a, 2u+b] (methods.md §8)."""
    q, k = random_qk(1, 2, 8, 4, seed=7)
    valid = torch.ones(1, 8, dtype=torch.bool)
    got = attention_scores.frames_to_tokens(
        attention_scores.attention_statistics(q, k, valid, self_block=True).self_block
    )[0]
    mean_map = naive_maps(q, k, valid)[0].mean(dim=0)
    pooled = mean_map.reshape(4, 2, 4, 2).sum(dim=(1, 3)) / 2  # P[t, u]
    torch.testing.assert_close(got.double(), torch.diagonal(pooled), atol=1e-6, rtol=1e-5)


def test_optional_statistics_leave_the_scores_unchanged_and_are_off_by_default():
    q, k = random_qk(2, 4, 300, 8, seed=3)
    plain = attention_scores.attention_statistics(q, k)
    assert plain.per_head is None and plain.head_max is None and plain.self_block is None
    full = attention_scores.attention_statistics(
        q, k, per_head=True, head_max=True, self_block=True
    )
    assert torch.equal(full.received, plain.received)
    torch.testing.assert_close(full.per_head.mean(dim=1), plain.received)


def test_bad_shapes_are_refused():
    q, k = random_qk(1, 2, 6, 4, seed=0)
    with pytest.raises(ValueError, match=r"\[B, H, T, d\]"):
        attention_scores.attention_statistics(q, k[:, :, :5])
    with pytest.raises(ValueError, match="valid"):
        attention_scores.attention_statistics(q, k, torch.ones(1, 5, dtype=torch.bool))
