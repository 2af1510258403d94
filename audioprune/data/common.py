"""The part of a loader call that is the same for every dataset layout.

Each loader reads its metadata its own way (Clotho / AudioCaps / ClothoAQA CSV rows, MMAU JSON
items, Hugging Face rows) and turns rows into `Sample`s. `LoaderRun` carries the options every
loader shares and does the rest identically everywhere: report a bad row under `on_error`,
reject a repeated sample id, check the expected count, apply the `missing_audio` policy and
build the `DatasetInfo` provenance record. Error messages name the metadata file and the row
(CSV line number) or item (`"item 3"`) and the sample id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audioprune.data.base import DatasetFormatError
from audioprune.data.rows import RowErrors, apply_audio_policy, check_count, row_place
from audioprune.records import DatasetInfo, Sample


@dataclass
class LoaderRun:
    """One loader call's shared options plus its bookkeeping.

    source:  the metadata file (or HF repo) every error message names
    rows_of: sample id -> CSV line (int) or "item i" of the rows turned into samples
    """

    source: Path
    display_name: str
    version: str
    expected_count: int | None = None
    allow_subset: bool = False
    on_error: str = "raise"
    missing_audio: str = "error"
    errors: RowErrors = field(init=False)
    rows_of: dict[str, int | str] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.errors = RowErrors(self.source, self.on_error)

    def bad(self, row: int | str, sample_id: str | None, reason: str) -> None:
        """Raise for the row, or record it as skipped (`on_error: skip`)."""
        self.errors.bad(row, sample_id, reason)

    def accept(
        self, row: int | str, sample_id: str | None, problem: str | None, id_field: str
    ) -> bool:
        """Whether the row becomes a sample: it has no `problem` and its id is new.

        A repeated id is a problem naming where the id was first seen (`id_field` names the
        column the id comes from). Rejected rows go through `bad`; accepted ones are remembered
        in `rows_of` so later errors (unreadable audio) can name them.
        """
        if problem is None and sample_id in self.rows_of:
            first = row_place(self.rows_of[sample_id])
            problem = f"duplicate {id_field} (first seen at {first})"
        if problem:
            self.bad(row, sample_id, problem)
            return False
        self.rows_of[sample_id] = row
        return True

    def check_count(self, found: int, what: str, skipped: int | None = None) -> None:
        """`found` samples (+ `skipped`, default: the skipped rows) must be `expected_count`."""
        if skipped is None:
            skipped = len(self.errors.skipped)
        check_count(found, self.expected_count, self.allow_subset, what, self.source, skipped)

    def finish(
        self, task: str, samples: list[Sample], files: dict[str, str], **extra: Any
    ) -> tuple[list[Sample], DatasetInfo]:
        """Apply the `missing_audio` policy and describe the result.

        task: the samples' task ("captioning", "mcq", "aqa");
        files: role -> sha256 of the metadata file (or the HF provenance);
        extra: dataset-specific entries for `DatasetInfo.extra`, after the shared ones.
        """
        # stacklevel 4: the warning points past this method and the loader at its caller.
        samples, missing = apply_audio_policy(
            samples, self.rows_of, self.errors, self.missing_audio, self.display_name, 4
        )
        info = DatasetInfo(
            name=self.display_name,
            version=self.version,
            task=task,
            files=files,
            num_samples=len(samples),
            missing_audio=missing,
            skipped=self.errors.skipped,
            extra={
                "source": str(self.source),
                "expected_count": self.expected_count,
                "allow_subset": self.allow_subset,
                "missing_audio_policy": self.missing_audio,
                **extra,
            },
        )
        return samples, info


def read_json(source: Path, missing: str) -> Any:
    """The parsed JSON file `source`; DatasetFormatError naming the file if it is absent
    (`missing` says what was expected there) or malformed (line and column)."""
    if not source.is_file():
        raise DatasetFormatError(f"{source}: {missing}")
    try:
        return json.loads(source.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DatasetFormatError(
            f"{source}: invalid JSON at line {err.lineno} column {err.colno}: {err.msg}"
        ) from err
