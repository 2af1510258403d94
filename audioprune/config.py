"""Locating and composing the Hydra configs (the same files the CLI uses, for scripts and tests)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

CONFIG_DIR = Path(
    os.environ.get("AUDIOPRUNE_CONFIGS", Path(__file__).resolve().parents[1] / "configs")
)


def compose(overrides: Sequence[str] = (), config_name: str = "config") -> DictConfig:
    """Compose the root config with CLI-style overrides, without starting a Hydra run."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if not CONFIG_DIR.is_dir():
        raise FileNotFoundError(
            f"config folder {CONFIG_DIR} not found; set AUDIOPRUNE_CONFIGS to the repo's configs/"
        )
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))


def plain(node: Any) -> Any:
    """A resolved plain-Python copy of a config node (dicts and lists pass through; None -> {})."""
    if OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True)
    return {} if node is None else node
