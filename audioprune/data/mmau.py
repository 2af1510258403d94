"""MMAU test-mini (multiple-choice audio QA): the official JSON + its audio folder.

Official layout (github.com/Sakshi113/MMAU, HF gamma-lab-umd/MMAU-test-mini): a JSON list of
1,000 items with keys `id, audio_id, question, choices, answer, dataset, task, split, category,
sub-category, difficulty`; `audio_id` is `./test-mini-audios/<id>.wav`, relative to the JSON's
folder. The May-2025 re-release (v05.15.25) changed 210 answers, so results carry the JSON's
sha256 and a version string: the config names the version, and a file whose sha256 is a known
release confirms it (`DatasetInfo.extra["version_verified"]`). Sample id = the JSON's `id`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from audioprune.data.audio import sha256_file
from audioprune.data.base import DatasetFormatError, register_loader
from audioprune.data.common import LoaderRun
from audioprune.data.rows import hf_rows, metadata_not_found
from audioprune.records import DatasetInfo, Sample

log = logging.getLogger(__name__)

# sha256 of released test-mini JSONs -> version label.
KNOWN_SHA256 = {
    # Sakshi113/MMAU HEAD 110127f (2026-02): the v05.15.25 release plus its small later fixes.
    "9f18fda99f8dbc2bc5ecd6323fb5063309f54969810b5c6f1caeb3b8d904cf1c": "v05.15.25",
}
REQUIRED = ("id", "question", "choices", "answer", "task")
META_KEYS = ("task", "difficulty", "category", "sub-category", "dataset", "split")


def item_problem(item: object) -> str | None:
    """Why a JSON item is not a usable MMAU question (None if it is)."""
    if not isinstance(item, dict):
        return f"is a {type(item).__name__}, expected an object"
    absent = [k for k in REQUIRED if k not in item]
    if absent:
        return f"missing key(s) {absent}"
    choices = item["choices"]
    if (
        not isinstance(choices, list)
        or len(choices) < 2
        or not all(isinstance(c, str) for c in choices)
    ):
        return f"`choices` must be a list of at least 2 strings, got {choices!r}"
    if not isinstance(item["answer"], str) or item["answer"] not in choices:
        return f"`answer` {item['answer']!r} is not one of the choices {choices}"
    if not isinstance(item["question"], str) or not item["question"].strip():
        return "`question` is empty"
    return None


def checked_version(source: Path, sha: str | None, version: str, warn: bool) -> tuple[str, bool]:
    """(version to record, whether the file's sha256 confirms it).

    A file whose sha256 is a known release records that release's label, whatever the config
    says; an unknown file keeps the configured label, unverified (with a warning if `warn`).
    """
    known = KNOWN_SHA256.get(sha) if sha else None
    if sha and known is None and warn:
        log.warning(
            "%s: sha256 %s is not a known MMAU release; recording version %r as configured (unverified)",
            source,
            sha,
            version,
        )
    elif known is not None and known != version:
        log.warning(
            "%s: sha256 identifies %s but the config says %s; recording %s",
            source,
            known,
            version,
            known,
        )
    return (version if known is None else known), known is not None


@register_loader("mmau")
def load_mmau(
    root: str | Path | None = None,
    questions_file: str = "mmau-test-mini.json",
    audio_dir: str | None = None,
    display_name: str = "MMAU test-mini",
    version: str = "v05.15.25",
    expected_count: int | None = 1000,
    allow_subset: bool = False,
    on_error: str = "raise",
    missing_audio: str = "error",
    hf_name: str | None = None,
    hf_split: str = "test_mini",
    hf_config: str | None = None,
    hf_revision: str | None = None,
    hf_audio_cache_dir: str | Path | None = None,
    verify_version: bool = True,
) -> tuple[list[Sample], DatasetInfo]:
    """Load MMAU items from `root/questions_file` (or the HF dataset `hf_name`).

    audio_dir: None = follow each item's `audio_id` relative to `root`; a folder name = look
    up `<audio_dir>/<basename of audio_id>` (or `<id>.wav` when there is no audio_id).
    verify_version: warn when the JSON's sha256 is not a known release (off for synthetic data).
    """
    if hf_name:
        rows, files = hf_rows(
            hf_name, hf_split, hf_config, "audio", hf_audio_cache_dir, hf_revision
        )
        source = Path(str(hf_name))
        items = []
        for row in rows:
            if isinstance(row.get("choices"), str):  # some mirrors store choices as a JSON string
                try:
                    row["choices"] = json.loads(row["choices"])
                except json.JSONDecodeError:
                    pass  # reported by item_problem below
            items.append(row)
        sha = None
    else:
        if root is None:
            raise ValueError("mmau: set root (the folder holding the questions JSON) or hf_name")
        source = Path(root) / questions_file
        if not source.is_file():
            raise metadata_not_found(source, "questions file")
        try:
            items = json.loads(source.read_text(encoding="utf-8-sig"))
        except UnicodeDecodeError as err:
            raise DatasetFormatError(
                f"{source}: not valid UTF-8 text (byte {err.start}: {err.reason}); the MMAU "
                "questions file is UTF-8 JSON"
            ) from err
        except json.JSONDecodeError as err:
            raise DatasetFormatError(
                f"{source}: invalid JSON at line {err.lineno} column {err.colno}: {err.msg}"
            ) from err
        if not isinstance(items, list):
            raise DatasetFormatError(
                f"{source}: expected a JSON list of questions, got {type(items).__name__}"
            )
        sha = sha256_file(source)
        files = {"questions": sha}

    run = LoaderRun(
        source, display_name, version, expected_count, allow_subset, on_error, missing_audio
    )
    samples: list[Sample] = []
    for index, item in enumerate(items):
        item_id = (
            str(item.get("id")) if isinstance(item, dict) and item.get("id") is not None else None
        )
        if not run.accept(f"item {index}", item_id, item_problem(item), "id"):
            continue
        if hf_name:
            audio = item.get("_audio_path")
        else:
            audio_id = str(item.get("audio_id") or f"{item_id}.wav")
            if audio_dir is None:
                audio = Path(root) / audio_id
            else:
                audio = Path(root) / audio_dir / Path(audio_id).name
        samples.append(
            Sample(
                id=item_id,
                audio_path=audio,
                task="mcq",
                question=item["question"],
                choices=list(item["choices"]),
                answer=item["answer"],
                meta={k: item[k] for k in META_KEYS if k in item},
            )
        )
    run.check_count(len(samples), "questions")
    run.version, verified = checked_version(source, sha, version, verify_version)
    return run.finish("mcq", samples, files, version_verified=verified)
