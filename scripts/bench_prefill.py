"""LLM prefill time of Qwen2-Audio with and without audio-token pruning (random weights).

Builds a Qwen2-Audio with random weights (timing does not depend on weight values), encodes one
30 s synthetic clip, keeps K = keep_count(750, r) tokens by `topk` for each retention r, and times
the prefill forward (decoder layers + LM head) inside the adapter's `generate` (one new token,
so the generate call is the prefill). Prints a Markdown table: retention, audio tokens, prefill
sequence length, median prefill ms, the measured time ratio beside the token ratio, and the
analytic FLOPs (audioprune.flops) with the rate they imply: the whole prefill (layers + LM head,
which Qwen2-Audio applies at every prompt position: pitfall P12) over the measured time. `--peak-tflops` adds the share of the device's peak.

  python scripts/bench_prefill.py                                   # CPU, Qwen2-0.5B-shaped LLM
  python scripts/bench_prefill.py --device cuda --real-size         # Qwen2-Audio-7B-Instruct shape, bf16
  python scripts/bench_prefill.py --device cuda --real-size --peak-tflops 989   # H100 SXM bf16 dense

Default size: tiny audio tower (d 256 x 2 layers) + Qwen2-0.5B-shaped LLM (hidden 896, 24 layers,
14 heads, 2 KV heads, ffn 4864). --real-size: the published Qwen2-Audio-7B-Instruct architecture
(docs/models-audio-llms.md). The tokenizer is the tiny offline one, so the text part of the prompt
is a little longer than with Qwen's tokenizer; the audio tokens are exactly the model's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audioprune.budget import keep_count  # noqa: E402
from audioprune.models.base import PrunedAudio  # noqa: E402
from audioprune.models.qwen2_audio import Qwen2AudioAdapter  # noqa: E402
from audioprune.models.real_size import QWEN2_AUDIO_7B  # noqa: E402
from audioprune.models.runtime import resolve_device  # noqa: E402
from audioprune.models.tiny import tiny_qwen2_audio  # noqa: E402

CPU_SIZE = dict(
    audio_d_model=256, audio_layers=2, audio_heads=4, audio_ffn=1024,
    text_hidden=896, text_layers=24, text_heads=14, text_kv_heads=2, text_ffn=4864,
)  # fmt: skip
# Qwen/Qwen2-Audio-7B-Instruct config.json (docs/models-audio-llms.md).
REAL_SIZE = QWEN2_AUDIO_7B
PROMPT = "Describe the audio in one sentence."


def synthetic_clip(seconds: float = 30.0, rate: int = 16_000) -> np.ndarray:
    """A chirp with pulses and noise: [seconds * rate] float32."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * (220 + 60 * t) * t) + 0.2 * (np.sin(2 * np.pi * 2 * t) > 0.9)
    return (wave + 0.05 * rng.standard_normal(t.shape)).astype(np.float32)


def topk(scores: torch.Tensor, k: int) -> torch.Tensor:
    try:
        from audioprune.selectors import build_selector

        return build_selector("topk")(scores, k)
    except (ImportError, ValueError):
        return torch.topk(scores, k).indices.sort().values


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, auto")
    parser.add_argument("--real-size", action="store_true", help="Qwen2-Audio-7B-Instruct shape")
    parser.add_argument(
        "--dtype", default=None, help="default: bfloat16 with --real-size, else float32"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per retention (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per retention first")
    parser.add_argument("--retentions", type=float, nargs="+", default=[1.0, 0.25])
    parser.add_argument("--seconds", type=float, default=30.0, help="clip length (<= 30)")
    parser.add_argument(
        "--peak-tflops", type=float, default=None, help="device peak for the dtype, for %% of peak"
    )
    args = parser.parse_args()

    device = resolve_device(args.device)
    dtype = getattr(torch, args.dtype or ("bfloat16" if args.real_size else "float32"))
    size = REAL_SIZE if args.real_size else CPU_SIZE
    started = time.perf_counter()
    model, processor = tiny_qwen2_audio(seed=0, init_std=0.02, dtype=dtype, device=device, **size)
    adapter = Qwen2AudioAdapter.from_model(model, processor, label="random-weights")
    params = sum(p.numel() for p in model.parameters()) / 1e6
    llm = sum(p.numel() for p in model.model.language_model.parameters()) / 1e6
    print(
        f"model: {'Qwen2-Audio-7B-Instruct shape' if args.real_size else 'CPU size'}, "
        f"{params:.0f}M parameters ({llm:.0f}M in the LLM), {dtype}, {device}; "
        f"torch threads {torch.get_num_threads()}; built in {time.perf_counter() - started:.1f} s"
    )

    clip = synthetic_clip(args.seconds, adapter.sampling_rate)
    audio_ms = []
    for i in range(args.warmup + args.repeats):
        sync(device)
        t0 = time.perf_counter()
        (encoded,) = adapter.encode([clip])
        sync(device)
        if i >= args.warmup:
            audio_ms.append((time.perf_counter() - t0) * 1000)
    (window,) = encoded.windows
    n = window.num_tokens

    pruned, times, seq_lens, peaks = {}, {}, {}, {}
    for retention in args.retentions:
        k = keep_count(n, retention)
        idx = torch.arange(n) if k == n else topk(window.scores, k)
        pruned[retention] = PrunedAudio([window.hidden[idx]], [idx], [n])
        times[retention] = []
    # Retentions take turns within each repeat, so a slow spell of a shared machine hits all alike.
    for i in range(args.warmup + args.repeats):
        for retention in args.retentions:
            _, timing = adapter.generate([PROMPT], [pruned[retention]], max_new_tokens=1)
            seq_lens[retention] = timing.extra["prefill_seq_len"]
            peaks[retention] = timing.extra.get("peak_mem_mb")  # CUDA only, else None
            if i >= args.warmup:
                times[retention].append(timing.prefill_ms)
    rows = [
        (
            r,
            pruned[r].kept,
            seq_lens[r],
            statistics.median(times[r]),
            min(times[r]),
            max(times[r]),
        )
        for r in args.retentions
    ]

    base = next((r for r in rows if r[0] == 1.0), rows[0])
    audio_flops = adapter.audio_flops(1)
    audio_med = statistics.median(audio_ms)
    print(
        f"\naudio path (feature extractor + encoder + scoring), median of {args.repeats}: "
        f"{audio_med:.1f} ms for {args.seconds:g} s ({n} tokens); analytic "
        f"{audio_flops / 1e12:.3f} TFLOP, {rate(audio_flops, audio_med, args.peak_tflops)}\n"
    )
    print(
        "| retention | audio tokens | prefill seq len | prefill ms (median) | min-max ms "
        "| measured ratio | token ratio | analytic TFLOP | TFLOP/s | peak MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for retention, k, seq_len, med, lo, hi in rows:
        # prefill_seq_len is the batch's padded length; with one row it is the prompt length.
        total = adapter.prefill_flops(seq_len)
        print(
            f"| {retention:g} | {k} | {seq_len} | {med:.1f} | {lo:.1f}-{hi:.1f} "
            f"| {med / base[3]:.3f} | {seq_len / base[2]:.3f} | {total / 1e12:.3f} "
            f"| {rate(total, med, args.peak_tflops)} "
            f"| {'-' if peaks[retention] is None else f'{peaks[retention]:.0f}'} |"
        )
    print(
        f"\nratios are against retention {base[0]:g}; token ratio = prefill seq len ratio "
        "(text tokens are never pruned); medians of "
        f"{args.repeats} runs after {args.warmup} warm-up run(s). Analytic TFLOP: decoder layers "
        f"(causal attention) + LM head at "
        f"{'every prompt position' if adapter.logits_at_every_position else 'the last position'}; "
        "TFLOP/s = analytic FLOPs / measured ms; "
        "peak MiB: max CUDA memory allocated during the last generate call."
    )


def rate(flop: int, ms: float, peak_tflops: float | None) -> str:
    """Achieved TFLOP/s (= GFLOP per ms), with the share of `peak_tflops` when given."""
    achieved = flop / ms / 1e9 if ms > 0 else float("nan")
    share = f" ({100 * achieved / peak_tflops:.1f} % of peak)" if peak_tflops else ""
    return f"{achieved:.2f} TFLOP/s{share}"


if __name__ == "__main__":
    main()
