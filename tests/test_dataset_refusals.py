"""Dataset input a new user gets wrong (issue 16 §3.2, §3.5): AudioMarathon choice letters stay
bound to their texts, and an empty evaluation set is an error naming the dataset and filter."""

from __future__ import annotations

import json

import pytest

from audioprune.data import DatasetFormatError, load_dataset


def write_task(root, items, name="metadata.json"):
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(json.dumps(items))


def test_audiomarathon_choice_letters_with_a_gap_are_refused(tmp_path):
    item = {"path": "a.wav", "question": "Genre?", "answer_gt": "C"}
    item |= {"choice_a": "Blues", "choice_c": "Rock", "choice_d": "Pop"}  # no choice_b
    write_task(tmp_path, [item])
    # Before: choices [Blues, Rock, Pop] and "C" -> Pop, choice_d's text.
    with pytest.raises(DatasetFormatError, match=r"item 0.*choice letters A, C, D leave a gap"):
        load_dataset("audiomarathon", root=tmp_path, missing_audio="ignore")


def test_audiomarathon_letters_map_to_their_own_choice(tmp_path):
    item = {"path": "a.wav", "question": "Event?", "choices": {"B": "Car", "A": "Dog", "C": "Cat"}}
    write_task(tmp_path, [item | {"answer_gt": "b"}, item | {"answer_gt": "Cat"}])
    samples, _ = load_dataset("audiomarathon", root=tmp_path, missing_audio="ignore")
    assert samples[0].choices == ["Dog", "Car", "Cat"]
    assert [s.answer for s in samples] == ["Car", "Cat"]


def test_an_empty_audiomarathon_task_is_refused(tmp_path):
    write_task(tmp_path, [])
    with pytest.raises(DatasetFormatError, match=r"AudioMarathon.*no samples.*metadata.json"):
        load_dataset("audiomarathon", root=tmp_path, display_name="AudioMarathon")


def test_an_esc50_fold_without_rows_is_refused_naming_the_fold(tmp_path):
    (tmp_path / "meta").mkdir()
    rows = [f"1-{i}.wav,1,{i % 2},{'dog' if i % 2 == 0 else 'rain'},False,x,A" for i in range(4)]
    header = "filename,fold,target,category,esc10,src_file,take"
    (tmp_path / "meta" / "esc50.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    with pytest.raises(DatasetFormatError, match=r"ESC-50.*no samples.*fold=3.*split=test"):
        load_dataset("esc50", root=tmp_path, fold=3, expected_count=4, missing_audio="ignore")
