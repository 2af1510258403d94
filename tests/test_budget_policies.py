"""Budget policies (`budget=`): per_window (the paper), global (one K per clip spread by the
selector), adaptive (smallest set holding a calibrated share of the score mass); what each
policy hands the LLM, and the calibration that holds the mean retention at r."""

from __future__ import annotations

import pytest
import torch

from audioprune.budget import Budget, calibrate_mass, keep_count, mass_count
from audioprune.models.base import EncodedAudio
from audioprune.pruning import calibrate_budget, prune_clip
from audioprune.selectors import TokenWindow, build_selector


def clip(*sizes: int, seed: int = 0) -> EncodedAudio:
    g = torch.Generator().manual_seed(seed)
    return EncodedAudio(
        windows=[
            TokenWindow(
                scores=torch.rand(n, generator=g),
                hidden=torch.randn(n, 6, generator=g),
                keys=torch.randn(n, 4, generator=g),
            )
            for n in sizes
        ]
    )


def test_per_window_is_the_default_and_keeps_keep_count_per_window():
    encoded = clip(750, 375)
    default = prune_clip(encoded, build_selector("topk"), 0.25, "a")
    explicit = prune_clip(encoded, build_selector("topk"), 0.25, "a", Budget("per_window"))
    assert [t.shape[0] for t in default.tokens] == [keep_count(750, 0.25), keep_count(375, 0.25)]
    for a, b in zip(default.indices, explicit.indices):
        assert torch.equal(a, b)


def test_global_budget_is_one_topk_over_the_clip_split_back_per_window():
    encoded = clip(40, 20)
    encoded.windows[1].scores += 1.0  # the second window holds every top token
    pruned = prune_clip(encoded, build_selector("topk"), 0.25, "a", Budget("global"))
    assert pruned.kept == keep_count(60, 0.25) == 15
    assert [t.shape[0] for t in pruned.tokens] == [0, 15]
    expected = torch.topk(encoded.windows[1].scores, 15).indices.sort().values
    assert torch.equal(pruned.indices[1], expected)
    # What reaches the LLM: the rows of the window's own encoder tokens at those indices.
    assert torch.equal(pruned.tokens[1], encoded.windows[1].hidden[expected])


def test_global_budget_places_merged_tokens_in_their_own_window():
    encoded = clip(30, 30, seed=1)
    pruned = prune_clip(encoded, build_selector("visionzip"), 0.3, "a", Budget("global"))
    assert pruned.kept == keep_count(60, 0.3)
    merged = build_selector("visionzip").select_window(
        TokenWindow(
            scores=torch.cat([w.scores for w in encoded.windows]),
            hidden=torch.cat([w.hidden for w in encoded.windows]),
            keys=torch.cat([w.keys for w in encoded.windows]),
        ),
        keep_count(60, 0.3),
    )
    assert torch.equal(torch.cat([pruned.indices[0], pruned.indices[1] + 30]), merged.indices)
    assert torch.equal(torch.cat(pruned.tokens), merged.embeddings)


def test_mass_count_is_the_smallest_set_holding_the_mass():
    scores = torch.tensor([0.1, 0.5, 0.1, 0.3])
    assert mass_count(scores, 0.5) == 1
    assert mass_count(scores, 0.8) == 2
    assert mass_count(scores, 0.81) == 3
    assert mass_count(scores, 1.0) == 4
    assert mass_count(torch.zeros(10), 0.3) == 3  # no mass: a share of the tokens


def test_adaptive_budget_varies_per_clip_and_is_calibrated_to_the_retention():
    g = torch.Generator().manual_seed(0)
    # Peaked clips need few tokens for the same mass, flat ones many.
    clips = [[torch.rand(200, generator=g) ** p] for p in (1, 2, 4, 8, 16, 32)]
    mass = calibrate_mass(clips, 0.25)
    budget = Budget("adaptive", mass=mass)
    ks = [budget.groups(c, 0.25)[0].keep for c in clips]
    assert ks == sorted(ks, reverse=True) and ks[0] > 2 * ks[-1]
    assert abs(sum(ks) / 1200 - 0.25) <= 3 / 1200
    # A clip's K depends only on its own scores and the mass.
    assert Budget("adaptive", mass=mass).groups(clips[2], 0.25)[0].keep == ks[2]
    with pytest.raises(ValueError, match="must be calibrated first"):
        Budget("adaptive").groups(clips[0], 0.25)


def test_adaptive_window_scope_and_calibration_through_prune_clip():
    encoded = [clip(100, 50, seed=s) for s in range(4)]
    budget = calibrate_budget(Budget("adaptive", scope="window"), encoded, 0.5)
    assert budget.mass is not None and 0 < budget.mass <= 1
    pruned = [prune_clip(e, build_selector("topk"), 0.5, "x", budget) for e in encoded]
    for e, p in zip(encoded, pruned):
        assert [t.shape[0] for t in p.tokens] == [
            mass_count(w.scores, budget.mass) for w in e.windows
        ]
    ratio = sum(p.kept for p in pruned) / sum(p.total for p in pruned)
    assert abs(ratio - 0.5) < 0.02


def test_in_llm_selectors_keep_every_token_and_carry_the_budget():
    encoded = clip(750, 375)
    for budget, expected in (
        (Budget("per_window"), [(750, 187), (375, 93)]),
        (Budget("global"), [(1125, 281)]),
    ):
        pruned = prune_clip(encoded, build_selector("fastv"), 0.25, "a", budget)
        assert pruned.kept == 1125 and pruned.llm_budget == expected
        assert torch.equal(pruned.tokens[0], encoded.windows[0].hidden)


def test_bad_budget_options_name_the_field():
    with pytest.raises(ValueError, match="budget.name must be one of per_window, global, adaptive"):
        Budget("fixed")
    with pytest.raises(ValueError, match="budget.mass must be in"):
        Budget("adaptive", mass=1.5)
    with pytest.raises(ValueError, match="budget.scope"):
        Budget("adaptive", scope="frame")
