"""Rank spectrogram patches by their own statistics instead of attention (arXiv 2504.01690 v2).

`intensity` keeps the patches with the highest mean normalised log-mel value, `variation` those
with the highest standard deviation. They only make sense inside a spectrogram transformer
(classifier family), where the pruning seam hands them the patch statistics of the tokens still
present; they refuse to run on an audio-language model's encoder output.

The authors' version gathered with patch indices from the full sequence, which still starts
with the extra tokens (CLS, DIST): every kept token was shifted by one (AudioMAE) or two (AST)
and CLS/DIST could be dropped. Here the seam offsets patch indices past the extra tokens
(`classifier.scores.gather_tokens`), which always stay.
"""

from __future__ import annotations

from typing import ClassVar

from audioprune.selectors.base import Selection, TokenWindow, register_selector
from audioprune.selectors.simple import TopK


class PatchStatisticTopK(TopK):
    """Top-K over a patch statistic; the classifier seam passes the statistic as `scores`."""

    patch_statistic: ClassVar[str] = ""

    def __init__(self) -> None:  # no attention heads to weight: the statistic is the score
        super().__init__(head_weights="uniform")
        del self.head_weights  # not a parameter of this selector (run records, identity)

    def select_window(self, window: TokenWindow, k: int) -> Selection:
        raise ValueError(
            f"selector {self.name!r} ranks spectrogram patches by their {self.patch_statistic}; "
            "it applies to classifier models (model family 'classifier') only"
        )


@register_selector("intensity")
class IntensityTopK(PatchStatisticTopK):
    """The K patches with the highest mean normalised log-mel value."""

    patch_statistic = "intensity"


@register_selector("variation")
class VariationTopK(PatchStatisticTopK):
    """The K patches with the highest log-mel standard deviation."""

    patch_statistic = "variation"


def statistic_of(selector) -> str | None:
    """Which patch statistic a selector ranks by (None: it ranks by attention)."""
    return getattr(selector, "patch_statistic", None) or None
