"""The pure score math: received attention, frame-to-token pooling, and the token budget."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from audioprune import attention_scores
from audioprune.budget import check_retention, keep_count


def naive_received_attention(q: torch.Tensor, k: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """The definition, written out with the full [T, T] map in float64, one (sample, head) at a time."""
    bsz, heads, t, _ = q.shape
    out = torch.zeros(bsz, t, dtype=torch.float64)
    for b in range(bsz):
        keys_ok = valid[b]
        for h in range(heads):
            logits = q[b, h].double() @ k[b, h].double().T  # [T queries, T keys]
            logits[:, ~keys_ok] = -math.inf
            probs = torch.softmax(logits, dim=-1)
            out[b] += probs[keys_ok].sum(dim=0)  # only valid queries vote
        out[b] /= heads
        out[b, ~keys_ok] = 0.0
    return out


def random_qk(bsz: int, heads: int, t: int, d: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(bsz, heads, t, d, generator=gen) * d**-0.5 * 3  # peaky enough to matter
    k = torch.randn(bsz, heads, t, d, generator=gen)
    return q, k


def lengths_to_valid(lengths: list[int], t: int) -> torch.Tensor:
    return torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]


def test_received_attention_matches_naive_softmax_with_padding():
    q, k = random_qk(3, 4, 37, 8, seed=0)
    valid = lengths_to_valid([37, 20, 1], 37)
    got = attention_scores.received_attention(q, k, valid)
    assert got.dtype == torch.float32 and got.shape == (3, 37)
    torch.testing.assert_close(
        got.double(), naive_received_attention(q, k, valid), atol=1e-5, rtol=1e-5
    )


def test_received_attention_chunks_queries_beyond_512_frames():
    t = 1100  # chunks of 512, 512, 76
    assert t > 2 * attention_scores.QUERY_CHUNK
    q, k = random_qk(2, 2, t, 8, seed=1)
    valid = lengths_to_valid([t, 700], t)  # the padding starts inside the second chunk
    got = attention_scores.received_attention(q, k, valid)
    torch.testing.assert_close(
        got.double(), naive_received_attention(q, k, valid), atol=1e-4, rtol=1e-5
    )


def test_padded_keys_get_exactly_zero_and_scores_sum_to_valid_queries():
    q, k = random_qk(2, 3, 600, 8, seed=2)
    valid = lengths_to_valid([600, 437], 600)
    got = attention_scores.received_attention(q, k, valid)
    assert torch.all(got[1, 437:] == 0.0)
    assert torch.all(got[0] > 0) and torch.all(got[1, :437] > 0)
    # each valid query spreads exactly 1 over the valid keys (per head, then averaged)
    torch.testing.assert_close(got.sum(dim=1), torch.tensor([600.0, 437.0]), rtol=1e-5, atol=1e-3)


def test_padded_queries_and_keys_do_not_influence_valid_scores():
    q, k = random_qk(1, 2, 530, 4, seed=3)
    valid = lengths_to_valid([300], 530)
    before = attention_scores.received_attention(q, k, valid)
    q2, k2 = q.clone(), k.clone()
    q2[:, :, 300:] = 1e3 * torch.randn_like(q2[:, :, 300:])  # garbage in the padding
    k2[:, :, 300:] = 1e3 * torch.randn_like(k2[:, :, 300:])
    after = attention_scores.received_attention(q2, k2, valid)
    torch.testing.assert_close(after, before)
    # and the valid part equals scoring the unpadded clip on its own
    alone = attention_scores.received_attention(q[:, :, :300], k[:, :, :300])
    torch.testing.assert_close(before[:, :300], alone, atol=1e-5, rtol=1e-5)


def test_no_mask_means_everything_valid_and_low_precision_is_scored_in_fp32():
    q, k = random_qk(2, 2, 40, 8, seed=4)
    all_valid = torch.ones(2, 40, dtype=torch.bool)
    torch.testing.assert_close(
        attention_scores.received_attention(q, k),
        attention_scores.received_attention(q, k, all_valid),
    )
    half = attention_scores.received_attention(q.bfloat16(), k.bfloat16(), all_valid)
    assert half.dtype == torch.float32
    reference = naive_received_attention(q.bfloat16().float(), k.bfloat16().float(), all_valid)
    torch.testing.assert_close(half.double(), reference, atol=1e-4, rtol=1e-5)


def test_fully_padded_sample_scores_zero_without_nan():
    q, k = random_qk(2, 2, 16, 4, seed=5)
    valid = lengths_to_valid([16, 0], 16)
    got = attention_scores.received_attention(q, k, valid)
    assert not torch.isnan(got).any()
    assert torch.all(got[1] == 0.0)
    torch.testing.assert_close(got[0:1], attention_scores.received_attention(q[0:1], k[0:1]))


@pytest.mark.parametrize("frames", [1500, 8, 7, 3])
def test_frames_to_tokens_equals_avgpool(frames):
    gen = torch.Generator().manual_seed(frames)
    pool = nn.AvgPool1d(kernel_size=2, stride=2)
    scores = torch.rand(3, frames, generator=gen)  # [B, T]
    got = attention_scores.frames_to_tokens(scores)
    assert got.shape == (3, frames // 2)
    torch.testing.assert_close(got, pool(scores[:, None, :])[:, 0, :])
    # [B, T, D] (keys): the encoder pools over time with channels first
    keys = torch.randn(2, frames, 5, generator=gen)
    pooled = attention_scores.frames_to_tokens(keys)
    assert pooled.shape == (2, frames // 2, 5)
    torch.testing.assert_close(pooled, pool(keys.transpose(1, 2)).transpose(1, 2))


def test_frames_to_tokens_hand_example():
    # pairs (1, 3) and (5, 6); the odd last frame 100 is dropped as AvgPool1d drops it
    got = attention_scores.frames_to_tokens(torch.tensor([[1.0, 3.0, 5.0, 6.0, 100.0]]))
    assert got.tolist() == [[2.0, 5.5]]


def test_head_mean_keys():
    keys = torch.arange(2 * 3 * 4 * 2, dtype=torch.float32).reshape(2, 3, 4, 2)  # [B, H, T, d]
    got = attention_scores.head_mean_keys(keys.half())
    assert got.shape == (2, 4, 2) and got.dtype == torch.float32
    torch.testing.assert_close(got, (keys[:, 0] + keys[:, 1] + keys[:, 2]) / 3)


# ---------------------------------------------------------------- budget


@pytest.mark.parametrize(
    ("n", "retention", "expected"),
    [
        (750, 0.25, 187),  # 187.5 floors to 187
        (750, 0.5, 375),
        (750, 0.1, 75),  # 0.1 · 750 = 75.00000000000001 in floats
        (750, 1.0, 750),
        (100, 0.29, 29),  # 0.29 · 100 = 28.999999999999996 in floats
        (10, 0.05, 1),  # 0.5 floors to 0, then max(1, ·)
        (1, 0.1, 1),
        (3, 0.5, 1),
        (749, 0.25, 187),  # 187.25
        (1499, 0.5, 749),
    ],
)
def test_keep_count_examples(n, retention, expected):
    assert keep_count(n, retention) == expected


@pytest.mark.parametrize("retention", [0, 0.0, -0.25, 1.5, float("nan"), float("inf"), "a", None])
def test_keep_count_rejects_bad_retention(retention):
    with pytest.raises(ValueError, match="retention"):
        keep_count(750, retention)
    with pytest.raises(ValueError, match="retention"):
        check_retention(retention)


def test_keep_count_rejects_empty_window():
    with pytest.raises(ValueError, match="N=0"):
        keep_count(0, 0.5)


def test_keep_count_is_floor_of_r_n_at_least_one():
    for n in range(1, 800, 7):
        for percent in range(1, 101):
            k = keep_count(n, percent / 100)
            # exact integer arithmetic for floor(percent · n / 100)
            assert k == max(1, percent * n // 100), (n, percent)
