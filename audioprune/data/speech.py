"""Speech with known text: a synthetic ASR corpus in LibriSpeech's layout, made with eSpeak NG.

The PyPI wheel `espeakng-loader` bundles libespeak-ng and its voice data; we drive the library
through ctypes (no system package): synchronous synthesis into a callback, int16 at 22,050 Hz,
resampled to 16 kHz with `resample_poly(x, 320, 441)`. Each clip is 1-3 everyday sentences
(plain wording transcribes far better than Harvard sentences, docs/models-whisper.md)
in one of several voices and speaking rates, optionally mixed with white noise at a set SNR.
Everything is a function of the seed, so a corpus is written once and reused.

Layout (what `audioprune.data.librispeech` reads, as for the official tarball):
    <root>/LibriSpeech/<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac
    <root>/LibriSpeech/<split>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt
with upper-case transcripts without punctuation ("<speaker>-<chapter>-<utt> WORDS ...").
Speaker = voice, chapter = speaking rate.
"""

from __future__ import annotations

import ctypes
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from audioprune.atomic import atomic_directory

GENERATOR_VERSION = "speech-v1"
MARKER = "speech_corpus.json"
ESPEAK_RATE = 22_050
OUT_RATE = 16_000

# Everyday sentences (Whisper transcribes espeak's voice well on plain wording).
SENTENCES = (
    "I left my keys on the kitchen table this morning.",
    "The bus was late again so I walked to work.",
    "We are going to visit my parents next weekend.",
    "Please remember to buy milk and bread on your way home.",
    "The meeting has been moved to Thursday afternoon.",
    "My sister bought a new car last month.",
    "It rained all day and the streets were full of water.",
    "Can you help me carry these boxes up the stairs?",
    "The children played in the garden until it got dark.",
    "I have to finish this report before the end of the week.",
    "He drinks a cup of coffee every morning before breakfast.",
    "The restaurant on the corner serves very good pizza.",
    "She called her friend to ask about the party.",
    "We need to clean the house before our guests arrive.",
    "The train to the city leaves every twenty minutes.",
    "My phone battery died in the middle of the call.",
    "They planted tomatoes and beans in the back yard.",
    "The doctor told him to get more sleep and exercise.",
    "I forgot to send the email to my manager yesterday.",
    "Our neighbours are building a new fence around their house.",
    "The store closes early on Sunday evening.",
    "She reads a book to her son every night.",
    "We watched a funny movie and ate popcorn.",
    "The weather will be warm and sunny tomorrow afternoon.",
    "He fixed the broken chair with some glue and a few nails.",
    "I would like to book a table for two people tonight.",
    "The library has many new books about history and science.",
    "My brother is learning to play the guitar.",
    "Turn left at the next traffic light and park near the bank.",
    "The teacher gave the class a short test on Monday.",
    "We should leave early to avoid the heavy traffic.",
    "The cat is sleeping on the sofa in the living room.",
    "I am sorry but I cannot come to the dinner on Friday.",
    "She paid for the dinner with her credit card.",
    "The water in the lake was cold but clear.",
    "Could you please turn down the music a little?",
    "He lost his wallet on the way to the station.",
    "The new office is much bigger than the old one.",
    "My grandmother makes the best apple pie in town.",
    "We took many pictures of the mountains during our holiday.",
    "The kids are excited about the first day of school.",
    "Please close the window because it is getting cold.",
    "The price of fresh fruit went up this year.",
    "I usually go running in the park on Saturday morning.",
    "They are looking for a bigger apartment near the river.",
    "The plane landed safely after a long flight.",
    "Do not forget to water the plants while I am away.",
    "He works at a small company that makes furniture.",
)
VOICES = ("en-us", "en-us+f2", "en-us+m3", "en-us+f4", "en-us+m7")
RATES = (140, 155, 170)  # words per minute


@dataclass(frozen=True)
class SpeechClip:
    """One planned utterance: LibriSpeech-style ids, its sentences, voice and rate."""

    speaker: int
    chapter: int
    utterance: int
    voice: str
    rate: int
    sentences: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.speaker}-{self.chapter}-{self.utterance:04d}"

    @property
    def text(self) -> str:
        return " ".join(self.sentences)


def transcript(text: str) -> str:
    """LibriSpeech-style reference: upper case, apostrophes kept, other punctuation dropped."""
    return " ".join(re.sub(r"[^A-Z' ]+", " ", text.upper()).split())


def plan_corpus(
    num_clips: int,
    seed: int,
    min_sentences: int = 1,
    max_sentences: int = 3,
    voices: tuple[str, ...] = VOICES,
    rates: tuple[int, ...] = RATES,
) -> list[SpeechClip]:
    """The clips of a corpus: sentences drawn without reuse inside a clip, voice and rate per
    clip; deterministic for the arguments. Speaker ids = 100 + voice index, chapter = rate."""
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    if not 1 <= min_sentences <= max_sentences <= len(SENTENCES):
        raise ValueError(
            f"sentences per clip must satisfy 1 <= min ({min_sentences}) <= max ({max_sentences})"
        )
    rng = np.random.default_rng(seed)
    clips = []
    for i in range(num_clips):
        count = int(rng.integers(min_sentences, max_sentences + 1))
        chosen = rng.choice(len(SENTENCES), size=count, replace=False)
        v = int(rng.integers(len(voices)))
        rate = int(rates[int(rng.integers(len(rates)))])
        clips.append(
            SpeechClip(
                speaker=100 + v,
                chapter=rate,
                utterance=i,
                voice=voices[v],
                rate=rate,
                sentences=tuple(SENTENCES[j] for j in chosen),
            )
        )
    return clips


# ---------------------------------------------------------------------------- eSpeak NG


class ESpeak:
    """libespeak-ng from the `espeakng-loader` wheel, synchronous synthesis into a buffer."""

    AUDIO_OUTPUT_SYNCHRONOUS = 2
    POS_CHARACTER = 1
    CHARS_UTF8 = 1
    ENDPAUSE = 0x1000
    RATE, PITCH = 1, 3
    _CALLBACK = ctypes.CFUNCTYPE(
        ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
    )
    _instance: ESpeak | None = None

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError:
            raise RuntimeError(
                "speech synthesis needs the PyPI wheel espeakng-loader (bundles libespeak-ng); "
                "install the project (`make install`) or `pip install espeakng-loader==0.2.4`"
            ) from None
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data = espeakng_loader.get_data_path().encode()
        rate = self.lib.espeak_Initialize(self.AUDIO_OUTPUT_SYNCHRONOUS, 0, data, 0)
        if rate != ESPEAK_RATE:
            raise RuntimeError(f"espeak_Initialize returned {rate}, expected {ESPEAK_RATE} Hz")
        self._chunks: list[np.ndarray] = []
        self._callback = self._CALLBACK(self._collect)  # kept alive: the library calls it
        self.lib.espeak_SetSynthCallback(self._callback)
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]

    @classmethod
    def shared(cls) -> ESpeak:
        """The library holds global state: one instance per process."""
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def _collect(self, samples, count, events) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
        return 0  # continue

    def synthesize(self, text: str, voice: str, rate: int, pitch: int = 50) -> np.ndarray:
        """[T] int16 at 22,050 Hz."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        self.lib.espeak_SetParameter(self.RATE, int(rate), 0)
        self.lib.espeak_SetParameter(self.PITCH, int(pitch), 0)
        self._chunks = []
        raw = text.encode("utf-8") + b"\0"
        flags = self.CHARS_UTF8 | self.ENDPAUSE
        err = self.lib.espeak_Synth(raw, len(raw), 0, self.POS_CHARACTER, 0, flags, None, None)
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed with error {err} on {text!r}")
        self.lib.espeak_Synchronize()
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)


def speak(clip: SpeechClip, snr_db: float | None = None, seed: int = 0) -> np.ndarray:
    """[T] float32 at 16 kHz: the clip's sentences, 0.3 s of silence before and between them,
    with white noise at `snr_db` (signal power over the speech) when given."""
    from scipy.signal import resample_poly

    engine = ESpeak.shared()
    gap = np.zeros(int(0.3 * ESPEAK_RATE), np.int16)
    parts = [gap]
    for sentence in clip.sentences:
        parts += [engine.synthesize(sentence, clip.voice, clip.rate), gap]
    wave = np.concatenate(parts).astype(np.float32) / 32768.0
    wave = resample_poly(wave, 320, 441).astype(np.float32)  # 22,050 -> 16,000 Hz
    if snr_db is not None:
        wave = add_noise(wave, snr_db, np.random.default_rng([seed, clip.utterance]))
    peak = float(np.max(np.abs(wave))) or 1.0
    return (wave * min(1.0, 0.95 / peak)).astype(np.float32)


def add_noise(wave: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """wave [T] + white noise whose power is the wave's mean power / 10^(snr_db / 10)."""
    power = float(np.mean(wave**2))
    noise = rng.standard_normal(wave.shape[0]).astype(np.float32)
    return (wave + noise * np.float32(np.sqrt(power / 10 ** (snr_db / 10)))).astype(np.float32)


def _speak_all(clips: list[SpeechClip], snr_db: float | None, seed: int) -> list[np.ndarray]:
    return [speak(clip, snr_db, seed) for clip in clips]


def synthesize_fresh(
    clips: list[SpeechClip], snr_db: float | None = None, seed: int = 0
) -> list[np.ndarray]:
    """`speak` every clip in a fresh process. libespeak-ng's output drifts by a few samples
    with the number of earlier syntheses in the process (state that neither espeak_ng_Terminate
    nor espeak_ng_SetRandSeed resets), so the same clips in the same order in a new process
    give the same bytes."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_speak_all, (clips, snr_db, seed))


# ---------------------------------------------------------------------------- writing


def corpus_settings(
    num_clips: int,
    seed: int,
    split: str,
    min_sentences: int,
    max_sentences: int,
    snr_db: float | None,
) -> dict:
    return {
        "generator": GENERATOR_VERSION,
        "num_clips": num_clips,
        "seed": seed,
        "split": split,
        "sentences": [min_sentences, max_sentences],
        "snr_db": snr_db,
    }


def corpus_folder(root: str | Path, settings: dict) -> Path:
    """`root/<name>` where name spells out the settings, so different corpora never collide."""
    lo, hi = settings["sentences"]
    noise = "clean" if settings["snr_db"] is None else f"snr{settings['snr_db']:g}"
    return Path(root) / f"speech{settings['num_clips']}-s{lo}to{hi}-{noise}-seed{settings['seed']}"


def generate_speech_corpus(
    root: str | Path,
    num_clips: int = 8,
    seed: int = 0,
    split: str = "test-clean",
    min_sentences: int = 1,
    max_sentences: int = 3,
    snr_db: float | None = None,
) -> Path:
    """Write the corpus under `corpus_folder(root, ...)` once; returns that folder, which holds
    `LibriSpeech/<split>/...` (pass it as the loader's data root).

    Built in a temporary sibling and renamed into place, so an interrupted or concurrent call
    never leaves a partial corpus; the marker file records the settings.
    """
    import soundfile as sf

    settings = corpus_settings(num_clips, seed, split, min_sentences, max_sentences, snr_db)
    folder = corpus_folder(root, settings)
    marker = folder / MARKER
    if marker.is_file():
        found = json.loads(marker.read_text())
        if found.get("settings") != settings:
            raise ValueError(f"{marker}: made with {found}, expected {settings}; delete {folder}")
        return folder
    clips = plan_corpus(num_clips, seed, min_sentences, max_sentences)

    with atomic_directory(folder, complete=MARKER) as tmp:
        base = tmp / "LibriSpeech" / split
        lines: dict[Path, list[str]] = {}
        for clip, wave in zip(clips, synthesize_fresh(clips, snr_db, seed)):
            chapter_dir = base / str(clip.speaker) / str(clip.chapter)
            chapter_dir.mkdir(parents=True, exist_ok=True)
            sf.write(str(chapter_dir / f"{clip.id}.flac"), wave, OUT_RATE, subtype="PCM_16")
            trans = chapter_dir / f"{clip.speaker}-{clip.chapter}.trans.txt"
            lines.setdefault(trans, []).append(f"{clip.id} {transcript(clip.text)}")
        for trans, rows in lines.items():
            trans.write_text("\n".join(rows) + "\n", encoding="utf-8")
        info = {"settings": settings, "clips": [asdict(c) for c in clips]}
        (tmp / MARKER).write_text(json.dumps(info, indent=1) + "\n")  # last: folder complete
    return folder
