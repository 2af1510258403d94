"""ASR scoring (issue 16 §3.3, §3.12): Whisper's standard English normaliser with its
British→American spelling map, and references that normalise to nothing are refused."""

from __future__ import annotations

import hashlib
import json

import pytest

from audioprune.metrics import compute_metrics
from audioprune.metrics.asr import NORMALIZER, SPELLING_MAP, normalize
from audioprune.records import Sample


def test_british_spellings_are_normalised_to_american():
    assert normalize("The colour of the neighbour's organisation") == normalize(
        "the color of the neighbor's organization"
    )
    samples = [Sample("u1", None, "asr", references=["THE COLOUR OF THE SEA"])]
    assert compute_metrics("asr", samples, {"u1": "the color of the sea"})["wer"] == 0.0


def test_the_shipped_map_is_whisper_english_json_with_its_licence():
    data = SPELLING_MAP.read_bytes()
    assert hashlib.sha256(data).hexdigest() == NORMALIZER["english_json_sha256"]
    mapping = json.loads(data)
    assert len(mapping) > 1000 and mapping["colour"] == "color"
    notice = (SPELLING_MAP.parent / "NOTICE").read_text()
    assert "MIT License" in notice and NORMALIZER["english_json_sha256"] in notice
    samples = [Sample("u1", None, "asr", references=["HELLO"])]
    assert compute_metrics("asr", samples, {"u1": "hello"})["normalizer"] == NORMALIZER


def librispeech(root, lines: str):
    import numpy as np
    import soundfile as sf

    chapter = root / "LibriSpeech" / "test-clean" / "1" / "2"
    chapter.mkdir(parents=True)
    for utt in ("1-2-0000", "1-2-0001"):
        sf.write(chapter / f"{utt}.flac", np.zeros(1600), 16000)
    (chapter / "1-2.trans.txt").write_text(lines)
    return root


def test_a_transcript_empty_after_normalisation_is_refused_naming_its_line(tmp_path):
    from audioprune.data import DatasetFormatError, load_dataset

    root = librispeech(tmp_path, "1-2-0000 HELLO WORLD\n1-2-0001 UH HMM\n")
    with pytest.raises(DatasetFormatError, match=r"1-2.trans.txt line 2.*empty after WER"):
        load_dataset("librispeech", root=root, allow_subset=True)
    samples = [Sample("u1", None, "asr", references=["(NOISE)"])]
    with pytest.raises(ValueError, match=r"normalise to nothing.*u1 \('\(NOISE\)'\)"):
        compute_metrics("asr", samples, {"u1": "hello"})  # was scored as 100 % insertions


def test_a_tab_separates_the_utterance_id_from_its_words(tmp_path):
    from audioprune.data import load_dataset

    root = librispeech(tmp_path, "1-2-0000\tHELLO WORLD\n1-2-0001 GOOD\tMORNING\n")
    samples, _ = load_dataset("librispeech", root=root, allow_subset=True)
    assert [s.id for s in samples] == ["1-2-0000", "1-2-0001"]
    assert [s.references for s in samples] == [["HELLO WORLD"], ["GOOD MORNING"]]
    assert all(s.audio_path.is_file() for s in samples)
