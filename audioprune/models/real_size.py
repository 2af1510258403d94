"""The published Qwen2-Audio-7B-Instruct and Audio Flamingo 3 architectures, with random weights.

Timing and memory do not depend on weight values, so `build_real_size` builds the real
architectures in place (bf16 on a GPU; the `meta` device for counting parameters) from the sizes
of their `config.json` files, through the tiny-model builders (`audioprune.models.tiny`) with the
tiny offline tokenizer: the audio tokens are exactly the model's, the text part of a prompt is a
little longer than with Qwen's tokenizer. Used by `scripts/bench_prefill.py --real-size`,
`scripts/gpu_check.py` and `audioprune.plan` (when no config of the checkpoint is on disk).
"""

from __future__ import annotations

import torch

# Qwen/Qwen2-Audio-7B-Instruct config.json: Whisper-large-v3-shaped encoder, one Linear
# 1280 -> 4096 projector, Qwen-7B LLM (32 KV heads), LM head at every prompt position.
QWEN2_AUDIO_7B = dict(
    audio_d_model=1280, audio_layers=32, audio_heads=20, audio_ffn=5120,
    text_hidden=4096, text_layers=32, text_heads=32, text_kv_heads=32, text_ffn=11008,
    vocab_size=156032, max_position_embeddings=8192,
)  # fmt: skip
# nvidia/audio-flamingo-3-hf: the same encoder shape, projector 1280 -> 3584 -> 3584, Qwen2.5-7B
# LLM (GQA 28 / 4 heads); vocabulary about 151.7k (the LM head runs at the last position only).
AUDIO_FLAMINGO_3 = dict(
    audio_d_model=1280, audio_layers=32, audio_heads=20, audio_ffn=5120,
    text_hidden=3584, text_layers=28, text_heads=28, text_kv_heads=4, text_ffn=18944,
    vocab_size=151700, max_position_embeddings=32768,
)  # fmt: skip
REAL_SIZES = {"qwen2_audio": QWEN2_AUDIO_7B, "audio_flamingo_3": AUDIO_FLAMINGO_3}


def build_real_size(
    kind: str,
    dtype: torch.dtype = torch.bfloat16,
    device: str | torch.device = "cpu",
    seed: int = 0,
    **overrides: int,
):
    """(model, processor) of the real architecture `kind` ("qwen2_audio" or "audio_flamingo_3")
    with random weights (std 0.02), built directly in `dtype` on `device` ("meta": no memory)."""
    from audioprune.models.tiny import tiny_audio_flamingo3, tiny_qwen2_audio

    if kind not in REAL_SIZES:
        raise ValueError(
            f"real-size model kind must be one of {', '.join(REAL_SIZES)}, got {kind!r}"
        )
    sizes = {**REAL_SIZES[kind], **overrides}
    if kind == "qwen2_audio":
        return tiny_qwen2_audio(seed, init_std=0.02, dtype=dtype, device=device, **sizes)
    return tiny_audio_flamingo3(
        seed,
        initializer_range=0.02,
        audio_initializer_range=0.02,
        dtype=dtype,
        device=device,
        **sizes,
    )
