"""Building a folder atomically: the one helper every built artefact uses (tiny and mini models,
converted Whisper weights, synthetic datasets).

    with atomic_directory(folder, complete="config.json") as tmp:
        model.save_pretrained(tmp)

The body writes into a fresh temporary sibling of `folder`; on success the sibling is renamed
to `folder`, so a reader never sees a half-written folder and an interrupted build leaves
nothing behind (the sibling is removed on any exception).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_directory(path: str | Path, complete: str, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; when the body finishes, move it to `path`.

    complete: a file the finished folder holds (written last, or always present in a finished
        build). When `path` already holds it after our build, a concurrent builder finished
        first: its folder is kept and ours dropped.
    replace: an existing folder at `path` is an outdated build to be replaced (removed first);
        without it only an empty folder there is replaced, anything else is an error.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        if replace and target.exists():
            shutil.rmtree(target)
        elif target.is_dir() and not (target / complete).exists():
            with contextlib.suppress(OSError):  # empty, or a concurrent builder just finished
                target.rmdir()
        try:
            tmp.rename(target)
        except OSError:
            if not (target / complete).exists():  # not a concurrent builder that finished
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
