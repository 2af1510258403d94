"""AudioMarathon (long-form audio understanding, 90–300 s clips; DabDans/AudioMarathon, arXiv
2510.07293): one task's metadata JSON + its audio folder, as multiple-choice questions.

Public layout (the repo's README "Data Preparation" and its per-task scripts, e.g.
`src/Qwen_2.5_Omni/Others/GTZAN_qwen2.5.py`): each task folder (GTZAN, TAU, VESUS, SLUE, RACE,
DESED, Vox, Vox_age, HAD, LibriSpeech) holds a JSON with one item per question:

    [{"path": "audio/blues_001.wav", "question": "...", "choice_a": "Blues", "choice_b": ...,
      "choice_c": ..., "choice_d": ..., "answer_gt": "A"}, ...]

or `{"tasks": [{"path": ..., "question": ..., "choices": {"A": ..., "B": ...},
"answer_gt": "C"}, ...]}` (DESED). `path` is relative to `audio_dir` (default: the JSON's folder).
`answer_gt` is a choice letter or the choice text. Sample id = the item's `id` / `uniq_id` when
present, else `<item index>:<path>` (several questions may share one clip). Scored like MMAU
(`task: mcq`): the choice texts are the options, `category` (sound | music | speech) groups the
task in the per-task accuracy. HAD's folder-only layout (real/ fake/) is not a question file and
is not read here.
"""

from __future__ import annotations

from pathlib import Path

from audioprune.data.audio import sha256_file
from audioprune.data.base import DatasetFormatError, register_loader
from audioprune.data.common import LoaderRun, read_json
from audioprune.records import DatasetInfo, Sample

CATEGORIES = ("sound", "music", "speech")


def lettered_choices(item: dict) -> dict[str, str]:
    """The item's choices by letter ("A" -> text): `choice_a`, `choice_b`, ... or a `choices`
    dict (its keys are the letters) or list (lettered in order). Empty / null choices are absent."""
    raw = item.get("choices")
    if isinstance(raw, dict):
        pairs = [(str(k).strip("()[]. ").upper(), v) for k, v in raw.items()]
    elif isinstance(raw, list):
        pairs = [(chr(ord("A") + i), v) for i, v in enumerate(raw)]
    else:
        pairs = [(k[-1].upper(), item[k]) for k in item if k.startswith("choice_") and len(k) == 8]
    return {k: str(v) for k, v in sorted(pairs) if v is not None and str(v).strip()}


def choice_gap(letters: list[str]) -> str | None:
    """A problem when the letters are not A, B, C, ... without a gap (a missing `choice_b`
    would shift every later letter onto another text), else None."""
    expected = [chr(ord("A") + i) for i in range(len(letters))]
    if letters != expected:
        return (
            f"choice letters {', '.join(letters)} leave a gap (expected {', '.join(expected)}); "
            "letters must stay bound to their texts, so fill in or renumber the choices"
        )
    return None


def item_choices(item: dict) -> list[str] | None:
    """The item's choice texts in letter order (None when it has none)."""
    return list(lettered_choices(item).values()) or None


def item_answer(item: dict, choices: dict[str, str] | list[str]) -> str | None:
    """`answer_gt` as a choice text: a letter (A, "(B)", "c") of `choices` (letter -> text) or
    the text itself; None if neither."""
    if isinstance(choices, list):
        choices = {chr(ord("A") + i): c for i, c in enumerate(choices)}
    raw = str(item.get("answer_gt", item.get("answer", ""))).strip()
    if raw in choices.values():
        return raw
    return choices.get(raw.strip("()[]. ").upper())


@register_loader("audiomarathon")
def load_audiomarathon(
    root: str | Path,
    metadata_file: str = "metadata.json",
    audio_dir: str | None = None,
    task_name: str = "task",
    category: str = "sound",
    display_name: str = "AudioMarathon",
    version: str = "c8f49f3",
    expected_count: int | None = None,
    allow_subset: bool = False,
    on_error: str = "raise",
    missing_audio: str = "error",
) -> tuple[list[Sample], DatasetInfo]:
    """Load one AudioMarathon task: `root/metadata_file` and its audio under `root/audio_dir`.

    category: which MMAU-style task column the questions count under (sound | music | speech);
    task_name: recorded per sample (`meta.subset`) and in the dataset info.
    """
    if category not in CATEGORIES:
        raise ValueError(
            f"audiomarathon: category must be one of {', '.join(CATEGORIES)}, got {category!r}"
        )
    source = Path(root) / metadata_file
    data = read_json(
        source,
        "AudioMarathon metadata JSON not found (expected a list of {path, question, "
        'choice_a..choice_d, answer_gt} items, or {"tasks": [...]})',
    )
    items = data.get("tasks") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise DatasetFormatError(
            f"{source}: expected a JSON list of questions or an object with a `tasks` list"
        )
    base = Path(root) / audio_dir if audio_dir else Path(root)
    run = LoaderRun(
        source, display_name, version, expected_count, allow_subset, on_error, missing_audio
    )
    samples = []
    for index, item in enumerate(items):
        problem, choices, answer = None, None, None
        if not isinstance(item, dict):
            problem = f"is a {type(item).__name__}, expected an object"
        elif not item.get("path") or not str(item.get("question", "")).strip():
            problem = "needs a non-empty `path` and `question`"
        else:
            lettered = lettered_choices(item)
            choices = list(lettered.values())
            if len(choices) < 2:
                problem = "needs at least two choices (choice_a, choice_b, ... or `choices`)"
            else:
                problem = choice_gap(list(lettered))
                answer = item_answer(item, lettered)
                if problem is None and answer is None:
                    problem = (
                        f"`answer_gt` {item.get('answer_gt')!r} is not a choice letter or text"
                    )
        item_id = None
        if isinstance(item, dict):
            explicit = item.get("id", item.get("uniq_id"))
            item_id = str(explicit) if explicit is not None else f"{index}:{item.get('path')}"
        if not run.accept(f"item {index}", item_id, problem, "id"):
            continue
        samples.append(
            Sample(
                id=item_id,
                audio_path=base / str(item["path"]),
                task="mcq",
                question=str(item["question"]),
                choices=choices,
                answer=answer,
                meta={"task": category, "subset": task_name, "difficulty": item.get("difficulty")},
            )
        )
    run.check_count(len(samples), "questions")
    return run.finish("mcq", samples, {"metadata": sha256_file(source)}, task_name=task_name)
