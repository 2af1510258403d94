"""Diversity selectors in the LLM input space: `divprune`, `cdpruner` (methods.md §6, §7).

Both read the projected tokens (`TokenWindow.projected`, after the multi-modal projector), as
their originals do (DivPrune slices them out of the LLM input embeddings; CDPruner runs after
`mm_projector`), and return indices only: the kept encoder tokens are projected as usual.

- `divprune` (vbdi/divprune @799e2d95, `DivPrune` in llava_arch.py): greedy max–min diversity
  on D = 1 − cos. First pick: the token farthest from its nearest neighbour (min over j ≠ i);
  then repeatedly the token whose distance to the selected set is largest. Selected tokens are
  masked (AngelSlim's fix), so duplicates (D = 0) never re-pick one. Ties to the lower index.
- `cdpruner` (Theia-4869/CDPruner @9541616c): fast greedy DPP MAP on
  L = diag(r)·S·diag(r), S = cos on projected tokens in fp32. Relevance r:
  `none` (r ≡ 1, SA-MAP's `cdpruner`), `attention` (r = the shared score, used raw as SA-MAP's
  `cdpruner-attention` uses its attention; only that scaling is SA-MAP's: its signal is the
  diagonal of the head-max pooled attention map), `instruction` (our audio port:
  r_i = mean_m cos(x_i, E_m) over the prompt's LLM input embeddings E, min–max normalised as
  CDPruner normalises its CLIP relevance, not negated).
"""

from __future__ import annotations

import torch

from audioprune import flops
from audioprune.selectors.base import (
    Selection,
    TokenWindow,
    WindowSelector,
    ascending,
    check_choice,
    check_inputs,
    register_selector,
    require_field,
)
from audioprune.selectors.merging import cosine_matrix, greedy_dpp_map, unit_rows

RELEVANCE = ("none", "attention", "instruction")


def max_min_diversity(features: torch.Tensor, k: int) -> torch.Tensor:
    """DivPrune's greedy max–min selection. features: [N, D]; k in [1, N] -> [k] long (pick order)."""
    distance = 1.0 - cosine_matrix(features)  # [N, N]
    n, device = distance.shape[0], distance.device
    picked = torch.zeros(k, dtype=torch.long, device=device)
    if n == 1:
        return picked
    off_diagonal = distance + torch.diag(torch.full((n,), float("inf"), device=device))
    nearest = off_diagonal.min(dim=1).values  # distance of each token to its nearest neighbour
    # Picks are [1] tensors that stay on the device (a 0-dim index would be read back as an int).
    j = torch.argmax(nearest).view(1)
    picked[0:1] = j
    to_selected = distance.index_select(0, j)[0]  # min distance to the selected set
    to_selected.index_fill_(0, j, -float("inf"))
    for step in range(1, k):
        j = torch.argmax(to_selected).view(1)
        picked[step : step + 1] = j
        # a picked token stays at -inf: the minimum with its distances cannot raise it
        to_selected = torch.minimum(to_selected, distance.index_select(0, j)[0])
        to_selected.index_fill_(0, j, -float("inf"))
    return picked


def min_max_normalise(r: torch.Tensor) -> torch.Tensor:
    """CDPruner's r ← (r − min + 1e-6) / (max − min); a constant r becomes all ones. [N] -> [N]."""
    span = r.max() - r.min()
    return torch.where(span == 0, torch.ones_like(r), (r - r.min() + 1e-6) / span)


def instruction_relevance(projected: torch.Tensor, instruction: torch.Tensor) -> torch.Tensor:
    """r_i = mean_m cos(x_i, E_m), min–max normalised. projected [N, D], instruction [M, D] -> [N]."""
    return min_max_normalise((unit_rows(projected) @ unit_rows(instruction).T).mean(dim=1))


def dpp_kernel(features: torch.Tensor, relevance: torch.Tensor | None) -> torch.Tensor:
    """L = diag(r)·S·diag(r) with S = cos(features) in fp32; r None means r ≡ 1. -> [N, N]."""
    similarity = cosine_matrix(features)
    if relevance is None:
        return similarity
    r = relevance.float().to(similarity.device)
    return r[:, None] * similarity * r[None, :]


@register_selector("divprune")
class DivPrune(WindowSelector):
    """Greedy max–min diversity (MMDP) on the projected tokens; see the module docstring."""

    needs = frozenset({"projected"})

    def select_window(self, window: TokenWindow, k: int) -> Selection:
        """Selection(indices [K] ascending); the kept tokens are gathered, not merged."""
        check_inputs(window.scores, k)
        projected = require_field(window, "projected", self.name)
        return Selection(ascending(max_min_diversity(projected, k)))

    def selection_flops(self, window: TokenWindow, k: int) -> int:
        """flops.gram_flops(N, D_llm): the distance matrix (the max–min updates are comparisons)."""
        return flops.gram_flops(window.num_tokens, window.projected.shape[1])


@register_selector("cdpruner")
class CDPruner(WindowSelector):
    """Greedy DPP MAP on the projected tokens with relevance none | attention | instruction."""

    def __init__(self, relevance: str = "none"):
        self.relevance = check_choice("cdpruner", "relevance", relevance, RELEVANCE)

    @property
    def needs(self) -> frozenset[str]:  # the instruction is embedded only when it is used
        return frozenset(
            {"projected", "instruction"} if self.relevance == "instruction" else {"projected"}
        )

    def relevance_of(self, window: TokenWindow) -> torch.Tensor | None:
        """r [N] for the window (None for relevance="none")."""
        if self.relevance == "attention":
            return window.scores.float()
        if self.relevance == "instruction":
            instruction = window.instruction
            if instruction is None or instruction.dim() != 2 or instruction.shape[0] < 1:
                raise ValueError(
                    "selector 'cdpruner' with relevance=instruction needs TokenWindow.instruction "
                    f"([M >= 1, D_llm] prompt embeddings), got "
                    f"{None if instruction is None else tuple(instruction.shape)}"
                )
            projected = window.projected
            return instruction_relevance(projected, instruction.to(projected.device))
        return None

    def select_window(self, window: TokenWindow, k: int) -> Selection:
        """Selection(indices [K] ascending); the kept tokens are gathered, not merged."""
        check_inputs(window.scores, k)
        projected = require_field(window, "projected", self.name)
        kernel = dpp_kernel(projected, self.relevance_of(window))
        return Selection(ascending(greedy_dpp_map(kernel, k)))

    def selection_flops(self, window: TokenWindow, k: int) -> int:
        """gram_flops(N, D_llm) + greedy_dpp_flops(N, K) [+ 2·N·M·D_llm for the instruction]."""
        n, d = window.num_tokens, window.projected.shape[1]
        total = flops.gram_flops(n, d) + flops.greedy_dpp_flops(n, k)
        if self.relevance == "instruction":
            total += 2 * n * window.instruction.shape[0] * d
        return total
