"""The error type for known input and config problems.

A `InputError` says what the user gave that cannot work (a config option, a dataset row, an
audio file, a model folder) and names it; the entry points (`python -m audioprune.run`,
`evaluate`, `analyze`, `macs`, the scripts) print its message alone, without a traceback
(`HYDRA_FULL_ERROR=1` or `AUDIOPRUNE_TRACEBACK=1` shows the trace). Anything else is a bug and
keeps its traceback. Both are ValueErrors, so `except ValueError` keeps catching them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import TypeVar


class InputError(ValueError):
    """A known problem with the user's input (data, files, models); the message names it."""


class ConfigError(InputError):
    """A config option that is out of range or that the model cannot honour, named
    `group.option=value` as it is written on the command line."""


F = TypeVar("F", bound=Callable)


def full_traceback() -> bool:
    return any(
        os.environ.get(v, "") not in ("", "0") for v in ("HYDRA_FULL_ERROR", "AUDIOPRUNE_TRACEBACK")
    )


def exit_on_input_error(fn: F) -> F:
    """Decorate an entry point: an `InputError` prints `error: <message>` on stderr and exits 2,
    unless HYDRA_FULL_ERROR / AUDIOPRUNE_TRACEBACK is set (then it propagates)."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except InputError as err:
            if full_traceback():
                raise
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper  # type: ignore[return-value]
