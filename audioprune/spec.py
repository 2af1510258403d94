"""A run's settings, resolved once from the composed config into typed values.

`resolve_run(cfg)` checks the options (`audioprune.options`) and builds what the run loop and
the family loops need: the selector, the retention it is run at, the budget policy, the prompt
template, the decoding options, the error policy, the parts of the model and dataset configs
that enter the run key... The family loops (`audioprune.loops`) and the run identity
(`audioprune.identity.run_identity`) receive a `RunSpec` and never read the config themselves,
so what they depend on is written in one place, with types.

    spec = resolve_run(compose(["selector=topk", "retention=0.25"]))
    spec.selector, spec.retention, spec.budget.name   # TopK(), 0.25, "per_window"
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from omegaconf import DictConfig

from audioprune.budget import Budget, check_retention, make_budget
from audioprune.config import plain
from audioprune.identity import (
    dataset_config_identity,
    model_identity,
    prompt_template,
    run_label,
)
from audioprune.options import (
    Scoring,
    adapter_class,
    check_model_support,
    check_run_options,
    import_user_modules,
    make_selector,
    scoring_mode,
)
from audioprune.selectors import build_selector
from audioprune.selectors.base import Selector

DEFAULT_MAX_NEW_TOKENS = 32


@dataclass(frozen=True)
class Decoding:
    """How an audio LLM generates (`model.generation`): the new-token cap and the other
    options, passed to the adapter's `generate` as keywords (e.g. Whisper's
    `new_tokens_per_second`)."""

    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunSpec:
    """Everything a family loop needs from the config, resolved and checked.

    model, dataset: their names (`model.name`, `dataset.name`)
    family:     the model family (the adapter class's `family`): which loop runs the samples
    selector:   the selector instance; `retention` the share of tokens it keeps (1.0 for a
                selector that does not prune)
    budget:     the budget policy as configured (`budget` group; calibrated by the ALM loop)
    positions:  `compact` | `original` position ids for the kept tokens
    prompt:     the user-text template (None for a family without prompts)
    scoring:    how multiple-choice items are answered (`scoring`)
    decoding:   generation options of an audio LLM (`model.generation`)
    on_error:   `raise` | `skip` for a sample whose audio cannot be read (`dataset.args.on_error`)
    batch_size, limit, progress: the runtime options
    encoder_cache: the `encoder_cache` options (memory, disk, dir, max_gb)
    model_config: the model config as the run key covers it (`identity.model_identity`:
                runtime-only and path-like keys dropped, the prompt table left to `prompt`)
    dataset_config: the dataset config as the run key covers it
                (`identity.dataset_config_identity`: no metrics options, no locations)
    tag:        the run's `tag` as configured (None when unset); part of the run key and folder
    """

    model: str
    dataset: str
    family: str
    selector: Selector
    retention: float
    budget: Budget
    positions: str
    prompt: str | None
    scoring: Scoring
    decoding: Decoding
    on_error: str
    batch_size: int
    limit: int | None
    progress: bool
    encoder_cache: Mapping[str, Any]
    model_config: Mapping[str, Any]
    dataset_config: Mapping[str, Any]
    tag: str | int | float | None

    @property
    def label(self) -> str:
        """model/dataset/run label, e.g. tiny_qwen2_audio/synthetic_captions/topk-r0.25."""
        return f"{self.model}/{self.dataset}/{run_label(self.selector, self.retention)}"

    def unpruned(self) -> RunSpec:
        """The same run without pruning (selector `none`, retention 1.0): the run whose
        predictions a pruned run is compared with."""
        return replace(self, selector=build_selector("none"), retention=1.0)


def resolve_run(cfg: DictConfig) -> RunSpec:
    """Check the run's options and resolve them into a RunSpec (before any data or model is
    read). Refusals are ConfigErrors naming the option (`audioprune.options`)."""
    batch_size, limit = check_run_options(cfg)
    import_user_modules(plain(cfg.get("imports")))
    retention = check_retention(cfg.retention)
    selector = make_selector(cfg.selector)
    check_model_support(cfg, selector)  # the family honours selector, budget, positions
    if not selector.prunes:
        retention = 1.0
    generation = dict(plain(cfg.model.get("generation")))
    max_new_tokens = int(generation.pop("max_new_tokens", DEFAULT_MAX_NEW_TOKENS))
    return RunSpec(
        model=str(cfg.model.name),
        dataset=str(cfg.dataset.name),
        family=str(getattr(adapter_class(str(cfg.model.get("adapter"))), "family", "alm")),
        selector=selector,
        retention=retention,
        budget=make_budget(cfg),
        positions=str(cfg.positions),
        prompt=prompt_template(cfg),
        scoring=scoring_mode(cfg),
        decoding=Decoding(max_new_tokens=max_new_tokens, options=generation),
        on_error=str((plain(cfg.dataset.get("args")) or {}).get("on_error", "raise")),
        batch_size=int(batch_size),
        limit=limit,
        progress=bool(cfg.get("progress", True)),
        encoder_cache=plain(cfg.get("encoder_cache")),
        model_config=model_identity(cfg.model),
        dataset_config=dataset_config_identity(cfg.dataset),
        tag=cfg.get("tag"),
    )
