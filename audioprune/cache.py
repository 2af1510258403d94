"""Reuse of audio encoder outputs across runs of one model.

Within a sweep over selectors / retentions / segments the audio path (encoder + scores + keys)
of a clip is the same for every run, so it is computed once: kept in memory inside one process
(Hydra's default launcher runs all jobs of a multirun in one process) and optionally on disk as
safetensors files (across processes), under a size budget with oldest-first eviction.
A damaged cache file is reported with a warning naming it, deleted and recomputed. The runner
keys clips by file identity (`audio_file_key`), so a hit skips reading the audio too.
An entry holds the optional TokenWindow fields it was encoded with; a lookup names the fields it
needs (`needs`), and an entry without one of them is a miss, recomputed and replaced.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from audioprune.models.base import EncodedAudio
from audioprune.selectors.base import TokenWindow

log = logging.getLogger(__name__)
K = TypeVar("K")
V = TypeVar("V")
# Every tensor field of TokenWindow an entry may hold; optional ones are stored when present, and
# `lookup(..., needs)` treats an entry lacking a needed one as a miss (never silently used).
FIELDS = ("scores", "hidden", "keys", "head_scores", "head_max_scores", "self_scores")


def waveform_key(waveform: np.ndarray) -> str:
    """Content hash of a waveform, the key `get_or_encode` uses for audio that has no file."""
    data = np.ascontiguousarray(waveform, dtype=np.float32)
    return hashlib.sha256(data.tobytes() + str(data.shape).encode()).hexdigest()[:32]


def audio_file_key(path: str | Path, sampling_rate: int) -> str:
    """Key of an audio file as the model hears it: resolved path, size, mtime, target rate.

    Lets a sweep find a clip's encoder output without reading and resampling the file again; an
    edited file gets a new mtime and so a new key.
    """
    stat = Path(path).stat()
    ident = f"{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{sampling_rate}"
    return hashlib.sha256(ident.encode()).hexdigest()[:32]


def _nbytes(encoded: EncodedAudio) -> int:
    total = 0
    for w in encoded.windows:
        for name in FIELDS:
            t = getattr(w, name)
            if t is not None:
                total += t.numel() * t.element_size()
    if encoded.padding_hidden is not None:
        total += encoded.padding_hidden.numel() * encoded.padding_hidden.element_size()
    return total


def _to_tensors(encoded: EncodedAudio) -> dict[str, torch.Tensor]:
    out = {}
    for i, w in enumerate(encoded.windows):
        for name in FIELDS:
            t = getattr(w, name)
            if t is not None:
                out[f"w{i}.{name}"] = t.detach().cpu().contiguous()
    if encoded.padding_hidden is not None:
        out["padding_hidden"] = encoded.padding_hidden.detach().cpu().contiguous()
    return out


def _from_tensors(tensors: dict[str, torch.Tensor]) -> EncodedAudio:
    count = 1 + max(int(k.split(".")[0][1:]) for k in tensors if k.startswith("w"))
    windows = []
    for i in range(count):
        if f"w{i}.scores" not in tensors:
            raise ValueError(f"window {i} has no scores")
        windows.append(TokenWindow(**{n: tensors.get(f"w{i}.{n}") for n in FIELDS}))
    return EncodedAudio(windows=windows, padding_hidden=tensors.get("padding_hidden"))


def _holds(encoded: EncodedAudio, needs: frozenset[str]) -> bool:
    """Whether every window of a cached entry has every field in `needs`."""
    return all(getattr(w, name) is not None for w in encoded.windows for name in needs)


class BoundedMemory(Generic[K, V]):
    """An in-memory map under a size budget (`size(value)` bytes): the least recently used
    entries leave first, the newest always stays. The memory tier of `EncoderCache` and the
    classifier family's fbank features (`audioprune.state.feature_cache`) are one each."""

    def __init__(self, max_bytes: int, size: Callable[[V], int]):
        self.max_bytes = max_bytes
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self.used = 0

    def __contains__(self, key: K) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)  # recently used: evicted last
        return value

    def put(self, key: K, value: V) -> None:
        if key in self._items:  # replaced (e.g. re-encoded with more fields)
            self.used -= self._size(self._items.pop(key))
        self._items[key] = value
        self.used += self._size(value)
        while self.used > self.max_bytes and len(self._items) > 1:
            _, old = self._items.popitem(last=False)
            self.used -= self._size(old)


class EncoderCache:
    """get_or_encode(fingerprint, waveforms, encode_fn) with memory and disk tiers.

    Counters `hits` and `misses` count clips (not calls), so tests can check that a sweep of
    8 runs encodes each clip once.
    """

    def __init__(
        self,
        memory: bool = True,
        disk: bool = False,
        directory: str | Path | None = None,
        max_gb: float = 4.0,
        memory_gb: float = 4.0,
    ):
        self.memory = memory
        self.disk = disk and directory is not None
        self.directory = Path(directory) if directory is not None else None
        self.max_bytes = int(max_gb * 2**30)
        self.memory_bytes = int(memory_gb * 2**30)
        self._mem: BoundedMemory[tuple[str, str], EncodedAudio] = BoundedMemory(
            self.memory_bytes, _nbytes
        )
        self.hits = 0
        self.misses = 0

    # -- disk tier -----------------------------------------------------------------------
    def _path(self, fingerprint: str, key: str) -> Path:
        assert self.directory is not None
        model = hashlib.sha256(fingerprint.encode()).hexdigest()[:16]
        return self.directory / model / f"{key}.safetensors"

    def _disk_get(self, fingerprint: str, key: str) -> EncodedAudio | None:
        path = self._path(fingerprint, key)
        if not path.exists():
            return None
        try:
            tensors = load_file(str(path))
            encoded = _from_tensors(tensors)
        except Exception as err:  # any damage: truncated file, bad header, missing fields
            log.warning("encoder cache file %s is damaged (%s); recomputing it", path, err)
            path.unlink(missing_ok=True)
            return None
        os.utime(path)  # recently used: evicted last
        return encoded

    def _disk_put(self, fingerprint: str, key: str, encoded: EncodedAudio) -> None:
        path = self._path(fingerprint, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        save_file(_to_tensors(encoded), str(tmp), metadata={"fingerprint": fingerprint})
        os.replace(tmp, path)
        self._evict_disk()

    def _evict_disk(self) -> None:
        assert self.directory is not None
        files = [p for p in self.directory.rglob("*.safetensors") if p.is_file()]
        sizes = {p: p.stat().st_size for p in files}
        total = sum(sizes.values())
        for path in sorted(files, key=lambda p: p.stat().st_mtime):
            if total <= self.max_bytes:
                break
            total -= sizes[path]
            path.unlink(missing_ok=True)

    def lookup(
        self, fingerprint: str, keys: Sequence[str], needs: frozenset[str] = frozenset()
    ) -> list[EncodedAudio | None]:
        """Cached encoder outputs for `keys` (None where missing); counts hits and misses.

        needs: TokenWindow fields the caller will read ("hidden", "keys", "head_scores", ...);
        an entry whose windows lack one of the cached FIELDS among them counts as missing.
        """
        stored = frozenset(needs) & frozenset(FIELDS)  # fields computed later are not cached
        found: list[EncodedAudio | None] = []
        for key in keys:
            hit = self._mem.get((fingerprint, key)) if self.memory else None
            if hit is None and self.disk:
                hit = self._disk_get(fingerprint, key)
                if hit is not None and self.memory:
                    self._mem.put((fingerprint, key), hit)
            if hit is not None and not _holds(hit, stored):
                hit = None
            found.append(hit)
        misses = sum(hit is None for hit in found)
        self.hits += len(keys) - misses
        self.misses += misses
        return found

    def put(self, fingerprint: str, key: str, encoded: EncodedAudio) -> EncodedAudio:
        """Store one clip's encoder output (moved to CPU); returns the stored copy."""
        encoded = EncodedAudio(
            windows=[
                TokenWindow(
                    **{
                        name: None if getattr(w, name) is None else getattr(w, name).detach().cpu()
                        for name in FIELDS
                    }
                )
                for w in encoded.windows
            ],
            padding_hidden=None
            if encoded.padding_hidden is None
            else encoded.padding_hidden.detach().cpu(),
        )
        if self.memory:
            self._mem.put((fingerprint, key), encoded)
        if self.disk:
            self._disk_put(fingerprint, key, encoded)
        return encoded

    def get_or_encode(
        self,
        fingerprint: str,
        waveforms: Sequence[np.ndarray],
        encode_fn: Callable[[list[np.ndarray]], list[EncodedAudio]],
        needs: frozenset[str] = frozenset(),
    ) -> tuple[list[EncodedAudio], list[bool]]:
        """Encoder outputs for in-memory `waveforms`, keyed by content (and, per clip, whether
        it came from cache); only the clips not cached (or cached without a field in `needs`)
        go through `encode_fn`, in one batch."""
        keys = [waveform_key(w) for w in waveforms]
        found = self.lookup(fingerprint, keys, needs)
        missing = [i for i, hit in enumerate(found) if hit is None]
        if missing:
            fresh = encode_fn([waveforms[i] for i in missing])
            for i, encoded in zip(missing, fresh):
                found[i] = self.put(fingerprint, keys[i], encoded)
        return found, [i not in missing for i in range(len(keys))]
