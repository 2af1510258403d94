"""Demo section: the field's methods (issue 11) and the budget policies on the tiny models.

Called by `scripts/demo.py` (`make demo`); runnable alone:
    .venv/bin/python scripts/demo_methods.py
Prints two tables: every registered field method (pre-LLM ones and the in-LLM fastv / dart) at
25 % on both tiny models, with the tokens the LLM keeps, the sequence lengths its layers ran on
and the analytic prefill GFLOPs (in-LLM methods save only in layers >= K: ρ_in); and topk under
the three budget policies on a multi-window AF3 clip (realised K per window).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from audioprune.config import compose
from audioprune.runner import reset_process_state, run
from audioprune.selectors import FIELD_METHODS
from audioprune.store import atomic_write_text
from audioprune.tables import to_markdown

# Issue 11's methods: the pre-LLM ones, our head-routing reconstruction, the in-LLM ones.
METHODS = [*FIELD_METHODS, "headrouter_lite", "fastv", "dart"]
MODELS = ["tiny_qwen2_audio", "tiny_audio_flamingo_3"]


def _records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "predictions.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _row(model: str, label: str, result, **extra) -> dict:
    records = _records(result.run_dir)
    lengths = records[0].get("llm_prefill_lengths")
    flops = [r["prefill_flops"] for r in records if r.get("prefill_flops") is not None]
    return {
        "model": model,
        "method": label,
        "kept_tokens": sum(r["kept_tokens"] for r in records) / len(records),
        "audio_tokens": sum(r["audio_tokens"] for r in records) / len(records),
        "layer_lengths": "/".join(str(n) for n in lengths) if lengths else "all: prompt",
        "prefill_gflops": sum(flops) / len(flops) / 1e9 if flops else None,
        "prefill_ms": result.metrics["summary"].get("prefill_ms_mean"),
        **extra,
    }


def field_methods_section(
    results_dir: str | Path, overrides: list[str] = (), retention: float = 0.25
) -> str:
    """Run every registered field method at `retention` on both tiny models; returns the table."""
    methods = ["none", "topk", *METHODS]
    rows = []
    for model in MODELS:
        for method in methods:
            cfg = compose(
                [
                    f"model={model}",
                    "dataset=synthetic_mmau",
                    "dataset.args.num_clips=3",
                    f"selector={method}",
                    f"retention={1.0 if method == 'none' else retention}",
                    f"paths.results_dir={results_dir}",
                    "progress=false",
                    *overrides,
                ]
            )
            rows.append(_row(model, method, run(cfg)))
        reset_process_state()
    return to_markdown(
        pd.DataFrame(rows),
        ["model", "method", "kept_tokens", "audio_tokens", "layer_lengths", "prefill_gflops"],
        digits=3,
    )


def budgets_section(
    results_dir: str | Path, overrides: list[str] = (), retention: float = 0.25
) -> str:
    """topk on 65-80 s clips (three AF3 windows) under per_window / global / adaptive budgets."""
    rows = []
    for budget in ("per_window", "global", "adaptive"):
        cfg = compose(
            [
                "model=tiny_audio_flamingo_3",
                "dataset=synthetic_longform",
                "dataset.args.num_clips=2",
                "dataset.args.min_seconds=65",
                "dataset.args.max_seconds=80",
                "selector=topk",
                f"budget={budget}",
                f"retention={retention}",
                f"paths.results_dir={results_dir}",
                "progress=false",
                *overrides,
            ]
        )
        result = run(cfg)
        per_window = [r["kept_per_window"] for r in _records(result.run_dir)]
        rows.append(
            _row("tiny_audio_flamingo_3", f"topk, budget={budget}", result, per_window=per_window)
        )
    reset_process_state()
    return to_markdown(
        pd.DataFrame(rows),
        ["method", "kept_tokens", "audio_tokens", "per_window"],
        digits=3,
    )


def demo_methods(results_dir: str | Path = "results/demo", overrides: list[str] = ()) -> str:
    """Both sections; prints them and saves results_dir/demo_methods.md. `overrides` are extra
    Hydra overrides for every run (e.g. paths.cache_dir=...)."""
    text = "\n\n".join(
        [
            "## Methods from the field (25 %) — plumbing: tiny random-weight models, the "
            "metric means nothing",
            field_methods_section(results_dir, overrides),
            "## Budget policies (topk, 25 %, multi-window AF3 clips) — plumbing: tiny "
            "random-weight model, token counts only",
            budgets_section(results_dir, overrides),
        ]
    )
    out = Path(results_dir) / "demo_methods.md"
    atomic_write_text(out, text + "\n")
    print(text)
    return text


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results-dir", default="results/demo")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    cli = parser.parse_args()
    demo_methods(cli.results_dir, cli.overrides)
