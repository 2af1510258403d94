"""A forward hook that scores audio tokens from the last encoder self-attention layer.

The hook recomputes q and k of that single layer from its (already layer-normed) input and
hands them to `audioprune.scoring`; every encoder layer, the hooked one included, keeps running
its own fast attention kernel (no `output_attentions`, no switch to eager: pitfall P4).
Works for any Whisper-style attention module exposing `q_proj`, `k_proj`, `scaling`,
`num_heads` and `head_dim` (Qwen2AudioAttention, AudioFlamingo3Attention; transformers 5.23).
"""

from __future__ import annotations

import torch
from torch import nn

from audioprune import scoring


def key_validity_from_mask(mask: torch.Tensor | None, batch: int, frames: int) -> torch.Tensor:
    """[B, T] bool of valid keys from the 4-D mask the encoder passes its attention layers.

    sdpa: bool [B, 1, T, T], True = attend; eager: additive float, 0 = attend, large negative =
    masked; None = nothing padded. Row 0 of the mask holds exactly the key validity.
    """
    if mask is None:
        return torch.ones(batch, frames, dtype=torch.bool)
    row = mask[:, 0, 0, :]
    if row.dtype == torch.bool:
        return row.clone()
    return row > torch.finfo(row.dtype).min / 2


class LastLayerScorer:
    """Attach to an attention module; after each encoder forward, `scores` and `keys` hold:

    frame_scores: [B, T] float32, attention received per encoder frame
    token_scores: [B, T//2] float32, averaged over frame pairs like the encoder's AvgPool(2, 2)
    token_keys:   [B, T//2, d] float32 head-averaged keys pooled the same way (only if keep_keys)
    """

    def __init__(self, attention: nn.Module, keep_keys: bool = False):
        for attr in ("q_proj", "k_proj", "scaling", "num_heads", "head_dim"):
            if not hasattr(attention, attr):
                raise TypeError(
                    f"{type(attention).__name__} has no {attr!r}: the scorer expects a "
                    "Whisper-style self-attention module (q_proj, k_proj, scaling, num_heads, head_dim)"
                )
        self.attention = attention
        self.keep_keys = keep_keys
        self.enabled = True
        self.frame_scores: torch.Tensor | None = None
        self.token_scores: torch.Tensor | None = None
        self.token_keys: torch.Tensor | None = None
        self._handle = attention.register_forward_hook(self._hook, with_kwargs=True)

    def remove(self) -> None:
        self._handle.remove()

    def reset(self) -> None:
        self.frame_scores = self.token_scores = self.token_keys = None

    @torch.no_grad()
    def _hook(self, module: nn.Module, args: tuple, kwargs: dict, output) -> None:
        if not self.enabled:
            return
        hidden = (
            args[0] if args else kwargs["hidden_states"]
        )  # [B, T, C], after self_attn_layer_norm
        bsz, frames, _ = hidden.shape
        mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
        valid = key_validity_from_mask(mask, bsz, frames).to(hidden.device)
        # Same operation order as the module: q is scaled before the matmul.
        q = (module.q_proj(hidden) * module.scaling).view(
            bsz, frames, module.num_heads, module.head_dim
        )
        k = module.k_proj(hidden).view(bsz, frames, module.num_heads, module.head_dim)
        q, k = q.transpose(1, 2), k.transpose(1, 2)
        self.frame_scores = scoring.received_attention(q, k, valid)
        self.token_scores = scoring.frames_to_tokens(self.frame_scores)
        self.token_keys = (
            scoring.frames_to_tokens(scoring.head_mean_keys(k)) if self.keep_keys else None
        )
