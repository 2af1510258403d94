"""Speech with known text (eSpeak NG corpus), the LibriSpeech loader and WER / CER."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import soundfile as sf

from audioprune.data import DatasetFormatError, load_dataset
from audioprune.data.speech import add_noise, generate_speech_corpus, plan_corpus, transcript
from audioprune.metrics import compute_metrics, per_sample_metrics
from audioprune.metrics.asr import normalize
from audioprune.records import Sample


def digest(folder) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in (".flac", ".txt"):
            h.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def corpus(session_cache):
    return generate_speech_corpus(session_cache / "data" / "speech-unit", num_clips=4, seed=5)


def test_corpus_layout_is_librispeech(corpus):
    base = corpus / "LibriSpeech" / "test-clean"
    flacs = sorted(base.glob("*/*/*.flac"))
    assert len(flacs) == 4
    for flac in flacs:
        speaker, chapter = flac.parent.parent.name, flac.parent.name
        assert flac.stem.startswith(f"{speaker}-{chapter}-")
        lines = (flac.parent / f"{speaker}-{chapter}.trans.txt").read_text().splitlines()
        line = next(x for x in lines if x.startswith(flac.stem + " "))
        words = line.split(" ", 1)[1]
        assert words == words.upper() and "." not in words and "," not in words
        audio, rate = sf.read(flac)
        assert rate == 16_000 and audio.ndim == 1
        assert 1.5 < len(audio) / rate < 30.0


def test_corpus_is_deterministic_and_seeded(tmp_path, corpus):
    again = generate_speech_corpus(tmp_path, num_clips=4, seed=5)
    assert digest(again) == digest(corpus)
    assert plan_corpus(4, 6) != plan_corpus(4, 5)


def test_corpus_variety():
    clips = plan_corpus(30, 0, 1, 3)
    assert {len(c.sentences) for c in clips} == {1, 2, 3}
    assert len({c.voice for c in clips}) >= 4 and len({c.rate for c in clips}) >= 3
    assert all(len(set(c.sentences)) == len(c.sentences) for c in clips)


def test_noise_is_added_at_the_requested_snr():
    t = np.arange(48_000) / 16_000
    clean = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    noisy = add_noise(clean, 10.0, np.random.default_rng(1))
    snr = 10 * np.log10(np.mean(clean**2) / np.mean((noisy - clean) ** 2))
    assert abs(snr - 10.0) < 0.2
    assert np.array_equal(noisy, add_noise(clean, 10.0, np.random.default_rng(1)))


def test_librispeech_loader_reads_the_layout(corpus):
    samples, info = load_dataset("librispeech", root=corpus, allow_subset=True)
    assert [s.task for s in samples] == ["asr"] * 4 and info.task == "asr"
    first = samples[0]
    assert first.audio_path.exists() and first.audio_path.suffix == ".flac"
    assert first.references[0] == first.references[0].upper()
    assert first.meta["duration_s"] > 1.0
    assert info.files["transcripts"] and info.extra["split"] == "test-clean"
    with pytest.raises(ValueError, match="2620"):
        load_dataset("librispeech", root=corpus)  # the official count, not a subset


def test_librispeech_loader_errors_name_the_place(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"LibriSpeech/test-other"):
        load_dataset("librispeech", root=tmp_path, split="test-other")
    chapter = tmp_path / "LibriSpeech" / "test-clean" / "12" / "34"
    chapter.mkdir(parents=True)
    sf.write(chapter / "12-34-0000.flac", np.zeros(1600), 16_000)
    (chapter / "12-34.trans.txt").write_text("12-34-0000 HELLO\n99-34-0001 WRONG CHAPTER\n")
    with pytest.raises(DatasetFormatError, match=r"12-34\.trans\.txt line 2.*not in chapter 12/34"):
        load_dataset("librispeech", root=tmp_path, allow_subset=True)
    samples, info = load_dataset(
        "librispeech", root=tmp_path, allow_subset=True, on_error="skip", missing_audio="drop"
    )
    assert [s.id for s in samples] == ["12-34-0000"] and len(info.skipped) == 1


def test_transcript_and_normaliser():
    assert transcript("Can you help me, please? It's late.") == "CAN YOU HELP ME PLEASE IT'S LATE"
    assert normalize("It's twenty minutes, OK?") == normalize("IT IS 20 MINUTES OK")


def test_wer_is_pooled_over_words_after_normalisation():
    samples = [
        Sample(id="a", audio_path=None, task="asr", references=["THE CAT SAT"]),
        Sample(id="b", audio_path=None, task="asr", references=["A B C D E F G H I J"]),
        Sample(id="c", audio_path=None, task="asr", references=["HELLO WORLD"]),
    ]
    preds = {"a": "The cat sat.", "b": "a b c d e f g h i"}  # c missing: 2 deletions
    result = compute_metrics("asr", samples, preds)
    assert result["wer"] == pytest.approx(100 * 3 / 15)  # (0 + 1 + 2) / (3 + 10 + 2)
    assert result["wer_utterance_mean"] == pytest.approx((0 + 10 + 100) / 3)
    assert result["missing"] == 1 and result["reference_words"] == 15
    assert result["cer"] == pytest.approx(100 * (0 + 2 + 11) / (11 + 19 + 11))  # characters
    assert per_sample_metrics(samples[1], preds["b"]) == {
        "wer": 10.0,
        "cer": pytest.approx(200 / 19),
    }
    assert per_sample_metrics(Sample(id="x", audio_path=None, task="captioning"), "x") == {}
