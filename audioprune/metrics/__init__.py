"""Evaluators: `score(task, samples, predictions, **options)` dispatches by task.

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

from audioprune.data.base import Sample
from audioprune.metrics.relative import loyalty, relative_drop

__all__ = ["score", "check_requirements", "per_sample_metrics", "relative_drop", "loyalty"]

OPTIONS = {
    "captioning": {"captioning_metrics"},
    "mcq": {"matcher", "normalize", "sbert_model", "extra_matchers"},
    "aqa": {"match"},
    "asr": set(),
    "classification": set(),
    "multilabel": set(),
}


def check_requirements(task: str, **options) -> None:
    """Fail now, before any generation, if scoring `task` with these `options` would fail at
    the end of a run: captioning needs a working `java` (JavaNotFoundError says how to get one)."""
    if task == "captioning":
        from audioprune.metrics.captioning import require_java

        require_java()


def score(task: str, samples: list[Sample], predictions: dict[str, str], **options) -> dict:
    """Metrics for `task` over all `samples`; predictions for unknown ids are an error."""
    if task not in OPTIONS:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(OPTIONS)}")
    unknown_options = set(options) - OPTIONS[task]
    if unknown_options:
        raise ValueError(
            f"unknown metrics option(s) {sorted(unknown_options)} for task {task!r}; "
            f"valid: {sorted(OPTIONS[task]) or 'none'}"
        )
    ids = {s.id for s in samples}
    unknown = [k for k in predictions if k not in ids]
    if unknown:
        raise ValueError(
            f"{len(unknown)} prediction id(s) are not in the dataset, e.g. {unknown[:3]}"
        )
    if task == "captioning":
        from audioprune.metrics.captioning import METRICS, score_captions

        return score_captions(samples, predictions, options.get("captioning_metrics") or METRICS)
    if task == "mcq":
        from audioprune.metrics.mmau import score_mmau

        extra = list(options.pop("extra_matchers", None) or [])
        result = score_mmau(samples, predictions, **options)
        # The paper maps replies to choices with Sentence-BERT; the benchmark's own rule is
        # `official`. `extra_matchers` adds the others' headline numbers under their names.
        for matcher in extra:
            if matcher == result["matcher"]:
                continue
            # Each matcher applies its own normalisation rule.
            other = score_mmau(
                samples, predictions, **{**options, "matcher": matcher, "normalize": None}
            )
            result[matcher] = {k: other[k] for k in ("overall", "sound", "music", "speech")}
            result[matcher]["by_difficulty"] = other["by_difficulty"]
            for key in ("overall_ci95", "by_task", "by_task_ci95", "by_family", "by_family_ci95"):
                if key in other:
                    result[matcher][key] = other[key]
        return result
    if task == "asr":
        from audioprune.metrics.asr import score_asr

        return score_asr(samples, predictions)

    if task in ("classification", "multilabel"):
        from audioprune.metrics import classification

        if task == "classification":
            return classification.score_classification(samples, predictions)
        return classification.score_multilabel(samples, predictions)
    from audioprune.metrics.aqa import score_aqa

    return score_aqa(samples, predictions, **options)


def per_sample_metrics(sample: Sample, prediction: str | None) -> dict:
    """Metrics stored with each prediction record: {"wer", "cer"} (percent) for ASR, else {}."""
    if sample.task != "asr":
        return {}
    from audioprune.metrics.asr import utterance_rates

    return utterance_rates((sample.references or [""])[0], prediction or "")
