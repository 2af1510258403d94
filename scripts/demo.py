"""`make demo`: the embedded default end to end, on tiny random-weight models and synthetic audio.

Sweeps selectors × retention (1.0 / 0.5 / 0.25 / 0.1) through the same configs and runner as a
real run, reusing each clip's encoder output across the sweep, and prints a table: selector,
retention, audio tokens kept, LLM prefill ms, metric. The metric values of a random-weight model
are meaningless; the point is that every stage runs and the LLM really sees fewer tokens.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from audioprune.config import compose
from audioprune.runner import reset_process_state, run
from audioprune.store import atomic_write_text
from audioprune.tables import collect, to_markdown

SELECTORS = ["topk", "bottomk", "random", "uniform", "segmentwise_topk", "visionzip"]
RETENTIONS = [0.5, 0.25, 0.1]
MODELS = ["tiny_qwen2_audio", "tiny_audio_flamingo_3"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--selectors", nargs="+", default=SELECTORS)
    parser.add_argument("--retentions", nargs="+", type=float, default=RETENTIONS)
    parser.add_argument("--dataset", default="synthetic_captions")
    parser.add_argument("--results-dir", default="results/demo")
    parser.add_argument("--batch-size", type=int, default=1, help="1 = prefill ms per clip")
    parser.add_argument(
        "--classifier",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the classifier-family section (scripts/demo_classifier.py)",
    )
    parser.add_argument(
        "overrides", nargs="*", help="extra Hydra overrides, e.g. dataset.args.num_clips=4"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    started = time.perf_counter()
    run_dirs = []
    for model in args.models:
        jobs = [("none", 1.0)] + [(s, r) for s in args.selectors for r in args.retentions]
        for selector, retention in jobs:
            cfg = compose(
                [
                    f"model={model}",
                    f"dataset={args.dataset}",
                    f"selector={selector}",
                    f"retention={retention}",
                    f"paths.results_dir={args.results_dir}",
                    f"batch_size={args.batch_size}",
                    "progress=false",
                    *args.overrides,
                ]
            )
            result = run(cfg)
            run_dirs.append(result.run_dir)
        reset_process_state()  # free this model before loading the next
    frame = collect(run_dirs)
    metric = next((c for c in ("cider_d", "overall", "accuracy") if c in frame.columns), None)
    columns = [
        "model",
        "selector",
        "retention",
        "kept_tokens",
        "audio_tokens",
        "prefill_ms",
        metric,
    ]
    table = to_markdown(frame, [c for c in columns if c], digits=3)
    out = Path(args.results_dir) / "demo_table.md"
    atomic_write_text(out, table + "\n")
    print(table)
    print(f"\n{len(run_dirs)} runs in {time.perf_counter() - started:.1f} s; table saved to {out}")
    if args.classifier:  # the classifier family: tiny AST on the synthetic classification set
        from demo_classifier import classifier_section

        classifier_section(args.results_dir, [o for o in args.overrides if o.startswith("paths.")])


if __name__ == "__main__":
    main()
