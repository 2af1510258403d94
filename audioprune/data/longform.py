"""Embedded long-form dataset: synthetic 2–10 minute clips with events spread over time, written
in AudioMarathon's layout and read by the real `audiomarathon` loader.

Each clip is quiet noise with soft tones scattered over its whole length, plus the events one
question is about:
- `where` clips: one rising chirp in the beginning, middle or end third; "In which part of the
  recording does the rising chirp occur?";
- `count` clips: 2–6 loud beeps spread evenly over the clip; "How many loud beeps ...?".
A selector that keeps tokens from one region only (attention's end-of-sequence bias) loses
these events, which is what long-form pruning has to get right. 16 kHz mono PCM-16 (a 10 min
clip is 19 MB); generated once per (num_clips, seed, durations) under `root`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from audioprune.data.audiomarathon import load_audiomarathon
from audioprune.data.base import register_loader
from audioprune.data.synthetic import build_once
from audioprune.records import DatasetInfo, Sample

GENERATOR_VERSION = "longform-v1"
RATE = 16_000
PARTS = ("the beginning", "the middle", "the end")
METADATA = "longform.json"


def plan(num_clips: int, seed: int, min_seconds: float, max_seconds: float) -> list[dict]:
    """Deterministic clip plan: durations spread evenly over [min, max], kinds alternating."""
    clips = []
    for index in range(num_clips):
        rng = np.random.default_rng([seed, index, 7])
        frac = index / max(1, num_clips - 1)
        duration = round(min_seconds + frac * (max_seconds - min_seconds), 1)
        kind = ("where", "count")[index % 2]
        clips.append(
            {
                "index": index,
                "kind": kind,
                "duration": duration,
                "part": int(rng.integers(0, 3)),
                "count": int(rng.integers(2, 7)),
                "rng_seed": int(rng.integers(0, 2**31 - 1)),
            }
        )
    return clips


def synthesize(clip: dict) -> np.ndarray:
    """`[duration · 16 kHz] float32` waveform of one planned clip."""
    n = int(clip["duration"] * RATE)
    rng = np.random.default_rng(clip["rng_seed"])
    wave = 0.01 * rng.standard_normal(n).astype(np.float32)
    # Soft distractor tones every ~7 s over the whole clip.
    for start in np.arange(1.0, clip["duration"] - 1.0, 7.0):
        a, b = int(start * RATE), int((start + 0.4) * RATE)
        t = np.arange(b - a) / RATE
        wave[a:b] += 0.05 * np.sin(2 * np.pi * float(rng.choice([300, 500, 700])) * t)
    if clip["kind"] == "where":
        third = clip["duration"] / 3
        start = clip["part"] * third + third * float(rng.uniform(0.2, 0.7))
        a, b = int(start * RATE), int((start + 2.0) * RATE)
        t = np.arange(b - a) / RATE
        k = np.log(4000 / 200) / 2.0
        wave[a:b] += 0.5 * np.sin(2 * np.pi * 200 * (np.exp(k * t) - 1) / k)
    else:
        period = clip["duration"] / clip["count"]
        for i in range(clip["count"]):
            a = int((i + 0.5) * period * RATE)
            t = np.arange(int(0.5 * RATE)) / RATE
            wave[a : a + t.size] += 0.5 * np.sin(2 * np.pi * 1000 * t)
    return np.clip(wave, -1.0, 1.0).astype(np.float32)


def question(clip: dict) -> dict:
    """The clip's AudioMarathon-style item (path, question, choice_a..d, answer_gt)."""
    name = f"audio/longform_{clip['index']:03d}_{clip['kind']}.wav"
    if clip["kind"] == "where":
        choices = [*PARTS, "it does not occur"]
        answer = "ABC"[clip["part"]]
        text = "In which part of the recording does the rising chirp occur?"
    else:
        options = sorted({clip["count"], clip["count"] + 1, max(1, clip["count"] - 1), 8})
        options = (options + [9, 10])[:4]
        choices = [str(c) for c in options]
        answer = "ABCD"[options.index(clip["count"])]
        text = "How many loud beeps are there in the recording?"
    item = {"id": f"longform_{clip['index']:03d}", "path": name, "question": text}
    item |= {f"choice_{c}": v for c, v in zip("abcd", choices)}
    return item | {"answer_gt": answer, "duration": clip["duration"]}


def generate_longform(
    root: str | Path, num_clips: int, seed: int, min_seconds: float, max_seconds: float
) -> Path:
    """Write the dataset under `root/<signature>/` once (`build_once`); returns that folder."""
    if num_clips < 1 or not 0 < min_seconds <= max_seconds:
        raise ValueError(
            f"synthetic_longform: need num_clips >= 1 and 0 < min_seconds <= max_seconds, "
            f"got {num_clips}, {min_seconds}, {max_seconds}"
        )
    marker = {"generator": GENERATOR_VERSION, "num_clips": num_clips, "seed": seed}
    marker |= {"min_seconds": min_seconds, "max_seconds": max_seconds}
    folder = Path(root) / f"longform-{num_clips}-{seed}-{min_seconds:g}-{max_seconds:g}"

    def write(tmp: Path) -> None:
        import soundfile as sf

        (tmp / "audio").mkdir(parents=True)
        items = []
        for clip in plan(num_clips, seed, min_seconds, max_seconds):
            item = question(clip)
            sf.write(str(tmp / item["path"]), synthesize(clip), RATE, subtype="PCM_16")
            items.append(item)
        (tmp / METADATA).write_text(json.dumps(items, indent=2) + "\n", encoding="utf-8")

    return build_once(folder, marker, write)


@register_loader("synthetic_longform")
def load_synthetic_longform(
    root: str | Path,
    num_clips: int = 4,
    seed: int = 0,
    min_seconds: float = 120.0,
    max_seconds: float = 600.0,
    display_name: str = "Synthetic long-form",
    version: str = GENERATOR_VERSION,
    **kwargs,
) -> tuple[list[Sample], DatasetInfo]:
    """Generate (once) and read with `load_audiomarathon`; kwargs go to that loader."""
    folder = generate_longform(root, num_clips, seed, float(min_seconds), float(max_seconds))
    kwargs.setdefault("allow_subset", True)
    return load_audiomarathon(
        root=folder,
        metadata_file=METADATA,
        task_name="synthetic_longform",
        category="sound",
        display_name=display_name,
        version=version,
        expected_count=num_clips,
        **kwargs,
    )
