"""The classifier family's batch step: audio → fbank → pruned forward → one record per sample.

Called by the family-agnostic run loop (`runner.run`) with the samples still to compute and the
run's store; resume, identity, sharding and scoring stay there. Nothing is cached between
selectors: the pruning decisions live inside the encoder forward.

Record per sample: `prediction` (class name; for multi-label datasets one score per class of
`Sample.choices`), `kept_tokens` (patches leaving the last pruning stage), `audio_tokens`
(patches in), `kept_per_stage`, `kept_indices` (surviving patch ids in grid order, sorted),
`macs` (analytic per sample, the paper's count: patch embedding + blocks, `classifier.macs_count`),
`macs_with_score_and_head` (plus recomputed scores and the head), and `timings` (`forward_ms` per sample of its batch, `batch_size`,
`warmup`).
"""

from __future__ import annotations

import logging
import time
import weakref

import torch
from tqdm.auto import tqdm

from audioprune.cache import audio_file_key
from audioprune.data import AudioLoadError, load_audio
from audioprune.loops import register_loop, register_summary
from audioprune.records import Sample
from audioprune.spec import RunSpec
from audioprune.state import feature_cache
from audioprune.store import PredictionStore

log = logging.getLogger(__name__)

_WARM: weakref.WeakSet = weakref.WeakSet()


def _key(settings: str, path, rate: int) -> tuple[str, str]:
    try:
        return settings, audio_file_key(path, rate)
    except OSError as err:
        raise AudioLoadError(f"{path}: audio file not found ({err.strerror})") from err


def cached_features(adapter, samples: list[Sample]) -> torch.Tensor:
    """[B, T, F] features of `samples` (from the cache or computed and cached).

    Missing or unreadable audio raises `AudioLoadError` (a ValueError) naming the file.
    """
    cache = feature_cache()
    settings = repr(adapter.fbank.spec)
    keys = [_key(settings, s.audio_path, adapter.sampling_rate) for s in samples]
    found = [cache.get(key) for key in keys]
    missing = [i for i, hit in enumerate(found) if hit is None]
    if missing:
        fresh = adapter.features(
            [load_audio(samples[i].audio_path, adapter.sampling_rate) for i in missing]
        )
        for i, row in zip(missing, fresh):
            cache.put(keys[i], row)
            found[i] = row
    return torch.stack(found)


def check_labels(samples: list[Sample], labels: list[str], model_name: str) -> None:
    """Every class the dataset uses must be a class of the model's head."""
    known = set(labels)
    used = set()
    for s in samples:
        used.update(s.choices or [])
        if s.answer is not None:
            used.add(s.answer)
    unknown = sorted(used - known)
    if unknown:
        raise ValueError(
            f"model {model_name}: its head has no class for {len(unknown)} dataset label(s), e.g. "
            f"{unknown[:5]}; fine-tune it on this dataset (audioprune.classifier.train) first"
        )


def predictions_from_logits(logits: torch.Tensor, samples: list[Sample], labels: list[str]):
    """Per sample: the best class among the sample's choices (single-label) or the sigmoid
    score of each choice (multi-label). logits: [B, C] over the model's `labels`."""
    index = {name: i for i, name in enumerate(labels)}
    out = []
    for row, s in enumerate(samples):
        choices = s.choices or labels
        columns = torch.tensor([index[c] for c in choices])
        values = logits[row, columns].float()
        if s.task == "multilabel":
            out.append([round(float(v), 6) for v in values.sigmoid()])
        else:
            out.append(choices[int(values.argmax())])
    return out


@register_loop("classifier")
def classify_batches(
    spec: RunSpec, adapter, todo: list[Sample], store: PredictionStore, dataset=None
) -> int:
    """Classify `todo` batch by batch under `spec.selector` at keep rate `spec.retention`;
    append one record per sample to `store`; return how many samples were computed.
    (`dataset`, the whole sample list, is not needed: the keep rate is the budget.)"""
    selector, retention = spec.selector, spec.retention
    check_labels(todo, adapter.labels, spec.model)
    batch_size = spec.batch_size
    macs = adapter.macs(retention, selector)
    computed = 0
    with tqdm(
        total=len(todo),
        desc=spec.label,
        unit="clip",
        disable=not spec.progress,
        dynamic_ncols=True,
    ) as bar:
        for start in range(0, len(todo), batch_size):
            batch = []
            for sample in todo[start : start + batch_size]:
                try:
                    if sample.audio_path is None:  # kept in the reference set, audio missing
                        raise AudioLoadError("audio file missing")
                    cached_features(adapter, [sample])
                    batch.append(sample)
                except ValueError as err:
                    if spec.on_error != "skip" and sample.audio_path is not None:
                        raise
                    log.warning("skipping sample %s: %s", sample.id, err)
                    store.append({"id": sample.id, "prediction": None, "error": str(err)})
            bar.update(len(todo[start : start + batch_size]))
            if not batch:
                continue
            warmup = adapter not in _WARM
            features = cached_features(adapter, batch)
            t0 = time.perf_counter()
            with torch.no_grad():
                logits, kept = adapter.classify(
                    features, selector, retention, [s.id for s in batch]
                )
            forward_ms = (time.perf_counter() - t0) * 1e3 / len(batch)
            _WARM.add(adapter)
            predictions = predictions_from_logits(logits.cpu(), batch, adapter.labels)
            patches = adapter.spec.patches
            for row, (sample, prediction) in enumerate(zip(batch, predictions)):
                ids = None if kept is None else sorted(kept[row].tolist())
                store.append(
                    {
                        "id": sample.id,
                        "prediction": prediction,
                        "kept_tokens": patches if ids is None else len(ids),
                        "audio_tokens": patches,
                        "kept_per_stage": macs["tokens_per_stage"],
                        "kept_indices": ids,
                        "macs": macs["backbone"],
                        "macs_with_score_and_head": macs["total"],
                        "timings": {
                            "forward_ms": forward_ms,
                            "batch_size": len(batch),
                            "warmup": warmup,
                        },
                    }
                )
                computed += 1
    return computed


@register_summary("classifier")
def classifier_summary(records: list[dict]) -> dict:
    """metrics.json summary fields of the classifier family: `gmacs_mean` (analytic backbone
    GMACs per clip)."""
    macs = [r["macs"] for r in records if r.get("macs") is not None]
    return {"gmacs_mean": sum(macs) / len(macs) / 1e9 if macs else None}
