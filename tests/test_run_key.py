"""The run key (issue 16 §2.6, §3.1): everything that determines predictions is in it (the audio
included), nothing runtime-only is."""

from __future__ import annotations

import os
import shutil

import numpy as np
import soundfile as sf

from audioprune import runner
from audioprune.data import load_dataset, register_loader
from audioprune.data.base import DatasetInfo, Sample
from audioprune.options import make_selector


def write_librispeech(root, seed: int) -> None:
    """A 2-utterance LibriSpeech-layout folder; `seed` picks the audio, the text is fixed."""
    chapter = root / "LibriSpeech" / "test-clean" / "1" / "2"
    chapter.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for utt in ("1-2-0000", "1-2-0001"):
        sf.write(chapter / f"{utt}.flac", 0.1 * rng.standard_normal(8000), 16000)
    (chapter / "1-2.trans.txt").write_text("1-2-0000 HELLO WORLD\n1-2-0001 GOOD MORNING\n")


def key_of(cfg, info) -> str:
    selector = make_selector(cfg.selector)
    return runner.identity_hash(runner.run_identity(cfg, info, selector, 0.25))


def test_same_transcripts_over_other_audio_get_another_run_key(tmp_path, compose_cfg):
    for name, seed in (("a", 0), ("b", 1)):
        write_librispeech(tmp_path / name, seed)
    cfg = compose_cfg("model=whisper_tiny_en", "dataset=librispeech_test_clean", "selector=topk")
    keys = {}
    for name in ("a", "b"):
        _, info = load_dataset("librispeech", root=tmp_path / name, allow_subset=True)
        keys[name] = key_of(cfg, info)
    assert keys["a"] != keys["b"]  # same trans.txt, different audio
    # The same audio moved elsewhere (times kept, as cp -p / rsync -a do) keeps its key.
    shutil.copytree(tmp_path / "a", tmp_path / "moved", copy_function=shutil.copy2)
    _, moved = load_dataset("librispeech", root=tmp_path / "moved", allow_subset=True)
    assert key_of(cfg, moved) == keys["a"]
    # Rewriting one file in place (same size, new content) changes it.
    flac = next((tmp_path / "moved").rglob("1-2-0001.flac"))
    other = next((tmp_path / "b").rglob("1-2-0001.flac"))
    stat = flac.stat()
    shutil.copyfile(other, flac)
    os.utime(flac, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even with the old time
    _, edited = load_dataset("librispeech", root=tmp_path / "moved", allow_subset=True)
    assert key_of(cfg, edited) != keys["a"]


@register_loader("_test_user_loader")
def _user_loader(root, **_):
    files = sorted(root.glob("*.wav"))
    samples = [Sample(id=p.stem, audio_path=p, task="classification", answer="x") for p in files]
    return samples, DatasetInfo(name="user", version="1", task="classification")


def test_every_loader_gets_an_audio_fingerprint(tmp_path, compose_cfg):
    """load_dataset fingerprints the audio of any loader, a user's own included."""
    sf.write(tmp_path / "a.wav", np.zeros(1600), 16000)
    _, first = load_dataset("_test_user_loader", root=tmp_path)
    sf.write(tmp_path / "a.wav", np.full(1600, 0.5), 16000)
    _, second = load_dataset("_test_user_loader", root=tmp_path)
    assert first.audio["files"] == 1 and first.audio["sha256"] != second.audio["sha256"]
    cfg = compose_cfg("selector=topk")
    assert key_of(cfg, first) != key_of(cfg, second)
