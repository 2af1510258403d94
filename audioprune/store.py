"""Per-run prediction storage that survives crashes.

Each finished sample is appended to `predictions.jsonl` as one line, flushed and fsync-ed, so a
run killed at any point (even SIGKILL) loses at most the line being written. On resume a
truncated or unparsable trailing line is detected, reported with a warning naming the file, and
its sample recomputed; everything else is kept.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from audioprune.errors import InputError

log = logging.getLogger(__name__)


class WriteError(OSError, InputError):
    """A run file could not be written (disk full, no permission); the message names it."""


@contextlib.contextmanager
def naming(path: Path, what: str = "write"):
    """Re-raise an OSError of the block as a WriteError naming `path` (a full disk's
    "No space left on device" names no file by itself)."""
    try:
        yield
    except WriteError:
        raise
    except OSError as err:
        reason = err.strerror or str(err)
        raise WriteError(err.errno, f"cannot {what} {path}: {reason}") from err


def _default_file_mode() -> int:
    """The mode `open(path, "w")` gives a new file (0666 minus the umask, 0644 usually)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_text(path: Path, text: str) -> None:
    """Write a whole file or nothing: temp file in the same folder, fsync, rename.

    The file gets the same mode as any other file the run writes (mkstemp's temp files are
    0600, which would make metrics.json unreadable to the group while predictions are not).
    """
    with naming(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            os.fchmod(fd, _default_file_mode())
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_jsonl(path: Path, *, repair: bool = False) -> list[dict]:
    """Read complete JSON lines. A damaged line (e.g. cut by a crash) is skipped with a warning
    naming the file and line; with `repair` the file is rewritten without it."""
    if not path.exists():
        return []
    records, bad = [], []
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or "id" not in record:
                raise ValueError("not an object with an 'id'")
        except ValueError as err:
            bad.append((number, str(err)))
            continue
        records.append(record)
    for number, err in bad:
        log.warning("%s line %d is damaged (%s); its sample will be recomputed", path, number, err)
    if bad and repair:
        atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    return records


class PredictionStore:
    """Append-only JSONL of finished samples: {"id", "prediction", ...} per line."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.records: dict[str, dict] = {}
        for record in read_jsonl(self.path, repair=True):
            self.records[str(record["id"])] = record  # a later line for the same id wins

    def __contains__(self, sample_id: str) -> bool:
        return sample_id in self.records

    def append(self, record: dict) -> None:
        line = json.dumps(record, sort_keys=True, default=str) + "\n"
        # One write of one whole line in append mode, then fsync: a crash leaves at most a
        # partial last line, which read_jsonl drops (a full disk included).
        with naming(self.path, "append to"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
        self.records[str(record["id"])] = record
