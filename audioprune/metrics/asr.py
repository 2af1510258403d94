"""ASR: word and character error rate with jiwer after Whisper's English text normaliser.

Both the reference and the hypothesis go through `EnglishTextNormalizer` from transformers'
Whisper module (the normaliser Whisper's tokenizer applies) with Whisper's British→American
spelling map, `english.json` from the openai-whisper package, shipped here as package data
(`whisper_normalizer/`, MIT, source and sha256 in its NOTICE): checkpoints rarely carry it as
normalizer.json, and the CTranslate2 wheel does not. The same map serves every model; metrics
record `normalizer` (`NORMALIZER`). Corpus WER / CER are pooled: total edits over total
reference words (characters), as Whisper's and LibriSpeech's papers report them; the means of
the per-utterance rates stand beside them. Percentages (0-100, > 100 possible with insertions).
A reference that normalises to nothing cannot be scored and is refused.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from audioprune.errors import InputError
from audioprune.records import Sample

SPELLING_MAP = Path(__file__).with_name("whisper_normalizer") / "english.json"
# Recorded in every ASR metrics file: which normaliser and which spelling map scored it.
NORMALIZER = {
    "name": "whisper_english",
    "version": 2,  # 1: transformers' EnglishTextNormalizer without the spelling map
    "english_json": "openai-whisper 20250625 whisper/normalizers/english.json",
    "english_json_sha256": "6607f948be9824d2e1b2fa2223cd94c06c45afa4e05ea0e3d5e1f2bdffde2465",
}


@lru_cache(maxsize=1)
def _normalizer():
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    return EnglishTextNormalizer(json.loads(SPELLING_MAP.read_text(encoding="utf-8")))


def normalize(text: str) -> str:
    """Whisper's English normaliser: lower case, no punctuation, numbers and contractions
    standardised ("three o'clock" -> "3 o'clock"), fillers dropped."""
    return _normalizer()(text or "")


def edit_counts(reference: str, hypothesis: str) -> dict[str, int]:
    """Word and character edits of one utterance after normalisation.

    Returns {"word_edits", "ref_words", "char_edits", "ref_chars"}; an empty normalised
    reference counts its hypothesis words as insertions (jiwer refuses empty references;
    `score_asr` refuses such references before they get here).
    """
    import jiwer

    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        return {
            "word_edits": len(hyp.split()),
            "ref_words": 0,
            "char_edits": len(hyp),
            "ref_chars": 0,
        }
    words = jiwer.process_words(ref, hyp)
    chars = jiwer.process_characters(ref, hyp)
    return {
        "word_edits": words.substitutions + words.deletions + words.insertions,
        "ref_words": words.substitutions + words.deletions + words.hits,
        "char_edits": chars.substitutions + chars.deletions + chars.insertions,
        "ref_chars": chars.substitutions + chars.deletions + chars.hits,
    }


def utterance_rates(reference: str, hypothesis: str) -> dict[str, float | None]:
    """{"wer", "cer"} of one utterance in percent (None for an empty normalised reference)."""
    c = edit_counts(reference, hypothesis)
    return {
        "wer": 100.0 * c["word_edits"] / c["ref_words"] if c["ref_words"] else None,
        "cer": 100.0 * c["char_edits"] / c["ref_chars"] if c["ref_chars"] else None,
    }


def score_asr(samples: list[Sample], predictions: dict[str, str]) -> dict:
    """Pooled WER / CER over every sample (a missing prediction is an empty transcript: all
    deletions) plus per-utterance means; counts of words, characters and missing predictions."""
    empty = [s for s in samples if not normalize((s.references or [""])[0])]
    if empty:
        shown = ", ".join(f"{s.id} ({(s.references or [''])[0]!r})" for s in empty[:3])
        raise InputError(
            f"{len(empty)} ASR reference(s) normalise to nothing and cannot be scored, e.g. "
            f"{shown}; fix or drop those transcript lines"
        )
    totals = {"word_edits": 0, "ref_words": 0, "char_edits": 0, "ref_chars": 0}
    wers, cers = [], []
    missing = 0
    for sample in samples:
        if sample.id not in predictions or predictions[sample.id] is None:
            missing += 1
        reference = (sample.references or [""])[0]
        counts = edit_counts(reference, predictions.get(sample.id) or "")
        for key in totals:
            totals[key] += counts[key]
        if counts["ref_words"]:
            wers.append(100.0 * counts["word_edits"] / counts["ref_words"])
        if counts["ref_chars"]:
            cers.append(100.0 * counts["char_edits"] / counts["ref_chars"])

    def pooled(edits: str, total: str) -> float | None:
        return 100.0 * totals[edits] / totals[total] if totals[total] else None

    return {
        "wer": pooled("word_edits", "ref_words"),
        "cer": pooled("char_edits", "ref_chars"),
        "wer_utterance_mean": sum(wers) / len(wers) if wers else None,
        "cer_utterance_mean": sum(cers) / len(cers) if cers else None,
        "reference_words": totals["ref_words"],
        "reference_chars": totals["ref_chars"],
        "num_samples": len(samples),
        "missing": missing,
        "normalizer": NORMALIZER,
    }
