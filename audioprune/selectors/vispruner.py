"""VisPruner ported to audio: `vispruner` (docs/methods.md).

Source: Theia-4869/VisPruner @aefa01ad, `encode_images` in llava/model/llava_arch.py.
1. T_imp = int(K · important_ratio) important tokens: the top by score (VisPruner: [CLS]
   attention; audio has no CLS, so the shared score, as SA-MAP's audio port does).
2. The other tokens, in descending score, are de-duplicated until T_div = K − T_imp remain:
   split the list alternately into a (even ranks) and b (odd ranks); each a's max cosine to b
   on the encoder tokens before the projector; drop the r = min(`per_round`, R − T_div) a-tokens
   with the highest max-similarity (all of a when r exceeds it); the list becomes [surviving a
   in descending max-similarity, then b], as in the original; repeat.
Selected = important ∪ residual, returned in time order. Ties rank the earlier token first.
"""

from __future__ import annotations

import torch

from audioprune import flops
from audioprune.selectors.base import (
    Selection,
    TokenWindow,
    WindowSelector,
    ascending,
    check_inputs,
    register_selector,
    require_field,
)
from audioprune.selectors.merging import stable_descending, unit_rows
from audioprune.selectors.simple import rank_descending


def deduplicate(
    features: torch.Tensor, order: torch.Tensor, keep: int, per_round: int
) -> torch.Tensor:
    """VisPruner's iterative duplicate removal.

    features: [N, D] (all tokens); order: [R] long candidate indices; keep: T_div; per_round: r
    cap. Returns the [keep] surviving indices (in the list's final order).
    """
    if keep == 0:
        return order[:0]
    unit = unit_rows(features)
    while True:
        r = min(per_round, len(order) - keep)
        if r <= 0:
            return order
        a, b = order[0::2], order[1::2]
        best = (unit[a] @ unit[b].T).max(dim=-1).values
        survivors = stable_descending(best)[r:]
        order = torch.cat([a[survivors], b])


@register_selector("vispruner")
class VisPruner(WindowSelector):
    """Important tokens by score plus diverse tokens by iterative de-duplication.

    important_ratio: share of K taken by score (0.5 in VisPruner); per_round: a-tokens dropped
    per de-duplication round at most (8 in VisPruner; SA-MAP's audio port uses 4).
    """

    needs = frozenset({"hidden"})

    def __init__(self, important_ratio: float = 0.5, per_round: int = 8):
        try:
            ratio = float(important_ratio)
        except (TypeError, ValueError):
            ratio = float("nan")
        if isinstance(important_ratio, bool) or not 0.0 <= ratio <= 1.0:
            raise ValueError(
                "selector 'vispruner': option 'important_ratio' must be a number in [0, 1], "
                f"got {important_ratio!r}"
            )
        if not isinstance(per_round, int) or isinstance(per_round, bool) or per_round < 1:
            raise ValueError(
                f"selector 'vispruner': option 'per_round' must be an int >= 1, got {per_round!r}"
            )
        self.important_ratio = ratio
        self.per_round = per_round

    def select_window(self, window: TokenWindow, k: int) -> Selection:
        """Selection(indices [K] ascending); the kept tokens are gathered, not merged."""
        check_inputs(window.scores, k)
        hidden = require_field(window, "hidden", self.name)
        important = int(k * self.important_ratio)
        order = rank_descending(window.scores.to(hidden.device))
        diverse = deduplicate(hidden, order[important:], k - important, self.per_round)
        return Selection(ascending(torch.cat([order[:important], diverse])))

    def selection_flops(self, window: TokenWindow, k: int) -> int:
        """Σ_rounds flops.bipartite_flops(R_t, D_hidden) over the de-duplication rounds."""
        important = int(k * self.important_ratio)
        sizes = flops.vispruner_round_sizes(
            window.num_tokens - important, k - important, self.per_round
        )
        return sum(flops.bipartite_flops(r, window.hidden.shape[1]) for r in sizes)
