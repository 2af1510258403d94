"""Overhead of the in-LLM pruning hooks (FastV, DART) against one LLM decoder layer.

Builds a random-weight Qwen2 decoder at real width (default: AF3's Qwen2.5-7B layer, d 3584,
ffn 18944, 28 query / 4 KV heads), runs the prefill of one prompt (37 text + N audio tokens)
with the seam of `audioprune.models.llm_pruning` dropping half the audio at layer 1, and prints
per selector the median time of the hook's work (RoPE of the stashed q/k, scores, selection,
slicing) next to the median time of decoder layer 0 on the full sequence. Target: <= 1 %.

    .venv/bin/python scripts/bench_llm_hooks.py                 # CPU, one 30 s window (N 750)
    .venv/bin/python scripts/bench_llm_hooks.py --device cuda --windows 20 --dtype bfloat16
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from audioprune.models.llm_pruning import LLMPruning
from audioprune.selectors import build_selector
from audioprune.selectors.llm import AudioGroup


def clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


class TimedPruning(LLMPruning):
    """LLMPruning that records how long its layer-K pre-hook takes."""

    def __init__(self, *args, device: torch.device, **kwargs):
        self.hook_s: list[float] = []
        self.device = device
        super().__init__(*args, **kwargs)

    def _prune_or_slice(self, module, args, kwargs):
        start = clock(self.device)
        out = super()._prune_or_slice(module, args, kwargs)
        self.hook_s.append(clock(self.device) - start)
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--windows", type=int, default=1, help="30 s windows of 750 tokens")
    parser.add_argument("--hidden", type=int, default=3584)
    parser.add_argument("--ffn", type=int, default=18944)
    parser.add_argument("--heads", type=int, default=28)
    parser.add_argument("--kv-heads", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from transformers import Qwen2Config, Qwen2Model

    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    config = Qwen2Config(
        hidden_size=args.hidden,
        intermediate_size=args.ffn,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        num_hidden_layers=2,
        vocab_size=64,
        max_position_embeddings=32768,
    )
    with torch.device(device):
        model = Qwen2Model._from_config(config, dtype=dtype, attn_implementation="sdpa").eval()
    audio, before = 750 * args.windows, 10
    seq = 37 + audio
    embeds = torch.randn(1, seq, args.hidden, device=device, dtype=dtype)
    groups = [AudioGroup(before + 750 * w, 750, 375) for w in range(args.windows)]
    text_after = torch.arange(before + audio, seq)
    print(
        f"Qwen2 layer d={args.hidden} ffn={args.ffn} heads={args.heads}/{args.kv_heads}, "
        f"{args.device} {args.dtype}, prompt {seq} tokens ({audio} audio), keep 50 % at layer 1"
    )
    layer_s: list[float] = []
    marks: dict[str, float] = {}
    layer0 = model.layers[0]
    layer0.register_forward_pre_hook(lambda m, a: marks.__setitem__("t", clock(device)))
    layer0.register_forward_hook(lambda m, a, o: layer_s.append(clock(device) - marks["t"]))
    with torch.inference_mode():
        model(inputs_embeds=embeds, use_cache=True)  # warm-up
        layer_s.clear()
        for name, params in (("fastv", {}), ("fastv", {"query": "all"}), ("dart", {})):
            selector = build_selector(name, layer=1, **params)
            hook_s = []
            for _ in range(args.repeats + 1):
                session = TimedPruning(model, selector, groups, text_after, device=device)
                with session:
                    model(inputs_embeds=embeds, use_cache=True)
                hook_s += session.hook_s
            hook = statistics.median(hook_s[1:]) * 1e3
            layer = statistics.median(layer_s) * 1e3
            label = f"{name}({', '.join(f'{k}={v}' for k, v in params.items())})"
            print(
                f"{label:18s} hook {hook:8.2f} ms   layer {layer:9.1f} ms   "
                f"overhead {100 * hook / layer:6.2f} % of one layer"
            )


if __name__ == "__main__":
    main()
