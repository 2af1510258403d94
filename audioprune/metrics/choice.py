"""Multiple-choice accuracy from the LLM's log-likelihood of each choice (choice scoring).

As lm-evaluation-harness scores multiple choice: for each choice, the log-probability of its
tokens after the prompt (the assistant turn's start), summed over the choice's tokens; the
predicted choice is the argmax (ties go to the first choice). Two rules, named apart:

- `accuracy_choice_loglik`: argmax of the summed log-likelihood (lm-eval's `acc`);
- `accuracy_choice_loglik_per_token`: argmax of the mean log-likelihood per choice token
  (length-normalised by tokens; lm-eval's `acc_norm` normalises by bytes instead, so this is
  not that number).

Per-sample values come from the prediction records (`choice_loglik`: [C] summed log-probs,
`choice_tokens`: [C] token counts), written by the ALM loop under `scoring: choice_loglik` or
`choice_loglik_only`. Accuracies are in percent, pooled over items, with 95 % bootstrap
intervals over clips (`audioprune.metrics.bootstrap`), overall and per `task` / `family` /
`difficulty` of the sample metadata. A sample without choice scores counts as wrong.
"""

from __future__ import annotations

from collections import defaultdict

from audioprune.metrics.bootstrap import percent_ci
from audioprune.records import Sample

RULES = {"accuracy_choice_loglik": False, "accuracy_choice_loglik_per_token": True}
GROUPS = ("task", "family", "difficulty")


def pick_choice(logliks: list[float], tokens: list[int], per_token: bool = False) -> int:
    """Index of the most likely choice: argmax of Σ log p (or of Σ log p / tokens), first on ties.

    logliks: [C] summed log-probabilities of each choice's tokens; tokens: [C] token counts (>= 1).
    """
    if not logliks or len(logliks) != len(tokens):
        raise ValueError(
            f"pick_choice: need one log-likelihood and one token count per choice, got "
            f"{len(logliks)} and {len(tokens)}"
        )
    values = [ll / n if per_token else ll for ll, n in zip(logliks, tokens)]
    return max(range(len(values)), key=lambda i: (values[i], -i))


def choice_predictions(samples: list[Sample], records: dict[str, dict]) -> dict[str, str]:
    """{id: the choice text picked by summed log-likelihood} for samples with choice scores
    (the answers of a `choice_loglik_only` run, which has no free reply)."""
    picks = {}
    for sample in samples:
        record = records.get(sample.id) or {}
        if record.get("choice_loglik") is not None and sample.choices:
            pick = pick_choice(record["choice_loglik"], record["choice_tokens"])
            picks[sample.id] = sample.choices[pick]
    return picks


def _accuracy(hits: list[bool]) -> tuple[float | None, dict | None]:
    return (100.0 * sum(hits) / len(hits) if hits else None), percent_ci(hits)


def score_choice_loglik(samples: list[Sample], records: dict[str, dict]) -> dict:
    """Choice-scoring accuracies of `samples` from their prediction records ({id: record}).

    Returns, per rule name R in RULES: R (overall %), R_ci95 ({low, high}), and for each metadata
    key G in GROUPS that the samples carry, R_by_G ({value: %}) and R_by_G_ci95; plus
    n_choice_scored and missing_choice_scores (ids without scores, counted wrong).
    """
    result: dict = {}
    missing = [s.id for s in samples if (records.get(s.id) or {}).get("choice_loglik") is None]
    for rule, per_token in RULES.items():
        hits: list[bool] = []
        by: dict[str, dict[str, list[bool]]] = {g: defaultdict(list) for g in GROUPS}
        for sample in samples:
            if not sample.choices or sample.answer is None:
                raise ValueError(
                    f"sample {sample.id!r} has no choices/answer; choice scoring needs mcq samples"
                )
            record = records.get(sample.id) or {}
            ok = False
            if record.get("choice_loglik") is not None:
                pick = pick_choice(record["choice_loglik"], record["choice_tokens"], per_token)
                ok = sample.choices[pick] == sample.answer
            hits.append(ok)
            for group in GROUPS:
                if sample.meta.get(group) is not None:
                    by[group][str(sample.meta[group])].append(ok)
        result[rule], result[f"{rule}_ci95"] = _accuracy(hits)
        for group, cells in by.items():
            if cells:
                scored = {k: _accuracy(v) for k, v in sorted(cells.items())}
                result[f"{rule}_by_{group}"] = {k: v[0] for k, v in scored.items()}
                result[f"{rule}_by_{group}_ci95"] = {k: v[1] for k, v in scored.items()}
    result["n_choice_scored"] = len(samples) - len(missing)
    result["missing_choice_scores"] = missing
    return result
