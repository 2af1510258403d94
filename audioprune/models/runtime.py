"""Runtime helpers every model adapter uses: device and dtype options, peak CUDA memory, the
checkpoint loading path with its checks, the encoder-cache fingerprint of loaded weights, and
the forward-hook timer of prefill and decode steps.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import torch

from audioprune.errors import ConfigError
from audioprune.models.source import ModelSourceError, check_pretrained


def resolve_device(device: str) -> torch.device:
    """ "auto" -> cuda when available, else cpu; anything else is passed to torch.device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
        raise ConfigError(
            f"model.device={device!r} but CUDA is not available on this machine (torch "
            f"{torch.__version__}, {build}); use model.device=cpu, or auto to take a GPU when present"
        )
    return resolved


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """ "float32" / "bfloat16" / "float16" (or a torch.dtype) -> torch.dtype."""
    if isinstance(dtype, torch.dtype):
        return dtype
    value = getattr(torch, str(dtype), None)
    if not isinstance(value, torch.dtype):
        raise ConfigError(
            f"model option `dtype` must name a torch dtype (float32, bfloat16, float16), got {dtype!r}"
        )
    return value


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak-memory window on a CUDA device (nothing to do elsewhere)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float | None:
    """Peak allocated CUDA memory since the last reset, in MiB; None off CUDA (not measured)."""
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def weights_source(pretrained: str, config) -> str:
    """Where the weights came from, for encoder-cache fingerprints: the hub id or the resolved
    local folder with its safetensors files' sizes and mtimes, plus a hash of the config."""
    config_hash = hashlib.sha1(config.to_json_string().encode()).hexdigest()[:12]
    source = pretrained
    local = Path(pretrained)
    if local.is_dir():
        stamp = [
            f"{p.name}:{p.stat().st_size}:{int(p.stat().st_mtime)}"
            for p in sorted(local.glob("*.safetensors"))
        ]
        source = f"{local.resolve()}[{','.join(stamp)}]"
    return f"{source}|config={config_hash}"


def load_checkpoint(
    owner: str,
    pretrained: str,
    model_class: str,
    model_type: str,
    *,
    dtype: torch.dtype,
    device: torch.device,
    attn_implementation: str,
    expected: str = "",
):
    """The loading path of every audio-LM adapter: (model, processor) from `pretrained`.

    Checks the source first (`check_pretrained`: a local folder with config.json, a cached hub
    id, or a reachable hub; else ModelSourceError naming `model.pretrained`), then that its
    config is `model_type` (TypeError naming `owner`, the class found and `model_class`
    `expected`), loads `transformers.<model_class>` in `dtype` with `attn_implementation`
    (straight onto a CUDA device) and the checkpoint's AutoProcessor.
    """
    import transformers
    from transformers import AutoConfig, AutoProcessor

    check_pretrained(pretrained)
    try:
        config = AutoConfig.from_pretrained(pretrained)
    except OSError as err:  # e.g. a hub id that does not exist
        raise ModelSourceError(
            f"model.pretrained={pretrained!r} could not be loaded ({err}); give a hub "
            "id that exists or a local model folder"
        ) from err
    if config.model_type != model_type:
        found = ", ".join(getattr(config, "architectures", None) or []) or type(config).__name__
        raise TypeError(
            f"{owner}: checkpoint {pretrained!r} holds a {found} (model_type "
            f"{config.model_type!r}); expected a {model_class} (model_type {model_type!r})"
            + (f" with {expected}" if expected else "")
        )
    model = getattr(transformers, model_class).from_pretrained(
        pretrained,
        dtype=dtype,
        attn_implementation=attn_implementation,
        # Straight onto the GPU: a 7B model need not pass through host memory first.
        device_map=str(device) if device.type == "cuda" else None,
    )
    return model, AutoProcessor.from_pretrained(pretrained)


def adapter_fingerprint(name: str, pretrained: str, model, dtype, settings: str) -> str:
    """The encoder-cache fingerprint of every audio-LM adapter: adapter name, weights (source,
    config hash, on-disk files), hub revision, dtype, then the adapter's own `settings` (audio
    path, scoring version, ...)."""
    revision = getattr(model.config, "_commit_hash", None)
    source = weights_source(pretrained, model.config)
    return f"{name}|{source}|rev={revision}|dtype={dtype}|{settings}"


class PrefillTimer:
    """Forward pre/post hooks on the whole model: times each forward of one generate call.

    The first forward consumes the whole prompt and yields the first token's logits (prefill:
    decoder layers + LM head; the audio path ran before, so it is not included); later ones
    are decode steps. On CUDA the times come from events read after one synchronize, so the
    hooks never stall the GPU.
    """

    def __init__(self, module: torch.nn.Module, device: torch.device):
        self.cuda = device.type == "cuda"
        self.starts: list = []
        self.stops: list = []
        self.prefill_seq_len = 0
        self.prefill_position_ids: torch.Tensor | None = None
        self._handles = [
            module.register_forward_pre_hook(self._pre, with_kwargs=True),
            module.register_forward_hook(self._post),
        ]

    def _stamp(self):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def _pre(self, module, args, kwargs):
        if not self.starts:
            embeds = kwargs.get("inputs_embeds")
            self.prefill_seq_len = int(embeds.shape[1]) if embeds is not None else 0
            pos = kwargs.get("position_ids")
            # kept on the device: a copy to the host here would wait for it before the prefill
            self.prefill_position_ids = pos.detach() if pos is not None else None
        self.starts.append(self._stamp())

    def _post(self, module, args, output):
        self.stops.append(self._stamp())

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()

    def _ms(self, a, b) -> float:
        return a.elapsed_time(b) if self.cuda else (b - a) * 1000.0

    def result(self) -> tuple[float, float, int]:
        """(prefill ms, decode ms per step, decode steps)."""
        if self.cuda:
            torch.cuda.synchronize()
        if not self.starts:
            return 0.0, 0.0, 0
        prefill = self._ms(self.starts[0], self.stops[0])
        steps = len(self.stops) - 1
        # From the end of the prefill forward to the end of the last decode forward: each step's
        # share includes sampling, lm_head and generate's bookkeeping, as a user would see it.
        decode = self._ms(self.stops[0], self.stops[-1]) / steps if steps > 0 else 0.0
        return prefill, decode, steps
