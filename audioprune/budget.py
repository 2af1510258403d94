"""Token budgets: how many audio tokens a window keeps at a given retention, and the budget
policies of the `budget=` config group (per window, global per clip, adaptive by score mass)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from audioprune.errors import ConfigError


def check_retention(retention: float) -> float:
    """Validate a retention ratio r; it must lie in (0, 1]."""
    try:
        r = float(retention)
    except (TypeError, ValueError):
        raise ConfigError(f"retention must be a number in (0, 1], got {retention!r}") from None
    if not (0.0 < r <= 1.0) or math.isnan(r):
        raise ConfigError(f"retention must be in (0, 1] (1.0 = no pruning), got {retention!r}")
    return r


def keep_count(num_tokens: int, retention: float) -> int:
    """K = max(1, floor(r * N)) for one 30 s window with N valid tokens (docs/budgets.md).

    Processor and model must agree on K (pitfall P8), so every caller goes through here.
    """
    r = check_retention(retention)
    if num_tokens < 1:
        raise ValueError(f"a window needs at least one valid token, got N={num_tokens}")
    # The small epsilon keeps e.g. 0.1 * 750 = 75.00000000000001 or 0.29 * 100 = 28.999999999999996
    # from flooring to the wrong side of an exact product.
    return max(1, min(num_tokens, math.floor(r * num_tokens + 1e-9)))


# ---------------------------------------------------------------- budget policies (`budget=`)

BUDGET_POLICIES = ("per_window", "global", "adaptive")
ADAPTIVE_SCOPES = ("clip", "window")


@dataclass(frozen=True)
class Budget:
    """How a clip's token budget is set and shared between its 30 s windows.

    name:
      per_window  K_w = keep_count(N_w, r) in every window (the paper; today's default);
      global      one K = keep_count(Σ N_w, r) for the clip; the selector sees the windows as
                  one sequence and decides how many tokens each window keeps;
      adaptive    K = the smallest number of tokens holding a fraction `mass` of the clip's
                  (scope=clip) or each window's (scope=window) shared-score mass, at least 1.
                  `mass: null` calibrates it: the one mass whose token-weighted mean retention
                  Σ K / Σ N over the calibration clips is closest to r (`calibrate_mass`). Each
                  sample's K then depends only on its own scores and that mass, and the dataset's
                  mean retention is r on the calibration clips (exactly r ± rounding when they are
                  the whole dataset). Under scope=clip the selector spreads K like `global`.
    calibration_clips: adaptive with mass null: the first N clips of the dataset, in dataset
      order (independent of `limit`, resume and sharding); null = every clip.
    """

    name: str = "per_window"
    mass: float | None = None
    scope: str = "clip"
    calibration_clips: int | None = 32

    def __post_init__(self):
        if self.name not in BUDGET_POLICIES:
            raise ConfigError(
                f"budget.name must be one of {', '.join(BUDGET_POLICIES)}, got {self.name!r}"
            )
        if self.scope not in ADAPTIVE_SCOPES:
            raise ConfigError(
                f"budget.scope must be one of {', '.join(ADAPTIVE_SCOPES)}, got {self.scope!r}"
            )
        if self.mass is not None and not 0.0 < float(self.mass) <= 1.0:
            raise ConfigError(f"budget.mass must be in (0, 1] or null, got {self.mass!r}")
        if self.calibration_clips is not None and int(self.calibration_clips) < 1:
            raise ConfigError(
                f"budget.calibration_clips must be >= 1 or null, got {self.calibration_clips!r}"
            )

    @property
    def needs_calibration(self) -> bool:
        return self.name == "adaptive" and self.mass is None

    def groups(self, window_scores: list[torch.Tensor], retention: float) -> list[BudgetGroup]:
        """The budget groups of one clip: consecutive windows sharing one K.

        window_scores: per window [N_w] float shared scores. Returns groups covering every
        window once, in order.
        """
        sizes = [int(s.shape[0]) for s in window_scores]
        every = list(range(len(sizes)))
        if self.name == "per_window":
            return [BudgetGroup([w], keep_count(n, retention)) for w, n in enumerate(sizes)]
        if self.name == "global":
            return [BudgetGroup(every, keep_count(sum(sizes), retention))]
        if self.mass is None:
            raise ValueError(
                "budget=adaptive with mass null must be calibrated first (calibrate_mass)"
            )
        if self.scope == "window":
            return [BudgetGroup([w], mass_count(s, self.mass)) for w, s in enumerate(window_scores)]
        return [BudgetGroup(every, mass_count(torch.cat(window_scores), self.mass))]


@dataclass(frozen=True)
class BudgetGroup:
    """Windows (consecutive indices) that share one budget `keep`."""

    windows: list[int]
    keep: int


def mass_count(scores: torch.Tensor, mass: float) -> int:
    """Smallest K whose K highest scores hold at least `mass` of the total: [N] float -> int.

    Scores are attention received (non-negative); K is at least 1 and at most N. A 1e-6
    tolerance absorbs float32 rounding of the scores (their sum is not exactly the total) and
    keeps mass = 1.0 from needing the zero-score tail.
    """
    values = torch.sort(scores.double().clamp_min(0), descending=True).values
    total = float(values.sum())
    if total <= 0:
        return max(1, math.ceil(mass * values.numel() - 1e-9))
    cumulative = values.cumsum(0) / total
    k = int(torch.searchsorted(cumulative, torch.tensor(mass - 1e-6, dtype=torch.float64))) + 1
    return max(1, min(int(values.numel()), k))


def calibrate_mass(
    clips: list[list[torch.Tensor]], retention: float, scope: str = "clip", steps: int = 60
) -> float:
    """The score-mass fraction whose adaptive budgets keep Σ K / Σ N closest to `retention`.

    clips: per clip, per window [N_w] float scores. K(mass) grows with mass, so a bisection on
    mass finds the crossing; of the two masses around it, the one with the retention closer to
    r wins (the smaller mass on a tie).
    """
    r = check_retention(retention)
    budget = Budget("adaptive", mass=1.0, scope=scope)
    total = sum(int(s.shape[0]) for clip in clips for s in clip)
    if total == 0:
        raise ValueError("calibrate_mass: no calibration tokens")

    def kept(mass: float) -> float:
        b = Budget("adaptive", mass=mass, scope=budget.scope)
        return sum(g.keep for clip in clips for g in b.groups(clip, r)) / total

    lo, hi = 1e-9, 1.0
    if kept(hi) <= r:
        return hi
    for _ in range(steps):
        mid = (lo + hi) / 2
        if kept(mid) < r:
            lo = mid
        else:
            hi = mid
    return lo if abs(kept(lo) - r) <= abs(kept(hi) - r) else hi


def make_budget(cfg) -> Budget:
    """The `budget` config group of a run config (`name`: per_window | global | adaptive, plus
    the `Budget` fields it uses) -> Budget; absent = per_window."""
    from audioprune.config import plain

    spec = dict(plain(cfg.get("budget")) or {})
    try:
        return Budget(**spec)
    except TypeError as err:
        raise ValueError(f"budget config {spec}: {err}") from None
