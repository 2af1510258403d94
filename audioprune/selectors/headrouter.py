"""`headrouter_lite`: OUR RECONSTRUCTION of HeadRouter (arXiv 2604.23717) on encoder heads.

HeadRouter's code is not public (docs/methods.md). What is known: per-head
text→audio attention inside the LLM, "position-bias-reduced probing", offline head-weight
profiles (semantic / acoustic) mixed per input by a router from head-selectivity statistics,
top-K tokens kept. Its layer, statistic, debiasing and mixing formulas are unknown, so every
specific below is our design, applied before the LLM to the last encoder layer's heads:

1. p_h = head h's received attention over the window's N tokens, normalised to sum 1
   (`TokenWindow.head_scores`, [H, N]).
2. Debias (when the profile has `position_bias` b [H, P]): p_h,j ← p_h,j / b_h,j, renormalised;
   b_h,j is the mean over calibration windows of N·p_h,j (1 = no positional preference).
3. Selectivity v_h = 1 − H(p_h) / log N (`heads.head_selectivity`).
4. Routing over profiles k (weights W_k [H], centroid μ_k [H], from calibration families):
   α = softmax(−‖v − μ_k‖₂ / temperature), w = Σ_k α_k W_k. Without a profile: w ∝ v
   (one profile, the input's own selectivity: the same as `topk` with head_weights=entropy).
5. Score_j = Σ_h w_h p_h,j; keep the top K in time order (ties to the earlier token).

`calibrate_headrouter` builds a profile file from calibration windows grouped by task family.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import torch

from audioprune.selectors.base import (
    Selector,
    TokenWindow,
    ascending,
    check_inputs,
    register_selector,
)
from audioprune.selectors.heads import (
    head_distributions,
    head_selectivity,
    normalise_weights,
)
from audioprune.selectors.simple import rank_descending

PROFILE_KIND = "headrouter_lite"


def debias(p: torch.Tensor, position_bias: torch.Tensor | None) -> torch.Tensor:
    """p [H, N] rows summing to 1, position_bias [H, P >= N] -> [H, N] rows summing to 1."""
    if position_bias is None:
        return p
    n = p.shape[1]
    if position_bias.shape[0] != p.shape[0] or position_bias.shape[1] < n:
        raise ValueError(
            f"headrouter_lite: position_bias is {tuple(position_bias.shape)}, needs "
            f"[H={p.shape[0]}, >= N={n}]"
        )
    return head_distributions(p / position_bias[:, :n].double().clamp(min=1e-6))


def route_weights(
    selectivity: torch.Tensor,
    weights: torch.Tensor | None = None,
    centroids: torch.Tensor | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Head weights for one input: selectivity [H]; weights, centroids [F, H] per family.

    α = softmax(−‖v − μ_k‖ / temperature) over families, w = Σ_k α_k W_k; without families,
    w ∝ v (uniform if v = 0). Returns [H] float64 summing to 1.
    """
    if weights is None:
        return normalise_weights(selectivity)
    distance = torch.linalg.vector_norm(selectivity.double()[None] - centroids.double(), dim=1)
    alpha = torch.softmax(-distance / temperature, dim=0)
    return normalise_weights(alpha @ weights.double())


def calibrate_headrouter(
    families: dict[str, list[torch.Tensor]], positions: int | None = None
) -> dict:
    """A headrouter_lite profile from calibration windows: {family: [head_scores [H, N_i]]}.

    position_bias [H, P] (P = positions or the longest N): mean of N·p_h,j over windows that
    have position j (1 where none does); per family, selectivity of the debiased distributions:
    centroid = its mean, weights = the mean normalised to sum 1.
    """
    windows = [w for group in families.values() for w in group]
    if not windows:
        raise ValueError("calibrate_headrouter: no calibration windows")
    heads = windows[0].shape[0]
    length = positions or max(w.shape[1] for w in windows)
    total = torch.zeros(heads, length, dtype=torch.float64)
    count = torch.zeros(length, dtype=torch.float64)
    for w in windows:
        n = min(w.shape[1], length)
        total[:, :n] += (head_distributions(w) * w.shape[1])[:, :n]
        count[:n] += 1
    bias = torch.where(count > 0, total / count.clamp(min=1), torch.ones_like(total))
    profiles = {}
    for name, group in families.items():
        v = torch.stack([head_selectivity(debias(head_distributions(w), bias)) for w in group])
        centroid = v.mean(dim=0)
        profiles[name] = {
            "weights": normalise_weights(centroid).tolist(),
            "centroid": centroid.tolist(),
        }
    return {
        "kind": PROFILE_KIND,
        "heads": heads,
        "profiles": profiles,
        "position_bias": bias.tolist(),
    }


def save_headrouter_profile(path: str | Path, profile: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(profile) + "\n")
    return path


def load_headrouter_profile(path: str | Path) -> dict:
    """Read and check a profile file; returns tensors: weights, centroids [F, H], position_bias."""
    path = Path(path)
    where = f"headrouter_lite: profile {str(path)!r}"
    if not path.exists():
        raise FileNotFoundError(f"{where} does not exist (build one with calibrate_headrouter)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{where} cannot be read: {err}") from err
    if not isinstance(data, dict) or data.get("kind") != PROFILE_KIND:
        raise ValueError(f"{where}: field 'kind' must be {PROFILE_KIND!r}")
    families = data.get("profiles")
    if not isinstance(families, dict) or not families:
        raise ValueError(f"{where}: field 'profiles' must map family names to weights/centroid")
    try:
        weights = torch.tensor([f["weights"] for f in families.values()], dtype=torch.float64)
        centroids = torch.tensor([f["centroid"] for f in families.values()], dtype=torch.float64)
        bias = data.get("position_bias")
        bias = None if bias is None else torch.tensor(bias, dtype=torch.float64)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"{where}: each profile needs 'weights' and 'centroid' lists of H numbers, and "
            f"'position_bias' (if present) is [H][P] numbers ({err})"
        ) from err
    heads = data.get("heads")
    if weights.shape[1] != heads or centroids.shape != weights.shape:
        raise ValueError(f"{where}: profiles must hold heads={heads} numbers each")
    if bias is not None and (bias.dim() != 2 or bias.shape[0] != heads):
        raise ValueError(f"{where}: 'position_bias' must be [heads={heads}][P]")
    return {"weights": weights, "centroids": centroids, "position_bias": bias}


@register_selector("headrouter_lite")
class HeadRouterLite(Selector):
    """Our reconstruction of HeadRouter on encoder heads (see the module docstring).

    profile: path of a calibrated profile JSON (`calibrate_headrouter`), or None for
        selectivity-only routing; temperature: the router's softmax temperature (> 0).
    """

    needs = frozenset({"head_scores"})

    def __init__(self, profile: str | None = None, temperature: float = 1.0):
        if isinstance(temperature, bool) or not isinstance(temperature, int | float):
            raise ValueError(
                f"selector 'headrouter_lite': option 'temperature' must be a number > 0, got {temperature!r}"
            )
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(
                f"selector 'headrouter_lite': option 'temperature' must be a number > 0, got {temperature!r}"
            )
        self.profile = None if profile is None else str(profile)
        self.temperature = float(temperature)
        self._profile = None
        if self.profile is not None:
            self._profile = load_headrouter_profile(self.profile)
            self.profile_sha256 = hashlib.sha256(Path(self.profile).read_bytes()).hexdigest()[:16]

    def routed(self, head_scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One window: head_scores [H, N] -> (debiased distributions p [H, N], weights w [H])."""
        profile = self._profile or {}
        if profile and profile["weights"].shape[1] != head_scores.shape[0]:
            raise ValueError(
                f"selector 'headrouter_lite': profile {self.profile!r} is for "
                f"{profile['weights'].shape[1]} heads, the encoder has {head_scores.shape[0]}"
            )
        p = debias(head_distributions(head_scores), profile.get("position_bias"))
        weights = route_weights(
            head_selectivity(p), profile.get("weights"), profile.get("centroids"), self.temperature
        )
        return p, weights

    def window_scores(self, window: TokenWindow) -> torch.Tensor:
        """Score_j = Σ_h w_h p_h,j: [N] float32 (needs TokenWindow.head_scores [H, N])."""
        heads = window.head_scores
        if heads is None or heads.dim() != 2 or heads.shape[1] != window.num_tokens:
            got = None if heads is None else tuple(heads.shape)
            raise ValueError(
                "selector 'headrouter_lite' needs TokenWindow.head_scores of shape "
                f"[H, N={window.num_tokens}] (ask the audio path for 'head_scores'), got {got}"
            )
        p, weights = self.routed(heads)
        return (weights @ p).to(torch.float32).to(window.scores.device)

    def __call__(self, scores: torch.Tensor, k: int, *, sample_key: str = "") -> torch.Tensor:
        """The K highest routed scores, in time order: [N] float -> [K] long."""
        check_inputs(scores, k)
        return ascending(rank_descending(scores)[:k])
