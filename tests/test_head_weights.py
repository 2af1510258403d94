"""The `head_weights` option of attention-based selectors and `headrouter_lite`: hand examples,
the profile files (and their errors), and what `needs` / `params` record."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch

from audioprune.models.base import EncodedAudio
from audioprune.pruning import prune_clip
from audioprune.selectors import TokenWindow, build_selector
from audioprune.selectors.headrouter import (
    calibrate_headrouter,
    route_weights,
    save_headrouter_profile,
)
from audioprune.selectors.heads import (
    entropy_weights,
    head_selectivity,
    load_head_profile,
    profile_from_windows,
    save_head_profile,
)

# head 0 spreads evenly (selectivity 0), head 1 singles out tokens 3 and 0
HEADS = torch.tensor([[1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [1.5, 0.2, 0.1, 4.0, 0.1, 0.1]])
N = HEADS.shape[1]


def window(heads: torch.Tensor = HEADS, **fields) -> TokenWindow:
    return TokenWindow(scores=heads.mean(0), head_scores=heads, **fields)


def test_selectivity_and_entropy_weights_by_hand():
    v = head_selectivity(HEADS)
    assert v[0].item() == pytest.approx(0.0, abs=1e-12)
    p = HEADS[1].double() / HEADS[1].sum()
    expected = 1 + (p * p.log()).sum().item() / math.log(N)
    assert v[1].item() == pytest.approx(expected, rel=1e-8)
    assert entropy_weights(HEADS).tolist() == pytest.approx([0.0, 1.0])
    # every head uniform: no preference, uniform weights
    assert entropy_weights(torch.ones(3, 5)).tolist() == pytest.approx([1 / 3] * 3)


def test_uniform_is_the_shared_score_and_needs_nothing_more():
    sel = build_selector("topk")
    assert sel.needs == frozenset() and sel.params() == {"head_weights": "uniform"}
    scores = torch.tensor([0.1, 0.9, 0.3, 0.2, 0.8, 0.0])
    got = sel.select_window(TokenWindow(scores=scores), 2)  # no head_scores: fine
    assert got.indices.tolist() == [1, 4]


def test_entropy_ranks_by_the_selective_head():
    mean_top = build_selector("topk").select_window(window(), 2).indices.tolist()
    sel = build_selector("topk", head_weights="entropy")
    assert "head_scores" in sel.needs and sel.params() == {"head_weights": "entropy"}
    assert mean_top == [0, 3]  # (1.25, 2.5) lead the head mean too; now check a case that differs
    heads = torch.tensor([[5.0, 0.1, 0.1, 0.1, 0.1, 0.1], [0.2, 0.2, 0.2, 3.0, 3.0, 0.2]])
    heads[0] = heads[0] / heads[0].sum() * heads[1].sum()  # equal mass, as received attention has
    v = head_selectivity(heads)
    assert v[0] > v[1]  # head 0 is the more selective one
    got = sel.select_window(window(heads), 1).indices.tolist()
    w = entropy_weights(heads).float()
    assert got == [int(torch.argmax(w @ heads))] == [0]
    # the pure math did not change: __call__ on the shared score is plain Top-K
    assert sel(heads.mean(0), 1).tolist() == build_selector("topk")(heads.mean(0), 1).tolist()


def test_profile_file_weights_are_normalised_and_recorded(tmp_path):
    path = save_head_profile(tmp_path / "p.json", torch.tensor([1.0, 3.0]), model="tiny")
    assert load_head_profile(path).tolist() == pytest.approx([0.25, 0.75])
    sel = build_selector("bottomk", head_weights=str(path))
    params = sel.params()
    assert params["head_weights"] == str(path) and len(params["head_profile_sha256"]) == 16
    expected = 0.25 * HEADS[0] + 0.75 * HEADS[1]
    assert torch.allclose(sel.window_scores(window()), expected)
    assert sel.select_window(window(), 2).indices.tolist() == [2, 4]  # the two lowest: 0.325
    # a changed profile changes the recorded parameters (and so the run identity)
    save_head_profile(path, torch.tensor([3.0, 1.0]))
    assert build_selector("bottomk", head_weights=str(path)).params() != params


def test_profile_from_calibration_windows_is_the_mean_selectivity(tmp_path):
    other = torch.tensor([[1.0, 0.0, 0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]])
    profile = profile_from_windows([HEADS, other[:, :4]])  # windows may differ in length
    v = (head_selectivity(HEADS) + head_selectivity(other[:, :4])) / 2
    assert profile.tolist() == pytest.approx((v / v.sum()).tolist())
    path = save_head_profile(tmp_path / "calibrated.json", profile, clips=2)
    assert json.loads(path.read_text())["clips"] == 2
    assert load_head_profile(path).tolist() == pytest.approx(profile.tolist())
    with pytest.raises(ValueError, match="no calibration windows"):
        profile_from_windows([])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("{not json", "cannot read"),
        ({"weights": [1, 2]}, "'head_weights'"),
        ({"head_weights": [1, "a"]}, "'head_weights'"),
        ({"head_weights": [1, -2]}, ">= 0"),
    ],
)
def test_bad_profile_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "profile.json"
    if content is not None:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises((ValueError, FileNotFoundError), match=message) as err:
        build_selector("topk", head_weights=str(path))
    assert "profile.json" in str(err.value)


def test_profile_with_the_wrong_head_count_and_missing_head_scores_are_clear_errors(tmp_path):
    path = save_head_profile(tmp_path / "three.json", torch.ones(3))
    sel = build_selector("topk", head_weights=str(path))
    with pytest.raises(ValueError, match="3 weights but the encoder has 2 heads"):
        sel.select_window(window(), 2)
    with pytest.raises(ValueError, match="needs TokenWindow.head_scores"):
        build_selector("topk", head_weights="entropy").select_window(
            TokenWindow(scores=torch.rand(6)), 2
        )


def test_segmentwise_and_visionzip_rank_by_the_weighted_score(tmp_path):
    path = save_head_profile(tmp_path / "h1.json", torch.tensor([0.0, 1.0]))
    hidden, keys = torch.randn(N, 4), torch.randn(N, 3)
    w = window(hidden=hidden, keys=keys)
    as_head1 = replace(w, scores=HEADS[1].clone(), head_scores=None)
    for name, params in [("segmentwise_topk", {"segments": 2}), ("visionzip", {})]:
        weighted = build_selector(name, head_weights=str(path), **params).select_window(w, 3)
        plain = build_selector(name, **params).select_window(as_head1, 3)
        assert weighted.indices.tolist() == plain.indices.tolist(), name
        if plain.embeddings is not None:
            assert torch.equal(weighted.embeddings, plain.embeddings)


def test_prune_clip_applies_head_weights_per_window():
    encoded = EncodedAudio(
        [window(hidden=torch.randn(N, 4)), window(HEADS.flip(1), hidden=torch.randn(N, 4))]
    )
    pruned = prune_clip(encoded, build_selector("topk", head_weights="entropy"), 0.34, "clip")
    assert [i.tolist() for i in pruned.indices] == [[0, 3], [2, 5]]


# ---------------------------------------------------------------- headrouter_lite


def test_headrouter_without_profile_routes_by_the_inputs_selectivity():
    heads = torch.rand(5, 40, generator=torch.Generator().manual_seed(0)) ** 4
    heads = heads / heads.sum(1, keepdim=True) * 80  # equal mass per head, as received attention
    router = build_selector("headrouter_lite")
    assert router.needs == frozenset({"head_scores"})
    got = router.select_window(window(heads), 10).indices
    assert torch.equal(
        got, build_selector("topk", head_weights="entropy").select_window(window(heads), 10).indices
    )


def test_route_weights_by_hand():
    weights = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    centroids = torch.tensor([[0.8, 0.1], [0.1, 0.8]])
    v = torch.tensor([0.8, 0.1])  # exactly family 0's centroid
    d = math.dist([0.8, 0.1], [0.1, 0.8])
    alpha0 = 1 / (1 + math.exp(-d))  # softmax(-[0, d])
    assert route_weights(v, weights, centroids).tolist() == pytest.approx([alpha0, 1 - alpha0])
    sharp = route_weights(v, weights, centroids, temperature=0.01)
    assert sharp.tolist() == pytest.approx([1.0, 0.0], abs=1e-12)
    assert route_weights(torch.tensor([0.2, 0.6])).tolist() == pytest.approx([0.25, 0.75])


def test_headrouter_debiasing_removes_a_calibrated_position_sink(tmp_path):
    """Head 0 always piles attention on token 0 (a positional sink): calibration learns it, and
    the debiased score finds the content peak at token 5 that the raw score misses."""
    n = 8

    def clip(peak: int | None) -> torch.Tensor:
        h = torch.full((2, n), 1.0)
        h[0, 0] = 20.0  # the sink, in every clip
        if peak is not None:
            h[:, peak] += 6.0
        return h

    calibration = {"speech": [clip(None), clip(2)], "sound": [clip(None), clip(6)]}
    profile = save_headrouter_profile(tmp_path / "router.json", calibrate_headrouter(calibration))
    raw = build_selector("headrouter_lite").select_window(window(clip(5)), 1).indices.tolist()
    debiased = build_selector("headrouter_lite", profile=str(profile))
    assert raw == [0]
    assert debiased.select_window(window(clip(5)), 1).indices.tolist() == [5]
    assert len(debiased.params()["profile_sha256"]) == 16


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"temperature": 0}, "temperature"),
        ({"temperature": "warm"}, "temperature"),
        ({"profile": "/nonexistent/router.json"}, "does not exist"),
    ],
)
def test_headrouter_bad_options(params, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        build_selector("headrouter_lite", **params)


def test_headrouter_refuses_a_bad_profile_and_missing_head_scores(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"kind": "something_else"}))
    with pytest.raises(ValueError, match="'kind'"):
        build_selector("headrouter_lite", profile=str(bad))
    with pytest.raises(ValueError, match="head_scores"):
        build_selector("headrouter_lite").select_window(TokenWindow(scores=torch.rand(4)), 2)


# ---------------------------------------------------------------- samap attention=original


def test_samap_original_uses_head_max_weights_and_self_attention_relevance():
    from test_field_selectors import gram_vectors, samap_example_similarity

    x = gram_vectors(samap_example_similarity())  # stage 1 groups {0, 1, 2}, {3}, {4}, {5}
    head_max = torch.tensor([2.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    rho = torch.tensor([1.0, 1.0, 1.0, 0.01, 1.0, 1.0])  # group {3} is barely relevant
    window = TokenWindow(torch.ones(6), projected=x, head_max_scores=head_max, self_scores=rho)
    original = build_selector("samap", attention="original")
    assert original.needs == {"projected", "head_max_scores", "self_scores"}
    assert original.params() == {"threshold": 0.85, "attention": "original"}
    four = original.select_window(window, 4)
    assert four.indices.tolist() == [0, 3, 4, 5]
    torch.testing.assert_close(four.embeddings[0], (2 * x[0] + x[1] + x[2]) / 4)  # w = head max
    shared = build_selector("samap_shared").select_window(window, 3).indices.tolist()
    assert 3 in shared  # the shared score (all ones) keeps the dissimilar group {3} ...
    assert original.select_window(window, 3).indices.tolist() == [0, 4, 5]  # ... ρ drops it
    with pytest.raises(ValueError, match="TokenWindow.head_max_scores"):
        original.select_window(TokenWindow(torch.ones(6), projected=x), 3)
    with pytest.raises(ValueError, match="'attention'"):
        build_selector("samap", attention="max")


def test_samap_default_is_sa_maps_own_attention():
    """`samap` with no options merges by SA-MAP's head-max weights and ranks by its
    self-attention relevance; the shared-score variant is `samap_shared`, a different name."""
    from test_field_selectors import gram_vectors, samap_example_similarity

    from audioprune.identity import run_label, selector_identity

    x = gram_vectors(samap_example_similarity())  # stage 1 groups {0, 1, 2}, {3}, {4}, {5}
    head_max = torch.tensor([2.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    rho = torch.tensor([1.0, 1.0, 1.0, 0.01, 1.0, 1.0])
    window = TokenWindow(torch.ones(6), projected=x, head_max_scores=head_max, self_scores=rho)
    default = build_selector("samap")
    assert default.needs == {"projected", "head_max_scores", "self_scores"}
    three = default.select_window(window, 3)
    assert three.indices.tolist() == [0, 4, 5]  # ρ (self-attention) drops group {3}
    torch.testing.assert_close(three.embeddings[0], (2 * x[0] + x[1] + x[2]) / 4)  # w = head max
    shared = build_selector("samap_shared")
    assert shared.needs == {"projected"} and 3 in shared.select_window(window, 3).indices
    # Named apart: their run keys and table labels differ.
    ids = [selector_identity(s) for s in (default, shared)]
    assert [i["name"] for i in ids] == ["samap", "samap_shared"]
    assert ids[0]["params"] == {"threshold": 0.85, "attention": "original"}
    assert run_label(default, 0.5) != run_label(shared, 0.5)
    with pytest.raises(ValueError, match="samap_shared"):
        build_selector("samap", attention="shared")


def test_fastadasp_head_max_weights_are_sa_maps_port():
    """`attention: head_max` merges with the head-max pooled received attention (AngelSlim's
    `fastadasp-attention` weights); the default stays the shared score."""
    x = torch.eye(4)[[0, 0, 1, 2]] + 0.01 * torch.arange(4.0)[:, None]  # tokens 0, 1 alike
    scores = torch.tensor([1.0, 1.0, 1.0, 1.0])
    head_max = torch.tensor([3.0, 1.0, 1.0, 1.0])
    window = TokenWindow(scores, projected=x, head_max_scores=head_max)
    original = build_selector("fastadasp", attention="head_max")
    assert original.needs == {"projected", "head_max_scores"}
    sel = original.select_window(window, 3)  # one merge: the most similar edge (0, 1)
    assert sel.indices.tolist() == [0, 2, 3]
    torch.testing.assert_close(sel.embeddings[0], (3 * x[0] + x[1]) / 4)
    shared = build_selector("fastadasp").select_window(window, 3)
    torch.testing.assert_close(shared.embeddings[0], (x[0] + x[1]) / 2)
    with pytest.raises(ValueError, match="TokenWindow.head_max_scores"):
        original.select_window(TokenWindow(scores, projected=x), 3)
    with pytest.raises(ValueError, match="merge=mean"):
        build_selector("fastadasp", merge="mean", attention="head_max")
    with pytest.raises(ValueError, match="'attention'"):
        build_selector("fastadasp", attention="mean")
