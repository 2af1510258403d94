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
        "head_weights": selector.get("head_weights"),  # uniform / entropy / a profile path
        "retention": run["retention"],
        "kept_tokens": summary.get("kept_tokens_mean"),
        "audio_tokens": summary.get("audio_tokens_mean"),
        "prefill_ms": summary.get("prefill_ms_mean"),
        "audio_ms": summary.get("audio_ms_mean"),
        "decode_ms_per_token": summary.get("decode_ms_per_token_mean"),
        "prefill_tflops": summary.get("prefill_tflops_mean"),
        "audio_tflops": summary.get("audio_tflops_mean"),
        "peak_mem_mb": summary.get("peak_mem_mb_max"),
        "gmacs": summary.get("gmacs_mean"),  # classifier family: analytic GMACs per clip
        "n": run["num_predictions"],
        "limit": run.get("limit"),
        "tag": _tag(Path(run_dir)),
        "run_dir": run["dir"],
    }
    for name, value in flatten(result["metrics"]).items():
        row[name] = value
    for name, value in flatten(result.get("relative_drop") or {}).items():
        row[f"relative_drop.{name}"] = value
    if isinstance(result.get("loyalty"), dict):
        row["loyalty"] = result["loyalty"].get("loyalty")
    return row


def _tag(run_dir: Path) -> str | None:
    """The run's free `tag` (part of its key, e.g. batch-size-1 timing runs), from identity.json."""
    path = run_dir / "identity.json"
    return json.loads(path.read_text()).get("tag") if path.exists() else None


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


LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}  # fmt: skip


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIALS.get(c, c) for c in str(text))


def to_latex(
    frame: pd.DataFrame,
    *,
    bold: pd.DataFrame | None = None,
    caption: str = "",
    label: str = "",
    digits: int = 3,
    rules_after: Sequence[int] = (),
    escape: bool = True,
) -> str:
    """A booktabs LaTeX table (needs \\usepackage{booktabs}); cells are escaped (unless
    escape=False: they already are LaTeX), numbers get `digits` decimals, a cell is bold where
    `bold` (same shape, bool) is True. `rules_after`: row positions after which a \\midrule
    separates blocks."""

    def fmt(value) -> str:
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            return "--"
        if isinstance(value, float):
            return f"{value:.{digits}f}"
        return latex_escape(str(value)) if escape else str(value)

    align = "".join("r" if pd.api.types.is_numeric_dtype(frame[c]) else "l" for c in frame.columns)
    lines = [r"\begin{table}[t]", r"\centering", r"\small"]
    if caption:
        lines.append(rf"\caption{{{latex_escape(caption)}}}")
    if label:
        lines.append(rf"\label{{{label}}}")
    lines += [rf"\begin{{tabular}}{{{align}}}", r"\toprule"]
    lines.append(" & ".join(latex_escape(c) for c in frame.columns) + r" \\")
    lines.append(r"\midrule")
    for i, row in enumerate(frame.itertuples(index=False)):
        cells = [fmt(v) for v in row]
        if bold is not None:
            cells = [rf"\textbf{{{c}}}" if bool(bold.iat[i, j]) else c for j, c in enumerate(cells)]
        lines.append(" & ".join(cells) + r" \\")
        if i in rules_after and i < len(frame) - 1:
            lines.append(r"\midrule")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def lower_is_better(column: str) -> bool:
    """Costs and error rates: smaller wins (ms, FLOPs, MACs, memory, WER/CER)."""
    name = column.lower()
    return any(k in name for k in ("_ms", "ms_per", "flops", "macs", "mem", "wer", "cer"))
