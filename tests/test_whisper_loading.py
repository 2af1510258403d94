"""Whisper loads through the ALM adapters' one loading path (issue 16 §2.7), a damaged converted
folder is detected and rebuilt (§3.10), and clips shorter than one encoder frame are refused
(§3.13)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from audioprune.models.ct2_whisper import converted_folder_problem, ensure_converted
from audioprune.models.source import ModelSourceError
from tests._whisper import tiny_hf_whisper, write_tiny_ct2_folder


@pytest.fixture(scope="module")
def ct2_folder(tmp_path_factory):
    return write_tiny_ct2_folder(tmp_path_factory.mktemp("ct2") / "tiny", tiny_hf_whisper())


def truncate(folder):
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def not_json(folder):
    (folder / "conversion.json").write_text("{not json")


def no_config(folder):
    (folder / "config.json").unlink()


@pytest.mark.parametrize(
    ("damage", "named"),
    [(truncate, "model.safetensors"), (not_json, "conversion.json"), (no_config, "config.json")],
)
def test_a_damaged_converted_folder_is_named_and_rebuilt(
    tmp_path, ct2_folder, caplog, damage, named
):
    from transformers import WhisperForConditionalGeneration

    dest = ensure_converted(ct2_folder, tmp_path / "converted")
    assert converted_folder_problem(dest) is None
    damage(dest)
    assert named in converted_folder_problem(dest)
    with caplog.at_level(logging.WARNING):
        ensure_converted(ct2_folder, dest)
    assert str(dest) in caplog.text and named in caplog.text and "rebuilding" in caplog.text
    assert converted_folder_problem(dest) is None
    WhisperForConditionalGeneration.from_pretrained(dest)  # loads again


def test_whisper_loads_through_the_shared_path(tmp_path, ct2_folder):
    from audioprune.models.whisper import WhisperAdapter

    with pytest.raises(ModelSourceError, match="model.pretrained=.*does not exist"):
        WhisperAdapter(pretrained=str(tmp_path / "nowhere"))
    adapter = WhisperAdapter(pretrained=str(tmp_path / "w"), convert_from=str(ct2_folder))
    # The encoder-cache fingerprint holds the hub revision like every other ALM adapter's.
    adapter.model.config._commit_hash = "0123abcd"
    adapter._fingerprint = None
    assert "|rev=0123abcd|" in adapter.fingerprint() and "padding=keep" in adapter.fingerprint()
    # A clip shorter than one encoder frame (20 ms, 320 samples) is refused, as documented.
    assert adapter.min_samples == 321
    with pytest.raises(ValueError, match="clip 0 \\(200 samples\\) is too short"):
        adapter.encode([np.zeros(200, dtype=np.float32)])
    assert adapter.encode([np.zeros(321, dtype=np.float32)])[0].num_tokens >= 1
