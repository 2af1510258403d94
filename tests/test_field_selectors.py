"""The field's pre-LLM methods (docs/methods.md): worked examples and properties.

Every selector is driven through `build_selector(name, **params).select_window(TokenWindow, k)`,
the entry point the runner uses. Worked examples are the notes' tiny examples; property tests
check exact K, distinct ascending indices, merged rows against the documented weighted means of
their members, and determinism, on random windows.
"""

from __future__ import annotations

import math

import pytest
import torch

from audioprune import flops
from audioprune.budget import keep_count
from audioprune.models.base import EncodedAudio
from audioprune.pruning import prune_clip
from audioprune.selectors import FIELD_METHODS, TokenWindow, build_selector
from audioprune.selectors.merging import chain_groups, greedy_dpp_map, linkage_groups
from audioprune.selectors.tome import window_budgets


def unit_angles(*cosines: float) -> torch.Tensor:
    """2-D unit vectors whose consecutive cosines are the given values: [len+1, 2]."""
    angles = [0.0]
    for c in cosines:
        angles.append(angles[-1] + math.acos(c))
    return torch.tensor([[math.cos(a), math.sin(a)] for a in angles])


def random_window(n: int = 40, seed: int = 0) -> TokenWindow:
    g = torch.Generator().manual_seed(seed)
    return TokenWindow(
        scores=torch.rand(n, generator=g) + 0.01,
        hidden=torch.randn(n, 12, generator=g),
        keys=torch.randn(n, 6, generator=g),
        projected=torch.randn(n, 16, generator=g),
        instruction=torch.randn(3, 16, generator=g),
        head_max_scores=torch.rand(n, generator=g) + 0.01,
        self_scores=torch.rand(n, generator=g) + 0.01,
        sample_key="clip#0",
    )


# --------------------------------------------------------------------------- worked examples

TOME_KEYS = torch.tensor([[1, 0], [0, 1], [0.7, 0.7], [0.6, 0.8], [-1, 0], [-0.9, 0.1]])
HIDDEN6 = torch.arange(12.0).reshape(6, 2) ** 1.5  # distinct rows, not affine in the index


def test_tome_worked_example():
    # A = {0, 2, 4}, B = {1, 3, 5}; best 0→3 (.60), 2→3 (.99), 4→5 (.99); r = 2 merges 4→5, 2→3.
    window = TokenWindow(torch.ones(6), hidden=HIDDEN6, keys=TOME_KEYS)
    sel = build_selector("tome").select_window(window, 4)
    assert sel.indices.tolist() == [0, 1, 3, 5]
    expected = torch.stack([HIDDEN6[0], HIDDEN6[1], HIDDEN6[2:4].mean(0), HIDDEN6[4:6].mean(0)])
    torch.testing.assert_close(sel.embeddings, expected)
    assert sel.space == "encoder"


def test_ltbm_style_stays_inside_windows_and_global_window_is_tome():
    window = TokenWindow(torch.ones(6), hidden=HIDDEN6, keys=TOME_KEYS)
    # Windows [0,1,2] and [3,4,5] keep 2 each: 2 joins 1 (cos .71 > 0), 5 joins 4 (.99 > -.6);
    # globally 2 would join 3 instead, across the window border.
    local = build_selector("ltbm_style", window=3).select_window(window, 4)
    assert local.indices.tolist() == [0, 1, 3, 4]
    torch.testing.assert_close(local.embeddings[1], HIDDEN6[1:3].mean(0))
    torch.testing.assert_close(local.embeddings[3], HIDDEN6[4:6].mean(0))
    for k in (1, 3, 4):
        glob = build_selector("ltbm_style", window=6).select_window(window, k)
        tome = build_selector("tome").select_window(window, k)
        assert torch.equal(glob.indices, tome.indices)
        torch.testing.assert_close(glob.embeddings, tome.embeddings)


def test_window_budgets_follow_the_documented_rule_exactly():
    """Ties in the fractional parts go to the earlier window: compared with exact fractions, so
    float rounding (12/9 − 1 vs 3/9) cannot decide. Windows 5, 5, 2 with one spare: [3, 2, 1]."""
    from fractions import Fraction

    def reference(n: int, w: int, k: int) -> list[int]:
        sizes = [min(w, n - s) for s in range(0, n, w)]
        spare, capacity = k - len(sizes), n - len(sizes)
        if capacity == 0:
            return [1] * len(sizes)
        exact = [Fraction(spare * (size - 1), capacity) for size in sizes]
        floors = [e.numerator // e.denominator for e in exact]
        order = sorted(range(len(sizes)), key=lambda i: (-(exact[i] - floors[i]), i))
        for i in order[: spare - sum(floors)]:
            floors[i] += 1
        return [1 + f for f in floors]

    assert reference(12, 5, 6) == [3, 2, 1]
    for n in range(1, 40):
        for w in range(1, n + 1):
            for k in range(-(-n // w), n + 1):
                assert window_budgets(n, w, k) == reference(n, w, k), (n, w, k)


def test_ltbm_style_window_budgets():
    assert window_budgets(6, 3, 4) == [2, 2]
    assert window_budgets(10, 4, 5) == [2, 2, 1]  # spare 2 shared by (n_w − 1) = 3, 3, 1
    assert sum(window_budgets(750, 8, 100)) == 100
    sel = build_selector("ltbm_style", window=8)
    window = random_window(50)
    groups = sel.groups(window, 5)  # K = 5 < 7 windows: the window widens to ⌈50/5⌉ = 10
    assert len(torch.unique(groups)) == 5
    assert torch.equal(groups // 10, torch.arange(50) // 10)


def test_atome_worked_example_greedy_non_overlapping():
    # Adjacent key cosines (.9, .95, .2, .3, .8). Greedy non-overlapping: (1,2) .95, then (0,1)
    # is blocked, (4,5) .8. FastAdaSP's "skip consumed left token" rule would give the same
    # pairs here; its chain rule would instead merge {0,1,2}.
    keys = unit_angles(0.9, 0.95, 0.2, 0.3, 0.8)
    window = TokenWindow(torch.ones(6), hidden=HIDDEN6, keys=keys)
    sel = build_selector("atome").select_window(window, 4)
    assert sel.indices.tolist() == [0, 1, 3, 4]
    torch.testing.assert_close(sel.embeddings[1], HIDDEN6[1:3].mean(0))
    torch.testing.assert_close(sel.embeddings[3], HIDDEN6[4:6].mean(0))


def test_fastadasp_worked_example_chains_and_weighted_merge():
    assert chain_groups(torch.tensor([0, 1]), 6).tolist() == [0, 0, 0, 3, 4, 5]
    projected = torch.cat([unit_angles(0.9, 0.95, 0.2, 0.3, 0.8), torch.zeros(6, 1)], dim=1)
    scores = torch.tensor([1.0, 2.0, 5.0, 1.0, 1.0, 1.0])
    window = TokenWindow(scores, hidden=HIDDEN6, projected=projected)
    sel = build_selector("fastadasp").select_window(window, 4)  # m = 2 edges: {0, 1}
    assert sel.indices.tolist() == [0, 3, 4, 5]
    assert sel.space == "projected"
    expected0 = (1 * projected[0] + 2 * projected[1] + 5 * projected[2]) / 8
    torch.testing.assert_close(sel.embeddings[0], expected0)
    torch.testing.assert_close(sel.embeddings[1:], projected[3:])
    plain = build_selector("fastadasp", merge="mean").select_window(window, 4)
    torch.testing.assert_close(plain.embeddings[0], projected[:3].mean(0))


def test_divprune_worked_example():
    x = torch.tensor([[1.0, 0.0], [0.99, 0.14], [0.0, 1.0], [-1.0, 0.0]])
    window = TokenWindow(torch.ones(4), projected=x)
    sel = build_selector("divprune").select_window(window, 3)  # picks 3, then 0, then 2
    assert sel.indices.tolist() == [0, 2, 3]
    assert sel.embeddings is None


def test_cdpruner_worked_example():
    kernel = torch.tensor([[1.0, 0.9, 0.0], [0.9, 1.0, 0.0], [0.0, 0.0, 0.25]])
    assert greedy_dpp_map(kernel, 2).tolist() == [0, 2]
    # The same kernel through the selector: S01 = .9, relevance = scores (1, 1, .5).
    x = torch.tensor([[1.0, 0.0, 0.0], [0.9, math.sqrt(0.19), 0.0], [0.0, 0.0, 1.0]])
    window = TokenWindow(torch.tensor([1.0, 1.0, 0.5]), projected=x)
    assert build_selector("cdpruner", relevance="attention").select_window(
        window, 2
    ).indices.tolist() == [0, 2]


def test_cdpruner_instruction_relevance_steers_the_choice():
    x = torch.tensor([[1.0, 0.0, 0.0], [0.9, math.sqrt(0.19), 0.0], [0.0, 0.0, 1.0]])
    window = TokenWindow(torch.ones(3), projected=x, instruction=x[1:2].clone())
    # none: pure diversity keeps 0 and the orthogonal 2. instruction (aligned with token 1):
    # r = min-max of (.9, 1, 0) -> token 1 first, then 0 (token 2's relevance is ~1e-6).
    assert build_selector("cdpruner").select_window(window, 2).indices.tolist() == [0, 2]
    instructed = build_selector("cdpruner", relevance="instruction")
    assert instructed.needs == {"projected", "instruction"}
    assert instructed.select_window(window, 2).indices.tolist() == [0, 1]
    with pytest.raises(ValueError, match="TokenWindow.instruction"):
        instructed.select_window(TokenWindow(torch.ones(3), projected=x), 2)


def gram_vectors(similarity: torch.Tensor) -> torch.Tensor:
    """Unit vectors whose cosine matrix is `similarity` (must be positive definite)."""
    return torch.linalg.cholesky(similarity.double()).float()


def samap_example_similarity() -> torch.Tensor:
    s = torch.full((6, 6), 0.1)
    s.fill_diagonal_(1.0)
    for (i, j), v in {(0, 1): 0.9, (0, 2): 0.8, (1, 2): 0.95, (3, 4): 0.3, (4, 5): 0.8}.items():
        s[i, j] = s[j, i] = v
    s[:3, 3] = s[3, :3] = 0.2
    return s


def test_samap_worked_example():
    s = samap_example_similarity()
    assert linkage_groups(s, 0.85).tolist() == [0, 0, 0, 3, 4, 5]  # 2 joins: mean(.8, .95)
    # Average linkage over the whole group, not the last member: with S02 = .5 token 2 stays
    # out (mean .725) although S12 = .95.
    s2 = s.clone()
    s2[0, 2] = s2[2, 0] = 0.5
    assert linkage_groups(s2, 0.85).tolist() == [0, 0, 2, 3, 4, 5]
    x = gram_vectors(s)
    scores = torch.tensor([1.0, 3.0, 1.0, 1.0, 2.0, 2.0])
    window = TokenWindow(scores, projected=x)
    selector = build_selector("samap_shared")  # the scores are the merge weights
    assert selector.groups(window, 3).tolist() == [0, 0, 0, 3, 4, 5]
    sel = selector.select_window(window, 3)
    assert set(sel.indices.tolist()) <= {0, 3, 4, 5} and len(sel.indices) == 3
    assert sel.space == "projected"
    for row, start in enumerate(sel.indices.tolist()):
        if start == 0:
            expected = (x[0] + 3 * x[1] + x[2]) / 5
        else:
            expected = x[start]
        torch.testing.assert_close(sel.embeddings[row], expected)


def test_samap_falls_back_to_tokens_when_too_few_groups():
    x = torch.ones(5, 4) + 1e-3 * torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
    window = TokenWindow(torch.ones(5), projected=x)
    selector = build_selector("samap_shared", threshold=0.5)
    assert len(torch.unique(linkage_groups(torch.ones(5, 5), 0.5))) == 1
    assert selector.groups(window, 3).tolist() == [0, 1, 2, 3, 4]
    assert len(selector.select_window(window, 3).indices) == 3


@pytest.mark.parametrize("duplicate, dropped", [(7, 7), (3, 3)])
def test_vispruner_worked_example(duplicate, dropped):
    # Scores rank 0..7; K = 4: tokens 0, 1 by score. Residual [2..7], T_div = 2: round 1 drops
    # all of a = [2, 4, 6] (r = 4 ≥ 3) -> [3, 5, 7]; round 2: a = [3, 7], b = [5], r = 1 drops
    # the a-token most similar to 5, i.e. the one that duplicates it.
    hidden = torch.eye(8)
    hidden[duplicate] = hidden[5] + 0.01 * hidden[duplicate]
    window = TokenWindow(torch.arange(8.0, 0.0, -1.0), hidden=hidden)
    sel = build_selector("vispruner").select_window(window, 4)
    assert sel.indices.tolist() == sorted({0, 1, 3, 5, 7} - {dropped})


# --------------------------------------------------------------------------- properties


@pytest.mark.parametrize("name", FIELD_METHODS)
def test_exact_k_distinct_ascending_and_deterministic(name):
    window = random_window(40)
    selector = build_selector(name)
    for k in (1, 2, 13, 20, 39, 40):
        sel = selector.select_window(window, k)
        assert sel.indices.dtype == torch.long
        assert len(sel.indices) == k, (name, k)
        assert bool((sel.indices.diff() > 0).all()), (name, k)
        assert 0 <= int(sel.indices.min()) and int(sel.indices.max()) < 40
        again = build_selector(name).select_window(window, k)
        assert torch.equal(sel.indices, again.indices)
        if sel.embeddings is not None:
            assert sel.embeddings.shape[0] == k
            assert torch.equal(sel.embeddings, again.embeddings)


@pytest.mark.parametrize("name", ("tome", "atome", "ltbm_style"))
def test_merged_rows_are_member_means_of_encoder_tokens(name):
    window = random_window(40, seed=3)
    selector = build_selector(name)
    for k in (7, 20, 33):
        groups = selector.groups(window, k)
        sel = selector.select_window(window, k)
        assert torch.equal(sel.indices, torch.unique(groups))
        assert torch.equal(groups[sel.indices], sel.indices)  # a kept token stays its own group
        for row, pos in enumerate(sel.indices.tolist()):
            members = groups == pos
            torch.testing.assert_close(sel.embeddings[row], window.hidden[members].mean(0))
        if name == "atome":  # adjacent merging: groups are runs starting at the kept token
            assert bool((groups.diff() >= 0).all())


@pytest.mark.parametrize(
    "name, params, weights",
    [
        ("fastadasp", {}, "scores"),
        ("fastadasp", {"attention": "head_max"}, "head_max_scores"),  # SA-MAP's port
        ("samap", {}, "head_max_scores"),  # SA-MAP's own merge weights
        ("samap_shared", {}, "scores"),
    ],
)
def test_merged_rows_are_attention_weighted_means_of_projected_tokens(name, params, weights):
    window = random_window(40, seed=4)
    if name.startswith("samap"):  # correlated neighbours so that stage 1 forms real groups
        window.projected = torch.cumsum(window.projected, dim=0)
    selector = build_selector(name, **params)
    for k in (5, 20, 33):
        groups = selector.groups(window, k)
        if name.startswith("samap") and k == 5:
            assert len(torch.unique(groups)) < 40  # merging happened
        sel = selector.select_window(window, k)
        assert sel.space == "projected"
        for row, pos in enumerate(sel.indices.tolist()):
            members = groups == pos
            w = getattr(window, weights)[members]
            expected = (w[:, None] * window.projected[members]).sum(0) / w.sum()
            torch.testing.assert_close(sel.embeddings[row], expected)
            assert int(members.nonzero()[0]) == pos  # the merged token sits at its first member


def test_diversity_methods_survive_duplicates():
    n = 12
    window = TokenWindow(torch.ones(n), hidden=torch.ones(n, 4), projected=torch.ones(n, 4),
                         head_max_scores=torch.ones(n), self_scores=torch.ones(n))  # fmt: skip
    for name in ("divprune", "cdpruner", "samap", "samap_shared", "vispruner"):
        sel = build_selector(name).select_window(window, n)
        assert sel.indices.tolist() == list(range(n)), name
        if sel.embeddings is not None:
            assert torch.isfinite(sel.embeddings).all()


def test_a_selector_must_need_known_fields():
    from audioprune.selectors import Selector, register_selector

    class NeedsLogits(Selector):
        needs = frozenset({"logits"})

    with pytest.raises(ValueError, match="unknown TokenWindow fields"):
        register_selector("needs_logits")(NeedsLogits)


def test_missing_fields_and_bad_options_name_what_is_expected():
    window = TokenWindow(torch.ones(5))
    with pytest.raises(ValueError, match="TokenWindow.projected"):
        build_selector("divprune").select_window(window, 2)
    with pytest.raises(ValueError, match="TokenWindow.keys"):
        build_selector("tome").select_window(TokenWindow(torch.ones(5), hidden=torch.ones(5, 2)), 2)
    with pytest.raises(TypeError, match="select_window"):
        build_selector("samap")(torch.ones(5), 2)
    with pytest.raises(ValueError, match="'relevance'"):
        build_selector("cdpruner", relevance="clip")
    with pytest.raises(ValueError, match="'prop_attn'"):
        build_selector("tome", prop_attn=True)
    with pytest.raises(ValueError, match="'window'"):
        build_selector("ltbm_style", window=1)
    with pytest.raises(ValueError, match="'important_ratio'"):
        build_selector("vispruner", important_ratio=2)
    with pytest.raises(ValueError, match="'threshold'"):
        build_selector("samap", threshold="high")
    silent = TokenWindow(torch.zeros(5), projected=torch.randn(5, 3))  # weights sum to 0
    with pytest.raises(ValueError, match="sum to 0"):
        build_selector("fastadasp").select_window(silent, 2)


# --------------------------------------------------------------------------- cost accounting


def test_cost_formulas():
    assert flops.gram_flops(3, 2) == 36
    assert flops.greedy_dpp_flops(10, 3) == 2 * 10 * (0 + 1 + 2)
    assert flops.tome_round_sizes(6, 4) == [6]
    assert flops.tome_round_sizes(7, 3) == [7, 4]  # 7 -> 4 (r = 3) -> 3 (r = 1)
    assert flops.tome_round_sizes(5, 5) == []
    assert flops.bipartite_flops(7, 2) == 2 * 4 * 3 * 2
    # VisPruner: residual 6, keep 2, 8 per round: drops all 3 of a, then 1 of a = [x, y]
    assert flops.vispruner_round_sizes(6, 2, 8) == [6, 3]
    assert flops.vispruner_round_sizes(6, 0, 8) == []


@pytest.mark.parametrize(
    "name, params, uncounted_merge",
    [
        ("divprune", {}, False),
        ("cdpruner", {}, False),
        ("cdpruner", {"relevance": "instruction"}, False),
        ("vispruner", {}, False),
        ("tome", {}, True),
        ("ltbm_style", {"window": 16}, True),
    ],
)
def test_selection_flops_match_torch_flop_counter(name, params, uncounted_merge):
    """FlopCounterMode counts the matrix products; the merge is an index_add it does not see."""
    from torch.utils.flop_counter import FlopCounterMode

    window = random_window(40, seed=5)
    window.projected = torch.randn(40, 64, generator=torch.Generator().manual_seed(6))
    window.instruction = torch.randn(3, 64)
    selector = build_selector(name, **params)
    for k in (4, 25):
        with FlopCounterMode(display=False) as counter:
            selector.select_window(window, k)
        merge = flops.merge_flops(40, window.hidden.shape[1]) if uncounted_merge else 0
        assert selector.selection_flops(window, k) == counter.get_total_flops() + merge, k


def test_clip_cost_sums_windows_and_reuses_counts_made_while_selecting():
    windows = [random_window(40, seed=7), random_window(25, seed=8)]
    clip = EncodedAudio(windows=windows)
    for name in ("samap", "atome", "divprune", "topk"):
        selector = build_selector(name)
        pruned = prune_clip(clip, selector, 0.25, "clip")
        expected = sum(selector.selection_flops(w, keep_count(w.num_tokens, 0.25)) for w in windows)
        assert pruned.select_flops == expected
        assert (expected > 0) == (name != "topk")
