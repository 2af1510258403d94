"""Benchmark: wall time of the demo sweep with and without encoder reuse (prints numbers).

Runs the same selector × retention sweep on a tiny model twice in fresh result folders:
once with the in-memory encoder cache (each clip encoded once for the whole sweep) and once
with it off (each run re-encodes every clip), and reports wall time and encoder calls.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time

from demo import RETENTIONS, SELECTORS  # the same sweep as `make demo` (scripts/ is on sys.path)

from audioprune import runner, state
from audioprune.config import compose


def sweep(model: str, dataset: str, cache: bool, results: str, clips: int) -> tuple[float, int]:
    runner.reset_process_state()
    jobs = [("none", 1.0)] + [(s, r) for s in SELECTORS for r in RETENTIONS]
    encoded = 0
    started = time.perf_counter()
    for selector, retention in jobs:
        cfg = compose(
            [
                f"model={model}",
                f"dataset={dataset}",
                f"dataset.args.num_clips={clips}",
                f"selector={selector}",
                f"retention={retention}",
                f"paths.results_dir={results}",
                f"encoder_cache.memory={str(cache).lower()}",
                "progress=false",
            ]
        )
        runner.run(cfg)
        encoder_cache = state.current_cache()
        encoded = encoder_cache.misses if encoder_cache else encoded
    return time.perf_counter() - started, encoded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny_qwen2_audio")
    parser.add_argument("--dataset", default="synthetic_captions")
    parser.add_argument("--clips", type=int, default=8)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    # warm-up: build the tiny model and the synthetic data outside the timed sweeps
    warm = tempfile.mkdtemp()
    runner.run(compose([f"model={args.model}", f"dataset={args.dataset}", f"dataset.args.num_clips={args.clips}",
                        "selector=none", f"paths.results_dir={warm}", "progress=false", "limit=1"]))  # fmt: skip
    shutil.rmtree(warm)
    rows = []
    for cache in (True, False):
        results = tempfile.mkdtemp()
        seconds, encoded = sweep(args.model, args.dataset, cache, results, args.clips)
        shutil.rmtree(results)
        rows.append((cache, seconds, encoded))
    runs = 1 + len(SELECTORS) * len(RETENTIONS)
    print(
        f"sweep: {args.model} / {args.dataset}, {args.clips} clips, {runs} runs (selectors x retentions + none)"
    )
    print("| encoder reuse | wall s | clips encoded |")
    print("| --- | --- | --- |")
    for cache, seconds, encoded in rows:
        print(f"| {'on' if cache else 'off'} | {seconds:.1f} | {encoded} |")
    print(f"speed-up from reuse: {rows[1][1] / rows[0][1]:.2f}x")


if __name__ == "__main__":
    main()
