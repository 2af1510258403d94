"""ESC-50 (classification): `meta/esc50.csv` + `audio/<filename>` (5 s, 44.1 kHz wav).

Official layout (github.com/karolpiczak/ESC-50): columns `filename, fold, target, category,
esc10, src_file, take`, 2,000 clips in 5 folds of 400, 50 classes. The paper's protocol is 5-fold
cross-validation: `fold: k` with `split: test` gives fold k, `split: train` the other four.
Sample id = `filename`, answer = `category`; `DatasetInfo.extra["labels"]` lists the categories
in `target` order. The synthetic classification set is written in this layout and read here.
"""

from __future__ import annotations

from pathlib import Path

from audioprune.data.audio import sha256_file
from audioprune.data.base import register_loader
from audioprune.data.common import LoaderRun
from audioprune.data.rows import read_csv, row_shape_error
from audioprune.records import DatasetInfo, Sample

SPLITS = ("test", "train", "all")


def _int(value) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


@register_loader("esc50")
def load_esc50(
    root: str | Path,
    fold: int = 1,
    split: str = "test",
    meta_file: str = "meta/esc50.csv",
    audio_dir: str = "audio",
    display_name: str = "ESC-50",
    version: str = "2.0.0",
    expected_count: int | None = 2000,
    folds: int = 5,
    allow_subset: bool = False,
    on_error: str = "raise",
    missing_audio: str = "error",
) -> tuple[list[Sample], DatasetInfo]:
    """Load one side of fold `fold` (split test | train | all) of the metadata at `root`."""
    if split not in SPLITS:
        raise ValueError(f"esc50: split must be one of {', '.join(SPLITS)}, got {split!r}")
    if not 1 <= int(fold) <= folds:
        raise ValueError(f"esc50: fold must be in 1..{folds}, got {fold!r}")
    columns = ["filename", "fold", "target", "category"]
    source = Path(root) / meta_file
    numbered = read_csv(source, columns)
    run = LoaderRun(
        source, display_name, version, expected_count, allow_subset, on_error, missing_audio
    )
    run.check_count(len(numbered), "rows", skipped=0)
    names: dict[int, str] = {}
    samples: list[Sample] = []
    for line, row in numbered:
        name = str(row.get("filename") or "").strip() or None
        problem = row_shape_error(row, columns)
        row_fold, target = _int(row.get("fold")), _int(row.get("target"))
        category = str(row.get("category") or "").strip()
        if problem is None and (row_fold is None or not 1 <= row_fold <= folds):
            problem = f"fold must be an int in 1..{folds}, got {row.get('fold')!r}"
        if problem is None and (target is None or target < 0 or not category):
            problem = f"target must be an int >= 0 with a category, got {row.get('target')!r}"
        if problem is None and names.get(target, category) != category:
            problem = f"target {target} is {names[target]!r} elsewhere, here {category!r}"
        if not run.accept(line, name, problem, "filename"):
            continue
        names[target] = category
        wanted = split == "all" or (row_fold == int(fold)) == (split == "test")
        if wanted:
            samples.append(
                Sample(
                    id=name,
                    audio_path=Path(root) / audio_dir / name,
                    task="classification",
                    answer=category,
                    meta={"fold": row_fold, "target": target},
                )
            )
    labels = [names[t] for t in sorted(names)]
    for sample in samples:
        sample.choices = labels
    return run.finish(
        "classification",
        samples,
        {"meta": sha256_file(source)},
        labels=labels,
        fold=int(fold),
        split=split,
    )
