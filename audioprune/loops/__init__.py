"""Per-family batch loops: how one model family turns pending samples into prediction records.

`run()` (audioprune/runner.py) is family-agnostic: dataset, identity, run folder, store, resume,
sharding / merge, scoring and metrics.json. It resolves the config once into a
`audioprune.spec.RunSpec` (selector, retention, budget, prompt, decoding, error policy, batch
size...) and calls

    LOOPS[spec.family](spec, adapter, todo, store, dataset=all_samples) -> int

which computes the samples in `todo`, appends one record per sample to `store` (an
`audioprune.store.PredictionStore`) and returns how many it computed. `dataset` is every sample
of the dataset in order (before `limit`, resume and sharding), for settings calibrated on the
dataset (adaptive budgets). A loop reads its settings from the spec, never from the config.
A new family registers its loop with `@register_loop("name")` in a module imported below, and
may add fields to metrics.json's `summary` with `@register_summary("name")`
(`fn(records) -> dict`, e.g. the classifiers' `gmacs_mean`).
"""

from __future__ import annotations

from collections.abc import Callable

from audioprune.registry import Registry

LOOPS: Registry[Callable[..., int]] = Registry("loop")


SUMMARIES: Registry[Callable[[list[dict]], dict]] = Registry("family summary", "summaries")


def register_loop(name: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Decorator: make `fn(spec, adapter, todo, store, dataset) -> int` the batch loop of the
    model family `name` (an adapter's `family` attribute; default "alm")."""
    return LOOPS.register(name)


def register_summary(name: str) -> Callable[[Callable[..., dict]], Callable[..., dict]]:
    """Decorator: `fn(records) -> dict` adds the family `name`'s fields to metrics.json's
    `summary` (computed over the run's saved records)."""
    return SUMMARIES.register(name)


def family_summary(family: str, records: list[dict]) -> dict:
    """The family's own summary fields ({} for a family that registered none)."""
    summary = SUMMARIES.get(family, None)
    return summary(records) if summary is not None else {}


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
