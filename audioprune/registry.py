"""One way to map names to implementations: selectors, dataset loaders, model adapters, tiny-model
builders, family run loops and metric scorers are each a `Registry`.

    SELECTORS = Registry("selector")

    @SELECTORS.register("topk")
    class TopK(Selector): ...

    SELECTORS.get("topk")      # -> TopK
    SELECTORS.get("tpok")      # ConfigError: unknown selector 'tpok'; valid selectors: ..., topk

An entry may also be registered lazily as a "module:attribute" string (`register_lazy`), for
implementations whose module is heavy to import (a model adapter pulls in transformers): the
name is listed at once, the module is imported on the first `get`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from audioprune.errors import ConfigError

T = TypeVar("T")
_MISSING: Any = object()


class Registry(dict[str, T], Generic[T]):
    """name -> implementation (a class or a function) of one kind.

    A dict, so `name in registry`, `sorted(registry)` and `registry.items()` work as usual
    (lazy entries resolve when read); `get(name)` raises an error that lists the known names.
    """

    def __init__(self, kind: str, plural: str | None = None) -> None:
        super().__init__()
        self.kind = kind  # e.g. "selector", "dataset loader", "model adapter"
        self.plural = plural or f"{kind}s"
        self._lazy: dict[str, str] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: make the decorated class or function available as `name`.

        A name is registered once; registering another object under it is an error, except
        the same definition re-executed (a reloaded module: same module and qualified name).
        """

        def wrap(obj: T) -> T:
            old = dict.get(self, name, _MISSING)
            if name in self._lazy:  # the module a lazy entry names, registering the real thing
                old = _MISSING if self._lazy[name] == ":".join(_where(obj)) else old
            if old is not _MISSING and old is not obj and _where(old) != _where(obj):
                raise ValueError(f"{self.kind} name {name!r} is already registered by {old}")
            self._lazy.pop(name, None)
            self[name] = obj
            return obj

        return wrap

    def register_lazy(self, name: str, target: str) -> None:
        """List `name` now; import `target` ("package.module:attribute") on first use."""
        if ":" not in target:
            raise ValueError(f"{self.kind} {name!r}: lazy target {target!r} is not module:attr")
        self._lazy[name] = target
        dict.__setitem__(self, name, target)  # type: ignore[arg-type]

    def get(self, name: str, default: Any = _MISSING) -> T:  # type: ignore[override]
        """The implementation registered as `name`; an unknown name raises a ConfigError
        listing the known ones (with a `default`, returns it instead, as dict.get does)."""
        if name not in self:
            if default is not _MISSING:
                return default
            raise ConfigError(
                f"unknown {self.kind} {name!r}; valid {self.plural}: {', '.join(sorted(self))}"
            )
        return self[name]

    def __getitem__(self, name: str) -> T:
        target = self._lazy.get(name)
        if target is not None:
            module, attr = target.split(":")
            obj = getattr(importlib.import_module(module), attr)
            self._lazy.pop(name, None)  # importing may have registered it already
            dict.__setitem__(self, name, obj)
        return dict.__getitem__(self, name)

    def values(self):  # type: ignore[override]
        return [self[name] for name in self]

    def items(self):  # type: ignore[override]
        return [(name, self[name]) for name in self]


def _where(obj: Any) -> tuple[str, str]:
    return (getattr(obj, "__module__", ""), getattr(obj, "__qualname__", repr(obj)))
