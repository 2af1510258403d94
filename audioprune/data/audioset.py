"""AudioSet (multi-label): the authors' JSON list plus the AudioSet label CSV.

Layout (the AST / AudioMAE recipes): `{"data": [{"wav": "<path>", "labels": "/m/09x0r,/m/05zppz"}]}`
and `class_labels_indices.csv` (`index, mid, display_name`, 527 rows). AS-20K balanced train has
20,550 clips in the authors' JSON, the eval set 18,886 (whatever could be downloaded: set
`expected_count` or `allow_subset`). Sample id = the wav file name; `references` = display names
(the names a transformers AST checkpoint's `id2label` uses); metric mAP.
"""

from __future__ import annotations

import json
from pathlib import Path

from audioprune.data.audio import sha256_file
from audioprune.data.base import DatasetFormatError, register_loader
from audioprune.data.common import LoaderRun
from audioprune.data.rows import read_csv
from audioprune.records import DatasetInfo, Sample


@register_loader("audioset")
def load_audioset(
    root: str | Path,
    json_file: str = "audioset_eval.json",
    labels_file: str = "class_labels_indices.csv",
    audio_dir: str | None = None,
    display_name: str = "AudioSet eval",
    version: str = "authors-json",
    expected_count: int | None = 18886,
    allow_subset: bool = False,
    on_error: str = "raise",
    missing_audio: str = "error",
) -> tuple[list[Sample], DatasetInfo]:
    """`wav` paths are taken as given, or re-rooted under `root/audio_dir` by file name."""
    root = Path(root)
    labels_csv = root / labels_file
    rows = read_csv(labels_csv, ["index", "mid", "display_name"])
    names = {
        r["mid"].strip(): r["display_name"].strip()
        for _, r in sorted(rows, key=lambda x: int(x[1]["index"]))
    }
    labels = list(names.values())
    source = root / json_file
    if not source.is_file():
        raise DatasetFormatError(f"{source}: metadata file not found")
    try:
        items = json.loads(source.read_text())["data"]
    except (ValueError, KeyError, TypeError) as err:
        raise DatasetFormatError(
            f'{source}: expected {{"data": [{{"wav", "labels"}}]}} ({err})'
        ) from err
    run = LoaderRun(
        source, display_name, version, expected_count, allow_subset, on_error, missing_audio
    )
    samples = []
    for i, item in enumerate(items):
        wav = str(item.get("wav") or "") if isinstance(item, dict) else ""
        mids = (
            [m.strip() for m in str(item.get("labels") or "").split(",") if m.strip()]
            if wav
            else []
        )
        unknown = [m for m in mids if m not in names]
        problem = (
            None
            if wav and mids and not unknown
            else (
                f"unknown label id(s) {unknown}"
                if unknown
                else "needs a non-empty `wav` and `labels`"
            )
        )
        sample_id = Path(wav).name or None
        if run.accept(f"item {i}", sample_id, problem, "wav"):
            audio = root / audio_dir / Path(wav).name if audio_dir else Path(wav)
            samples.append(Sample(id=sample_id, audio_path=audio, task="multilabel",
                                  references=[names[m] for m in mids], choices=labels))  # fmt: skip
    run.check_count(len(samples), "clips")
    return run.finish("multilabel", samples, {"json": sha256_file(source), "labels": sha256_file(labels_csv)},
                      labels=labels)  # fmt: skip
