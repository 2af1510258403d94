"""Pruned vs unpruned on the same samples: finding the unpruned run, rescoring its saved
predictions on the pruned run's sample set, and refusing comparisons across sample sets.

A number is only compared with a number computed on the same samples. The unpruned run of the
same model, dataset, prompt and decoding may have been a smoke run (`limit`) or a full run; the
pruned run may be either too. So the relative drop is never taken from the unpruned run's
metrics.json: its saved predictions are rescored on exactly the pruned run's samples. If it has
no prediction for some of them, no drop is computed and a warning says why.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from audioprune.identity import default_run_dir, predictions_hash, sample_set
from audioprune.metrics.relative import loyalty, relative_drop
from audioprune.records import DatasetInfo, Sample
from audioprune.store import read_jsonl

if TYPE_CHECKING:
    from audioprune.spec import RunSpec

log = logging.getLogger(__name__)


def saved_records(run_dir: Path) -> dict[str, dict]:
    """Every finished sample of a run folder: the merged predictions.jsonl plus any per-rank
    file of a multi-process run that stopped before merging (a later line wins)."""
    run_dir = Path(run_dir)
    records: dict[str, dict] = {}
    for path in [run_dir / "predictions.jsonl", *sorted(run_dir.glob("predictions.rank*.jsonl"))]:
        for record in read_jsonl(path):
            records[str(record["id"])] = record
    return records


def find_unpruned_run(cfg: DictConfig, spec: RunSpec, info: DatasetInfo) -> Path | None:
    """The unpruned run of the same model, dataset, prompt and decoding as `spec`, if it saved
    predictions (looked for under `cfg`'s results folder)."""
    path = default_run_dir(cfg, spec.unpruned(), info)
    return path if saved_records(path) else None


def compare_to_unpruned(
    cfg: DictConfig,
    spec: RunSpec,
    info: DatasetInfo,
    samples: list[Sample],
    preds: dict[str, str],
    metrics: dict,
    run_dir: Path,
    rescore: Callable[[dict[str, str]], dict],
    options: dict | None = None,
) -> dict:
    """Relative drop and loyalty against the unpruned run, on this run's samples.

    rescore: scores {id: prediction} on `samples` with this run's metric options (`options`); it
    is applied to the unpruned run's predictions restricted to `samples`, unless one of the
    unpruned run's metrics files already scored exactly those predictions on exactly those
    samples with the same options. Returns {} when there is no
    unpruned run; with `comparison_refused` (and no drop) when it lacks some of the samples.
    """
    base_dir = find_unpruned_run(cfg, spec, info)
    if base_dir is None or base_dir.resolve() == Path(run_dir).resolve():
        return {}
    records = saved_records(base_dir)
    absent = [s.id for s in samples if s.id not in records]
    if absent:
        reason = (
            f"the unpruned run {base_dir} has no saved prediction for {len(absent)} of this "
            f"run's {len(samples)} samples (e.g. {absent[:3]}); relative drop and loyalty are "
            "only computed on the same samples — finish the unpruned run (without limit) first"
        )
        log.warning(reason)
        return {"unpruned_run": str(base_dir), "comparison_refused": reason}
    ids = {s.id for s in samples}
    base_preds = {
        i: r["prediction"]
        for i, r in records.items()
        if i in ids and r.get("prediction") is not None
    }
    base_metrics = _saved_metrics(base_dir, sample_set(sorted(ids)), base_preds, options)
    if base_metrics is None:
        base_metrics = rescore(base_preds)
    return {
        "unpruned_run": str(base_dir),
        "unpruned_metrics": base_metrics,
        "compared_on": sample_set(sorted(ids)),
        "relative_drop": relative_drop(metrics, base_metrics),
        "loyalty": loyalty(samples, preds, base_preds),
    }


def _saved_metrics(base_dir: Path, wanted: dict, preds: dict[str, str], options) -> dict | None:
    """The unpruned run's saved metrics when they are for this sample set, these predictions and
    these metric options (then rescoring would give the same numbers); else None."""
    for path in sorted(Path(base_dir).glob("metrics*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        run = data.get("run") or {}
        if (
            run.get("sample_set") == wanted
            and run.get("predictions_sha256") == predictions_hash(preds)
            and run.get("metrics_options") == options
            and isinstance(data.get("metrics"), dict)
        ):
            return data["metrics"]
    return None


def dataset_key(data: dict) -> dict:
    """What makes two runs' datasets the same, from a metrics.json's `dataset` block."""
    dataset = data.get("dataset") or {}
    return {k: dataset.get(k) for k in ("name", "version", "task", "files")}


def check_same_samples(run: dict, baseline: dict, run_path: Path, base_path: Path) -> None:
    """Refuse (ValueError naming both files) to compare runs of different datasets or samples."""
    if dataset_key(run) != dataset_key(baseline):
        raise ValueError(
            f"{run_path} and {base_path} are runs of different datasets "
            f"({dataset_key(run)} vs {dataset_key(baseline)}); refusing to compare them"
        )
    sets = [(r.get("run") or {}).get("sample_set") for r in (run, baseline)]
    if None in sets:
        missing = run_path if sets[0] is None else base_path
        raise ValueError(
            f"{missing} records no sample set (written by an older audioprune); rescore the run "
            "with evaluate_only=true, then compare"
        )
    if sets[0] != sets[1]:
        raise ValueError(
            f"{run_path} (n={sets[0]['n']}) and {base_path} (n={sets[1]['n']}) were scored on "
            "different sample sets; refusing to compare them (rescore both on the same samples)"
        )
