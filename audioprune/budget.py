"""Token budgets: how many audio tokens a window keeps at a given retention."""

from __future__ import annotations

import math


def check_retention(retention: float) -> float:
    """Validate a retention ratio r; it must lie in (0, 1]."""
    try:
        r = float(retention)
    except (TypeError, ValueError):
        raise ValueError(f"retention must be a number in (0, 1], got {retention!r}") from None
    if not (0.0 < r <= 1.0) or math.isnan(r):
        raise ValueError(f"retention must be in (0, 1] (1.0 = no pruning), got {retention!r}")
    return r


def keep_count(num_tokens: int, retention: float) -> int:
    """K = max(1, floor(r * N)) for one 30 s window with N valid tokens (shared/README conventions).

    Processor and model must agree on K (pitfall P8), so every caller goes through here.
    """
    r = check_retention(retention)
    if num_tokens < 1:
        raise ValueError(f"a window needs at least one valid token, got N={num_tokens}")
    # The small epsilon keeps e.g. 0.1 * 750 = 75.00000000000001 or 0.29 * 100 = 28.999999999999996
    # from flooring to the wrong side of an exact product.
    return max(1, min(num_tokens, math.floor(r * num_tokens + 1e-9)))
