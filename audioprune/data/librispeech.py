"""LibriSpeech test sets (ASR) and the synthetic speech corpus, read from the official layout.

Official tarball (openslr.org/12, `test-clean.tar.gz` / `test-other.tar.gz`) unpacked under the
data root:
    <data_root>/LibriSpeech/<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac
    <data_root>/LibriSpeech/<split>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt
with one `<utt id> TRANSCRIPT` line per utterance. test-clean has 2,620 utterances, test-other
2,939; anything else is an error unless `allow_subset` is set. Sample id = utterance id;
`references` = [transcript]; `meta.duration_s` is read from the audio header.
`synthetic_speech` writes an eSpeak NG corpus in the same layout (`audioprune.data.speech`)
and reads it with the same loader.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from audioprune.data.base import DatasetFormatError, register_loader
from audioprune.data.common import LoaderRun
from audioprune.metrics.asr import normalize
from audioprune.records import DatasetInfo, Sample

EXPECTED = {"test-clean": 2620, "test-other": 2939, "dev-clean": 2703, "dev-other": 2864}


def _duration(path: Path) -> float | None:
    import soundfile as sf

    try:
        return float(sf.info(str(path)).duration)
    except (RuntimeError, OSError):
        return None  # unreadable: load_audio reports it when the clip is used


@register_loader("librispeech")
def load_librispeech(
    root: str | Path,
    split: str = "test-clean",
    display_name: str | None = None,
    version: str = "openslr-12",
    expected_count: int | None = -1,
    allow_subset: bool = False,
    on_error: str = "raise",
    missing_audio: str = "error",
    audio_ext: str = "flac",
) -> tuple[list[Sample], DatasetInfo]:
    """Every `*.trans.txt` under `root/LibriSpeech/<split>/` (sorted by path, lines in file order).

    expected_count: -1 = the official count of `split` (EXPECTED), None = no check.
    A line that is not `<speaker>-<chapter>-<utt> WORDS` of its own chapter folder is a bad
    row (file + line named); missing audio follows `missing_audio`.
    """
    base = Path(root) / "LibriSpeech" / split
    if not base.is_dir():
        raise FileNotFoundError(
            f"librispeech: no folder {base} (expected the official layout "
            f"<data_root>/LibriSpeech/{split}/<speaker>/<chapter>/...; set paths.data_root)"
        )
    if expected_count == -1:
        expected_count = EXPECTED.get(split)
    transcripts = sorted(base.glob("*/*/*.trans.txt"))
    if not transcripts:
        raise DatasetFormatError(f"{base}: no <speaker>/<chapter>/*.trans.txt files")
    digest = hashlib.sha256()
    samples: list[Sample] = []
    run = LoaderRun(
        base,
        display_name or f"LibriSpeech {split}",
        version,
        expected_count,
        allow_subset,
        on_error,
        missing_audio,
    )
    for trans in transcripts:
        text = trans.read_text(encoding="utf-8")
        digest.update(f"{trans.relative_to(base)}\n{text}".encode())
        speaker, chapter = trans.parent.parent.name, trans.parent.name
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            # Any whitespace separates the id from the words (a TAB is not part of the id).
            utt, _, words = line.strip().replace("\t", " ").partition(" ")
            place = f"{trans.name} line {number}"
            problem = None
            if not utt.startswith(f"{speaker}-{chapter}-"):
                problem = f"utterance id {utt!r} is not in chapter {speaker}/{chapter}"
            elif not words.strip():
                problem = "empty transcript"
            elif not normalize(words):
                problem = f"transcript {words.strip()!r} is empty after WER normalisation"
            if not run.accept(place, utt, problem, "utterance id"):
                continue
            audio = trans.parent / f"{utt}.{audio_ext}"
            samples.append(
                Sample(
                    id=utt,
                    audio_path=audio,
                    task="asr",
                    references=[" ".join(words.split())],
                    meta={"speaker": speaker, "chapter": chapter, "duration_s": _duration(audio)},
                )
            )
    run.check_count(len(samples), "utterances")
    return run.finish("asr", samples, {"transcripts": digest.hexdigest()}, split=split)


@register_loader("synthetic_speech")
def load_synthetic_speech(
    root: str | Path,
    num_clips: int = 8,
    seed: int = 0,
    min_sentences: int = 1,
    max_sentences: int = 3,
    snr_db: float | None = None,
    split: str = "test-clean",
    display_name: str = "Synthetic speech (eSpeak NG)",
    version: str | None = None,
    **kwargs,
) -> tuple[list[Sample], DatasetInfo]:
    """Generate the eSpeak NG corpus under `root` once, then read it with `load_librispeech`."""
    from audioprune.data.speech import GENERATOR_VERSION, generate_speech_corpus

    folder = generate_speech_corpus(
        root, num_clips, seed, split, min_sentences, max_sentences, snr_db
    )
    kwargs.setdefault("expected_count", num_clips)
    return load_librispeech(
        folder,
        split=split,
        display_name=display_name,
        version=version or GENERATOR_VERSION,
        **kwargs,
    )
