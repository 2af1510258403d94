"""Relative drop against the unpruned run, and loyalty (agreement with its answers)."""

from __future__ import annotations

import pytest

from audioprune.metrics import loyalty, relative_drop
from audioprune.records import Sample


def mmau_metrics(overall: float, sound: float, easy: float, missing: int) -> dict:
    """A run's MMAU metrics: numbers, a nested group with a zero entry, counts and a label."""
    return {
        "overall": overall,
        "sound": sound,
        "by_difficulty": {"easy": easy, "hard": 0.0},
        "n": 10,
        "missing": missing,
        "matcher": "official",
    }


def test_relative_drop_per_metric_nested_and_counts_left_out():
    pruned = mmau_metrics(overall=45.0, sound=50.0, easy=60.0, missing=2)
    unpruned = mmau_metrics(overall=50.0, sound=40.0, easy=80.0, missing=0)
    drop = relative_drop(pruned, unpruned)
    assert drop == {
        "overall": pytest.approx(-0.1),
        "sound": pytest.approx(0.25),
        "by_difficulty": {"easy": pytest.approx(-0.25), "hard": None},
    }
    assert relative_drop({"cider_d": 0.3}, {"cider_d": 0.4})["cider_d"] == pytest.approx(-0.25)


def test_loyalty_compares_choices_not_wording_for_mcq():
    choices = ["Jazz", "Rock", "Pop", "Folk"]
    samples = [
        Sample(id=str(i), audio_path=None, task="mcq", question="?", choices=choices, answer="Folk")
        for i in range(5)
    ]
    unpruned = {"0": "B", "1": "The answer is Pop.", "2": "Folk", "3": "Jazz", "4": "Rock"}
    pruned = {"0": "(B) Rock", "1": "pop", "2": "Jazz", "3": "Jazz"}  # "4" missing
    result = loyalty(samples, pruned, unpruned)
    assert result == {"loyalty": pytest.approx(3 / 5), "n": 5, "agree": 3, "missing": 1}


def test_loyalty_for_captions_is_exact_string_agreement_and_aqa_normalised():
    caps = [Sample(id=k, audio_path=None, task="captioning", references=["x"]) for k in "abc"]
    assert loyalty(
        caps,
        {"a": "a dog barks ", "b": "rain", "c": "x"},
        {"a": "a dog barks", "b": "Rain", "c": "x"},
    )["loyalty"] == pytest.approx(2 / 3)
    qs = [Sample(id=k, audio_path=None, task="aqa", answer="yes") for k in "ab"]
    assert loyalty(qs, {"a": "Yes.", "b": "no"}, {"a": "yes", "b": "yes"})["agree"] == 1
    assert loyalty(qs, {}, {})["loyalty"] is None
