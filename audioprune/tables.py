"""Collect finished runs (their metrics files) into tables: pandas frames and Markdown.

A run folder's `metrics.json` covers the whole dataset; a folder that only holds smoke-run
metrics (`metrics.limit<N>.json`, e.g. the Table 4 timing runs on 200 clips) is read from the
largest of those, and its row says how many samples it covers (`n`, `limit`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd


def metrics_file(run_dir: Path) -> Path | None:
    """metrics.json, else the smoke-run metrics file with the largest limit, else None."""
    run_dir = Path(run_dir)
    if (run_dir / "metrics.json").is_file():
        return run_dir / "metrics.json"
    limited = run_dir.glob("metrics.limit*.json")

    def limit(path: Path) -> int:
        digits = path.name[len("metrics.limit") : -len(".json")]
        return int(digits) if digits.isdigit() else -1

    return max(limited, key=limit, default=None)


def load_run(run_dir: Path) -> dict:
    """One row per run: identity, token counts, timings and every scalar metric."""
    result = json.loads(metrics_file(run_dir).read_text())
    run, summary = result["run"], result["summary"]
    selector = dict(run["selector"])
    row = {
        "model": run["model"],
        "dataset": run["dataset"],
        "selector": selector.pop("name"),
        "segments": selector.get("segments"),
        "retention": run["retention"],
        "kept_tokens": summary.get("kept_tokens_mean"),
        "audio_tokens": summary.get("audio_tokens_mean"),
        "prefill_ms": summary.get("prefill_ms_mean"),
        "audio_ms": summary.get("audio_ms_mean"),
        "decode_ms_per_token": summary.get("decode_ms_per_token_mean"),
        "prefill_tflops": summary.get("prefill_tflops_mean"),
        "audio_tflops": summary.get("audio_tflops_mean"),
        "peak_mem_mb": summary.get("peak_mem_mb_max"),
        "n": run["num_predictions"],
        "limit": run.get("limit"),
        "run_dir": run["dir"],
    }
    for name, value in flatten(result["metrics"]).items():
        row[name] = value
    for name, value in flatten(result.get("relative_drop") or {}).items():
        row[f"relative_drop.{name}"] = value
    if isinstance(result.get("loyalty"), dict):
        row["loyalty"] = result["loyalty"].get("loyalty")
    return row


def flatten(metrics: dict, prefix: str = "") -> dict:
    """{"mmau": {"sound": 1}} -> {"mmau.sound": 1}; keeps only numbers."""
    out = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out |= flatten(value, prefix=f"{name}.")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = value
    return out


def collect(run_dirs: Iterable[Path]) -> pd.DataFrame:
    rows = [load_run(d) for d in run_dirs if metrics_file(d) is not None]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.sort_values(
        ["model", "dataset", "retention", "selector"], ascending=[True, True, False, True]
    )


def find_runs(results_dir: Path) -> list[Path]:
    """Run folders under results_dir/runs holding a metrics file."""
    found = {p.parent for p in (Path(results_dir) / "runs").rglob("metrics*.json")}
    return sorted(d for d in found if metrics_file(d) is not None)


def to_markdown(frame: pd.DataFrame, columns: Sequence[str] | None = None, digits: int = 3) -> str:
    """A GitHub Markdown table (no extra dependency)."""
    if columns is not None:
        frame = frame[[c for c in columns if c in frame.columns]]
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"

    def fmt(value) -> str:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return "–"
        if isinstance(value, float):
            return f"{value:.{digits}f}"
        return str(value)

    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])
