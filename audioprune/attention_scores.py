"""Pure math of the shared importance score: attention received in the last encoder layer.

Conventions (docs/models-audio-llms.md): softmax(QK^T/sqrt(d)) per head in fp32, padded keys masked,
summed over valid queries, averaged over heads; frame scores (1500 per 30 s) map to LLM tokens
(750 per 30 s) by averaging the two frames that the encoder's AvgPool1d(2, 2) merges.
No model code lives here: the hook in `audioprune.models.hooks` feeds these functions.

How it is computed (one pass, `attention_statistics`): per clip, only its valid frames take part
(a padded key gets probability exactly 0 under the mask, so dropping it from the softmax is the
same arithmetic, and padded queries do not vote), which skips every mask pass and shrinks short
clips' work to n² instead of T²; queries go through in chunks of `QUERY_CHUNK` rows so the
[H, chunk, n] probabilities stay cache-sized and the full [H, T, T] map never exists. The same
pass can keep the per-head sums (head-aware scores), the element-wise max over heads before the
query sum (SA-MAP's head-max map) and the head-mean attention inside each 2-frame pooling block
(SA-MAP's self-attention diagonal), at token resolution after `frames_to_tokens`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Query rows per softmax chunk: H x 128 x 1500 floats (15 MB at real width) stay in cache, where
# 512 rows did not (scripts/bench_scorer.py measures the whole hook).
QUERY_CHUNK = 128

# Names of the optional statistics (they double as TokenWindow fields / `needs` entries).
HEAD_SCORES = "head_scores"
HEAD_MAX_SCORES = "head_max_scores"
SELF_SCORES = "self_scores"
OPTIONAL_STATS = (HEAD_SCORES, HEAD_MAX_SCORES, SELF_SCORES)


@dataclass
class AttentionStats:
    """What one chunked pass over the last layer's attention yields, per encoder frame.

    received:  [B, T] float32  attention each key receives, summed over valid queries, head mean
    per_head:  [B, H, T] float32 the same before the head mean (None unless asked)
    head_max:  [B, T] float32  Σ_valid q max_h A_h[q, k] (None unless asked)
    self_block:[B, T] float32  per query frame q, head-mean attention onto the two frames of its
               own pooling pair {2⌊q/2⌋, 2⌊q/2⌋+1}; `frames_to_tokens` of it is
               P[u, u] = ½ Σ_{a,b} A_mean[2u+a, 2u+b] (None unless asked)
    Padded frames hold exactly 0 everywhere.
    """

    received: torch.Tensor
    per_head: torch.Tensor | None = None
    head_max: torch.Tensor | None = None
    self_block: torch.Tensor | None = None


def attention_statistics(
    queries: torch.Tensor,
    keys: torch.Tensor,
    valid: torch.Tensor | None = None,
    *,
    per_head: bool = False,
    head_max: bool = False,
    self_block: bool = False,
    chunk: int = QUERY_CHUNK,
) -> AttentionStats:
    """Received attention (and optional per-head / head-max / pooling-block statistics).

    queries: [B, H, T, d] already multiplied by the 1/sqrt(d) scaling (as the attention module does).
    keys:    [B, H, T, d]
    valid:   [B, T] bool, True for real (non-padded) frames; None = all valid.
    See `AttentionStats` for the outputs; all are float32 and 0 at padded frames.
    """
    if queries.shape != keys.shape or queries.dim() != 4:
        raise ValueError(
            f"queries and keys must both be [B, H, T, d], got {tuple(queries.shape)} "
            f"and {tuple(keys.shape)}"
        )
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    bsz, heads, t, _ = queries.shape
    device = queries.device
    if valid is not None:
        valid = valid.to(device=device, dtype=torch.bool)
        if valid.shape != (bsz, t):
            raise ValueError(f"valid must be [B={bsz}, T={t}] bool, got {tuple(valid.shape)}")
    totals = torch.zeros(bsz, heads, t, dtype=torch.float32, device=device)
    maxes = torch.zeros(bsz, t, dtype=torch.float32, device=device) if head_max else None
    blocks = torch.zeros(bsz, t, dtype=torch.float32, device=device) if self_block else None
    # The valid-frame mask comes to the host once per call (W x T booleans), so the per-window
    # loop reads nothing back from the device: the gathered frames' count sizes the pass.
    host_valid = None if valid is None else valid.cpu()
    for b in range(bsz):
        frames = (
            None
            if host_valid is None or bool(host_valid[b].all())
            else host_valid[b].nonzero().flatten().to(device)
        )
        q, k = queries[b].float(), keys[b].float()  # [H, T, d]
        if frames is not None:  # only valid frames take part: no mask pass, n² work
            if frames.numel() == 0:
                continue  # a fully padded clip receives nothing
            q, k = q[:, frames], k[:, frames]
        n = q.shape[1]
        key_t = k.transpose(1, 2).contiguous()  # [H, d, n]
        total = torch.zeros(heads, n, dtype=torch.float32, device=device)
        row_max = torch.zeros(n, dtype=torch.float32, device=device) if head_max else None
        block = torch.zeros(n, dtype=torch.float32, device=device) if self_block else None
        partners = _pair_partners(frames, n, t, device) if self_block else None
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            probs = torch.softmax(torch.matmul(q[:, start:stop], key_t), dim=-1)  # [H, c, n]
            total += probs.sum(dim=1)
            if head_max:
                row_max += probs.amax(dim=0).sum(dim=0)
            if self_block:
                block[start:stop] = _block_mass(probs, partners[start:stop])
        _scatter(totals[b], total, frames)
        if head_max:
            _scatter(maxes[b], row_max, frames)
        if self_block:
            _scatter(blocks[b], block, frames)
    return AttentionStats(
        received=totals.mean(dim=1),
        per_head=totals if per_head else None,
        head_max=maxes,
        self_block=blocks,
    )


def _scatter(out: torch.Tensor, values: torch.Tensor, frames: torch.Tensor | None) -> None:
    """out[..., frames] = values (all of out when frames is None); other entries stay 0."""
    if frames is None:
        out.copy_(values)
    else:
        out[..., frames] = values


def _pair_partners(
    frames: torch.Tensor | None, n: int, t: int, device: torch.device
) -> torch.Tensor:
    """[n, 2] long: for each taking-part frame, the positions (among the n taking part) of the
    two frames of its pooling pair, -1 where that frame is padded or beyond T."""
    original = torch.arange(t, device=device) if frames is None else frames
    where = torch.full((t + 1,), -1, dtype=torch.long, device=device)
    where[original] = torch.arange(n, device=device)
    first = original // 2 * 2
    pair = torch.stack([first, (first + 1).clamp(max=t)], dim=1)  # index t maps to -1
    return where[pair]


def _block_mass(probs: torch.Tensor, partners: torch.Tensor) -> torch.Tensor:
    """probs [H, c, n], partners [c, 2] (-1 = none) -> [c] head-mean probability on the pair."""
    gathered = probs.gather(2, partners.clamp(min=0)[None].expand(probs.shape[0], -1, -1))
    return (gathered * (partners >= 0)).sum(dim=2).mean(dim=0)


def received_attention(
    queries: torch.Tensor, keys: torch.Tensor, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Attention each key receives, summed over valid queries and averaged over heads.

    queries: [B, H, T, d] already multiplied by the 1/sqrt(d) scaling (as the attention module does).
    keys:    [B, H, T, d]
    valid:   [B, T] bool, True for real (non-padded) frames; None = all valid.
    returns: [B, T] float32; padded keys get exactly 0.
    """
    return attention_statistics(queries, keys, valid).received


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
