"""Loaders against small fixtures written in each benchmark's official layout (in tmp_path).

Covers: Clotho v2.1 (CSV + evaluation/), AudioCaps v1 (test.csv + audio named by YouTube id),
ClothoAQA (3 answers per question, subsets), MMAU (JSON + audio_id paths, version/sha256),
reading through the `datasets` API, bad rows / unreadable audio / missing audio policies, and
that every shipped configs/dataset/*.yaml resolves to arguments its loader accepts.
"""

from __future__ import annotations

import csv
import hashlib
import inspect
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioprune.data import LOADERS, AudioLoadError, DatasetFormatError, load_dataset
from audioprune.text_normalization import normalize_answer

REPO = Path(__file__).resolve().parents[1]


def write_wav(path: Path, seconds: float = 0.05, rate: int = 44100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, 0.1 * np.sin(2 * np.pi * 440 * t), rate, subtype="PCM_16")
    return path


def write_csv(
    path: Path, header: list[str], rows: list[list[str]], encoding: str = "utf-8"
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding=encoding) as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


CLOTHO_HEADER = ["file_name"] + [f"caption_{i}" for i in range(1, 6)]


def make_clotho(root: Path, names=("a b.wav", "rain.wav", "dog.wav"), audio=True) -> Path:
    rows = [[n] + [f"{n} caption number {i}, with a comma" for i in range(1, 6)] for n in names]
    write_csv(root / "clotho_captions_evaluation.csv", CLOTHO_HEADER, rows)
    if audio:
        for n in names:
            write_wav(root / "evaluation" / n)
    return root


# ---------------------------------------------------------------------------------------------
# Clotho


def test_clotho_reads_official_layout_and_checks_the_count(tmp_path):
    make_clotho(tmp_path)
    samples, info = load_dataset("clotho", root=str(tmp_path), expected_count=3)

    assert [s.id for s in samples] == ["a b.wav", "rain.wav", "dog.wav"]
    assert samples[1].audio_path == tmp_path / "evaluation" / "rain.wav"
    assert samples[1].references[0] == "rain.wav caption number 1, with a comma"
    assert all(len(s.references) == 5 and s.task == "captioning" for s in samples)
    sha = hashlib.sha256((tmp_path / "clotho_captions_evaluation.csv").read_bytes()).hexdigest()
    assert info.files == {"captions": sha} and info.version == "v2.1" and info.num_samples == 3

    with pytest.raises(DatasetFormatError, match=r"found 3 clips, expected 1045.*allow_subset"):
        load_dataset("clotho", root=str(tmp_path))
    assert len(load_dataset("clotho", root=str(tmp_path), allow_subset=True)[0]) == 3


def test_clotho_malformed_rows_name_file_and_line_or_are_skipped(tmp_path):
    make_clotho(tmp_path)
    path = tmp_path / "clotho_captions_evaluation.csv"
    lines = path.read_text().splitlines()
    lines[2] = "rain.wav,only one caption"  # line 3: too few fields
    lines.append(lines[3])  # line 5: duplicate of dog.wav
    path.write_text("\n".join(lines) + "\n")

    with pytest.raises(DatasetFormatError) as err:
        load_dataset("clotho", root=str(tmp_path), allow_subset=True)
    assert "clotho_captions_evaluation.csv: row 3 (id 'rain.wav')" in str(err.value)
    assert "too few fields" in str(err.value)

    samples, info = load_dataset("clotho", root=str(tmp_path), expected_count=4, on_error="skip")
    assert [s.id for s in samples] == ["a b.wav", "dog.wav"]
    assert [(s["row"], s["id"]) for s in info.skipped] == [(3, "rain.wav"), (5, "dog.wav")]
    assert "duplicate file_name" in info.skipped[1]["reason"]


def test_clotho_unreadable_audio_is_an_error_or_a_skip(tmp_path):
    make_clotho(tmp_path)
    (tmp_path / "evaluation" / "rain.wav").write_bytes(b"garbage, not audio")

    with pytest.raises(
        DatasetFormatError, match=r"row 3 \(id 'rain.wav'\).*rain.wav: cannot decode"
    ):
        load_dataset("clotho", root=str(tmp_path), expected_count=3)
    samples, info = load_dataset("clotho", root=str(tmp_path), expected_count=3, on_error="skip")
    assert [s.id for s in samples] == ["a b.wav", "dog.wav"]
    assert info.skipped[0]["id"] == "rain.wav" and "cannot decode" in info.skipped[0]["reason"]


def test_missing_audio_policies(tmp_path):
    make_clotho(tmp_path)
    (tmp_path / "evaluation" / "dog.wav").unlink()

    with pytest.raises(AudioLoadError, match=r"1 of 3 audio files are missing.*dog.wav"):
        load_dataset("clotho", root=str(tmp_path), expected_count=3)
    with pytest.warns(
        UserWarning, match="DROPPED from the evaluated set and from the reference set"
    ):
        samples, info = load_dataset(
            "clotho", root=str(tmp_path), expected_count=3, missing_audio="drop"
        )
    assert [s.id for s in samples] == ["a b.wav", "rain.wav"] and info.missing_audio == ["dog.wav"]
    with pytest.warns(UserWarning, match="KEPT"):
        samples, info = load_dataset(
            "clotho", root=str(tmp_path), expected_count=3, missing_audio="keep"
        )
    assert [s.audio_path is None for s in samples] == [False, False, True]
    assert info.missing_audio == ["dog.wav"] and info.num_samples == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        samples, info = load_dataset(
            "clotho", root=str(tmp_path), expected_count=3, missing_audio="ignore"
        )
    assert len(samples) == 3 and info.missing_audio == []


# ---------------------------------------------------------------------------------------------
# AudioCaps


def make_audiocaps(root: Path) -> Path:
    clips = [("abcDEF_1234", "30"), ("zz-9_aaBBcc", "0"), ("missing0001", "10")]
    rows, cap_id = [], 1000
    for k in range(5):  # rows of one clip are interleaved with the others, as in test.csv
        for youtube_id, start in clips:
            rows.append([str(cap_id), youtube_id, start, f"caption {k} of {youtube_id}"])
            cap_id += 1
    write_csv(root / "test.csv", ["audiocap_id", "youtube_id", "start_time", "caption"], rows)
    write_wav(root / "audio" / "abcDEF_1234.wav", rate=16000)
    write_wav(root / "audio" / "Yzz-9_aaBBcc_0.wav", rate=16000)
    return root


def test_audiocaps_groups_five_captions_and_reports_missing_clips(tmp_path):
    make_audiocaps(tmp_path)
    with pytest.warns(UserWarning, match=r"1 of 3 clips have no audio.*DROPPED"):
        samples, info = load_dataset("audiocaps", root=str(tmp_path), expected_count=3)

    assert [s.id for s in samples] == ["abcDEF_1234", "zz-9_aaBBcc"]
    assert samples[0].references == [f"caption {k} of abcDEF_1234" for k in range(5)]
    assert samples[1].audio_path.name == "Yzz-9_aaBBcc_0.wav"
    assert samples[0].meta["start_time"] == "30"
    assert info.missing_audio == ["missing0001"] and info.extra["missing_audio_policy"] == "drop"

    with pytest.warns(UserWarning, match="KEPT"):
        samples, info = load_dataset(
            "audiocaps", root=str(tmp_path), expected_count=3, missing_audio="keep"
        )
    assert len(samples) == 3 and samples[2].audio_path is None
    with pytest.raises(DatasetFormatError, match="found 3 clips, expected 975"):
        load_dataset("audiocaps", root=str(tmp_path))


def test_audiocaps_clip_with_wrong_caption_count_is_reported(tmp_path):
    make_audiocaps(tmp_path)
    path = tmp_path / "test.csv"
    lines = path.read_text().splitlines()
    del lines[1]  # first caption of abcDEF_1234
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DatasetFormatError, match=r"test.csv: row \d+ \(id 'abcDEF_1234'\): has 4 captions"
    ):
        load_dataset("audiocaps", root=str(tmp_path), allow_subset=True, missing_audio="ignore")
    samples, info = load_dataset(
        "audiocaps", root=str(tmp_path), expected_count=3, on_error="skip", missing_audio="ignore"
    )
    assert [s.id for s in samples] == ["zz-9_aaBBcc", "missing0001"]
    assert info.skipped[0]["id"] == "abcDEF_1234"


# ---------------------------------------------------------------------------------------------
# ClothoAQA


def make_clotho_aqa(root: Path) -> Path:
    # (file, question, three answers): agreement patterns chosen to separate the subsets.
    questions = [
        ("café.wav", "Is there a dog?", ["yes", "Yes", "yes"]),  # unanimous, binary
        ("café.wav", "What animal is heard?", ["Dog", "dog.", "dog"]),  # unanimous, non-binary
        ("café.wav", "Is it raining?", ["no", "yes", "no"]),  # majority only
        ("rain.wav", "What is falling?", ["rain", "water", "hail"]),  # no majority
        ("rain.wav", "Is it raining?", ["Yes", "yes", "YES"]),  # unanimous, binary
        ("rain.wav", "What covers the roof?", ["tin", "tin", "metal"]),  # majority, non-binary
    ]
    rows = [
        [f, q, a, c] for f, q, answers in questions for a, c in zip(answers, ["yes", "Maybe", "no"])
    ]
    write_csv(
        root / "clotho_aqa_test.csv",
        ["file_name", "QuestionText", "answer", "confidence"],
        rows,
        "latin1",
    )
    write_wav(root / "audio_files" / "café.wav")
    write_wav(root / "audio_files" / "rain.wav")
    return root


@pytest.mark.parametrize(
    "subset, ids",
    [
        (
            "all",
            [
                "café.wav::0",
                "café.wav::1",
                "café.wav::2",
                "rain.wav::0",
                "rain.wav::1",
                "rain.wav::2",
            ],
        ),
        ("unanimous", ["café.wav::0", "café.wav::1", "rain.wav::1"]),
        ("non_binary", ["café.wav::1"]),
        ("majority", ["café.wav::0", "café.wav::1", "café.wav::2", "rain.wav::1", "rain.wav::2"]),
    ],
)
def test_clotho_aqa_subsets_and_ids(tmp_path, subset, ids):
    make_clotho_aqa(tmp_path)
    samples, info = load_dataset("clotho_aqa", root=str(tmp_path), subset=subset)
    assert [s.id for s in samples] == ids
    assert info.extra["subset"] == subset and info.extra["questions_in_file"] == 6
    by_id = {s.id: s for s in samples}
    if "café.wav::1" in by_id:
        assert by_id["café.wav::1"].answer == "dog"
        assert by_id["café.wav::1"].references == ["Dog", "dog.", "dog"]
        assert by_id["café.wav::1"].meta["binary"] is False
    if "café.wav::2" in by_id:
        assert by_id["café.wav::2"].answer == "no" and by_id["café.wav::2"].meta["agreement"] == 2


def test_clotho_aqa_count_mapping_and_bad_groups(tmp_path):
    make_clotho_aqa(tmp_path)
    counts = {"unanimous": 3, "majority": 5}
    assert len(load_dataset("clotho_aqa", root=str(tmp_path), expected_count=counts)[0]) == 3
    with pytest.raises(DatasetFormatError, match="found 5 majority questions, expected 6"):
        load_dataset(
            "clotho_aqa", root=str(tmp_path), subset="majority", expected_count={"majority": 6}
        )

    path = tmp_path / "clotho_aqa_test.csv"
    lines = path.read_text(encoding="latin1").splitlines()
    del lines[2]  # one of the three answers of the first question
    path.write_text("\n".join(lines) + "\n", encoding="latin1")
    with pytest.raises(DatasetFormatError, match=r"row 2 \(id 'café.wav::0'\): has 2 answers"):
        load_dataset("clotho_aqa", root=str(tmp_path))
    samples, info = load_dataset("clotho_aqa", root=str(tmp_path), on_error="skip", subset="all")
    assert len(samples) == 5 and info.skipped[0]["id"] == "café.wav::0"
    assert normalize_answer(" WD-40! ") == "wd40"


@pytest.mark.parametrize("broken", ["empty answers", "too few fields", "two rows only"])
def test_clotho_aqa_ids_do_not_shift_when_a_question_is_skipped(tmp_path, broken):
    """Issue 9 item 6: a question's id is its position among its file's questions in the clean
    file, whatever is skipped, so predictions are scored against the right answers."""
    make_clotho_aqa(tmp_path)
    clean = {s.id: s for s in load_dataset("clotho_aqa", root=str(tmp_path), subset="all")[0]}
    path = tmp_path / "clotho_aqa_test.csv"
    lines = path.read_text(encoding="latin1").splitlines()
    first = lines[1:4]  # the three rows of café.wav's first question
    if broken == "empty answers":
        first = [",".join(line.split(",")[:2] + ["", line.split(",")[3]]) for line in first]
    elif broken == "too few fields":
        first = ["café.wav" for _ in first]
    else:
        first = first[:2]
    path.write_text("\n".join([lines[0], *first, *lines[4:]]) + "\n", encoding="latin1")
    samples, info = load_dataset("clotho_aqa", root=str(tmp_path), on_error="skip", subset="all")
    assert [s.id for s in samples] == [i for i in clean if i != "café.wav::0"]
    for sample in samples:
        assert (sample.question, sample.answer) == (
            clean[sample.id].question,
            clean[sample.id].answer,
        )
    assert [row["id"] for row in info.skipped][:1] in (["café.wav::0"], [None])


# ---------------------------------------------------------------------------------------------
# MMAU


def mmau_items() -> list[dict]:
    base = {
        "dataset": "fixture",
        "split": "test-mini",
        "category": "Reasoning",
        "sub-category": "Counting",
    }
    items = [
        {"id": "q1", "question": "How many?", "choices": ["four", "nine", "fourteen", "fourteen"], "answer": "fourteen", "task": "sound", "difficulty": "easy"},
        {"id": "q2", "question": "Who speaks?", "choices": ["Man", "Woman"], "answer": "Woman", "task": "speech", "difficulty": "hard"},
        {"id": "q3", "question": "Which genre?", "choices": ["Jazz", "Rock", "Pop", "Folk", "Blues"], "answer": "Folk", "task": "music", "difficulty": "medium", "category": ["Reasoning"]},
    ]  # fmt: skip
    return [base | {"audio_id": f"./test-mini-audios/{i['id']}.wav"} | i for i in items]


def make_mmau(root: Path, items: list | None = None) -> Path:
    items = mmau_items() if items is None else items
    (root / "mmau-test-mini.json").write_text(json.dumps(items, indent=2))
    for item in items:
        if isinstance(item, dict) and "id" in item:
            write_wav(root / "test-mini-audios" / f"{item['id']}.wav", rate=16000)
    return root


def test_mmau_reads_json_and_records_sha_and_version(tmp_path, monkeypatch, caplog):
    make_mmau(tmp_path)
    samples, info = load_dataset("mmau", root=str(tmp_path), expected_count=3)

    assert [s.id for s in samples] == ["q1", "q2", "q3"]
    assert samples[0].audio_path == tmp_path / "test-mini-audios" / "q1.wav"
    assert samples[0].choices == ["four", "nine", "fourteen", "fourteen"]
    assert samples[2].meta["task"] == "music" and samples[2].meta["category"] == ["Reasoning"]
    sha = hashlib.sha256((tmp_path / "mmau-test-mini.json").read_bytes()).hexdigest()
    assert info.files == {"questions": sha}
    assert info.version == "v05.15.25" and info.extra["version_verified"] is False
    assert "not a known MMAU release" in caplog.text

    from audioprune.data import mmau

    monkeypatch.setitem(mmau.KNOWN_SHA256, sha, "v05.15.25")
    _, info = load_dataset("mmau", root=str(tmp_path), expected_count=3)
    assert info.extra["version_verified"] is True
    monkeypatch.setitem(mmau.KNOWN_SHA256, sha, "original")
    _, info = load_dataset("mmau", root=str(tmp_path), expected_count=3)
    assert info.version == "original"


def test_mmau_malformed_items_and_json(tmp_path):
    items = mmau_items()
    items[1]["answer"] = "Child"  # not among the choices
    items.append(dict(items[0]))  # duplicate id q1
    make_mmau(tmp_path, items)
    with pytest.raises(
        DatasetFormatError, match=r"mmau-test-mini.json: item 1 \(id 'q2'\).*not one of the choices"
    ):
        load_dataset("mmau", root=str(tmp_path), allow_subset=True)
    samples, info = load_dataset("mmau", root=str(tmp_path), expected_count=4, on_error="skip")
    assert [s.id for s in samples] == ["q1", "q3"]
    assert [(s["row"], s["id"]) for s in info.skipped] == [("item 1", "q2"), ("item 3", "q1")]

    (tmp_path / "mmau-test-mini.json").write_text('[{"id": "q1",\n "question": }]')
    with pytest.raises(DatasetFormatError, match="mmau-test-mini.json: invalid JSON at line 2"):
        load_dataset("mmau", root=str(tmp_path), allow_subset=True)


# ---------------------------------------------------------------------------------------------
# Hugging Face datasets (a local parquet folder shaped like an HF mirror)


def _wav_bytes() -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(800, dtype=np.float32), 16000, format="WAV")
    return buffer.getvalue()


def write_hf_parquet(folder: Path, columns: dict, audio_names: list[str]) -> None:
    """A parquet file whose schema metadata declares an `Audio` feature, as HF mirrors do."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    audio_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    audio = pa.array([{"bytes": _wav_bytes(), "path": n} for n in audio_names], type=audio_type)
    table = pa.table({**columns, "audio": audio})
    features = {k: {"dtype": "string", "_type": "Value"} for k in columns}
    features["audio"] = {"_type": "Audio", "sampling_rate": 16000}
    table = table.replace_schema_metadata(
        {b"huggingface": json.dumps({"info": {"features": features}}).encode()}
    )
    (folder / "data").mkdir(parents=True)
    pq.write_table(table, folder / "data" / "test-00000-of-00001.parquet")


def load_hf_mirror(loader: str, repo: Path, audio_cache: Path, expected_count: int):
    return load_dataset(
        loader,
        hf_name=str(repo),
        hf_split="test",
        expected_count=expected_count,
        hf_audio_cache_dir=str(audio_cache),
    )


def test_hf_name_loads_through_the_datasets_api(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    clotho_repo = tmp_path / "clotho-mirror"
    captions = {f"caption_{i}": [f"one {i}", f"two {i}"] for i in range(1, 6)}
    write_hf_parquet(
        clotho_repo, {"file_name": ["one.wav", "two.wav"], **captions}, ["one.wav", "two.wav"]
    )
    samples, info = load_hf_mirror("clotho", clotho_repo, tmp_path / "audio", expected_count=2)
    assert [s.id for s in samples] == ["one.wav", "two.wav"]
    assert samples[1].references == [f"two {i}" for i in range(1, 6)]
    assert (
        samples[0].audio_path == tmp_path / "audio" / "one.wav" and samples[0].audio_path.is_file()
    )
    assert info.files["hf_name"] == str(clotho_repo) and info.files["hf_fingerprint"]

    mmau_repo = tmp_path / "mmau-mirror"
    columns = {
        "id": ["m1"],
        "question": ["Which?"],
        "choices": [json.dumps(["Jazz", "Rock"])],  # some mirrors store choices as a JSON string
        "answer": ["Rock"],
        "task": ["music"],
        "difficulty": ["easy"],
    }
    write_hf_parquet(mmau_repo, columns, ["m1.wav"])
    samples, _ = load_hf_mirror("mmau", mmau_repo, tmp_path / "a2", expected_count=1)
    assert samples[0].choices == ["Jazz", "Rock"] and samples[0].audio_path.is_file()


# ---------------------------------------------------------------------------------------------
# Shipped configs


DATASET_CONFIGS = sorted((REPO / "configs" / "dataset").glob("*.yaml"))


def test_there_is_a_config_for_every_benchmark():
    names = {p.stem for p in DATASET_CONFIGS}
    assert {
        "clotho_v2",
        "audiocaps",
        "clotho_aqa",
        "clotho_aqa_non_binary",
        "mmau_test_mini",
        "librispeech_test_clean",
        "librispeech_test_other",
    } <= names
    assert {"synthetic_captions", "synthetic_mmau", "synthetic_aqa", "synthetic_speech"} <= names


@pytest.mark.parametrize("path", DATASET_CONFIGS, ids=lambda p: p.stem)
def test_dataset_config_resolves_to_loader_arguments(path, tmp_path):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        composed = compose(config_name=f"dataset/{path.stem}")
    OmegaConf.set_struct(composed, False)
    cfg = OmegaConf.merge(
        composed, {"paths": {"data_root": str(tmp_path), "cache_dir": str(tmp_path)}}
    )
    dataset = OmegaConf.to_container(cfg.dataset, resolve=True)

    assert {"name", "loader", "task", "version", "args", "metrics"} <= set(dataset)
    tasks = ("captioning", "mcq", "aqa", "asr", "classification", "multilabel")
    assert dataset["loader"] in LOADERS and dataset["task"] in tasks
    assert dataset["args"]["version"] == dataset["version"]
    inspect.signature(LOADERS[dataset["loader"]]).bind(**dataset["args"])  # every arg is accepted
    from audioprune.metrics import metric_options

    assert set(dataset["metrics"]) <= metric_options(dataset["task"])
    if dataset["loader"].startswith("synthetic"):  # these need no download: load them for real
        samples, info = load_dataset(dataset["loader"], **dataset["args"])
        assert samples and info.task == dataset["task"] and info.version == dataset["version"]
