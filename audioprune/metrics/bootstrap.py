"""Percentile bootstrap confidence intervals over clips.

A cell of a results table (one selector at one retention, one question family) is an average of
per-clip values (1/0 correct, or an event-coverage fraction). Its 95 % interval comes from
resampling the clips with replacement, `n_resamples` times, from a seeded generator: the same
inputs always give the same interval, whatever ran before.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

LEVEL = 0.95
N_RESAMPLES = 2000
SEED = 0


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    totals: Sequence[float] | np.ndarray | None = None,
    level: float = LEVEL,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean of `values` (or of Σ values / Σ totals).

    values: [n] per-clip values (bools count as 0/1); totals: [n] per-clip denominators for a
    pooled ratio (events covered / events), None for a plain mean. Returns (low, high) on the
    values' scale: the (1 − level)/2 and (1 + level)/2 quantiles (numpy's linear
    interpolation) of the statistic over `n_resamples` resamples of the n clips drawn with
    replacement by `numpy.random.default_rng(seed)`; None when n = 0.
    """
    data = np.asarray(values, dtype=np.float64)
    if data.ndim != 1:
        raise ValueError(f"bootstrap_ci: values must be 1-D, got shape {data.shape}")
    weight = np.ones_like(data) if totals is None else np.asarray(totals, dtype=np.float64)
    if weight.shape != data.shape or (weight <= 0).any():
        raise ValueError(
            f"bootstrap_ci: totals must be {data.shape[0]} positive numbers, got {weight.tolist()}"
        )
    if not 0 < level < 1:
        raise ValueError(f"bootstrap_ci: level must lie in (0, 1), got {level}")
    if n_resamples < 1:
        raise ValueError(f"bootstrap_ci: n_resamples must be >= 1, got {n_resamples}")
    if data.size == 0:
        return None
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, data.size, size=(n_resamples, data.size))
    means = data[draws].sum(axis=1) / weight[draws].sum(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def percent_ci(
    values: Sequence[float] | np.ndarray, totals=None, **kwargs
) -> dict[str, float] | None:
    """{"low", "high"}: `bootstrap_ci` of 0/1 values (or a ratio), in percent; None when empty."""
    ci = bootstrap_ci(values, totals, **kwargs)
    return None if ci is None else {"low": 100.0 * ci[0], "high": 100.0 * ci[1]}
