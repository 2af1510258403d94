"""A forward hook that scores audio tokens from the last encoder self-attention layer.

The hook reads the q and k projections the module itself computes (forward hooks on its
`q_proj` / `k_proj` keep their outputs; nothing is recomputed) and hands them to
`audioprune.attention_scores`; every encoder layer, the hooked one included, keeps running its own fast
attention kernel (no `output_attentions`, no switch to eager: pitfall P4). Should a module not
call its `q_proj` / `k_proj` submodules, the hook recomputes them from the module's
(already layer-normed) input. Works for any Whisper-style attention module exposing `q_proj`,
`k_proj`, `scaling`, `num_heads` and `head_dim` (Qwen2AudioAttention, AudioFlamingo3Attention;
transformers 5.23-5.24), under every attention kernel: the mask it receives may be 4-D bool
(sdpa), 4-D additive float (eager), 2-D (B, T) bool or int (flash_attention_2/3/4) or None.
"""

from __future__ import annotations

import torch
from torch import nn

from audioprune import attention_scores


def key_validity_from_mask(mask: torch.Tensor | None, batch: int, frames: int) -> torch.Tensor:
    """[B, T] bool of valid keys from the mask the encoder passes its attention layers.

    Every form transformers 5.x builds for a bidirectional encoder (`masking_utils`):
    - None: nothing padded;
    - 4-D bool [B, 1|H, T|1, T] (sdpa), True = attend;
    - 4-D additive float [B, 1|H, T|1, T] (eager), 0 = attend, dtype-min = masked;
    - 2-D [B, T] bool or int (flash_attention_2/3/4: the padding mask itself), 1 = real frame.
    A key is valid when any query may attend it, so query-side masking cannot hide a key.
    Anything else (a flex_attention BlockMask, a 3-D tensor) is refused by name.
    """
    if mask is None:
        return torch.ones(batch, frames, dtype=torch.bool)
    if not isinstance(mask, torch.Tensor) or mask.dim() not in (2, 4):
        form = type(mask).__name__ if not isinstance(mask, torch.Tensor) else f"{mask.dim()}-D"
        raise TypeError(
            f"LastLayerScorer: unsupported attention mask ({form}); expected None, a 4-D bool or "
            "additive float mask (sdpa, eager) or a 2-D (B, T) padding mask (flash attention)"
        )
    if mask.dim() == 2:
        valid = mask.bool() if mask.dtype == torch.bool else mask != 0
    else:
        allowed = mask if mask.dtype == torch.bool else mask > torch.finfo(mask.dtype).min / 2
        valid = allowed[:, 0].any(dim=-2)  # [B, T]: head 0 (masks broadcast over heads)
    if tuple(valid.shape) != (batch, frames):
        raise ValueError(
            f"LastLayerScorer: attention mask gives key validity of shape {tuple(valid.shape)}, "
            f"expected (batch, frames) = {(batch, frames)}"
        )
    return valid


class LastLayerScorer:
    """Attach to an attention module; after each encoder forward it holds, for the last forward:

    frame_scores: [B, T] float32, attention received per encoder frame
    token_scores: [B, T//2] float32, averaged over frame pairs like the encoder's AvgPool(2, 2)
    token_keys:   [B, T//2, d] float32 head-averaged keys pooled the same way (only if keep_keys)
    token_stats:  {name: tensor} for the names in `stats` (see audioprune.attention_scores.OPTIONAL_STATS):
                  "head_scores" [B, H, T//2] per-head received attention, pooled like the scores;
                  "head_max_scores" [B, T//2] received attention under an element-wise max over
                  heads (SA-MAP's merge weight, up to its 1/N); "self_scores" [B, T//2] head-mean
                  attention inside each token's own 2x2 pooling block (SA-MAP's relevance).

    reuse_projections=False recomputes q and k from the module input instead of reading the
    module's own projections (the pre-issue-11 behaviour, kept for the benchmark).
    """

    def __init__(
        self,
        attention: nn.Module,
        keep_keys: bool = False,
        stats: frozenset[str] = frozenset(),
        reuse_projections: bool = True,
    ):
        for attr in ("q_proj", "k_proj", "scaling", "num_heads", "head_dim"):
            if not hasattr(attention, attr):
                raise TypeError(
                    f"{type(attention).__name__} has no {attr!r}: the scorer expects a "
                    "Whisper-style self-attention module (q_proj, k_proj, scaling, num_heads, head_dim)"
                )
        self.attention = attention
        self.keep_keys = keep_keys
        self.stats = frozenset(stats)
        self.reuse_projections = reuse_projections
        self.enabled = True
        self.frame_scores: torch.Tensor | None = None
        self.token_scores: torch.Tensor | None = None
        self.token_keys: torch.Tensor | None = None
        self.token_stats: dict[str, torch.Tensor] = {}
        self.frame_stats: dict[str, torch.Tensor] = {}
        self._projected: dict[str, torch.Tensor] = {}
        self._handles = [
            attention.q_proj.register_forward_hook(self._keep("q")),
            attention.k_proj.register_forward_hook(self._keep("k")),
            attention.register_forward_pre_hook(self._clear),
            attention.register_forward_hook(self._hook, with_kwargs=True),
        ]

    @property
    def stats(self) -> frozenset[str]:
        return self._stats

    @stats.setter
    def stats(self, names) -> None:
        unknown = sorted(set(names) - set(attention_scores.OPTIONAL_STATS))
        if unknown:
            raise ValueError(
                f"LastLayerScorer: unknown statistic(s) {', '.join(unknown)}; "
                f"valid: {', '.join(attention_scores.OPTIONAL_STATS)}"
            )
        self._stats = frozenset(names)

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()

    def reset(self) -> None:
        self.frame_scores = self.token_scores = self.token_keys = None
        self.token_stats = {}
        self.frame_stats = {}

    def _keep(self, name: str):
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            if self.enabled and self.reuse_projections:
                self._projected[name] = output  # a reference: the module holds it anyway

        return hook

    def _clear(self, module: nn.Module, args: tuple) -> None:
        self._projected.clear()

    @torch.no_grad()
    def _hook(self, module: nn.Module, args: tuple, kwargs: dict, output) -> None:
        projected, self._projected = self._projected, {}
        if not self.enabled:
            return
        hidden = args[0] if args else kwargs["hidden_states"]  # [B, T, C], after the layer norm
        bsz, frames, _ = hidden.shape
        mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
        valid = None if mask is None else key_validity_from_mask(mask, bsz, frames)
        q_proj = projected.get("q")
        k_proj = projected.get("k")
        if q_proj is None or k_proj is None or q_proj.shape[:2] != (bsz, frames):
            q_proj, k_proj = module.q_proj(hidden), module.k_proj(hidden)
        # Same operation order as the module: q is scaled before the matmul.
        q = (q_proj * module.scaling).view(bsz, frames, module.num_heads, module.head_dim)
        k = k_proj.view(bsz, frames, module.num_heads, module.head_dim)
        q, k = q.transpose(1, 2), k.transpose(1, 2)
        result = attention_scores.attention_statistics(
            q,
            k,
            None if valid is None else valid.to(hidden.device),  # all-valid rows: no gather
            per_head=attention_scores.HEAD_SCORES in self.stats,
            head_max=attention_scores.HEAD_MAX_SCORES in self.stats,
            self_block=attention_scores.SELF_SCORES in self.stats,
        )
        self.frame_scores = result.received
        self.token_scores = attention_scores.frames_to_tokens(result.received)
        self.token_keys = (
            attention_scores.frames_to_tokens(attention_scores.head_mean_keys(k))
            if self.keep_keys
            else None
        )
        per_frame = {
            attention_scores.HEAD_SCORES: result.per_head,
            attention_scores.HEAD_MAX_SCORES: result.head_max,
            attention_scores.SELF_SCORES: result.self_block,
        }
        # Unpooled, for encoders whose frames are the tokens (Whisper ASR)
        self.frame_stats = {k: v for k, v in per_frame.items() if v is not None}
        self.token_stats = {}
        for name, value in per_frame.items():
            if value is None:
                continue
            if value.dim() == 3:  # [B, H, T] -> pool the frame axis
                value = attention_scores.frames_to_tokens(value.transpose(1, 2)).transpose(1, 2)
            else:
                value = attention_scores.frames_to_tokens(value)
            self.token_stats[name] = value
