"""Pinned run keys (issue 18): the run folder names of six reference configurations, recorded
before the redesign, must not move while the code is reorganised.

A run folder name `<label>-<hash>` is what lets a run resume and what keeps saved predictions
apart (audioprune/identity.py). A refactor (moving modules, renaming helpers, a new registry)
must leave it unchanged, or every saved run would be recomputed. The keys are computed here the
way `audioprune.runner.run` computes them, without loading any model: compose the real config,
resolve it (`audioprune.spec.resolve_run`: selector, retention, ...), hash the run identity.

The dataset part uses fixed inputs: a `DatasetInfo` whose audio fingerprint comes from two
small files with fixed bytes and fixed modification times (the real fingerprint function, so a
change in how audio is fingerprinted shows up too). Building the synthetic datasets would give
new modification times, hence new keys, on every build.

What legitimately moves a pin: a deliberate change of what a run key means (a bug fix that
changes predictions must change the key), a change in a selector's source (its code is hashed
into the key), and a package or transformers version bump (both are part of the key). Then
update the pinned value here and say so in docs/CHANGELOG.md under `## Unreleased`, naming the
runs whose folders change. Print the current values with
`python tests/test_run_keys_pinned.py`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from audioprune.config import compose
from audioprune.data.fingerprint import audio_fingerprint
from audioprune.identity import identity_hash, run_dir_for, run_identity
from audioprune.records import DatasetInfo, Sample
from audioprune.spec import resolve_run

RESULTS = "/pinned/results"
CACHE = "/pinned/cache"

# name -> (overrides, run folder name recorded before the issue 18 redesign)
PINNED: dict[str, tuple[tuple[str, ...], str]] = {
    "tiny_alm_segmentwise_topk": (
        ("model=tiny_qwen2_audio", "selector=segmentwise_topk", "retention=0.25"),
        "segmentwise_topk-S10-r0.25-75a5cd4b40",
    ),
    "tiny_alm_unpruned": (
        ("model=tiny_qwen2_audio", "selector=none", "retention=1.0"),
        "none-r1-0da542d1f1",
    ),
    "tiny_alm_visionzip": (
        ("model=tiny_qwen2_audio", "selector=visionzip", "retention=0.25"),
        "visionzip-r0.25-c4b7881dc4",
    ),
    "tiny_alm_budget_adaptive": (
        ("model=tiny_qwen2_audio", "selector=topk", "budget=adaptive", "retention=0.25"),
        "topk-r0.25-85bffc3b18",
    ),
    "classifier_tiny_ast": (
        (
            "model=tiny_ast",
            "dataset=synthetic_classes",
            "selector=segmentwise_topk",
            "retention=0.5",
        ),
        "segmentwise_topk-S10-r0.5-4f56418e08",
    ),
    # a patch-statistic selector: its source hash covers the helpers of classifier/scores.py
    "classifier_tiny_ast_intensity": (
        ("model=tiny_ast", "dataset=synthetic_classes", "selector=intensity", "retention=0.5"),
        "intensity-r0.5-a42c8f1d52",
    ),
    "whisper_tiny_en": (
        (
            "model=whisper_tiny_en",
            "dataset=librispeech_test_clean",
            "selector=segmentwise_topk",
            "retention=0.5",
        ),
        "segmentwise_topk-S10-r0.5-a4b185840f",
    ),
}


def fixed_audio(root: Path) -> dict:
    """The audio fingerprint of two files with fixed bytes and modification times."""
    samples = []
    for i in range(2):
        path = root / "audio" / f"clip{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes(range(256)) * (40 + i))
        os.utime(path, ns=(1_700_000_000_000_000_000 + i, 1_700_000_000_000_000_000 + i))
        samples.append(Sample(id=f"clip{i}", audio_path=path, task="x"))
    return audio_fingerprint(samples)


def run_folder(overrides: tuple[str, ...], audio: dict) -> str:
    """`<label>-<hash>`: the run folder name `run()` gives this configuration."""
    cfg = compose([f"paths.results_dir={RESULTS}", f"paths.cache_dir={CACHE}", *overrides])
    info = DatasetInfo(
        name=str(cfg.dataset.name),
        version=str(cfg.dataset.get("version")),
        task=str(cfg.dataset.task),
        files={"metadata": "0123abcd"},
        audio=audio,
    )
    spec = resolve_run(cfg)
    identity = run_identity(spec, info)
    folder = run_dir_for(spec, identity, cfg.paths.results_dir)
    assert folder.name.endswith(identity_hash(identity))
    assert folder.parent == Path(RESULTS) / "runs" / str(cfg.model.name) / str(cfg.dataset.name)
    return folder.name


@pytest.fixture(scope="module")
def audio(tmp_path_factory) -> dict:
    return fixed_audio(tmp_path_factory.mktemp("pinned"))


@pytest.mark.parametrize("name", sorted(PINNED))
def test_run_key_is_unchanged(name, audio):
    overrides, pinned = PINNED[name]
    assert run_folder(overrides, audio) == pinned, (
        f"the run key of {name} changed; if deliberate, update PINNED and docs/CHANGELOG.md"
    )


def test_the_pins_tell_the_configs_apart(audio):
    """Each reference config keys its own folder (the pins are not all one value)."""
    assert len({pinned for _, pinned in PINNED.values()}) == len(PINNED)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        fixed = fixed_audio(Path(tmp))
        for key, (overrides, _) in PINNED.items():
            print(f"{key}: {run_folder(overrides, fixed)}")
