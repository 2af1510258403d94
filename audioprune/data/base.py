"""The loader registry: every dataset loader returns a list of `Sample`s plus a `DatasetInfo`
record (both defined in `audioprune.records`).

Loaders live one per file (clotho.py, audiocaps.py, clotho_aqa.py, mmau.py, synthetic.py) and
register themselves by name; a Hydra `dataset/` YAML names the loader and its arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from audioprune.errors import InputError
from audioprune.records import DatasetInfo, Sample
from audioprune.registry import Registry


class DatasetFormatError(InputError):
    """A metadata file (CSV/JSON) is malformed; the message names the file and the row or id."""


LOADERS: Registry[Callable[..., tuple[list[Sample], DatasetInfo]]] = Registry(
    "dataset loader", plural="loaders"
)


def register_loader(name: str):
    """Decorator: make a loader function available to `load_dataset(name, ...)`."""
    return LOADERS.register(name)


def load_dataset(name: str, **kwargs) -> tuple[list[Sample], DatasetInfo]:
    """Call the registered loader `name` with the dataset YAML's arguments."""
    from audioprune import data as _data  # noqa: F401  (registers the built-in loaders)

    samples, info = LOADERS.get(name)(**kwargs)
    if not samples:
        raise empty_dataset(name, info, _with_defaults(LOADERS[name], kwargs))
    if not info.audio:  # every loader, a user's own included: the audio is part of the run key
        from audioprune.data.fingerprint import audio_fingerprint

        info.audio = audio_fingerprint(samples)
    return samples, info


# Loader options that say how to read, not which samples to take.
_NOT_FILTERS = ("root", "display_name", "version", "on_error", "expected_count", "allow_subset")


def _with_defaults(loader: Callable, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The loader's options as called, its defaults filled in (e.g. ESC-50's split=test)."""
    import inspect

    try:
        bound = inspect.signature(loader).bind_partial(**kwargs)
    except TypeError:
        return dict(kwargs)
    bound.apply_defaults()
    var = [p.name for p in bound.signature.parameters.values() if p.kind is p.VAR_KEYWORD]
    options = {k: v for k, v in bound.arguments.items() if k not in var}
    for name in var:
        options |= bound.arguments.get(name) or {}
    return options


def empty_dataset(loader: str, info: DatasetInfo, options: dict[str, Any]) -> Exception:
    """The error for a loader call that found no sample: names the dataset, the options that
    select samples (fold, split, subset, ...) and the metadata file. Scoring an empty set would
    report nan with exit status 0."""
    filters = ", ".join(
        f"{k}={v}"
        for k, v in options.items()
        if k not in _NOT_FILTERS
        and v is not None
        and not any(p in k for p in ("dir", "file", "path", "root"))
    )
    skipped = f"; {len(info.skipped)} row(s) skipped under on_error=skip" if info.skipped else ""
    source = info.extra.get("source") or options.get("root")
    return DatasetFormatError(
        f"{info.name}: no samples to evaluate (loader {loader}"
        + (f" with {filters}" if filters else "")
        + f", read from {source}){skipped}; check the filter options and the metadata file"
    )
