"""Pure math of the shared importance score: attention received in the last encoder layer.

Conventions (shared/README): softmax(QK^T/sqrt(d)) per head in fp32, padded keys masked,
summed over valid queries, averaged over heads; frame scores (1500 per 30 s) map to LLM tokens
(750 per 30 s) by averaging the two frames that the encoder's AvgPool1d(2, 2) merges.
No model code lives here: the hook in `audioprune.models.hooks` feeds these functions.
"""

from __future__ import annotations

import torch

QUERY_CHUNK = 512


def received_attention(
    queries: torch.Tensor, keys: torch.Tensor, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Attention each key receives, summed over valid queries and averaged over heads.

    queries: [B, H, T, d] already multiplied by the 1/sqrt(d) scaling (as the attention module does).
    keys:    [B, H, T, d]
    valid:   [B, T] bool, True for real (non-padded) frames; None = all valid.
    returns: [B, T] float32; padded keys get exactly 0.

    Softmax is computed in query chunks so the full [B, H, T, T] map never exists at once.
    """
    q = queries.float()
    k = keys.float()
    bsz, heads, t, _ = q.shape
    if valid is None:
        valid = torch.ones(bsz, t, dtype=torch.bool, device=q.device)
    valid = valid.to(device=q.device, dtype=torch.bool)
    key_bias = torch.zeros(bsz, 1, 1, t, device=q.device, dtype=torch.float32)
    key_bias = key_bias.masked_fill(~valid[:, None, None, :], float("-inf"))
    total = torch.zeros(bsz, heads, t, device=q.device, dtype=torch.float32)
    for start in range(0, t, QUERY_CHUNK):
        stop = min(start + QUERY_CHUNK, t)
        logits = q[:, :, start:stop] @ k.transpose(-1, -2) + key_bias  # [B, H, c, T]
        probs = torch.softmax(logits, dim=-1)
        probs = torch.nan_to_num(probs, nan=0.0)  # a row with no valid key (fully padded clip)
        qmask = valid[:, None, start:stop, None].to(probs.dtype)  # drop padded queries
        total += (probs * qmask).sum(dim=2)
    return total.mean(dim=1)


def frames_to_tokens(frame_values: torch.Tensor) -> torch.Tensor:
    """Average adjacent frame pairs, exactly like the encoder's AvgPool1d(kernel=2, stride=2).

    frame_values: [B, T, ...] (T frames); returns [B, T // 2, ...]. An odd last frame is dropped,
    as the pooling layer drops it.
    """
    t = frame_values.shape[1] // 2 * 2
    x = frame_values[:, :t]
    return x.reshape(x.shape[0], t // 2, 2, *x.shape[2:]).mean(dim=2)


def head_mean_keys(keys: torch.Tensor) -> torch.Tensor:
    """Average keys over heads: [B, H, T, d] -> [B, T, d] (what VisionZip compares tokens by)."""
    return keys.float().mean(dim=1)
