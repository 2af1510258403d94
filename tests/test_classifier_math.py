"""Pure math of the classifier family: budgets, patch geometry, statistics, keep-rate schedule,
Kendall τ variants, and the analytic MAC table."""

from __future__ import annotations

import json
import math

import pytest
import torch

from audioprune.classifier import scores as S
from audioprune.classifier.macs_count import model_macs

VIT_B = dict(
    hidden=768, layers=12, intermediate=3072, patch=16, classes=527, prune_layers=(3, 6, 9)
)


def test_stage_counts_follow_the_paper():
    assert S.stage_counts(512, 0.7, 3) == [359, 252, 177]
    assert S.stage_counts(512, 0.5, 3) == [256, 128, 64]
    assert S.stage_counts(512, 0.9, 3) == [461, 415, 374]
    assert S.stage_counts(256, 0.7, 3) == [180, 126, 89]
    assert S.stage_counts(64, 0.5, 3) == [32, 16, 8]
    assert S.stage_counts(64, 0.7, 3) == [45, 32, 23]
    assert S.stage_keep_count(1, 0.1) == 1


def test_time_index_for_both_layouts():
    grid = (8, 4)  # F' = 8 frequency rows, T' = 4 time columns
    ids = torch.arange(32)
    # AST, frequency-major: id = f * T' + t
    assert S.time_index(ids, grid, S.FREQ_MAJOR).tolist() == [i % 4 for i in range(32)]
    # AudioMAE, time-major: id = t * F' + f
    assert S.time_index(ids, grid, S.TIME_MAJOR).tolist() == [i // 8 for i in range(32)]
    key = S.time_major_key(ids, grid, S.FREQ_MAJOR)
    order = torch.argsort(key)
    assert S.time_index(order, grid, S.FREQ_MAJOR).tolist() == sorted([i % 4 for i in range(32)])


@pytest.mark.parametrize("layout", [S.FREQ_MAJOR, S.TIME_MAJOR])
def test_patch_statistics_index_the_right_tile(layout):
    """Patch p's statistic is computed from the tile the model's conv sees as patch p."""
    feats = torch.zeros(1, 64, 32)  # T = 64 frames (4 time patches), F = 32 bins (2 freq patches)
    feats[0, 16:32, 16:32] = 3.0  # time patch 1, frequency patch 1
    stats = S.patch_statistics(feats, 16, layout)
    expected = 1 * 4 + 1 if layout == S.FREQ_MAJOR else 1 * 2 + 1
    assert stats["intensity"][0].argmax().item() == expected
    assert stats["intensity"][0, expected].item() == 3.0
    assert stats["variation"][0, expected].item() == 0.0


def test_patch_statistics_match_the_ast_conv_order():
    """The AST conv (on the transposed input) puts patch (f, t) at index f * T' + t."""
    from torch import nn

    conv = nn.Conv2d(1, 1, 16, 16, bias=False)
    nn.init.constant_(conv.weight, 1 / 256)
    feats = torch.randn(2, 64, 32)
    tiles = conv(feats.unsqueeze(1).transpose(2, 3)).flatten(2)[:, 0]  # HF ASTPatchEmbeddings
    stats = S.patch_statistics(feats, 16, S.FREQ_MAJOR)
    torch.testing.assert_close(tiles, stats["intensity"], atol=1e-6, rtol=0)


def test_keep_rate_schedule_is_the_authors_cosine():
    assert S.keep_rate_schedule(4, 0.5, 5, 15) == 1.0
    assert S.keep_rate_schedule(5, 0.5, 5, 15) == 1.0  # cos(0): still 1 at the first shrink epoch
    assert math.isclose(S.keep_rate_schedule(12.5, 0.5, 5, 15), 0.75)
    assert S.keep_rate_schedule(20, 0.5, 5, 15) == 0.5
    assert S.keep_rate_schedule(3, 1.0, 0, 5) == 1.0


def test_tau_b_equals_scipy_and_the_authors_variant_differs():
    from scipy.stats import kendalltau

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 5, (60,), generator=g).float()  # 5 cluster ranks: many ties
    y = torch.randn(60, generator=g) + 0.3 * x
    counts = S.pair_counts(x, y)
    assert math.isclose(S.tau_b(counts), kendalltau(x, y).statistic, abs_tol=1e-12)
    assert S.tau_ties_concordant(counts) > S.tau_b(counts)  # ties counted as agreement inflate τ
    assert sum(counts.values()) == 60 * 59 // 2


def test_tau_ties_concordant_by_hand():
    x, y = torch.tensor([1.0, 1.0, 2.0]), torch.tensor([1.0, 2.0, 3.0])
    counts = S.pair_counts(x, y)
    assert counts == {"concordant": 2, "discordant": 0, "ties_x": 1, "ties_y": 0, "ties_both": 0}
    assert S.tau_ties_concordant(counts) == 1.0
    assert math.isclose(S.tau_b(counts), 2 / math.sqrt(2 * 3))


@pytest.mark.parametrize(
    "extra,patches,expected",
    [
        (2, 512, [48.63, 41.86, 36.11, 31.28, 27.18, 23.73]),  # AST, 1024 frames
        (1, 512, [48.52, 41.75, 36.01, 31.19, 27.08, 23.64]),  # AudioMAE
        (2, 256, [23.19, 20.10, 17.38, 15.10, 13.13, 11.45]),  # AST, ESC-50
        (1, 64, [5.61, 4.93, 4.30, 3.72, 3.27, 2.81]),  # AudioMAE, SPC-2
    ],
)
def test_vit_b_mac_table_of_the_notes(extra, patches, expected):
    got = [
        round(model_macs({**VIT_B, "extra": extra, "patches": patches}, r)["gmacs"], 2)
        for r in (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)
    ]
    assert got == expected


def test_macs_cli_prints_one_json_object(capsys):
    """`python -m audioprune.macs` is a Hydra app over configs/macs.yaml (the run's tree)."""
    from audioprune.config import compose
    from audioprune.macs import macs_report, main

    main.__wrapped__(compose(["frames=1024", "retention=0.7"], config_name="macs"))
    result = json.loads(capsys.readouterr().out.strip())
    assert result["model"] == "ast_audioset" and result["selector"] == "topk"  # the defaults
    assert result["gmacs"] == pytest.approx(31.28, abs=0.005)
    assert result["percent_of_r1"] == pytest.approx(64.3, abs=0.05)
    assert result["tokens_per_stage"] == [359, 252, 177]
    half = macs_report(compose(["frames=512", "retention=0.5"], config_name="macs"))
    assert half["gmacs"] == pytest.approx(11.45, abs=0.005)


def test_fbank_padding_options():
    """zero: HF's padding (0 in log-mel, normalised); min: the authors' (the clip's minimum)."""
    import numpy as np

    from audioprune.classifier.features import Fbank, FbankSpec

    wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000)).astype(np.float32)  # 0.5 s
    real = 1 + (8000 - 400) // 160  # 48 frames
    zero = Fbank(FbankSpec(frames=128, mean=-6.0, std=5.0, padding="zero"))([wave])[0]
    low = Fbank(FbankSpec(frames=128, mean=-6.0, std=5.0, padding="min"))([wave])[0]
    assert zero.shape == (128, 128)
    assert torch.all(zero[real:] == (0 + 6.0) / 10.0)
    assert torch.allclose(low[real:], low[:real].min().expand(128 - real, 128))
    assert torch.allclose(zero[:real], low[:real], atol=1e-3)  # a zero-mean tone: same frames
    with pytest.raises(ValueError, match="features.padding must be one of zero, min"):
        FbankSpec(padding="edge")
