"""Benchmark: selection time and analytic cost of every selector on one window (prints numbers).

Random window at real width by default (N = 750 tokens, encoder D = 1280, keys d = 64, LLM input
D_llm = 4096: Qwen2-Audio), smooth in time so the merging methods find neighbours. For each
selector and retention: median wall ms of `select_window` on CPU and its analytic
`selection_flops` (GFLOP), beside the LLM prefill of the kept tokens for scale.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from audioprune.budget import keep_count
from audioprune.selectors import FIELD_METHODS, TokenWindow, build_selector

BASELINES = ("topk", "segmentwise_topk", "visionzip")
# Qwen2-Audio-7B decoder layers per prompt token (flops.py reference values), for scale.
LLM_GFLOP_PER_TOKEN = 12.95


def random_window(n: int, d_audio: int, d_keys: int, d_llm: int, seed: int = 0) -> TokenWindow:
    """A window whose features drift slowly in time (adjacent tokens are similar)."""
    g = torch.Generator().manual_seed(seed)

    def smooth(d: int) -> torch.Tensor:
        return torch.cumsum(torch.randn(n, d, generator=g), dim=0) / 4 + torch.randn(
            n, d, generator=g
        )

    return TokenWindow(
        scores=torch.rand(n, generator=g) + 0.01,
        hidden=smooth(d_audio),
        keys=smooth(d_keys),
        projected=smooth(d_llm),
        instruction=torch.randn(24, d_llm, generator=g),
        head_max_scores=torch.rand(n, generator=g) + 0.01,  # samap, fastadasp attention=head_max
        self_scores=torch.rand(n, generator=g) + 0.01,  # samap's relevance
        sample_key="bench#0",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=750)
    parser.add_argument("--d-audio", type=int, default=1280)
    parser.add_argument("--d-keys", type=int, default=64)
    parser.add_argument("--d-llm", type=int, default=4096)
    parser.add_argument("--retentions", type=float, nargs="+", default=[0.5, 0.25, 0.1])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--selectors", nargs="+", default=[*BASELINES, *FIELD_METHODS])
    args = parser.parse_args()

    window = random_window(args.tokens, args.d_audio, args.d_keys, args.d_llm)
    print(
        f"N={args.tokens} D_audio={args.d_audio} d_keys={args.d_keys} D_llm={args.d_llm} "
        f"torch threads={torch.get_num_threads()}"
    )
    print(
        "| selector | r | K | select ms (median) | selection GFLOP | % of LLM prefill of K tokens |"
    )
    print("|---|---|---|---|---|---|")
    for name in args.selectors:
        selector = build_selector(name)
        for r in args.retentions:
            k = keep_count(args.tokens, r)
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                selector.select_window(window, k)
                times.append((time.perf_counter() - start) * 1e3)
            gflop = selector.selection_flops(window, k) / 1e9
            share = 100 * gflop / (LLM_GFLOP_PER_TOKEN * k)
            print(
                f"| {name} | {r:g} | {k} | {statistics.median(times):.1f} | {gflop:.4g} | "
                f"{share:.3f} |"
            )


if __name__ == "__main__":
    main()
