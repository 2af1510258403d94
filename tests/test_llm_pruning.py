"""In-LLM pruning (FastV, DART): the notes' worked examples, the exact-K quota rule, and on both
tiny models the dropping seam against the mask oracle (pruned audio keys at −inf in layers ≥ K,
prefill logits and every decode step), the sequence length each decoder layer really sees,
R = 0 against the stock model, batch refusal."""

from __future__ import annotations

import pytest
import torch
from _tiny import FirstCall, synthetic_clip

from audioprune.models import llm_pruning
from audioprune.models.audio_flamingo3 import AudioFlamingo3Adapter
from audioprune.models.qwen2_audio import Qwen2AudioAdapter
from audioprune.models.tiny import tiny_audio_flamingo3, tiny_qwen2_audio
from audioprune.pruning import prune_clip
from audioprune.selectors import build_selector
from audioprune.selectors.llm import (
    AudioGroup,
    LLMLayerState,
    dart_quotas,
    dart_select,
    last_row_attention,
    topk_per_group,
)

TEXT_LAYERS = 4
NEW_TOKENS = 4

# ---------------------------------------------------------------- pure math


def test_fastv_worked_example_keeps_6_and_8_at_original_positions():
    scores = torch.zeros(12)
    scores[5:9] = torch.tensor([0.02, 0.10, 0.01, 0.05])
    scores[:5] = scores[9:] = 9.0  # text scores must not matter
    assert topk_per_group(scores, [AudioGroup(5, 4, 2)]).tolist() == [6, 8]


def test_last_row_attention_matches_a_plain_softmax_with_gqa():
    torch.manual_seed(0)
    q, k = torch.randn(4, 1, 8), torch.randn(2, 10, 8)  # 4 query heads over 2 KV heads
    expected = torch.stack([((q[h, 0] @ k[h // 2].T) * 0.35).softmax(-1) for h in range(4)]).mean(0)
    torch.testing.assert_close(last_row_attention(q, k, 0.35), expected)


def test_fastv_query_all_is_causal_received_attention():
    torch.manual_seed(1)
    q, k = torch.randn(2, 6, 4), torch.randn(1, 6, 4)
    logits = torch.einsum("hqd,sd->hqs", q, k[0]) * 0.5
    logits = logits.masked_fill(torch.ones(6, 6).triu(1).bool(), float("-inf"))
    expected = logits.softmax(-1).sum(1).mean(0)
    state = LLMLayerState(keys=k, scaling=0.5, queries=q)
    got = build_selector("fastv", query="all").scores(state)
    torch.testing.assert_close(got, expected)


def dart_example_state():
    """methods.md §2: audio 10–15, text pivot 20, p_i = p_t = 1, q = 2."""
    norms = torch.ones(22)
    norms[12], norms[20] = 5.0, 5.0
    hidden = torch.zeros(22, 3)
    hidden[:, 2] = 1.0
    hidden[12] = torch.tensor([1.0, 0.0, 0.0])
    hidden[20] = torch.tensor([0.0, 1.0, 0.0])
    hidden[10] = torch.tensor([-1.0, 0.0, 0.0])
    hidden[15] = torch.tensor([-1.0, 0.1, 0.0])
    hidden[11] = torch.tensor([1.0, -1.0, 0.0])
    hidden[13] = torch.tensor([1.0, 1.0, 0.0])
    hidden[14] = torch.tensor([1.0, -0.5, 0.0])
    return norms, hidden


def test_dart_worked_example_keeps_10_11_12_14_15():
    norms, hidden = dart_example_state()
    kept = dart_select(norms, hidden, AudioGroup(10, 6, 5), torch.arange(16, 22), 1, 1)
    assert kept.tolist() == [10, 11, 12, 14, 15]


def test_dart_quota_rule_spends_exactly_k():
    assert dart_quotas(128, 4, 8) == [16, 16, 16, 16, 15, 15, 15, 15]
    assert 4 + sum(dart_quotas(132, 4, 8)) == 132
    norms, hidden = torch.rand(40), torch.randn(40, 5)
    for keep in range(1, 21):
        kept = dart_select(norms, hidden, AudioGroup(10, 20, keep), torch.arange(30, 40), 4, 4)
        assert kept.numel() == keep and kept.unique().numel() == keep
        assert torch.equal(kept, kept.sort().values) and 10 <= kept.min() and kept.max() < 30
    # No text after the audio and no audio pivots asked for: one audio pivot still steers.
    kept = dart_select(norms, hidden, AudioGroup(10, 20, 7), torch.zeros(0).long(), 0, 4)
    assert kept.numel() == 7
    # Audio pivots are clamped to the budget: K = 2 < 4 pivots keeps the 2 largest key norms.
    kept = dart_select(norms, hidden, AudioGroup(10, 20, 2), torch.arange(30, 40), 4, 4)
    assert kept.tolist() == sorted((10 + norms[10:30].argsort(descending=True)[:2]).tolist())


def test_llm_selectors_validate_and_refuse_pre_llm_use():
    with pytest.raises(ValueError, match="layer must be an int >= 1"):
        build_selector("fastv", layer=0)
    with pytest.raises(ValueError, match="query must be 'last' or 'all'"):
        build_selector("fastv", query="first")
    from audioprune.selectors import TokenWindow

    with pytest.raises(TypeError, match="runs inside the LLM"):
        build_selector("dart").select_window(TokenWindow(scores=torch.rand(5)), 2)


# ---------------------------------------------------------------- on the tiny models

MODELS = {
    "qwen2_audio": (tiny_qwen2_audio, Qwen2AudioAdapter, 10.0),
    "audio_flamingo_3": (tiny_audio_flamingo3, AudioFlamingo3Adapter, 35.0),
}


@pytest.fixture(scope="module", params=list(MODELS))
def setup(request):
    """(adapter with a 4-layer LLM, encoded clip); AF3's clip spans two 30 s windows."""
    build, cls, seconds = MODELS[request.param]
    adapter = cls.from_model(*build(text_layers=TEXT_LAYERS), label=f"tiny-{request.param}")
    return adapter, adapter.encode([synthetic_clip(seconds, seed=3)])[0]


class MaskOracle:
    """FastV's mask implementation: every token stays, pruned audio keys are masked for every
    query in layers ≥ K (prefill and decode), via the mask each layer receives."""

    def __init__(self, decoder, layer: int, keep: torch.Tensor, seq_len: int):
        self.allowed = torch.zeros(seq_len, dtype=torch.bool)
        self.allowed[keep] = True
        self.handles = [
            d.register_forward_pre_hook(self.hook, with_kwargs=True) for d in decoder.layers[layer:]
        ]

    def hook(self, module, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        q = hidden.shape[1]
        total = kwargs["position_embeddings"][0].shape[1] if q > 1 else None
        if q > 1:  # prefill: causal and only kept keys
            mask = torch.ones(total, total, dtype=torch.bool).tril() & self.allowed[None, :]
        else:  # decode: the new token sees kept prompt keys and every generated one
            past = int(kwargs["position_ids"].max())
            mask = torch.cat([self.allowed, torch.ones(past + 1 - self.allowed.numel()).bool()])
            mask = mask[None, :]
        return args, {**kwargs, "attention_mask": mask[None, None].to(hidden.device)}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()


@pytest.mark.parametrize("name,params", [("fastv", {}), ("fastv", {"query": "all"}), ("dart", {})])
def test_dropping_equals_the_mask_oracle_and_layers_see_the_short_sequence(setup, name, params):
    adapter, encoded = setup
    selector = build_selector(name, layer=2, **params)
    audio = prune_clip(encoded, selector, 0.4, "clip")
    inputs = adapter.prepare_inputs(["Describe the audio."], [audio])
    decoder = adapter.model.model.language_model
    seq = inputs["input_ids"].shape[1]
    seen = [FirstCall(layer.self_attn, kwargs=True) for layer in decoder.layers]
    try:
        session = llm_pruning.session(decoder, selector, inputs, audio, adapter.audio_token_id)
        with torch.inference_mode(), session:
            dropped = adapter.model(**inputs).logits[0]
    finally:
        for s in seen:
            s.handle.remove()
    keep = session.keep
    kept_audio = sum(k for _, k in audio.llm_budget)
    assert session.kept_audio.numel() == kept_audio < sum(audio.window_sizes)
    assert keep.numel() == seq - sum(audio.window_sizes) + kept_audio
    # Layers < K attend over the whole prompt, layers ≥ K over the kept positions only.
    lengths = [s.values[0]["hidden_states"].shape[1] for s in seen]
    assert lengths == [seq, seq, keep.numel(), keep.numel()]
    # The kept tokens keep their original RoPE positions in layers ≥ K.
    cos_seen = seen[2].values[0]["position_embeddings"][0][0]
    cos_full = seen[0].values[0]["position_embeddings"][0][0]
    torch.testing.assert_close(cos_seen, cos_full[keep])
    with torch.inference_mode(), MaskOracle(decoder, 2, keep, seq):
        oracle = adapter.model(**inputs).logits[0]
    positions = keep if oracle.shape[0] == seq else torch.arange(-dropped.shape[0], 0)
    torch.testing.assert_close(dropped, oracle[positions], atol=2e-5, rtol=1e-4)


def test_decoding_with_the_pruned_cache_equals_the_mask_oracle(setup):
    adapter, encoded = setup
    selector = build_selector("fastv", layer=1)
    audio = prune_clip(encoded, selector, 0.3, "clip")
    inputs = adapter.prepare_inputs(["What do you hear?"], [audio])
    decoder = adapter.model.model.language_model
    kwargs = dict(
        max_new_tokens=NEW_TOKENS, do_sample=False, output_scores=True, return_dict_in_generate=True
    )
    session = llm_pruning.session(decoder, selector, inputs, audio, adapter.audio_token_id)
    with torch.inference_mode(), session:
        dropped = adapter.model.generate(**inputs, **kwargs)
    # Layers < K hold the whole prompt in their cache, layers ≥ K only the kept positions.
    cache = dropped.past_key_values
    seq = inputs["input_ids"].shape[1]
    grown = dropped.sequences.shape[1] - seq - 1
    assert cache.layers[0].keys.shape[2] == seq + grown
    assert cache.layers[1].keys.shape[2] == session.keep.numel() + grown
    with torch.inference_mode(), MaskOracle(decoder, 1, session.keep, seq):
        oracle = adapter.model.generate(**inputs, **kwargs)
    assert dropped.sequences.tolist() == oracle.sequences.tolist()
    for a, b in zip(dropped.scores, oracle.scores):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)
    # Eager attention materialises a full-length mask at every decode step: the seam slices
    # its key columns to what layers ≥ K cache, and the answer does not change.
    adapter.model.set_attn_implementation("eager")
    try:
        session = llm_pruning.session(decoder, selector, inputs, audio, adapter.audio_token_id)
        with torch.inference_mode(), session:
            eager = adapter.model.generate(**inputs, **kwargs)
    finally:
        adapter.model.set_attn_implementation("sdpa")
    assert eager.sequences.tolist() == dropped.sequences.tolist()
    for a, b in zip(eager.scores, dropped.scores):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["fastv", "dart"])
def test_nothing_dropped_generates_the_stock_ids(setup, name):
    adapter, encoded = setup
    selector = build_selector(name, layer=2)
    audio = prune_clip(encoded, selector, 1.0, "clip")
    gens, timing = adapter.generate(
        ["Describe the audio."], [audio], NEW_TOKENS, llm_pruner=selector
    )
    stock = prune_clip(encoded, build_selector("none"), 1.0, "clip")
    reference, ref_timing = adapter.generate(["Describe the audio."], [stock], NEW_TOKENS)
    assert gens[0].token_ids == reference[0].token_ids
    assert gens[0].extra["kept_tokens"] == sum(audio.window_sizes)
    assert timing.extra["prefill_flops"] == ref_timing.extra["prefill_flops"]


def test_generate_records_the_llm_side_selection_and_partial_flops(setup):
    adapter, encoded = setup
    selector = build_selector("fastv", layer=2)
    audio = prune_clip(encoded, selector, 0.25, "clip")
    gens, timing = adapter.generate(["Describe the audio."], [audio], 2, llm_pruner=selector)
    extra = gens[0].extra
    assert extra["kept_per_window"] == [k for _, k in audio.llm_budget]
    for idx, size in zip(extra["kept_indices"], audio.window_sizes):
        assert idx == sorted(set(idx)) and 0 <= min(idx) and max(idx) < size
    seq, short = extra["llm_prefill_lengths"][0], extra["llm_prefill_lengths"][-1]
    assert extra["llm_prefill_lengths"] == [seq, seq, short, short]
    full = adapter.prefill_flops(seq)
    pre_llm = adapter.prefill_flops(short)
    assert pre_llm < timing.extra["prefill_flops"][0] < full


def test_batches_are_refused_with_a_clear_error(setup):
    adapter, encoded = setup
    selector = build_selector("fastv", layer=1)
    audio = prune_clip(encoded, selector, 0.5, "clip")
    with pytest.raises(ValueError, match=r"batch of 2 \(set batch_size=1\)"):
        adapter.generate(["a", "b"], [audio, audio], 2, llm_pruner=selector)
    with pytest.raises(ValueError, match="layer=4 must be in"):
        adapter.generate(["a"], [audio], 2, llm_pruner=build_selector("fastv", layer=4))


# ---------------------------------------------------------------- cost accounting


def test_per_layer_prefill_flops_give_the_notes_rho_in():
    """methods.md §0.1: Qwen2-Audio, T=37, N=750, keep 50 % (N'=412), K_L=2 -> ρ_in ≈ 0.55
    (against ρ_pre ≈ 0.52 for a pre-LLM selector)."""
    from types import SimpleNamespace

    from audioprune import flops

    qwen2_audio_llm = SimpleNamespace(
        hidden_size=4096,
        num_attention_heads=32,
        num_key_value_heads=32,
        num_hidden_layers=32,
        intermediate_size=11008,
        vocab_size=156032,
    )
    full, short = 787, 37 + 375
    per_layer = flops.llm_prefill_flops_per_layer(qwen2_audio_llm, [full] * 2 + [short] * 30, 0)
    layers_full = flops.llm_prefill_breakdown(qwen2_audio_llm, full, 0)["layers"]
    layers_short = flops.llm_prefill_breakdown(qwen2_audio_llm, short, 0)["layers"]
    assert per_layer == pytest.approx((2 * layers_full + 30 * layers_short) / 32, rel=1e-9)
    assert per_layer / layers_full == pytest.approx(0.55, abs=0.01)
    assert layers_short / layers_full == pytest.approx(0.52, abs=0.01)
    # The LM head is priced at the positions asked for, on top of the decoder layers.
    assert flops.llm_prefill_flops_per_layer(
        qwen2_audio_llm, [full] * 2 + [short] * 30, short
    ) - per_layer == flops.linear_flops(short, 4096, 156032)
    with pytest.raises(ValueError, match="3 lengths for 32 decoder layers"):
        flops.llm_prefill_flops_per_layer(qwen2_audio_llm, [1, 2, 3], 0)
