"""The paper's fbank input (128 mel bins, 25 ms / 10 ms, per-dataset μ/σ, fixed length) through
transformers' `ASTFeatureExtractor` (its numpy path; torchaudio is not a dependency).

Two padding conventions (notes §2 "Features"):
- `zero` (HF): pad the log-mel with 0, then normalise — padding becomes (0 − μ)/(2σ) > 0;
- `min` (the authors' kaldi pipeline): subtract the waveform mean, pad with the clip's minimum
  log-mel value, then normalise — padding is the quietest value of the clip.
Both normalise as (x − μ) / (2σ).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

PADDINGS = ("zero", "min")
WINDOW, HOP = 400, 160  # 25 ms / 10 ms at 16 kHz (kaldi snip_edges framing)


@dataclass
class FbankSpec:
    """frames: target length T (1024 AS/VoxCeleb, 512 ESC-50, 128 SPC-2); mean/std: dataset
    statistics (notes §2 table); padding: "zero" | "min"."""

    frames: int = 1024
    mel_bins: int = 128
    mean: float = -4.2677393
    std: float = 4.5689974
    padding: str = "zero"
    sampling_rate: int = 16_000

    def __post_init__(self) -> None:
        if self.padding not in PADDINGS:
            raise ValueError(
                f"features.padding must be one of {', '.join(PADDINGS)}, got {self.padding!r}"
            )
        if self.frames < 16 or self.mel_bins < 16:
            raise ValueError(
                f"features.frames and features.mel_bins must be >= 16, got {self.frames}, {self.mel_bins}"
            )


class Fbank:
    """waveforms (mono float32 at 16 kHz) -> normalised fbank [B, T, F] float32."""

    def __init__(self, spec: FbankSpec):
        from transformers import ASTFeatureExtractor

        self.spec = spec
        with warnings.catch_warnings():
            # 128 kaldi mel filters over 257 FFT bins leave the lowest filters empty; kaldi's
            # fbank (and so the paper) has the same filters, so the warning says nothing new.
            warnings.filterwarnings("ignore", message="At least one mel filter has all zero")
            self.extractor = ASTFeatureExtractor(
                sampling_rate=spec.sampling_rate,
                num_mel_bins=spec.mel_bins,
                max_length=spec.frames,
                do_normalize=False,
            )

    def real_frames(self, num_samples: int) -> int:
        """Frames computed from the waveform before padding (kaldi framing, no centring)."""
        return max(0, min(self.spec.frames, 1 + (num_samples - WINDOW) // HOP))

    def __call__(self, waveforms: list[np.ndarray]) -> torch.Tensor:
        out = []
        for wave in waveforms:
            wave = np.asarray(wave, dtype=np.float32)
            if self.spec.padding == "min":
                wave = wave - wave.mean()
            raw = self.extractor(wave, sampling_rate=self.spec.sampling_rate)["input_values"][0]
            raw = np.array(raw, dtype=np.float32)
            real = self.real_frames(len(wave))
            if self.spec.padding == "min" and 0 < real < self.spec.frames:
                raw[real:] = raw[:real].min()
            out.append((raw - self.spec.mean) / (2 * self.spec.std))
        return torch.from_numpy(np.stack(out))
