"""Selectors: hand-worked examples, properties over random draws, registry and shipped configs."""

from __future__ import annotations

import inspect
import random
import re
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from audioprune.selectors import (
    FIELD_METHODS,
    SELECTORS,
    Selection,
    TokenWindow,
    build_selector,
)
from audioprune.selectors.segmentwise import segment_bounds

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "selector"
BUILTIN = {"none", "topk", "bottomk", "random", "uniform", "segmentwise_topk", "visionzip"}
BUILTIN |= set(FIELD_METHODS)  # issue 11: the field's pre-LLM methods
BUILTIN |= {"headrouter_lite"}  # our reconstruction, on encoder heads (selectors/headrouter.py)
BUILTIN |= {"samap_shared"}  # SA-MAP's stages on the shared score: our variant, named apart
IN_LLM = {"fastv", "dart"}  # stage "llm": tested in test_llm_pruning.py
BUILTIN |= {"intensity", "variation"}  # classifier family (patch statistics)


def t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def as_list(indices: torch.Tensor) -> list[int]:
    assert indices.dtype == torch.long
    return indices.tolist()


# ---------------------------------------------------------------- hand-worked: simple selectors

SIX = t([0.1, 0.9, 0.3, 0.9, 0.5, 0.2])


def test_topk_hand_example():
    # highest three: 0.9 @1, 0.9 @3, 0.5 @4
    assert as_list(build_selector("topk")(SIX, 3)) == [1, 3, 4]


def test_topk_ties_go_to_earlier_token():
    # 0.9 appears at 1 and 3; k=1 keeps the earlier one
    assert as_list(build_selector("topk")(SIX, 1)) == [1]
    # all equal: the first k in time
    assert as_list(build_selector("topk")(torch.ones(7), 3)) == [0, 1, 2]


def test_bottomk_hand_example_and_ties():
    # lowest two: 0.1 @0, 0.2 @5
    assert as_list(build_selector("bottomk")(SIX, 2)) == [0, 5]
    # 0.2 at 1 and 2: k=1 keeps the earlier one
    assert as_list(build_selector("bottomk")(t([0.5, 0.2, 0.2, 0.7]), 1)) == [1]
    assert as_list(build_selector("bottomk")(torch.ones(7), 3)) == [0, 1, 2]


def test_uniform_hand_examples():
    uniform = build_selector("uniform")
    scores = torch.zeros(10)
    # floor((i + 0.5) * 10 / 3) = floor(1.67), floor(5.0), floor(8.33)
    assert as_list(uniform(scores, 3)) == [1, 5, 8]
    # floor((i + 0.5) * 10 / 4) = floor(1.25), floor(3.75), floor(6.25), floor(8.75)
    assert as_list(uniform(scores, 4)) == [1, 3, 6, 8]
    assert as_list(uniform(scores, 1)) == [5]  # the middle token
    assert as_list(uniform(scores, 10)) == list(range(10))
    # 750 tokens at 25 %: K = 187, spacing 750/187 ≈ 4.01
    picked = uniform(torch.zeros(750), 187)
    assert picked[0] == 2 and picked[-1] == 747  # floor(0.5·750/187), floor(186.5·750/187)


def test_uniform_ignores_scores():
    a = build_selector("uniform")(torch.rand(50), 7)
    b = build_selector("uniform")(-torch.rand(50), 7)
    assert torch.equal(a, b)


def test_none_keeps_everything_and_refuses_pruning():
    none = build_selector("none")
    assert none.prunes is False
    assert all(SELECTORS[name].prunes for name in BUILTIN - {"none"})
    assert as_list(none(SIX, 6)) == [0, 1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="k=N"):
        none(SIX, 3)


# ---------------------------------------------------------------- hand-worked: segmentwise

# N=10, S=3 -> segments [0..3] (4 tokens), [4..6] (3), [7..9] (3)
SEG = t([0.90, 0.80, 0.75, 0.20, 0.30, 0.05, 0.40, 0.60, 0.70, 0.15])


def test_segment_layout_matches_tensor_split():
    for n in range(0, 25):
        for s in range(1, 30):
            expected = [
                (int(p[0]), int(p[-1]) + 1) if len(p) else None
                for p in torch.tensor_split(torch.arange(n), s)
            ]
            got = segment_bounds(n, s)
            assert len(got) == s
            for (start, stop), exp in zip(got, expected):
                if exp is None:
                    assert start == stop
                else:
                    assert (start, stop) == exp


def test_segmentwise_n10_s3_k5_with_fill():
    # k//S = 1 per segment: seg0 -> 0 (0.90), seg1 -> 6 (0.40), seg2 -> 8 (0.70).
    # 2 missing: best unchosen are 1 (0.80) and 2 (0.75).
    seg = build_selector("segmentwise_topk", segments=3)
    assert as_list(seg(SEG, 5)) == [0, 1, 2, 6, 8]
    # global Top-K differs: it takes 7 (0.60) instead of 6 (0.40), leaving segment 1 empty
    assert as_list(build_selector("topk")(SEG, 5)) == [0, 1, 2, 7, 8]


def test_segmentwise_n10_s3_k5_without_fill():
    # the paper's literal S·⌊K/S⌋ = 3 tokens: one per segment
    seg = build_selector("segmentwise_topk", segments=3, fill_remainder=False)
    assert as_list(seg(SEG, 5)) == [0, 6, 8]


def test_segmentwise_k_equals_n():
    # fill: every token. No fill: ⌊10/3⌋ = 3 per segment, seg0 (4 tokens) drops its lowest, 3 (0.20)
    assert as_list(build_selector("segmentwise_topk", segments=3)(SEG, 10)) == list(range(10))
    no_fill = build_selector("segmentwise_topk", segments=3, fill_remainder=False)
    assert as_list(no_fill(SEG, 10)) == [0, 1, 2, 4, 5, 6, 7, 8, 9]


def test_segmentwise_k_equals_one():
    # ⌊1/3⌋ = 0 per segment: the single best token (0 @ 0.90), with or without fill
    assert as_list(build_selector("segmentwise_topk", segments=3)(SEG, 1)) == [0]
    no_fill = build_selector("segmentwise_topk", segments=3, fill_remainder=False)
    assert as_list(no_fill(SEG, 1)) == [0]
    # S=1 is global Top-K
    assert as_list(build_selector("segmentwise_topk", segments=1)(SEG, 1)) == [0]


def test_segmentwise_more_segments_than_k():
    # N=10, S=6, k=4: ⌊4/6⌋ = 0 per segment, so fill = global Top-K: 0.90 @0, 0.80 @1, 0.75 @2, 0.70 @8
    seg = build_selector("segmentwise_topk", segments=6)
    assert as_list(seg(SEG, 4)) == [0, 1, 2, 8]
    # without fill the literal S·⌊K/S⌋ = 0 would send nothing: the rule is global Top-K instead
    no_fill = build_selector("segmentwise_topk", segments=6, fill_remainder=False)
    assert as_list(no_fill(SEG, 4)) == [0, 1, 2, 8]
    assert no_fill.expected_count(10, 4) == 4


def test_segmentwise_more_segments_than_tokens():
    # N=4, S=6: segments of sizes 1,1,1,1,0,0; ⌊3/6⌋ = 0, so Top-3 by fill: 0.9 @1, 0.7 @3, 0.3 @0
    scores = t([0.3, 0.9, 0.1, 0.7])
    assert as_list(build_selector("segmentwise_topk", segments=6)(scores, 3)) == [0, 1, 3]
    assert as_list(build_selector("segmentwise_topk", segments=6)(scores, 4)) == [0, 1, 2, 3]
    no_fill = build_selector("segmentwise_topk", segments=6, fill_remainder=False)
    assert as_list(no_fill(scores, 4)) == [0, 1, 2, 3]


def test_segmentwise_uneven_segments():
    # N=12, S=5 -> sizes 3,3,2,2,2: [0-2], [3-5], [6-7], [8-9], [10-11]; k=7 -> 1 each + 2 fill
    scores = t([0.1, 0.2, 0.3, 0.9, 0.8, 0.7, 0.05, 0.06, 0.5, 0.4, 0.01, 0.02])
    # per segment: 2 (0.3), 3 (0.9), 7 (0.06), 8 (0.5), 11 (0.02); fill: 4 (0.8), 5 (0.7)
    seg = build_selector("segmentwise_topk", segments=5)
    assert as_list(seg(scores, 7)) == [2, 3, 4, 5, 7, 8, 11]
    no_fill = build_selector("segmentwise_topk", segments=5, fill_remainder=False)
    assert as_list(no_fill(scores, 7)) == [2, 3, 7, 8, 11]


def test_segmentwise_ties_go_to_earlier_token():
    # all equal, N=10, S=3, k=5: first token of each segment (0, 4, 7), then fill 1, 2
    seg = build_selector("segmentwise_topk", segments=3)
    assert as_list(seg(torch.ones(10), 5)) == [0, 1, 2, 4, 7]


# ---------------------------------------------------------------- properties over random draws


def random_draws(count: int, seed: int, max_n: int = 400):
    rng = random.Random(seed)
    for _ in range(count):
        n = rng.choice([1, 2, 3, rng.randint(1, 40), rng.randint(1, max_n)])
        k = rng.choice([1, n, rng.randint(1, n)])
        s = rng.choice([1, 2, rng.randint(1, 25), n + rng.randint(0, 5)])
        yield n, k, s, rng.randrange(2**31)


def property_selectors(segments: int) -> list:
    return [
        build_selector("topk"),
        build_selector("bottomk"),
        build_selector("random", seed=3),
        build_selector("uniform"),
        build_selector("segmentwise_topk", segments=segments),
        build_selector("visionzip"),
        build_selector("visionzip", contextual_to_dominant=1.5),
    ]


def assert_valid(indices: torch.Tensor, n: int, k: int, label: str) -> None:
    assert indices.dtype == torch.long, label
    assert indices.dim() == 1 and indices.numel() == k, label
    assert len(set(indices.tolist())) == k, f"{label}: duplicates"
    if k:
        assert int(indices.min()) >= 0 and int(indices.max()) < n, label
        assert torch.all(indices[1:] > indices[:-1]), f"{label}: not ascending"


def test_every_selector_returns_exactly_k_distinct_ascending_indices():
    for n, k, s, seed in random_draws(250, seed=0):
        scores = torch.rand(n, generator=torch.Generator().manual_seed(seed))
        if seed % 3 == 0:  # exercise ties too
            scores = (scores * 4).round()
        for selector in property_selectors(s):
            label = f"{selector!r} n={n} k={k}"
            assert_valid(selector(scores, k, sample_key=str(seed)), n, k, label)
            selection = selector.select_window(
                TokenWindow(scores, torch.randn(n, 3), torch.randn(n, 2), str(seed)), k
            )
            assert isinstance(selection, Selection)
            assert_valid(selection.indices, n, k, label)


def test_none_returns_all_indices_for_any_n():
    for n in (1, 2, 17, 750):
        assert torch.equal(build_selector("none")(torch.rand(n), n), torch.arange(n))


def test_topk_and_bottomk_keep_the_extremes():
    gen = torch.Generator().manual_seed(1)
    for n, k, _, _ in random_draws(200, seed=1):
        scores = torch.rand(n, generator=gen)
        top = build_selector("topk")(scores, k)
        bottom = build_selector("bottomk")(scores, k)
        rest_top = torch.ones(n, dtype=torch.bool)
        rest_top[top] = False
        rest_bottom = torch.ones(n, dtype=torch.bool)
        rest_bottom[bottom] = False
        if k < n:
            assert scores[top].min() >= scores[rest_top].max()
            assert scores[bottom].max() <= scores[rest_bottom].min()
        assert torch.isclose(scores[top].sum(), torch.topk(scores, k).values.sum())


def test_ties_go_to_earlier_tokens_in_full_size_windows():
    # Few distinct values over 750 tokens: an unstable sort kernel reorders equal scores here.
    gen = torch.Generator().manual_seed(9)
    for trial in range(20):
        scores = torch.randint(0, 4, (750,), generator=gen).float()
        k = 50 + 30 * trial
        values = scores.tolist()
        by_high = sorted(range(750), key=lambda i: (-values[i], i))[:k]
        by_low = sorted(range(750), key=lambda i: (values[i], i))[:k]
        assert build_selector("topk")(scores, k).tolist() == sorted(by_high)
        assert build_selector("bottomk")(scores, k).tolist() == sorted(by_low)


def test_uniform_spacing_is_even():
    for n, k, _, _ in random_draws(300, seed=2, max_n=2000):
        picked = build_selector("uniform")(torch.zeros(n), k)
        gaps = set(torch.diff(picked).tolist())
        assert gaps <= {n // k, -(-n // k)}, (n, k, gaps)
        # the first slice's centre and the last slice's centre
        assert int(picked[0]) == n // (2 * k)
        assert int(picked[-1]) == ((2 * k - 1) * n) // (2 * k)


def test_segmentwise_with_fill_only_skips_scores_it_had_to():
    """Any chosen token scoring below an unchosen one must be a forced per-segment pick."""
    gen = torch.Generator().manual_seed(4)
    for n, k, s, _ in random_draws(250, seed=4):
        scores = torch.rand(n, generator=gen)  # distinct with probability 1
        picked = build_selector("segmentwise_topk", segments=s)(scores, k)
        chosen = torch.zeros(n, dtype=torch.bool)
        chosen[picked] = True
        per = k // s
        forced = torch.zeros(n, dtype=torch.bool)
        for part in torch.tensor_split(torch.arange(n), s):
            counted = int(chosen[part].sum())
            assert counted >= min(per, len(part)), (n, k, s)
            if per and len(part):
                forced[part[torch.topk(scores[part], min(per, len(part))).indices]] = True
        assert torch.all(chosen[forced])
        if k < n:
            best_unchosen = scores[~chosen].max()
            assert torch.all(scores[chosen & ~forced] >= best_unchosen), (n, k, s)


def test_segmentwise_without_fill_keeps_s_times_floor_k_over_s():
    gen = torch.Generator().manual_seed(5)
    for n, k, s, _ in random_draws(250, seed=5):
        scores = torch.rand(n, generator=gen)
        picked = build_selector("segmentwise_topk", segments=s, fill_remainder=False)(scores, k)
        assert torch.all(picked[1:] > picked[:-1])
        if k < s:  # the literal count is 0: global Top-K instead, never an empty selection
            assert as_list(picked) == as_list(build_selector("topk")(scores, k)), (n, k, s)
            continue
        # ⌊K/S⌋ ≤ ⌊N/S⌋ ≤ every segment's size, so the cap never binds
        assert picked.numel() == s * (k // s)
        per = k // s
        for part in torch.tensor_split(torch.arange(n), s):
            inside = picked[(picked >= part[0]) & (picked <= part[-1])] if len(part) else picked[:0]
            assert inside.numel() == (per if len(part) else 0)
            assert set(inside.tolist()) == set(part[torch.topk(scores[part], per).indices].tolist())


def test_segmentwise_with_one_segment_is_topk():
    gen = torch.Generator().manual_seed(6)
    for n, k, _, _ in random_draws(100, seed=6):
        scores = (torch.rand(n, generator=gen) * 5).round()  # with ties
        for fill in (True, False):
            seg = build_selector("segmentwise_topk", segments=1, fill_remainder=fill)
            assert torch.equal(seg(scores, k), build_selector("topk")(scores, k))


# ---------------------------------------------------------------- random selector seeding


def test_random_is_seeded_per_sample_independent_of_call_order():
    keys = [f"clip_{i}.wav#0" for i in range(30)]
    scores = torch.rand(300)
    first = {key: build_selector("random")(scores, 40, sample_key=key) for key in keys}
    shuffled = list(keys)
    random.Random(0).shuffle(shuffled)
    selector = build_selector("random")  # one instance, other order, other calls in between
    for key in shuffled:
        selector(scores, 40, sample_key="something else")
        assert torch.equal(selector(scores, 40, sample_key=key), first[key])
    distinct = {tuple(v.tolist()) for v in first.values()}
    assert len(distinct) == len(keys), "different samples must get different tokens"


def test_random_depends_on_seed_not_on_scores():
    a = build_selector("random", seed=0)(torch.rand(200), 20, sample_key="x")
    b = build_selector("random", seed=0)(torch.rand(200), 20, sample_key="x")
    c = build_selector("random", seed=1)(torch.rand(200), 20, sample_key="x")
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_random_covers_positions_uniformly():
    counts = torch.zeros(20)
    selector = build_selector("random")
    for i in range(2000):
        counts[selector(torch.zeros(20), 5, sample_key=str(i))] += 1
    # each position is kept with probability 5/20: expected 500, sd ≈ 19
    assert counts.min() > 420 and counts.max() < 580, counts


# ---------------------------------------------------------------- input checks and registry


@pytest.mark.parametrize("name", sorted(BUILTIN - {"none"}))
def test_bad_calls_raise(name):
    selector = build_selector(name)
    with pytest.raises(ValueError, match="k must be in"):
        selector(torch.rand(5), 0)
    with pytest.raises(ValueError, match="k must be in"):
        selector(torch.rand(5), 6)
    with pytest.raises(ValueError, match="1-D"):
        selector(torch.rand(2, 5), 2)
    with pytest.raises(TypeError):
        selector(torch.rand(5), 2.0)


@pytest.mark.parametrize("name", ["topk", "bottomk", "segmentwise_topk", "visionzip"])
def test_nan_scores_are_refused(name):
    with pytest.raises(ValueError, match="NaN"):
        build_selector(name)(t([0.1, float("nan"), 0.3]), 2)


def test_unknown_selector_lists_valid_names():
    with pytest.raises(ValueError) as err:
        build_selector("segmentwise")
    message = str(err.value)
    assert "segmentwise" in message
    for name in BUILTIN:
        assert name in message


@pytest.mark.parametrize(
    ("name", "params", "option"),
    [
        ("segmentwise_topk", {"segments": 0}, "segments"),
        ("segmentwise_topk", {"segments": -3}, "segments"),
        ("segmentwise_topk", {"segments": 2.5}, "segments"),
        ("segmentwise_topk", {"segments": "10"}, "segments"),
        ("segmentwise_topk", {"segments": True}, "segments"),
        ("segmentwise_topk", {"fill_remainder": "yes"}, "fill_remainder"),
        ("random", {"seed": "a"}, "seed"),
        ("random", {"seed": 1.5}, "seed"),
        ("visionzip", {"contextual_to_dominant": -0.1}, "contextual_to_dominant"),
        ("visionzip", {"contextual_to_dominant": float("nan")}, "contextual_to_dominant"),
        ("visionzip", {"contextual_to_dominant": float("inf")}, "contextual_to_dominant"),
        ("visionzip", {"contextual_to_dominant": "lots"}, "contextual_to_dominant"),
        ("visionzip", {"merge": "sum"}, "merge"),
        ("topk", {"segments": 3}, "unknown parameter(s) segments; it accepts: head_weights"),
        ("none", {"seed": 0}, "unknown parameter(s) seed"),
        ("segmentwise_topk", {"segment": 3}, "segment"),  # typo of `segments`
    ],
)
def test_bad_parameters_raise_clear_errors(name, params, option):
    with pytest.raises(ValueError, match=re.escape(option)) as err:
        build_selector(name, **params)
    assert name in str(err.value)


def test_params_are_recorded():
    assert build_selector("segmentwise_topk", segments=5).params() == {
        "segments": 5,
        "fill_remainder": True,
        "head_weights": "uniform",
    }
    assert build_selector("visionzip").params() == {
        "contextual_to_dominant": 0.185,
        "merge": "target",
        "head_weights": "uniform",
    }
    assert build_selector("random", seed=7).params() == {"seed": 7}
    assert build_selector("topk").params() == {"head_weights": "uniform"}
    assert build_selector("topk", head_weights="entropy").params() == {"head_weights": "entropy"}


# ---------------------------------------------------------------- shipped configs


def selector_configs() -> list[Path]:
    return sorted(CONFIG_DIR.glob("*.yaml"))


def test_every_builtin_selector_has_a_config():
    assert {path.stem for path in selector_configs()} == BUILTIN | IN_LLM
    assert BUILTIN | IN_LLM <= set(SELECTORS)
    assert {name for name in SELECTORS if SELECTORS[name].stage == "llm"} == IN_LLM


@pytest.mark.parametrize("path", selector_configs(), ids=lambda p: p.stem)
def test_config_builds_and_lists_every_default(path):
    text = path.read_text()
    assert text.startswith("#"), f"{path.name}: first line should be a comment saying what it is"
    # Resolved: a default may come from the model config (fastv/dart's layer), 2 without one.
    cfg = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    name = cfg.pop("name")
    assert name == path.stem
    selector = build_selector(name, **cfg)
    assert selector.name == name
    # the YAML documents every parameter with the class default, so overrides are discoverable
    signature = inspect.signature(type(selector).__init__)
    defaults = {
        key: p.default
        for key, p in signature.parameters.items()
        if key != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
    assert cfg == defaults
    assert selector.params() == defaults
    # and the built selector works
    n = 40
    k = n if not selector.prunes else 10
    if selector.stage == "llm":  # on what LLM layer K-1 gives it: 40 audio among 50 positions
        from audioprune.selectors.llm import AudioGroup, LLMLayerState

        state = LLMLayerState(
            keys=torch.randn(2, 50, 8),
            scaling=0.35,
            queries=torch.randn(4, 50, 8),
            hidden=torch.randn(50, 16),
            text_after=torch.arange(45, 50),
        )
        kept = selector.select_llm(state, [AudioGroup(5, n, k)])
        assert kept.numel() == k and 5 <= kept.min() and kept.max() < 45
        return
    if getattr(selector, "patch_statistic", None):  # classifier family: scores are the statistic
        assert selector(torch.rand(n), k).numel() == k
        return
    window = TokenWindow(
        torch.rand(n),
        hidden=torch.randn(n, 8),
        keys=torch.randn(n, 4),
        projected=torch.randn(n, 6),
        instruction=torch.randn(2, 6),
        head_scores=torch.rand(3, n),
        head_max_scores=torch.rand(n),
        self_scores=torch.rand(n),
        sample_key="a",
    )
    assert selector.select_window(window, k).indices.numel() == k


def test_config_override_reaches_the_selector():
    cfg = OmegaConf.load(CONFIG_DIR / "segmentwise_topk.yaml")
    cfg.merge_with(OmegaConf.from_dotlist(["segments=5", "fill_remainder=false"]))
    params = OmegaConf.to_container(cfg)
    selector = build_selector(params.pop("name"), **params)
    assert selector.segments == 5 and selector.fill_remainder is False
    # N=10, S=5, k=7: one per segment of two, no fill -> 5 tokens
    assert selector(torch.rand(10), 7).numel() == 5
