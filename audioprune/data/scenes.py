"""`synthetic_scenes`: sound scenes with ground truth in time, asked about in MMAU's layout.

Each clip is background noise with short events placed at known times: beeps (three pitches),
chirps rising or falling, noise bursts, click trains and spoken keywords (eSpeak NG through
`audioprune.data.speech`). One multiple-choice question per clip, from one of five families:

    count     How many beeps are in the audio?           one ... five
    order     Which sound comes first?                   the two event classes present
    identify  Which sound is in the audio?               four of the five non-speech classes
    locate    When does the sound occur?                 beginning / middle / end (thirds)
    keyword   Which word is spoken?                      four of the keywords

The folder holds `mmau-test-mini.json` + `test-mini-audios/<id>.wav` (16 kHz), read by the real
`mmau` loader, so the MMAU matchers and per-task accuracy score it: `task` is the family, and
`difficulty` follows the background level (easy / medium / hard). Each JSON item also carries
`family`, `duration` (s) and `events` ([{kind, label, onset, offset}] in seconds, by onset),
copied into `Sample.meta` and, through `Sample.annotations`, into every prediction record.
Every choice of a family starts with its own first word, so a reply's first word decides it.

Everything is a function of the generation arguments (seed, num_clips, durations, families,
...), except that eSpeak NG's keyword audio varies slightly from call to call (times by up to
about 10 ms); the folder is keyed by all of them and built once, atomically (`build_once`).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from audioprune.data.base import register_loader
from audioprune.data.mmau import load_mmau
from audioprune.data.synthetic import build_once
from audioprune.records import DatasetInfo, Sample

GENERATOR_VERSION = "scenes-v1"
RATE = 16_000
FAMILIES = ("count", "order", "identify", "locate", "keyword")
# Non-speech event classes (identify / order / locate) and their answer labels.
CLASSES = {
    "beep": "beep",
    "chirp_up": "rising chirp",
    "chirp_down": "falling chirp",
    "noise_burst": "noise burst",
    "click_train": "click train",
}
BEEP_PITCHES = {"low": 500.0, "mid": 1000.0, "high": 2000.0}
KEYWORDS = ("apple", "river", "yellow", "seven", "window")
NUMBERS = ("one", "two", "three", "four", "five")
THIRDS = ("beginning", "middle", "end")
# Background noise std per difficulty.
BACKGROUND = {"easy": (0.002, 0.006), "medium": (0.006, 0.012), "hard": (0.012, 0.02)}
QUESTIONS = {
    "count": "How many beeps are in the audio?",
    "order": "Which sound comes first?",
    "identify": "Which sound is in the audio?",
    "locate": "When does the sound occur?",
    "keyword": "Which word is spoken?",
}
MIN_GAP = 0.3  # seconds of background between events
_NAMESPACE = uuid.UUID("3d1c8f0e-2b6a-4f7e-9a0c-5e1b7d9c2a44")


@dataclass
class Event:
    """One placed event: `kind` (beep / chirp_up / ... / keyword), its answer `label`, times in
    seconds and how to synthesise it (`params`)."""

    kind: str
    label: str
    onset: float
    offset: float
    params: dict = field(default_factory=dict)

    def record(self) -> dict:
        return {
            "kind": self.kind,
            "label": self.label,
            "onset": round(self.onset, 4),
            "offset": round(self.offset, 4),
        }


@dataclass
class Scene:
    index: int
    family: str
    difficulty: str
    duration: float
    noise_std: float
    events: list[Event]
    question: str
    choices: list[str]
    answer: str
    rng_seed: int


# ---------------------------------------------------------------------------- event sounds


def _ramp(n: int, rate: int = RATE, ms: float = 5.0) -> np.ndarray:
    """Linear 5 ms fade in/out over n samples (no clicks at the edges)."""
    k = max(1, min(n // 2, int(rate * ms / 1000)))
    env = np.ones(n)
    env[:k] = np.linspace(0, 1, k)
    env[n - k :] = np.linspace(1, 0, k)
    return env


def _keyword_wave(word: str, voice: str, rate_wpm: int) -> np.ndarray:
    """The spoken word at 16 kHz, trimmed to where it is audible (|x| > 2 % of its peak)."""
    from scipy.signal import resample_poly

    from audioprune.data.speech import ESpeak

    raw = ESpeak.shared().synthesize(word, voice, rate_wpm).astype(np.float32) / 32768.0
    wave = resample_poly(raw, 320, 441).astype(np.float32)
    loud = np.flatnonzero(np.abs(wave) > 0.02 * float(np.max(np.abs(wave)) or 1.0))
    if loud.size == 0:
        raise RuntimeError(f"eSpeak NG produced silence for {word!r} ({voice}, {rate_wpm} wpm)")
    return wave[loud[0] : loud[-1] + 1]


def event_wave(event: Event) -> np.ndarray:
    """[n] float64 waveform of one event, (offset - onset) * RATE samples long."""
    p = event.params
    n = int(round((event.offset - event.onset) * RATE))
    t = np.arange(n) / RATE
    if event.kind == "beep":
        wave = np.sin(2 * np.pi * p["freq"] * t)
    elif event.kind in ("chirp_up", "chirp_down"):
        f0, f1 = (400.0, 3000.0) if event.kind == "chirp_up" else (3000.0, 400.0)
        k = np.log(f1 / f0) / max(t[-1], 1e-3)
        wave = np.sin(2 * np.pi * f0 * (np.exp(k * t) - 1) / k)
    elif event.kind == "noise_burst":
        wave = np.random.default_rng(p["seed"]).standard_normal(n) * 0.6
    elif event.kind == "click_train":
        wave = np.zeros(n)
        click = np.random.default_rng(p["seed"]).standard_normal(int(0.004 * RATE))
        click *= np.hanning(click.size) * 1.5
        for start in range(0, n - click.size + 1, int(p["period"] * RATE)):
            wave[start : start + click.size] += click
    elif event.kind == "keyword":
        wave = p["wave"].astype(np.float64)  # the planning synthesis (eSpeak NG varies per call)
        return wave / (np.max(np.abs(wave)) or 1.0) * p["amplitude"]
    else:
        raise ValueError(f"unknown event kind {event.kind!r}")
    return wave * _ramp(n) * p["amplitude"]


# ---------------------------------------------------------------------------- planning


def _event(kind: str, rng: np.random.Generator) -> tuple[Event, float]:
    """An unplaced event of `kind` and its length in seconds."""
    amplitude = float(rng.uniform(0.15, 0.45))
    seed = int(rng.integers(2**31 - 1))
    if kind == "beep":
        pitch = str(rng.choice(list(BEEP_PITCHES)))
        length = float(rng.uniform(0.08, 0.2))
        params = {"freq": BEEP_PITCHES[pitch], "pitch": pitch}
    elif kind in ("chirp_up", "chirp_down"):
        length, params = float(rng.uniform(0.25, 0.4)), {}
    elif kind == "noise_burst":
        length, params = float(rng.uniform(0.15, 0.3)), {}
    elif kind == "click_train":
        period = float(rng.uniform(0.03, 0.05))
        clicks = int(rng.integers(5, 9))
        length, params = period * (clicks - 1) + 0.004, {"period": period}
    else:
        raise ValueError(f"unknown event kind {kind!r}")
    label = CLASSES[kind]
    return Event(kind, label, 0.0, length, {**params, "amplitude": amplitude, "seed": seed}), length


def _keyword_event(rng: np.random.Generator) -> tuple[Event, float]:
    from audioprune.data.speech import RATES, VOICES

    word = str(rng.choice(KEYWORDS))
    voice, rate = str(rng.choice(VOICES)), int(rng.choice(RATES))
    # eSpeak NG's output differs slightly from call to call (not seedable through its
    # API), so the wave is synthesised once here and its length sets the event's offset.
    wave = _keyword_wave(word, voice, rate)
    amplitude = float(rng.uniform(0.3, 0.6))
    params = {"word": word, "voice": voice, "rate": rate, "amplitude": amplitude, "wave": wave}
    return Event("keyword", word, 0.0, wave.size / RATE, params), wave.size / RATE


def _place(
    items: list[tuple[Event, float]], duration: float, rng: np.random.Generator, lo=0.0, hi=None
) -> list[Event]:
    """Put the events in [lo, hi) seconds in the given order, MIN_GAP apart, with random slack
    (0.15 s kept clear at the clip's edges); returns them with onset/offset set."""
    lo = max(lo, 0.15)
    hi = min(duration - 0.15 if hi is None else hi, duration - 0.15)
    need = sum(length for _, length in items) + MIN_GAP * (len(items) - 1)
    slack = hi - lo - need
    if slack < 0:
        raise ValueError(f"{len(items)} events ({need:.2f} s) do not fit in {hi - lo:.2f} s")
    # Split the slack into len+1 random parts (before, between and after the events).
    cuts = np.sort(rng.uniform(0, slack, size=len(items)))
    gaps = np.diff(np.concatenate([[0.0], cuts]))
    placed, t = [], lo
    for (event, length), gap in zip(items, gaps):
        t += gap
        event.onset, event.offset = t, t + length
        placed.append(event)
        t += length + MIN_GAP
    return placed


def _fit(items: list[tuple[Event, float]], duration: float) -> float:
    """`duration`, lengthened (to 10 ms) when the events and their gaps would not fit."""
    need = sum(length for _, length in items) + MIN_GAP * (len(items) - 1) + 0.4
    return max(duration, float(np.ceil(need * 100) / 100))


def _shuffled(rng: np.random.Generator, answer: str, pool: list[str], size: int) -> list[str]:
    """`size` choices: the answer plus others drawn from `pool`, in random order."""
    others = [c for c in pool if c != answer]
    picked = [answer] + [others[i] for i in rng.permutation(len(others))[: size - 1]]
    return [picked[i] for i in rng.permutation(len(picked))]


def plan_scene(
    index: int,
    seed: int,
    families: tuple[str, ...],
    min_seconds: float,
    max_seconds: float,
    long_share: float,
    long_max_seconds: float,
) -> Scene:
    """The scene `index` of a dataset: family by turns, everything else from rng([seed, index])."""
    rng = np.random.default_rng([seed, index])
    family = families[index % len(families)]
    if rng.uniform() < long_share:
        duration = float(rng.uniform(max_seconds, long_max_seconds))
    else:
        duration = float(rng.uniform(min_seconds, max_seconds))
    duration = round(duration, 2)
    difficulty = str(rng.choice(list(BACKGROUND)))
    noise_std = float(rng.uniform(*BACKGROUND[difficulty]))
    kinds = list(CLASSES)
    if family == "count":
        count = int(rng.integers(1, 6))
        items = [_event("beep", rng) for _ in range(count)]
        if rng.uniform() < 0.3:  # a non-beep distractor somewhere
            items.insert(int(rng.integers(count + 1)), _event(str(rng.choice(kinds[1:])), rng))
        duration = _fit(items, duration)
        events = _place(items, duration, rng)
        answer, choices = NUMBERS[count - 1], list(NUMBERS)
        choices = [choices[i] for i in rng.permutation(len(choices))]
    elif family == "order":
        first, second = (str(k) for k in rng.choice(kinds, size=2, replace=False))
        events = _place([_event(first, rng), _event(second, rng)], duration, rng)
        answer = CLASSES[first]
        choices = _shuffled(rng, answer, [CLASSES[first], CLASSES[second]], 2)
    elif family == "identify":
        kind = str(rng.choice(kinds))
        events = _place([_event(kind, rng)], duration, rng)
        answer = CLASSES[kind]
        choices = _shuffled(rng, answer, list(CLASSES.values()), 4)
    elif family == "locate":
        kind = str(rng.choice(kinds))
        third = int(rng.integers(3))
        span = duration / 3
        events = _place([_event(kind, rng)], duration, rng, third * span, (third + 1) * span)
        answer, choices = THIRDS[third], list(THIRDS)
    elif family == "keyword":
        item = _keyword_event(rng)
        events = _place([item], duration, rng)
        answer = events[0].label
        choices = _shuffled(rng, answer, list(KEYWORDS), 4)
    else:
        raise ValueError(f"unknown question family {family!r}; valid: {', '.join(FAMILIES)}")
    return Scene(
        index=index,
        family=family,
        difficulty=difficulty,
        duration=duration,
        noise_std=noise_std,
        events=sorted(events, key=lambda e: e.onset),
        question=QUESTIONS[family],
        choices=choices,
        answer=answer,
        rng_seed=int(rng.integers(2**31 - 1)),
    )


def synthesize_scene(scene: Scene) -> np.ndarray:
    """[T] float32 at 16 kHz: background noise plus every event at its samples."""
    n = int(round(scene.duration * RATE))
    wave = np.random.default_rng(scene.rng_seed).standard_normal(n) * scene.noise_std
    for event in scene.events:
        start = int(round(event.onset * RATE))
        sound = event_wave(event)
        wave[start : start + sound.size] += sound[: n - start]
    return np.clip(wave, -1.0, 1.0).astype(np.float32)


# ---------------------------------------------------------------------------- writing


def generation_args(
    seed: int,
    num_clips: int,
    families: list[str] | tuple[str, ...] = FAMILIES,
    min_seconds: float = 3.0,
    max_seconds: float = 10.0,
    long_share: float = 0.2,
    long_max_seconds: float = 30.0,
) -> dict:
    """The checked generation arguments (all of them key the folder)."""
    families = tuple(families)
    unknown = [f for f in families if f not in FAMILIES]
    if not families or unknown:
        raise ValueError(
            f"synthetic_scenes: families must be a non-empty list of {', '.join(FAMILIES)}; "
            f"got {list(families)}"
        )
    if num_clips < 1:
        raise ValueError(f"synthetic_scenes: num_clips must be >= 1, got {num_clips}")
    if not 2.0 <= min_seconds <= max_seconds <= long_max_seconds <= 30.0:
        raise ValueError(
            "synthetic_scenes: expected 2 <= min_seconds <= max_seconds <= long_max_seconds <= 30 "
            f"(one 30 s window per clip); got {min_seconds}, {max_seconds}, {long_max_seconds}"
        )
    if not 0.0 <= long_share <= 1.0:
        raise ValueError(f"synthetic_scenes: long_share must be in [0, 1], got {long_share}")
    return {
        "generator": GENERATOR_VERSION,
        "seed": int(seed),
        "num_clips": int(num_clips),
        "families": list(families),
        "min_seconds": float(min_seconds),
        "max_seconds": float(max_seconds),
        "long_share": float(long_share),
        "long_max_seconds": float(long_max_seconds),
    }


def scenes_folder(root: str | Path, args: dict) -> Path:
    digest = hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()[:12]
    return Path(root) / f"scenes-n{args['num_clips']}-seed{args['seed']}-{digest}"


def plan_scenes(args: dict) -> list[Scene]:
    """Every scene of the dataset described by `generation_args(...)`."""
    families = tuple(args["families"])
    return [
        plan_scene(
            i,
            args["seed"],
            families,
            args["min_seconds"],
            args["max_seconds"],
            args["long_share"],
            args["long_max_seconds"],
        )
        for i in range(args["num_clips"])
    ]


def scene_item(scene: Scene, seed: int) -> dict:
    """The MMAU-layout JSON item of a scene (plus family, duration and events)."""
    item_id = str(uuid.uuid5(_NAMESPACE, f"{seed}-{scene.index}-{scene.family}"))
    return {
        "id": item_id,
        "audio_id": f"./test-mini-audios/{item_id}.wav",
        "question": scene.question,
        "choices": scene.choices,
        "answer": scene.answer,
        "dataset": "synthetic_scenes",
        "task": scene.family,
        "split": "test-mini",
        "category": "synthetic_scenes",
        "sub-category": scene.family,
        "difficulty": scene.difficulty,
        "family": scene.family,
        "duration": scene.duration,
        "events": [e.record() for e in scene.events],
    }


def generate_scenes(root: str | Path, **kwargs) -> Path:
    """Write the dataset for `generation_args(**kwargs)` under `root` (once) and return its folder."""
    import soundfile as sf

    args = generation_args(**kwargs)
    folder = scenes_folder(root, args)

    def write(tmp: Path) -> None:
        (tmp / "test-mini-audios").mkdir(parents=True)
        items = []
        for scene in plan_scenes(args):
            item = scene_item(scene, args["seed"])
            sf.write(str(tmp / item["audio_id"]), synthesize_scene(scene), RATE, subtype="PCM_16")
            items.append(item)
        (tmp / "mmau-test-mini.json").write_text(json.dumps(items, indent=1) + "\n")

    return build_once(folder, args, write)


# ---------------------------------------------------------------------------- the loader


ANNOTATIONS = ("family", "duration", "events")


@register_loader("synthetic_scenes")
def load_synthetic_scenes(
    root: str | Path,
    seed: int = 0,
    num_clips: int = 100,
    families: list[str] | tuple[str, ...] = FAMILIES,
    min_seconds: float = 3.0,
    max_seconds: float = 10.0,
    long_share: float = 0.2,
    long_max_seconds: float = 30.0,
    display_name: str = "Synthetic scenes",
    version: str = GENERATOR_VERSION,
    on_error: str = "raise",
) -> tuple[list[Sample], DatasetInfo]:
    """Generate (once) and read the scenes through the real `mmau` loader; each sample's meta and
    annotations get `family`, `duration` and `events` (seconds)."""
    folder = generate_scenes(
        root,
        seed=seed,
        num_clips=num_clips,
        families=families,
        min_seconds=min_seconds,
        max_seconds=max_seconds,
        long_share=long_share,
        long_max_seconds=long_max_seconds,
    )
    samples, info = load_mmau(
        root=folder,
        display_name=display_name,
        version=version,
        expected_count=num_clips,
        on_error=on_error,
        verify_version=False,
    )
    items = {i["id"]: i for i in json.loads((folder / "mmau-test-mini.json").read_text())}
    for sample in samples:
        facts = {k: items[sample.id][k] for k in ANNOTATIONS}
        sample.meta.update(facts)
        sample.annotations.update(facts)
    info.extra["generation"] = generation_args(
        seed, num_clips, families, min_seconds, max_seconds, long_share, long_max_seconds
    )
    return samples, info
