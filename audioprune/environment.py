"""The locked environment: which lock file this checkout installs, and its hash.

`make install` installs exactly `requirements.txt` (pip-tools output from `pyproject.toml` and
`requirements/pins.txt`). Every `metrics.json` records the lock's sha256 beside the package
versions, so two results can be traced to the same environment.
"""

from __future__ import annotations

import hashlib
import re
from importlib import metadata
from pathlib import Path

LOCK_FILE = Path(__file__).resolve().parents[1] / "requirements.txt"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")


def locked_versions(path: Path = LOCK_FILE) -> dict[str, str]:
    """{distribution name (lower case): exact version} for every pin in the lock file."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = _PIN.match(line.strip())
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def base_version(version: str) -> str:
    """`2.13.0+cpu` -> `2.13.0`: the lock pins torch without a local label."""
    return version.split("+", 1)[0]


def lock_mismatches(path: Path = LOCK_FILE) -> dict[str, tuple[str, str | None]]:
    """{name: (locked, installed or None)} for every locked package whose installed version differs."""
    out: dict[str, tuple[str, str | None]] = {}
    for name, locked in locked_versions(path).items():
        try:
            installed: str | None = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed is None or base_version(installed) != base_version(locked):
            out[name] = (locked, installed)
    return out


def lock_sha256(path: Path = LOCK_FILE) -> str | None:
    """sha256 of the lock file this checkout installs; None for an install without the repository."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
