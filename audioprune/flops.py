"""Analytic FLOPs of the audio path and the LLM prefill, from a transformers config (pure math).

Convention: FLOPs = 2 × multiply-adds of the matrix products (linear layers, convolutions,
attention QKᵀ and AV). Bias adds, norms, activations, RoPE, residual adds, pooling and the
embedding lookup are elementwise or gathers, together well under 1 % of the total, and are not
counted; the one exception is the scoring softmax (`scoring_flops`), counted at
`SOFTMAX_FLOPS_PER_SCORE` because it is what the scoring hook adds beyond a matrix product.
Score-only selection (top-k, VisionZip's similarities) and the multi-modal projector are not
counted here: both are per-kept-token and below 0.3 % of a prefill (`linear_flops` prices a
projector layer). The field's merging and diversity methods report their similarity, DPP and
merge products through `Selector.selection_flops` (formulas at the end of this module).

Reference values (docs/models-audio-llms.md, checked in tests/test_real_configs.py):
- Whisper-large-v3-shaped encoder, one 30 s window (1500 frames): 2.274 TFLOP;
  the scoring hook adds 5.99 GFLOP (0.26 %; 15.6 GFLOP when it recomputed q and k).
- Qwen2-Audio-7B LLM: 12.95 GFLOP per token in the decoder layers, 1.28 GFLOP per token
  for the LM head, which Qwen2-Audio applies at every prompt position (pitfall P12);
  787 prompt tokens: 11.36 TFLOP (causal) / 11.52 TFLOP (full square); 225: 3.22 TFLOP.
- AF3 LLM (Qwen2.5-7B, GQA 28/4): 13.05 GFLOP per token in the decoder layers, LM head at the
  last position only (1.09 GFLOP once); 787 prompt tokens: 10.40 TFLOP (causal).

Functions take the config objects of transformers (`Qwen2Config`, `Qwen2AudioEncoderConfig`,
`AudioFlamingo3EncoderConfig`) or anything with the same attribute names; they never load a model.
"""

from __future__ import annotations

from typing import Any

# max, subtract, exp, sum, divide per attention score: a convention (softmax is not a
# multiply-add), stated so the scoring overhead is complete; it is 1.5 % of that overhead.
SOFTMAX_FLOPS_PER_SCORE = 5
CONV_KERNEL = 3  # both Whisper stem convolutions: kernel 3, padding 1 (conv2 with stride 2)


def _need(config: Any, *names: str) -> list[int]:
    values = []
    for name in names:
        value = getattr(config, name, None)
        if not isinstance(value, int) or value <= 0:
            raise ValueError(
                f"flops: {type(config).__name__}.{name} must be a positive int, got {value!r}"
            )
        values.append(value)
    return values


def _head_dim(config: Any) -> int:
    hidden, heads = _need(config, "hidden_size", "num_attention_heads")
    head_dim = getattr(config, "head_dim", None)
    return int(head_dim) if head_dim else hidden // heads


def linear_flops(tokens: int, d_in: int, d_out: int) -> int:
    """A d_in → d_out linear layer applied to `tokens` rows: 2 · tokens · d_in · d_out."""
    return 2 * tokens * d_in * d_out


def attention_pairs(seq_len: int, causal: bool = True) -> int:
    """Query-key pairs of self-attention over seq_len tokens.

    causal=True: L(L+1)/2, the pairs a causal prefix needs (what a causal kernel computes);
    causal=False: the full square L² (what a kernel with a materialised mask computes, and what
    torch's FlopCounterMode counts for sdpa).
    """
    return seq_len * (seq_len + 1) // 2 if causal else seq_len * seq_len


def llm_prefill_breakdown(
    text_config: Any, seq_len: int, logits_positions: int, causal: bool = True
) -> dict[str, int]:
    """FLOPs of one row's prefill forward in a Qwen2-style decoder, by part.

    With L = seq_len, P = logits_positions, h = hidden_size, n_q / n_kv query / key-value
    heads of size d (head_dim, default h / n_q), f = intermediate_size, V = vocab_size and
    N = num_hidden_layers:
      projections = 2 · N · L · (h·n_q·d + 2·h·n_kv·d + n_q·d·h)   q, k, v (GQA), o
      attention   = 2 · N · pairs(L) · 2 · n_q · d                  QKᵀ and AV per query head
      mlp         = 2 · N · L · 3 · h · f                           gate, up, down
      lm_head     = 2 · P · h · V
    pairs(L) = L(L+1)/2 (causal=True, default) or L² (causal=False), see `attention_pairs`.
    Returns {"projections", "attention", "mlp", "lm_head", "layers" (first three), "total"}.
    """
    if seq_len < 0:
        raise ValueError(f"llm_prefill_flops: seq_len must be >= 0, got {seq_len}")
    if not 0 <= logits_positions <= seq_len:
        raise ValueError(
            f"llm_prefill_flops: logits_positions must be in [0, seq_len={seq_len}], "
            f"got {logits_positions}"
        )
    if getattr(text_config, "use_sliding_window", False):
        raise ValueError(
            f"llm_prefill_flops: {type(text_config).__name__}.use_sliding_window is true; "
            "only full attention in every layer is modelled"
        )
    hidden, heads, layers, ffn, vocab = _need(
        text_config,
        "hidden_size",
        "num_attention_heads",
        "num_hidden_layers",
        "intermediate_size",
        "vocab_size",
    )
    kv_heads = getattr(text_config, "num_key_value_heads", None) or heads
    head_dim = _head_dim(text_config)
    q_width, kv_width = heads * head_dim, kv_heads * head_dim
    per_token = hidden * q_width + 2 * hidden * kv_width + q_width * hidden
    parts = {
        "projections": 2 * layers * seq_len * per_token,
        "attention": 2 * layers * attention_pairs(seq_len, causal) * 2 * q_width,
        "mlp": 2 * layers * seq_len * 3 * hidden * ffn,
        "lm_head": linear_flops(logits_positions, hidden, vocab),
    }
    parts["layers"] = parts["projections"] + parts["attention"] + parts["mlp"]
    parts["total"] = parts["layers"] + parts["lm_head"]
    return parts


def llm_prefill_flops(
    text_config: Any, seq_len: int, logits_positions: int, causal: bool = True
) -> int:
    """Total FLOPs of one row's LLM prefill: decoder layers over seq_len tokens + LM head.

    logits_positions: prompt positions the LM head is applied to — seq_len for Qwen2-Audio
    (its forward has no `logits_to_keep`, pitfall P12), 1 for AF3 (generate passes
    logits_to_keep=1). Formula in `llm_prefill_breakdown`.
    """
    return llm_prefill_breakdown(text_config, seq_len, logits_positions, causal)["total"]


def llm_prefill_flops_per_layer(
    text_config: Any, lengths: list[int], logits_positions: int, causal: bool = True
) -> int:
    """Prefill FLOPs when decoder layer ℓ runs on lengths[ℓ] tokens (in-LLM pruning).

    Σ_ℓ f(n_ℓ) + LM head, with f(n) = one layer's share of `llm_prefill_breakdown` at n tokens.
    FastV / DART dropping at layer K: n_ℓ = S for ℓ < K and S' after, so the decoder part is
    ρ_in · L · f(S) with ρ_in = [K·f(S) + (L−K)·f(S')] / [L·f(S)] (docs/methods.md,
    "Cost"); a schedule that shrinks the sequence at several layers is the same sum. The hooks'
    own scoring (one query row or one causal map at layer K−1) is not counted: < 0.5 % of a
    layer for the last-row score.
    """
    layers = _need(text_config, "num_hidden_layers")[0]
    if len(lengths) != layers:
        raise ValueError(
            f"llm_prefill_flops_per_layer: {len(lengths)} lengths for {layers} decoder layers"
        )
    decoder = 0
    for n in sorted(set(lengths)):
        per_layer = llm_prefill_breakdown(text_config, n, 0, causal)["layers"] // layers
        decoder += per_layer * lengths.count(n)
    hidden, vocab = _need(text_config, "hidden_size", "vocab_size")
    return decoder + linear_flops(logits_positions, hidden, vocab)


def llm_flops_per_token(text_config: Any, lm_head: bool = False) -> int:
    """Sequence-length-independent FLOPs per token: decoder-layer matmuls (+ LM head if asked).

    2 · N · (h·n_q·d + 2·h·n_kv·d + n_q·d·h + 3·h·f) [+ 2·h·V]: the slope of the prefill cost in
    the prompt length, attention scores aside.
    """
    one = llm_prefill_breakdown(text_config, 1, 1, causal=True)
    per_token = one["projections"] + one["mlp"]
    return per_token + (one["lm_head"] if lm_head else 0)


def encoder_breakdown(audio_config: Any, frames: int = 1500) -> dict[str, int]:
    """FLOPs of one Whisper-style encoder window, by part.

    frames T = encoder positions (1500 per 30 s; the mel input has 2T frames), m = num_mel_bins,
    D = hidden_size (d_model), F = intermediate_size (encoder_ffn_dim), N layers:
      conv   = 2 · (2T · m · D · 3 + T · D · D · 3)      conv1 (stride 1), conv2 (stride 2)
      layers = 2 · N · (4 · T · D² + 2 · T² · D + 2 · T · D · F)
               q, k, v, out projections; QKᵀ and AV over all T² pairs (bidirectional); fc1, fc2
    Every window costs the same: audio is padded to 30 s and padded frames are computed too.
    Returns {"conv", "layers", "total"}.
    """
    if frames < 1:
        raise ValueError(f"encoder_flops: frames must be >= 1, got {frames}")
    mels, hidden, layers, ffn = _need(
        audio_config, "num_mel_bins", "hidden_size", "num_hidden_layers", "intermediate_size"
    )
    conv = 2 * (2 * frames * mels * hidden * CONV_KERNEL + frames * hidden * hidden * CONV_KERNEL)
    per_layer = 4 * frames * hidden**2 + 2 * frames**2 * hidden + 2 * frames * hidden * ffn
    return {"conv": conv, "layers": 2 * layers * per_layer, "total": conv + 2 * layers * per_layer}


def encoder_flops(audio_config: Any, frames: int = 1500) -> int:
    """Total FLOPs of one encoder window of `frames` positions; formula in `encoder_breakdown`."""
    return encoder_breakdown(audio_config, frames)["total"]


def scoring_flops(
    audio_config: Any, frames: int = 1500, head_max: bool = False, recompute_qk: bool = False
) -> int:
    """What the LastLayerScorer hook adds to one encoder window of `frames` valid frames.

    It reads q and k from the attention module's own projections and computes the attention
    map once over the valid frames, in fp32 (padded frames take no part, so a short clip costs
    its own n², and the full-window price below is an upper bound for it):
      2 · T² · D                QKᵀ over all heads (H · T² · D/H multiply-adds)
      + 5 · H · T²              softmax (SOFTMAX_FLOPS_PER_SCORE per score)
      + H · T²                  head_max=True: the element-wise max over heads (1 per score)
      + 2 · (2 · T · D²)        recompute_qk=True: q_proj, k_proj again (the hook before issue
                                11, or a module whose projections cannot be read)
    Per-head scores (head_scores) are the sums the head mean is taken over, and the self-block
    statistic a gather: neither changes the count; sums over queries, head means and the
    2-frame pooling are elementwise and not counted.
    """
    hidden, heads = _need(audio_config, "hidden_size", "num_attention_heads")
    scores = 2 * frames * frames * hidden + SOFTMAX_FLOPS_PER_SCORE * heads * frames * frames
    if head_max:
        scores += heads * frames * frames
    if recompute_qk:
        scores += 2 * 2 * frames * hidden * hidden
    return scores


def audio_path_flops(audio_config: Any, windows: int, frames: int = 1500) -> int:
    """Encoder + scoring hook for `windows` 30 s windows of `frames` positions each."""
    if windows < 0:
        raise ValueError(f"audio_path_flops: windows must be >= 0, got {windows}")
    return windows * (encoder_flops(audio_config, frames) + scoring_flops(audio_config, frames))


# ---------------------------------------------------------------------------------------------
# Selection cost of the field's pre-LLM methods (docs/methods.md). Counted: similarity
# products, DPP updates and the final weighted merge, per window of n tokens with k kept and
# feature width d. Not counted (elementwise or sorting): normalisation, argmax/top-k, re-averaging
# a merged token's metric between rounds. Projecting all n tokens for the methods that read the
# LLM input space (`linear_flops(n, D_audio, D_llm)` for a one-layer projector) is also left
# out: at most 0.1 % of a prefill. Each selector reports its total via `selection_flops`.


def gram_flops(n: int, d: int) -> int:
    """All pairwise dot products of n rows of width d (a cosine matrix): 2 · n² · d."""
    return 2 * n * n * d


def greedy_dpp_flops(n: int, k: int) -> int:
    """Greedy DPP MAP over n items for k picks: step t computes c_jᵀ·C (t × n), so
    Σ_{t<k} 2 · t · n = k · (k − 1) · n (the kernel itself is priced by `gram_flops`)."""
    return k * (k - 1) * n


def merge_flops(n: int, d: int) -> int:
    """A weighted merge of n rows of width d into groups (w_i · x_i, summed): 2 · n · d."""
    return 2 * n * d


def bipartite_flops(t: int, d: int) -> int:
    """One bipartite matching round over t tokens: A (⌈t/2⌉) × B (⌊t/2⌋) cosines, 2·|A|·|B|·d."""
    return 2 * ((t + 1) // 2) * (t // 2) * d


def tome_round_sizes(n: int, k: int) -> list[int]:
    """Token counts T_t at the start of each one-shot ToMe round (r_t = min(T_t − k, ⌊T_t/2⌋))."""
    sizes, t = [], n
    while min(t - k, t // 2) > 0:
        sizes.append(t)
        t -= min(t - k, t // 2)
    return sizes


def tome_flops(n: int, k: int, d_metric: int, d_merge: int) -> int:
    """One-shot ToMe down to k: Σ_rounds bipartite_flops(T_t, d_metric) + merge_flops(n, d_merge)."""
    matching = sum(bipartite_flops(t, d_metric) for t in tome_round_sizes(n, k))
    return matching + (merge_flops(n, d_merge) if k < n else 0)


def vispruner_round_sizes(residual: int, keep: int, per_round: int) -> list[int]:
    """Residual list lengths R_t at the start of each VisPruner de-duplication round."""
    sizes, r = [], residual
    while keep > 0 and min(per_round, r - keep) > 0:
        sizes.append(r)
        r -= min(per_round, r - keep, (r + 1) // 2)
    return sizes
