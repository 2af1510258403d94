"""The run key (issue 16 §2.6, §3.1): everything that determines predictions is in it (the audio
included), nothing runtime-only is."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from omegaconf import DictConfig, OmegaConf

from audioprune import runner
from audioprune.config import compose
from audioprune.data import load_dataset, register_loader
from audioprune.errors import ConfigError
from audioprune.options import make_selector
from audioprune.records import DatasetInfo, Sample
from audioprune.spec import resolve_run


def write_librispeech(root, seed: int) -> None:
    """A 2-utterance LibriSpeech-layout folder; `seed` picks the audio, the text is fixed."""
    chapter = root / "LibriSpeech" / "test-clean" / "1" / "2"
    chapter.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for utt in ("1-2-0000", "1-2-0001"):
        sf.write(chapter / f"{utt}.flac", 0.1 * rng.standard_normal(8000), 16000)
    (chapter / "1-2.trans.txt").write_text("1-2-0000 HELLO WORLD\n1-2-0001 GOOD MORNING\n")


def key_of(cfg, info) -> str:
    spec = replace(resolve_run(cfg), retention=0.25)
    return runner.identity_hash(runner.run_identity(spec, info))


def test_same_transcripts_over_other_audio_get_another_run_key(tmp_path, compose_cfg):
    for name, seed in (("a", 0), ("b", 1)):
        write_librispeech(tmp_path / name, seed)
    cfg = compose_cfg("model=whisper_tiny_en", "dataset=librispeech_test_clean", "selector=topk")
    keys = {}
    for name in ("a", "b"):
        _, info = load_dataset("librispeech", root=tmp_path / name, allow_subset=True)
        keys[name] = key_of(cfg, info)
    assert keys["a"] != keys["b"]  # same trans.txt, different audio
    # The same audio copied elsewhere keeps its key, whatever the copy did to the file times.
    shutil.copytree(tmp_path / "a", tmp_path / "moved", copy_function=shutil.copyfile)
    _, moved = load_dataset("librispeech", root=tmp_path / "moved", allow_subset=True)
    assert key_of(cfg, moved) == keys["a"]
    # One byte changed in the middle of a file, in place (same size, same inode, the old time
    # restored, the memo warm), changes it.
    flac = next((tmp_path / "moved").rglob("1-2-0001.flac"))
    stat = flac.stat()
    data = bytearray(flac.read_bytes())
    data[len(data) // 2] ^= 0xFF
    with open(flac, "r+b") as f:
        f.write(data)
    os.utime(flac, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (flac.stat().st_size, flac.stat().st_ino) == (stat.st_size, stat.st_ino)
    _, edited = load_dataset("librispeech", root=tmp_path / "moved", allow_subset=True)
    assert key_of(cfg, edited) != keys["a"]


def test_the_digest_memo_is_keyed_by_path_size_time_and_inode(tmp_path, monkeypatch):
    """A warm memo skips the read; a changed file is read again; without a memo, the same key."""
    from audioprune.data import fingerprint

    monkeypatch.setenv("AUDIOPRUNE_HASH_CACHE", str(tmp_path / "memo.sqlite"))
    sf.write(tmp_path / "a.wav", np.zeros(1600), 16000)
    samples = [Sample(id="a", audio_path=tmp_path / "a.wav", task="classification")]
    reads = []
    real = fingerprint.file_sha256
    monkeypatch.setattr(fingerprint, "file_sha256", lambda p: reads.append(p) or real(p))
    first = fingerprint.audio_fingerprint(samples)
    second = fingerprint.audio_fingerprint(samples)
    assert len(reads) == 1 and first == second
    sf.write(tmp_path / "a.wav", np.full(1600, 0.25), 16000)
    third = fingerprint.audio_fingerprint(samples)
    assert len(reads) == 2 and third["sha256"] != first["sha256"]
    monkeypatch.setattr(fingerprint, "digest_cache_path", lambda: Path("/proc/forbidden/memo"))
    assert fingerprint.audio_fingerprint(samples) == third


@register_loader("_test_user_loader")
def _user_loader(root, **_):
    files = sorted(root.glob("*.wav"))
    samples = [Sample(id=p.stem, audio_path=p, task="classification", answer="x") for p in files]
    return samples, DatasetInfo(name="user", version="1", task="classification")


def test_every_loader_gets_an_audio_fingerprint(tmp_path, compose_cfg):
    """load_dataset fingerprints the audio of any loader, a user's own included."""
    sf.write(tmp_path / "a.wav", np.zeros(1600), 16000)
    _, first = load_dataset("_test_user_loader", root=tmp_path)
    sf.write(tmp_path / "a.wav", np.full(1600, 0.5), 16000)
    _, second = load_dataset("_test_user_loader", root=tmp_path)
    assert first.audio["files"] == 1 and first.audio["sha256"] != second.audio["sha256"]
    cfg = compose_cfg("selector=topk")
    assert key_of(cfg, first) != key_of(cfg, second)


# ------------------------------------------------------------------ every config key (§2.6)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
INFO = DatasetInfo(name="x", version="v1", task="captioning", files={"meta": "ab12"})
CLASSIFIER_MODELS = {
    "ast_audioset",
    "audiomae_as2m",
    "tiny_ast",
    "tiny_ast_random",
    "tiny_audiomae",
}
MODEL_FOR_TASK = {"classification": "tiny_ast", "multilabel": "tiny_ast", "asr": "whisper_tiny_en"}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIGS / group).glob("*.yaml"))


SYNTHETIC_FOR_TASK = {
    "captioning": "synthetic_captions",
    "mcq": "synthetic_mmau",
    "aqa": "synthetic_aqa",
    "asr": "synthetic_speech",
}


def bases() -> list[tuple[list[str], DictConfig]]:
    """One composition per model and dataset option, with a model for the dataset's task and a
    pruning selector (so that positions and the budget matter); then every selector and budget
    option substituted into the default config (their YAMLs stand alone)."""
    composed = []

    def add(overrides: list[str], pick) -> None:
        """Compose `overrides`; when `pick(cfg)` names another option, compose again with it."""
        cfg = compose([*overrides, "selector=topk", "paths.results_dir=/nonexistent"])
        other = pick(cfg)
        if other is not None:
            overrides = [other, *overrides]
            cfg = compose([*overrides, "selector=topk", "paths.results_dir=/nonexistent"])
        composed.append((overrides, cfg))

    def dataset_for(cfg) -> str | None:
        if cfg.model.get("family") == "classifier":
            return "dataset=synthetic_classes"
        if "captioning" in cfg.model.prompts:
            return None
        return "dataset=" + next(SYNTHETIC_FOR_TASK[t] for t in cfg.model.prompts)

    def model_for(cfg) -> str | None:
        model = MODEL_FOR_TASK.get(cfg.dataset.task)
        return None if model is None else f"model={model}"

    add([], lambda cfg: None)  # the default config: every key is checked on it
    for model in options("model"):
        add([f"model={model}"], dataset_for)
    for dataset in options("dataset"):
        add([f"dataset={dataset}"], model_for)
    default = composed[0][1]
    classifier = compose(
        [
            "model=tiny_ast",
            "dataset=synthetic_classes",
            "selector=topk",
            "paths.results_dir=/nonexistent",
        ]
    )
    for group in ("selector", "budget"):
        for option in options(group):
            # into the default (audio LM) config, or a classifier's for an option only
            # classifiers run (the patch-statistic selectors): a run refuses it elsewhere
            for base in (default, classifier):
                cfg = base.copy()
                cfg[group] = OmegaConf.load(CONFIGS / group / f"{option}.yaml")
                if runs(cfg):
                    break
            composed.append(([f"{group}={option}"], cfg))
    return composed


def runs(cfg) -> bool:
    """Whether a run accepts `cfg` (`resolve_run` refuses nothing in it)."""
    try:
        resolve_run(cfg)
    except ConfigError:
        return False
    return True


def leaves(node, prefix: str = ""):
    """Dotted keys of the leaves (scalars, lists, empty dicts) of a plain config."""
    if isinstance(node, dict) and node:
        for k, v in node.items():
            yield from leaves(v, f"{prefix}{k}.")
    else:
        yield prefix[:-1], node


def mutations(value) -> list:
    """Other values of the same kind, most plausible first."""
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value - 1]
    if isinstance(value, float):
        return [value * 0.5, value + 0.1]
    if isinstance(value, str):
        return [value + "_x"]
    if isinstance(value, list):
        return [value[:-1]] if len(value) > 1 else [value + value, ["x"]]
    if isinstance(value, dict):
        return [{"x": 1}]
    return [0.5, 2, "x"]  # None


def key_or_refusal(cfg) -> str | None:
    """The run key of `cfg`, or None when a value is refused while building it."""
    try:
        return runner.identity_hash(runner.run_identity(resolve_run(cfg), INFO))
    except (ValueError, TypeError, KeyError, FileNotFoundError):
        return None


def test_every_prediction_key_changes_the_run_key_and_no_runtime_key_does(monkeypatch):
    from audioprune import identity
    from audioprune.identity import is_runtime_option
    from audioprune.models.tiny import build_inputs

    # Hashing a selector's source is what costs here; its own tests are in test_identity.py.
    monkeypatch.setattr(identity, "selector_source_hash", cache(identity.selector_source_hash))
    changed, refused = 0, []
    for overrides, composed in bases():
        # The first composition checks every key; the others the keys of their own group.
        group = None if not overrides else overrides[-1].partition("=")[0]
        plain_cfg = OmegaConf.to_container(composed, resolve=True)  # paths resolved once
        base_cfg = OmegaConf.create(plain_cfg)
        base = key_or_refusal(base_cfg)
        assert base is not None, overrides
        task = base_cfg.dataset.get("prompt_task") or base_cfg.dataset.task
        prunes = make_selector(base_cfg.selector).prunes
        for dotted, value in leaves(plain_cfg):
            if group is not None and not dotted.startswith(f"{group}."):
                continue
            if dotted.startswith("model.prompts."):  # only the run's own prompt is in the key
                expect_change = dotted == f"model.prompts.{task}"
            elif not prunes and (
                dotted in ("retention", "positions") or dotted.startswith("budget.")
            ):
                expect_change = False  # an unpruned run keeps every token whatever they say
            elif dotted == "model.build_tiny":
                # How to build a missing folder: runtime, except for a model assembled from
                # files shipped with the package, whose shipped files are in the key.
                expect_change = build_inputs(value) is not None
            else:
                expect_change = not is_runtime_option(dotted)
            for new in mutations(value):
                # Changed in place and restored: re-creating the config per key is what cost.
                OmegaConf.update(base_cfg, dotted, new, merge=False)
                key = key_or_refusal(base_cfg)
                OmegaConf.update(base_cfg, dotted, value, merge=False)
                if key is None:
                    refused.append(dotted)
                    continue
                assert (key != base) == expect_change, (
                    f"{overrides}: {dotted}={new!r} "
                    + ("does not change" if expect_change else "changes")
                    + " the run key"
                )
                changed += expect_change
                break
        assert key_or_refusal(base_cfg) == base, overrides  # every value was restored
    # The test is not vacuous: most values are accepted and change the key.
    assert changed > 80 and len(refused) < changed / 4, (changed, sorted(set(refused)))


# ------------------------------------------------------------------ multi-label scoring (§2.6)


@pytest.mark.slow
def test_multilabel_run_saves_sigmoid_scores_and_scores_map(
    tmp_path, compose_cfg, session_cache, fresh_runner
):
    """AudioSet layout end to end on a tiny AST: each saved score is sigmoid(logit) of the class
    (independent, not a softmax over the classes), and the mAP is computed from them."""
    from sklearn.metrics import average_precision_score

    from audioprune.data import load_audio
    from audioprune.data.synthetic_classes import CLASSES
    from audioprune.selectors import build_selector

    root = tmp_path / "audioset"
    (root / "audio").mkdir(parents=True)
    names = list(CLASSES)
    (root / "class_labels_indices.csv").write_text(
        "index,mid,display_name\n" + "".join(f"{i},/m/{i},{n}\n" for i, n in enumerate(names))
    )
    rng = np.random.default_rng(0)
    items = []
    for i in range(4):
        sf.write(root / "audio" / f"{i}.wav", 0.1 * rng.standard_normal(16000), 16000)
        items.append({"wav": f"/elsewhere/{i}.wav", "labels": f"/m/{i},/m/{(i + 3) % 10}"})
    (root / "eval.json").write_text(json.dumps({"data": items}))
    cfg = compose_cfg(
        "model=tiny_ast_random",
        "dataset=audioset_eval",
        f"dataset.args.root={root}",
        "dataset.args.json_file=eval.json",
        "dataset.args.audio_dir=audio",
        "dataset.args.expected_count=4",
        "selector=none",
        "retention=1.0",
        "batch_size=2",
    )
    result = fresh_runner.run(cfg)
    adapter = fresh_runner.get_adapter(cfg.model)
    samples, _ = load_dataset("audioset", **OmegaConf.to_container(cfg.dataset.args))
    waves = [load_audio(s.audio_path, adapter.sampling_rate) for s in samples]
    with torch.no_grad():
        logits, _ = adapter.classify(
            adapter.features(waves), build_selector("none"), 1.0, [s.id for s in samples]
        )
    index = [adapter.labels.index(n) for n in names]
    expected = logits[:, index].float().sigmoid()
    saved = torch.tensor([r["prediction"] for r in result.records])
    assert saved.shape == (4, 10)
    torch.testing.assert_close(saved, expected, atol=1e-5, rtol=0)
    truth = np.array([[n in s.references for n in names] for s in samples])
    present = truth.any(axis=0)
    ap = [
        average_precision_score(truth[:, c], saved[:, c].numpy()) for c in np.flatnonzero(present)
    ]
    assert result.metrics["metrics"]["mAP"] == pytest.approx(100 * float(np.mean(ap)), abs=1e-4)


def test_a_fixed_adaptive_mass_labels_the_run_instead_of_the_retention():
    from audioprune.identity import budget_note, run_dir_for

    overrides = ["selector=topk", "budget=adaptive", "paths.results_dir=/x"]
    cfg = compose([*overrides, "budget.mass=1.0", "retention=0.25"])
    spec = resolve_run(cfg)
    folder = run_dir_for(spec, runner.run_identity(spec, INFO), "/x")
    assert folder.name.startswith("topk-adaptive-mass1-")  # was topk-r0.25-…, keeping 100 %
    assert "retention=0.25 does not set K" in budget_note(spec)
    calibrated = compose(overrides)  # mass null: calibrated to the retention, which sets K
    calibrated_spec = replace(resolve_run(calibrated), retention=0.25)
    assert budget_note(calibrated_spec) is None
    identity = runner.run_identity(calibrated_spec, INFO)
    assert run_dir_for(calibrated_spec, identity, "/x").name.startswith("topk-r0.25-")


def test_the_shipped_projector_is_in_the_mini_models_run_key(tmp_path, monkeypatch):
    """The miniature Qwen2-Audio is assembled from files shipped with the package (the trained
    projector): replacing that file must change the run key, or runs of the old weights would be
    reused for the new ones. Models built from their config alone keep their keys."""
    from audioprune.identity import identity_hash, run_identity
    from audioprune.models import mini_alm

    def key(model: str) -> str:
        spec = resolve_run(compose([f"model={model}", "dataset=synthetic_scenes"]))
        return identity_hash(run_identity(spec, INFO))

    shipped, tiny = key("mini_qwen2_audio"), key("tiny_qwen2_audio")
    other = tmp_path / "projector.safetensors"
    other.write_bytes(mini_alm.PROJECTOR_FILE.read_bytes()[:-1] + b" ")
    monkeypatch.setattr(mini_alm, "PROJECTOR_FILE", other)
    assert key("mini_qwen2_audio") != shipped
    assert key("tiny_qwen2_audio") == tiny


def test_a_projector_named_in_build_args_is_in_the_run_key_and_refused_where_unused(tmp_path):
    """`model.build_args.projector` swaps the mini model's projector: its content (not its path)
    is in the key; a model built from its config alone cannot honour build_args: refused."""
    from audioprune.errors import ConfigError
    from audioprune.identity import identity_hash, run_identity
    from audioprune.models import mini_alm

    def key(*overrides: str) -> str:
        spec = resolve_run(compose(["dataset=synthetic_scenes", *overrides]))
        return identity_hash(run_identity(spec, INFO))

    shipped = key("model=mini_qwen2_audio")
    copy = tmp_path / "a" / "projector.safetensors"
    copy.parent.mkdir()
    copy.write_bytes(mini_alm.PROJECTOR_FILE.read_bytes())
    # The same bytes under another path: the same key (the path is where, not what).
    assert key("model=mini_qwen2_audio", f"+model.build_args.projector={copy}") == shipped
    # A bare file name is one shipped beside the projector: the shipped file itself here.
    bare = f"+model.build_args.projector={mini_alm.PROJECTOR_FILE.name}"
    assert key("model=mini_qwen2_audio", bare) == shipped
    other = tmp_path / "b.safetensors"
    other.write_bytes(mini_alm.PROJECTOR_FILE.read_bytes()[:-1] + b" ")
    assert key("model=mini_qwen2_audio", f"+model.build_args.projector={other}") != shipped
    with pytest.raises(ConfigError, match=r"model\.build_args=.*build_tiny='qwen2_audio'"):
        key("model=tiny_qwen2_audio", f"+model.build_args.projector={other}")
    with pytest.raises(mini_alm.MiniModelError, match="nope.safetensors is missing"):
        key("model=mini_qwen2_audio", f"+model.build_args.projector={tmp_path}/nope.safetensors")
