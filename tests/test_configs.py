"""Every shipped YAML loads, and every option of every config group composes with the root config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from audioprune.config import CONFIG_DIR, compose

ALL_YAML = sorted(CONFIG_DIR.rglob("*.yaml"))
GROUPS = ["model", "dataset", "selector", "budget", "experiment"]


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
    # Whisper only transcribes: its model configs are composed with a speech dataset.
    speech = ["dataset=synthetic_speech"] if option.startswith("whisper") else []
    # The miniature Qwen2-Audio answers only the multiple-choice questions it was trained on.
    speech += ["dataset=synthetic_scenes"] if option.startswith("mini_qwen2_audio") else []
    cfg = compose([f"{group}={option}", f"paths.root_dir={tmp_path}", *speech])
    if cfg.dataset.task in ("classification", "multilabel") and group != "model":
        # classification datasets pair with the classifier family's default model
        cfg = compose([f"{group}={option}", "model=tiny_ast", f"paths.root_dir={tmp_path}"])
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert resolved["model"]["adapter"] in (
        "qwen2_audio", "audio_flamingo_3", "whisper", "ast", "audiomae"
    )  # fmt: skip
    assert resolved["dataset"]["loader"] and resolved["dataset"]["task"] in (
        "captioning",
        "mcq",
        "aqa",
        "asr",
        "classification",
        "multilabel",
    )
    assert "name" in resolved["selector"] or "_target_" in resolved["selector"]
    if resolved["model"].get("family") == "classifier":  # classifiers take no prompt
        from audioprune.classifier.macs_count import architecture_shape

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


def _flatten(data: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out |= _flatten(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_value_survives_composition(experiment):
    """Issue 9 item 1: what an experiment YAML sets is what the run gets (the root config's
    defaults must not win), including its group overrides and its sweep."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    data = yaml.safe_load((CONFIG_DIR / "experiment" / f"{experiment}.yaml").read_text())
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = hydra_compose(
            "config", overrides=[f"experiment={experiment}"], return_hydra_config=True
        )
    composed = OmegaConf.to_container(cfg, resolve=False)
    values = _flatten({k: v for k, v in data.items() if k not in ("defaults", "hydra")})
    assert values, f"{experiment} sets no values"
    flat = _flatten({k: v for k, v in composed.items() if k != "hydra"})
    for name, value in values.items():
        assert flat.get(name) == value, (
            f"{experiment}: {name} is {flat.get(name)!r}, YAML says {value!r}"
        )
    for entry in data["defaults"]:
        for group_key, option in entry.items():
            group = group_key.replace("override /", "")
            assert cfg[group].name == option, f"{experiment}: {group} is {cfg[group].name}"
    sweep = ((data.get("hydra") or {}).get("sweeper") or {}).get("params") or {}
    assert OmegaConf.to_container(cfg.hydra.sweeper.params) == {k: str(v) for k, v in sweep.items()}


def test_efficiency_runs_do_not_share_folders_with_quality_runs():
    eff = compose(["experiment=paper_table4_efficiency"])
    quality = compose(["experiment=paper_table3_ablation"])
    assert (eff.batch_size, eff.tag, eff.limit) == (1, "efficiency-bs1", 200)
    assert quality.batch_size == 8 and quality.encoder_cache.disk is True and quality.tag is None
    from dataclasses import replace

    from audioprune.identity import run_dir_for, run_identity
    from audioprune.records import DatasetInfo
    from audioprune.selectors import build_selector
    from audioprune.spec import resolve_run

    info = DatasetInfo(name="Clotho", version="v2.1", task="captioning", files={"captions": "x"})
    selector = build_selector("segmentwise_topk", segments=10)
    specs = [replace(resolve_run(cfg), selector=selector, retention=0.25) for cfg in (eff, quality)]
    folders = {run_dir_for(spec, run_identity(spec, info), "/results") for spec in specs}
    assert len(folders) == 2


def _comment_examples() -> list[list[str]]:
    """The `python -m audioprune.run ...` examples in configs/config.yaml's comments."""
    text = (CONFIG_DIR / "config.yaml").read_text()
    return [
        line.split("python -m audioprune.run", 1)[1].split()
        for line in text.splitlines()
        if line.lstrip("# ").startswith("python -m audioprune.run")
    ]


def test_config_yaml_comment_examples_compose_for_every_job(tmp_path):
    """Issue 9 item 18: every job of every example in config.yaml's header composes and builds
    its selector (a `key=a,b` argument after `-m` is a sweep)."""
    import itertools

    from audioprune.runner import make_selector

    examples = _comment_examples()
    assert len(examples) >= 2
    for args in examples:
        multirun = "-m" in args
        axes = []
        for arg in (a for a in args if a != "-m"):
            key, value = arg.split("=", 1)
            values = value.split(",") if multirun else [value]
            axes.append([f"{key}={v}" for v in values])
        for job in itertools.product(*axes):
            cfg = compose([*job, f"paths.root_dir={tmp_path}"])
            make_selector(cfg.selector)


def test_analyze_config_composes_with_every_selector_it_names():
    from audioprune.analyze import selector_specs

    cfg = compose(
        ["model=tiny_audio_flamingo_3", "analysis.retentions=[0.5]"], config_name="analyze"
    )
    assert cfg.model.name == "tiny_audio_flamingo_3" and cfg.encoder_cache.memory is True
    names = [s.name for s in selector_specs(cfg)]
    assert names == list(cfg.analysis.selectors)
    assert selector_specs(compose(["analysis.selectors=[{name: segmentwise_topk, segments: 4}]"], config_name="analyze"))[0].segments == 4  # fmt: skip
