"""The audio-language-model loop: encode (or reuse cached encoder outputs) → prune → generate.

Per batch: clips whose encoder output is cached (found by file identity, so a sweep neither
re-reads nor re-resamples their audio) skip the audio path; the others are loaded and encoded;
every clip is pruned window by window (`prune_clip`) and the adapter generates from the kept
tokens. One record per sample is appended to the store.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable
from typing import Any

import torch
from tqdm.auto import tqdm

from audioprune.cache import EncoderCache, audio_file_key
from audioprune.data import load_audio
from audioprune.loops import register_loop, register_summary
from audioprune.metrics import per_sample_metrics
from audioprune.metrics.coverage import WINDOW_SECONDS, events_kept
from audioprune.models.base import (
    AudioLMAdapter,
    BatchTiming,
    ChoiceScores,
    EncodedAudio,
    Generation,
)
from audioprune.models.needs import DERIVED_NEEDS, complete_windows
from audioprune.models.runtime import peak_memory_mb, reset_peak_memory
from audioprune.prompts import render_prompt
from audioprune.pruning import calibrate_budget, prune_clip, to_device
from audioprune.records import Sample
from audioprune.spec import RunSpec
from audioprune.state import cache_for
from audioprune.store import PredictionStore

log = logging.getLogger(__name__)

# Adapters that have already run a batch in this process: the first batch of each pays one-time
# costs (CUDA context and kernel selection, allocator growth, lazy imports) and is marked warm-up.
_WARM_ADAPTERS: weakref.WeakSet = weakref.WeakSet()
# Record fields an in-LLM selector's adapter reports itself (what the LLM kept).
IN_LLM_FIELDS = {"kept_tokens", "kept_per_window", "kept_indices"}


def _device_of(adapter: AudioLMAdapter) -> torch.device:
    return torch.device(getattr(adapter, "device", "cpu"))


def _synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work, so a host clock around it measures it (no-op elsewhere)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _row(values: Any, row: int) -> Any:
    """values[row] for a per-row list in BatchTiming.extra, None when the adapter gave none."""
    return values[row] if isinstance(values, list | tuple) and row < len(values) else None


def _file_key(path, sampling_rate: int) -> str:
    try:
        return audio_file_key(path, sampling_rate)
    except OSError:  # unreadable: never cached, so load_audio reports it
        return f"unreadable:{path}"


def _max_or_none(*values: float | None) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def encode_through_cache(
    cache: EncoderCache,
    adapter: AudioLMAdapter,
    samples: list[Sample],
    needs: frozenset[str],
    skip: Callable[[Sample, Exception], None] | None = None,
) -> tuple[list[EncodedAudio | None], list[int], float]:
    """Encoder outputs of `samples`: the cached ones (found by file identity, so a sweep neither
    re-reads nor re-resamples their audio), the others loaded, encoded in one call and cached.

    A clip whose audio cannot be read raises, or, given `skip`, is handed to it and left None.
    Returns (outputs in sample order, indices encoded by this call, milliseconds of the encode
    call alone).
    """
    fingerprint = adapter.fingerprint()
    keys = [_file_key(s.audio_path, adapter.sampling_rate) for s in samples]
    found = cache.lookup(fingerprint, keys, needs)
    waves: dict[int, Any] = {}
    for i, hit in enumerate(found):
        if hit is not None:
            continue
        try:
            waves[i] = load_audio(samples[i].audio_path, adapter.sampling_rate, adapter.min_samples)
        except ValueError as err:
            if skip is None:
                raise
            skip(samples[i], err)
    t0 = time.perf_counter()
    if waves:
        for i, encoded in zip(waves, adapter.encode(list(waves.values()), needs)):
            found[i] = cache.put(fingerprint, keys[i], encoded)
    return found, list(waves), (time.perf_counter() - t0) * 1e3


def seconds_per_window(adapter: AudioLMAdapter) -> float:
    """Seconds of audio per encoder window (token positions restart in each): 30 s for the
    Whisper-style adapters, whose token i of a window spans [0.04 i, 0.04 (i + 1)) s."""
    return float(getattr(adapter, "window_seconds", WINDOW_SECONDS))


def choice_record(scores: ChoiceScores, gen: Generation, generated: bool) -> dict:
    """The record fields of one clip's choice scores. Under an in-LLM selector the LLM's kept
    tokens while scoring must equal generate's (they are the record's `kept_*` fields)."""
    fields = {"choice_loglik": scores.logliks, "choice_tokens": scores.tokens}
    if scores.extra:
        if generated and scores.extra["kept_indices"] != gen.extra.get("kept_indices"):
            raise RuntimeError(
                "choice scoring: the in-LLM selector kept other audio tokens than in generate "
                f"({scores.extra['kept_indices']} vs {gen.extra.get('kept_indices')})"
            )
        fields |= scores.extra
    return fields


@register_loop("alm")
def alm_loop(
    spec: RunSpec,
    adapter: AudioLMAdapter,
    todo: list[Sample],
    store: PredictionStore,
    dataset: list[Sample] | None = None,
) -> int:
    """Encode (or reuse), prune and generate batch by batch; append one record per sample.

    Per record, besides the prediction and token counts: `prefill_flops` (analytic LLM prefill
    of that row's unpadded prompt) and `audio_flops` (analytic encoder + scoring of the clip's
    windows — the cost of computing its encoder output, also when this run took it from the
    cache: `timings.encoder_cached` says whether it was spent here), and in `timings` the
    batch's `peak_mem_mb` (CUDA, audio path and generate; None elsewhere) and `warmup`.
    `Generation.extra` (adapter-specific per-sample values) is merged into the record.
    """
    selector, retention, template = spec.selector, spec.retention, spec.prompt
    cache = cache_for(spec.encoder_cache)
    device = _device_of(adapter)
    # Keys and per-head scores are always kept (small, and per-head scores cost nothing extra) so
    # one cache entry serves every selector; an entry lacking another field the selector needs
    # (head_max_scores, self_scores) is a cache miss; fields derived from them or from the prompt
    # are added per clip before selection (models/needs.py).
    needs = frozenset({"hidden", "keys", "head_scores"}) | (selector.needs - DERIVED_NEEDS)
    budget = spec.budget
    if budget.needs_calibration and selector.prunes:
        # The first clips of the whole dataset (not of `limit` / the pending ones), so a
        # sample's K does not depend on how the run was cut. One clip per encode call.
        clips = [s for s in (dataset or todo) if s.audio_path is not None]
        calibration = [
            encode_through_cache(cache, adapter, [clip], needs)[0][0]
            for clip in clips[: budget.calibration_clips]
        ]
        budget = calibrate_budget(budget, calibration, retention)
    # In-LLM selectors keep one row per generate call (per-row keep sets; their originals assert
    # batch size 1): same predictions, since batch size is not part of a run's result.
    llm_stage = selector.stage == "llm"
    scoring = spec.scoring
    batch_size = 1 if llm_stage else spec.batch_size
    computed = 0

    def skip(sample: Sample, err: Exception) -> None:
        if spec.on_error != "skip":
            raise err
        log.warning("skipping sample %s: %s", sample.id, err)
        store.append({"id": sample.id, "prediction": None, "error": str(err)})

    with tqdm(
        total=len(todo),
        desc=spec.label,
        unit="clip",
        disable=not spec.progress,
        dynamic_ncols=True,
    ) as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            ok = []
            for sample in batch:
                if sample.audio_path is None:  # kept in the reference set, audio missing on disk
                    store.append(
                        {"id": sample.id, "prediction": None, "error": "audio file missing"}
                    )
                else:
                    ok.append(sample)
            warmup = adapter not in _WARM_ADAPTERS
            reset_peak_memory(device)
            found, encoded_here, audio_ms = encode_through_cache(cache, adapter, ok, needs, skip)
            audio_peak_mb = peak_memory_mb(device)
            usable = [i for i, hit in enumerate(found) if hit is not None]
            if not usable:
                bar.update(len(batch))
                continue
            cached = [i not in encoded_here for i in usable]
            encoded = [found[i] for i in usable]
            ok = [ok[i] for i in usable]
            fresh = max(1, sum(not c for c in cached))
            # Selection runs on the model's device (the cache holds CPU copies); select_ms is the
            # derived fields + selection per clip, between two device synchronisations.
            _synchronize(device)
            t0 = time.perf_counter()
            encoded = [
                complete_windows(
                    adapter, to_device(e, device), selector.needs, render_prompt(template, s)
                )
                for e, s in zip(encoded, ok)
            ]
            pruned = [prune_clip(e, selector, retention, s.id, budget) for e, s in zip(encoded, ok)]
            _synchronize(device)
            select_ms = (time.perf_counter() - t0) * 1e3 / len(ok)
            prompts = [render_prompt(template, s) for s in ok]
            in_llm = {"llm_pruner": selector} if llm_stage else {}
            # With both, generate may score the choices from its own prefill (one clip, no
            # in-LLM selector): Generation.choice_scores; else score_choices runs them.
            with_choices = {"choices": [s.choices for s in ok]} if scoring.choices else {}
            if scoring.generates:
                generations, timing = adapter.generate(
                    prompts,
                    pruned,
                    max_new_tokens=spec.decoding.max_new_tokens,
                    positions=spec.positions,
                    **in_llm,
                    **with_choices,
                    **spec.decoding.options,
                )
            else:  # choice_loglik_only: no free reply, no decode timing
                generations = [Generation(text=None, token_ids=[], prompt_tokens=None) for _ in ok]
                timing = BatchTiming(prefill_ms=None, decode_ms_per_token=None)
            choice_rows = [{} for _ in ok]
            if scoring.choices:
                scored = [g.choice_scores for g in generations]
                if any(c is None for c in scored):
                    scored = adapter.score_choices(
                        prompts, pruned, [s.choices for s in ok], positions=spec.positions, **in_llm
                    )
                choice_rows = [
                    choice_record(c, g, scoring.generates) for c, g in zip(scored, generations)
                ]
            _WARM_ADAPTERS.add(adapter)
            # generate resets the peak itself, so the batch peak is the larger of the two phases.
            peak_mb = _max_or_none(audio_peak_mb, timing.extra.get("peak_mem_mb"))
            for row, (sample, kept, gen, was_cached) in enumerate(
                zip(ok, pruned, generations, cached)
            ):
                record = {
                    "id": sample.id,
                    "prediction": gen.text,
                    "kept_tokens": kept.kept,
                    "audio_tokens": kept.total,
                    "kept_per_window": [int(t.shape[0]) for t in kept.tokens],
                    "kept_indices": [idx.tolist() for idx in kept.indices],
                    "prompt_tokens": gen.prompt_tokens,
                    "prefill_flops": _row(timing.extra.get("prefill_flops"), row),
                    "audio_flops": _row(timing.extra.get("audio_flops"), row),
                    "select_flops": kept.select_flops,
                    **({"budget_mass": budget.mass} if budget.name == "adaptive" else {}),
                    "timings": {
                        "audio_ms": None if was_cached else audio_ms / fresh,
                        "encoder_cached": was_cached,
                        "select_ms": select_ms,
                        "prefill_ms": timing.prefill_ms,
                        "decode_ms_per_token": timing.decode_ms_per_token,
                        "new_tokens": timing.new_tokens,
                        "batch_size": len(ok),
                        "peak_mem_mb": peak_mb,
                        "warmup": warmup,
                    },
                }
                # An in-LLM selector's kept tokens are only known inside the LLM: its adapter
                # reports them in `extra`, replacing the pre-LLM (keep-everything) counts.
                clash = set(gen.extra) & set(record) - (IN_LLM_FIELDS if llm_stage else set())
                if clash:
                    raise ValueError(
                        f"{type(adapter).__name__}: Generation.extra keys {sorted(clash)} would "
                        "overwrite the runner's own record fields"
                    )
                record |= gen.extra | choice_rows[row]
                # Ground truth the dataset attaches for per-sample analysis (event times, ...).
                clash = set(sample.annotations) & set(record)
                if clash:
                    raise ValueError(
                        f"sample {sample.id!r}: annotations {sorted(clash)} would overwrite the "
                        "runner's own record fields"
                    )
                record |= sample.annotations
                if sample.meta.get("events") is not None:
                    record["events_kept"] = events_kept(
                        sample.meta["events"], record["kept_indices"], seconds_per_window(adapter)
                    )
                store.append(record | per_sample_metrics(sample, gen.text))
                computed += 1
            bar.update(len(batch))
    return computed


@register_summary("alm")
def alm_summary(records: list[dict]) -> dict:
    """metrics.json summary fields of the audio-LM family: `cap_hits`, the clips whose decoding
    stopped at the new-token cap (Whisper records `cap_hit`; None when no record has it)."""
    capped = [bool(r["cap_hit"]) for r in records if "cap_hit" in r]
    return {"cap_hits": sum(capped) if capped else None}
