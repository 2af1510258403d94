"""ClothoAQA test split (audio question answering): `clotho_aqa_test.csv` + audio folder.

Official layout (Zenodo record 6473207): columns `file_name, QuestionText, answer, confidence`,
latin-1 text, every question on 3 consecutive rows (one per annotator); `audio_files.zip`
unpacks all clips into one folder. Test: 8,514 rows = 2,838 questions over 473 clips; 2/3 of
the questions are yes/no.

Subsets (answers compared after `text_normalization.normalize_answer`: lower-case, punctuation
removed; the AQA metric compares with the same function):
- `unanimous`:  all 3 annotators agree (test: 1,312) — the AF3 / paper "unanimous" column;
- `non_binary`: unanimous and the answer is not yes/no (test: 203) — the "non-binary" column;
- `majority`:   at least 2 of 3 agree, answer = the majority (test: 2,476; MWAFM "clean" CSVs);
- `all`:        every question; answer = the most common annotation, ties to the first
                annotator (`meta["agreement"]` says how many agreed).

Sample id = `<file_name>::<q>` where q is the 0-based index of the question among that file's
questions in CSV order (stable across subsets; the same id in every subset). Ids do not shift
under `on_error: skip`: a question with malformed rows is skipped but keeps its position, so
the other questions keep the ids they have in the clean file.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from audioprune.data.audio import sha256_file
from audioprune.data.base import DatasetFormatError, register_loader
from audioprune.data.common import LoaderRun
from audioprune.data.rows import check_choice, read_csv, row_shape_error
from audioprune.records import DatasetInfo, Sample
from audioprune.text_normalization import BINARY, normalize_answer

SUBSETS = ("all", "unanimous", "non_binary", "majority")
COLUMNS = ["file_name", "QuestionText", "answer"]


def question_id(file_name: str, index: int) -> str:
    return f"{file_name}::{index}"


@register_loader("clotho_aqa")
def load_clotho_aqa(
    root: str | Path,
    answers_file: str = "clotho_aqa_test.csv",
    audio_dir: str = "audio_files",
    subset: str = "unanimous",
    display_name: str = "ClothoAQA test",
    version: str = "v1 (Zenodo 6473207)",
    expected_count: int | dict | None = None,
    answers_per_question: int = 3,
    allow_subset: bool = False,
    on_error: str = "raise",
    missing_audio: str = "error",
    encoding: str = "latin1",
) -> tuple[list[Sample], DatasetInfo]:
    """Load ClothoAQA questions, grouped from consecutive rows, filtered to `subset`.

    expected_count: an int, or a mapping subset -> count (e.g. {unanimous: 1312, ...}) checked
    against the chosen subset; with skipped rows the subset may only be smaller.
    """
    check_choice(subset, "subset", SUBSETS)
    source = Path(root) / answers_file
    rows = read_csv(source, COLUMNS, encoding)
    expected = expected_count.get(subset) if isinstance(expected_count, dict) else expected_count
    run = LoaderRun(source, display_name, version, expected, allow_subset, on_error, missing_audio)

    # Questions are runs of consecutive rows with the same (file_name, QuestionText). Malformed
    # rows stay in their run (they make the question skipped, not vanish), so a question's id —
    # its position among its file's questions — is the same as in the clean file whatever is
    # skipped. A row whose question text is unreadable still holds a question position of its
    # file; a row without a file name belongs to no file and is reported on its own.
    groups: list[dict] = []
    for line, row in rows:
        problem = row_shape_error(row, COLUMNS)
        file_name = str(row.get("file_name") or "").strip()
        if not file_name:
            run.bad(line, None, problem or "empty file_name")
            continue
        key = (file_name, str(row.get("QuestionText") or "").strip() or None)
        if not groups or groups[-1]["key"] != key:
            groups.append({"key": key, "rows": [], "problem": None})
        groups[-1]["rows"].append((line, row))
        if problem and groups[-1]["problem"] is None:
            groups[-1]["problem"] = (line, problem)

    per_file: Counter = Counter()
    samples: list[Sample] = []
    seen: dict[tuple, int] = {}
    for entry in groups:
        group = entry["rows"]
        line = group[0][0]
        file_name, question = entry["key"]
        index = per_file[file_name]
        per_file[file_name] += 1
        qid = question_id(file_name, index)
        if entry["problem"] is not None:
            run.bad(entry["problem"][0], qid, entry["problem"][1])
            continue
        if entry["key"] in seen:
            run.bad(
                line,
                qid,
                f"question repeats the one at line {seen[entry['key']]} (rows not consecutive?)",
            )
            continue
        seen[entry["key"]] = line
        if len(group) != answers_per_question:
            lines = [g[0] for g in group]
            run.bad(
                line,
                qid,
                f"has {len(group)} answers (lines {lines}), expected {answers_per_question}",
            )
            continue
        answers = [g[1]["answer"].strip() for g in group]
        normalized = [normalize_answer(a) for a in answers]
        counts = Counter(normalized)
        top = max(counts.values())
        majority = next(a for a in normalized if counts[a] == top)  # ties -> first annotator
        binary = majority in BINARY
        keep = {
            "all": True,
            "unanimous": top == answers_per_question,
            "non_binary": top == answers_per_question and not binary,
            "majority": top * 2 > answers_per_question,
        }[subset]
        if not keep:
            continue
        run.rows_of[qid] = line
        samples.append(
            Sample(
                id=qid,
                audio_path=Path(root) / audio_dir / file_name,
                task="aqa",
                question=question,
                answer=majority,
                references=answers,
                meta={
                    "file_name": file_name,
                    "question_index": index,
                    "binary": binary,
                    "agreement": top,
                    "confidence": [
                        str(g[1].get("confidence") or "").strip().lower() for g in group
                    ],
                },
            )
        )
    if expected is not None and not allow_subset:
        # Skipped rows may remove questions from the subset, so with skips it may only shrink.
        if run.errors.skipped and len(samples) > expected:
            raise DatasetFormatError(
                f"{source}: subset {subset} has {len(samples)} questions, expected at most {expected}"
            )
        if not run.errors.skipped:
            run.check_count(len(samples), f"{subset} questions")
    samples, info = run.finish(
        "aqa",
        samples,
        {"answers": sha256_file(source)},
        subset=subset,
        questions_in_file=len(groups),
        answer_normalization="lower-case, ASCII punctuation removed, whitespace collapsed",
    )
    info.extra["num_binary"] = sum(s.meta["binary"] for s in samples)  # of the samples kept
    return samples, info
