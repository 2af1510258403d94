"""The embedded synthetic dataset: official layouts, deterministic, atomic, read by real loaders."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioprune.data import load_audio, load_dataset
from audioprune.data.synthetic import KINDS, MARKER, generate_synthetic, plan_clips, synthesize


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    return generate_synthetic(tmp_path_factory.mktemp("synthetic"), num_clips=8, seed=0)


def test_writes_the_three_official_layouts(synthetic):
    with open(synthetic / "clotho_captions_evaluation.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 8 and list(rows[0]) == ["file_name"] + [f"caption_{i}" for i in range(1, 6)]
    assert {r["file_name"].split("_", 2)[2][:-4] for r in rows} == set(KINDS)
    for row in rows:
        info = sf.info(str(synthetic / "evaluation" / row["file_name"]))
        assert info.samplerate == 44100 and info.channels == 1 and 2.0 <= info.duration <= 30.0

    items = json.loads((synthetic / "mmau-test-mini.json").read_text())
    assert len(items) == 8 and {i["task"] for i in items} == {"sound", "music", "speech"}
    assert {len(i["choices"]) for i in items} >= {2, 4, 5}
    for item in items:
        assert item["answer"] in item["choices"] and item["difficulty"] in (
            "easy",
            "medium",
            "hard",
        )
        assert sf.info(str(synthetic / item["audio_id"])).samplerate == 16000

    with open(synthetic / "clotho_aqa_test.csv", newline="", encoding="latin1") as handle:
        aqa = list(csv.DictReader(handle))
    assert len(aqa) == 8 * 6 * 3 and list(aqa[0]) == [
        "file_name",
        "QuestionText",
        "answer",
        "confidence",
    ]


def test_is_deterministic_and_reused(tmp_path, synthetic):
    again = generate_synthetic(tmp_path, num_clips=8, seed=0)
    assert digest(again) == digest(synthetic)
    before = (again / MARKER).stat().st_mtime_ns
    assert generate_synthetic(tmp_path, num_clips=8, seed=0) == again
    assert (again / MARKER).stat().st_mtime_ns == before  # complete folder: nothing rewritten
    other = generate_synthetic(tmp_path, num_clips=3, seed=1)
    assert other != again and len(list((other / "evaluation").iterdir())) == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_refuses_to_write_into_a_partial_folder(tmp_path):
    folder = tmp_path / "clips2-seed0"
    folder.mkdir()
    (folder / "stray.txt").write_text("left over")
    with pytest.raises(ValueError, match=f"exists without {MARKER}"):
        generate_synthetic(tmp_path, num_clips=2, seed=0)


def test_clips_sound_like_their_captions():
    by_kind = {c.kind: c for c in plan_clips(8, 0)}
    tone = synthesize(by_kind["tone"], 16000)
    spectrum = np.abs(np.fft.rfft(tone))
    assert abs(np.argmax(spectrum) * 16000 / tone.size - by_kind["tone"].params["freq"]) < 1.0
    silence = synthesize(by_kind["silence"], 16000)
    assert np.sqrt(np.mean(silence**2)) < 0.01 < np.sqrt(np.mean(tone**2))
    chirp = synthesize(by_kind["chirp"], 16000)
    half = chirp.size // 2
    first, second = (
        np.argmax(np.abs(np.fft.rfft(x))) / x.size for x in (chirp[:half], chirp[half:])
    )
    assert second > first  # pitch rises


def test_synthetic_loaders_delegate_to_the_real_ones(synthetic):
    root = synthetic.parent
    captions, info = load_dataset("synthetic_captions", root=str(root))
    assert len(captions) == 8 and all(len(s.references) == 5 for s in captions)
    assert info.version == "synthetic-v1" and "captions" in info.files
    assert load_audio(captions[0].audio_path, 16000).dtype == np.float32

    mcq, info = load_dataset("synthetic_mmau", root=str(root))
    assert len(mcq) == 8 and info.task == "mcq" and all(s.answer in s.choices for s in mcq)

    counts = {sub: len(load_dataset("synthetic_aqa", root=str(root), subset=sub)[0]) for sub in ("all", "majority", "unanimous", "non_binary")}  # fmt: skip
    assert counts["all"] == 48
    assert counts["all"] > counts["majority"] > counts["unanimous"] > counts["non_binary"] > 0
