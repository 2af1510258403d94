"""What every dataset loader returns: a list of `Sample`s plus a `DatasetInfo` record.

Loaders live one per file (clotho.py, audiocaps.py, clotho_aqa.py, mmau.py, synthetic.py) and
register themselves by name; a Hydra `dataset/` YAML names the loader and its arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audioprune.errors import InputError
from audioprune.registry import Registry

TASKS = ("captioning", "mcq", "aqa", "asr", "classification", "multilabel")


class DatasetFormatError(InputError):
    """A metadata file (CSV/JSON) is malformed; the message names the file and the row or id."""


@dataclass
class Sample:
    """One evaluation item.

    id:          unique within the dataset (Clotho: file_name; MMAU: the JSON's id)
    audio_path:  path to the audio file
    task:        "captioning" (references), "mcq" (choices + answer), "aqa" (answers) or
                 "asr" (references = [transcript])
    question:    question text for QA tasks
    choices:     candidate answers (mcq)
    answer:      the correct choice (mcq) or the reference answer (aqa)
    references:  reference captions (captioning) or all annotators' answers (aqa)
    meta:        anything else the evaluator reports by (MMAU task, difficulty, ...)
    annotations: ground truth copied into the sample's prediction record as it is (JSON values,
                 e.g. synthetic_scenes' family, duration and event times), for per-sample analysis
    """

    id: str
    audio_path: Path | None
    task: str
    question: str | None = None
    choices: list[str] | None = None
    answer: str | None = None
    references: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    annotations: dict[str, Any] = field(default_factory=dict)


@dataclass
class DatasetInfo:
    """Provenance recorded in every result: which file, which version, what was missing."""

    name: str
    version: str
    task: str
    files: dict[str, str] = field(default_factory=dict)  # role -> sha256 of the metadata file
    num_samples: int = 0
    missing_audio: list[str] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)  # rows skipped under on_error: skip
    extra: dict[str, Any] = field(default_factory=dict)
    # Content fingerprint of the audio files (`audioprune.data.fingerprint`), part of the run key.
    audio: dict[str, Any] = field(default_factory=dict)


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
