"""Pruned vs unpruned: relative drop per metric and loyalty (agreement with the unpruned run).

relative_drop = (pruned - unpruned) / unpruned for every numeric metric both runs report
(nested groups such as `by_difficulty` included), so -0.05 means 5 % worse. Counts (`n`,
`missing`, `correct`, `n_*`) and confidence intervals (`*_ci95`) are not metrics and are left
out; a zero baseline gives None.

loyalty = share (0-1) of samples whose answer equals the unpruned run's answer: for MMAU the
choice the reply names (via `normalize_choice`, else the single choice the official matcher
accepts, else the reply's plain text), for ClothoAQA the normalised answer, for captions the
exact (whitespace-stripped) string. Samples the unpruned run has no answer for are left out;
a sample the pruned run misses counts as disloyal.
"""

from __future__ import annotations

from audioprune.metrics.mmau import official_match
from audioprune.records import Sample
from audioprune.text_normalization import normalize_answer, normalize_choice, plain_text

COUNT_KEYS = {"n", "missing", "correct", "missing_ids"}


def _is_count(key: str) -> bool:
    # Confidence intervals (`*_ci95`) are not metrics either: their drop means nothing.
    return key in COUNT_KEYS or key.startswith("n_") or key.endswith("_ci95")


def relative_drop(pruned: dict, unpruned: dict) -> dict:
    """{metric: (p - u) / u} over the numeric metrics both dicts hold; recurses into sub-dicts."""
    out: dict = {}
    for key, base in unpruned.items():
        if _is_count(str(key)) or key not in pruned:
            continue
        value = pruned[key]
        if isinstance(base, dict) and isinstance(value, dict):
            nested = relative_drop(value, base)
            if nested:
                out[key] = nested
        elif (
            isinstance(base, int | float)
            and isinstance(value, int | float)
            and not isinstance(base, bool)
        ):
            out[key] = None if base == 0 else (float(value) - float(base)) / float(base)
    return out


def resolve_choice(prediction: str, choices: list[str]) -> str | None:
    """The choice text a reply names, or None when it names none or several."""
    normalized = normalize_choice(prediction, choices)
    if normalized in choices:
        return normalized
    accepted = {c for c in choices if official_match(c, normalized, choices)}
    return accepted.pop() if len(accepted) == 1 else None


def answer_key(sample: Sample, prediction: str) -> tuple[str, str]:
    """What two runs' replies are compared by (see the module docstring)."""
    if sample.task == "mcq" and sample.choices:
        choice = resolve_choice(prediction, sample.choices)
        if choice is not None:
            return ("choice", choice)
        return ("text", plain_text(prediction))
    if sample.task == "aqa":
        return ("answer", normalize_answer(prediction))
    return ("text", prediction.strip())


def loyalty(samples: list[Sample], pruned: dict[str, str], unpruned: dict[str, str]) -> dict:
    """{loyalty: 0-1, n: samples with an unpruned answer, agree, missing: pruned misses}."""
    agree = total = missing = 0
    for sample in samples:
        base = unpruned.get(sample.id)
        if base is None:
            continue
        total += 1
        value = pruned.get(sample.id)
        if value is None:
            missing += 1
            continue
        agree += int(answer_key(sample, str(value)) == answer_key(sample, str(base)))
    return {
        "loyalty": agree / total if total else None,
        "n": total,
        "agree": agree,
        "missing": missing,
    }
