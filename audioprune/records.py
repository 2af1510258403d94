"""The plain records that loaders produce and metrics, prompts and loops read: `Sample` (one
evaluation item) and `DatasetInfo` (the dataset's provenance, part of the run key).

They live below both sides (pure data, no I/O), so a metric scores the same record type a
loader builds without depending on the loader registry (`audioprune.data.base`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# What `Sample.task` may say.
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
