"""AudioCaps v1 test split (captioning): `dataset/test.csv` + a folder of downloaded clips.

Official layout (github.com/cdjkim/audiocaps): `test.csv` has columns
`audiocap_id, youtube_id, start_time, caption`, one row per caption, 975 clips x 5 captions
(rows of a clip are not contiguous). The audio is not distributed: users download 10 s YouTube
segments, so usually only ~900 clips exist locally, under a name built from the YouTube id.
We try `audio_patterns` in order (`<youtube_id>.wav`, `Y<youtube_id>.wav`,
`<youtube_id>_<start_time>.wav`, ... also .flac). Sample id = `youtube_id`.

Missing clips: CIDEr's IDF comes from the evaluated references, so dropping clips changes the
metric. The default `missing_audio: drop` evaluates the clips present and says so loudly (a
warning, `DatasetInfo.missing_audio`, the clip count in every result); `keep` scores missing
clips as wrong against the full 975-clip reference set; `error` refuses to run.
"""

from __future__ import annotations

from pathlib import Path

from audioprune.data.audio import sha256_file
from audioprune.data.base import register_loader
from audioprune.data.common import LoaderRun
from audioprune.data.rows import read_csv, row_shape_error
from audioprune.records import DatasetInfo, Sample

AUDIO_PATTERNS = (
    "{youtube_id}.wav",
    "Y{youtube_id}.wav",
    "{youtube_id}_{start_time}.wav",
    "Y{youtube_id}_{start_time}.wav",
    "{youtube_id}.flac",
    "Y{youtube_id}.flac",
    "{youtube_id}_{start_time}.flac",
)
COLUMNS = ["audiocap_id", "youtube_id", "start_time", "caption"]


def find_clip(audio_root: Path, patterns: list[str] | tuple[str, ...], fields: dict) -> Path:
    """First existing file among `patterns` (formatted with the row's fields); the first pattern
    when none exists, so error messages name the expected file."""
    candidates = [audio_root / p.format(**fields) for p in patterns]
    return next((c for c in candidates if c.is_file()), candidates[0])


@register_loader("audiocaps")
def load_audiocaps(
    root: str | Path,
    captions_file: str = "test.csv",
    audio_dir: str = "audio",
    display_name: str = "AudioCaps v1 test",
    version: str = "v1",
    expected_count: int | None = 975,
    captions_per_clip: int = 5,
    allow_subset: bool = False,
    on_error: str = "raise",
    missing_audio: str = "drop",
    audio_patterns: list[str] | tuple[str, ...] = AUDIO_PATTERNS,
    encoding: str = "utf-8",
) -> tuple[list[Sample], DatasetInfo]:
    """Load AudioCaps test captions grouped by clip (youtube_id), in order of first appearance.

    A clip must have exactly `captions_per_clip` captions and one start time; rows with missing
    fields, or clips that break this, raise (file + line + id) or are skipped (`on_error: skip`).
    """
    source = Path(root) / captions_file
    rows = read_csv(source, COLUMNS, encoding)
    run = LoaderRun(
        source, display_name, version, expected_count, allow_subset, on_error, missing_audio
    )
    clips: dict[str, dict] = {}
    for line, row in rows:
        youtube_id = str(row.get("youtube_id") or "").strip() or None
        problem = row_shape_error(row, COLUMNS)
        if problem:
            run.bad(line, youtube_id, problem)
            continue
        clip = clips.setdefault(
            youtube_id, {"lines": [], "captions": [], "ids": [], "start": set(), "first": line}
        )
        clip["lines"].append(line)
        clip["captions"].append(row["caption"].strip())
        clip["ids"].append(row["audiocap_id"].strip())
        clip["start"].add(row["start_time"].strip())

    samples: list[Sample] = []
    audio_root = Path(root) / audio_dir
    for youtube_id, clip in clips.items():
        if len(clip["start"]) != 1:
            run.bad(
                clip["first"],
                youtube_id,
                f"captions disagree on start_time {sorted(clip['start'])}",
            )
            continue
        if len(clip["captions"]) != captions_per_clip:
            run.bad(
                clip["first"],
                youtube_id,
                f"has {len(clip['captions'])} captions (lines {clip['lines']}), expected {captions_per_clip}",
            )
            continue
        start = next(iter(clip["start"]))
        fields = {"youtube_id": youtube_id, "start_time": start, "audiocap_id": clip["ids"][0]}
        run.rows_of[youtube_id] = clip["first"]
        samples.append(
            Sample(
                id=youtube_id,
                audio_path=find_clip(audio_root, audio_patterns, fields),
                task="captioning",
                references=clip["captions"],
                meta={"start_time": start, "audiocap_ids": clip["ids"]},
            )
        )
    # A clip's rows may be skipped one by one; the count is of clips.
    skipped_clips = len({s["id"] for s in run.errors.skipped})
    run.check_count(len(samples), "clips", skipped_clips)
    files = {"captions": sha256_file(source)}
    return run.finish(
        "captioning",
        samples,
        files,
        references_per_clip=captions_per_clip,
        clips_in_file=len(clips),
    )
