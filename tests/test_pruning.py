"""The shared pruning path (`prune_clip`): every selector's answer is checked there, naming the
selector; windows without tokens; the realised count of `segmentwise_topk` without fill."""

from __future__ import annotations

import pytest
import torch

from audioprune.models.base import EncodedAudio
from audioprune.pruning import SelectionError, prune_clip
from audioprune.selectors import Selection, Selector, TokenWindow, build_selector


def clip(*sizes: int, dim: int = 4, seed: int = 0) -> EncodedAudio:
    gen = torch.Generator().manual_seed(seed)
    return EncodedAudio(
        [
            TokenWindow(
                scores=torch.rand(n, generator=gen),
                hidden=torch.randn(n, dim, generator=gen),
                keys=torch.randn(n, 3, generator=gen),
            )
            for n in sizes
        ]
    )


class Returns(Selector):
    """A user selector (no registered name) that answers whatever the test tells it to."""

    def __init__(self, answer):
        self._answer = answer

    def select_window(self, window: TokenWindow, k: int) -> Selection:
        return self._answer(window, k)


BAD = {
    "one too many": (
        lambda w, k: Selection(torch.arange(k + 1)),
        "returned 6 indices .* expected 5",
    ),
    "one too few": (
        lambda w, k: Selection(torch.arange(k - 1)),
        "returned 4 indices .* expected 5",
    ),
    "repeated": (lambda w, k: Selection(torch.tensor([0, 1, 1, 2, 3])), "repeated"),
    "descending": (lambda w, k: Selection(torch.arange(k).flip(0)), "not ascending"),
    "out of range": (lambda w, k: Selection(torch.arange(16, 21)), r"in \[0, 20\)"),
    "negative": (lambda w, k: Selection(torch.arange(-1, 4)), r"in \[0, 20\)"),
    "float indices": (lambda w, k: Selection(torch.arange(k).float()), "integers"),
    "2-D indices": (lambda w, k: Selection(torch.arange(k)[None]), "1-D"),
    "embedding rows != indices": (
        lambda w, k: Selection(torch.arange(k), w.hidden[: k - 1]),
        r"embeddings have shape \(4, 4\), expected .* \(5, 4\)",
    ),
    "embedding width": (
        lambda w, k: Selection(torch.arange(k), torch.zeros(k, 7)),
        r"expected .* \(5, 4\)",
    ),
    "not a Selection": (lambda w, k: torch.arange(k), "returned a Tensor, expected a Selection"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_invalid_selections_are_refused_naming_the_selector(case):
    answer, reason = BAD[case]
    with pytest.raises(SelectionError, match=reason) as err:
        prune_clip(clip(20), Returns(answer), 0.25, "clip-7")  # K = 5
    message = str(err.value)
    assert "'Returns'" in message and "test_pruning.Returns" in message
    assert "sample 'clip-7', window 0" in message


def test_valid_selections_pass_and_reach_the_tokens():
    encoded = clip(20, 9)
    for name in ("topk", "bottomk", "random", "uniform", "segmentwise_topk", "visionzip"):
        pruned = prune_clip(encoded, build_selector(name), 0.5, "a")
        assert [int(i.numel()) for i in pruned.indices] == [10, 4]
        for window, idx, tokens in zip(encoded.windows, pruned.indices, pruned.tokens):
            assert tokens.shape == (idx.numel(), 4)
            if name != "visionzip":  # merged rows differ from the gathered ones by design
                assert torch.equal(tokens, window.hidden[idx])


def test_segmentwise_without_fill_never_sends_an_empty_window():
    # N = 30 at 10 %: K = 3 < S = 10, so the paper's literal S·⌊K/S⌋ is 0.
    encoded = clip(30, 750)
    no_fill = build_selector("segmentwise_topk", segments=10, fill_remainder=False)
    pruned = prune_clip(encoded, no_fill, 0.1, "short")
    topk = build_selector("topk")(encoded.windows[0].scores, 3)
    assert torch.equal(pruned.indices[0], topk)  # the documented rule: global Top-K
    assert [int(t.shape[0]) for t in pruned.tokens] == [3, 70]  # 75 → 10·⌊75/10⌋ = 70
    assert pruned.kept == 73


def test_a_window_without_tokens_keeps_nothing_and_the_rest_is_pruned():
    # AF3: a clip ≤ 20 ms past 30 s has a last window with 0 tokens, as in the stock model.
    encoded = clip(750, 0)
    pruned = prune_clip(encoded, build_selector("topk"), 0.25, "30.01s")
    assert [int(t.shape[0]) for t in pruned.tokens] == [187, 0]
    assert pruned.window_sizes == [750, 0] and pruned.indices[1].dtype == torch.long
    full = prune_clip(encoded, build_selector("none"), 1.0, "30.01s")
    assert full.kept == 750
    with pytest.raises(ValueError, match="sample 'tiny': the audio gives no encoder token"):
        prune_clip(clip(0), build_selector("none"), 1.0, "tiny")
