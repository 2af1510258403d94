"""Memory and FLOPs you can plan with: `python -m audioprune.plan model=... batch_size=... ...`.

A Hydra app composed from the same config tree as `python -m audioprune.run` (configs/plan.yaml
adds the planning options). It loads no weights and reads no audio: the model's architecture
comes from its config.json (a local folder, the Hugging Face cache, a tiny model built on the
spot) or, for the two real audio LLMs when no config is on disk, from the published sizes
(`audioprune.models.real_size`); parameters are counted on the `meta` device. It prints, for the
run's batch size, the analytic peak memory split into weights, KV cache of the pruned prompt and
the larger of the two activation phases, the analytic FLOPs (`audioprune.flops`), and the largest
batch size that fits `gpu_memory_gb`.

Memory model (bytes; b = bytes per element of the model dtype, B = batch, F = encoder windows
per forward, T = 1500 encoder frames, d / f / H = encoder width / FFN width / heads, S = prompt
tokens = text + kept audio, h / f_l / L / kv·hd = LLM width / FFN width / layers / KV width,
V = vocabulary, n = new tokens):
- weights: parameters × b;
- encoder phase: F·(128·2·T + d·2·T + T·(4d + 2f))·b for the input features, stem and one
  layer's live tensors, + F·T·(H + 8)·4 for the scorer's fp32 statistics and one window's fp32
  q / k copies, + H·128·T·4·2 for its query chunk's probabilities, + F·(T/2)·d·b outputs;
- prefill phase: B·S·(6h + 2·kv·hd + 3·f_l)·b for the embeddings and one layer's live tensors,
  + B·S_l·V·b logits (S_l = S where the model applies the LM head at every prompt position,
  Qwen2-Audio; 1 for AF3) + B·V·4 for generate's fp32 copy of the last logits, + one layer's
  KV copy while the cache grows (2·B·(S + n)·kv·hd·b);
- KV cache: 2·L·B·(S + n)·kv·hd·b;
- peak = weights + max(encoder phase, prefill phase + KV cache) + overhead.
Attention runs in fused kernels (sdpa on a GPU: no S×S matrix). `tests/test_plan.py` checks the
model against the measured peak RSS of a mid-size model on the CPU; `scripts/gpu_check.py`
against torch.cuda.max_memory_allocated.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from audioprune import flops
from audioprune.budget import keep_count
from audioprune.config import CONFIG_DIR, plain
from audioprune.errors import exit_on_input_error

GIB = 2**30
TOKENS_PER_WINDOW = 750  # 30 s: 1500 encoder frames pooled 2:1
QUERY_CHUNK = 128  # audioprune.attention_scores.QUERY_CHUNK
# Adapters whose model applies the LM head at every prompt position in the prefill (P12).
LOGITS_EVERY_POSITION = {"qwen2_audio": True, "audio_flamingo_3": False}
# Audio windows per encoder forward (WhisperStyleAdapter.encoder_windows_per_forward).
WINDOWS_PER_FORWARD = {"qwen2_audio": None, "audio_flamingo_3": 16}
MAX_WINDOWS = {"qwen2_audio": 1, "audio_flamingo_3": 20}


@dataclass
class Plan:
    """One run's analytic budget (bytes and FLOPs) at `batch_size`."""

    model: str
    dtype: str
    batch_size: int
    retention: float
    windows: int  # per clip
    audio_tokens: int  # per clip, before pruning
    kept_tokens: int  # per clip
    prompt_tokens: int  # per clip: text + kept audio
    parameters: int
    weights: int
    encoder_activations: int
    prefill_activations: int
    kv_cache: int
    overhead: int
    peak: int
    audio_flops: int  # per clip: encoder + scoring
    prefill_flops: int  # per clip
    decode_flops_per_token: int  # per clip
    gpu_memory_gb: float
    fits: bool
    max_batch_size: int  # the largest batch that fits gpu_memory_gb (0: not even one clip)

    def table(self) -> str:
        rows = [
            ("parameters", f"{self.parameters / 1e9:.3f} B ({self.dtype})"),
            ("weights", _gib(self.weights)),
            ("encoder activations", _gib(self.encoder_activations)),
            ("prefill activations", _gib(self.prefill_activations)),
            (f"KV cache ({self.prompt_tokens} prompt tokens / row)", _gib(self.kv_cache)),
            ("overhead", _gib(self.overhead)),
            ("peak", _gib(self.peak)),
            ("audio path TFLOP / clip", f"{self.audio_flops / 1e12:.3f}"),
            ("LLM prefill TFLOP / clip", f"{self.prefill_flops / 1e12:.3f}"),
            ("decode GFLOP / token / clip", f"{self.decode_flops_per_token / 1e9:.2f}"),
        ]
        head = (
            f"{self.model} {self.dtype}, batch {self.batch_size}, retention {self.retention:g}: "
            f"{self.windows} window(s), {self.kept_tokens} of {self.audio_tokens} audio tokens "
            "per clip\n"
        )
        lines = ["| quantity | value |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows]
        verdict = (
            f"\n{'fits' if self.fits else 'does NOT fit'} in {self.gpu_memory_gb:g} GiB; "
            f"largest batch that fits: {self.max_batch_size}"
        )
        return head + "\n".join(lines) + verdict


def _gib(value: int) -> str:
    return f"{value / GIB:.2f} GiB"


def model_config(model_cfg) -> tuple[object, str]:
    """(transformers config, where it came from) for a model YAML node, loading no weights."""
    from transformers import AutoConfig

    adapter = str(model_cfg.get("adapter", ""))
    pretrained = str(model_cfg.get("pretrained", ""))
    build_tiny = model_cfg.get("build_tiny")
    if build_tiny and not (Path(pretrained) / "config.json").exists():
        from audioprune.models.tiny import ensure_tiny_model

        ensure_tiny_model(str(build_tiny), pretrained, model_cfg.get("build_args"))
    try:  # a local folder or the Hugging Face cache: planning never downloads
        return AutoConfig.from_pretrained(pretrained, local_files_only=True), pretrained
    except (OSError, ValueError) as err:
        from audioprune.models.real_size import REAL_SIZES, build_real_size

        if adapter not in REAL_SIZES:
            raise ValueError(
                f"plan: no config.json for model.pretrained={pretrained!r} ({err}); planning "
                f"needs the checkpoint's config (known without it: {', '.join(REAL_SIZES)})"
            ) from err
        model, _ = build_real_size(adapter, device="meta")
        return model.config, f"published {adapter} architecture (no config.json on disk)"


def count_parameters(config, adapter: str) -> int:
    """Parameters of the model `config` describes, counted on the meta device (no memory)."""
    import transformers

    from audioprune.models import ADAPTERS

    expected = ADAPTERS.get(adapter).expected_class
    with torch.device("meta"):
        model = getattr(transformers, expected)._from_config(config)
    return sum(p.numel() for p in model.parameters())


def clip_tokens(seconds: float, adapter: str) -> list[int]:
    """Audio tokens per 30 s window of a clip of `seconds` (25 tokens per second)."""
    windows = min(MAX_WINDOWS.get(adapter, 1), max(1, -(-int(seconds * 100) // 3000)))
    left = seconds
    out = []
    for _ in range(windows):
        out.append(max(1, min(TOKENS_PER_WINDOW, int(left * 25))))
        left -= 30
    return out


def plan_run(
    config,
    adapter: str,
    dtype: torch.dtype,
    batch_size: int,
    retention: float,
    seconds: float = 30.0,
    text_tokens: int = 40,
    new_tokens: int = 32,
    gpu_memory_gb: float = 80.0,
    overhead_gb: float = 1.5,
    parameters: int | None = None,
    llm_keep: float | None = None,
    max_batch: bool = True,
) -> Plan:
    """The analytic plan (module docstring) of one run; `parameters` skips the meta count.

    llm_keep: for an in-LLM selector, the audio share kept after its layer (the prefill's first
    layers and the KV cache of those layers see every token; counted as if all were kept, an
    upper bound)."""
    if adapter not in LOGITS_EVERY_POSITION:
        raise ValueError(
            f"plan: model adapter {adapter!r} is not an audio LLM (planned: "
            f"{', '.join(LOGITS_EVERY_POSITION)})"
        )
    b = torch.empty(0, dtype=dtype).element_size()
    audio, text = config.audio_config, config.text_config
    d = int(getattr(audio, "d_model", None) or audio.hidden_size)
    f = int(getattr(audio, "encoder_ffn_dim", None) or audio.intermediate_size)
    heads = int(getattr(audio, "encoder_attention_heads", None) or audio.num_attention_heads)
    frames = int(audio.max_source_positions)
    h, f_l, layers = text.hidden_size, text.intermediate_size, text.num_hidden_layers
    head_dim = getattr(text, "head_dim", None) or h // text.num_attention_heads
    kv = text.num_key_value_heads * head_dim
    vocab = text.vocab_size

    sizes = clip_tokens(seconds, adapter)
    kept = sum(keep_count(n, retention) for n in sizes) if llm_keep is None else sum(sizes)
    prompt = text_tokens + kept
    windows = len(sizes) * batch_size
    per_forward = min(windows, WINDOWS_PER_FORWARD.get(adapter) or windows)
    params = parameters if parameters is not None else count_parameters(config, adapter)

    t2 = 2 * frames
    encoder = per_forward * (128 * t2 + d * t2 + frames * (4 * d + 2 * f)) * b
    encoder += per_forward * frames * (heads + 8) * 4 + heads * QUERY_CHUNK * frames * 4 * 2
    encoder += windows * (frames // 2) * d * b
    logit_rows = prompt if LOGITS_EVERY_POSITION[adapter] else 1
    prefill = batch_size * prompt * (6 * h + 2 * kv + 3 * f_l) * b
    prefill += batch_size * logit_rows * vocab * b + batch_size * vocab * 4
    kv_cache = 2 * layers * batch_size * (prompt + new_tokens) * kv * b
    prefill += 2 * batch_size * (prompt + new_tokens) * kv * b  # one layer's copy while growing
    weights = params * b
    overhead = int(overhead_gb * GIB)
    peak = weights + max(encoder, prefill + kv_cache) + overhead

    audio_flops = flops.audio_path_flops(audio, len(sizes), frames=frames)
    prefill_flops = flops.llm_prefill_flops(text, prompt, logit_rows)
    decode = flops.llm_flops_per_token(text, lm_head=True)
    budget = gpu_memory_gb * GIB
    plan = Plan(
        model=str(getattr(config, "model_type", adapter)),
        dtype=str(dtype).replace("torch.", ""),
        batch_size=batch_size,
        retention=retention,
        windows=len(sizes),
        audio_tokens=sum(sizes),
        kept_tokens=kept,
        prompt_tokens=prompt,
        parameters=params,
        weights=weights,
        encoder_activations=encoder,
        prefill_activations=prefill,
        kv_cache=kv_cache,
        overhead=overhead,
        peak=peak,
        audio_flops=audio_flops,
        prefill_flops=prefill_flops,
        decode_flops_per_token=decode,
        gpu_memory_gb=gpu_memory_gb,
        fits=peak <= budget,
        max_batch_size=0,
    )
    if max_batch:

        def fits(bs: int) -> bool:
            return plan_run(
                config, adapter, dtype, bs, retention, seconds, text_tokens, new_tokens,
                gpu_memory_gb, overhead_gb, params, llm_keep, max_batch=False,
            ).fits  # fmt: skip

        plan.max_batch_size = _largest_batch(fits, plan.fits if batch_size == 1 else fits(1))
    return plan


def _largest_batch(fits, one_fits: bool, limit: int = 4096) -> int:
    """The largest batch size in [1, limit] for which fits(batch) holds (peak grows with it)."""
    if not one_fits:
        return 0
    lo, hi = 1, 2
    while hi <= limit and fits(hi):
        lo, hi = hi, hi * 2
    hi = min(hi, limit + 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def plan_from_config(cfg: DictConfig) -> tuple[Plan, str]:
    """The plan of the run `cfg` describes (plan.yaml options) and where the architecture came from."""
    from audioprune.budget import check_retention
    from audioprune.models.runtime import resolve_dtype
    from audioprune.options import make_selector

    model = cfg.model
    adapter = str(model.get("adapter", ""))
    config, source = model_config(model)
    selector = make_selector(cfg.selector)
    retention = check_retention(cfg.retention) if selector.prunes else 1.0
    generation = plain(model.get("generation")) or {}
    new_tokens = cfg.get("new_tokens") or int(generation.get("max_new_tokens", 32))
    batch = int(cfg.batch_size)
    if batch < 1:
        raise ValueError(f"plan: batch_size must be an integer >= 1, got {cfg.batch_size!r}")
    if getattr(selector, "stage", "encoder") == "llm":
        batch = 1  # in-LLM selectors run one clip per generate call (the run loop's rule)
    plan = plan_run(
        config,
        adapter,
        resolve_dtype(model.get("dtype", "float32")),
        batch,
        retention,
        seconds=float(cfg.get("seconds", 30)),
        text_tokens=int(cfg.get("text_tokens", 40)),
        new_tokens=int(new_tokens),
        gpu_memory_gb=float(cfg.get("gpu_memory_gb", 80)),
        overhead_gb=float(cfg.get("overhead_gb", 1.5)),
        llm_keep=retention if getattr(selector, "stage", "encoder") == "llm" else None,
    )
    return plan, source


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="plan")
@exit_on_input_error
def main(cfg: DictConfig) -> None:
    logging.getLogger("audioprune").setLevel(logging.INFO)
    plan, source = plan_from_config(cfg)
    print(f"architecture: {source}")
    print(plan.table())


def as_dict(plan: Plan) -> dict:
    return asdict(plan)


if __name__ == "__main__":
    main()
