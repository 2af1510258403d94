"""The bookkeeping every dataset loader shares, kept in one place so that Clotho, AudioCaps,
ClothoAQA, MMAU and the others behave alike: `on_error: raise|skip` for malformed rows
(`RowErrors`), the `missing_audio: error|drop|keep|ignore` policy (`apply_audio_policy`), the
expected-count check, reading CSV metadata, and reading rows from a Hugging Face dataset
(`hf_rows`). `audioprune.data.common.LoaderRun` strings these together for one loader call.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audioprune.data.audio import AudioLoadError, probe_audio
from audioprune.data.base import DatasetFormatError
from audioprune.records import Sample

log = logging.getLogger(__name__)

ON_ERROR = ("raise", "skip")
MISSING_AUDIO = ("error", "drop", "keep", "ignore")


def check_choice(value: str, option: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{option} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def row_place(row: int | str) -> str:
    """How an error names a row: "row 3" for a CSV line number, else as given ("item 3")."""
    return f"row {row}" if isinstance(row, int) else str(row)


@dataclass
class RowErrors:
    """Applies `on_error`: raise at the first bad row, or record it in `skipped` and go on."""

    file: Path
    on_error: str = "raise"
    skipped: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_choice(self.on_error, "on_error", ON_ERROR)

    def bad(self, row: Any, sample_id: str | None, reason: str) -> None:
        where = f"{self.file}: {row_place(row)}" + (f" (id {sample_id!r})" if sample_id else "")
        if self.on_error == "raise":
            raise DatasetFormatError(f"{where}: {reason} (set on_error: skip to skip such rows)")
        log.warning("skipping %s: %s", where, reason)
        self.skipped.append({"file": str(self.file), "row": row, "id": sample_id, "reason": reason})


DATA_HELP = (
    "real datasets are read under paths.data_root (default ./data; set $AUDIOPRUNE_DATA or pass "
    "paths.data_root=/path, or dataset.args.root=/path/to/this/dataset); see the README's "
    '"Data" section for each layout and where to download it'
)


def metadata_not_found(path: Path, what: str = "metadata file") -> DatasetFormatError:
    """The error for a missing metadata file: names it, and whether its dataset folder exists."""
    where = "" if path.parent.is_dir() else f" (nor its folder {path.parent})"
    return DatasetFormatError(f"{path}: {what} not found{where}; {DATA_HELP}")


def text_encoding(encoding: str) -> str:
    """UTF-8 is read as utf-8-sig, so a byte-order mark (as Excel writes) is accepted."""
    return "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding


def read_csv(path: Path, required: list[str], encoding: str = "utf-8") -> list[tuple[int, dict]]:
    """(line number, row) pairs of a CSV with a header; the header must hold `required` and at
    least one row must follow it.

    A row with too many or too few fields keeps a `None` key / `None` values, which the loaders
    report as a malformed row naming its line.
    """
    import csv

    if not path.is_file():
        raise metadata_not_found(path)
    try:
        with open(path, newline="", encoding=text_encoding(encoding)) as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            absent = [c for c in required if c not in header]
            if absent:
                raise DatasetFormatError(
                    f"{path}: header has columns {header}, missing {absent}; expected at least {required}"
                )
            rows = []
            for row in reader:
                rows.append((reader.line_num, row))
    except UnicodeDecodeError as err:
        raise DatasetFormatError(
            f"{path}: not valid {encoding} text ({err}); set encoding"
        ) from err
    except csv.Error as err:
        raise DatasetFormatError(
            f"{path}: CSV parse error near line {reader.line_num}: {err}"
        ) from err
    if not rows:
        raise DatasetFormatError(f"{path}: no rows")
    return rows


def row_shape_error(row: dict, required: list[str]) -> str | None:
    """Why a csv.DictReader row is malformed (wrong field count / empty required field)."""
    if None in row:
        return f"has {len(row) - 1 + len(row[None])} fields, more than the header's {len(row) - 1}"
    short = [c for c in required if row.get(c) is None]
    if short:
        return f"has too few fields (no value for {', '.join(short)})"
    empty = [c for c in required if not str(row[c]).strip()]
    if empty:
        return f"empty {', '.join(empty)}"
    return None


def check_count(
    found: int, expected: int | None, allow_subset: bool, what: str, file: Path, skipped: int = 0
) -> None:
    """The metadata must hold exactly `expected` items (skipped rows included) unless
    `allow_subset` is set, so a truncated or wrong file never passes as the full benchmark."""
    if expected is None or allow_subset:
        return
    if found + skipped != expected:
        extra = f" ({skipped} of them skipped under on_error: skip)" if skipped else ""
        raise DatasetFormatError(
            f"{file}: found {found + skipped} {what}{extra}, expected {expected}; "
            "set allow_subset: true to accept a partial or different file"
        )


def apply_audio_policy(
    samples: list[Sample],
    rows: dict[str, Any],
    errors: RowErrors,
    missing_audio: str,
    dataset: str,
    stacklevel: int = 3,
) -> tuple[list[Sample], list[str]]:
    """Check every sample's audio file and apply the `missing_audio` policy.

    rows: sample id -> row number / index in the metadata file (for error messages).
    stacklevel: of the warning, so that it points at the code that asked for the dataset.
    Returns the samples to evaluate and the ids whose audio file was missing.

    - `error`:  any missing file raises, listing them.
    - `drop`:   samples without audio leave the evaluated set **and the metric's reference
                set** (CIDEr's IDF changes with it); a warning says so and the ids are returned
                so they land in `DatasetInfo.missing_audio`.
    - `keep`:   samples stay with `audio_path=None` (`load_audio` raises `AudioLoadError` for
                them, so a run skips them under `on_error: skip`) and they score as missing
                predictions against the full reference set.
    - `ignore`: no audio check at all (scoring saved predictions, metadata-only checks).
    A file that exists but cannot be decoded is a bad row: it raises or is skipped (`on_error`).
    """
    check_choice(missing_audio, "missing_audio", MISSING_AUDIO)
    if missing_audio == "ignore":
        return samples, []
    usable: list[Sample] = []  # audio present, or missing (decided below)
    missing: list[Sample] = []
    for sample in samples:
        reason = probe_audio(sample.audio_path) if sample.audio_path is not None else "missing"
        if reason == "missing":
            missing.append(sample)
            usable.append(sample)
        elif reason is not None:
            errors.bad(rows.get(sample.id, "?"), sample.id, f"{sample.audio_path}: {reason}")
        else:
            usable.append(sample)
    if not missing:
        return usable, []
    ids = [s.id for s in missing]
    shown = ", ".join(str(s.audio_path) for s in missing[:3]) + (" ..." if len(missing) > 3 else "")
    if missing_audio == "error":
        raise AudioLoadError(
            f"{dataset}: {len(missing)} of {len(samples)} audio files are missing ({shown}); "
            "set missing_audio: drop (evaluate the clips present) or keep (score missing clips as "
            "wrong against the full reference set)"
        )
    if missing_audio == "drop":
        message = (
            f"{dataset}: {len(missing)} of {len(samples)} clips have no audio ({shown}); they are "
            f"DROPPED from the evaluated set and from the reference set, so scores are over "
            f"{len(usable) - len(missing)} clips and not comparable to full-set numbers "
            "(missing_audio: drop; ids in DatasetInfo.missing_audio)"
        )
        gone = {id(s) for s in missing}
        usable = [s for s in usable if id(s) not in gone]
        if not usable:
            raise AudioLoadError(
                f"{dataset}: none of the {len(samples)} audio files exist ({shown}); check the "
                "dataset root and audio folder"
            )
    else:
        message = (
            f"{dataset}: {len(missing)} of {len(samples)} clips have no audio ({shown}); they are "
            "KEPT with no audio and score as missing predictions (missing_audio: keep)"
        )
        for sample in missing:
            sample.audio_path = None
            sample.meta["missing_audio"] = True
    warnings.warn(message, stacklevel=stacklevel)
    log.warning(message)
    return usable, ids


# ----------------------------------------------------------------------------------------------
# Hugging Face datasets


def hf_rows(
    hf_name: str,
    split: str,
    config: str | None = None,
    audio_column: str = "audio",
    audio_cache_dir: str | Path | None = None,
    revision: str | None = None,
) -> tuple[list[dict], dict[str, str]]:
    """Rows of a Hugging Face dataset as plain dicts, each with a local `_audio_path`.

    `hf_name` is a hub repo id or a local folder / loading script, as `datasets.load_dataset`
    accepts. Audio columns are read undecoded: a file path is used as is, embedded bytes are
    written once to `audio_cache_dir` (required then) under the row's file name. We resample
    ourselves, because some mirrors declare odd rates (e.g. 192 kHz) that `datasets` would apply.
    Returns (rows, provenance) where provenance names the repo, split and dataset fingerprint.
    """
    import datasets

    ds = datasets.load_dataset(hf_name, config, split=split, revision=revision)
    feature = ds.features.get(audio_column)
    if isinstance(feature, datasets.Audio):
        ds = ds.cast_column(audio_column, datasets.Audio(decode=False))
    local_root = Path(hf_name) if Path(hf_name).exists() else None
    rows = []
    for index, row in enumerate(ds):
        row = dict(row)
        audio = row.get(audio_column)
        path: Path | None = None
        if isinstance(audio, dict):
            src = audio.get("path")
            data = audio.get("bytes")
            if data:
                if audio_cache_dir is None:
                    raise ValueError(
                        f"{hf_name}: column {audio_column!r} embeds audio bytes; set "
                        "hf_audio_cache_dir so they can be written to files once"
                    )
                name = Path(src).name if src else f"{index:06d}.wav"
                path = Path(audio_cache_dir) / name
                if not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_name(path.name + ".tmp")
                    tmp.write_bytes(data)
                    tmp.replace(path)
            elif src:
                path = Path(src)
        elif isinstance(audio, str):
            path = Path(audio)
            if not path.is_absolute() and local_root is not None:
                path = local_root / path
        row["_audio_path"] = path
        row["_index"] = index
        rows.append(row)
    provenance = {
        "hf_name": str(hf_name),
        "hf_split": split,
        "hf_config": str(config),
        "hf_fingerprint": str(getattr(ds, "_fingerprint", "")),
    }
    return rows, provenance
