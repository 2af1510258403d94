"""Miniature Qwen2-Audio test helpers: the assembled model built once per test session, where
the `mini_qwen2_audio` config expects it (${paths.cache_dir}/models/mini-qwen2-audio-v1), from
the wheels and the shipped projector."""

from __future__ import annotations

from pathlib import Path

import pytest

from audioprune.config import compose


@pytest.fixture(scope="session", name="mini_dir")
def fixture_mini_dir(session_cache) -> Path:
    """The assembled miniature Qwen2-Audio folder (GGUF dequantised and Whisper converted into
    the session cache on first use; later tests reuse it)."""
    from audioprune.models.mini_alm import ensure_mini_qwen2_audio

    pretrained = compose(
        [f"paths.cache_dir={session_cache}", "model=mini_qwen2_audio"]
    ).model.pretrained
    return ensure_mini_qwen2_audio(pretrained)


@pytest.fixture(scope="session", name="mini_adapter")
def fixture_mini_adapter(mini_dir):
    """The `qwen2_audio` adapter on the assembled folder (float32, CPU), shared by the session."""
    from audioprune.models.qwen2_audio import Qwen2AudioAdapter

    return Qwen2AudioAdapter(str(mini_dir))
