"""VisionZip (Yang et al., CVPR 2025) ported to audio tokens.

VisionZip keeps K − Kc *dominant* tokens (highest score) and builds Kc *contextual* tokens by
merging the rest: the remaining tokens are strided into Kc targets, every other remaining token
joins the target whose key is most cosine-similar, and each contextual token is
`target hidden + mean(hidden of the tokens that joined it)` — VisionZip's formula, not a plain
group mean (offered as `merge="mean"`). Kc = round(K·c/(1+c)) with c = contextual_to_dominant;
the default 0.185 is VisionZip's 54 + 10 split.

Differences from the original, both forced by audio: the score is the shared received-attention
score (audio encoders have no CLS token), and the output is in time order — a contextual token
sits at its target's position — where VisionZip appends the contextual tokens after the
dominant ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from audioprune.selectors.base import (
    Selection,
    Selector,
    TokenWindow,
    ascending,
    check_inputs,
    register_selector,
)
from audioprune.selectors.heads import HeadWeighted
from audioprune.selectors.simple import rank_descending

MERGE_MODES = ("target", "mean")


@dataclass
class VisionZipPlan:
    """Which tokens are dominant, which remaining tokens are targets (all [.] long, time order).

    dominant:  [K − Kc] the top K − Kc by score
    remaining: [R]      every other token, R = N − (K − Kc)
    targets:   [Kc]     remaining[::step][:Kc] with step = max(1, R // Kc)
    """

    dominant: torch.Tensor
    remaining: torch.Tensor
    targets: torch.Tensor

    @property
    def kept(self) -> torch.Tensor:
        """[K] long ascending: the positions the selection occupies."""
        return ascending(torch.cat([self.dominant, self.targets]))


@register_selector("visionzip")
class VisionZip(HeadWeighted, Selector):
    """Dominant tokens by score plus contextual tokens merged by key similarity.

    head_weights: what "score" means: "uniform" (the shared score), "entropy" or a profile file
    (`selectors.heads`).
    """

    needs = frozenset({"hidden", "keys"})

    def __init__(
        self,
        contextual_to_dominant: float = 0.185,
        merge: str = "target",
        head_weights: str = "uniform",
    ):
        try:
            ratio = float(contextual_to_dominant)
        except (TypeError, ValueError):
            ratio = float("nan")
        if isinstance(contextual_to_dominant, bool) or not math.isfinite(ratio) or ratio < 0:
            raise ValueError(
                "selector 'visionzip': option 'contextual_to_dominant' must be a finite number >= 0 "
                f"(contextual tokens per dominant token), got {contextual_to_dominant!r}"
            )
        if merge not in MERGE_MODES:
            raise ValueError(
                f"selector 'visionzip': option 'merge' must be one of {', '.join(MERGE_MODES)}, "
                f"got {merge!r}"
            )
        self.contextual_to_dominant = ratio
        self.merge = merge
        self._init_head_weights(head_weights)

    def contextual_count(self, k: int) -> int:
        """Kc = round(K · c / (1 + c)), rounding halves up; the K − Kc others are dominant."""
        c = self.contextual_to_dominant
        return min(k, math.floor(k * c / (1.0 + c) + 0.5))

    def plan(self, scores: torch.Tensor, k: int) -> VisionZipPlan:
        """Dominant / remaining / target indices for a window: scores [N] float, k in [1, N]."""
        n = check_inputs(scores, k)
        kc = self.contextual_count(k)
        order = rank_descending(scores)
        dominant = ascending(order[: k - kc])
        remaining = ascending(order[k - kc :])  # R = n - (k - kc) >= kc because k <= n
        if kc == 0:
            return VisionZipPlan(dominant, remaining, remaining[:0])
        step = max(1, (n - (k - kc)) // kc)
        targets = remaining[::step][:kc].contiguous()
        return VisionZipPlan(dominant, remaining, targets)

    def __call__(self, scores: torch.Tensor, k: int, *, sample_key: str = "") -> torch.Tensor:
        """Positions kept (dominant ∪ targets): [K] long ascending. Merging needs select_window."""
        return self.plan(scores, k).kept

    def select_window(self, window: TokenWindow, k: int) -> Selection:
        """Selection(indices [K] ascending, embeddings [K, D]) with contextual tokens merged."""
        plan = self.plan(self.window_scores(window), k)
        kept = plan.kept
        if len(plan.targets) == 0:  # Kc == 0: plain Top-K, nothing to merge
            if window.hidden is None:
                return Selection(kept)
            return Selection(kept, window.hidden[kept.to(window.hidden.device)])
        hidden, keys = self._check_window(window)
        device = hidden.device
        targets = plan.targets.to(device)
        # Tokens that merge into targets: remaining minus the targets themselves.
        is_target = torch.zeros(window.num_tokens, dtype=torch.bool, device=device)
        is_target[targets] = True
        remaining = plan.remaining.to(device)
        # remaining minus targets, in order; R − Kc of them (a stable sort puts non-targets
        # first), so no count is read back from the device
        order = torch.sort(is_target[remaining].to(torch.uint8), stable=True).indices
        joiners = remaining[order[: len(remaining) - len(targets)]]

        unit_keys = F.normalize(keys.float(), dim=-1)
        similarity = unit_keys[joiners] @ unit_keys[targets].T  # [R − Kc, Kc]
        assignment = similarity.argmax(dim=1)  # ties go to the earlier target
        kc = len(targets)
        counts = torch.bincount(assignment, minlength=kc).to(torch.float32)  # [Kc]
        sums = torch.zeros(kc, hidden.shape[1], dtype=torch.float32, device=device)
        sums.index_add_(0, assignment, hidden[joiners].float())
        target_hidden = hidden[targets].float()
        if self.merge == "target":
            # VisionZip: target + mean of joiners; a target nobody joined adds 0/1 = 0.
            contextual = target_hidden + sums / counts.clamp(min=1)[:, None]
        else:
            contextual = (target_hidden + sums) / (1 + counts)[:, None]

        embeddings = hidden[kept.to(device)].clone()
        rows = torch.searchsorted(kept.to(device), targets)  # where each target sits in `kept`
        embeddings[rows] = contextual.to(hidden.dtype)
        return Selection(kept, embeddings)

    def _check_window(self, window: TokenWindow) -> tuple[torch.Tensor, torch.Tensor]:
        n = window.num_tokens
        for field in ("hidden", "keys"):
            value = getattr(window, field)
            if value is None:
                raise ValueError(
                    f"selector 'visionzip' needs TokenWindow.{field} ([N, *] per token) to merge "
                    "contextual tokens, got None"
                )
            if value.dim() != 2 or value.shape[0] != n:
                raise ValueError(
                    f"selector 'visionzip': TokenWindow.{field} must have shape [N={n}, *], "
                    f"got {tuple(value.shape)}"
                )
        return window.hidden, window.keys.to(window.hidden.device)
