"""Score saved predictions without a model; prints one JSON object of metrics to stdout.

    python -m audioprune.evaluate mmau     --predictions P.jsonl --questions mmau-test-mini.json [--matcher official|official_normalized|sbert]
    python -m audioprune.evaluate captions --predictions P.jsonl --references clotho_captions_evaluation.csv
    python -m audioprune.evaluate aqa      --predictions P.jsonl --answers clotho_aqa_test.csv [--subset unanimous]
    python -m audioprune.evaluate compare  --run RUN_DIR --baseline UNPRUNED_RUN_DIR

`compare` refuses runs of different datasets or sample sets (each metrics file records its
sample set); a run folder's metrics.json is used, or pass a metrics file (metrics.limit<N>.json).

Predictions are JSONL lines `{"id": ..., "prediction": ...}` (extra keys are ignored; a null
prediction counts as missing). Ids: MMAU = the JSON's `id`; Clotho = `file_name`; AudioCaps =
`youtube_id`; ClothoAQA = `<file_name>::<q>`, q = 0-based index of the question among that
file's questions in CSV order. An id that is not in the dataset, or one given twice, is an error
naming the file and the id. Errors print one line to stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from audioprune.data.base import load_dataset
from audioprune.errors import InputError
from audioprune.records import DatasetInfo, Sample


class PredictionsError(InputError):
    """A predictions file is malformed or does not fit the dataset; names the file and line/id."""


def read_predictions(path: str | Path, field: str = "prediction") -> dict[str, str]:
    """{id: prediction} from a JSONL file; duplicate ids and malformed lines are errors.

    A null prediction is left out (it counts as missing).
    """
    path = Path(path)
    if not path.is_file():
        raise PredictionsError(f"{path}: predictions file not found")
    predictions: dict[str, str] = {}
    first_line: dict[str, int] = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise PredictionsError(
                    f"{path}: line {number} is not valid JSON ({err.msg})"
                ) from err
            if not isinstance(record, dict) or "id" not in record or field not in record:
                raise PredictionsError(
                    f"{path}: line {number} needs keys 'id' and {field!r}, got {str(record)[:120]}"
                )
            key = str(record["id"])
            if key in first_line:
                raise PredictionsError(
                    f"{path}: duplicate id {key!r} on lines {first_line[key]} and {number}"
                )
            first_line[key] = number
            value = record[field]
            if value is not None:
                if not isinstance(value, str):
                    raise PredictionsError(
                        f"{path}: line {number} (id {key!r}): {field!r} must be a string or null"
                    )
                predictions[key] = value
    return predictions


def check_ids(
    predictions: dict[str, str], samples: list[Sample], path: str | Path, dataset: str | Path
) -> None:
    ids = {s.id for s in samples}
    unknown = [k for k in predictions if k not in ids]
    if unknown:
        more = f" and {len(unknown) - 1} more" if len(unknown) > 1 else ""
        raise PredictionsError(f"{path}: id {unknown[0]!r}{more} not found in {dataset}")


def _load_metadata(
    loader: str, path: Path, file_arg: str, **kwargs
) -> tuple[list[Sample], DatasetInfo]:
    """The samples of the metadata file `path`, read by the registered loader `loader`
    (`file_arg` names its file argument). Scoring needs neither the audio nor the full-size file.
    """
    return load_dataset(
        loader,
        root=path.parent,
        **{file_arg: path.name},
        expected_count=None,
        allow_subset=True,
        missing_audio="ignore",
        **kwargs,
    )


def _load_mmau(questions: Path) -> tuple[list[Sample], dict]:
    samples, info = _load_metadata("mmau", questions, "questions_file")
    return samples, {"file": str(questions), "sha256": info.files.get("questions"), "version": info.version, "version_verified": info.extra["version_verified"]}  # fmt: skip


def _load_captions(references: Path, fmt: str) -> tuple[list[Sample], dict]:
    if fmt == "auto":
        with open(references, encoding="utf-8", errors="replace") as handle:
            header = handle.readline()
        fmt = "audiocaps" if "youtube_id" in header else "clotho"
    samples, info = _load_metadata(fmt, references, "captions_file")
    return samples, {"file": str(references), "format": fmt, "sha256": info.files["captions"]}


def _load_aqa(answers: Path, subset: str) -> tuple[list[Sample], dict]:
    samples, info = _load_metadata("clotho_aqa", answers, "answers_file", subset=subset)
    return samples, {"file": str(answers), "subset": subset, "sha256": info.files["answers"]}


def cmd_mmau(args) -> dict:
    from audioprune.metrics.mmau import item_results, resolve_normalize, score_items

    samples, source = _load_mmau(Path(args.questions))
    predictions = read_predictions(args.predictions, args.field)
    check_ids(predictions, samples, args.predictions, args.questions)
    normalize = resolve_normalize(args.matcher, False if args.no_normalize else None)
    # Scored once: the summary and the --items file come from the same records.
    records = item_results(samples, predictions, args.matcher, normalize, args.sbert_model)
    result = score_items(records, args.matcher, normalize)
    if args.items:
        Path(args.items).write_text(
            "".join(json.dumps(r) + "\n" for r in records), encoding="utf-8"
        )
    return result | {"source": source}


def cmd_captions(args) -> dict:
    from audioprune.metrics.captioning import score_captions

    samples, source = _load_captions(Path(args.references), args.format)
    predictions = read_predictions(args.predictions, args.field)
    check_ids(predictions, samples, args.predictions, args.references)
    return score_captions(samples, predictions, args.metrics) | {"source": source}


def cmd_aqa(args) -> dict:
    from audioprune.metrics.aqa import score_aqa

    samples, source = _load_aqa(Path(args.answers), args.subset)
    predictions = read_predictions(args.predictions, args.field)
    # Ids of questions outside the chosen subset are legitimate (a run may answer them all),
    # so unknown ids are checked against the whole file and then left out.
    everything, _ = _load_aqa(Path(args.answers), "all")
    check_ids(predictions, everything, args.predictions, args.answers)
    in_subset = {s.id for s in samples}
    chosen = {k: v for k, v in predictions.items() if k in in_subset}
    return score_aqa(samples, chosen) | {"source": source}


def cmd_asr(args) -> dict:
    """WER / CER against a LibriSpeech-layout folder (`--references <root>` holding
    LibriSpeech/<split>/...); ids are utterance ids (`1089-134686-0000`)."""
    from audioprune.metrics.asr import score_asr

    samples, info = load_dataset(
        "librispeech",
        root=args.references,
        split=args.split,
        expected_count=None,
        allow_subset=True,
        missing_audio="ignore",
    )
    predictions = read_predictions(args.predictions, args.field)
    check_ids(predictions, samples, args.predictions, args.references)
    source = {
        "root": str(args.references),
        "split": args.split,
        "sha256": info.files["transcripts"],
    }
    return score_asr(samples, predictions) | {"source": source}


def _run_metrics(location: Path) -> tuple[dict, dict, Path]:
    """(metrics, whole metrics file, its path) of a run folder's metrics.json, or of a metrics
    file given directly (e.g. RUN/metrics.limit10.json of a smoke run)."""
    path = location if location.is_file() else location / "metrics.json"
    if not path.is_file():
        others = (
            sorted(p.name for p in location.glob("metrics.limit*.json"))
            if location.is_dir()
            else []
        )
        hint = f"; smoke-run metrics there: {', '.join(others)} (pass the file)" if others else ""
        raise PredictionsError(
            f"{path}: not found (a run folder holds predictions.jsonl and metrics.json){hint}"
        )
    data = json.loads(path.read_text(encoding="utf-8"))
    return (data["metrics"] if isinstance(data.get("metrics"), dict) else data), data, path


def cmd_compare(args) -> dict:
    from audioprune.baseline import check_same_samples
    from audioprune.metrics.relative import loyalty, relative_drop

    run_metrics, run_data, run_file = _run_metrics(Path(args.run))
    base_metrics, base_data, base_file = _run_metrics(Path(args.baseline))
    # Refuses runs of different datasets or sample sets (a smoke run vs a full run).
    check_same_samples(run_data, base_data, run_file, base_file)
    pruned = read_predictions(run_file.parent / "predictions.jsonl", args.field)
    unpruned = read_predictions(base_file.parent / "predictions.jsonl", args.field)
    # A smoke run's metrics file lists its samples; its folder may hold more predictions.
    listed = (run_data.get("run") or {}).get("sample_ids")
    if listed is not None:
        keep = set(map(str, listed))
        pruned = {k: v for k, v in pruned.items() if k in keep}
        unpruned = {k: v for k, v in unpruned.items() if k in keep}
    if args.questions:
        samples, _ = _load_mmau(Path(args.questions))
    else:
        task = (run_data.get("dataset") or {}).get("task") or args.task
        ids = list(dict.fromkeys(list(unpruned) + list(pruned)))
        samples = [Sample(id=i, audio_path=None, task=task) for i in ids]
    return {
        "run": str(run_file),
        "baseline": str(base_file),
        "sample_set": run_data["run"]["sample_set"],
        "relative_drop": relative_drop(run_metrics, base_metrics),
        "loyalty": loyalty(samples, pruned, unpruned),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m audioprune.evaluate", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument(
            "--predictions", required=True, help="JSONL with one {id, prediction} per line"
        )
        p.add_argument(
            "--field", default="prediction", help="key holding the reply (default: prediction)"
        )

    p = sub.add_parser("mmau", help="MMAU accuracy per task / difficulty / overall (percent)")
    common(p)
    p.add_argument("--questions", required=True, help="the MMAU JSON (e.g. mmau-test-mini.json)")
    p.add_argument(
        "--matcher",
        choices=("official", "official_normalized", "sbert"),
        default="official",
        help="official: evaluation.py's rule on the raw reply (the benchmark's number); "
        "official_normalized: the same after mapping letter / '(B) text' replies to the choice; "
        "sbert: the segmentwise paper's nearest choice",
    )
    p.add_argument(
        "--no-normalize",
        action="store_true",
        help="sbert only: match raw replies (official is always raw, official_normalized never)",
    )
    p.add_argument(
        "--sbert-model",
        default=None,
        help="local sentence-transformers folder (default: packaged all-MiniLM-L6-v2)",
    )
    p.add_argument(
        "--items",
        default=None,
        help="also write per-item results (raw, normalized, correct) to this JSONL",
    )
    p.set_defaults(func=cmd_mmau)

    p = sub.add_parser("captions", help="CIDEr-D, BLEU-4, METEOR, ROUGE-L (0-1)")
    common(p)
    p.add_argument(
        "--references", required=True, help="clotho_captions_evaluation.csv or AudioCaps test.csv"
    )
    p.add_argument("--format", choices=("auto", "clotho", "audiocaps"), default="auto")
    p.add_argument("--metrics", nargs="+", default=["cider_d", "bleu_4", "meteor", "rouge_l"])
    p.set_defaults(func=cmd_captions)

    p = sub.add_parser("aqa", help="ClothoAQA accuracy (percent), yes/no and single-word apart")
    common(p)
    p.add_argument("--answers", required=True, help="clotho_aqa_test.csv")
    p.add_argument(
        "--subset", choices=("all", "unanimous", "non_binary", "majority"), default="unanimous"
    )
    p.set_defaults(func=cmd_aqa)

    p = sub.add_parser("asr", help="WER / CER (percent, pooled) after Whisper's English normaliser")
    common(p)
    p.add_argument(
        "--references", required=True, help="data root holding LibriSpeech/<split>/ transcripts"
    )
    p.add_argument("--split", default="test-clean", help="test-clean, test-other, ...")
    p.set_defaults(func=cmd_asr)

    p = sub.add_parser(
        "compare", help="relative drop and loyalty of a run against the unpruned run"
    )
    p.add_argument("--run", required=True, help="run folder with predictions.jsonl + metrics.json")
    p.add_argument("--baseline", required=True, help="the unpruned run folder")
    p.add_argument(
        "--questions", default=None, help="MMAU JSON: compare chosen options instead of raw text"
    )
    p.add_argument("--task", default="captioning", help="task when metrics.json does not record it")
    p.add_argument("--field", default="prediction")
    p.set_defaults(func=cmd_compare)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from audioprune.metrics.captioning import JavaNotFoundError

    try:
        result = args.func(args)
    except (ValueError, OSError, ImportError, JavaNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
