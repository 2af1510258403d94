"""Long-form audio: the AudioMarathon loader on its two public JSON layouts, the embedded
synthetic long-form dataset (2-10 min, events spread over time), and a multi-window AF3 clip
through the runner with an in-LLM selector and a clip-level budget."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from audioprune.data import DatasetFormatError, load_audio, load_dataset
from audioprune.data.longform import plan, synthesize


def write_task(root, items, name="metadata.json"):
    (root / "audio").mkdir(parents=True, exist_ok=True)
    sf.write(root / "audio" / "a.wav", np.zeros(16000, dtype=np.float32), 16000)
    (root / name).write_text(json.dumps(items))


def test_audiomarathon_list_layout_maps_letters_to_choice_texts(tmp_path):
    item = {"path": "audio/a.wav", "question": "Genre?", "answer_gt": "B"}
    item |= {"choice_a": "Blues", "choice_b": "Jazz", "choice_c": "Rock", "choice_d": "Pop"}
    write_task(tmp_path, [item, item | {"answer_gt": "Rock"}])
    samples, info = load_dataset(
        "audiomarathon", root=tmp_path, task_name="GTZAN", category="music"
    )
    assert [s.answer for s in samples] == ["Jazz", "Rock"]
    assert samples[0].choices == ["Blues", "Jazz", "Rock", "Pop"]
    assert [s.id for s in samples] == ["0:audio/a.wav", "1:audio/a.wav"]
    assert samples[0].audio_path == tmp_path / "audio" / "a.wav"
    assert samples[0].meta["task"] == "music" and info.extra["task_name"] == "GTZAN"
    assert len(info.files["metadata"]) == 64


def test_audiomarathon_tasks_layout_and_bad_answers_name_the_item(tmp_path):
    item = {"path": "a.wav", "question": "Event?", "choices": {"A": "Dog", "B": "Car"}}
    write_task(tmp_path, {"tasks": [item | {"answer_gt": "(b)"}]}, "desed.json")
    samples, _ = load_dataset(
        "audiomarathon", root=tmp_path, metadata_file="desed.json", audio_dir="audio"
    )
    assert samples[0].answer == "Car" and samples[0].audio_path == tmp_path / "audio" / "a.wav"
    write_task(tmp_path, [item | {"answer_gt": "E"}], "bad.json")
    with pytest.raises(DatasetFormatError, match=r"bad.json.*item 0.*answer_gt"):
        load_dataset("audiomarathon", root=tmp_path, metadata_file="bad.json", audio_dir="audio")
    with pytest.raises(DatasetFormatError, match="metadata JSON not found"):
        load_dataset("audiomarathon", root=tmp_path / "nowhere")


def test_long_form_plan_spans_2_to_10_minutes_with_events_spread_over_time():
    clips = plan(5, 0, 120.0, 600.0)
    assert [c["duration"] for c in clips] == [120.0, 240.0, 360.0, 480.0, 600.0]
    count = next(c for c in clips if c["kind"] == "count")
    count = count | {"duration": 120.0}
    wave = synthesize(count)
    assert wave.shape == (120 * 16000,)
    # Beeps are the loud parts: one per period, evenly over the whole clip.
    loud = np.abs(wave) > 0.3
    onsets = np.flatnonzero(loud[1:] & ~loud[:-1]) / 16000
    starts = onsets[np.insert(np.diff(onsets) > 1.0, 0, True)]
    period = 120.0 / count["count"]
    assert len(starts) == count["count"]
    np.testing.assert_allclose(starts, (np.arange(count["count"]) + 0.5) * period, atol=0.01)


def test_synthetic_long_form_dataset_is_read_by_the_audiomarathon_loader(tmp_path):
    samples, info = load_dataset(
        "synthetic_longform", root=tmp_path, num_clips=2, min_seconds=120, max_seconds=150
    )
    assert info.num_samples == 2 and all(s.answer in s.choices for s in samples)
    assert [round(len(load_audio(s.audio_path, 16000)) / 16000) for s in samples] == [120, 150]


@pytest.mark.slow
def test_multi_window_clip_runs_fastv_under_a_global_budget(compose_cfg, fresh_runner):
    result = fresh_runner.run(
        compose_cfg(
            "model=tiny_audio_flamingo_3",
            "dataset=synthetic_longform",
            "dataset.args.num_clips=1",
            "dataset.args.min_seconds=65",
            "dataset.args.max_seconds=65",
            "selector=fastv",
            "selector.layer=1",
            "budget=global",
            "retention=0.1",
        )
    )
    (record,) = [
        json.loads(x) for x in (result.run_dir / "predictions.jsonl").read_text().splitlines()
    ]
    assert record["audio_tokens"] == 2 * 750 + 125  # 65 s: three 30 s windows
    assert record["kept_tokens"] == int(0.1 * record["audio_tokens"]) == 162
    # One budget for the clip: FastV decides how many tokens each window keeps.
    assert len(record["kept_per_window"]) == 3 and sum(record["kept_per_window"]) == 162
    assert len(set(record["kept_per_window"])) > 1
    assert record["llm_prefill_lengths"][1] == record["llm_prefill_lengths"][0] - 1625 + 162
