"""What every dataset loader returns: a list of `Sample`s plus a `DatasetInfo` record.

Loaders live one per file (clotho.py, audiocaps.py, clotho_aqa.py, mmau.py, synthetic.py) and
register themselves by name; a Hydra `dataset/` YAML names the loader and its arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TASKS = ("captioning", "mcq", "aqa", "asr", "classification", "multilabel")


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


LOADERS: dict[str, Callable[..., tuple[list[Sample], DatasetInfo]]] = {}


def register_loader(name: str):
    """Decorator: make a loader function available to `load_dataset(name, ...)`."""

    def wrap(fn):
        LOADERS[name] = fn
        return fn

    return wrap


def load_dataset(name: str, **kwargs) -> tuple[list[Sample], DatasetInfo]:
    """Call the registered loader `name` with the dataset YAML's arguments."""
    from audioprune import data as _data  # noqa: F401  (registers the built-in loaders)

    if name not in LOADERS:
        raise ValueError(
            f"unknown dataset loader {name!r}; valid loaders: {', '.join(sorted(LOADERS))}"
        )
    samples, info = LOADERS[name](**kwargs)
    if not info.audio:  # every loader, a user's own included: the audio is part of the run key
        from audioprune.data.fingerprint import audio_fingerprint

        info.audio = audio_fingerprint(samples)
    return samples, info
