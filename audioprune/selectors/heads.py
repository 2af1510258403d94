"""Head-aware scores: weighting the last encoder layer's heads instead of averaging them.

`TokenWindow.head_scores` ([H, N], per-head received attention pooled like the shared score) is
turned into the [N] score a selector ranks by, by a weight per head:
- `uniform`: 1/H each, i.e. exactly the shared score (`TokenWindow.scores`, no head_scores needed);
- `entropy`: per window, w_h ∝ selectivity_h = 1 − H(p_h) / log N, where p_h is head h's received
  attention normalised over the window's N tokens: heads that single out few tokens count more
  (all-uniform heads fall back to 1/H);
- a saved profile (path to a JSON file `{"head_weights": [w_0, ..., w_{H-1}]}`, non-negative,
  normalised to sum 1 on load), e.g. from a calibration set (`save_head_profile`).
Score_j = Σ_h w_h · head_scores[h, j], so uniform weights give the mean over heads (the shared
score's scale) and any weighting keeps it.

Attention-based selectors take it as a `head_weights` option (`HeadWeighted`); it is applied in
`select_window`, so their `__call__(scores, k)` math stays pure. `headrouter_lite` (our
reconstruction of HeadRouter on encoder heads, `audioprune.selectors.headrouter`) builds on the
same helpers.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import torch

from audioprune.selectors.base import TokenWindow, on_host

HEAD_WEIGHT_MODES = ("uniform", "entropy")


def head_distributions(head_scores: torch.Tensor) -> torch.Tensor:
    """Each head's received attention normalised over the window: [H, N] -> [H, N] rows summing
    to 1 (a head that received nothing gets the uniform row)."""
    scores = head_scores.double().clamp(min=0)
    mass = scores.sum(dim=1, keepdim=True)
    uniform = torch.full_like(scores, 1.0 / max(1, scores.shape[1]))
    return torch.where(mass > 0, scores / mass.clamp(min=1e-300), uniform)


def head_selectivity(head_scores: torch.Tensor) -> torch.Tensor:
    """1 − normalised entropy of each head's received attention: [H, N] -> [H] float64 in [0, 1].

    0 for a head spreading its attention evenly over the N tokens, 1 for one putting it all on a
    single token; 0 for every head when N = 1 (no choice to make).
    """
    n = head_scores.shape[1]
    if n < 2:
        return torch.zeros(head_scores.shape[0], dtype=torch.float64)
    p = head_distributions(head_scores)
    entropy = -(p * torch.log(p.clamp(min=1e-300))).sum(dim=1)
    return (1.0 - entropy / math.log(n)).clamp(min=0.0, max=1.0)


def normalise_weights(weights: torch.Tensor, what: str = "head weights") -> torch.Tensor:
    """[H] non-negative -> [H] float64 summing to 1; all-zero -> uniform."""
    w = weights.double()
    if w.dim() != 1 or w.numel() == 0:
        raise ValueError(
            f"{what} must be a non-empty 1-D list of numbers, got shape {tuple(w.shape)}"
        )
    if on_host(w) and (not bool(torch.isfinite(w).all()) or bool((w < 0).any())):
        raise ValueError(f"{what} must be finite and >= 0, got {w.tolist()}")
    total = w.sum()
    return torch.where(total > 0, w / total, torch.full_like(w, 1.0 / w.numel()))


def entropy_weights(head_scores: torch.Tensor) -> torch.Tensor:
    """Per-window head weights ∝ selectivity (see `head_selectivity`): [H, N] -> [H] summing to 1."""
    return normalise_weights(head_selectivity(head_scores))


def weighted_scores(head_scores: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Σ_h w_h · head_scores[h]: [H, N] and [H] (summing to 1) -> [N] float32."""
    if weights.shape != head_scores.shape[:1]:
        raise ValueError(
            f"{weights.numel()} head weights for {head_scores.shape[0]} heads "
            f"(head_scores [H={head_scores.shape[0]}, N])"
        )
    return (weights.to(torch.float64) @ head_scores.double()).to(torch.float32)


def load_head_profile(path: str | Path) -> torch.Tensor:
    """A saved head-weight profile: JSON {"head_weights": [H numbers >= 0]} -> [H] summing to 1."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"head_weights: profile file {str(path)!r} does not exist; expected 'uniform', "
            "'entropy' or the path of a JSON file {\"head_weights\": [...]}"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"head_weights: cannot read profile file {str(path)!r}: {err}") from err
    values = data.get("head_weights") if isinstance(data, dict) else None
    if not isinstance(values, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    ):
        raise ValueError(
            f"head_weights: profile file {str(path)!r} needs a field 'head_weights' holding a "
            f"list of numbers (one per encoder head), got {values!r}"
        )
    return normalise_weights(torch.tensor(values, dtype=torch.float64), f"{path}: head_weights")


def save_head_profile(path: str | Path, weights: torch.Tensor, **meta) -> Path:
    """Write {"head_weights": [...], **meta} (e.g. model, calibration set) to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    weights = normalise_weights(torch.as_tensor(weights))
    path.write_text(json.dumps({"head_weights": weights.tolist(), **meta}, indent=1) + "\n")
    return path


def profile_from_windows(head_scores: list[torch.Tensor]) -> torch.Tensor:
    """A calibration profile: mean selectivity per head over windows ([H, N_i] each) -> [H]."""
    if not head_scores:
        raise ValueError("profile_from_windows: no calibration windows")
    return normalise_weights(torch.stack([head_selectivity(h) for h in head_scores]).mean(dim=0))


class HeadWeighting:
    """The parsed `head_weights` option of one selector: `scores(window)` -> [N] float32."""

    def __init__(self, spec: str, selector: str):
        if not isinstance(spec, str | Path) or not str(spec):
            raise ValueError(
                f"selector {selector!r}: option 'head_weights' must be 'uniform', 'entropy' or "
                f"the path of a profile JSON file, got {spec!r}"
            )
        self.spec = str(spec)
        self.selector = selector
        self.profile: torch.Tensor | None = None
        self.profile_sha256: str | None = None
        if self.spec not in HEAD_WEIGHT_MODES:
            self.profile = load_head_profile(self.spec)
            self.profile_sha256 = hashlib.sha256(Path(self.spec).read_bytes()).hexdigest()[:16]

    @property
    def uniform(self) -> bool:
        return self.spec == "uniform"

    def scores(self, window: TokenWindow) -> torch.Tensor:
        """The score to rank by: window.scores (uniform) or Σ_h w_h · head_scores[h]."""
        if self.uniform:
            return window.scores
        heads = window.head_scores
        if heads is None:
            raise ValueError(
                f"selector {self.selector!r} with head_weights={self.spec!r} needs "
                "TokenWindow.head_scores ([H, N] per-head received attention); the audio path "
                "must be asked for 'head_scores' (the selector's `needs` lists it)"
            )
        if heads.dim() != 2 or heads.shape[1] != window.num_tokens:
            raise ValueError(
                f"selector {self.selector!r}: TokenWindow.head_scores must be [H, N={window.num_tokens}], "
                f"got {tuple(heads.shape)}"
            )
        if self.profile is None:
            weights = entropy_weights(heads)
        else:
            if self.profile.numel() != heads.shape[0]:
                raise ValueError(
                    f"selector {self.selector!r}: head profile {self.spec!r} has "
                    f"{self.profile.numel()} weights but the encoder has {heads.shape[0]} heads"
                )
            weights = self.profile
        return weighted_scores(heads, weights).to(window.scores.device)


class HeadWeighted:
    """Mixin for attention-based selectors: a `head_weights` option applied in `select_window`.

    Call `self._init_head_weights(head_weights)` in `__init__`; the selector then ranks by
    `self.window_scores(window)`. Non-uniform weights add "head_scores" to the instance's
    `needs`, and a profile file's content hash is a parameter (so editing it changes the run).
    """

    def _init_head_weights(self, head_weights: str = "uniform") -> None:
        self._head_weighting = HeadWeighting(head_weights, type(self).name or type(self).__name__)
        self.head_weights = self._head_weighting.spec
        if self._head_weighting.profile_sha256 is not None:
            self.head_profile_sha256 = self._head_weighting.profile_sha256
        if not self._head_weighting.uniform:
            self.needs = frozenset(type(self).needs) | {"head_scores"}

    def window_scores(self, window: TokenWindow) -> torch.Tensor:
        weighting = getattr(self, "_head_weighting", None)
        return window.scores if weighting is None else weighting.scores(window)
