"""Where a model comes from: `model.pretrained` is a local folder or a Hugging Face hub id.

Checked before transformers is asked, so a wrong value fails at once with a message that names
the option: a local path that does not exist says so (transformers would call it an invalid repo
id), and a hub id that is neither cached nor reachable fails fast when offline (`HF_HUB_OFFLINE`
or no connection to the hub) instead of after transformers' retries.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from urllib.parse import urlparse

from audioprune.errors import InputError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
TRUE = ("1", "true", "yes", "on")


class ModelSourceError(OSError, InputError):
    """`model.pretrained` cannot be loaded from where it points; the message names it."""


def looks_local(pretrained: str) -> bool:
    """A filesystem path rather than a hub id ("org/name" or "name")."""
    return (
        pretrained.startswith(("/", ".", "~"))
        or "\\" in pretrained
        or not HUB_ID.match(pretrained)
        or ".." in pretrained
        or "--" in pretrained
    )


def offline_reason(timeout: float = 3.0) -> str | None:
    """Why the hub cannot be reached (offline mode set, or no TCP connection), else None."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in TRUE:
            return f"{var}={os.environ[var]} is set"
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or 443
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        return f"no connection to {host}:{port} ({type(err).__name__}: {err})"
    return None


def in_hub_cache(repo_id: str) -> bool:
    """Whether the hub cache already holds the repo's config.json (loading then needs no network)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # an id the hub client rejects is simply not cached
        return False


def check_pretrained(pretrained: str, option: str = "model.pretrained") -> None:
    """Raise ModelSourceError unless `pretrained` is a model folder, a cached hub id, or a hub id
    while the hub is reachable (transformers then reports a repo that does not exist)."""
    path = Path(pretrained).expanduser()
    local_hint = f"give a local folder instead: {option}=/path/to/model (holding config.json)"
    if path.exists():
        if not path.is_dir() or not (path / "config.json").is_file():
            raise ModelSourceError(
                f"{option}={pretrained!r} is not a model folder: expected a folder holding "
                "config.json, the weights (*.safetensors) and the processor files"
            )
        return
    if looks_local(pretrained):
        raise ModelSourceError(
            f"{option}={pretrained!r}: local folder {path.resolve()} does not exist; "
            "give an existing model folder (config.json + weights) or a hub id such as "
            "Qwen/Qwen2-Audio-7B-Instruct"
        )
    if in_hub_cache(pretrained):
        return
    reason = offline_reason()
    if reason:
        raise ModelSourceError(
            f"{option}={pretrained!r} is not a local folder (no {path.resolve()}) and not in the "
            f"Hugging Face cache, and the hub cannot be reached: {reason}. Download it once where "
            f"there is network (`huggingface-cli download {pretrained}`), or {local_hint}"
        )
