"""One prepared GPU check: real-size Qwen2-Audio-7B and Audio Flamingo 3 (random bf16 weights).

  python scripts/gpu_check.py            # one H100 / H200: about 5 minutes, at most --budget-s
  python scripts/gpu_check.py --tiny     # the same code on the tiny models, on the CPU (CI)
  make gpu-check

Builds each architecture from its published sizes (`audioprune.models.real_size`; timing and
memory do not depend on weight values) directly on the GPU in bf16 and measures, through the
adapters' own encode / prune_clip / generate (the run loop's code):
1. prefill ms, decode ms per token and peak memory (torch.cuda.max_memory_allocated over encode +
   selection + generate) for a 30 s clip (both models) and a 10 min clip (AF3) at retention
   1 / 0.5 / 0.25 / 0.1 with `segmentwise_topk` and `topk` (pre-LLM) and `fastv` (in-LLM), beside
   the measured prefill speed-up over the token bound (unpruned / pruned prompt length) and the
   analytic plan's peak (`audioprune.plan`);
2. batched throughput at batch 1 / 4 / 8 (Qwen2-Audio, segmentwise_topk r = 0.25) and whether
   every row's tokens equal the batch-1 tokens;
3. the scoring hook's share of the encoder forward in bf16;
4. select_window ms of every encoder-stage selector on the device at N = 750.
Writes results/gpu_check/gpu_check.json and gpu_check.md (`--tiny`: tiny.json / tiny.md) and
prints device, driver and versions first. Parts still pending when --budget-s runs out are
recorded as skipped. Exit status: 0 done; 3 no CUDA device (one line says why; nothing written;
`--tiny` needs none); 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

EXIT_NO_CUDA = 3
RETENTIONS = (1.0, 0.5, 0.25, 0.1)
PROMPT = "Describe the audio in one sentence."
# Selectors that select_window cannot time on an ALM window: the control, classifier-only ones.
NOT_TIMED = {"none", "intensity", "variation"}


class Clock:
    """Wall milliseconds of a callable on the device (synchronised before and after)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def ms(self, fn) -> tuple[float, object]:
        self.sync()
        start = time.perf_counter()
        out = fn()
        self.sync()
        return (time.perf_counter() - start) * 1e3, out


def environment(device: torch.device) -> dict:
    import transformers

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.version.cuda,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "driver": None,
    }
    if device.type == "cuda":
        try:
            info["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=20,
            ).stdout.strip().splitlines()[0]  # fmt: skip
        except (OSError, IndexError, subprocess.SubprocessError):
            info["driver"] = "unknown (nvidia-smi not found)"
        info["memory_gb"] = torch.cuda.get_device_properties(device).total_memory / 2**30
    return info


def build(kind: str, tiny: bool, device: torch.device):
    """(adapter, dtype) of the real-size model (bf16 on the GPU) or the tiny one (fp32, CPU)."""
    from audioprune.models.audio_flamingo3 import AudioFlamingo3Adapter
    from audioprune.models.qwen2_audio import Qwen2AudioAdapter

    adapters = {"qwen2_audio": Qwen2AudioAdapter, "audio_flamingo_3": AudioFlamingo3Adapter}
    if tiny:
        from audioprune.models.tiny import tiny_audio_flamingo3, tiny_qwen2_audio

        builder = tiny_qwen2_audio if kind == "qwen2_audio" else tiny_audio_flamingo3
        model, processor = builder(0)
    else:
        from audioprune.models.real_size import build_real_size

        model, processor = build_real_size(kind, dtype=torch.bfloat16, device=device)
    return adapters[kind].from_model(model, processor, label=f"{kind}-random"), model.dtype


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def prefill_part(adapter, kind: str, seconds: float, tiny: bool, args, clock: Clock) -> list[dict]:
    """Rows of part 1 for one model and clip length."""
    from bench_prefill import synthetic_clip

    from audioprune.plan import plan_run
    from audioprune.pruning import prune_clip, to_device
    from audioprune.selectors import build_selector

    device = adapter.device
    wave = synthetic_clip(seconds)
    layer = 1 if tiny else 2
    rows = []
    encoded = adapter.encode([wave])[0]
    jobs = [("none", 1.0)] + [
        (name, r) for name in ("segmentwise_topk", "topk", "fastv") for r in RETENTIONS if r < 1
    ]
    for name, retention in jobs:
        selector = build_selector(name, layer=layer) if name == "fastv" else build_selector(name)
        llm = {"llm_pruner": selector} if selector.stage == "llm" else {}
        times, decode, seq = [], [], None
        for i in range(args.warmup + args.repeats):
            reset_peak(device)
            clip = adapter.encode([wave])[0] if i == args.warmup else encoded  # peak covers it
            pruned = prune_clip(to_device(clip, device), selector, retention, "gpu-check")
            audio_peak = peak_gib(device)  # generate starts its own peak window
            gens, timing = adapter.generate(
                [PROMPT], [pruned], max_new_tokens=args.new_tokens,
                min_new_tokens=args.new_tokens, **llm,
            )  # fmt: skip
            if i >= args.warmup:
                times.append(timing.prefill_ms)
                decode.append(timing.decode_ms_per_token)
            if i == args.warmup:
                generate_peak = timing.extra.get("peak_mem_mb")
                peaks = (audio_peak, None if generate_peak is None else generate_peak / 1024)
                seq = timing.extra["prefill_seq_len"]
                kept = gens[0].extra.get("kept_tokens", pruned.kept)
                prefill_flops = timing.extra["prefill_flops"][0]
        text = seq - pruned.kept
        plan = plan_run(
            adapter.model.config, kind, adapter.dtype, 1, retention, seconds=seconds,
            text_tokens=text, new_tokens=args.new_tokens, overhead_gb=0, max_batch=False,
            llm_keep=retention if llm else None,
        )  # fmt: skip
        rows.append(
            {
                "in_llm": bool(llm),
                "model": kind,
                "seconds": seconds,
                "selector": name,
                "retention": retention,
                "audio_tokens": pruned.total,
                "windows": len(pruned.window_sizes),
                "kept_tokens": kept,
                "prompt_tokens": seq,
                "prefill_ms": statistics.median(times),
                "decode_ms_per_token": statistics.median(decode),
                "prefill_tflop": prefill_flops / 1e12,
                # measured: max allocated over encode + selection, then over generate;
                # plan: weights + encoder activations, weights + prefill activations + KV cache
                "audio_peak_gib": peaks[0],
                "generate_peak_gib": peaks[1],
                "peak_gib": None if peaks[1] is None else max(peaks[0], peaks[1]),
                "plan_audio_peak_gib": (plan.weights + plan.encoder_activations) / 2**30,
                "plan_generate_peak_gib": (plan.weights + plan.prefill_activations + plan.kv_cache)
                / 2**30,
                "plan_peak_gib": plan.peak / 2**30,
            }
        )
    base = rows[0]
    for row in rows:
        # measured speed-up over the token bound (unpruned / pruned prompt length); fastv's
        # prompt is full up to its layer, so its bound uses the tokens after it
        text = row["prompt_tokens"] - (row["audio_tokens"] if row["in_llm"] else row["kept_tokens"])
        bound = base["prompt_tokens"] / (text + row["kept_tokens"])
        row["token_bound"] = bound
        row["speedup"] = base["prefill_ms"] / row["prefill_ms"]
        row["speedup_over_token_bound"] = row["speedup"] / bound
    return rows


def batch_part(adapter, args, clock: Clock) -> list[dict]:
    """Part 2: throughput at batch 1 / 4 / 8 and equality with batch 1, per row."""
    from bench_prefill import synthetic_clip

    from audioprune.pruning import prune_clip, to_device
    from audioprune.selectors import build_selector

    selector = build_selector("segmentwise_topk")
    waves = [synthetic_clip(30.0)] + [
        (synthetic_clip(30.0) * (0.5 + 0.1 * i)).astype("float32") for i in range(1, 8)
    ]
    single = {}
    rows = []
    for batch in (1, 4, 8):
        chunk = waves[:batch]

        def run(chunk=chunk):
            encoded = adapter.encode(chunk)
            pruned = [
                prune_clip(to_device(e, adapter.device), selector, 0.25, f"b{i}")
                for i, e in enumerate(encoded)
            ]
            return adapter.generate([PROMPT] * len(chunk), pruned, max_new_tokens=args.new_tokens)[
                0
            ]

        if args.warmup:
            run()
        ms, gens = clock.ms(run)
        if batch == 1:
            single = {0: gens[0].token_ids}
            for i in range(1, 8):
                single[i] = clock.ms(lambda i=i: run([waves[i]]))[1][0].token_ids
        same = sum(g.token_ids == single[i] for i, g in enumerate(gens))
        rows.append(
            {"batch": batch, "ms": ms, "clips_per_s": 1e3 * batch / ms, "rows_equal_batch1": same}
        )
    return rows


def scorer_part(adapter, args, clock: Clock) -> dict:
    """Part 3: encoder forward with and without the scoring hook (one 30 s window)."""
    from bench_prefill import synthetic_clip

    features = adapter.feature_extractor(
        [synthetic_clip(30.0)], sampling_rate=16_000, return_attention_mask=True,
        padding="max_length", return_tensors="pt",
    )  # fmt: skip
    x = features["input_features"].to(adapter.device, adapter.dtype)
    mask = features["attention_mask"].to(adapter.device)
    times = {True: [], False: []}
    with torch.inference_mode():
        for i in range(args.warmup + 5):
            for enabled in (True, False):
                adapter.scorer.enabled = enabled
                adapter.scorer.reset()
                ms, _ = clock.ms(lambda: adapter._tower_forward(x, mask))
                if i >= args.warmup:
                    times[enabled].append(ms)
    adapter.scorer.enabled = True
    on, off = statistics.median(times[True]), statistics.median(times[False])
    return {
        "encoder_ms_with_scorer": on,
        "encoder_ms_without": off,
        "scorer_share": (on - off) / off,
    }


def selector_part(adapter, args, clock: Clock) -> list[dict]:
    """Part 4: select_window ms of every encoder-stage selector on the device, N = 750."""
    from bench_selectors import random_window

    from audioprune.models.base import EncodedAudio
    from audioprune.pruning import to_device
    from audioprune.selectors import SELECTORS, build_selector

    audio, text = adapter.model.config.audio_config, adapter.model.config.text_config
    d_audio = int(getattr(audio, "d_model", None) or audio.hidden_size)
    window = random_window(750, d_audio, d_audio // audio.num_attention_heads, text.hidden_size)
    window.head_scores = torch.rand(audio.num_attention_heads, 750) + 0.01
    for name in ("hidden", "projected", "instruction"):
        setattr(window, name, getattr(window, name).to(adapter.dtype))
    window = to_device(EncodedAudio(windows=[window]), adapter.device).windows[0]
    rows = []
    for name, cls in sorted(SELECTORS.items()):
        if name in NOT_TIMED or cls.stage != "encoder":
            continue
        selector = build_selector(name)
        times = []
        for i in range(args.warmup + 3):
            ms, _ = clock.ms(lambda selector=selector: selector.select_window(window, 187))
            if i >= args.warmup:
                times.append(ms)
        rows.append({"selector": name, "k": 187, "select_ms": statistics.median(times)})
    return rows


def markdown(result: dict) -> str:
    env = result["environment"]
    out = [
        f"# gpu_check ({'tiny, CPU' if result['tiny'] else 'real size, bf16'})",
        "",
        f"{env['device_name']} (driver {env['driver']}, CUDA {env['cuda']}), torch {env['torch']}, "
        f"transformers {env['transformers']}; {result['wall_s']:.0f} s",
        "",
        "| model | s | selector | r | prompt | kept | prefill ms | decode ms/tok | speed-up | "
        "token bound | speed-up / bound | peak GiB | plan GiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    for r in result["prefill"]:
        out.append(
            f"| {r['model']} | {r['seconds']:g} | {r['selector']} | {r['retention']:g} | "
            f"{r['prompt_tokens']} | {r['kept_tokens']} | {r['prefill_ms']:.1f} | "
            f"{r['decode_ms_per_token']:.1f} | {r['speedup']:.2f} | {r['token_bound']:.2f} | "
            f"{r['speedup_over_token_bound']:.2f} | {fmt(r['peak_gib'])} | {fmt(r['plan_peak_gib'])} |"
        )
    out += ["", "| batch | ms | clips/s | rows equal to batch 1 |", "|---|---|---|---|"]
    out += [
        f"| {r['batch']} | {r['ms']:.0f} | {r['clips_per_s']:.2f} | {r['rows_equal_batch1']}/{r['batch']} |"
        for r in result["batch"]
    ]
    s = result["scorer"]
    if s:
        out += [
            "",
            f"scorer hook: {100 * s['scorer_share']:.1f} % of the encoder forward "
            f"({s['encoder_ms_with_scorer']:.1f} vs {s['encoder_ms_without']:.1f} ms)",
        ]
    out += ["", "| selector | K | select ms |", "|---|---|---|"]
    out += [f"| {r['selector']} | {r['k']} | {r['select_ms']:.2f} |" for r in result["selectors"]]
    if result["skipped"]:
        out += ["", f"skipped (time budget): {', '.join(result['skipped'])}"]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny models on the CPU (CI dry run)")
    parser.add_argument("--out", default="results/gpu_check", help="folder for the JSON and table")
    parser.add_argument("--budget-s", type=float, default=450.0, help="skip parts after this")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first (--tiny: 0)")
    parser.add_argument("--new-tokens", type=int, default=None, help="decode steps per generate")
    parser.add_argument(
        "--long-seconds", type=float, default=None, help="AF3's long clip (default 600; --tiny 60)"
    )
    args = parser.parse_args(argv)
    args.long_seconds = args.long_seconds or (60.0 if args.tiny else 600.0)
    if args.tiny and args.warmup == 1:
        args.warmup = 0  # the CPU dry run checks the code path; its times mean little
    args.repeats = args.repeats or (1 if args.tiny else 3)
    args.new_tokens = args.new_tokens or (4 if args.tiny else 16)
    if args.tiny:
        device = torch.device("cpu")
    elif not torch.cuda.is_available():
        kind = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
        print(f"gpu_check: no CUDA device (torch {torch.__version__}, {kind}); nothing measured "
              "(exit 3); `--tiny` runs the same code on the CPU")  # fmt: skip
        return EXIT_NO_CUDA
    else:
        device = torch.device("cuda")
    started = time.perf_counter()
    clock = Clock(device)
    result = {"tiny": args.tiny, "environment": environment(device), "prefill": [], "batch": [],
              "scorer": None, "selectors": [], "skipped": []}  # fmt: skip
    print(json.dumps(result["environment"]))
    torch.manual_seed(0)
    parts = [
        ("qwen2_audio", [("prefill 30 s", lambda a: prefill_part(a, "qwen2_audio", 30.0, args.tiny, args, clock), "prefill"),
                         ("batch", lambda a: batch_part(a, args, clock), "batch"),
                         ("scorer", lambda a: scorer_part(a, args, clock), "scorer"),
                         ("selectors", lambda a: selector_part(a, args, clock), "selectors")]),
        ("audio_flamingo_3", [("prefill 30 s", lambda a: prefill_part(a, "audio_flamingo_3", 30.0, args.tiny, args, clock), "prefill"),
                              (f"prefill {args.long_seconds:g} s", lambda a: prefill_part(a, "audio_flamingo_3", args.long_seconds, args.tiny, args, clock), "prefill")]),
    ]  # fmt: skip
    for kind, steps in parts:
        if time.perf_counter() - started > args.budget_s:
            result["skipped"] += [f"{kind} {label}" for label, _, _ in steps]
            continue
        adapter, _ = build(kind, args.tiny, device)
        for label, step, key in steps:
            if time.perf_counter() - started > args.budget_s:
                result["skipped"].append(f"{kind} {label}")
                continue
            value = step(adapter)
            if isinstance(result[key], list):
                result[key] += value
            else:
                result[key] = value
            print(f"[{time.perf_counter() - started:.0f} s] {kind} {label} done", flush=True)
        del adapter
        if device.type == "cuda":
            torch.cuda.empty_cache()
    result["wall_s"] = time.perf_counter() - started
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "tiny" if args.tiny else "gpu_check"
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    table = markdown(result)
    (out / f"{stem}.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
