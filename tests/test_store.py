"""Prediction store: append-only JSONL that survives a crash mid-line."""

from __future__ import annotations

import json
import logging

from audioprune.store import PredictionStore, atomic_write_json, read_jsonl


def test_append_and_reload(tmp_path):
    path = tmp_path / "run" / "predictions.jsonl"
    store = PredictionStore(path)
    store.append({"id": "a", "prediction": "x"})
    store.append({"id": "b", "prediction": "y"})
    again = PredictionStore(path)
    assert set(again.records) == {"a", "b"}
    assert again.records["b"]["prediction"] == "y"


def test_truncated_last_line_is_dropped_with_warning_and_repaired(tmp_path, caplog):
    path = tmp_path / "predictions.jsonl"
    path.write_text(json.dumps({"id": "a", "prediction": "x"}) + "\n" + '{"id": "b", "predic')
    with caplog.at_level(logging.WARNING):
        store = PredictionStore(path)
    assert set(store.records) == {"a"}
    assert str(path) in caplog.text and "line 2" in caplog.text
    # the damaged tail is gone, so the next append starts on a clean line
    store.append({"id": "b", "prediction": "y"})
    assert [r["id"] for r in read_jsonl(path)] == ["a", "b"]


def test_atomic_write_leaves_no_temp_files(tmp_path):
    atomic_write_json(tmp_path / "m.json", {"a": 1})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_whole_file_writes_get_the_same_mode_as_appended_predictions(tmp_path):
    """Issue 9 item 18: metrics.json / config.yaml were 0600 while predictions were 0644."""
    import os

    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "metrics.json", {"a": 1})
        PredictionStore(tmp_path / "predictions.jsonl").append({"id": "x", "prediction": "y"})
    finally:
        os.umask(old)
    assert (tmp_path / "metrics.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "predictions.jsonl").stat().st_mode & 0o777 == 0o644
