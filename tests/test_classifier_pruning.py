"""The in-encoder pruning seam (AST build): equal to an explicit-attention reference, identical to
the stock model at r = 1, sdpa only, CLS/DIST always kept, gradient checkpointing reuses choices."""

from __future__ import annotations

import pytest
import torch
from _classifier import explicit_forward, random_features, tiny_pair

from audioprune.selectors import Selector, build_selector


@pytest.fixture(scope="module")
def tiny_asts(tmp_path_factory):
    from audioprune.models.ast import build_random_ast

    return tiny_pair(build_random_ast, tmp_path_factory.mktemp("ast"))


def adapter_for(path, **kwargs):
    from audioprune.models.ast import ASTAdapter

    return ASTAdapter(str(path), **kwargs)


@pytest.mark.parametrize("layers", [4, 12])
@pytest.mark.parametrize("selector", ["topk", "random", "bottomk"])
def test_pruned_forward_equals_explicit_reference(tiny_asts, layers, selector):
    adapter = adapter_for(tiny_asts[layers])
    sel = build_selector(selector)
    features = random_features(3, seed=layers)
    keys = ["a", "b", "c"]
    for retention in (0.9, 0.7, 0.5, 0.3) if layers == 4 else (0.7, 0.4):
        with torch.no_grad():
            logits, kept = adapter.classify(features, sel, retention, keys)
            ref = explicit_forward(adapter, features, sel, retention, keys)
        torch.testing.assert_close(logits, ref, atol=1e-5, rtol=0)
        # the recorded kept patches are what the reference's stages leave
        from audioprune.classifier.scores import stage_counts

        assert kept.shape == (3, stage_counts(64, retention, 3)[-1])


@pytest.mark.parametrize("score", ["cls", "cls_dist"])
def test_score_options_match_reference(tiny_asts, score):
    adapter = adapter_for(tiny_asts[4], pruning={"score": score})
    sel = build_selector("topk")
    features = random_features(2, seed=5)
    with torch.no_grad():
        logits, _ = adapter.classify(features, sel, 0.5, ["x", "y"])
        ref = explicit_forward(adapter, features, sel, 0.5, ["x", "y"])
    torch.testing.assert_close(logits, ref, atol=1e-5, rtol=0)


def test_retention_one_is_bit_identical_to_stock(tiny_asts):
    from transformers import ASTForAudioClassification

    features = random_features(2, seed=3)
    stock = ASTForAudioClassification.from_pretrained(str(tiny_asts[12])).eval()
    adapter = adapter_for(tiny_asts[12])
    assert type(adapter.model.audio_spectrogram_transformer.layers[3]).__name__ == "PruningASTLayer"
    with torch.no_grad():
        expected = stock(input_values=features).logits
        for selector in ("topk", "none", "random"):
            logits, kept = adapter.classify(features, build_selector(selector), 1.0, ["a", "b"])
            assert kept is None
            assert torch.equal(logits, expected)
    # state-dict keys unchanged, so checkpoints load both ways
    assert set(adapter.model.state_dict()) == set(stock.state_dict())


def test_only_sdpa_attention_runs(tiny_asts, monkeypatch):
    """No eager attention: the attention interface is sdpa in every layer, also when pruning."""
    import transformers.models.audio_spectrogram_transformer.modeling_audio_spectrogram_transformer as m

    adapter = adapter_for(tiny_asts[4])
    assert adapter.model.config._attn_implementation == "sdpa"
    calls = []
    monkeypatch.setattr(m, "eager_attention_forward", lambda *a, **k: calls.append(1))
    with torch.no_grad():
        adapter.classify(random_features(2), build_selector("topk"), 0.5, ["a", "b"])
    assert calls == []
    with pytest.raises(ValueError, match="sdpa only"):
        adapter_for(tiny_asts[4], attn_implementation="eager")


def test_extra_tokens_kept_and_patches_offset(tiny_asts):
    """What reaches the MLP of a pruning block: CLS, DIST, then exactly the chosen patches."""
    from audioprune.classifier.scores import gather_tokens

    hidden = torch.arange(2 * 6, dtype=torch.float32).reshape(1, 12, 1).expand(2, -1, 3)[:, :6]
    out = gather_tokens(hidden, torch.tensor([[0, 3], [1, 2]]), extra=2)
    assert out[0, :, 0].tolist() == [0, 1, 2, 5]  # CLS, DIST, patches 0 and 3 (positions 2, 5)
    assert out[1, :, 0].tolist() == [0, 1, 3, 4]


class StreamRandom(Selector):
    """Random indices from one private stream: a replay that re-selected would draw new ones."""

    def __init__(self):
        self.generator = torch.Generator().manual_seed(0)

    def __call__(self, scores, k, *, sample_key=""):
        return torch.sort(torch.randperm(scores.shape[0], generator=self.generator)[:k]).values


def test_gradient_checkpointing_reuses_random_choices(tiny_asts):
    adapter = adapter_for(tiny_asts[4])
    model = adapter.model
    model.train()
    features = random_features(2, seed=9)
    sel = StreamRandom()
    grads = []
    for checkpointing in (False, True):
        sel.generator.manual_seed(0)
        model.zero_grad()
        if checkpointing:
            model.gradient_checkpointing_enable({"use_reentrant": False})
        logits, _ = adapter.classify(features, sel, 0.5, ["a", "b"])
        logits.sum().backward()
        grads.append(
            torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        )
    model.gradient_checkpointing_disable()
    model.eval()
    torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=1e-5)


def test_time_crop_of_positions(tiny_asts, tmp_path):
    """A shorter input takes the centre time columns of the 8 × T' grid, per frequency row."""
    from audioprune.models.ast import load_ast

    full = load_ast(str(tiny_asts[4]))
    short = load_ast(str(tiny_asts[4]), frames=64)
    grid = full.audio_spectrogram_transformer.embeddings.position_embeddings[:, 2:].reshape(
        8, 8, -1
    )
    cropped = short.audio_spectrogram_transformer.embeddings.position_embeddings[:, 2:].reshape(
        8, 4, -1
    )
    assert torch.equal(cropped, grid[:, 2:6])
    assert short.config.max_length == 64


@pytest.mark.parametrize("selector", ["intensity", "variation"])
def test_patch_statistic_selectors_keep_extra_tokens_and_right_patches(tiny_asts, selector):
    """Fails on the authors' offset bug: their gather used patch indices on the full sequence,
    shifting every kept token by the two extra tokens and dropping CLS/DIST."""
    from audioprune.classifier.scores import patch_statistics

    adapter = adapter_for(tiny_asts[4])
    sel = build_selector(selector)
    features = random_features(2, seed=11)
    with torch.no_grad():
        logits, kept = adapter.classify(features, sel, 0.5, ["a", "b"])
        ref = explicit_forward(adapter, features, sel, 0.5, ["a", "b"])
    torch.testing.assert_close(logits, ref, atol=1e-5, rtol=0)
    # the same statistic at every stage: what survives is the global top 8 of 64 patches
    stat = patch_statistics(features, 16, adapter.spec.layout)[sel.patch_statistic]
    for row in range(2):
        expected = torch.topk(stat[row], 8).indices.sort().values
        assert sorted(kept[row].tolist()) == expected.tolist()


def test_patch_statistic_selectors_refuse_alm_windows():
    from audioprune.selectors.base import TokenWindow

    with pytest.raises(ValueError, match="classifier models"):
        build_selector("intensity").select_window(TokenWindow(scores=torch.rand(10)), 5)


def test_segmentwise_segments_are_time_spans(tiny_asts):
    """segmentwise_topk over AST's frequency-major grid keeps patches in every time span."""
    adapter = adapter_for(tiny_asts[4], pruning={"layers": [0]})
    sel = build_selector("segmentwise_topk", segments=4)
    features = random_features(2, seed=4)
    with torch.no_grad():
        _, kept = adapter.classify(features, sel, 0.25, ["a", "b"])
        logits, _ = adapter.classify(features, sel, 0.25, ["a", "b"])
        ref = explicit_forward(adapter, features, sel, 0.25, ["a", "b"])
    torch.testing.assert_close(logits, ref, atol=1e-5, rtol=0)
    times = kept % 8  # time column of each kept patch (T' = 8)
    for row in range(2):  # 16 kept, 4 per span of 2 time columns
        spans = (times[row] // 2).tolist()
        assert sorted(spans) == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4
    # S = 3 does not divide the 8 columns: the seam's column segments equal the reference's
    sel3 = build_selector("segmentwise_topk", segments=3)
    with torch.no_grad():
        logits, kept = adapter.classify(features, sel3, 0.5, ["a", "b"])
        ref = explicit_forward(adapter, features, sel3, 0.5, ["a", "b"])
    torch.testing.assert_close(logits, ref, atol=1e-5, rtol=0)
    for row in range(2):  # 32 kept: ⌊32/3⌋ = 10 at least in each of columns 0-2, 3-5, 6-7
        spans = (kept[row] % 8).tolist()
        counts = [sum(t in c for t in spans) for c in (range(0, 3), range(3, 6), range(6, 8))]
        assert min(counts) >= 10


@pytest.mark.parametrize("layout", ["freq_major", "time_major"])
def test_segmentwise_segments_are_whole_time_columns(layout):
    """S = 3 over T' = 8 columns: segments are columns {0-2}, {3-5}, {6-7} (24, 24, 16 patches
    of the full 8 x 8 grid), not equal-count slices that cut through a column; after a stage,
    only the patches still present count. ⌊K/S⌋ per segment by score, the rest by global rank."""
    from audioprune.classifier import scores as S
    from audioprune.classifier.pruning import Pruner, PruneSpec

    spec = PruneSpec(layers=(0,), score="cls", extra=2, grid=(8, 8), layout=layout)
    pruner = Pruner(spec, selector=build_selector("segmentwise_topk", segments=3))
    columns = [range(0, 3), range(3, 6), range(6, 8)]
    for seed in range(6):
        g = torch.Generator().manual_seed(seed)
        ids = torch.arange(64) if seed < 3 else torch.randperm(64, generator=g)[:37]
        scores = torch.rand(len(ids), generator=g)
        keep = S.stage_keep_count(len(ids), 0.5)
        chosen = set(ids[pruner.choose(scores, ids, keep, "a")].tolist())
        time = S.time_index(ids, spec.grid, layout)
        expected = set()
        for span in columns:
            inside = [i for i in range(len(ids)) if int(time[i]) in span]
            best = sorted(inside, key=lambda i: -float(scores[i]))[: keep // 3]
            expected |= {int(ids[i]) for i in best}
        rest = sorted(range(len(ids)), key=lambda i: -float(scores[i]))
        for i in rest:
            if len(expected) == keep:
                break
            expected.add(int(ids[i]))
        assert chosen == expected, seed


def test_segmentwise_without_fill_is_refused_in_the_classifier_family(tiny_asts):
    adapter = adapter_for(tiny_asts[4])
    sel = build_selector("segmentwise_topk", segments=3, fill_remainder=False)
    with pytest.raises(ValueError, match="fill_remainder"):
        adapter.classify(random_features(1), sel, 0.5, ["a"])


@pytest.mark.parametrize(
    "selector,score", [("topk", "cls"), ("topk", "cls_dist"), ("intensity", "cls")]
)
def test_analytic_macs_equal_flop_counter(tiny_asts, selector, score):
    """FlopCounterMode (sdpa mapped) = analytic backbone + score + head, exactly."""
    from audioprune.classifier.macs_count import flop_counter_macs

    adapter = adapter_for(tiny_asts[4 if selector == "intensity" else 12], pruning={"score": score})
    sel = build_selector(selector)
    features = random_features(1, seed=6)
    for retention in (1.0, 0.7, 0.5):
        counted = flop_counter_macs(adapter.classify, features, sel, retention, ["a"])
        macs = adapter.macs(retention, sel)
        assert counted == macs["backbone"] + macs["score"] + macs["head"]
        assert macs["total"] == counted
        if retention < 1 and selector == "topk":
            assert macs["score"] > 0 and adapter.pruner.score_macs == macs["score"]


def test_kendall_analysis_follows_the_tokens_present(tiny_asts):
    """τ per block over the tokens each block sees; low-intensity share of the kept patches."""
    from audioprune.classifier.analysis import _layer_inputs, analyse

    adapter = adapter_for(tiny_asts[4])
    features = random_features(6, seed=7)
    result = analyse(adapter, features, build_selector("topk"), 0.5, [str(i) for i in range(6)])
    tau = result["tau"]
    assert set(tau["variant"]) == {"tau_b", "tau_ties_concordant"} and len(tau) == 4 * 2 * 2
    assert tau["tau"].between(-1, 1).all()
    wide = tau.pivot_table(index=["block", "statistic"], columns="variant", values="tau")
    assert (wide["tau_ties_concordant"] >= wide["tau_b"] - 1e-9).all()
    # block 3 (index 2) runs on what stage 1 (layer 1) kept: 32 of 64 patches
    assert _layer_inputs(adapter.pruner, 2, 6).shape == (6, 32)
    low = result["low_intensity"]
    assert 0 <= low["kept_share_c1_c2"] <= 1 and 0 < low["all_share_c1_c2"] < 1
