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
    identity = _identity(Path(run_dir))  # read once: tag, budget, scoring, positions
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
        "seed": selector.get("seed"),  # random: its seed (rows of several seeds sit together)
        "n": run["num_predictions"],
        "limit": run.get("limit"),
        "tag": identity.get("tag"),  # free tag, part of the key (e.g. batch-size-1 timing runs)
        "budget": identity.get("budget", {}).get("name"),
        "scoring": identity.get("scoring", "generate"),
        "positions": identity.get("positions", "compact"),
        # Which clips and which weights (as the run key records them), so a recipe's tables keep
        # only its own runs (audioprune.reproduce.recipe_identities); None for a run without
        # an identity file.
        "dataset_args": identity_json(identity.get("dataset", {}).get("args")),
        "built_from": identity_json(identity.get("model", {}).get("built_from")),
        "run_dir": run["dir"],
    }
    for name, value in flatten(result["metrics"]).items():
        row[name] = value
    for name, value in flatten(result.get("relative_drop") or {}).items():
        row[f"relative_drop.{name}"] = value
    if isinstance(result.get("loyalty"), dict):
        row["loyalty"] = result["loyalty"].get("loyalty")
    return row


def identity_json(value) -> str | None:
    """A canonical JSON text of an identity part (comparable as a table cell, and with what
    `audioprune.reproduce.recipe_identities` composes); None stays None."""
    return None if value is None else json.dumps(value, sort_keys=True)


def _identity(run_dir: Path) -> dict:
    """The run's identity.json ({} when the folder has none)."""
    path = run_dir / "identity.json"
    return json.loads(path.read_text()) if path.exists() else {}


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

    # The retention is an identifier (0.25 stays 0.25 whatever `digits` the metrics get).
    exact = {i for i, c in enumerate(frame.columns) if c == "retention"}

    def cell(i: int, value) -> str:
        return f"{value:g}" if i in exact and isinstance(value, float) else fmt(value)

    body = [
        "| " + " | ".join(cell(i, v) for i, v in enumerate(row)) + " |"
        for row in frame.itertuples(index=False)
    ]
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


def ci_columns(frame: pd.DataFrame, metric: str) -> tuple[str, str] | None:
    """The (low, high) columns of `metric`'s 95 % interval in a collected frame, or None.

    Scoring writes an interval beside its value: `overall` -> `overall_ci95.low`,
    `event_coverage.overall` -> `event_coverage.overall_ci95.low`, and per group
    `accuracy_choice_loglik_by_task.count` -> `accuracy_choice_loglik_by_task_ci95.count.low`.
    """
    head, _, key = metric.rpartition(".")
    candidates = [f"{metric}_ci95"] + ([f"{head}_ci95.{key}"] if head else [])
    for base in candidates:
        if f"{base}.low" in frame.columns and f"{base}.high" in frame.columns:
            return f"{base}.low", f"{base}.high"
    return None


def with_ci(frame: pd.DataFrame, metric: str, digits: int = 1) -> pd.Series:
    """`metric` as "value [low, high]" strings (its 95 % bootstrap interval), "–" if absent."""

    def cell(value, low, high) -> str:
        if value is None or pd.isna(value):
            return "–"
        if low is None or pd.isna(low):
            return f"{value:.{digits}f}"
        return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"

    if metric not in frame.columns:
        return pd.Series("–", index=frame.index)
    bounds = ci_columns(frame, metric)
    lows = frame[bounds[0]] if bounds else pd.Series(None, index=frame.index)
    highs = frame[bounds[1]] if bounds else pd.Series(None, index=frame.index)
    return pd.Series(
        [cell(v, lo, hi) for v, lo, hi in zip(frame[metric], lows, highs)], index=frame.index
    )


def ci_table(
    frame: pd.DataFrame,
    metrics: dict[str, str],
    keys: Sequence[str] = ("selector", "seed", "segments", "budget", "retention"),
    digits: int = 1,
) -> pd.DataFrame:
    """One row per run: the identifying `keys` that vary (or name the selector) and, per
    {label: metric column}, "value [low, high]" with its 95 % interval. Rows sorted by
    retention (descending) then selector."""
    shown = [k for k in keys if k in frame.columns and (k == "selector" or frame[k].nunique() > 1)]
    order = [c for c in ("retention", "selector", "model", "positions", "seed", "segments") if c in frame.columns and (c not in ("model", "positions") or c in shown)]  # fmt: skip
    ordered = frame.sort_values(order, ascending=[c != "retention" for c in order])
    table = ordered[shown].copy()
    for column in ("seed", "segments"):
        if column in table:
            table[column] = [("–" if pd.isna(v) else str(int(v))) for v in table[column]]
    if "retention" in table:  # 0.25 stays 0.25 whatever `digits` the table is printed with
        table["retention"] = [f"{v:g}" for v in table["retention"]]
    for label, metric in metrics.items():
        table[label] = with_ci(ordered, metric, digits).values
    return table.reset_index(drop=True)


# A run's settings beside its model, dataset, selector, seed and retention: runs that differ
# only in the seed are seeds of one setting (seed_means); with the seed and retention they make
# one table cell (reproduce's CELL_KEYS).
SETTING_KEYS = ("segments", "head_weights", "budget", "scoring", "positions", "tag", "limit")


def seed_means(frame: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Rows of a selector run with several seeds (random) averaged per retention: the mean of
    each metric over seeds, its min and max (`<metric> min`, `<metric> max`) and `seeds`.

    Only runs that differ in the seed alone are averaged (same model, dataset, segments, budget,
    scoring, positions, ...); a key that varies across `frame` is shown beside the selector.
    A group of one seed gives no row."""
    if "seed" not in frame.columns:
        return pd.DataFrame()
    seeded = frame[frame["seed"].notna()]
    group = ("model", "dataset", *SETTING_KEYS)
    keys = ["selector", *(c for c in group if c in seeded.columns), "retention"]
    shown = [c for c in keys[1:-1] if seeded[c].nunique(dropna=False) > 1]
    rows = []
    for values, group in seeded.groupby(keys, sort=False, dropna=False):
        if len(group) < 2:
            continue
        named = dict(zip(keys, values))
        row = {"selector": f"{named['selector']} (mean of {len(group)} seeds)"}
        row |= {c: named[c] for c in shown}
        row |= {"retention": named["retention"], "seeds": len(group)}
        for metric in metrics:
            if metric in group:
                row[metric] = group[metric].mean()
                row[f"{metric} min"], row[f"{metric} max"] = (
                    group[metric].min(),
                    group[metric].max(),
                )
        rows.append(row)
    return pd.DataFrame(rows)
