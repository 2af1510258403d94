"""Speech Commands v2 (classification): `<word>/<speaker>_nohash_<n>.wav` folders plus
`validation_list.txt` and `testing_list.txt` (paths relative to the root, one per line).

35 words (`_background_noise_` is not a class). `split: test` reads testing_list.txt (11,005
clips), `validation` validation_list.txt (9,981), `train` every other clip (84,843). Sample id =
the relative path; answer = the word folder.
"""

from __future__ import annotations

from pathlib import Path

from audioprune.data.audio import sha256_file
from audioprune.data.base import DatasetFormatError, register_loader
from audioprune.data.common import LoaderRun
from audioprune.records import DatasetInfo, Sample

SPLITS = {"test": 11005, "validation": 9981, "train": 84843}
NUM_CLASSES = 35


def _read_list(path: Path) -> list[str]:
    if not path.is_file():
        raise DatasetFormatError(
            f"{path}: split list not found (expected the Speech Commands v2 layout)"
        )
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


@register_loader("speech_commands")
def load_speech_commands(
    root: str | Path,
    split: str = "test",
    display_name: str = "Speech Commands v2",
    version: str = "v0.02",
    expected_count: int | None = None,
    allow_subset: bool = False,
    on_error: str = "raise",
    missing_audio: str = "error",
) -> tuple[list[Sample], DatasetInfo]:
    """Load `split` from `root`; `expected_count` defaults to the official split size."""
    if split not in SPLITS:
        raise ValueError(
            f"speech_commands: split must be one of {', '.join(SPLITS)}, got {split!r}"
        )
    root = Path(root)
    lists = {name: _read_list(root / f"{name}_list.txt") for name in ("validation", "testing")}
    if split == "train":
        held_out = set(lists["validation"]) | set(lists["testing"])
        paths = sorted(
            str(p.relative_to(root)) for p in root.glob("*/*.wav")
            if p.parent.name != "_background_noise_" and str(p.relative_to(root)) not in held_out
        )  # fmt: skip
        source = root
    else:
        paths = lists["testing" if split == "test" else "validation"]
        source = root / ("testing_list.txt" if split == "test" else "validation_list.txt")
    expected = SPLITS[split] if expected_count is None else expected_count
    run = LoaderRun(source, display_name, version, expected, allow_subset, on_error, missing_audio)
    samples = []
    for line, rel in enumerate(paths, start=1):
        word = rel.split("/")[0] if "/" in rel else ""
        problem = (
            None if word and rel.endswith(".wav") else f"expected <word>/<file>.wav, got {rel!r}"
        )
        if run.accept(line, rel, problem, "path"):
            samples.append(
                Sample(id=rel, audio_path=root / rel, task="classification", answer=word)
            )
    labels = sorted({s.answer for s in samples})
    for s in samples:
        s.choices = labels
    run.check_count(len(samples), "clips")
    files = {k: sha256_file(root / f"{k}_list.txt") for k in lists}
    return run.finish("classification", samples, files, labels=labels, split=split)
