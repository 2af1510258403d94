"""Run options read from the Hydra config: validation of the runtime options, user imports and
building the selector. Everything here runs before a dataset is read or a folder is written, so
a bad option fails fast with a message naming it."""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any

import yaml
from omegaconf import DictConfig

from audioprune.config import CONFIG_DIR, plain
from audioprune.errors import ConfigError, InputError
from audioprune.selectors import build_selector
from audioprune.selectors.base import SELECTORS, Selector

log = logging.getLogger(__name__)

POSITIONS = ("compact", "original")


@dataclass(frozen=True)
class Scoring:
    """How a run answers multiple-choice items (option `scoring`):

    generate            the free greedy reply, scored by the dataset's matchers (default)
    choice_loglik       the free reply and, beside it, each choice's log-likelihood after the
                        prompt (`audioprune.metrics.choice`): both reported
    choice_loglik_only  the choice log-likelihoods only (no reply, no matcher metrics): cheaper
    """

    name: str
    generates: bool
    choices: bool


SCORING = {
    "generate": Scoring("generate", True, False),
    "choice_loglik": Scoring("choice_loglik", True, True),
    "choice_loglik_only": Scoring("choice_loglik_only", False, True),
}


def scoring_mode(cfg: DictConfig) -> Scoring:
    """The run's `scoring` option (default generate); an unknown value is a ValueError."""
    name = cfg.get("scoring") or "generate"
    if name not in SCORING:
        raise ConfigError(f"option scoring must be one of {', '.join(SCORING)}, got {name!r}")
    return SCORING[name]


def positive_int(value: Any, option: str, *, optional: bool = False) -> int | None:
    """`value` as an int >= 1; None passes when `optional`. Anything else (0, -1, 2.5, "abc",
    true) is a ValueError naming the option."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        allowed = "an integer >= 1" + (" or null" if optional else "")
        raise ConfigError(f"option {option} must be {allowed}, got {value!r}")
    return value


# model.generation options audioprune itself reads: name -> (check, what is expected).
GENERATION_LIMITS = {
    "max_new_tokens": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "new_tokens_per_second": (lambda v: _is_number(v) and v > 0, "a number > 0"),
    "new_tokens_extra": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and value == value  # not NaN


def check_generation_options(cfg: DictConfig) -> None:
    """Refuse out-of-range `model.generation` options by name (they used to be clamped:
    max_new_tokens=0 decoded one token, new_tokens_per_second=-1 capped every clip at 1)."""
    generation = plain(cfg.model.get("generation")) or {}
    if not isinstance(generation, dict):
        raise ConfigError(f"model.generation must be a mapping of options, got {generation!r}")
    for name, (ok, expected) in GENERATION_LIMITS.items():
        if name in generation and not ok(generation[name]):
            raise ConfigError(f"model.generation.{name}={generation[name]!r}: must be {expected}")


def check_run_options(cfg: DictConfig) -> tuple[int, int | None]:
    """Validate `batch_size`, `limit`, `positions`, `imports`, `scoring`; returns (batch_size,
    limit)."""
    scoring_mode(cfg)
    check_generation_options(cfg)
    batch_size = positive_int(cfg.get("batch_size"), "batch_size")
    limit = positive_int(cfg.get("limit"), "limit", optional=True)
    if cfg.get("positions") not in POSITIONS:
        raise ConfigError(
            f"option positions must be one of {', '.join(POSITIONS)}, got {cfg.get('positions')!r}"
        )
    imports = plain(cfg.get("imports")) or []
    if not isinstance(imports, list) or not all(isinstance(m, str) and m for m in imports):
        raise ConfigError(
            f"option imports must be a list of module names (e.g. imports=[my_pkg.selectors]), got {imports!r}"
        )
    return batch_size, limit


def adapter_class(adapter: str) -> type:
    """The adapter class registered as `adapter` (imported, not instantiated)."""
    from audioprune.models import ADAPTERS

    if adapter not in ADAPTERS:
        raise ConfigError(
            f"model.adapter={adapter}: unknown adapter; valid adapters: "
            f"{', '.join(sorted(ADAPTERS))}"
        )
    return ADAPTERS.get(adapter)


def check_model_support(cfg: DictConfig, selector: Selector) -> None:
    """Refuse, before any data or model is read, a selector, budget, `positions` or `prompt`
    the model's family cannot honour (each adapter class states it in `check_support`)."""
    cls = adapter_class(str(cfg.model.get("adapter")))
    if hasattr(cls, "check_model_config"):  # e.g. the classifiers' input frames
        cls.check_model_config(plain(cfg.model))
    # The adapter class decides the family (its run loop); a model YAML may state it, checked.
    family, declared = getattr(cls, "family", "alm"), cfg.model.get("family")
    if declared is not None and declared != family:
        raise ConfigError(
            f"model {cfg.model.get('name')!r}: family={declared!r}, but adapter "
            f"{cfg.model.get('adapter')!r} ({cls.__name__}) is of the {family!r} family; the "
            f"adapter decides: set family: {family} or remove the key"
        )
    budget = cfg.get("budget") or {}
    cls.check_support(
        selector,
        budget=str(budget.get("name", "per_window")),
        positions=str(cfg.get("positions")),
        prompt=cfg.get("prompt"),
        model=str(cfg.model.get("name")),
    )


def import_user_modules(modules: list[str] | None) -> None:
    """Import the modules of option `imports` (e.g. ones that `@register_selector` a class)."""
    for module in modules or []:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ImportError(
                f"option imports: cannot import {module!r} ({err}); is its folder on PYTHONPATH "
                "or its package installed?"
            ) from err


def _builtin_selector_yaml(name: str) -> dict | None:
    path = CONFIG_DIR / "selector" / f"{name}.yaml"
    if not path.is_file():
        return None
    data = yaml.safe_load(path.read_text()) or {}
    return data if data.get("name") == name else None


def make_selector(selector_cfg: DictConfig | dict) -> Selector:
    """Build the selector from its YAML: `name` + parameters, or `_target_` for a user class.

    `+selector._target_=my_pkg.MySelector` on the command line lands on top of the default
    selector's YAML; the parameters that came from that YAML (same key, same value) are not
    passed to the user class. Parameters set on the command line with another value are.
    """
    spec = dict(plain(selector_cfg))
    if "_target_" in spec:
        from hydra.utils import instantiate

        name = spec.pop("name", None)
        inherited = _builtin_selector_yaml(name) if name in SELECTORS else None
        if inherited:
            dropped = sorted(k for k, v in inherited.items() if k in spec and spec[k] == v)
            for key in dropped:
                del spec[key]
            if dropped:
                log.info(
                    "selector._target_=%s replaces selector %s; its YAML parameters %s are not passed",
                    spec["_target_"],
                    name,
                    ", ".join(dropped),
                )
        selector = instantiate(spec)
        if not isinstance(selector, Selector):
            raise TypeError(
                f"selector._target_={spec['_target_']} built a {type(selector).__name__}, expected an audioprune Selector"
            )
        return selector
    if "name" not in spec:
        raise ConfigError(
            "the selector config needs a `name` (a registered selector) or a `_target_`"
        )
    name = spec.pop("name")
    try:
        return build_selector(name, **spec)
    except InputError:
        raise
    except (ValueError, TypeError) as err:  # an unknown name, a parameter out of range
        raise ConfigError(f"selector={name}: {err}") from err
