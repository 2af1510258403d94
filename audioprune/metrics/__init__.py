"""Evaluators: `compute_metrics(task, samples, predictions, **options)` dispatches by task.

    captioning -> captioning.score_captions (CIDEr-D, BLEU-4, METEOR, ROUGE-L; 0-1 scale)
    mcq        -> mmau.score_mmau          (accuracy %, matcher official (raw reply, the benchmark's
                                            rule) | official_normalized | sbert; `extra_matchers`
                                            adds the others' numbers under their names)
    aqa        -> aqa.score_aqa            (accuracy %, yes/no and single-word apart)
    asr        -> asr.score_asr            (pooled WER / CER %, after Whisper's English normaliser)
    classification -> classification.score_classification (top-1 accuracy %)
    multilabel -> classification.score_multilabel (mAP %, scikit-learn average precision)

`options` are the dataset YAML's `metrics:` block. Predictions are {sample id: raw reply};
samples without one count as wrong (or as an empty caption) and are reported as `missing`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from audioprune.metrics.relative import loyalty, relative_drop
from audioprune.records import Sample
from audioprune.registry import Registry

__all__ = [
    "SCORERS",
    "check_requirements",
    "compute_metrics",
    "loyalty",
    "metric_options",
    "per_sample_metrics",
    "relative_drop",
]

# task -> scorer(samples, predictions, **options) -> metrics; a scorer's keyword parameters are
# the options its dataset YAML's `metrics:` block may set. The metric modules are imported when
# a task is scored (captioning pulls in the COCO caption tools).
SCORERS: Registry[Callable[..., dict]] = Registry("task")


@SCORERS.register("captioning")
def _captioning(samples, predictions, captioning_metrics: list[str] | None = None) -> dict:
    from audioprune.metrics.captioning import METRICS, score_captions

    return score_captions(samples, predictions, captioning_metrics or METRICS)


@SCORERS.register("mcq")
def _mcq(
    samples,
    predictions,
    matcher: str = "official",
    normalize: bool | None = None,
    sbert_model: str | None = None,
    extra_matchers: list[str] | None = None,
) -> dict:
    from audioprune.metrics.mmau import score_mmau

    options = {"normalize": normalize, "sbert_model": sbert_model}
    result = score_mmau(samples, predictions, matcher=matcher, **options)
    # The paper maps replies to choices with Sentence-BERT; the benchmark's own rule is
    # `official`. `extra_matchers` adds the others' headline numbers under their names.
    for other_matcher in extra_matchers or []:
        if other_matcher == result["matcher"]:
            continue
        # Each matcher applies its own normalisation rule.
        other = score_mmau(
            samples, predictions, matcher=other_matcher, normalize=None, sbert_model=sbert_model
        )
        result[other_matcher] = {k: other[k] for k in ("overall", "sound", "music", "speech")}
        result[other_matcher]["by_difficulty"] = other["by_difficulty"]
        for key in ("overall_ci95", "by_task", "by_task_ci95", "by_family", "by_family_ci95"):
            if key in other:
                result[other_matcher][key] = other[key]
    return result


@SCORERS.register("aqa")
def _aqa(samples, predictions, match: str = "exact") -> dict:
    from audioprune.metrics.aqa import score_aqa

    return score_aqa(samples, predictions, match=match)


@SCORERS.register("asr")
def _asr(samples, predictions) -> dict:
    from audioprune.metrics.asr import score_asr

    return score_asr(samples, predictions)


@SCORERS.register("classification")
def _classification(samples, predictions) -> dict:
    from audioprune.metrics.classification import score_classification

    return score_classification(samples, predictions)


@SCORERS.register("multilabel")
def _multilabel(samples, predictions) -> dict:
    from audioprune.metrics.classification import score_multilabel

    return score_multilabel(samples, predictions)


def metric_options(task: str) -> set[str]:
    """The `metrics:` options the scorer of `task` accepts (its keyword parameters)."""
    params = list(inspect.signature(SCORERS.get(task)).parameters)
    return set(params[2:])  # after (samples, predictions)


def check_requirements(task: str, **options) -> None:
    """Fail now, before any generation, if scoring `task` with these `options` would fail at
    the end of a run: captioning needs a working `java` (JavaNotFoundError says how to get one)."""
    if task == "captioning":
        from audioprune.metrics.captioning import require_java

        require_java()


def compute_metrics(
    task: str, samples: list[Sample], predictions: dict[str, str], **options
) -> dict:
    """Metrics for `task` over all `samples`; predictions for unknown ids are an error."""
    scorer = SCORERS.get(task)
    valid = metric_options(task)
    unknown_options = set(options) - valid
    if unknown_options:
        raise ValueError(
            f"unknown metrics option(s) {sorted(unknown_options)} for task {task!r}; "
            f"valid: {sorted(valid) or 'none'}"
        )
    ids = {s.id for s in samples}
    unknown = [k for k in predictions if k not in ids]
    if unknown:
        raise ValueError(
            f"{len(unknown)} prediction id(s) are not in the dataset, e.g. {unknown[:3]}"
        )
    return scorer(samples, predictions, **options)


def per_sample_metrics(sample: Sample, prediction: str | None) -> dict:
    """Metrics stored with each prediction record: {"wer", "cer"} (percent) for ASR, else {}."""
    if sample.task != "asr":
        return {}
    from audioprune.metrics.asr import utterance_rates

    return utterance_rates((sample.references or [""])[0], prediction or "")
