"""ClothoAQA accuracy: exact match after normalisation, yes/no and single-word kept apart.

A reply is correct iff `normalize_answer(reply) == normalize_answer(reference)` (lower-case,
ASCII punctuation removed, whitespace collapsed; "Yes." matches "yes"), the rule lmms-eval uses
with its "answer with a single word" prompt. The reference is the unanimous / majority answer
chosen by the dataset subset. Accuracies are percentages; missing predictions count as wrong.
"""

from __future__ import annotations

from audioprune.records import Sample
from audioprune.text_normalization import BINARY, normalize_answer


def aqa_correct(prediction: str | None, answer: str) -> bool:
    return prediction is not None and normalize_answer(prediction) == normalize_answer(answer)


MATCH_RULES = ("exact",)


def score_aqa(samples: list[Sample], predictions: dict[str, str], match: str = "exact") -> dict:
    """`accuracy` over all questions, `binary_accuracy` (yes/no answers) and
    `single_word_accuracy` (the rest), in percent, with counts and missing predictions.

    match: the comparison rule; only `exact` (normalised exact match) is implemented.
    """
    if match not in MATCH_RULES:
        raise ValueError(f"aqa match must be one of {', '.join(MATCH_RULES)}; got {match!r}")
    hits = {"all": [0, 0], "binary": [0, 0], "single_word": [0, 0]}
    missing = []
    for sample in samples:
        if sample.answer is None:
            raise ValueError(f"sample {sample.id!r} has no reference answer")
        prediction = predictions.get(sample.id)
        if prediction is None:
            missing.append(sample.id)
        correct = aqa_correct(prediction, sample.answer)
        kind = "binary" if normalize_answer(sample.answer) in BINARY else "single_word"
        for key in ("all", kind):
            hits[key][0] += int(correct)
            hits[key][1] += 1

    def percent(key: str) -> float | None:
        right, total = hits[key]
        return 100.0 * right / total if total else None

    return {
        "accuracy": percent("all"),
        "binary_accuracy": percent("binary"),
        "single_word_accuracy": percent("single_word"),
        "n": hits["all"][1],
        "n_binary": hits["binary"][1],
        "n_single_word": hits["single_word"][1],
        "correct": hits["all"][0],
        "missing": len(missing),
        "missing_ids": missing,
        "normalization": "lower-case, ASCII punctuation removed, whitespace collapsed; exact match",
    }
