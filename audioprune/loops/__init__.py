"""Per-family batch loops: how one model family turns pending samples into prediction records.

`run()` (audioprune/runner.py) is family-agnostic: dataset, identity, run folder, store, resume,
sharding / merge, scoring and metrics.json. It calls

    LOOPS[getattr(adapter, "family", "alm")](
        cfg, adapter, selector, retention, todo, store, dataset=all_samples
    ) -> int

which computes the samples in `todo`, appends one record per sample to `store` (an
`audioprune.store.PredictionStore`) and returns how many it computed. `dataset` is every sample of the dataset in order (before
`limit`, resume and sharding), for settings calibrated on the dataset (adaptive budgets). A new
family registers its loop with `@register_loop("name")` in a module imported below.
"""

from __future__ import annotations

from collections.abc import Callable

from audioprune.registry import Registry

LOOPS: Registry[Callable[..., int]] = Registry("loop")


def register_loop(name: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Decorator: make `fn(cfg, adapter, selector, retention, todo, store, dataset) -> int` the batch
    loop of the model family `name` (an adapter's `family` attribute; default "alm")."""
    return LOOPS.register(name)


def loop_for(adapter) -> Callable[..., int]:
    """The registered loop of the adapter's family (`adapter.family`, default "alm")."""
    family = getattr(adapter, "family", "alm")
    if family not in LOOPS:
        raise ValueError(
            f"adapter {type(adapter).__name__} has family {family!r}, which has no run loop; "
            f"registered: {', '.join(sorted(LOOPS))}"
        )
    return LOOPS[family]


from audioprune.loops import alm, classifier  # noqa: E402,F401  (register "alm", "classifier")
