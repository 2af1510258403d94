"""Datasets: the loader registry plus the built-in loaders (importing this module registers them).

`load_dataset("clotho", root="data/clotho_v2")` returns (samples, info);
`load_audio(samples[0].audio_path, 16000)` returns the clip as `[T] float32` mono at 16 kHz.
The records a loader returns, `Sample` and `DatasetInfo`, are defined in `audioprune.records`.
"""

from audioprune.data import (  # noqa: F401  (register)
    audiocaps,
    audiomarathon,
    audioset,
    clotho,
    clotho_aqa,
    esc50,
    librispeech,
    longform,
    mmau,
    scenes,
    speech_commands,
    synthetic,
    synthetic_classes,
    voxceleb,
)
from audioprune.data.audio import AudioLoadError, load_audio
from audioprune.data.base import LOADERS, DatasetFormatError, load_dataset, register_loader

__all__ = [
    "LOADERS",
    "AudioLoadError",
    "DatasetFormatError",
    "load_audio",
    "load_dataset",
    "register_loader",
]
