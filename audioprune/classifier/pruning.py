"""The one seam between audioprune and a ViT-style spectrogram classifier: Top-K inside the encoder.

Checked against transformers 5.24 (`ASTLayer`, `ViTLayer`: layernorm_before → attention →
+ residual → layernorm_after → MLP → + residual). Only the pruning layers change class, to a
generated subclass whose forward is the stock one plus one gather after the attention
residual (EViT; notes §1), so the pruning block's MLP and every later block see fewer tokens.
Forward hooks on that layer's `q_proj` / `k_proj` keep q and k, from which the score is
recomputed (`classifier.scores`): attention stays on the sdpa kernel, nothing runs eagerly.
State-dict keys are unchanged. An identity test at r = 1 guards the copied forward lines.

Per forward, a `Pruner` holds the selector, keep rate, per-sample keys and, per token still
present, the index of its patch in the full grid (`patch_ids`). Selectors see the patches of
one sample ordered by time (then frequency), so "ascending" means time order for both AST
(frequency-major) and AudioMAE (time-major); the chosen tokens keep their relative order in the
sequence. `segmentwise_topk` segments are spans of whole time columns: the T' columns are split
like `torch.tensor_split(torch.arange(T'), S)` and a segment holds every patch still present
in its columns (so counts differ between segments, and a segment may be empty). Choices are remembered per stage
for the current forward, so a gradient-checkpointing replay reuses them (a `random` replay
would otherwise draw other tokens and silently corrupt gradients).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from audioprune.classifier import scores as S
from audioprune.selectors.base import Selector
from audioprune.selectors.patch_stats import statistic_of

SCORES = ("cls", "cls_dist", "received")


@dataclass
class PruneSpec:
    """Where and how a model prunes.

    layers: 0-indexed pruning blocks (the paper: 3, 6, 9 = blocks 4, 7, 10)
    score:  "cls" (AST: CLS row), "cls_dist" (AST: mean of CLS and DIST rows),
            "received" (AudioMAE: attention received from patch queries)
    extra:  leading non-patch tokens (AST 2, AudioMAE 1), always kept
    grid:   (F', T') patches along frequency and time; layout: scores.FREQ_MAJOR / TIME_MAJOR
    """

    layers: tuple[int, ...]
    score: str
    extra: int
    grid: tuple[int, int]
    layout: str
    patch: int = 16

    def __post_init__(self) -> None:
        self.layers = tuple(int(i) for i in self.layers)
        if self.score not in SCORES:
            raise ValueError(
                f"pruning score must be one of {', '.join(SCORES)}, got {self.score!r}"
            )
        if self.layout not in S.LAYOUTS:
            raise ValueError(f"patch layout must be one of {', '.join(S.LAYOUTS)}")

    @property
    def patches(self) -> int:
        return self.grid[0] * self.grid[1]


@dataclass
class StageRecord:
    """One pruning stage of one forward: input patch ids [B, n_in] and chosen positions [B, k]."""

    patch_ids: torch.Tensor
    positions: torch.Tensor


@dataclass
class Pruner:
    """Per-model pruning state; `begin` arms it for the next forward."""

    spec: PruneSpec
    selector: Selector | None = None
    retention: float = 1.0
    sample_keys: list[str] = field(default_factory=list)
    statistics: dict[str, torch.Tensor] = field(default_factory=dict)
    patch_ids: torch.Tensor | None = None  # [B, n_patches present] long
    stages: dict[int, StageRecord] = field(default_factory=dict)
    score_macs: int = 0  # multiply-adds spent on scores in the last forward (per sample)

    @property
    def active(self) -> bool:
        return self.selector is not None and self.selector.prunes and self.retention < 1.0

    def begin(
        self,
        selector: Selector | None,
        retention: float,
        sample_keys: list[str],
        features: torch.Tensor | None = None,
    ) -> None:
        """Arm the next forward. features: [B, T, F] model input (for patch-statistic selectors)."""
        self.selector, self.retention, self.sample_keys = selector, float(retention), sample_keys
        if self.active and getattr(selector, "fill_remainder", True) is False:
            raise ValueError(
                f"selector {selector.name!r}: fill_remainder=false is not supported in the "
                "classifier family (every stage keeps exactly ceil(r · patches present), which "
                "the MAC count and the batch rely on); use fill_remainder=true"
            )
        self.statistics = {}
        stat = statistic_of(selector) if selector is not None else None
        if self.active and stat:
            if features is None:
                raise ValueError(f"selector {selector.name!r} needs the input features")
            self.statistics = S.patch_statistics(features, self.spec.patch, self.spec.layout)
        self.reset_forward()

    def reset_forward(self) -> None:
        """Forget the previous forward's choices (called from a pre-hook on the embeddings)."""
        self.patch_ids = None
        self.stages = {}
        self.score_macs = 0

    def kept_patch_ids(self) -> torch.Tensor | None:
        """[B, n] patch ids (grid order) of the tokens that left the last pruning stage."""
        return self.patch_ids

    # -- called from inside the pruning layers -------------------------------------------------

    def prune(
        self, stage: int, hidden: torch.Tensor, q: torch.Tensor, k: torch.Tensor, layer: nn.Module
    ) -> torch.Tensor:
        """hidden: [B, n, D] after the attention residual -> [B, extra + k, D]."""
        if not self.active:
            return hidden
        extra = self.spec.extra
        b, n, _ = hidden.shape
        if stage in self.stages:  # gradient-checkpointing replay: reuse the first pass's choice
            record = self.stages[stage]
            return S.gather_tokens(hidden, record.positions.to(hidden.device), extra)
        if self.patch_ids is None:
            if n - extra != self.spec.patches:
                raise ValueError(
                    f"pruning expected {self.spec.patches} patch tokens, got {n - extra}; "
                    "the input length does not match the model's max_length"
                )
            self.patch_ids = torch.arange(n - extra).expand(b, -1)
        patch_ids = self.patch_ids
        if len(self.sample_keys) != b:
            raise ValueError(f"pruner armed for {len(self.sample_keys)} samples, batch has {b}")
        with torch.no_grad():  # selection is not differentiated (EViT); keeps replays identical
            scores = self.score(q, k, layer)  # [B, n − extra]
        keep = S.stage_keep_count(n - extra, self.retention)
        positions = torch.stack(
            [
                self.choose(scores[i], patch_ids[i], keep, f"{self.sample_keys[i]}@{stage}")
                for i in range(b)
            ]
        ).to(hidden.device)
        self.stages[stage] = StageRecord(patch_ids, positions.cpu())
        self.patch_ids = patch_ids.gather(1, positions.cpu())
        return S.gather_tokens(hidden, positions, extra)

    def score(self, q: torch.Tensor, k: torch.Tensor, layer: nn.Module) -> torch.Tensor:
        """Scores of the patches present: [B, n − extra] (a patch statistic or attention)."""
        stat = statistic_of(self.selector)
        if stat:
            return self.statistics[stat].gather(1, self.patch_ids.to(self.statistics[stat].device))
        attention = layer.attention
        heads, head_dim = attention.num_attention_heads, attention.head_dim
        b, n, _ = q.shape
        q4, k4 = q.view(b, n, heads, head_dim), k.view(b, n, heads, head_dim)
        width = heads * head_dim
        if self.spec.score == "received":
            self.score_macs += (n - self.spec.extra) * n * width
            return S.received_attention(q4, k4, attention.scaling, self.spec.extra)
        rows = 2 if self.spec.score == "cls_dist" else 1
        self.score_macs += rows * n * width
        return S.cls_attention(q4, k4, attention.scaling, rows, self.spec.extra)

    def choose(
        self, scores: torch.Tensor, patch_ids: torch.Tensor, keep: int, key: str
    ) -> torch.Tensor:
        """One sample: scores, patch_ids [n] -> positions [keep] (ascending, into the n tokens).

        The selector sees the patches in time order, so its ascending-in-time contract holds
        for either patch layout; a segmentwise selector gets segments of whole time columns.
        """
        order = torch.argsort(S.time_major_key(patch_ids, self.spec.grid, self.spec.layout))
        ranked = scores[order.to(scores.device)].float().cpu()
        if hasattr(self.selector, "select_in_segments"):
            columns = S.time_index(patch_ids[order], self.spec.grid, self.spec.layout)
            bounds = column_segments(columns, self.spec.grid[1], self.selector.segments)
            picked = self.selector.select_in_segments(ranked, keep, bounds)
        else:
            picked = self.selector(ranked, keep, sample_key=key)
        return torch.sort(order[picked.cpu()]).values


def column_segments(
    columns: torch.Tensor, time_columns: int, segments: int
) -> list[tuple[int, int]]:
    """Token spans of S segments of whole time columns.

    columns: [n] long, non-decreasing time column of each patch present (patches in time order);
    the T' columns are split as torch.tensor_split(torch.arange(T'), S). Returns S [start, stop)
    spans into the n tokens (empty where a segment's columns hold no patch).
    """
    from audioprune.selectors.segmentwise import segment_bounds

    edges = torch.tensor([stop for _, stop in segment_bounds(time_columns, segments)])
    stops = torch.searchsorted(columns.cpu(), edges).tolist()  # first token at column >= edge
    return list(zip([0, *stops[:-1]], stops, strict=True))


class _PruningLayerMixin:
    """Forward of ASTLayer / ViTLayer (transformers 5.24) with the gather after the attention
    residual. Only these ~10 lines are copied; tests compare them with the stock layer at r = 1."""

    _pruner: Pruner
    _stage: int
    _qk: dict

    def forward(self, hidden_states, attention_mask=None, **kwargs):
        if attention_mask is not None and self._pruner.active:
            raise ValueError("in-encoder pruning does not support an attention mask")
        residual = hidden_states
        hidden_states = self.layernorm_before(hidden_states)
        hidden_states, _ = self.attention(hidden_states, attention_mask, **kwargs)
        hidden_states = self.dropout(hidden_states)
        hidden_states = hidden_states + residual
        if self._pruner.active:
            q, k = self._qk.pop("q"), self._qk.pop("k")
            hidden_states = self._pruner.prune(self._stage, hidden_states, q, k, self)
        self._qk.clear()

        residual = hidden_states
        hidden_states = self.layernorm_after(hidden_states)
        hidden_states = self.mlp(hidden_states)
        hidden_states = self.dropout(hidden_states)
        return hidden_states + residual


_CLASSES: dict[type, type] = {}


def pruning_class(layer_cls: type) -> type:
    """The generated pruning subclass of a stock layer class (one per class)."""
    if layer_cls not in _CLASSES:
        _CLASSES[layer_cls] = type(
            f"Pruning{layer_cls.__name__}", (_PruningLayerMixin, layer_cls), {}
        )
    return _CLASSES[layer_cls]


def install(encoder_layers: nn.ModuleList, embeddings: nn.Module, spec: PruneSpec) -> Pruner:
    """Swap the pruning layers' class, hook their q/k projections, return the model's Pruner."""
    pruner = Pruner(spec)
    for stage, index in enumerate(spec.layers):
        if not 0 <= index < len(encoder_layers):
            raise ValueError(
                f"pruning layer {index} does not exist; the encoder has {len(encoder_layers)} layers"
            )
        layer = encoder_layers[index]
        if isinstance(layer, _PruningLayerMixin):
            raise ValueError(f"layer {index} already prunes; install pruning once per model")
        layer.__class__ = pruning_class(type(layer))
        layer._qk, layer._pruner, layer._stage = {}, pruner, stage
        for name in ("q", "k"):
            # Holds a reference to the projection output (no copy); the layer's forward pops it.
            getattr(layer.attention, f"{name}_proj").register_forward_hook(
                lambda module, args, output, store=layer._qk, name=name: store.__setitem__(
                    name, output
                )
            )
    embeddings.register_forward_pre_hook(lambda module, args: pruner.reset_forward())
    return pruner
