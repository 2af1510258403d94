"""The embedded default dataset: numpy-generated clips written in the official on-disk layouts.

`generate_synthetic(root, num_clips, seed)` writes, under `root/clips<N>-seed<S>/`:

- Clotho style:    `clotho_captions_evaluation.csv` + `evaluation/*.wav` (44.1 kHz, like Clotho),
                   5 captions per clip describing what was generated;
- MMAU style:      `mmau-test-mini.json` + `test-mini-audios/<id>.wav` (16 kHz), one multiple
                   choice item per clip with `task` sound/music/speech, difficulty, category ...;
- ClothoAQA style: `clotho_aqa_test.csv` + `audio_files/*.wav`, 6 questions per clip (2 yes,
                   2 no, 2 single-word) x 3 annotators, with some disagreement so that the
                   `unanimous` / `majority` / `non_binary` subsets differ.

The clips cycle through tones, noise bursts, chirps, near-silence, beep trains, tone+noise
mixtures, a music-like arpeggio and speech-like babble; durations 2-30 s. Everything is
deterministic in (num_clips, seed). The folder is built in a temporary directory and renamed
into place, so a crash never leaves a half-written dataset, and an existing complete folder is
reused. The `synthetic_*` loaders generate on first use and then read the files through the
real `clotho` / `mmau` / `clotho_aqa` loaders, so the demo exercises the same code as a real run.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audioprune.atomic import atomic_directory
from audioprune.data.base import register_loader
from audioprune.data.clotho import load_clotho
from audioprune.data.clotho_aqa import load_clotho_aqa
from audioprune.data.mmau import load_mmau
from audioprune.records import DatasetInfo, Sample

GENERATOR_VERSION = "synthetic-v1"
MARKER = "synthetic.json"
CLOTHO_RATE = 44100
MMAU_RATE = 16000
KINDS = ("tone", "noise_bursts", "chirp", "silence", "beeps", "mixture", "melody", "speech_like")
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_NAMESPACE = uuid.UUID("6f1f2c1e-5b7a-4d0e-9a51-0d5c3e0a9b11")


@dataclass
class Clip:
    """What was generated, so captions and questions can describe it."""

    index: int
    kind: str
    duration: float  # seconds
    params: dict

    @property
    def file_name(self) -> str:
        return f"synthetic_{self.index:03d}_{self.kind}.wav"


def plan_clips(num_clips: int, seed: int) -> list[Clip]:
    """Deterministic clip list: kinds cycle through KINDS; parameters come from a seeded rng."""
    clips = []
    for index in range(num_clips):
        rng = np.random.default_rng([seed, index])
        kind = KINDS[index % len(KINDS)]
        duration = round(float(rng.uniform(2.0, 30.0)), 1)
        params = {
            "freq": float(rng.choice([330.0, 440.0, 660.0, 880.0])),
            "count": int(rng.integers(3, 7)),
            "noise_level": round(float(rng.uniform(0.05, 0.2)), 3),
            "rng_seed": int(rng.integers(0, 2**31 - 1)),
        }
        clips.append(Clip(index, kind, duration, params))
    return clips


def synthesize(clip: Clip, rate: int) -> np.ndarray:
    """The clip's waveform at `rate` Hz: `[T] float32` in [-1, 1]."""
    n = int(round(clip.duration * rate))
    t = np.arange(n) / rate
    rng = np.random.default_rng(clip.params["rng_seed"])
    p = clip.params
    fade = np.minimum(1.0, np.minimum(t, clip.duration - t) / 0.02)  # 20 ms fades avoid clicks

    def events(count: int, length: float) -> np.ndarray:
        """Gate with `count` evenly spaced on-segments of `length` seconds."""
        gate = np.zeros(n)
        period = clip.duration / count
        for k in range(count):
            start = int((k * period + 0.25 * (period - length)) * rate)
            gate[start : start + int(length * rate)] = 1.0
        return gate

    if clip.kind == "tone":
        wave = 0.5 * np.sin(2 * np.pi * p["freq"] * t)
    elif clip.kind == "noise_bursts":
        wave = (
            0.5
            * rng.standard_normal(n)
            * events(p["count"], min(0.5, clip.duration / (2 * p["count"])))
        )
    elif clip.kind == "chirp":
        f0, f1 = 200.0, 4000.0  # exponential sweep: the instantaneous frequency rises
        k = np.log(f1 / f0) / clip.duration
        wave = 0.5 * np.sin(2 * np.pi * f0 * (np.exp(k * t) - 1) / k)
    elif clip.kind == "silence":
        wave = 0.003 * rng.standard_normal(n)
    elif clip.kind == "beeps":
        wave = (
            0.5
            * np.sin(2 * np.pi * p["freq"] * t)
            * events(p["count"], min(0.3, clip.duration / (2 * p["count"])))
        )
    elif clip.kind == "mixture":
        wave = 0.35 * np.sin(2 * np.pi * p["freq"] * t) + p["noise_level"] * rng.standard_normal(n)
    elif clip.kind == "melody":
        notes = 261.63 * 2 ** (np.array([0, 4, 7, 12]) / 12)  # C major arpeggio, repeated
        step = 0.25
        freq = notes[(t // step).astype(int) % len(notes)]
        phase = 2 * np.pi * np.cumsum(freq) / rate
        envelope = np.exp(-3.0 * (t % step))
        wave = 0.4 * envelope * (np.sin(phase) + 0.3 * np.sin(2 * phase) + 0.1 * np.sin(3 * phase))
    elif clip.kind == "speech_like":
        # Voiced source with a wandering pitch, shaped by a ~4 Hz syllable envelope: babble.
        pitch = 120 + 20 * np.sin(2 * np.pi * 0.7 * t) + 10 * np.sin(2 * np.pi * 3.1 * t)
        phase = 2 * np.pi * np.cumsum(pitch) / rate
        voiced = sum(np.sin(h * phase) / h for h in range(1, 12))
        syllables = np.clip(np.sin(2 * np.pi * 4.0 * t + np.sin(2 * np.pi * 0.5 * t)), 0.0, None)
        wave = 0.3 * voiced * syllables + 0.01 * rng.standard_normal(n)
    else:
        raise ValueError(
            f"unknown synthetic clip kind {clip.kind!r}; valid kinds: {', '.join(KINDS)}"
        )
    return np.clip(wave * fade, -1.0, 1.0).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Text describing each clip


def captions(clip: Clip) -> list[str]:
    p, count = clip.params, NUMBER_WORDS[clip.params["count"]]
    pitch = "high" if p["freq"] >= 660 else "low"
    table = {
        "tone": [
            f"A steady {pitch} pitched tone plays without any change.",
            "A single electronic tone holds the same pitch for the whole time.",
            "A constant pure tone hums evenly from start to finish.",
            f"An unchanging {pitch} beep sound continues steadily.",
            "One clean tone sounds continuously at a fixed pitch.",
        ],
        "noise_bursts": [
            f"{count.capitalize()} short bursts of hissing noise are separated by silence.",
            f"Loud bursts of static noise occur {count} times with quiet gaps.",
            "Short blasts of white noise start and stop repeatedly.",
            f"There are {count} sharp bursts of noise and silence in between.",
            "Hissing static bursts appear several times then fall silent.",
        ],
        "chirp": [
            "A tone sweeps upward in pitch from low to very high.",
            "A rising electronic whistle climbs steadily higher in pitch.",
            "A sound glides from a low pitch up to a high pitch.",
            "An upward sweeping tone gets higher and higher.",
            "A single whistle rises continuously in pitch over time.",
        ],
        "silence": [
            "The recording is almost silent with a faint background hiss.",
            "Near silence with only a very quiet hiss in the background.",
            "Nothing much is heard apart from soft faint noise.",
            "A quiet room tone with barely any sound at all.",
            "Very low hiss and otherwise complete silence throughout.",
        ],
        "beeps": [
            f"A beep sounds {count} times at regular intervals.",
            f"{count.capitalize()} short electronic beeps are heard with pauses between them.",
            "A device beeps repeatedly with evenly spaced silent gaps.",
            f"There are {count} identical beeps separated by silence.",
            "Short tones beep on and off at a steady rhythm.",
        ],
        "mixture": [
            "A steady tone plays over a constant background of hissing noise.",
            "A humming tone is mixed with loud static noise.",
            "Noise hisses continuously while a single tone hums underneath.",
            "A constant pitch sounds together with background static.",
            "A tone and white noise play at the same time throughout.",
        ],
        "melody": [
            "A simple melody repeats the same rising notes over and over.",
            "A bright instrument plays a rising arpeggio in a loop.",
            "Musical notes go up step by step and then start again.",
            "A short repeating tune of plucked notes climbs in pitch.",
            "A plucked instrument repeats a cheerful ascending pattern.",
        ],
        "speech_like": [
            "A low voice babbles in rhythmic syllables without clear words.",
            "Someone seems to be talking but the words cannot be understood.",
            "A muffled voice speaks in a steady rhythm of syllables.",
            "Speech like murmuring continues with a rising and falling pitch.",
            "A person murmurs continuously in an unintelligible way.",
        ],
    }
    return table[clip.kind]


def mmau_item(clip: Clip, seed: int) -> dict:
    """One MMAU-style multiple-choice item about the clip (choice order shuffled per clip)."""
    count = clip.params["count"]
    spec = {
        "tone": ("music", "easy", "Information Extraction", "Pitch Contour",
                 "How does the pitch of the tone behave over the clip?",
                 ["It stays constant", "It rises steadily", "It falls steadily", "It alternates between two notes"]),
        "noise_bursts": ("sound", "medium", "Reasoning", "Event Counting",
                         "How many bursts of noise are heard?",
                         [str(count), str(count + 1), str(count - 1), str(count + 2)]),
        "chirp": ("sound", "easy", "Information Extraction", "Pitch Contour",
                  "What happens to the pitch of the sound over time?",
                  ["It rises", "It falls", "It stays the same", "There is no pitched sound"]),
        "silence": ("sound", "easy", "Information Extraction", "Acoustic Scene",
                    "What is heard in the recording?", ["Near silence", "A loud alarm"]),
        "beeps": ("sound", "hard", "Reasoning", "Event Counting",
                  "How many beeps are there in the recording?",
                  [str(count), str(count + 1), str(count - 1), str(count + 2), str(count + 3)]),
        "mixture": ("sound", "medium", "Reasoning", "Sound Source Identification",
                    "Which sounds are present in the recording?",
                    ["A tone with background noise", "Only a tone", "Only noise", "Speech and music"]),
        "melody": ("music", "medium", "Information Extraction", "Melodic Structure",
                   "What kind of musical pattern is played?",
                   ["A rising arpeggio", "A single sustained chord", "A drum beat", "Silence"]),
        "speech_like": ("speech", "hard", "Reasoning", "Speaker Characteristics",
                        "What does the sound most resemble?",
                        ["Speech-like babble", "Birdsong", "An engine", "Rainfall"]),
    }  # fmt: skip
    task, difficulty, category, sub_category, question, choices = spec[clip.kind]
    answer = choices[0]
    order = np.random.default_rng([seed, clip.index, 1]).permutation(len(choices))
    item_id = str(uuid.uuid5(_NAMESPACE, f"{seed}-{clip.index}-{clip.kind}"))
    return {
        "id": item_id,
        "audio_id": f"./test-mini-audios/{item_id}.wav",
        "question": question,
        "choices": [choices[i] for i in order],
        "answer": answer,
        "dataset": "synthetic",
        "task": task,
        "split": "test-mini",
        "category": category,
        "sub-category": sub_category,
        "difficulty": difficulty,
    }


def aqa_rows(clip: Clip) -> list[list[str]]:
    """6 questions x 3 annotators (`file_name, QuestionText, answer, confidence` rows)."""
    kind = clip.kind
    tonal = kind in ("tone", "beeps", "mixture")
    noisy = kind in ("noise_bursts", "mixture", "silence")
    changing = kind in ("chirp", "melody", "speech_like")
    events = {"noise_bursts": clip.params["count"], "beeps": clip.params["count"], "silence": 0}
    word = {"noise_bursts": "noise", "speech_like": "speech", "melody": "music", "beeps": "beeps"}
    questions = [
        ("Is there a steady tone?", "yes" if tonal else "no"),
        ("Is there any noise?", "yes" if noisy else "no"),
        ("Is the audio mostly silent?", "yes" if kind == "silence" else "no"),
        ("Does the pitch change over time?", "yes" if changing else "no"),
        ("What kind of sound is this?", word.get(kind, kind)),
        ("How many sound events are there?", NUMBER_WORDS[events.get(kind, 1)]),
    ]
    rows = []
    for j, (question, answer) in enumerate(questions):
        answers = [answer, answer.capitalize(), answer]
        confidence = ["yes", "Yes", "maybe"]
        if (clip.index + j) % 5 == 0:  # one annotator disagrees: majority but not unanimous
            answers[2] = {"yes": "no", "no": "yes"}.get(answer, "sound")
            confidence[2] = "no"
        elif j >= 4 and (clip.index + j) % 4 == 0:  # single-word question with no majority
            answers[1:] = ["sound", "noise" if answer != "noise" else "static"]
            confidence[1:] = ["maybe", "no"]
        rows += [[clip.file_name, question, a, c] for a, c in zip(answers, confidence)]
    return rows


# ----------------------------------------------------------------------------------------------
# Writing


def synthetic_folder(root: str | Path, num_clips: int, seed: int) -> Path:
    return Path(root) / f"clips{num_clips}-seed{seed}"


def _write_wav(path: Path, wave: np.ndarray, rate: int) -> None:
    import soundfile as sf

    sf.write(str(path), wave, rate, subtype="PCM_16")


def _marker(num_clips: int, seed: int) -> dict:
    return {"generator": GENERATOR_VERSION, "num_clips": num_clips, "seed": seed}


def generate_synthetic(root: str | Path, num_clips: int = 8, seed: int = 0) -> Path:
    """Write the synthetic dataset under `root/clips<N>-seed<S>/` (if not already there).

    Returns that folder (`build_once`: built in a temporary sibling folder and renamed into
    place, so concurrent callers and interrupted runs never see a partial dataset).
    """
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    folder = synthetic_folder(root, num_clips, seed)
    return build_once(
        folder, _marker(num_clips, seed), lambda tmp: _write_all(tmp, num_clips, seed)
    )


def build_once(folder: Path, marker: dict, write: Callable[[Path], None]) -> Path:
    """Build a generated dataset folder once (`audioprune.atomic.atomic_directory`); `write(tmp)` fills it and the
    marker file (`MARKER`, holding `marker`) is written after it. An existing folder with the
    same marker is reused; a different marker or a folder without one is an error."""
    marker_path = folder / MARKER
    if marker_path.is_file():
        found = json.loads(marker_path.read_text())
        if found != marker:
            raise ValueError(f"{marker_path}: made by {found}, expected {marker}; delete {folder}")
        return folder
    if folder.exists() and any(folder.iterdir()):
        raise ValueError(
            f"{folder} exists without {MARKER} (an interrupted or foreign folder); delete it"
        )

    with atomic_directory(folder, complete=MARKER) as tmp:
        write(tmp)
        if not (tmp / MARKER).is_file():  # written last: its presence means complete
            (tmp / MARKER).write_text(json.dumps(marker) + "\n")
    return folder


def _write_all(out: Path, num_clips: int, seed: int) -> None:
    clips = plan_clips(num_clips, seed)
    for sub in ("evaluation", "test-mini-audios", "audio_files"):
        (out / sub).mkdir(parents=True)

    # Clotho style
    with open(out / "clotho_captions_evaluation.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name"] + [f"caption_{i}" for i in range(1, 6)])
        for clip in clips:
            _write_wav(
                out / "evaluation" / clip.file_name, synthesize(clip, CLOTHO_RATE), CLOTHO_RATE
            )
            writer.writerow([clip.file_name] + captions(clip))
            target = out / "audio_files" / clip.file_name
            try:  # ClothoAQA reads the same clips from its own folder; a hard link costs nothing
                os.link(out / "evaluation" / clip.file_name, target)
            except OSError:
                shutil.copyfile(out / "evaluation" / clip.file_name, target)

    # MMAU style (16 kHz audio, one file per item named by its id)
    items = [mmau_item(clip, seed) for clip in clips]
    for clip, item in zip(clips, items):
        _write_wav(out / item["audio_id"], synthesize(clip, MMAU_RATE), MMAU_RATE)
    (out / "mmau-test-mini.json").write_text(json.dumps(items, indent=4) + "\n", encoding="utf-8")

    # ClothoAQA style (latin-1 like the original)
    with open(out / "clotho_aqa_test.csv", "w", newline="", encoding="latin1") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name", "QuestionText", "answer", "confidence"])
        for clip in clips:
            writer.writerows(aqa_rows(clip))

    # Written last: its presence means the folder is complete.
    (out / MARKER).write_text(json.dumps(_marker(num_clips, seed)) + "\n")


# ----------------------------------------------------------------------------------------------
# Loaders


def _synthetic_loader(
    name: str,
    display_name: str,
    reader: Callable[..., tuple[list[Sample], DatasetInfo]],
    count_clips: bool,
    **fixed: Any,
) -> Callable[..., tuple[list[Sample], DatasetInfo]]:
    """Register and return loader `name`: generate the dataset on first use, then read it with
    the real loader `reader`, so the demo runs the same code as a real benchmark.

    count_clips: the layout has one item per clip, so `expected_count` is `num_clips`.
    fixed: arguments always passed to `reader`. Other keyword arguments (on_error,
    missing_audio, subset, ...) reach `reader` as given; `allow_subset` defaults to true.
    """

    def load(
        root: str | Path,
        num_clips: int = 8,
        seed: int = 0,
        display_name: str = display_name,
        version: str = GENERATOR_VERSION,
        **kwargs,
    ) -> tuple[list[Sample], DatasetInfo]:
        folder = generate_synthetic(root, num_clips, seed)
        kwargs.setdefault("allow_subset", True)
        counted = {"expected_count": num_clips} if count_clips else {}
        return reader(
            root=folder, display_name=display_name, version=version, **counted, **fixed, **kwargs
        )

    load.__name__ = load.__qualname__ = f"load_{name}"
    load.__doc__ = f"{display_name}: `{reader.__name__}` over the generated files."
    return register_loader(name)(load)


load_synthetic_captions = _synthetic_loader(
    "synthetic_captions", "Synthetic captions", load_clotho, count_clips=True
)
load_synthetic_mmau = _synthetic_loader(
    "synthetic_mmau", "Synthetic MMAU", load_mmau, count_clips=True, verify_version=False
)
load_synthetic_aqa = _synthetic_loader(
    "synthetic_aqa", "Synthetic AQA", load_clotho_aqa, count_clips=False
)
