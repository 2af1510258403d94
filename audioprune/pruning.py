"""Apply a selector to one clip's encoder output, window by window.

Budgets are per 30 s window (K_w = keep_count(N_w, retention)); the runner calls this between
the adapter's `encode` and `generate`, so cached encoder outputs serve every selector/retention.
"""

from __future__ import annotations

from dataclasses import replace

from audioprune.budget import keep_count
from audioprune.models.base import EncodedAudio, PrunedAudio
from audioprune.selectors.base import Selector


def prune_clip(
    encoded: EncodedAudio, selector: Selector, retention: float, sample_id: str
) -> PrunedAudio:
    """Select the kept tokens of every window of one clip.

    encoded: the clip's windows (scores [N_w], hidden [N_w, D], keys [N_w, d])
    returns: PrunedAudio with tokens [K_w, D] and ascending indices [K_w] per window.
    """
    tokens, indices, sizes = [], [], []
    for w, window in enumerate(encoded.windows):
        n = window.num_tokens
        k = keep_count(n, retention) if selector.prunes else n
        keyed = replace(window, sample_key=f"{sample_id}#{w}")
        selection = selector.select_window(keyed, k)
        if window.hidden is None:
            raise ValueError(
                "the audio path returned no encoder tokens (TokenWindow.hidden is None)"
            )
        tokens.append(selection.tokens(window.hidden))
        indices.append(selection.indices)
        sizes.append(n)
    return PrunedAudio(
        tokens=tokens, indices=indices, window_sizes=sizes, padding_hidden=encoded.padding_hidden
    )
