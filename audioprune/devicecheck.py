"""Device discipline without a GPU: run code as if its tensors lived on an accelerator.

`DeviceAudit` is a `TorchDispatchMode` that gives tensors a pretend device (`meta`, which every
torch build has) while their data stays on the CPU, so the code under audit computes its real
results. It records every operation that would break or stall on a real accelerator:

- `sync`: a value read on the host (`.item()`, `int(t)`, `float(t)`, `bool(t)`, `if t:`), or an
  operation whose output size depends on the data (`nonzero`, `unique`, `masked_select`,
  indexing with a boolean mask) — each waits for the device on CUDA;
- `to_host`: a copy of a device tensor to the CPU (`.cpu()`, `.to("cpu")`, `.tolist()`,
  `.numpy()` go through it);
- `mixed`: an operation that mixes device tensors with CPU tensors of one or more dimensions
  (CUDA raises "Expected all tensors to be on the same device"; indexing with a CPU index tensor
  works there but copies it to the device synchronously).

Factory calls that name the pretend device (`torch.zeros(n, device=x.device)`) make device
tensors; factory calls without a device make CPU tensors, which are fine until they meet a device
tensor. Tests (tests/test_device_discipline.py) run the selectors, `prune_clip`, the scorer hook
and the in-LLM hooks under the audit and fail on any violation the code does not declare.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

PRETEND = torch.device("meta")
aten = torch.ops.aten
# Ops whose output size depends on the data: CUDA copies a count to the host to size the output.
DATA_DEPENDENT = {
    aten.nonzero.default,
    aten.masked_select.default,
    aten._unique2.default,
    aten.unique_dim.default,
    aten.unique_consecutive.default,
    aten._unique.default,
    aten.repeat_interleave.Tensor,
}
COPY_OPS = {aten._to_copy.default, aten.to.device, aten.to.dtype_layout, aten.to.other}
INDEX_OPS = {aten.index.Tensor, aten.index_put_.default, aten.index_put.default}


class OnDevice(torch.Tensor):
    """A CPU tensor (`elem`) that reports the pretend device; see the module docstring."""

    elem: torch.Tensor

    @staticmethod
    def __new__(cls, elem: torch.Tensor):
        return torch.Tensor._make_wrapper_subclass(
            cls,
            elem.shape,
            strides=elem.stride(),
            storage_offset=elem.storage_offset(),
            dtype=elem.dtype,
            layout=elem.layout,
            device=PRETEND,
            requires_grad=elem.requires_grad,
        )

    def __init__(self, elem: torch.Tensor):
        if elem.device == PRETEND:
            raise RuntimeError("DeviceAudit: a device tensor without data (a meta tensor)")
        self.elem = elem

    __torch_function__ = torch._C._disabled_torch_function_impl

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        # Outside an audit (a test reading results): plain unwrap / rewrap, nothing recorded.
        return _run(func, args, kwargs or {}, None)

    def __repr__(self) -> str:
        return f"OnDevice({self.elem!r})"

    # Read on the host without a dispatched op: recorded by hand.
    def tolist(self):
        _note("to_host", "Tensor.tolist")
        return self.elem.tolist()

    def numpy(self, *args, **kwargs):
        _note("to_host", "Tensor.numpy")
        return self.elem.numpy(*args, **kwargs)


_ACTIVE: list[DeviceAudit] = []


def _note(kind: str, op: str) -> None:
    if _ACTIVE:
        _ACTIVE[-1].record(kind, op)


@dataclass
class Violation:
    kind: str  # "sync", "to_host" or "mixed"
    op: str
    where: str  # innermost frame outside torch and this module: "file.py:line in function"

    def __str__(self) -> str:
        return f"{self.kind}: {self.op} at {self.where}"


def _caller() -> str:
    """The innermost frame outside torch and this module: the line that asked for the op."""
    for frame in reversed(traceback.extract_stack()):
        path = frame.filename.replace("\\", "/")
        if "/torch/" in path or path.endswith("devicecheck.py") or path.startswith("<"):
            continue
        short = (
            path.split("/audioprune/")[-1] if "/audioprune/" in path else path.rsplit("/", 1)[-1]
        )
        return f"{short}:{frame.lineno} in {frame.name}"
    return "?"


def _run(func, args, kwargs, audit: DeviceAudit | None):
    flat, _ = tree_flatten((args, kwargs))
    on_device = [t for t in flat if isinstance(t, OnDevice)]
    host = [t for t in flat if isinstance(t, torch.Tensor) and not isinstance(t, OnDevice)]
    for t in host:
        if t.device == PRETEND:
            raise RuntimeError(
                f"DeviceAudit: {func} got a data-less meta tensor; torch.tensor(data, device=...) "
                "bypasses the dispatcher, so build it on the host and move it with .to(device)"
            )
    devices = [d for d in flat if isinstance(d, torch.device)]
    wants_device = PRETEND in devices
    to_host = func in COPY_OPS and any(d.type == "cpu" for d in devices)
    if audit is not None and on_device:
        if func is aten._local_scalar_dense.default:
            audit.record("sync", func)
        elif func in DATA_DEPENDENT:
            audit.record("sync", func)
        elif func in INDEX_OPS and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool
            for i in (args[1] if len(args) > 1 else [])
            if i is not None
        ):
            audit.record("sync", func, "boolean-mask indexing")
        if to_host:
            audit.record("to_host", func)
        elif func is aten.copy_.default and not isinstance(args[0], OnDevice):
            audit.record("to_host", func)
        elif any(t.dim() > 0 for t in host) and func is not aten.copy_.default:
            audit.record("mixed", func, f"CPU tensor of shape {tuple(host[0].shape)}")

    def unwrap(t):
        if isinstance(t, OnDevice):
            return t.elem
        if isinstance(t, torch.device) and t == PRETEND:
            return torch.device("cpu")
        return t

    call_kwargs = dict(tree_map(unwrap, kwargs))
    if call_kwargs.get("device") is not None and torch.device(call_kwargs["device"]) == PRETEND:
        call_kwargs["device"] = torch.device("cpu")
    inputs = {id(t.elem): t for t in on_device}
    out = func(*tree_map(unwrap, args), **call_kwargs)
    if to_host or not (on_device or wants_device):
        return out

    def wrap(t):
        if not isinstance(t, torch.Tensor) or isinstance(t, OnDevice):
            return t
        same = inputs.get(id(t))  # in-place ops return their input
        return same if same is not None else OnDevice(t)

    return tree_map(wrap, out)


class DeviceAudit(TorchDispatchMode):
    """Record what would sync or leave the device; see the module docstring.

    with DeviceAudit() as audit:
        window = audit.put(window)           # tensors (or dataclasses of them) onto the device
        selection = selector.select_window(window, k)
    audit.violations                          # [Violation]; audit.host(x) reads results back
    """

    def __init__(self):
        super().__init__()
        self.violations: list[Violation] = []

    def __enter__(self):
        _ACTIVE.append(self)
        # torch.tensor / torch.as_tensor copy their data without the dispatcher: built on the
        # host and moved, their device tensors hold data (transformers' generate makes some).
        self._factories = {name: getattr(torch, name) for name in ("tensor", "as_tensor")}
        for name, factory in self._factories.items():
            setattr(torch, name, _host_then_move(factory))
        return super().__enter__()

    def __exit__(self, *exc):
        for name, factory in self._factories.items():
            setattr(torch, name, factory)
        _ACTIVE.remove(self)
        return super().__exit__(*exc)

    def record(self, kind: str, func, detail: str = "") -> None:
        op = str(func) + (f" ({detail})" if detail else "")
        self.violations.append(Violation(kind, op, _caller()))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return _run(func, args, kwargs or {}, self)

    @staticmethod
    def put(value):
        """Tensors in `value` (a tensor, list, tuple, dict or dataclass) onto the pretend device."""
        return _map(value, lambda t: t if isinstance(t, OnDevice) else OnDevice(t.detach()))

    @staticmethod
    def put_module(module: torch.nn.Module) -> torch.nn.Module:
        """Every parameter and buffer of `module` onto the pretend device, in place."""
        for name, param in list(module.named_parameters()):
            owner, _, leaf = name.rpartition(".")
            parent = module.get_submodule(owner)
            wrapped = torch.nn.Parameter(OnDevice(param.detach()), requires_grad=False)
            parent._parameters[leaf] = wrapped
        for name, buffer in list(module.named_buffers()):
            owner, _, leaf = name.rpartition(".")
            module.get_submodule(owner)._buffers[leaf] = OnDevice(buffer)
        return module

    @staticmethod
    def host(value):
        """The CPU data of every tensor in `value` (same containers)."""
        return _map(value, lambda t: t.elem if isinstance(t, OnDevice) else t)

    def kinds(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for v in self.violations:
            counts[v.kind] = counts.get(v.kind, 0) + 1
        return counts

    def report(self) -> str:
        return "\n".join(str(v) for v in self.violations) or "no violations"


def _host_then_move(factory):
    def build(*args, device=None, **kwargs):
        if device is not None and torch.device(device) == PRETEND:
            return factory(*args, **kwargs).to(PRETEND)
        return factory(*args, device=device, **kwargs)

    return build


def on_device(t) -> bool:
    """Whether `t` is a tensor on the pretend device."""
    return isinstance(t, OnDevice)


def _map(value, fn):
    from dataclasses import fields, is_dataclass, replace

    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, list | tuple):
        return type(value)(_map(v, fn) for v in value)
    if isinstance(value, dict):
        return {k: _map(v, fn) for k, v in value.items()}
    if is_dataclass(value) and not isinstance(value, type):
        return replace(value, **{f.name: _map(getattr(value, f.name), fn) for f in fields(value)})
    return value
