"""ClothoAQA accuracy: normalised exact match, yes/no and single-word apart, missing = wrong."""

from __future__ import annotations

import pytest

from audioprune.metrics import compute_metrics
from audioprune.records import Sample


def question(qid: str, answer: str) -> Sample:
    return Sample(
        id=qid, audio_path=None, task="aqa", question="?", answer=answer, references=[answer] * 3
    )


def test_accuracy_split_into_binary_and_single_word():
    samples = [
        question("f::0", "yes"),
        question("f::1", "no"),
        question("f::2", "dog"),
        question("f::3", "wd-40"),
    ]
    predictions = {
        "f::0": "Yes.",  # correct after normalisation
        "f::1": "yes",  # wrong
        "f::2": " DOG! ",  # correct
        # f::3 missing -> wrong
    }
    result = compute_metrics("aqa", samples, predictions)
    assert result["accuracy"] == pytest.approx(50.0)
    assert result["binary_accuracy"] == pytest.approx(50.0)
    assert result["single_word_accuracy"] == pytest.approx(50.0)
    assert (result["n"], result["n_binary"], result["n_single_word"]) == (4, 2, 2)
    assert result["missing"] == 1 and result["missing_ids"] == ["f::3"]
    assert compute_metrics("aqa", samples, {"f::3": "WD40"})[
        "single_word_accuracy"
    ] == pytest.approx(50.0)


def test_a_sentence_is_not_an_exact_match():
    result = compute_metrics("aqa", [question("q", "dog")], {"q": "It is a dog."})
    assert result["accuracy"] == 0.0


def test_unknown_match_rule_is_an_error():
    with pytest.raises(ValueError, match="aqa match must be one of exact"):
        compute_metrics("aqa", [question("q", "dog")], {}, match="fuzzy")
