"""Hand-worked checks of the attention-analysis math (audioprune.attention_stats)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from audioprune.attention_stats import (
    concentration,
    concentration_curve,
    coverage,
    entropy,
    gini,
    head_agreement,
    mean_std,
    top_share,
)
from audioprune.selectors import build_selector


def test_one_hot_score_puts_all_mass_in_the_top_one_percent():
    scores = torch.zeros(200)
    scores[17] = 3.0
    assert top_share(scores, 0.01) == 1.0  # top 1 % of 200 = 2 tokens, one holds everything
    stats = concentration(scores)
    assert all(stats[f"top_{p}%"] == 1.0 for p in (1, 5, 10, 25, 50))
    assert stats["gini"] == pytest.approx(199 / 200)
    assert stats["entropy"] == 0.0 and stats["normalized_entropy"] == 0.0


def test_uniform_scores_have_gini_zero_and_proportional_shares():
    scores = torch.full((100,), 0.5)
    stats = concentration(scores)
    assert stats["gini"] == pytest.approx(0.0, abs=1e-12)
    assert stats["top_1%"] == pytest.approx(0.01) and stats["top_25%"] == pytest.approx(0.25)
    assert stats["entropy"] == pytest.approx(math.log(100))
    assert stats["normalized_entropy"] == pytest.approx(1.0)
    assert np.allclose(concentration_curve(scores, 11), np.linspace(0, 1, 11))


def test_small_vector_worked_by_hand():
    scores = [4.0, 0.0, 1.0, 3.0]  # total 8; sorted desc 4, 3, 1, 0
    assert top_share(scores, 0.25) == 0.5  # 1 token: 4/8
    assert top_share(scores, 0.50) == 7 / 8  # 2 tokens
    assert top_share(scores, 0.10) == 0.5  # ceil(0.4) = 1 token
    # ascending 0, 1, 3, 4: sum (2i - 5) x_i = -3*0 - 1*1 + 1*3 + 3*4 = 14; / (4 * 8)
    assert gini(scores) == pytest.approx(14 / 32)
    p = np.array([4, 1, 3]) / 8
    assert entropy(scores)[0] == pytest.approx(-(p * np.log(p)).sum())
    curve = concentration_curve(scores, 5)  # x = 0, .25, .5, .75, 1
    assert np.allclose(curve, [0, 0.5, 0.875, 1.0, 1.0])


def test_bad_scores_are_refused():
    with pytest.raises(ValueError, match="non-negative"):
        gini([1.0, -0.5])
    with pytest.raises(ValueError, match="1-D"):
        top_share(torch.ones(2, 3), 0.1)


def test_mean_std_over_clips():
    out = mean_std([{"gini": 0.2}, {"gini": 0.4}, {"gini": float("nan")}])
    assert out["gini"]["mean"] == pytest.approx(0.3)
    assert out["gini"]["std"] == pytest.approx(0.1)
    assert out["gini"]["n"] == 2


def test_head_agreement_kendall_tau_b():
    heads = torch.tensor(
        [
            [1.0, 2.0, 3.0, 4.0],  # ranks like the mean
            [4.0, 3.0, 2.0, 1.0],  # ranks exactly opposite to head 0
            [1.0, 2.0, 3.0, 10.0],
        ]
    )
    # mean = [2, 7/3, 8/3, 5]: strictly increasing, so τ-b = +1 for heads 0 and 2, −1 for head 1
    rows = head_agreement(heads)
    assert [r["kendall_tau_b"] for r in rows] == pytest.approx([1.0, -1.0, 1.0])
    assert rows[2]["top_25%"] == pytest.approx(10 / 16)
    assert rows[0]["gini"] == pytest.approx(gini([1, 2, 3, 4]))
    # ties: τ-b (not τ-a) corrects for them
    # head 0 = [1, 1, 2] vs mean [1, 1.5, 2]: 2 concordant pairs, 0 discordant, one pair tied in
    # the head only: τ-b = 2 / sqrt((3 - 1) * (3 - 0)); τ-a would give 2/3
    tied = head_agreement(torch.tensor([[1.0, 1.0, 2.0], [1.0, 2.0, 2.0]]))
    assert tied[0]["kendall_tau_b"] == pytest.approx(2 / math.sqrt(6))


def test_coverage_worked_by_hand():
    # N = 10, S = 5 segments of 2 tokens: [0,2) [2,4) [4,6) [6,8) [8,10)
    out = coverage([0, 1, 9], num_tokens=10, segments=5, seconds_per_token=0.04)
    assert out["covered_fraction"] == 2 / 5
    assert out["longest_gap_s"] == pytest.approx(7 * 0.04)  # tokens 2..8 pruned
    assert out["max_segment_share"] == 2 / 3
    edge = coverage([5], num_tokens=10, segments=5, seconds_per_token=1.0)
    assert edge["longest_gap_s"] == 5.0  # the clip's start (0..4) counts as a gap
    assert coverage(range(10), 10, 5)["longest_gap_s"] == 0.0
    # S > N: empty segments are not counted
    assert coverage([0, 1, 2], num_tokens=3, segments=5)["covered_fraction"] == 1.0


@pytest.mark.parametrize("fill", [True, False])
def test_segmentwise_covers_every_segment_when_k_at_least_s(fill):
    generator = torch.Generator().manual_seed(0)
    for n, s in [(750, 10), (583, 10), (97, 7), (40, 3)]:
        selector = build_selector("segmentwise_topk", segments=s, fill_remainder=fill)
        for k in (s, s + 1, n // 4, n // 2):
            scores = torch.rand(n, generator=generator) ** 4
            scores[: n // 10] += 10.0  # peaked at the start: Top-K would cluster there
            out = coverage(selector(scores, k), n, segments=s)
            assert out["covered_fraction"] == 1.0, (n, s, k)


def test_topk_on_a_score_peaked_in_one_segment_leaves_segments_uncovered():
    n, s, k = 750, 10, 75
    scores = torch.rand(n, generator=torch.Generator().manual_seed(1)) * 0.01
    scores[300:375] += 1.0  # segment 4 of 10 holds the attention
    topk = coverage(build_selector("topk")(scores, k), n, segments=s)
    assert topk["covered_fraction"] == pytest.approx(0.1)
    assert topk["max_segment_share"] == 1.0
    assert topk["longest_gap_s"] == pytest.approx(375 * 0.04)  # 15 s after the peak
    segmentwise = coverage(build_selector("segmentwise_topk", segments=s)(scores, k), n, s)
    assert segmentwise["covered_fraction"] == 1.0 and segmentwise["max_segment_share"] < 0.2


def test_per_head_statistics_over_windows_and_when_unavailable(tmp_path):
    from types import SimpleNamespace

    from audioprune.analyze import per_head_stats
    from audioprune.figures import concentration_figure, save_figure

    heads = torch.tensor([[1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 10.0]])
    windows = [SimpleNamespace(scores=heads.mean(0), head_scores=heads)] * 2
    out = per_head_stats(windows)
    assert out["available"] and out["windows"] == 2 and len(out["heads"]) == 3
    assert [h["kendall_tau_b"]["mean"] for h in out["heads"]] == pytest.approx([1.0, -1.0, 1.0])
    assert out["heads"][2]["top_25%"]["mean"] == pytest.approx(10 / 16)
    missing = per_head_stats([SimpleNamespace(scores=heads[0], head_scores=None)])
    assert missing["available"] is False and "head_scores" in missing["reason"]

    curve = {"x": np.linspace(0, 1, 5), "mean": np.array([0, 0.5, 0.8, 0.95, 1.0])}
    curve["std"] = np.zeros(5)
    stats = {"gini": {"mean": 0.4, "std": 0.1}, "top_10%": {"mean": 0.3, "std": 0.0}}
    import pandas as pd

    fig, data = concentration_figure(pd.DataFrame(curve), stats, out)
    taus = data[data["panel"] == "kendall_tau_b"]["y"].tolist()
    assert taus == pytest.approx([1.0, -1.0, 1.0])
    paths = save_figure(fig, tmp_path / "concentration", data)
    assert all(p.stat().st_size > 1000 for p in paths[:2])
