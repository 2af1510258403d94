"""Clotho v2.1 evaluation split (captioning): `clotho_captions_evaluation.csv` + audio folder.

Official layout (Zenodo record 4783391): the captions CSV has columns
`file_name, caption_1 .. caption_5` (one row per clip) and `clotho_audio_evaluation.7z`
unpacks to `evaluation/<file_name>` (44.1 kHz mono wav). The public evaluation split has
1,045 clips x 5 captions; anything else is an error unless `allow_subset` is set.
Sample id = `file_name`.
"""

from __future__ import annotations

from pathlib import Path

from audioprune.data.audio import sha256_file
from audioprune.data.base import DatasetFormatError, register_loader
from audioprune.data.common import LoaderRun
from audioprune.data.rows import hf_rows, read_csv, row_shape_error
from audioprune.records import DatasetInfo, Sample


@register_loader("clotho")
def load_clotho(
    root: str | Path | None = None,
    captions_file: str = "clotho_captions_evaluation.csv",
    audio_dir: str = "evaluation",
    display_name: str = "Clotho v2.1 evaluation",
    version: str = "v2.1",
    expected_count: int | None = 1045,
    captions_per_clip: int = 5,
    allow_subset: bool = False,
    on_error: str = "raise",
    missing_audio: str = "error",
    encoding: str = "utf-8",
    hf_name: str | None = None,
    hf_split: str = "test",
    hf_config: str | None = None,
    hf_revision: str | None = None,
    hf_audio_cache_dir: str | Path | None = None,
) -> tuple[list[Sample], DatasetInfo]:
    """Load the Clotho evaluation split from `root` (or from the HF dataset `hf_name`).

    Every clip must have `captions_per_clip` non-empty captions (CIDEr-D is defined against all
    five references). Malformed rows raise naming file + line, or are skipped with
    `on_error: skip`; missing audio follows `missing_audio` (see `apply_audio_policy`).
    """
    columns = ["file_name"] + [f"caption_{i}" for i in range(1, captions_per_clip + 1)]
    if hf_name:
        rows, provenance = hf_rows(
            hf_name, hf_split, hf_config, "audio", hf_audio_cache_dir, hf_revision
        )
        source = Path(str(hf_name))
        if not rows:
            raise DatasetFormatError(f"{source}: no rows")
        numbered = []
        for row in rows:
            if not row.get("file_name") and row["_audio_path"] is not None:
                row["file_name"] = row["_audio_path"].name
            if "captions" in row and "caption_1" not in row:  # mirrors storing a list of captions
                for i, caption in enumerate(row["captions"] or [], start=1):
                    row[f"caption_{i}"] = caption
            numbered.append((f"item {row['_index']}", row))
        files = provenance
    else:
        if root is None:
            raise ValueError("clotho: set root (the folder holding the captions CSV) or hf_name")
        source = Path(root) / captions_file
        numbered = read_csv(source, columns, encoding)
        files = {"captions": sha256_file(source)}

    run = LoaderRun(
        source, display_name, version, expected_count, allow_subset, on_error, missing_audio
    )
    samples: list[Sample] = []
    for line, row in numbered:
        file_name = str(row.get("file_name") or "").strip() or None
        if not run.accept(line, file_name, row_shape_error(row, columns), "file_name"):
            continue
        audio = row["_audio_path"] if hf_name else Path(root) / audio_dir / file_name
        samples.append(
            Sample(
                id=file_name,
                audio_path=audio,
                task="captioning",
                references=[str(row[c]).strip() for c in columns[1:]],
            )
        )
    run.check_count(len(samples), "clips")
    return run.finish("captioning", samples, files, references_per_clip=captions_per_clip)
