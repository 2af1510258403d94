"""Overhead of the last-layer scoring hook at real encoder width, as a share of the encoder.

Builds one real-width Whisper-style encoder layer (Qwen2-Audio-7B / AF3: d 1280, 20 heads,
ffn 5120, 1500 frames per 30 s window; random weights, timing does not depend on them) and times,
interleaved and repeated (medians, because the machine may be shared):
- `layer`: one encoder layer forward (attention + FFN) on 1500 frames, sdpa;
- `stem`: the encoder's convolutions, positions, final pooling and norm (a 1-layer encoder
  forward minus one layer);
- `hook`: the time inside the scorer's forward hook on that layer, bracketed by two timing hooks
  (registered just before and just after it); the layer forward with the scorer minus without it
  is printed beside it as a cross-check (noisier: a difference of two large numbers). The new
  scorer's hooks on q_proj / k_proj only keep references and are not bracketed.
The overhead ratio is hook / (stem + L · layer) for an L-layer encoder (default 32, the
published depth): layers are identical, so the L-layer time is extrapolated from one layer
(`--full` times the whole L-layer encoder instead, slow on CPU). On CPU the clock is the
process's CPU time by default, so other jobs on a shared machine do not inflate either side. A padded batch (`--lengths
1500,500`: a 30 s and a 10 s clip) times the masked case.

  python scripts/bench_scorer.py                      # CPU, 1500 frames, ratio for 32 layers
  python scripts/bench_scorer.py --lengths 1500,500   # padded batch of two clips
  python scripts/bench_scorer.py --device cuda --dtype bfloat16 --full
  python scripts/bench_scorer.py --recompute-projections   # the hook recomputing q and k

It only uses `LastLayerScorer(attention)` and its `enabled` flag, so the same script measures an
older checkout of the package (the "before" number in the README came from one).
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audioprune.models.hooks import LastLayerScorer  # noqa: E402

# Qwen/Qwen2-Audio-7B-Instruct audio_config (docs/models-audio-llms.md); AF3's encoder is the same.
REAL_WIDTH = dict(
    d_model=1280, encoder_attention_heads=20, encoder_ffn_dim=5120, num_mel_bins=128,
    max_source_positions=1500,
)  # fmt: skip


def build_encoder(layers: int, dtype: torch.dtype, device: torch.device, **width):
    from transformers import Qwen2AudioEncoderConfig
    from transformers.models.qwen2_audio.modeling_qwen2_audio import Qwen2AudioEncoder

    config = Qwen2AudioEncoderConfig(**{**REAL_WIDTH, **width}, encoder_layers=layers)
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    return Qwen2AudioEncoder(config).to(device, dtype).eval()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, clock) -> float:
    sync(device)
    start = clock()
    fn()
    sync(device)
    return (clock() - start) * 1e3


def padding_mask(lengths: list[int], frames: int, dtype, device) -> torch.Tensor | None:
    """The 4-D bool mask sdpa gets (None when nothing is padded), as the encoder builds it."""
    if all(n == frames for n in lengths):
        return None
    valid = (
        torch.arange(frames, device=device)[None, :] < torch.tensor(lengths, device=device)[:, None]
    )
    return valid[:, None, None, :].expand(len(lengths), 1, frames, frames)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=32, help="encoder depth the ratio is for")
    parser.add_argument(
        "--lengths",
        default=None,
        help="valid frames per clip, comma-separated (default: one full clip)",
    )
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--full", action="store_true", help="time the whole L-layer encoder")
    parser.add_argument(
        "--clock",
        choices=("process", "wall"),
        default=None,
        help="process: CPU time of this process (default on CPU: other jobs on a shared machine "
        "do not count); wall: elapsed time (default on CUDA)",
    )
    parser.add_argument(
        "--recompute-projections",
        action="store_true",
        help="the hook recomputes q and k instead of reusing the module's (if supported)",
    )
    parser.add_argument("--d-model", type=int, default=REAL_WIDTH["d_model"])
    parser.add_argument("--heads", type=int, default=REAL_WIDTH["encoder_attention_heads"])
    parser.add_argument("--frames", type=int, default=REAL_WIDTH["max_source_positions"])
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    frames = args.frames
    lengths = [int(x) for x in args.lengths.split(",")] if args.lengths else [frames]
    if not all(1 <= n <= frames for n in lengths):
        parser.error(f"--lengths must be between 1 and --frames={frames}, got {args.lengths}")
    width = dict(
        d_model=args.d_model,
        encoder_attention_heads=args.heads,
        encoder_ffn_dim=4 * args.d_model,
        max_source_positions=frames,
    )
    clock_name = args.clock or ("wall" if device.type == "cuda" else "process")
    clock = time.perf_counter if clock_name == "wall" else time.process_time

    encoder = build_encoder(args.layers if args.full else 1, dtype, device, **width)
    layer = encoder.layers[-1]
    mels = torch.randn(len(lengths), REAL_WIDTH["num_mel_bins"], 2 * frames, device=device)
    mels = mels.to(dtype)
    hidden = torch.randn(len(lengths), frames, args.d_model, device=device, dtype=dtype)
    mask = padding_mask(lengths, frames, dtype, device)
    options = {}
    if "reuse_projections" in inspect.signature(LastLayerScorer).parameters:
        options["reuse_projections"] = not args.recompute_projections
    # Forward hooks run in registration order: one stamp before the scorer's hook, one after.
    stamps: list[float] = []

    def stamp(module, args, output) -> None:
        sync(device)
        stamps.append(clock())

    handles = [layer.self_attn.register_forward_hook(stamp)]
    scorer = LastLayerScorer(layer.self_attn, **options)
    handles.append(layer.self_attn.register_forward_hook(stamp))

    def run_layer(enabled: bool):
        scorer.enabled = enabled
        return lambda: layer(hidden, attention_mask=mask)

    def run_encoder(enabled: bool):
        scorer.enabled = enabled
        return lambda: encoder(mels, attention_mask=mask)

    samples: dict[str, list[float]] = {"layer": [], "layer+hook": [], "encoder": [], "hook": []}
    with torch.inference_mode():
        for fn in (run_layer(True), run_layer(False), run_encoder(False)):  # warm-up
            fn()
        for _ in range(args.repeats):  # interleaved, so load changes hit every column alike
            stamps.clear()
            samples["layer+hook"].append(timed(run_layer(True), device, clock))
            samples["hook"].append((stamps[1] - stamps[0]) * 1e3)
            samples["layer"].append(timed(run_layer(False), device, clock))
            samples["encoder"].append(timed(run_encoder(False), device, clock))
    for handle in handles:
        handle.remove()
    med = {name: statistics.median(values) for name, values in samples.items()}
    hook_ms = med["hook"]
    difference = statistics.median(a - b for a, b in zip(samples["layer+hook"], samples["layer"]))
    if args.full:
        encoder_ms = med["encoder"]
        how = f"measured, {args.layers} layers"
    else:
        stem_ms = med["encoder"] - med["layer"]
        encoder_ms = stem_ms + args.layers * med["layer"]
        how = f"stem {stem_ms:.0f} ms + {args.layers} x layer, extrapolated"
    print(
        f"device {device}, dtype {args.dtype}, threads {torch.get_num_threads()}, "
        f"clips {lengths} of {frames} frames, d {args.d_model}, {args.heads} heads, {clock_name} time, "
        f"median of {args.repeats}"
    )
    print("| quantity | ms |")
    print("|---|---|")
    print(f"| one encoder layer | {med['layer']:.1f} |")
    print(f"| one encoder layer + scoring hook | {med['layer+hook']:.1f} |")
    print(f"| scoring hook (its own time, median) | {hook_ms:.1f} |")
    print(f"| scoring hook (layer+hook − layer, median; noisier cross-check) | {difference:.1f} |")
    print(f"| encoder ({how}) | {encoder_ms:.0f} |")
    print(f"scoring hook overhead: {100 * hook_ms / encoder_ms:.2f} % of the encoder")


if __name__ == "__main__":
    main()
