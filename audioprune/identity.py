"""Run identity: what determines a run's predictions, its hash, its readable label and its folder.

The identity is family-agnostic (ALM and classifier runs use the same scheme) and covers:

- `model`: the whole model config, minus runtime-only keys (`RUNTIME_MODEL_KEYS`: device,
  tiny-model building, progress) and path-like keys other than `pretrained`; the prompt table is
  replaced by the one prompt the run uses (`prompt`);
- `dataset`: name, loader, version, the metadata files' sha256, a content fingerprint of the
  audio files (`audioprune.data.fingerprint`: where the data lives is not part of the key, what
  it holds is) and the loader options (minus paths and `on_error`: sample ids do not depend on
  what is skipped);
- `selector`: its readable name, its class (`module:qualname`), its parameters and a hash of its
  implementation (`selector_source_hash`: the source of the class, of every class in its MRO —
  user base classes included — and of the module-level helpers they call from their own
  package), so a subclass, a renamed copy or an edited selector never reuses saved predictions;
- `retention`, `positions`, `prompt`, `budget` (the config group, when present), package and
  transformers versions, `tag`, and `scoring` when it is not the default `generate` (choice
  scoring adds per-choice log-likelihoods to the predictions).

Runtime-only settings (batch size, limit, device, paths, progress, `imports`) are not part of it.

`run_identity(spec, info)` reads the run's resolved settings (`audioprune.spec.RunSpec`, built by
`resolve_run(cfg)`) and what the loader found (`DatasetInfo`), never the config itself.
"""

from __future__ import annotations

import builtins
import copy
import fnmatch
import hashlib
import inspect
import json
import re
import types
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

import audioprune
from audioprune.budget import Budget
from audioprune.config import plain
from audioprune.errors import ConfigError
from audioprune.records import DatasetInfo
from audioprune.selectors.base import SELECTORS, Selector

if TYPE_CHECKING:
    from audioprune.spec import RunSpec

# Model-config keys that never change predictions (or, for `prompts`, that are covered by the
# one prompt the run uses).
# `build_args` names files (another projector); what they hold enters the key as `built_from`.
RUNTIME_MODEL_KEYS = frozenset({"device", "build_tiny", "build_args", "progress", "prompts"})
PATH_LIKE = ("root", "dir", "path", "file", "folder")
# Config keys (fnmatch patterns over dotted paths) that never change predictions: the runtime
# options, where things live, and how saved predictions are scored (`dataset.metrics`). Every
# other key of the composed config is part of the run key (tests/test_run_key.py checks both).
RUNTIME_OPTIONS = (
    "batch_size",
    "limit",
    "imports",
    "evaluate_only",
    "overwrite",
    "run_dir",
    "encoder_cache",
    "encoder_cache.*",
    "relative_to_unpruned",
    "progress",
    "paths.*",
    "model.device",
    "model.build_tiny",
    "model.build_tiny.*",
    "model.progress",
    "dataset.args.on_error",
    "dataset.metrics",
    "dataset.metrics.*",
)


def is_runtime_option(dotted: str) -> bool:
    """Whether the config key `dotted` (e.g. "model.device") stays out of the run key.

    Besides `RUNTIME_OPTIONS`, file locations in the model config (other than `pretrained`) and
    in the dataset's loader options are out: what they point at is in the key instead (metadata
    sha256, audio fingerprint).
    """
    if any(fnmatch.fnmatchcase(dotted, pattern) for pattern in RUNTIME_OPTIONS):
        return True
    group, _, rest = dotted.partition(".")
    if group == "model" and rest != "pretrained" and "." not in rest:
        return any(p in rest.lower() for p in PATH_LIKE)
    if group == "dataset" and rest.startswith("args.") and rest.count(".") == 1:
        return any(p in rest[5:].lower() for p in PATH_LIKE)
    return False


def _strip_paths(args: dict, keep: tuple[str, ...] = ()) -> dict:
    return {
        k: v
        for k, v in args.items()
        if k in keep or not any(p in str(k).lower() for p in PATH_LIKE)
    }


def prompt_template(cfg: DictConfig) -> str | None:
    """The user-text template for this dataset's task under this model.

    None for a model family without prompts (a model config with no `prompts` table, e.g. a
    classifier); an ALM config without a prompt for the task is an error.
    """
    if cfg.get("prompt"):
        return cfg.prompt
    if cfg.dataset.get("prompt"):
        return cfg.dataset.prompt
    if cfg.model.get("prompts") is None:
        return None
    task = cfg.dataset.get("prompt_task") or cfg.dataset.task
    prompts = cfg.model.get("prompts") or {}
    if task not in prompts:
        raise ConfigError(
            f"model config {cfg.model.name!r} has no prompt for task {task!r} (model.prompts.{task})"
        )
    return prompts[task]


def model_identity(model_cfg: DictConfig | dict) -> dict:
    """The model config minus runtime-only and path-like keys (`pretrained` is kept), plus, for
    a model assembled from files shipped with the package (`build_tiny: mini_qwen2_audio`), what
    it is built from (`built_from`: the shipped files' sha256)."""
    from audioprune.models.tiny import build_inputs

    model = plain(model_cfg)
    kept = {k: v for k, v in model.items() if k not in RUNTIME_MODEL_KEYS}
    identity = _strip_paths(kept, keep=("pretrained",))
    built_from = build_inputs(model.get("build_tiny"), model.get("build_args"))
    if built_from is not None:
        identity["built_from"] = built_from
    return identity


def dataset_config_identity(dataset_cfg: DictConfig | dict) -> dict:
    """The dataset config as the run key covers it: every key (name, loader, task, prompt_task,
    ...) except how saved predictions are scored (`metrics`), and under `args` the loader
    options without locations and without `on_error`."""
    dataset = plain(dataset_cfg)
    args = {k: v for k, v in (dataset.get("args") or {}).items() if k != "on_error"}
    identity = {k: v for k, v in dataset.items() if k not in ("args", "metrics")}
    return identity | {"args": _strip_paths(args)}


def dataset_identity(dataset_config: Mapping[str, Any], info: DatasetInfo) -> dict:
    """The dataset part of the run key: `dataset_config_identity`'s keys plus what the loader
    found (its version, the metadata files' sha256, the audio fingerprint)."""
    identity = {k: v for k, v in dataset_config.items() if k != "args"}
    return identity | {
        "loaded_version": info.version,  # what the loader found (e.g. MMAU's questions file)
        "files": info.files,
        "audio": info.audio,
        "args": dataset_config["args"],
    }


def _is_registered(cls: type) -> bool:
    return bool(cls.name) and SELECTORS.get(cls.name) is cls


def selector_run_name(selector: Selector) -> str:
    """The selector's name in the run key and the run folder: its registered name, or a
    snake_case name from its class for a class that is not itself registered (a subclass inherits its parent's `name` but is a different method)."""
    cls = type(selector)
    if _is_registered(cls):
        return cls.name
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", cls.__name__).lower()
    return re.sub(r"[^a-z0-9_]+", "_", snake).strip("_") or "selector"


def class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _package(obj: Any) -> str:
    return str(getattr(obj, "__module__", "") or "").split(".")[0]


def _functions_of(obj: Any) -> list[types.FunctionType]:
    """The plain functions a class defines (methods, static/class methods, properties)."""
    if isinstance(obj, types.FunctionType):
        return [obj]
    found = []
    for value in vars(obj).values():
        if isinstance(value, staticmethod | classmethod):
            value = value.__func__
        if isinstance(value, property):
            found += [f for f in (value.fget, value.fset, value.fdel) if f is not None]
        elif isinstance(value, types.FunctionType):
            found.append(value)
    return found


def _names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def _source(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):  # defined in a REPL or built with type(): hash the bytecode
        parts = []
        for fn in _functions_of(obj):
            code = fn.__code__
            parts.append(f"{fn.__qualname__}:{code.co_code.hex()}:{code.co_consts!r}")
        return "\n".join(sorted(parts))


def selector_source_hash(cls: type) -> str:
    """sha256 (16 hex digits) of a selector's implementation.

    Covers the source of `cls` and of every class in its MRO except Python's builtins (so user
    base classes count, not only audioprune's), plus, transitively, the module-level functions
    and classes those reference by name from their own top-level package (e.g. the ranking
    helpers `topk` calls). Library code outside that package (torch, numpy) is covered by the
    versions in the run identity instead.
    """
    digest = hashlib.sha256()
    seen: set[int] = set()

    def add(obj: Any, package: str) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        digest.update(f"{getattr(obj, '__module__', '')}:{obj.__qualname__}\n".encode())
        digest.update(_source(obj).encode())
        for fn in _functions_of(obj):
            namespace = fn.__globals__
            for name in sorted(_names(fn.__code__)):
                value = namespace.get(name)
                if (
                    isinstance(value, types.FunctionType | type)
                    and _package(value) == package
                    and value.__module__ != "builtins"
                ):
                    add(value, package)

    for klass in cls.__mro__:
        if klass is object or klass.__module__ == builtins.__name__:
            continue
        add(klass, _package(klass))
    return digest.hexdigest()[:16]


def selector_identity(selector: Selector) -> dict:
    """{name, class, source_sha256, params}: what the run key knows about the selector."""
    cls = type(selector)
    return {
        "name": selector_run_name(selector),
        "class": class_path(cls),
        "source_sha256": selector_source_hash(cls),
        "params": selector.params(),
    }


def sample_set(ids: list[str]) -> dict:
    """The exact sample set a number was computed on: count + sha256 of the sorted ids."""
    joined = "\n".join(sorted(str(i) for i in ids))
    return {"n": len(ids), "ids_sha256": hashlib.sha256(joined.encode()).hexdigest()}


def predictions_hash(predictions: dict[str, str]) -> str:
    """sha256 of {id: prediction} (sorted): whether two metric files scored the same answers."""
    text = json.dumps(sorted(predictions.items()), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def run_identity(spec: RunSpec, info: DatasetInfo) -> dict:
    """Everything that determines the predictions of a run (hashed into the run folder name):
    the resolved run's model and dataset configs, selector, retention, positions, prompt,
    scoring, budget and tag (`spec`), what the loader found (`info`) and the versions."""
    import transformers

    selector = spec.selector
    identity = {
        # copies: a caller may edit the identity it gets; the spec it came from stays as it was
        "model": copy.deepcopy(dict(spec.model_config)),
        "dataset": copy.deepcopy(dataset_identity(spec.dataset_config, info)),
        "selector": selector_identity(selector),
        "retention": spec.retention,
        "positions": spec.positions if selector.prunes else "compact",
        "prompt": spec.prompt,
        "versions": {
            "audioprune": audioprune.__version__,
            "transformers": transformers.__version__,
        },
        "tag": spec.tag,
    }
    # Choice scoring adds predictions (and drops the reply when only choices are scored); the
    # default stays out of the key, so runs from before the option keep their folders.
    if spec.scoring.name != "generate":
        identity["scoring"] = spec.scoring.name
    # The budget policy as built (defaults filled in); unpruned runs have no budget to speak of.
    identity["budget"] = asdict(spec.budget) if selector.prunes else asdict(Budget())
    return identity


def identity_hash(identity: dict) -> str:
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def run_label(selector: Selector, retention: float, budget: Budget | None = None) -> str:
    """Readable part of the run folder name, e.g. segmentwise_topk-S10-r0.25.

    Under `budget=adaptive` with a fixed `budget.mass` the mass, not the retention, sets K:
    the label then ends in `-adaptive-mass<m>` (e.g. topk-adaptive-mass0.9).
    """
    parts = [selector_run_name(selector)]
    params = selector.params()
    if "segments" in params:
        parts.append(f"S{params['segments']}")
    if params.get("fill_remainder") is False:
        parts.append("nofill")
    if selector.prunes and budget_sets_k(budget):
        return "-".join(parts) + f"-adaptive-mass{float(budget.mass):g}"
    return "-".join(parts) + f"-r{retention:g}"


def budget_note(spec: RunSpec) -> str | None:
    """What sets K when the retention does not (logged by the run loop), else None."""
    budget = spec.budget if spec.selector.prunes else None
    if not budget_sets_k(budget):
        return None
    return (
        f"budget=adaptive budget.mass={float(budget.mass):g}: each {budget.scope} keeps the "
        f"fewest tokens holding {float(budget.mass):g} of its score mass, so retention="
        f"{spec.retention:g} does not set K (run folder labelled "
        f"adaptive-mass{float(budget.mass):g}; budget.mass=null calibrates the mass to the "
        "retention)"
    )


def budget_sets_k(budget: Budget | None) -> bool:
    """Whether the budget policy, not the retention, decides K (adaptive with a fixed mass)."""
    return budget is not None and budget.name == "adaptive" and budget.mass is not None


def run_dir_for(
    spec: RunSpec, identity: dict, results_dir: str | Path, run_dir: str | Path | None = None
) -> Path:
    """`run_dir` if given, else <results_dir>/runs/<model>/<dataset>/<label>-[<tag>-]<hash>."""
    if run_dir:
        return Path(run_dir)
    base = Path(results_dir) / "runs" / spec.model / spec.dataset
    tag = f"{spec.tag}-" if spec.tag else ""
    label = run_label(spec.selector, spec.retention, spec.budget)
    return base / f"{label}-{tag}{identity_hash(identity)}"


def default_run_dir(cfg: DictConfig, spec: RunSpec, info: DatasetInfo) -> Path:
    """The folder the run `spec` gets without a `run_dir` override, under `cfg`'s results folder
    (e.g. of `spec.unpruned()`: the unpruned run of the same model, dataset and prompt)."""
    return run_dir_for(spec, run_identity(spec, info), cfg.paths.results_dir)
