"""A content fingerprint of a dataset's audio files, for the run key.

Two datasets with the same metadata (e.g. the same LibriSpeech `trans.txt`) over different audio
must not share saved predictions, yet the fingerprint must stay cheap for 10k files and must
not depend on where the dataset lives. Per sample it hashes:

    sample id, the file's path relative to the folder all audio files share, its size,
    its modification time (ns) and sha256 of its first and last `BLOCK` bytes

(a file no bigger than 2·BLOCK is hashed whole). Any edit changes the modification time; an
edit that keeps it (a tool that restores times) still changes the size or an end block in
practice, and every file under 128 KiB is covered byte for byte. A copy that keeps times
(`cp -p`, `rsync -a`) keeps the key; a copy that does not gets a new key (the predictions are
recomputed, never wrongly reused). Cost: one `stat` and two 64 KiB reads per file.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # load_dataset (data/base.py) calls this module: no import back at run time
    from audioprune.data.base import Sample

BLOCK = 64 * 1024
VERSION = "audio-fingerprint-v1"


def file_digest(path: Path) -> tuple[int, int, str]:
    """(size, mtime_ns, sha256 of the first and last BLOCK bytes) of `path`."""
    stat = path.stat()
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        if stat.st_size <= 2 * BLOCK:
            digest.update(f.read())
        else:
            digest.update(f.read(BLOCK))
            f.seek(-BLOCK, os.SEEK_END)
            digest.update(f.read(BLOCK))
    return stat.st_size, stat.st_mtime_ns, digest.hexdigest()


def audio_fingerprint(samples: list[Sample]) -> dict:
    """{version, files, missing, sha256} over the samples' audio files (sorted by sample id).

    A sample without audio (`audio_path` None or absent) counts as `missing` and enters the
    hash as such, so a later download of that file changes the key.
    """
    paths = [Path(s.audio_path) for s in samples if s.audio_path is not None]
    base = Path(os.path.commonpath([str(p.parent) for p in paths])) if paths else Path()
    digest = hashlib.sha256(VERSION.encode())
    files = missing = 0
    for sample in sorted(samples, key=lambda s: str(s.id)):
        path = None if sample.audio_path is None else Path(sample.audio_path)
        if path is None or not path.is_file():
            missing += 1
            digest.update(f"{sample.id}\tmissing\n".encode())
            continue
        files += 1
        size, mtime_ns, ends = file_digest(path)
        relative = os.path.relpath(path, base).replace(os.sep, "/")
        digest.update(f"{sample.id}\t{relative}\t{size}\t{mtime_ns}\t{ends}\n".encode())
    return {"version": VERSION, "files": files, "missing": missing, "sha256": digest.hexdigest()}
