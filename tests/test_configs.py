"""Every shipped YAML loads, and every option of every config group composes with the root config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from audioprune.config import CONFIG_DIR, compose

ALL_YAML = sorted(CONFIG_DIR.rglob("*.yaml"))
GROUPS = ["model", "dataset", "selector", "experiment"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def test_there_are_configs_to_check():
    assert len(ALL_YAML) >= 20
    for group in GROUPS:
        assert options(group), f"config group {group}/ is empty"


@pytest.mark.parametrize("path", ALL_YAML, ids=lambda p: str(p.relative_to(CONFIG_DIR)))
def test_every_yaml_parses(path: Path):
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict) and data, f"{path} is empty or not a mapping"


@pytest.mark.parametrize(
    "group,option", [(g, o) for g in GROUPS for o in options(g)], ids=lambda x: str(x)
)
def test_every_option_composes_and_resolves(group, option, tmp_path):
    cfg = compose([f"{group}={option}", f"paths.root_dir={tmp_path}"])
    if cfg.dataset.task in ("classification", "multilabel") and group != "model":
        # classification datasets pair with the classifier family's default model
        cfg = compose([f"{group}={option}", "model=tiny_ast", f"paths.root_dir={tmp_path}"])
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert resolved["model"]["adapter"] in ("qwen2_audio", "audio_flamingo_3", "ast", "audiomae")
    assert resolved["dataset"]["loader"] and resolved["dataset"]["task"] in (
        "captioning",
        "mcq",
        "aqa",
        "classification",
        "multilabel",
    )
    assert "name" in resolved["selector"] or "_target_" in resolved["selector"]
    if resolved["model"].get("family") == "classifier":  # classifiers take no prompt
        from audioprune.macs import architecture_shape

        assert architecture_shape(resolved["model"])["patches"] > 0
        return
    prompts = resolved["model"]["prompts"]
    task = resolved["dataset"].get("prompt_task") or resolved["dataset"]["task"]
    assert task in prompts, f"model {resolved['model']['name']} has no prompt for task {task}"


@pytest.mark.parametrize("option", options("selector"))
def test_every_selector_yaml_builds(option):
    from audioprune.runner import make_selector

    selector = make_selector(compose([f"selector={option}"]).selector)
    assert selector.name == option


@pytest.mark.parametrize("launcher", ["slurm", "local_parallel"])
def test_launcher_configs_compose(launcher):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = hydra_compose(
            "config", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True
        )
    assert (
        "submitit" in cfg.hydra.launcher._target_ or "joblib" in cfg.hydra.launcher._target_.lower()
    )
