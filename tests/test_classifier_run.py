"""The classifier family through the shared run loop: loaders, metrics, `audioprune.run` with a
tiny AST on the synthetic set (records, resume, identity), and deterministic resumable training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from audioprune.data import AudioLoadError, DatasetFormatError, load_dataset
from audioprune.records import Sample


def write_esc50(root, rows, header="filename,fold,target,category,esc10,src_file,take"):
    (root / "meta").mkdir(parents=True, exist_ok=True)
    (root / "meta" / "esc50.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    return root


def test_esc50_folds_labels_and_errors(tmp_path):
    rows = [
        f"{f}-{i}.wav,{f},{i % 2},{'dog' if i % 2 == 0 else 'rain'},False,x,A"
        for f in (1, 2)
        for i in range(3)
    ]
    root = write_esc50(tmp_path / "ok", rows)
    test, info = load_dataset("esc50", root=root, fold=2, expected_count=6, missing_audio="ignore")
    assert [s.id for s in test] == ["2-0.wav", "2-1.wav", "2-2.wav"]
    assert info.extra["labels"] == ["dog", "rain"] and test[1].answer == "rain"
    train, _ = load_dataset(
        "esc50", root=root, fold=2, split="train", expected_count=6, missing_audio="ignore"
    )
    assert {s.meta["fold"] for s in train} == {1}
    with pytest.raises(DatasetFormatError, match="6 rows"):
        load_dataset("esc50", root=root, missing_audio="ignore")  # the real set has 2,000
    bad = write_esc50(tmp_path / "bad", rows[:2] + ["3-0.wav,seven,0,dog,False,x,A"])
    with pytest.raises(DatasetFormatError, match=r"esc50.csv: row 4.*fold must be an int"):
        load_dataset("esc50", root=bad, expected_count=3, missing_audio="ignore")
    clash = write_esc50(tmp_path / "clash", rows[:2] + ["1-9.wav,1,0,cat,False,x,A"])
    with pytest.raises(DatasetFormatError, match="target 0 is 'dog' elsewhere"):
        load_dataset("esc50", root=clash, expected_count=3, missing_audio="ignore")
    with pytest.raises(AudioLoadError, match="ESC-50: 3 of 3 audio files are missing"):
        load_dataset("esc50", root=root, fold=1, expected_count=6)


def test_synthetic_temporal_classes_differ_only_in_timing(session_cache):
    from audioprune.data import load_audio
    from audioprune.data.synthetic_classes import synthesize_class

    early = synthesize_class("burst_early", np.random.default_rng(0))
    late = synthesize_class("burst_late", np.random.default_rng(0))
    energy = lambda w: np.convolve(w**2, np.ones(1600), "same")  # noqa: E731
    assert np.argmax(energy(early)) < 0.4 * 16000 < 0.9 * 16000 < np.argmax(energy(late))
    # same burst pitch distribution: the draws that set pitch are identical for equal rng seeds
    spectrum = lambda w: np.abs(np.fft.rfft(w))  # noqa: E731
    assert np.argmax(spectrum(early)) == np.argmax(spectrum(late))
    samples, info = load_dataset(
        "synthetic_classes", root=session_cache / "data" / "sc", clips_per_class=5
    )
    assert len(samples) == 10 and len(info.extra["labels"]) == 10  # fold 5: one clip per class
    again, _ = load_dataset(
        "synthetic_classes", root=session_cache / "data" / "sc", clips_per_class=5
    )
    assert np.array_equal(
        load_audio(samples[0].audio_path, 16000), load_audio(again[0].audio_path, 16000)
    )


def test_accuracy_and_map():
    from sklearn.metrics import average_precision_score

    from audioprune.metrics import compute_metrics

    labels = ["a", "b", "c"]
    samples = [
        Sample(str(i), None, "classification", answer=labels[i % 3], choices=labels)
        for i in range(6)
    ]
    result = compute_metrics("classification", samples, {"0": "a", "1": "b", "2": "a", "3": "a"})
    assert result["accuracy"] == pytest.approx(50.0) and result["missing"] == 2
    multi = [
        Sample("x", None, "multilabel", references=["a", "b"], choices=labels),
        Sample("y", None, "multilabel", references=["b"], choices=labels),
        Sample("z", None, "multilabel", references=["a"], choices=labels),
    ]
    preds = {"x": [0.9, 0.2, 0.1], "y": [0.3, 0.8, 0.5], "z": [0.4, 0.6, 0.2]}
    truth = np.array([[1, 1], [0, 1], [1, 0]])
    scores = np.array([[0.9, 0.2], [0.3, 0.8], [0.4, 0.6]])
    expected = 100 * np.mean(average_precision_score(truth, scores, average=None))
    assert compute_metrics("multilabel", multi, preds)["mAP"] == pytest.approx(
        expected
    )  # class c has no positive


@pytest.fixture
def tiny_run_cfg(compose_cfg, session_cache):
    def make(*overrides):
        return compose_cfg(
            "model=tiny_ast",
            "model.build_tiny=ast_random",
            f"model.pretrained={session_cache / 'models' / 'tiny-ast-random'}",
            "dataset=synthetic_classes",
            f"dataset.args.root={session_cache / 'data' / 'sc'}",
            "dataset.args.clips_per_class=5",
            "batch_size=4",
            *overrides,
        )

    return make


@pytest.mark.slow
def test_run_loop_drives_the_classifier_family(tiny_run_cfg):
    from audioprune.classifier.scores import stage_counts
    from audioprune.runner import run

    full = run(tiny_run_cfg("selector=none", "retention=1.0"))
    pruned = run(tiny_run_cfg("selector=topk", "retention=0.5"))
    assert pruned.computed == 10 and full.metrics["run"]["num_predictions"] == 10
    record = pruned.records[0]
    assert record["audio_tokens"] == 64 and record["kept_tokens"] == stage_counts(64, 0.5, 3)[-1]
    assert record["kept_per_stage"] == [32, 16, 8] and len(record["kept_indices"]) == 8
    assert record["prediction"] in pruned.metrics["dataset"]["extra"]["labels"]
    assert pruned.metrics["summary"]["gmacs_mean"] < full.metrics["summary"]["gmacs_mean"]
    assert "accuracy" in pruned.metrics["metrics"] and "relative_drop" in pruned.metrics
    assert full.records[0]["kept_indices"] is None
    # resume: nothing recomputed; another pruning layout is another run
    assert run(tiny_run_cfg("selector=topk", "retention=0.5")).computed == 0
    other = run(tiny_run_cfg("selector=topk", "retention=0.5", "model.pruning.layers=[0,1,2]"))
    assert other.computed == 10 and other.run_dir != pruned.run_dir
    identity = json.loads((other.run_dir / "identity.json").read_text())
    assert identity["model"]["pruning"]["layers"] == [0, 1, 2] and identity["prompt"] is None


def test_model_without_the_dataset_classes_is_refused(tiny_run_cfg, compose_cfg, session_cache):
    from audioprune.loops.classifier import check_labels

    samples = [Sample("1", None, "classification", answer="dog", choices=["dog"])]
    with pytest.raises(ValueError, match="no class for 1 dataset label"):
        check_labels(samples, ["burst_early"], "tiny_ast")


def test_training_is_deterministic_and_resumes_mid_epoch(tmp_path, session_cache):
    from audioprune.classifier.train import Recipe, features_of, train_classifier
    from audioprune.data.synthetic_classes import CLASSES
    from audioprune.models.ast import ASTAdapter, build_random_ast

    samples, _ = load_dataset(
        "synthetic_classes", root=session_cache / "data" / "sc", clips_per_class=5, split="all"
    )
    init = build_random_ast(tmp_path / "init", list(CLASSES), seed=3)
    feats = features_of(ASTAdapter(str(init)), samples)
    recipe = dict(epochs=2, batch_size=16, lr=1e-3, base_keep_rate=0.5, shrink_start=0, shrink_epochs=1,
                  schedule="step", selector="random")  # fmt: skip

    def train(out, **kw):
        adapter = ASTAdapter(str(init))
        return adapter, train_classifier(
            adapter, samples, Recipe(**{**recipe, **kw}), out, features=feats
        )

    a, first = train(tmp_path / "a")
    b, _ = train(tmp_path / "b", max_steps=5)  # stops inside epoch 2 (4 steps per epoch) ...
    b, second = train(tmp_path / "b")  # ... and resumes there
    assert first["steps"] == second["steps"] == 8
    assert [h["keep_rate"] for h in first["history"]][:5] == [
        1.0,
        0.9267766952966369,
        0.75,
        0.5732233047033631,
        0.5,
    ]
    for (name, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(p, q), name


def test_speech_commands_audioset_voxceleb_layouts(tmp_path):
    sc = tmp_path / "sc"
    for rel in ("yes/a_nohash_0.wav", "yes/b_nohash_0.wav", "no/c_nohash_0.wav", "no/d_nohash_0.wav",
                "_background_noise_/white.wav"):  # fmt: skip
        (sc / rel).parent.mkdir(parents=True, exist_ok=True)
        (sc / rel).write_bytes(b"")
    (sc / "testing_list.txt").write_text("yes/a_nohash_0.wav\n")
    (sc / "validation_list.txt").write_text("no/c_nohash_0.wav\n")
    test, _ = load_dataset(
        "speech_commands", root=sc, split="test", expected_count=1, missing_audio="ignore"
    )
    train, info = load_dataset(
        "speech_commands", root=sc, split="train", expected_count=2, missing_audio="ignore"
    )
    assert [s.id for s in test] == ["yes/a_nohash_0.wav"] and test[0].answer == "yes"
    assert [s.id for s in train] == ["no/d_nohash_0.wav", "yes/b_nohash_0.wav"]
    with pytest.raises(DatasetFormatError, match="1 clips.*expected 11005|11005"):
        load_dataset("speech_commands", root=sc, split="test", missing_audio="ignore")

    aset = tmp_path / "as"
    aset.mkdir()
    (aset / "class_labels_indices.csv").write_text(
        'index,mid,display_name\n0,/m/a,Speech\n1,/m/b,"Dog, bark"\n'
    )
    (aset / "eval.json").write_text(json.dumps({"data": [
        {"wav": "/x/1.wav", "labels": "/m/a,/m/b"}, {"wav": "/x/2.wav", "labels": "/m/b"}]}))  # fmt: skip
    samples, info = load_dataset("audioset", root=aset, json_file="eval.json", audio_dir="audio",
                                 expected_count=2, missing_audio="ignore")  # fmt: skip
    assert samples[0].references == ["Speech", "Dog, bark"] and samples[1].choices == [
        "Speech",
        "Dog, bark",
    ]
    assert samples[0].audio_path == aset / "audio" / "1.wav" and info.task == "multilabel"
    (aset / "bad.json").write_text(json.dumps({"data": [{"wav": "/x/3.wav", "labels": "/m/zzz"}]}))
    with pytest.raises(DatasetFormatError, match=r"bad.json: item 0.*unknown label id"):
        load_dataset(
            "audioset", root=aset, json_file="bad.json", expected_count=1, missing_audio="ignore"
        )

    vox = tmp_path / "vox"
    vox.mkdir()
    (vox / "iden_split.txt").write_text(
        "1 id1/v/1.wav\n3 id1/v/2.wav\n2 id2/w/1.wav\n3 id2/w/2.wav\n"
    )
    test, info = load_dataset("voxceleb1", root=vox, allow_subset=True, missing_audio="ignore")
    assert [s.answer for s in test] == ["id1", "id2"] and info.extra["labels"] == ["id1", "id2"]
    with pytest.raises(DatasetFormatError, match="2 speakers, expected 1251"):
        load_dataset("voxceleb1", root=vox, missing_audio="ignore")


@pytest.mark.slow
def test_demo_section_sweep_is_deterministic(tmp_path, capsys):
    """The demo's train → prune → fine-tune sweep (shrunk) twice from scratch: same numbers."""
    import sys

    from audioprune.runner import reset_process_state

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from demo_classifier import classifier_section

    tables = []
    for attempt in ("a", "b"):
        reset_process_state()
        tables.append(
            classifier_section(
                str(tmp_path / attempt / "results"),
                [
                    f"paths.cache_dir={tmp_path / attempt / 'cache'}",
                    "dataset.args.clips_per_class=5",
                ],
                seeds=[0],
                pretrain_steps=4,
                finetune_steps=3,
                selectors=["topk"],
                retentions=[0.5],
                finetune_selectors=["random"],
                finetune_retentions=[0.5],
            )  # fmt: skip
        )
    out = capsys.readouterr().out
    assert "synthetic, small-model numbers" in out and "| pruning-aware fine-tune | random |" in out
    a, b = (t[["mode", "selector", "retention", "accuracy", "gmacs"]] for t in tables)
    assert a.equals(b) and len(a) == 4  # none + topk inference-only; none + random fine-tuned
    assert (tmp_path / "a" / "results" / "classifier_accuracy_vs_gmacs.png").is_file()


def test_train_cli_fine_tunes_a_checkpoint_for_the_dataset(tmp_path, session_cache, capsys):
    """`python -m audioprune.classifier.train` is a Hydra app; its body is train_from_config."""
    from audioprune.classifier.train import train_from_config
    from audioprune.config import compose

    out = tmp_path / "ft"
    train_from_config(
        compose(
            [
                "model=tiny_ast_random",
                f"model.pretrained={session_cache / 'models' / 'tiny-ast-random'}",
                "dataset=synthetic_classes",
                f"dataset.args.root={session_cache / 'data' / 'sc'}",
                "dataset.args.clips_per_class=5",
                "+train=tiny_synthetic",
                "train.recipe.max_steps=2",
                f"train.out={out}",
            ]
        )
    )
    summary = json.loads((out / "training.json").read_text())
    assert summary["steps"] == 2 and summary["recipe"]["selector"] == "topk"
    assert summary["samples"] == 40  # folds 1-4 of 5 clips x 10 classes
    assert (out / "config.json").is_file() and '"steps": 2' in capsys.readouterr().out
