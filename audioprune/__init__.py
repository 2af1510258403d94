"""audioprune: token pruning for audio-language models (reproduction and extension harness).

`audioprune.load_model` (see `audioprune.api`) is imported on first use, so `import audioprune`
stays light (no torch, no transformers).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# name -> module that defines it, imported when the name is first looked up.
_LAZY = {"load_model": "audioprune.api", "Model": "audioprune.api", "Result": "audioprune.api"}

__all__ = ["Model", "Result", "__version__", "load_model"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audioprune' has no attribute {name!r}")
