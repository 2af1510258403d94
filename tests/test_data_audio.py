"""load_audio: mono float32 at the model's rate; missing / unreadable files name the file."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from audioprune.data import AudioLoadError, load_audio
from audioprune.data.audio import probe_audio


def test_resamples_44k_to_16k_and_keeps_the_tone(tmp_path):
    rate, seconds, freq = 44100, 1.0, 440.0
    t = np.arange(int(rate * seconds)) / rate
    path = tmp_path / "tone.wav"
    sf.write(path, 0.5 * np.sin(2 * np.pi * freq * t), rate, subtype="PCM_16")

    wave = load_audio(path, 16000)

    assert wave.dtype == np.float32 and wave.ndim == 1
    assert wave.shape[0] == 16000
    spectrum = np.abs(np.fft.rfft(wave))
    peak_hz = np.argmax(spectrum) * 16000 / wave.shape[0]
    assert abs(peak_hz - freq) <= 1.0
    assert abs(np.sqrt(np.mean(wave[1000:-1000] ** 2)) - 0.5 / np.sqrt(2)) < 0.01


def test_stereo_is_averaged_to_mono_without_resampling(tmp_path):
    left = np.linspace(-0.5, 0.5, 1600, dtype=np.float32)
    right = np.full(1600, 0.25, dtype=np.float32)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")

    wave = load_audio(path, 16000)

    np.testing.assert_allclose(wave, (left + right) / 2, atol=1e-6)


def test_missing_and_unreadable_files_name_the_file(tmp_path):
    missing = tmp_path / "nope.wav"
    with pytest.raises(AudioLoadError, match="nope.wav: audio file not found"):
        load_audio(missing, 16000)

    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00not really a wav file")
    with pytest.raises(AudioLoadError, match="broken.wav: cannot decode audio"):
        load_audio(broken, 16000)
    assert probe_audio(broken).startswith("cannot decode")
    assert probe_audio(missing) == "missing"

    with pytest.raises(AudioLoadError, match="no audio file"):
        load_audio(None, 16000)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_audio_is_refused_naming_the_file(tmp_path, bad):
    wave = np.zeros(16000, dtype=np.float32)
    wave[8000] = bad
    path = tmp_path / "damaged.wav"
    sf.write(path, wave, 16000, subtype="FLOAT")
    with pytest.raises(AudioLoadError, match=r"damaged.wav: audio holds 1 non-finite .* 0.500 s"):
        load_audio(path, 16000)


def test_too_short_audio_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "blip.wav"
    sf.write(path, np.full(1, 0.1, dtype=np.float32), 16000, subtype="FLOAT")
    with pytest.raises(
        AudioLoadError, match=r"blip.wav: audio too short: 1 samples .* at least 321"
    ):
        load_audio(path, 16000, min_samples=321)
    assert load_audio(path, 16000).shape == (1,)  # no minimum asked: a valid one-sample file
