"""VisionZip selector: a hand-worked window for both merge modes, the Kc split, and properties."""

from __future__ import annotations

import random

import pytest
import torch

from audioprune.selectors import TokenWindow, build_selector

# ---------------------------------------------------------------- the hand-worked window
#
# N = 12, K = 6, c = 1.0 -> Kc = round(6 · 1/2) = 3 contextual, 3 dominant.
# Dominant = top 3 scores: 0.95 @1, 0.85 @4, 0.75 @8.
# Remaining in time order: [0, 2, 3, 5, 6, 7, 9, 10, 11], R = 9, step = 9 // 3 = 3,
# targets = remaining[::3] = [0, 5, 9]; joiners = [2, 3, 6, 7, 10, 11].
SCORES = torch.tensor([0.10, 0.95, 0.20, 0.05, 0.85, 0.30, 0.15, 0.25, 0.75, 0.12, 0.22, 0.08])
# Keys (d = 2). Targets point east (0, long vector), north (5) and south-west (9).
# Cosines of each joiner with (east, north, south-west):
#   2: [1, 3]      -> (0.32, 0.95, -0.89) -> target 5 (a raw dot product would pick 0: 10 > 3)
#   3: [2, 0.1]    -> (1.00, 0.05, -0.74) -> target 0
#   6: [0.5, 0.2]  -> (0.93, 0.37, -0.92) -> target 0
#   7: [-0.2, 1]   -> (-0.20, 0.98, -0.55) -> target 5
#   10: [0.1, 2]   -> (0.05, 1.00, -0.74) -> target 5
#   11: [3, -0.5]  -> (0.99, -0.16, -0.58) -> target 0
# so target 0 <- {3, 6, 11}, target 5 <- {2, 7, 10}, target 9 <- {} (stays itself).
KEYS = torch.zeros(12, 2)
KEYS[0] = torch.tensor([10.0, 0.0])
KEYS[5] = torch.tensor([0.0, 1.0])
KEYS[9] = torch.tensor([-1.0, -1.0])
KEYS[2] = torch.tensor([1.0, 3.0])
KEYS[3] = torch.tensor([2.0, 0.1])
KEYS[6] = torch.tensor([0.5, 0.2])
KEYS[7] = torch.tensor([-0.2, 1.0])
KEYS[10] = torch.tensor([0.1, 2.0])
KEYS[11] = torch.tensor([3.0, -0.5])
KEYS[[1, 4, 8]] = torch.tensor([5.0, 5.0])  # dominant keys play no part
# Hidden (D = 2): token i is [i, i²].
HIDDEN = torch.stack([torch.arange(12.0), torch.arange(12.0) ** 2], dim=1)

KEPT = [0, 1, 4, 5, 8, 9]


def hand_window() -> TokenWindow:
    return TokenWindow(SCORES.clone(), HIDDEN.clone(), KEYS.clone(), "clip#0")


def test_hand_window_positions():
    vz = build_selector("visionzip", contextual_to_dominant=1.0)
    assert vz.contextual_count(6) == 3
    assert vz(SCORES, 6).tolist() == KEPT
    plan = vz.plan(SCORES, 6)
    assert plan.dominant.tolist() == [1, 4, 8]
    assert plan.targets.tolist() == [0, 5, 9]


def test_hand_window_merge_target():
    # VisionZip: target + mean(joiners)
    #   row @0: [0, 0] + mean([3,9], [6,36], [11,121]) = [0 + 20/3, 0 + 166/3]
    #   row @5: [5, 25] + mean([2,4], [7,49], [10,100]) = [5 + 19/3, 25 + 51] = [34/3, 76]
    #   row @9: nobody joined -> [9, 81]
    #   dominant rows keep their hidden: @1 [1,1], @4 [4,16], @8 [8,64]
    selection = build_selector("visionzip", contextual_to_dominant=1.0).select_window(
        hand_window(), 6
    )
    assert selection.indices.tolist() == KEPT
    expected = torch.tensor(
        [[20 / 3, 166 / 3], [1, 1], [4, 16], [34 / 3, 76], [8, 64], [9, 81]],
        dtype=torch.float32,
    )
    torch.testing.assert_close(selection.embeddings, expected)
    torch.testing.assert_close(selection.tokens(HIDDEN), expected)


def test_hand_window_merge_mean():
    # plain mean of the group including the target
    #   row @0: mean([0,0], [3,9], [6,36], [11,121]) = [20/4, 166/4] = [5, 41.5]
    #   row @5: mean([5,25], [2,4], [7,49], [10,100]) = [24/4, 178/4] = [6, 44.5]
    #   row @9: [9, 81]
    selection = build_selector("visionzip", contextual_to_dominant=1.0, merge="mean").select_window(
        hand_window(), 6
    )
    assert selection.indices.tolist() == KEPT
    expected = torch.tensor(
        [[5, 41.5], [1, 1], [4, 16], [6, 44.5], [8, 64], [9, 81]], dtype=torch.float32
    )
    torch.testing.assert_close(selection.embeddings, expected)


def test_hand_window_does_not_modify_inputs():
    window = hand_window()
    build_selector("visionzip", contextual_to_dominant=1.0).select_window(window, 6)
    assert torch.equal(window.hidden, HIDDEN) and torch.equal(window.keys, KEYS)


def test_equal_similarity_goes_to_the_earlier_target():
    # N=4, K=3, c=2 -> Kc=round(3·2/3)=2 contextual, 1 dominant (@3, score 0.9).
    # remaining [0, 1, 2], R=3, step=3//2=1 -> targets [0, 1], joiner 2 with key equally close
    # to both targets -> joins target 0: row @0 = h0 + h2, row @1 = h1.
    scores = torch.tensor([0.1, 0.2, 0.3, 0.9])
    keys = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    hidden = torch.tensor([[1.0], [10.0], [100.0], [1000.0]])
    selection = build_selector("visionzip", contextual_to_dominant=2.0).select_window(
        TokenWindow(scores, hidden, keys), 3
    )
    assert selection.indices.tolist() == [0, 1, 3]
    torch.testing.assert_close(selection.embeddings, torch.tensor([[101.0], [10.0], [1000.0]]))


# ---------------------------------------------------------------- the Kc split


@pytest.mark.parametrize(("k", "contextual"), [(64, 10), (128, 20), (192, 30)])
def test_default_ratio_reproduces_visionzip_splits(k, contextual):
    # VisionZip's own (dominant, contextual) pairs: (54, 10), (108, 20), (162, 30)
    assert build_selector("visionzip").contextual_count(k) == contextual


def test_contextual_count_examples():
    vz = build_selector("visionzip")
    # 750 tokens at 25 %: K = 187 -> 187 · 0.185 / 1.185 = 29.19 -> 29
    assert vz.contextual_count(187) == 29
    assert vz.contextual_count(1) == 0  # 0.156 rounds to 0
    assert vz.contextual_count(4) == 1  # 0.624 rounds to 1
    # c = 1: half contextual; 3 · 1/2 = 1.5 rounds half up to 2
    assert build_selector("visionzip", contextual_to_dominant=1).contextual_count(3) == 2
    assert build_selector("visionzip", contextual_to_dominant=0).contextual_count(500) == 0


def test_zero_contextual_is_topk():
    gen = torch.Generator().manual_seed(0)
    scores = torch.rand(50, generator=gen)
    hidden = torch.randn(50, 4, generator=gen)
    top = build_selector("topk")(scores, 12)
    vz = build_selector("visionzip", contextual_to_dominant=0.0)
    assert torch.equal(vz(scores, 12), top)
    selection = vz.select_window(TokenWindow(scores, hidden, None), 12)  # keys not needed
    assert torch.equal(selection.indices, top)
    assert torch.equal(selection.tokens(hidden), hidden[top])
    # the default ratio gives Kc = 0 at K = 1 too
    one = build_selector("visionzip").select_window(TokenWindow(scores, hidden, None), 1)
    assert one.indices.tolist() == [int(scores.argmax())]


def test_keep_everything_returns_hidden_unchanged():
    # K = N: the remaining tokens are all targets (step 1) and nobody is left to join
    gen = torch.Generator().manual_seed(1)
    scores, hidden, keys = torch.rand(9, generator=gen), torch.randn(9, 3), torch.randn(9, 2)
    for merge in ("target", "mean"):
        vz = build_selector("visionzip", contextual_to_dominant=0.5, merge=merge)
        selection = vz.select_window(TokenWindow(scores, hidden, keys), 9)
        assert selection.indices.tolist() == list(range(9))
        torch.testing.assert_close(selection.embeddings, hidden)


# ---------------------------------------------------------------- properties


def clustered_window(n: int, k: int, c: float, seed: int):
    """Scores, hidden, and keys built so each joiner's target is known in advance.

    Target j's key is the unit vector e_j; each joiner's key is 3·e_c + noise for a drawn
    cluster c, so its most similar target is c by construction.
    """
    gen = torch.Generator().manual_seed(seed)
    vz = build_selector("visionzip", contextual_to_dominant=c)
    scores = torch.rand(n, generator=gen)
    plan = vz.plan(scores, k)
    kc = len(plan.targets)
    keys = torch.zeros(n, max(kc, 1))
    cluster = {}
    for j, target in enumerate(plan.targets.tolist()):
        keys[target, j] = 1.0
    for token in plan.remaining.tolist():
        if kc == 0 or token in plan.targets.tolist():
            continue
        c_id = int(torch.randint(kc, (1,), generator=gen))
        cluster[token] = c_id
        keys[token] = 0.01 * torch.rand(max(kc, 1), generator=gen)
        keys[token, c_id] = 3.0
    hidden = torch.randn(n, 5, generator=gen)
    return scores, hidden, keys, plan, cluster


def test_merged_vectors_match_a_direct_computation_over_random_windows():
    rng = random.Random(7)
    for trial in range(60):
        n = rng.randint(2, 120)
        k = rng.randint(1, n)
        c = rng.choice([0.185, 0.5, 1.0, 3.0])
        scores, hidden, keys, plan, cluster = clustered_window(n, k, c, seed=trial)
        targets = plan.targets.tolist()
        for merge in ("target", "mean"):
            vz = build_selector("visionzip", contextual_to_dominant=c, merge=merge)
            selection = vz.select_window(TokenWindow(scores, hidden, keys), k)
            kept = selection.indices.tolist()
            assert kept == sorted(plan.dominant.tolist() + targets)
            assert selection.embeddings.shape == (k, 5)
            for row, token in enumerate(kept):
                if token not in targets:
                    assert torch.equal(selection.embeddings[row], hidden[token])
                    continue
                j = targets.index(token)
                members = [m for m, c_id in cluster.items() if c_id == j]
                if not members:
                    expected = hidden[token]
                elif merge == "target":
                    expected = hidden[token] + hidden[members].mean(dim=0)
                else:
                    expected = hidden[[token, *members]].mean(dim=0)
                torch.testing.assert_close(selection.embeddings[row], expected)


def test_selection_properties_over_random_draws():
    rng = random.Random(8)
    for trial in range(150):
        n = rng.choice([1, 2, 5, rng.randint(1, 800)])
        k = rng.choice([1, n, rng.randint(1, n)])
        c = rng.choice([0.0, 0.185, 0.7, 5.0])
        gen = torch.Generator().manual_seed(trial)
        scores = torch.rand(n, generator=gen)
        window = TokenWindow(
            scores, torch.randn(n, 6, generator=gen), torch.randn(n, 4, generator=gen)
        )
        vz = build_selector("visionzip", contextual_to_dominant=c)
        selection = vz.select_window(window, k)
        idx = selection.indices
        assert idx.dtype == torch.long and idx.shape == (k,)
        assert torch.all(idx[1:] > idx[:-1]) and int(idx[0]) >= 0 and int(idx[-1]) < n
        assert selection.tokens(window.hidden).shape == (k, 6)
        assert torch.equal(idx, vz(scores, k))  # the plain call names the same positions
        kc = vz.contextual_count(k)
        top = build_selector("topk")(scores, k - kc) if k > kc else idx[:0]
        assert set(top.tolist()) <= set(idx.tolist())  # dominant tokens survive
        if kc:
            # targets are strided over the remaining tokens: the first remaining token is one
            remaining = sorted(set(range(n)) - set(top.tolist()))
            assert remaining[0] in idx.tolist()


def test_low_precision_hidden_keeps_its_dtype():
    gen = torch.Generator().manual_seed(2)
    n, k = 40, 10
    scores = torch.rand(n, generator=gen)
    hidden = torch.randn(n, 8, generator=gen)
    keys = torch.randn(n, 4, generator=gen)
    vz = build_selector("visionzip", contextual_to_dominant=1.0)
    full = vz.select_window(TokenWindow(scores, hidden, keys), k).embeddings
    half = vz.select_window(TokenWindow(scores, hidden.bfloat16(), keys.bfloat16()), k).embeddings
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), full, atol=0.05, rtol=0.02)


# ---------------------------------------------------------------- what it needs


def test_needs_hidden_and_keys():
    vz = build_selector("visionzip")
    assert vz.needs == frozenset({"hidden", "keys"})
    scores = torch.rand(30)
    with pytest.raises(ValueError, match="TokenWindow.keys"):
        vz.select_window(TokenWindow(scores, torch.randn(30, 4), None), 20)
    with pytest.raises(ValueError, match="TokenWindow.hidden"):
        vz.select_window(TokenWindow(scores, None, torch.randn(30, 4)), 20)
    with pytest.raises(ValueError, match=r"shape \[N=30"):
        vz.select_window(TokenWindow(scores, torch.randn(29, 4), torch.randn(30, 4)), 20)
