"""`make demo`: the embedded default end to end, on tiny random-weight models and synthetic audio.

First, the trained miniature audio LLM (scripts/demo_mini.py): a 135M-parameter Qwen2-Audio-class
model on held-out synthetic scenes, selector x retention, accuracy with 95 % intervals and event
coverage. Then the real-weights ASR table (scripts/demo_asr.py): Whisper tiny.en WER under pruning
on synthetic speech. Then the plumbing table below.

Sweeps selectors × retention (1.0 / 0.5 / 0.25 / 0.1) through the same configs and runner as a
real run, reusing each clip's encoder output across the sweep, and prints a table: selector,
retention, audio tokens kept, LLM prefill ms (median over the clips), the analytic prefill FLOPs
relative to the unpruned run (r = 1), metric. Each model is warmed up on one clip first (in a
throwaway folder), so every row's median covers the same clips and no row pays one-time costs.
The metric values of a random-weight model are meaningless; the point is that every stage runs
and the LLM really sees fewer tokens.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
from demo_asr import run_asr_demo  # scripts/ is on sys.path
from demo_methods import demo_methods
from demo_mini import mini_section

from audioprune.config import compose
from audioprune.runner import reset_process_state, run
from audioprune.store import atomic_write_text, read_jsonl
from audioprune.tables import collect, to_markdown

SELECTORS = ["topk", "bottomk", "random", "uniform", "segmentwise_topk", "visionzip"]
RETENTIONS = [0.5, 0.25, 0.1]
MODELS = ["tiny_qwen2_audio", "tiny_audio_flamingo_3"]
PLUMBING_HEADING = (
    "## Plumbing: tiny random-weight Qwen2-Audio and Audio Flamingo 3 on synthetic captions — "
    "random weights, the metric means nothing; tokens kept, prefill time and FLOPs are real"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--selectors", nargs="+", default=SELECTORS)
    parser.add_argument("--retentions", nargs="+", type=float, default=RETENTIONS)
    parser.add_argument("--dataset", default="synthetic_captions")
    parser.add_argument("--results-dir", default="results/demo")
    parser.add_argument("--batch-size", type=int, default=1, help="1 = prefill ms per clip")
    parser.add_argument("--skip-field-methods", action="store_true", help="only the sweep above")
    parser.add_argument(
        "--mini-clips", type=int, default=20, help="trained mini audio LLM table; 0 = skip"
    )
    parser.add_argument("--asr-clips", type=int, default=6, help="real-weights ASR table; 0 = skip")
    parser.add_argument(
        "--classifier",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the classifier-family section (scripts/demo_classifier.py)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: on a 2-core machine shared with other work, one "
        "thread is several times faster than two; raise it on a dedicated machine)",
    )
    parser.add_argument(
        "overrides", nargs="*", help="extra Hydra overrides, e.g. dataset.args.num_clips=4"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    demo_started = time.perf_counter()

    paths = [o for o in args.overrides if o.startswith("paths.")]
    if args.mini_clips:  # the trained mini audio LLM leads (scripts/demo_mini.py)
        mini_section(args.results_dir, args.mini_clips, overrides=paths)
    if args.asr_clips:  # real weights (scripts/demo_asr.py)
        run_asr_demo(Path(args.results_dir) / "asr", args.asr_clips, overrides=paths)
    started = time.perf_counter()
    run_dirs = []
    for model in args.models:
        config = partial(job_config, args, model)
        # One clip in a throwaway folder: loads the model and pays its one-time costs.
        with tempfile.TemporaryDirectory() as warmup:
            run(config("none", 1.0, "limit=1", f"run_dir={warmup}", "relative_to_unpruned=false"))
        jobs = [("none", 1.0)] + [(s, r) for s in args.selectors for r in args.retentions]
        for selector, retention in jobs:
            run_dirs.append(run(config(selector, retention)).run_dir)
        reset_process_state()  # free this model before loading the next
    frame = add_timing_columns(collect(run_dirs))
    metric = next((c for c in ("cider_d", "overall", "accuracy") if c in frame.columns), None)
    columns = [
        "model",
        "selector",
        "retention",
        "kept_tokens",
        "audio_tokens",
        "prefill_ms_median",
        "prefill_flops_vs_r1",
        metric,
    ]
    table = to_markdown(frame, [c for c in columns if c], digits=3)
    out = Path(args.results_dir) / "demo_table.md"
    atomic_write_text(out, table + "\n")
    print(PLUMBING_HEADING + "\n")
    print(table)
    print(f"\n{len(run_dirs)} runs in {time.perf_counter() - started:.1f} s; table saved to {out}")
    dropped = sum(
        bool(json.loads((Path(d) / "metrics.json").read_text())["metrics"].get("ptb_untokenizable"))
        for d in run_dirs
    )
    if dropped:
        print(
            f"note: the PTB tokenizer dropped untokenizable characters (random-weight models emit "
            f"odd unicode) from the captions of {dropped} of {len(run_dirs)} runs; scores ignore "
            "them (metrics.json: ptb_untokenizable)"
        )
    if not args.skip_field_methods:  # the field's methods and the budget policies
        demo_methods(args.results_dir, args.overrides)
    if args.classifier:  # the classifier family: tiny AST on the synthetic classification set
        from demo_classifier import classifier_section

        classifier_section(args.results_dir, [o for o in args.overrides if o.startswith("paths.")])
    print(f"\nmake demo: every section in {time.perf_counter() - demo_started:.0f} s")


def job_config(args: argparse.Namespace, model: str, selector: str, retention: float, *extra):
    """The composed config of one demo run (`extra`: more Hydra overrides)."""
    return compose(
        [
            f"model={model}",
            f"dataset={args.dataset}",
            f"selector={selector}",
            f"retention={retention}",
            f"paths.results_dir={args.results_dir}",
            f"batch_size={args.batch_size}",
            "progress=false",
            *args.overrides,
            *extra,
        ]
    )


def add_timing_columns(frame):
    """prefill_ms_median: median LLM prefill over the run's clips (warm-up records excluded);
    prefill_flops_vs_r1: the run's analytic prefill FLOPs over the same model's unpruned run's."""
    medians, flops = [], []
    for run_dir in frame["run_dir"]:
        records = [r for r in read_jsonl(Path(run_dir) / "predictions.jsonl") if "timings" in r]
        timed = [r["timings"]["prefill_ms"] for r in records if not r["timings"].get("warmup")]
        medians.append(statistics.median(timed) if timed else None)
        flops.append(sum(r.get("prefill_flops") or 0 for r in records))
    frame = frame.assign(prefill_ms_median=medians, _flops=flops)
    full = frame[frame["selector"] == "none"].groupby("model")["_flops"].first()
    ratio = [f / full[m] if full.get(m) else None for m, f in zip(frame["model"], frame["_flops"])]
    return frame.assign(prefill_flops_vs_r1=ratio).drop(columns="_flops")


if __name__ == "__main__":
    main()
