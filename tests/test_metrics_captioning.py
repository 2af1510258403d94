"""Captioning metrics: equal to a direct pycocoevalcap computation; missing predictions; no Java."""

from __future__ import annotations

import pytest

from audioprune.metrics import compute_metrics
from audioprune.metrics.captioning import JavaNotFoundError, caption_scores
from audioprune.records import Sample

REFERENCES = {
    "dog.wav": [
        "A dog barks loudly several times in a yard.",
        "A dog is barking while cars pass by.",
        "Loud barking from a large dog nearby.",
        "The dog barks twice and then stops.",
        "A dog barking repeatedly outdoors.",
    ],
    "rain.wav": [
        "Heavy rain falls on a tin roof.",
        "Rain pours down steadily on a metal roof.",
        "It is raining hard on the roof.",
        "Water drips and rain patters on a surface.",
        "Steady rainfall hits a metal roof.",
    ],
    "street.wav": [
        "Cars drive by on a busy street.",
        "Traffic passes on a road with people talking.",
        "Vehicles honk and drive past in the city.",
        "A busy road with cars passing quickly.",
        "People talk while traffic goes by.",
    ],
}
PREDICTIONS = {
    "dog.wav": "A dog barks loudly.",
    "rain.wav": "Rain falls on a metal roof.",
    "street.wav": "Cars pass by on a busy road, people talk.",
}


def samples() -> list[Sample]:
    return [
        Sample(id=k, audio_path=None, task="captioning", references=v)
        for k, v in REFERENCES.items()
    ]


def direct_pycocoevalcap(references: dict, predictions: dict) -> dict:
    """The textbook pycocoevalcap recipe, independent of audioprune's code path."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({k: [{"caption": c} for c in v] for k, v in references.items()})
    res = tokenizer.tokenize({k: [{"caption": predictions.get(k, "")}] for k in references})
    return {
        "cider_d": Cider().compute_score(gts, res)[0],
        "bleu_4": Bleu(4).compute_score(gts, res, verbose=0)[0][3],
        "rouge_l": Rouge().compute_score(gts, res)[0],
    }


def test_cider_d_bleu_rouge_equal_direct_pycocoevalcap():
    predictions = dict(PREDICTIONS)
    del predictions["street.wav"]  # missing: scored as an empty caption, kept in the reference set
    ours = compute_metrics(
        "captioning", samples(), predictions, captioning_metrics=["cider_d", "bleu_4", "rouge_l"]
    )
    direct = direct_pycocoevalcap(REFERENCES, predictions)

    for name in ("cider_d", "bleu_4", "rouge_l"):
        assert abs(ours[name] - direct[name]) < 1e-9, name
    assert ours["cider_d"] > 0.5  # the two real predictions overlap their references well
    assert ours["n"] == 3 and ours["missing"] == 1 and ours["missing_ids"] == ["street.wav"]
    assert "meteor" not in ours


def test_all_four_metrics_with_meteor_and_per_clip_scores():
    predictions = dict(PREDICTIONS, **{"street.wav": ""})
    corpus, per_clip = caption_scores(REFERENCES, predictions)
    assert set(corpus) == {"cider_d", "bleu_4", "meteor", "rouge_l"}
    assert all(0.0 <= corpus[k] <= 1.0 for k in ("bleu_4", "meteor", "rouge_l"))
    assert per_clip["street.wav"] == {
        "cider_d": 0.0,
        "bleu_4": pytest.approx(0.0),
        "meteor": 0.0,
        "rouge_l": 0.0,
    }
    assert per_clip["rain.wav"]["meteor"] > 0.2
    # corpus CIDEr-D / METEOR / ROUGE-L are means over clips
    for name in ("cider_d", "rouge_l"):
        assert corpus[name] == pytest.approx(sum(c[name] for c in per_clip.values()) / 3)


def test_missing_java_is_a_clear_error(monkeypatch):
    import shutil

    monkeypatch.setattr(
        shutil, "which", lambda name, *a, **k: None if name == "java" else "/bin/true"
    )
    with pytest.raises(JavaNotFoundError, match=r"apt-get install openjdk-17-jre-headless"):
        compute_metrics("captioning", samples(), PREDICTIONS)


def test_unavailable_and_unknown_metrics():
    with pytest.raises(ValueError, match="spice.*unavailable offline"):
        caption_scores(REFERENCES, PREDICTIONS, ["cider_d", "spice"])
    with pytest.raises(ValueError, match="unknown captioning metric 'cider'"):
        caption_scores(REFERENCES, PREDICTIONS, ["cider"])


@pytest.fixture
def broken_java(tmp_path, monkeypatch):
    """A `java` first on PATH that exits non-zero, as a half-removed JRE does."""
    java = tmp_path / "bin" / "java"
    java.parent.mkdir()
    java.write_text("#!/bin/sh\necho 'Error: could not find libjava.so' >&2\nexit 1\n")
    java.chmod(0o755)
    monkeypatch.setenv("PATH", f"{java.parent}:{__import__('os').environ['PATH']}")
    return java


def test_broken_java_gets_the_java_message(broken_java):
    with pytest.raises(
        JavaNotFoundError, match=r"exited with status 1 \(Error: could not find"
    ) as err:
        compute_metrics("captioning", samples(), PREDICTIONS)
    assert "apt-get install openjdk-17-jre-headless" in str(err.value)


def test_java_is_checked_before_the_model_loads_or_generates(broken_java, compose_cfg, monkeypatch):
    from audioprune import runner

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the Java check")

    monkeypatch.setattr(runner, "get_adapter", no_model)
    cfg = compose_cfg("dataset=synthetic_captions", "dataset.args.num_clips=1")
    with pytest.raises(JavaNotFoundError, match=str(broken_java)):
        runner.run(cfg)


def test_untokenizable_characters_are_summarised_in_one_line(capfd, caplog):
    from audioprune.metrics.captioning import score_captions

    caplog.set_level("INFO", logger="audioprune.metrics.captioning")
    odd = dict(PREDICTIONS, **{"dog.wav": "A dog \x07 barks \x07 loudly \x01."})
    result = score_captions(samples(), odd, ["cider_d"])
    assert "Untokenizable" not in capfd.readouterr().err  # the JVM's warnings are captured
    lines = [r.getMessage() for r in caplog.records if "untokenizable" in r.getMessage()]
    assert lines == [
        "PTB tokenizer dropped untokenizable characters from the captions (first: U+7); "
        "scores ignore them"
    ]
    assert result["ptb_untokenizable"] is True
    clean = score_captions(samples(), PREDICTIONS, ["cider_d"])
    assert clean["ptb_untokenizable"] is False
    assert result["cider_d"] == pytest.approx(clean["cider_d"])  # the characters were dropped
