"""A trained tiny classifier (`model.build_tiny: ast_synthetic`) is built by the run, above the
model adapters (the training loop sits above them), and the AST adapter builds only the
untrained `ast_random` itself, so models/ast.py does not import the classifier training code."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from audioprune.classifier import tiny_classifier as tiny


def model_cfg(path: Path, kind: str | None, adapter: str = "ast"):
    return OmegaConf.create({"adapter": adapter, "pretrained": str(path), "build_tiny": kind})


@pytest.fixture
def builds(monkeypatch):
    calls = []
    monkeypatch.setattr(
        tiny, "build_tiny_classifier", lambda kind, path, **kw: calls.append((kind, Path(path)))
    )
    return calls


def test_a_missing_trained_tiny_model_is_built(tmp_path, builds):
    tiny.ensure_tiny_classifier(model_cfg(tmp_path / "m", "ast_synthetic"))
    assert builds == [("ast_synthetic", tmp_path / "m")]


def test_nothing_is_built_when_present_untrained_or_another_model(tmp_path, builds):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    tiny.ensure_tiny_classifier(model_cfg(tmp_path / "m", "ast_synthetic"))
    tiny.ensure_tiny_classifier(model_cfg(tmp_path / "n", "ast_random"))
    tiny.ensure_tiny_classifier(model_cfg(tmp_path / "n", None))
    tiny.ensure_tiny_classifier(model_cfg(tmp_path / "n", "qwen2_audio", adapter="qwen2_audio"))
    assert builds == []


def test_the_runner_builds_it_before_loading(
    compose_cfg, tmp_path, monkeypatch, fresh_process_state
):
    from audioprune import runner

    seen = []

    class Stop(Exception):
        pass

    def record(model):
        seen.append(model.build_tiny)
        raise Stop

    monkeypatch.setattr(runner, "ensure_tiny_classifier", record)
    with pytest.raises(Stop):
        runner.run(
            compose_cfg(
                "model=tiny_ast",
                "dataset=synthetic_classes",
                f"dataset.args.root={tmp_path}/classes",
                "dataset.args.clips_per_class=5",
            )
        )
    assert seen == ["ast_synthetic"]


def test_the_ast_adapter_refuses_to_train(tmp_path):
    from audioprune.models.ast import ASTAdapter

    with pytest.raises(ValueError, match="build_tiny='ast_synthetic'.*build_tiny_classifier"):
        ASTAdapter(str(tmp_path / "missing"), build_tiny="ast_synthetic")
    assert not (tmp_path / "missing").exists()
