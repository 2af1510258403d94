"""The embedded classification set: short clips whose class is either *when* something happens
or *what* it sounds like, written in the ESC-50 layout and read by the real `esc50` loader.

Temporal classes share their spectral content and differ only in timing, so a model (or a
pruning selector) that throws away the wrong time columns loses them:
  burst_early / burst_middle / burst_late — one tone burst (random pitch) at a given time;
  low_then_high / high_then_low         — two bursts whose order is the class.
Spectral classes are steady over the whole clip:
  tone_low / tone_high / noise_low / noise_high / harmonic — pitch, band or timbre is the class.
Every clip has random level, jitter and background noise; clips are 1.3 s at 16 kHz (128 fbank
frames, all real). Folds 1..5 cycle over the clips of each class; `fold: 5, split: test` is the
held-out fifth. Deterministic in (clips_per_class, seed); built in a temporary folder and
renamed into place like the other synthetic sets.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from audioprune.data.base import register_loader
from audioprune.data.esc50 import load_esc50
from audioprune.data.synthetic import build_once
from audioprune.records import DatasetInfo, Sample

GENERATOR_VERSION = "synthetic-classes-v1"
RATE = 16_000
SECONDS = 1.3
TEMPORAL = ("burst_early", "burst_middle", "burst_late", "low_then_high", "high_then_low")
SPECTRAL = ("tone_low", "tone_high", "noise_low", "noise_high", "harmonic")
CLASSES = TEMPORAL + SPECTRAL
FOLDS = 5


def _band_noise(rng: np.random.Generator, n: int, low: float, high: float) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    spectrum[(freqs < low) | (freqs > high)] = 0
    wave = np.fft.irfft(spectrum, n)
    return wave / (np.abs(wave).max() + 1e-9)


def synthesize_class(name: str, rng: np.random.Generator) -> np.ndarray:
    """One clip of class `name`: [1.3 s · 16 kHz] float32 in [-1, 1]."""
    n = int(SECONDS * RATE)
    t = np.arange(n) / RATE

    def burst(centre: float, freq: float, length: float = 0.2) -> np.ndarray:
        gate = np.clip(1 - np.abs(t - centre) / (length / 2), 0, None) ** 0.5
        return gate * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))

    jitter = rng.uniform(-0.05, 0.05)
    if name in ("burst_early", "burst_middle", "burst_late"):
        centre = {"burst_early": 0.22, "burst_middle": 0.65, "burst_late": 1.08}[name] + jitter
        wave = burst(centre, rng.uniform(500, 3000))
    elif name in ("low_then_high", "high_then_low"):
        low, high = rng.uniform(300, 800), rng.uniform(1500, 3500)
        first, second = (low, high) if name == "low_then_high" else (high, low)
        wave = burst(0.35 + jitter, first) + burst(0.95 + jitter, second)
    elif name == "tone_low":
        wave = np.sin(2 * np.pi * rng.uniform(200, 400) * t)
    elif name == "tone_high":
        wave = np.sin(2 * np.pi * rng.uniform(2500, 4000) * t)
    elif name == "noise_low":
        wave = _band_noise(rng, n, 100, 900)
    elif name == "noise_high":
        wave = _band_noise(rng, n, 3000, 7000)
    elif name == "harmonic":
        f0 = rng.uniform(150, 300)
        wave = sum(np.sin(2 * np.pi * h * f0 * t) / h for h in range(1, 9)) / 2
    else:
        raise ValueError(f"unknown synthetic class {name!r}; valid: {', '.join(CLASSES)}")
    level = rng.uniform(0.2, 0.6)
    noise = rng.uniform(0.005, 0.03) * rng.standard_normal(n)
    return np.clip(level * wave + noise, -1, 1).astype(np.float32)


def _marker(clips_per_class: int, seed: int) -> dict:
    return {"generator": GENERATOR_VERSION, "clips_per_class": clips_per_class, "seed": seed}


def generate_synthetic_classes(root: str | Path, clips_per_class: int = 40, seed: int = 0) -> Path:
    """Write `root/classes<N>-seed<S>/` (meta/esc50.csv + audio/) once; returns the folder."""
    if clips_per_class < FOLDS:
        raise ValueError(
            f"clips_per_class must be >= {FOLDS} (one per fold), got {clips_per_class}"
        )
    folder = Path(root) / f"classes{clips_per_class}-seed{seed}"
    return build_once(
        folder, _marker(clips_per_class, seed), lambda tmp: _write(tmp, clips_per_class, seed)
    )


def _write(out: Path, clips_per_class: int, seed: int) -> None:
    import soundfile as sf

    (out / "audio").mkdir(parents=True)
    (out / "meta").mkdir()
    with open(out / "meta" / "esc50.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "fold", "target", "category", "esc10", "src_file", "take"])
        for target, name in enumerate(CLASSES):
            for i in range(clips_per_class):
                rng = np.random.default_rng([seed, target, i])
                filename = f"{i % FOLDS + 1}-{target:02d}{i:04d}-A-{target}.wav"
                wave = synthesize_class(name, rng)
                sf.write(str(out / "audio" / filename), wave, RATE, subtype="PCM_16")
                src = f"{target:02d}{i:04d}"
                writer.writerow([filename, i % FOLDS + 1, target, name, False, src, "A"])


@register_loader("synthetic_classes")
def load_synthetic_classes(
    root: str | Path,
    clips_per_class: int = 40,
    seed: int = 0,
    fold: int = 5,
    split: str = "test",
    num_clips: int | None = None,
    display_name: str = "Synthetic classes",
    version: str = GENERATOR_VERSION,
    **kwargs,
) -> tuple[list[Sample], DatasetInfo]:
    """Generate on first use, then read through `load_esc50`. `num_clips`: keep only the first N
    clips of the split (smoke runs; part of the run key like every loader option)."""
    folder = generate_synthetic_classes(root, clips_per_class, seed)
    samples, info = load_esc50(
        root=folder,
        fold=fold,
        split=split,
        display_name=display_name,
        version=version,
        expected_count=clips_per_class * len(CLASSES),
        **kwargs,
    )
    if num_clips is not None:
        if int(num_clips) < 1:
            raise ValueError(f"synthetic_classes: num_clips must be >= 1, got {num_clips!r}")
        samples = samples[: int(num_clips)]
        info.num_samples = len(samples)
        info.extra["num_clips"] = int(num_clips)
    return samples, info
