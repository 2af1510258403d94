"""VoxCeleb1 speaker identification: `iden_split.txt` + `wav/<speaker>/<video>/<n>.wav`.

`iden_split.txt` lines are `<set> <speaker>/<video>/<n>.wav` with set 1 = train, 2 = dev,
3 = test (the authors train on 1 and test on 3; dev is unused). 1,251 speakers; the test set
has 8,251 utterances. The first 10.24 s (1024 frames) are used, as the authors do (the fbank
truncates). Sample id = the relative path; answer = the speaker id.
"""

from __future__ import annotations

from pathlib import Path

from audioprune.data.audio import sha256_file
from audioprune.data.base import DatasetFormatError, register_loader
from audioprune.data.common import LoaderRun
from audioprune.records import DatasetInfo, Sample

SETS = {"train": "1", "dev": "2", "test": "3"}
SPEAKERS = 1251


@register_loader("voxceleb1")
def load_voxceleb1(
    root: str | Path,
    split: str = "test",
    split_file: str = "iden_split.txt",
    audio_dir: str = "wav",
    display_name: str = "VoxCeleb1 identification",
    version: str = "iden_split",
    expected_count: int | None = None,
    allow_subset: bool = False,
    on_error: str = "raise",
    missing_audio: str = "error",
) -> tuple[list[Sample], DatasetInfo]:
    if split not in SETS:
        raise ValueError(f"voxceleb1: split must be one of {', '.join(SETS)}, got {split!r}")
    root = Path(root)
    source = root / split_file
    if not source.is_file():
        raise DatasetFormatError(f"{source}: split file not found")
    run = LoaderRun(
        source, display_name, version, expected_count, allow_subset, on_error, missing_audio
    )
    speakers, samples = set(), []
    for line, text in enumerate(source.read_text().splitlines(), start=1):
        if not text.strip():
            continue
        parts = text.split()
        ok = len(parts) == 2 and parts[0] in SETS.values() and parts[1].count("/") == 2
        rel = parts[1] if ok else None
        if not run.accept(
            line,
            rel,
            None if ok else f"expected '<1|2|3> <speaker>/<video>/<n>.wav', got {text!r}",
            "path",
        ):
            continue
        speakers.add(rel.split("/")[0])
        if parts[0] == SETS[split]:
            samples.append(Sample(id=rel, audio_path=root / audio_dir / rel, task="classification",
                                  answer=rel.split("/")[0]))  # fmt: skip
    labels = sorted(speakers)
    if not allow_subset and len(labels) != SPEAKERS:
        raise DatasetFormatError(
            f"{source}: {len(labels)} speakers, expected {SPEAKERS} (set allow_subset)"
        )
    for s in samples:
        s.choices = labels
    run.check_count(len(samples), "utterances")
    return run.finish(
        "classification", samples, {"split": sha256_file(source)}, labels=labels, split=split
    )
