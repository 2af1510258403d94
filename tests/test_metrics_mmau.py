"""MMAU scoring: the official matcher item by item, reply normalisation, grouping, sbert.

The fixture is MMAU-shaped (repeated choices, choices sharing words, choices with the same token
set, 2-, 4- and 5-choice items). Our matcher is checked against an independent restatement of
the published `string_match` rule and against expectations worked out by hand.
"""

from __future__ import annotations

import re

import pytest

from audioprune.metrics import compute_metrics
from audioprune.metrics.mmau import item_results, official_match
from audioprune.prompts import format_choices, render_prompt
from audioprune.records import Sample
from audioprune.text_normalization import normalize_choice


def restated_rule(answer: str, reply: str, choices: list[str]) -> bool:
    """Sakshi113/MMAU evaluation.py `string_match`, re-read from notes §4.3 and written plainly."""

    def words(text):
        found = []
        for token in re.findall(r"\b\w+\b", text.lower()):
            if token not in found:
                found.append(token)
        return found

    reply_words = words(reply)
    if len(reply_words) == 0:
        return False
    answer_words = words(answer)
    forbidden = []
    for choice in choices:
        choice_words = words(choice)
        if sorted(choice_words) == sorted(answer_words):
            continue
        forbidden += [w for w in choice_words if w not in answer_words]
    has_all = all(w in reply_words for w in answer_words)
    has_wrong = any(w in forbidden for w in reply_words)
    return has_all and not has_wrong


ITEMS = [
    # (id, task, difficulty, choices, answer)
    ("rep", "sound", "easy", ["four", "nine", "fourteen", "fourteen"], "fourteen"),
    ("shared", "sound", "medium", ["A dog barking", "A cat meowing", "A dog growling", "Rain"], "A dog barking"),
    ("two", "speech", "hard", ["yes", "no"], "no"),
    ("same_tokens", "speech", "medium",
     ["first: neutral, second: frustration", "first: frustration, second: neutral", "first: joy, second: anger",
      "first: anger, second: joy", "first: neutral, second: joy"], "first: neutral, second: frustration"),
    ("music", "music", "hard", ["Jazz", "Rock", "Pop", "Folk"], "Folk"),
]  # fmt: skip


def samples() -> list[Sample]:
    return [
        Sample(id=i, audio_path=None, task="mcq", question=f"Q {i}?", choices=c, answer=a, meta={"task": t, "difficulty": d, "sub-category": "x"})
        for i, t, d, c, a in ITEMS
    ]  # fmt: skip


def reply_forms(choices: list[str], answer: str) -> list[str]:
    letter = "ABCDEFGH"[choices.index(answer)]
    wrong = next(c for c in choices if c != answer)
    return [
        answer,
        f"({letter}) {answer}",
        f"The answer is {answer}.",
        letter,
        f"It could be {answer} or {wrong}.",
        "",
        answer.upper() + "!!",
        wrong,
    ]


@pytest.mark.parametrize("item", ITEMS, ids=[i[0] for i in ITEMS])
def test_official_matcher_agrees_with_the_published_rule_for_many_reply_forms(item):
    _, _, _, choices, answer = item
    for reply in reply_forms(choices, answer):
        assert official_match(answer, reply, choices) == restated_rule(answer, reply, choices), (
            reply
        )
        normalized = normalize_choice(reply, choices)
        assert official_match(answer, normalized, choices) == restated_rule(
            answer, normalized, choices
        )


@pytest.mark.parametrize(
    "choices, answer, reply, expected",
    [
        (["four", "nine", "fourteen", "fourteen"], "fourteen", "fourteen", True),
        (["four", "nine", "fourteen", "fourteen"], "fourteen", "four", False),
        # "d" is not a token of any choice, so this letter prefix does not hurt
        (["four", "nine", "fourteen", "fourteen"], "fourteen", "(D) fourteen", True),
        # every answer token is required, even "a"
        (["A dog barking", "A cat meowing", "A dog growling", "Rain"], "A dog barking", "dog barking", False),
        (["A dog barking", "A cat meowing", "A dog growling", "Rain"], "A dog barking", "The answer is a dog barking.", True),
        (["A dog barking", "A cat meowing", "A dog growling", "Rain"], "A dog barking", "A dog barking, not a cat", False),
        (["yes", "no"], "no", "No.", True),
        (["yes", "no"], "no", "B", False),  # a bare letter is not the answer text
        (["yes", "no"], "no", "no, not yes", False),
        (["yes", "no"], "no", "", False),
        # a choice with the same token set as the answer cannot be told apart: it is accepted
        (["first: neutral, second: frustration", "first: frustration, second: neutral", "first: joy, second: anger"],
         "first: neutral, second: frustration", "first: frustration, second: neutral", True),
        (["Jazz", "Rock", "Pop", "Folk"], "Folk", "The answer is Folk.", True),
        (["Jazz", "Rock", "Pop", "Folk"], "Folk", "I think it is Folk or Pop", False),
    ],
)  # fmt: skip
def test_official_matcher_hand_worked(choices, answer, reply, expected):
    assert official_match(answer, reply, choices) is expected


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("B", "Rock"),
        ("b.", "Rock"),
        ("(C)", "Pop"),
        ("(B) Rock", "Rock"),
        ("B. Rock", "Rock"),
        ("(A) Rock", "Rock"),  # the text names a choice exactly: the text wins
        ("The answer is (D).", "Folk"),
        ("Answer: D", "Folk"),
        ("The answer is Folk.", "Folk"),
        ("  rock. ", "Rock"),
        ("E", "E"),  # no fifth choice: unchanged
        ("The answer is a rock song", "The answer is a rock song"),  # "a" is not a letter here
        ("A rock band plays", "A rock band plays"),
        (None, ""),
    ],
)
def test_normalize_choice(reply, expected):
    assert normalize_choice(reply, ["Jazz", "Rock", "Pop", "Folk"]) == expected


def test_normalize_prefers_choice_text_over_letters_for_note_names():
    notes = ["G", "A#", "D", "E"]
    assert normalize_choice("The answer is D.", notes) == "D"
    assert normalize_choice("D", notes) == "D"
    chords = ["B:maj7/1", "A#:hdim7(11)/1", "E:(1,5)/1"]
    assert normalize_choice("The answer is B:maj7/1.", chords) == "B:maj7/1"


def test_render_prompt_fills_question_and_choices():
    sample = samples()[2]
    text = render_prompt('{question} Options: {choices}. Reply as JSON {"a": 1}', sample)
    assert text == 'Q two? Options: (A) yes (B) no. Reply as JSON {"a": 1}'
    assert format_choices(["x", "y", "z"]) == "(A) x (B) y (C) z"
    with pytest.raises(ValueError, match="has no choices"):
        render_prompt("{choices}", Sample(id="c", audio_path=None, task="captioning"))


def test_accuracy_per_task_and_difficulty_with_missing_predictions():
    predictions = {
        "rep": "fourteen",  # correct (sound, easy)
        "shared": "(C) A dog growling",  # wrong (sound, medium)
        "two": "B",  # correct after normalisation (speech, hard)
        # "same_tokens" missing -> wrong (speech, medium)
        "music": "The answer is Folk.",  # correct (music, hard)
    }
    result = compute_metrics("mcq", samples(), predictions, matcher="official_normalized")

    assert result["overall"] == pytest.approx(300 / 5)
    assert result["sound"] == pytest.approx(50.0)
    assert result["speech"] == pytest.approx(50.0)
    assert result["music"] == pytest.approx(100.0)
    assert result["by_difficulty"] == pytest.approx({"easy": 100.0, "medium": 0.0, "hard": 100.0})
    assert list(result["by_difficulty"]) == ["easy", "medium", "hard"]
    assert result["n"] == 5 and result["missing"] == 1 and result["missing_ids"] == ["same_tokens"]
    assert result["n_by_task"] == {"sound": 2, "speech": 2, "music": 1}

    raw = compute_metrics("mcq", samples(), predictions, matcher="official")
    assert raw["speech"] == pytest.approx(0.0)  # the bare letter "B" fails the raw rule

    records = item_results(samples(), predictions, "official_normalized")
    two = next(r for r in records if r["id"] == "two")
    assert two["raw"] == "B" and two["normalized"] == "no" and two["correct"] is True


def test_unknown_prediction_ids_and_options_are_errors():
    with pytest.raises(ValueError, match="not in the dataset"):
        compute_metrics("mcq", samples(), {"nope": "x"})
    with pytest.raises(ValueError, match="unknown metrics option"):
        compute_metrics("mcq", samples(), {}, match="official")
    with pytest.raises(ValueError, match="matcher must be one of"):
        compute_metrics("mcq", samples(), {}, matcher="fuzzy")


def test_sbert_matcher_picks_the_most_similar_choice():
    items = [
        Sample(id="1", audio_path=None, task="mcq", question="?", choices=["A dog barking", "Heavy rain falling", "A car engine idling"], answer="A dog barking", meta={"task": "sound", "difficulty": "easy"}),
        Sample(id="2", audio_path=None, task="mcq", question="?", choices=["A dog barking", "Heavy rain falling", "A car engine idling"], answer="Heavy rain falling", meta={"task": "sound", "difficulty": "easy"}),
        Sample(id="3", audio_path=None, task="mcq", question="?", choices=["violin", "drums"], answer="drums", meta={"task": "music", "difficulty": "hard"}),
        Sample(id="4", audio_path=None, task="mcq", question="?", choices=["man", "woman"], answer="woman", meta={"task": "speech", "difficulty": "hard"}),
    ]  # fmt: skip
    predictions = {
        "1": "I can hear a puppy yapping.",
        "2": "It sounds like a downpour on the street.",
        "3": "",
        "4": "B",
    }
    records = item_results(items, predictions, matcher="sbert")
    assert [r["choice"] for r in records] == ["A dog barking", "Heavy rain falling", None, "woman"]
    result = compute_metrics("mcq", items, predictions, matcher="sbert")
    assert result["overall"] == pytest.approx(75.0) and result["music"] == pytest.approx(0.0)
    # The official rule on the same replies: nothing is right (the raw "B" is no answer text);
    # normalised, "B" becomes "woman". The matchers' numbers sit side by side when
    # `extra_matchers` asks for the others.
    both = compute_metrics(
        "mcq", items, predictions, extra_matchers=["official_normalized", "sbert"]
    )
    assert both["overall"] == pytest.approx(0.0) and both["matcher"] == "official"
    assert both["official_normalized"]["overall"] == pytest.approx(25.0)
    assert both["sbert"]["overall"] == pytest.approx(75.0)
    assert both["sbert"]["sound"] == pytest.approx(100.0) and both["sbert"][
        "speech"
    ] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="matcher must be one of"):
        compute_metrics("mcq", items, predictions, extra_matchers=["fuzzy"])


SEVEN_STYLES = {
    # reply -> (official on the raw reply, official_normalized)
    "no": (True, True),  # the answer text
    "B": (False, True),  # a bare letter: no answer token in it
    "(B) no": (True, True),  # "b" is no choice's token, so the raw rule accepts it
    "The answer is no.": (True, True),
    "B.": (False, True),
    "Answer: B": (False, True),
    "yes": (False, False),
}


@pytest.mark.parametrize("reply", list(SEVEN_STYLES))
def test_official_is_the_raw_rule_and_official_normalized_sits_beside_it(reply):
    """Issue 9 item 5: `official` = evaluation.py's rule on the raw reply, by default,
    everywhere; the normalising variant carries its own name."""
    item = [s for s in samples() if s.id == "two"]  # choices yes / no, answer no
    raw_expected, normalized_expected = SEVEN_STYLES[reply]
    assert official_match("no", reply, ["yes", "no"]) is raw_expected
    default = compute_metrics(
        "mcq", item, {"two": reply}
    )  # no options: the dataset default matcher
    official = compute_metrics("mcq", item, {"two": reply}, matcher="official")
    assert default["matcher"] == official["matcher"] == "official"
    assert default["overall"] == official["overall"] == (100.0 if raw_expected else 0.0)
    assert official["normalize"] is False
    normalized = compute_metrics("mcq", item, {"two": reply}, matcher="official_normalized")
    assert normalized["overall"] == (100.0 if normalized_expected else 0.0)
    both = compute_metrics("mcq", item, {"two": reply}, extra_matchers=["official_normalized"])
    assert both["overall"] == official["overall"]
    assert both["official_normalized"]["overall"] == normalized["overall"]


def test_official_refuses_normalisation_and_names_the_variant():
    with pytest.raises(ValueError, match="official_normalized"):
        compute_metrics("mcq", samples(), {"two": "B"}, matcher="official", normalize=True)


def test_shipped_mmau_configs_report_official_raw_with_the_variants_beside_it():
    from audioprune.config import compose

    for dataset in ("mmau_test_mini", "synthetic_mmau"):
        metrics = compose([f"dataset={dataset}"]).dataset.metrics
        assert metrics.matcher == "official" and "normalize" not in metrics
        assert "official_normalized" in metrics.extra_matchers
    assert "sbert" in compose(["dataset=mmau_test_mini"]).dataset.metrics.extra_matchers
