"""Audio and file I/O: `load_audio` is the one place audio is read.

soundfile decodes, channels are averaged to mono and the signal is resampled with a polyphase
filter (`scipy.signal.resample_poly`) to the rate the model's feature extractor expects, so
every model sees the same 16 kHz signal for a given 44.1 kHz Clotho file. `probe_audio` says
why a file cannot be read; `sha256_file` hashes metadata files and model weights. The loaders'
row bookkeeping (`on_error`, `missing_audio`, CSV and Hugging Face rows) is in
`audioprune.data.rows`.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

from audioprune.errors import InputError


class AudioLoadError(InputError):
    """An audio file is missing or cannot be decoded; the message names the file."""


# ----------------------------------------------------------------------------------------------
# Audio


def load_audio(path: str | Path | None, sampling_rate: int, min_samples: int = 1) -> np.ndarray:
    """Read `path` as float32 mono at `sampling_rate` Hz.

    Returns `[T] float32`. Multi-channel files are averaged to mono; other rates are resampled
    with `resample_poly(up, down)` where up/down is the reduced ratio of the two rates.
    Raises `AudioLoadError` naming the file when it is missing, unreadable or empty, when it holds
    NaN or infinite samples (they would flow through the encoder as NaN scores and be "answered"),
    or when it is shorter than `min_samples` after resampling (the model's minimum for one audio
    token, `AudioLMAdapter.min_samples`).
    """
    import soundfile as sf
    from scipy.signal import resample_poly

    if path is None:
        raise AudioLoadError(
            "sample has no audio file (its clip was missing when the dataset was loaded)"
        )
    path = Path(path)
    if sampling_rate <= 0:
        raise ValueError(f"sampling_rate must be a positive integer, got {sampling_rate!r}")
    if not path.is_file():
        raise AudioLoadError(f"{path}: audio file not found")
    try:
        wave, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        raise AudioLoadError(f"{path}: cannot decode audio ({type(err).__name__}: {err})") from err
    if wave.shape[0] == 0:
        raise AudioLoadError(f"{path}: audio file has no samples")
    finite = np.isfinite(wave)
    if not finite.all():
        bad = int((~finite).sum())
        first = int(np.argwhere(~finite)[0][0])
        raise AudioLoadError(
            f"{path}: audio holds {bad} non-finite (NaN or infinite) sample value(s), the first "
            f"at {first / rate:.3f} s; the file is damaged"
        )
    mono = wave.mean(axis=1) if wave.shape[1] > 1 else wave[:, 0]
    if rate != sampling_rate:
        g = math.gcd(int(rate), int(sampling_rate))
        mono = resample_poly(mono, sampling_rate // g, int(rate) // g)
    if mono.shape[0] < min_samples:
        raise AudioLoadError(
            f"{path}: audio too short: {mono.shape[0]} samples ({_ms(mono.shape[0], sampling_rate)}) "
            f"at {sampling_rate} Hz; the model needs at least {min_samples} samples "
            f"({_ms(min_samples, sampling_rate)}) to give one audio token"
        )
    return np.ascontiguousarray(mono, dtype=np.float32)


def _ms(samples: int, rate: int) -> str:
    return f"{1000 * samples / rate:.3g} ms"


def probe_audio(path: str | Path) -> str | None:
    """Why `path` cannot be used as audio ("missing" or a decode reason), or None if it can.

    Reads the header only, so probing a whole dataset is cheap.
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        return "missing"
    try:
        info = sf.info(str(path))
    except Exception as err:
        return f"cannot decode audio ({type(err).__name__}: {err})"
    if info.frames == 0:
        return "audio file has no samples"
    return None


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
