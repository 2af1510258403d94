"""Everything a user touches says what is wrong: model source (hub id offline, missing local
folder), a GPU device without CUDA, a missing dataset, text encodings of metadata files."""

from __future__ import annotations

import csv
import json
import socket

import numpy as np
import pytest
import soundfile as sf
import torch

from audioprune.data import DatasetFormatError, load_dataset
from audioprune.models.qwen2_audio import Qwen2AudioAdapter
from audioprune.models.runtime import resolve_device
from audioprune.models.source import ModelSourceError


def test_unreachable_hub_id_fails_fast_naming_the_option(monkeypatch):
    import transformers

    def no_hub(*args, **kwargs):
        raise AssertionError("transformers was asked (and would retry the hub)")

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", no_hub)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelSourceError) as err:
        Qwen2AudioAdapter("someone/not-a-cached-model")
    message = str(err.value)
    assert "model.pretrained='someone/not-a-cached-model'" in message
    assert "HF_HUB_OFFLINE=1" in message and "model.pretrained=/path/to/model" in message
    # No network and no offline flag: one short connection attempt, not transformers' retries.
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)

    def unreachable(*args, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    with pytest.raises(
        ModelSourceError, match=r"no connection to huggingface.co:443 .*unreachable"
    ):
        Qwen2AudioAdapter("someone/not-a-cached-model")


def test_missing_local_folder_says_so(tmp_path):
    for value in (str(tmp_path / "models" / "nope"), "./models/nope", "models/sub/nope"):
        with pytest.raises(ModelSourceError, match=r"local folder .*nope does not exist"):
            Qwen2AudioAdapter(value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelSourceError, match=r"is not a model folder: expected .*config.json"):
        Qwen2AudioAdapter(str(tmp_path / "empty"))


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the message on a machine without CUDA"
)
def test_cuda_device_without_cuda_says_so():
    with pytest.raises(ValueError, match=r"model.device='cuda' but CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match=r"model.device='cuda:1'.*use model.device=cpu"):
        Qwen2AudioAdapter("/nonexistent/model", device="cuda:1")
    assert resolve_device("auto") == torch.device("cpu")


def test_missing_dataset_points_at_data_root(tmp_path):
    from audioprune.config import compose

    cfg = compose([f"paths.data_root={tmp_path / 'data'}", "dataset=clotho_v2"])
    with pytest.raises(DatasetFormatError) as err:
        load_dataset(cfg.dataset.loader, **cfg.dataset.args)
    message = str(err.value)
    assert str(tmp_path / "data" / "clotho_v2" / "clotho_captions_evaluation.csv") in message
    assert "paths.data_root" in message and "$AUDIOPRUNE_DATA" in message
    assert 'README\'s "Data" section' in message
    with pytest.raises(
        DatasetFormatError, match=r"mmau-test-mini.json: questions file not found.*paths.data_root"
    ):
        load_dataset("mmau", root=str(tmp_path / "data" / "mmau"))


def write_clotho(root, encoding: str) -> None:
    (root / "evaluation").mkdir(parents=True)
    sf.write(root / "evaluation" / "a.wav", np.zeros(1600, dtype=np.float32), 16000)
    with open(root / "clotho_captions_evaluation.csv", "w", newline="", encoding=encoding) as fh:
        writer = csv.writer(fh)
        writer.writerow(["file_name", *(f"caption_{i}" for i in range(1, 6))])
        writer.writerow(["a.wav", *(f"a café sound {i}" for i in range(5))])


def test_utf8_bom_in_a_csv_is_accepted(tmp_path):
    write_clotho(tmp_path, "utf-8-sig")  # as Excel saves "CSV UTF-8"
    assert (tmp_path / "clotho_captions_evaluation.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    samples, _ = load_dataset("clotho", root=str(tmp_path), expected_count=1)
    assert [s.id for s in samples] == ["a.wav"] and samples[0].references[0] == "a café sound 0"


def test_non_utf8_mmau_file_is_named(tmp_path):
    items = [{"id": "q1", "question": "Qué?", "choices": ["sí", "no"], "answer": "sí"}]
    (tmp_path / "mmau-test-mini.json").write_bytes(
        json.dumps(items, ensure_ascii=False).encode("latin-1")
    )
    with pytest.raises(DatasetFormatError, match=r"mmau-test-mini.json: not valid UTF-8 text"):
        load_dataset("mmau", root=str(tmp_path))
