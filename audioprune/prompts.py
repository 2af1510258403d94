"""Prompt rendering: a model's prompt template filled from a sample.

Prompt templates live in the model configs (`model.prompts.<task>`); `render_prompt` fills
`{question}` and `{choices}` (rendered "(A) x (B) y"). Only those two placeholders are
replaced, so templates may contain other braces verbatim. The letters are
`text_normalization.LETTERS`, the ones `normalize_choice` reads a reply's letter with.
"""

from __future__ import annotations

from audioprune.records import Sample
from audioprune.text_normalization import LETTERS


def format_choices(choices: list[str], sep: str = " ") -> str:
    """["x", "y"] -> "(A) x (B) y"."""
    if len(choices) > len(LETTERS):
        raise ValueError(f"at most {len(LETTERS)} choices can be lettered, got {len(choices)}")
    return sep.join(f"({LETTERS[i]}) {c}" for i, c in enumerate(choices))


def render_prompt(template: str, sample: Sample) -> str:
    """Fill `{question}` and `{choices}` in `template` from the sample."""
    text = template
    if "{question}" in text:
        if not sample.question:
            raise ValueError(
                f"prompt template uses {{question}} but sample {sample.id!r} has no question"
            )
        text = text.replace("{question}", sample.question)
    if "{choices}" in text:
        if not sample.choices:
            raise ValueError(
                f"prompt template uses {{choices}} but sample {sample.id!r} has no choices"
            )
        text = text.replace("{choices}", format_choices(sample.choices))
    return text
