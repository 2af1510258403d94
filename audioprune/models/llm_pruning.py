"""The in-LLM seam: drop audio tokens at LLM layer K with forward hooks (FastV, DART).

One place for every adapter whose LLM is a transformers `Qwen2Model` (Qwen2-Audio and AF3,
checked against transformers 5.23/5.24): `Qwen2Model.forward` builds the RoPE (cos, sin), the
causal mask and the position ids once and passes the same objects to every decoder layer as
keywords; a layer returns its hidden states, which the loop feeds to the next layer. Recipe of
docs/methods.md (pruning inside the LLM), without eager attention and without `output_attentions`:

1. forward hooks on layer K−1's `q_proj` / `k_proj` keep their outputs during the prefill (a
   reference, no extra matmul); FastV `query="last"` keeps only the last row of q;
2. a forward pre-hook on layer K (prefill: the first call with more than one position) rotates
   them with the cos/sin the layer receives (the same positions layer K−1 used), builds the
   `LLMLayerState`, asks the selector for the kept audio positions, and replaces the layer's
   hidden states, (cos, sin), position ids and mask by their rows/columns at
   `keep = text ∪ kept audio` (ascending): layers ≥ K run on the shorter sequence with the
   kept tokens' **original** positions (FastV/DART semantics);
3. pre-hooks on layers > K substitute the stored pruned keywords during the prefill; during
   decoding every hooked layer (≥ K) slices a materialised mask's key columns to
   keep ∪ new positions, because its KV cache holds only those.
Layers < K cache all S positions, so `generate`'s next position S stays right (original
positions). Batch size 1 only, like every original (per-row keep sets break rectangular
batches): the adapter refuses larger batches.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.models.qwen2.modeling_qwen2 import rotate_half

from audioprune.selectors.llm import AudioGroup, LLMLayerState, LLMSelector


def rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: [1, H, S, d], cos/sin: [1, S, d] -> x rotated as Qwen2's apply_rotary_pos_emb does."""
    return x * cos.unsqueeze(1) + rotate_half(x) * sin.unsqueeze(1)


def audio_groups(
    input_ids: torch.Tensor, audio_token_id: int, budget: list[tuple[int, int]]
) -> tuple[list[AudioGroup], torch.Tensor]:
    """The budget groups of one prompt row, in prompt positions.

    input_ids: [S] long; budget: (tokens, keep) per group, in order along the audio run
    (one 30 s window each under budget=per_window). Returns the groups and the [T'] positions
    after the audio run (DART's text pivots).
    """
    slots = (input_ids == audio_token_id).nonzero().flatten()
    total = sum(n for n, _ in budget)
    if slots.numel() != total or (slots.numel() and int(slots[-1] - slots[0]) + 1 != total):
        raise ValueError(
            f"in-LLM pruning: the prompt has {slots.numel()} audio placeholders, expected one "
            f"contiguous run of {total} (the clip's budget groups {budget})"
        )
    groups, start = [], int(slots[0])
    for size, keep in budget:
        if not 0 <= keep <= size:
            raise ValueError(f"in-LLM pruning: budget keep={keep} outside [0, {size}]")
        groups.append(AudioGroup(start, size, keep))
        start += size
    return groups, torch.arange(start, input_ids.shape[0])


class LLMPruning:
    """Context manager: hooks on `decoder` (a Qwen2Model) for one generate call of one row.

    After the prefill: `keep` [S'] long (prompt positions kept in layers ≥ K), `seq_len` S,
    `kept_audio` [Σ keep] long (kept audio prompt positions).
    """

    def __init__(
        self,
        decoder: nn.Module,
        selector: LLMSelector,
        groups: list[AudioGroup],
        text_after: torch.Tensor,
    ):
        layers = decoder.layers
        k = selector.layer
        if not 1 <= k < len(layers):
            raise ValueError(
                f"selector {selector.name!r}: layer={k} must be in [1, {len(layers) - 1}] "
                f"for an LLM with {len(layers)} decoder layers"
            )
        attn = layers[k - 1].self_attn
        self.decoder, self.selector, self.groups = decoder, selector, groups
        self.text_after = text_after
        self.scaling = float(attn.scaling)
        self.head_dim = int(attn.head_dim)
        self.keep: torch.Tensor | None = None
        self.kept_audio: torch.Tensor | None = None
        self.seq_len = 0
        self._q: torch.Tensor | None = None
        self._k: torch.Tensor | None = None
        self._pruned: dict | None = None
        needs = selector.llm_needs
        self._hooks = [
            (attn.k_proj, "forward", self._stash_k),
            (layers[k], "pre", self._prune_or_slice),
            *[(layer, "pre", self._substitute) for layer in layers[k + 1 :]],
        ]
        if needs & {"queries_last", "queries_all"}:
            self._last_only = "queries_all" not in needs
            self._hooks.append((attn.q_proj, "forward", self._stash_q))
        self._handles: list = []

    def __enter__(self) -> LLMPruning:
        for module, kind, fn in self._hooks:
            if kind == "forward":
                self._handles.append(module.register_forward_hook(fn))
            else:
                self._handles.append(module.register_forward_pre_hook(fn, with_kwargs=True))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._q = self._k = None

    # ---------------------------------------------------------------- hooks

    def _prefilling(self, length: int) -> bool:
        return self.keep is None and length > 1

    def _stash_q(self, module, args, output) -> None:
        if self._prefilling(output.shape[1]):
            self._q = output[:, -1:] if self._last_only else output

    def _stash_k(self, module, args, output) -> None:
        if self._prefilling(output.shape[1]):
            self._k = output

    def _state(self, hidden: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> LLMLayerState:
        """Layer K−1's post-RoPE q/k and the normed output of layer K−1 (= layer K's input)."""
        if hidden.shape[0] != 1:
            raise ValueError(
                f"in-LLM pruning runs one row per generate call, got a batch of {hidden.shape[0]}"
            )
        seq = hidden.shape[1]
        keys = self._k.view(1, seq, -1, self.head_dim).transpose(1, 2)
        state = LLMLayerState(
            keys=rope(keys, cos, sin)[0], scaling=self.scaling, text_after=self.text_after
        )
        if self._q is not None:
            rows = self._q.shape[1]
            queries = self._q.view(1, rows, -1, self.head_dim).transpose(1, 2)
            state.queries = rope(queries, cos[:, seq - rows :], sin[:, seq - rows :])[0]
        if "hidden" in self.selector.llm_needs:
            state.hidden = self.decoder.norm(hidden)[0]
        return state

    @torch.no_grad()
    def _prune_or_slice(self, module, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        if not self._prefilling(hidden.shape[1]):
            return self._slice_decode_mask(args, kwargs)
        cos, sin = kwargs["position_embeddings"]
        state = self._state(hidden, cos, sin)
        kept_audio = self.selector.select_llm(state, self.groups).cpu()
        expected = sum(g.keep for g in self.groups)
        if kept_audio.numel() != expected:
            raise RuntimeError(
                f"selector {self.selector.name!r} kept {kept_audio.numel()} audio tokens, "
                f"expected exactly {expected}"
            )
        self.seq_len = seq = hidden.shape[1]
        is_audio = torch.zeros(seq, dtype=torch.bool)
        for g in self.groups:
            is_audio[g.start : g.start + g.size] = True
        mask_keep = ~is_audio
        mask_keep[kept_audio] = True
        self.keep = mask_keep.nonzero().flatten()
        self.kept_audio = kept_audio
        self._q = self._k = None
        keep = self.keep.to(hidden.device)
        pruned = {"position_embeddings": (cos[:, keep], sin[:, keep])}
        if kwargs.get("position_ids") is not None:
            pruned["position_ids"] = kwargs["position_ids"][:, keep]
        mask = kwargs.get("attention_mask")
        if isinstance(mask, torch.Tensor):
            pruned["attention_mask"] = mask[:, :, keep][:, :, :, keep]
        self._pruned = pruned
        hidden = hidden[:, keep]
        if args:
            return (hidden, *args[1:]), {**kwargs, **pruned}
        return args, {**kwargs, **pruned, "hidden_states": hidden}

    def _substitute(self, module, args, kwargs):
        if self._pruned is None:  # a forward before the prefill (never under generate)
            return None
        hidden = args[0] if args else kwargs["hidden_states"]
        if hidden.shape[1] > 1 and hidden.shape[1] == self.keep.numel():
            return args, {**kwargs, **self._pruned}
        return self._slice_decode_mask(args, kwargs)

    def _slice_decode_mask(self, args, kwargs):
        """Decode step: a materialised mask spans S + t keys; this layer caches keep + t."""
        mask = kwargs.get("attention_mask")
        if not isinstance(mask, torch.Tensor) or self.keep is None:
            return None
        if mask.shape[-1] >= self.seq_len:
            cols = torch.cat([self.keep, torch.arange(self.seq_len, mask.shape[-1])]).to(
                mask.device
            )
            return args, {**kwargs, "attention_mask": mask[..., cols]}
        return None

    # ---------------------------------------------------------------- record

    def record(self, window_sizes: list[int]) -> dict:
        """What the LLM kept, per 30 s window, for the prediction record.

        kept_indices are window-relative, as for pre-LLM selectors; llm_prefill_lengths
        gives the sequence length each decoder layer's prefill ran on.
        """
        if self.keep is None:
            raise RuntimeError("in-LLM pruning: no prefill ran under the hooks")
        start = self.groups[0].start
        rel = self.kept_audio - start
        bounds = torch.tensor([0, *torch.tensor(window_sizes).cumsum(0).tolist()])
        per_window = [rel[(rel >= a) & (rel < b)] - a for a, b in zip(bounds, bounds[1:])]
        layers = len(self.decoder.layers)
        k = self.selector.layer
        return {
            "kept_tokens": int(rel.numel()),
            "kept_per_window": [int(p.numel()) for p in per_window],
            "kept_indices": [p.tolist() for p in per_window],
            "llm_prefill_lengths": [self.seq_len] * k + [int(self.keep.numel())] * (layers - k),
        }


def session(
    decoder: nn.Module,
    selector: LLMSelector,
    inputs: dict[str, torch.Tensor],
    audio,
    audio_token_id: int,
) -> LLMPruning:
    """The hooks for one generate call of one row: `inputs` as the adapter feeds `generate`
    (input_ids [1, S]), `audio` the row's PrunedAudio (every token, `llm_budget` set)."""
    if audio.llm_budget is None:
        raise ValueError(
            f"in-LLM selector {selector.name!r}: the clip has no llm_budget; prune it with "
            "audioprune.pruning.prune_clip (which keeps every token and records the budget)"
        )
    if "attention_mask" in inputs and not bool(inputs["attention_mask"].all()):
        raise ValueError("in-LLM pruning expects an unpadded row (batch size 1)")
    groups, text_after = audio_groups(
        inputs["input_ids"][0].cpu(), audio_token_id, audio.llm_budget
    )
    return LLMPruning(decoder, selector, groups, text_after)
