"""Text normalisation shared by loaders, prompts and metrics, so they cannot disagree (pure).

- ClothoAQA answers (`normalize_answer`, `BINARY`): the loader groups the annotators' answers
  and picks the subsets after `normalize_answer`; the AQA metric compares reply and reference
  after the same function.
- Multiple-choice replies (`normalize_choice`, `plain_text`, `LETTERS`): `prompts.py` letters
  the choices "(A) x (B) y" with `LETTERS`; `normalize_choice` maps a reply that names a choice
  by letter or text back to the choice's exact text. It exists because the official MMAU
  matcher scores the answer *text*: a bare letter scores ~0 and "(B) text" or "The answer is
  ..." lose points to words shared with other choices (notes/datasets-metrics.md §4.3). The
  metrics map such replies to the bare choice string before matching and keep both the raw
  and the normalised reply.
"""

from __future__ import annotations

import re
import string

LETTERS = string.ascii_uppercase  # choice i of a prompt is lettered LETTERS[i]

# ClothoAQA's yes/no answers: the `non_binary` subset and the metric's binary / single-word split.
BINARY = ("yes", "no")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower-case, drop ASCII punctuation, collapse whitespace ("Yes." -> "yes", "WD-40" -> "wd40")."""
    return re.sub(r"\s+", " ", str(text).lower().translate(_PUNCT)).strip()


def plain_text(text: str) -> str:
    """Lower-case, punctuation to spaces, single spaces: for comparing a reply with a choice."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


# "B", "(B)", "B.", "B)", "[B]" alone.
_LETTER_ONLY = re.compile(r"^\s*[\(\[]?([A-Z])[\)\]]?[.:]?\s*$")
# "(B) text", "[B] text", "B) text", "B. text", "B: text" at the start of the reply.
_LETTER_PREFIX = re.compile(r"^\s*(?:[\(\[]([A-Z])[\)\]]|([A-Z])[\).:])\s*(.*)$", re.S)
# "The answer is ...", "Answer: ...", "the correct option is ..." anywhere in the reply.
_ANSWER_IS = re.compile(r"\b(?:answer|option|choice)\s*(?:is\b|:)\s*(.*)$", re.I | re.S)


def _lettered(text: str, choices: list[str], by_text: dict[str, str]) -> str | None:
    """The choice a letter-style reply names ("B", "(B) text", "B. text"), else None."""

    def letter(ch: str) -> str | None:
        index = LETTERS.find(ch)
        return choices[index] if 0 <= index < len(choices) else None

    match = _LETTER_ONLY.match(text)
    if match and letter(match.group(1)):
        return letter(match.group(1))
    match = _LETTER_PREFIX.match(text)
    if match:
        chosen = letter(match.group(1) or match.group(2))
        rest = plain_text(match.group(3))
        if rest in by_text:
            return by_text[rest]
        # An unbracketed "B." / "B:" is only trusted when the text agrees with the letter:
        # chord names such as "B:maj7/1" also start with a capital and a colon.
        if chosen is not None and (
            match.group(1) or not rest or rest.startswith(plain_text(chosen))
        ):
            return chosen
    return None


def normalize_choice(prediction: str | None, choices: list[str]) -> str:
    """Map a reply that names a choice by letter and/or text to that choice's exact text.

    Handled forms: the choice text itself (any case/punctuation), a bare letter ("B", "(B)",
    "B.", "b"), a lettered reply ("(B) text", "B. text"; when the text names a choice exactly, the
    text wins), and "The answer is <choice text | (B) | B>". A choice text always wins over a
    letter reading (choices like "C" / "D" are note names in MMAU music items). Anything else is
    returned unchanged (stripped) for the matcher to judge.
    `prediction: str`, `choices: [C] str` -> str.
    """
    if prediction is None:
        return ""
    raw = prediction.strip()
    by_text = {plain_text(c): c for c in reversed(choices)}  # the first of repeated choices wins
    if plain_text(raw) in by_text:
        return by_text[plain_text(raw)]
    found = _lettered(raw, choices, by_text)
    if found is None and len(raw) <= 2:  # a lower-case bare letter: "b", "b."
        found = _lettered(raw.upper(), choices, by_text)
    if found is not None:
        return found
    match = _ANSWER_IS.search(raw)
    if match:
        rest = match.group(1).strip()
        if plain_text(rest) in by_text:
            return by_text[plain_text(rest)]
        found = _lettered(rest, choices, by_text)
        if found is not None:
            return found
    return raw
