"""`python -m audioprune.evaluate`: score saved predictions; bad prediction files fail clearly."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from audioprune.evaluate import main

REPO = Path(__file__).resolve().parents[1]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def mmau_json(path: Path) -> Path:
    items = [
        {"id": "s1", "audio_id": "./test-mini-audios/s1.wav", "question": "?", "choices": ["Man", "Woman", "Child"], "answer": "Woman", "task": "sound", "difficulty": "easy"},
        {"id": "m1", "audio_id": "./test-mini-audios/m1.wav", "question": "?", "choices": ["Jazz", "Rock"], "answer": "Jazz", "task": "music", "difficulty": "hard"},
        {"id": "p1", "audio_id": "./test-mini-audios/p1.wav", "question": "?", "choices": ["calm", "angry", "sad", "happy", "tired"], "answer": "sad", "task": "speech", "difficulty": "medium"},
        {"id": "p2", "audio_id": "./test-mini-audios/p2.wav", "question": "?", "choices": ["one", "two"], "answer": "two", "task": "speech", "difficulty": "medium"},
    ]  # fmt: skip
    path.write_text(json.dumps(items))
    return path


def run_cli(capsys, *argv) -> tuple[int, dict | None, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err


def test_mmau_prints_one_json_object_of_percentages(tmp_path, capsys):
    questions = mmau_json(tmp_path / "mmau-test-mini.json")
    predictions = write_jsonl(
        tmp_path / "p.jsonl",
        [
            {"id": "s1", "prediction": "(B) Woman"},
            {"id": "m1", "prediction": "Rock"},
            {"id": "p1", "prediction": "C"},
        ],
    )
    args = ("mmau", "--predictions", predictions, "--questions", questions, "--matcher")
    code, result, _ = run_cli(
        capsys, *args, "official_normalized", "--items", tmp_path / "items.jsonl"
    )
    assert code == 0
    assert result["overall"] == pytest.approx(50.0)  # s1 and p1 right, m1 wrong, p2 missing
    assert (result["sound"], result["music"], result["speech"]) == (
        pytest.approx(100.0),
        pytest.approx(0.0),
        pytest.approx(50.0),
    )
    assert result["by_difficulty"]["medium"] == pytest.approx(50.0)
    assert result["n"] == 4 and result["missing"] == 1 and result["missing_ids"] == ["p2"]
    assert len(result["source"]["sha256"]) == 64 and result["source"]["version"] == "v05.15.25"
    items = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text().splitlines()]
    assert items[2]["raw"] == "C" and items[2]["normalized"] == "sad"

    code, raw, _ = run_cli(capsys, *args, "official")
    assert raw["speech"] == pytest.approx(0.0)  # the official script would not read the letter "C"


@pytest.mark.parametrize(
    "records, message",
    [
        (
            [{"id": "s1", "prediction": "Man"}, {"id": "zz9", "prediction": "x"}],
            r"p.jsonl: id 'zz9' not found in",
        ),
        (
            [{"id": "s1", "prediction": "Man"}, {"id": "s1", "prediction": "Woman"}],
            r"p.jsonl: duplicate id 's1' on lines 1 and 2",
        ),
        ([{"id": "s1", "text": "Man"}], r"p.jsonl: line 1 needs keys 'id' and 'prediction'"),
    ],
)
def test_bad_prediction_files_are_clear_errors(tmp_path, capsys, records, message):
    import re

    questions = mmau_json(tmp_path / "q.json")
    predictions = write_jsonl(tmp_path / "p.jsonl", records)
    code, _, err = run_cli(capsys, "mmau", "--predictions", predictions, "--questions", questions)
    assert code == 2 and re.search(message, err) and "Traceback" not in err


def test_captions_scores_clotho_references(tmp_path, capsys):
    refs = tmp_path / "clotho_captions_evaluation.csv"
    with open(refs, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name"] + [f"caption_{i}" for i in range(1, 6)])
        writer.writerow(["dog.wav"] + [f"a dog barks loudly {i}" for i in range(5)])
        writer.writerow(["rain.wav"] + [f"rain falls on a roof {i}" for i in range(5)])
    predictions = write_jsonl(
        tmp_path / "p.jsonl", [{"id": "dog.wav", "prediction": "A dog barks."}]
    )
    code, result, _ = run_cli(
        capsys,
        "captions",
        "--predictions",
        predictions,
        "--references",
        refs,
        "--metrics",
        "cider_d",
        "rouge_l",
    )

    from audioprune.metrics import compute_metrics
    from audioprune.records import Sample

    samples = [Sample(id=k, audio_path=None, task="captioning", references=[f"{t} {i}" for i in range(5)]) for k, t in [("dog.wav", "a dog barks loudly"), ("rain.wav", "rain falls on a roof")]]  # fmt: skip
    expected = compute_metrics(
        "captioning",
        samples,
        {"dog.wav": "A dog barks."},
        captioning_metrics=["cider_d", "rouge_l"],
    )
    assert code == 0 and result["cider_d"] == pytest.approx(expected["cider_d"], abs=1e-12)
    assert (
        result["n"] == 2
        and result["missing_ids"] == ["rain.wav"]
        and result["source"]["format"] == "clotho"
    )


def test_captions_without_java_prints_how_to_install_it(tmp_path, capsys, monkeypatch):
    import shutil

    refs = tmp_path / "refs.csv"
    refs.write_text(
        "file_name,caption_1,caption_2,caption_3,caption_4,caption_5\na.wav,x,x,x,x,x\n"
    )
    predictions = write_jsonl(tmp_path / "p.jsonl", [{"id": "a.wav", "prediction": "x"}])
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    code, _, err = run_cli(capsys, "captions", "--predictions", predictions, "--references", refs)
    assert code == 2 and "apt-get install openjdk-17-jre-headless" in err and "Traceback" not in err


def test_aqa_subset_and_ids(tmp_path, capsys):
    answers = tmp_path / "clotho_aqa_test.csv"
    rows = [["a.wav", "Is it loud?", x, "yes"] for x in ("yes", "yes", "yes")]
    rows += [["a.wav", "What animal?", x, "yes"] for x in ("dog", "dog", "cat")]
    with open(answers, "w", newline="", encoding="latin1") as handle:
        csv.writer(handle).writerows([["file_name", "QuestionText", "answer", "confidence"], *rows])
    predictions = write_jsonl(
        tmp_path / "p.jsonl",
        [{"id": "a.wav::0", "prediction": "Yes"}, {"id": "a.wav::1", "prediction": "dog"}],
    )
    code, result, _ = run_cli(capsys, "aqa", "--predictions", predictions, "--answers", answers)
    assert (
        code == 0 and result["n"] == 1 and result["accuracy"] == pytest.approx(100.0)
    )  # unanimous only
    code, result, _ = run_cli(
        capsys, "aqa", "--predictions", predictions, "--answers", answers, "--subset", "majority"
    )
    assert result["n"] == 2 and result["single_word_accuracy"] == pytest.approx(100.0)
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": "a.wav::7", "prediction": "x"}])
    code, _, err = run_cli(capsys, "aqa", "--predictions", bad, "--answers", answers)
    assert code == 2 and "'a.wav::7' not found" in err


def write_run(folder, cider: float, preds: dict, dataset: str = "clotho", ids=None) -> None:
    """A run folder as the runner writes it: predictions.jsonl + metrics.json with its sample set."""
    from audioprune.identity import sample_set

    folder.mkdir()
    write_jsonl(
        folder / "predictions.jsonl", [{"id": i, "prediction": p} for i, p in preds.items()]
    )
    metrics = {
        "metrics": {"cider_d": cider, "n": len(preds)},
        "dataset": {
            "name": dataset,
            "version": "v2.1",
            "task": "captioning",
            "files": {"captions": "ab"},
        },
        "run": {"sample_set": sample_set(list(ids or preds))},
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))


def test_compare_two_run_folders(tmp_path, capsys):
    write_run(tmp_path / "base", 0.40, {"x": "a dog", "y": "rain"})
    write_run(tmp_path / "run", 0.30, {"x": "a dog", "y": "wind"})
    code, result, _ = run_cli(
        capsys, "compare", "--run", tmp_path / "run", "--baseline", tmp_path / "base"
    )
    assert code == 0
    assert result["relative_drop"] == {"cider_d": pytest.approx(-0.25)}
    assert result["loyalty"]["loyalty"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    "baseline, message",
    [
        ({"ids": ["x", "y", "z"]}, r"different sample sets"),  # e.g. a full run vs a smoke run
        ({"dataset": "audiocaps"}, r"different datasets"),
    ],
)
def test_compare_refuses_runs_of_different_datasets_or_sample_sets(
    tmp_path, capsys, baseline, message
):
    """Issue 9 item 3: a relative drop is only computed between runs on the same samples."""
    import re

    write_run(tmp_path / "base", 0.40, {"x": "a dog", "y": "rain"}, **baseline)
    write_run(tmp_path / "run", 0.30, {"x": "a dog", "y": "wind"})
    code, result, err = run_cli(
        capsys, "compare", "--run", tmp_path / "run", "--baseline", tmp_path / "base"
    )
    assert code == 2 and result is None and re.search(message, err), err


@pytest.mark.slow
def test_module_entry_point(tmp_path):
    questions = mmau_json(tmp_path / "q.json")
    predictions = write_jsonl(tmp_path / "p.jsonl", [{"id": "s1", "prediction": "Woman"}])
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-m", "audioprune.evaluate", "mmau", "--predictions", str(predictions), "--questions", str(questions)],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)  # stdout holds exactly one JSON object
    assert result["overall"] == pytest.approx(25.0) and result["sound"] == pytest.approx(100.0)


def test_mmau_cli_official_is_the_raw_rule_by_default(tmp_path, capsys):
    """Issue 9 item 5: `--matcher official` (the default) scores raw replies like evaluation.py;
    `--matcher official_normalized` maps letters to choices first."""
    questions = mmau_json(tmp_path / "mmau-test-mini.json")
    letters = write_jsonl(
        tmp_path / "p.jsonl",
        [{"id": "s1", "prediction": "B"}, {"id": "p1", "prediction": "C"}],
    )
    base = ("mmau", "--predictions", letters, "--questions", questions)
    code, default, _ = run_cli(capsys, *base)
    assert code == 0 and default["overall"] == pytest.approx(0.0)
    code, official, _ = run_cli(capsys, *base, "--matcher", "official")
    assert official["overall"] == pytest.approx(0.0) and official["normalize"] is False
    code, normalized, _ = run_cli(capsys, *base, "--matcher", "official_normalized")
    assert code == 0 and normalized["overall"] == pytest.approx(50.0)  # s1 and p1 of 4


def test_asr_scores_saved_transcripts_against_a_librispeech_folder(tmp_path, capsys):
    """`evaluate asr`: pooled WER/CER of saved predictions against LibriSpeech-layout
    transcripts (no audio needed), after Whisper's normaliser; unknown ids are refused."""
    chapter = tmp_path / "LibriSpeech" / "test-clean" / "61" / "70968"
    chapter.mkdir(parents=True)
    (chapter / "61-70968.trans.txt").write_text(
        "61-70968-0000 HE BEGAN A CONFUSED COMPLAINT\n61-70968-0001 GIVE NOT SO EARNEST A MIND\n"
    )
    preds = write_jsonl(
        tmp_path / "p.jsonl",
        [
            {"id": "61-70968-0000", "prediction": "He began a confused complaint."},
            {"id": "61-70968-0001", "prediction": "give not so honest a mind"},
        ],
    )
    code, out, _ = run_cli(
        capsys, "asr", "--predictions", str(preds), "--references", str(tmp_path)
    )
    assert code == 0
    # 1 substitution over 5 + 6 reference words, pooled
    assert out["wer"] == pytest.approx(100 * 1 / 11)
    assert out["source"]["split"] == "test-clean"
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": "nope", "prediction": "x"}])
    code, _, err = run_cli(capsys, "asr", "--predictions", str(bad), "--references", str(tmp_path))
    assert code == 2 and "nope" in err
