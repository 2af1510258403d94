"""Dev check: our MMAU `official` matcher on the real test-mini questions, for oracle replies.

    python scripts/check_mmau_matcher.py [--questions $AUDIOPRUNE_DATA/mmau/mmau-test-mini.json]

For every item it builds replies that contain the right answer in several forms and counts how
many the matcher accepts raw (`official`: what the official evaluation.py and the harness's
headline score) and after `normalize_choice` (`official_normalized`, reported beside it). The
published evaluation.py accepts, with the raw official rule, 1000 (bare answer) / 967
("(B) answer") / 907 ("The answer is answer.") / 2 (bare letter). It also re-checks, item by item, that `official_match` agrees with a literal
restatement of the published `string_match`. Needs only the JSON (no audio).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import string
import sys
from pathlib import Path

from audioprune.metrics.mmau import official_match
from audioprune.text_normalization import normalize_choice

# Where `dataset=mmau_test_mini` reads it (docs/datasets.md).
DEFAULT = (
    Path(os.environ.get("AUDIOPRUNE_DATA", Path(__file__).resolve().parents[1] / "data"))
    / "mmau"
    / "mmau-test-mini.json"
)


def published_string_match(answer: str, prediction: str, choices: list[str]) -> bool:
    """The official rule written out step by step, independent of audioprune's code."""

    def tokenize(text):
        return set(re.findall(r"\b\w+\b", text.lower()))

    prediction_tokens = tokenize(prediction)
    answer_tokens = tokenize(answer)
    if not prediction_tokens:
        return False
    incorrect_tokens = set()
    for choice in choices:
        choice_tokens = tokenize(choice)
        if choice_tokens != answer_tokens:
            incorrect_tokens.update(choice_tokens - answer_tokens)
    cond1 = answer_tokens.issubset(prediction_tokens)
    cond2 = prediction_tokens.isdisjoint(incorrect_tokens)
    return cond1 and cond2


def forms(item: dict) -> dict[str, str]:
    answer, choices = item["answer"], item["choices"]
    letter = string.ascii_uppercase[choices.index(answer)]
    other = next((c for c in choices if c != answer), answer)
    return {
        "bare answer": answer,
        "(B) answer": f"({letter}) {answer}",
        "The answer is answer.": f"The answer is {answer}.",
        "letter only": letter,
        "names two choices": f"It is either {answer} or {other}.",
        "empty": "",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", default=str(DEFAULT))
    args = parser.parse_args()
    path = Path(args.questions)
    if not path.is_file():
        print(f"{path} not found; pass --questions", file=sys.stderr)
        return 1
    items = json.loads(path.read_text())
    names = list(forms(items[0]))
    raw = dict.fromkeys(names, 0)
    normalized = dict.fromkeys(names, 0)
    disagreements = 0
    for item in items:
        for name, reply in forms(item).items():
            ours = official_match(item["answer"], reply, item["choices"])
            disagreements += ours != published_string_match(item["answer"], reply, item["choices"])
            raw[name] += ours
            normalized[name] += official_match(
                item["answer"], normalize_choice(reply, item["choices"]), item["choices"]
            )
    print(f"{path}: {len(items)} items")
    print(f"{'reply form':28s} {'official':>15s} {'official_normalized':>20s}")
    for name in names:
        print(f"{name:28s} {raw[name]:>15d} {normalized[name]:>20d}")
    print(f"item-by-item disagreements with the restated published rule: {disagreements}")
    return 0 if disagreements == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
