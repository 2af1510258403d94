"""A content fingerprint of a dataset's audio files, for the run key.

Two datasets with the same metadata (e.g. the same LibriSpeech `trans.txt`) over different audio
must not share saved predictions; the same audio must get the same key on every machine and in
every folder. Per sample the fingerprint hashes

    sample id, the file's path relative to the folder all audio files share, sha256 of its bytes

so it depends on the audio's content only: not on where the dataset lives, nor on modification
times (a plain `cp` or a fresh download of the same files keeps the key).

Cost: hashing every byte once. Each file's sha256 is remembered in a small SQLite table keyed by
(absolute path, size, modification time, change time, inode), so a later load only `stat`s the
files; a file whose size, times or inode changed is hashed again (the change time `ctime` moves on
every write and cannot be set back, so an edit that restores the modification time is caught). The table lives at `$AUDIOPRUNE_HASH_CACHE`,
default `$XDG_CACHE_HOME/audioprune/audio-sha256.sqlite` (`~/.cache/...`); when it cannot be
written the files are hashed every time, with the same result.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

from audioprune.records import Sample

VERSION = "audio-fingerprint-v2"
_CHUNK = 1 << 20


def digest_cache_path() -> Path:
    """Where the per-file sha256 memo lives (see the module docstring)."""
    if os.environ.get("AUDIOPRUNE_HASH_CACHE"):
        return Path(os.environ["AUDIOPRUNE_HASH_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "audioprune" / "audio-sha256.sqlite"


def file_sha256(path: Path) -> str:
    """sha256 of every byte of `path`."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class _DigestMemo:
    """sha256 per (absolute path, size, mtime_ns, ctime_ns, inode); off when unwritable."""

    def __init__(self, path: Path):
        self.db: sqlite3.Connection | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, timeout=30)
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS digest_v2 (path TEXT PRIMARY KEY, size INTEGER, "
                "mtime_ns INTEGER, ctime_ns INTEGER, inode INTEGER, sha256 TEXT)"
            )
        except (OSError, sqlite3.Error):
            self.db = None
        self.pending: list[tuple] = []

    def sha256(self, path: Path) -> str:
        stat = path.stat()
        absolute = str(path.resolve())
        if self.db is not None:
            row = self.db.execute(
                "SELECT size, mtime_ns, ctime_ns, inode, sha256 FROM digest_v2 WHERE path = ?",
                (absolute,),
            ).fetchone()
            if row is not None and tuple(row[:4]) == self._stamp(stat):
                return row[4]
        value = file_sha256(path)
        self.pending.append((absolute, *self._stamp(stat), value))
        return value

    @staticmethod
    def _stamp(stat: os.stat_result) -> tuple[int, int, int, int]:
        return stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino

    def close(self) -> None:
        if self.db is None:
            return
        try:
            with self.db:
                self.db.executemany(
                    "INSERT OR REPLACE INTO digest_v2 VALUES (?, ?, ?, ?, ?, ?)", self.pending
                )
        except sqlite3.Error:
            pass
        self.db.close()


def audio_fingerprint(samples: list[Sample]) -> dict:
    """{version, files, missing, sha256} over the samples' audio files (sorted by sample id).

    A sample without audio (`audio_path` None or absent) counts as `missing` and enters the
    hash as such, so a later download of that file changes the key.
    """
    paths = [Path(s.audio_path) for s in samples if s.audio_path is not None]
    base = Path(os.path.commonpath([str(p.parent) for p in paths])) if paths else Path()
    digest = hashlib.sha256(VERSION.encode())
    files = missing = 0
    memo = _DigestMemo(digest_cache_path())
    try:
        for sample in sorted(samples, key=lambda s: str(s.id)):
            path = None if sample.audio_path is None else Path(sample.audio_path)
            if path is None or not path.is_file():
                missing += 1
                digest.update(f"{sample.id}\tmissing\n".encode())
                continue
            files += 1
            relative = os.path.relpath(path, base).replace(os.sep, "/")
            digest.update(f"{sample.id}\t{relative}\t{memo.sha256(path)}\n".encode())
    finally:
        memo.close()
    return {"version": VERSION, "files": files, "missing": missing, "sha256": digest.hexdigest()}
