"""`python -m audioprune.macs`: the analytic MACs of a classifier at a keep rate, as one JSON line.

    python -m audioprune.macs model=ast_audioset frames=1024 retention=0.7
prints one JSON object with `gmacs` and `percent_of_r1`: a Hydra app over the same config tree
as `python -m audioprune.run` (configs/macs.yaml: model, selector, retention, frames, and any
other override such as model.pruning.layers=[2,5,8]). The counting convention and the math are
in `audioprune.classifier.macs_count`.
"""

from __future__ import annotations

import json

import hydra
from omegaconf import DictConfig

from audioprune.classifier.macs_count import architecture_shape, model_macs
from audioprune.config import CONFIG_DIR
from audioprune.errors import ConfigError, exit_on_input_error


def macs_report(cfg: DictConfig) -> dict:
    """The MACs of `cfg.model` (its `architecture:` block) at `cfg.retention` under `cfg.selector`
    for `cfg.frames` spectrogram frames (null: the model's own): what `main` prints."""
    from omegaconf import OmegaConf

    from audioprune.budget import check_retention
    from audioprune.options import make_selector

    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    if "architecture" not in model_cfg:
        raise ConfigError(f"macs: model {cfg.model.name!r} has no `architecture:` block")
    retention = check_retention(cfg.retention)
    selector = make_selector(cfg.selector)
    frames = cfg.get("frames")
    if frames is not None:
        try:
            frames = int(frames)
        except ValueError:
            raise ConfigError(f"frames={frames}: must be an integer (spectrogram frames)") from None
    shape = architecture_shape(model_cfg, frames)
    macs = model_macs(shape, retention, selector)
    full = model_macs(shape, 1.0, selector)
    return {
        "model": str(cfg.model.name),
        "frames": int(model_cfg["architecture"]["frames"] if frames is None else frames),
        "retention": retention,
        "selector": selector.name,
        "patches": shape["patches"],
        "tokens_per_stage": macs["tokens_per_stage"],
        "gmacs": round(macs["gmacs"], 4),
        "percent_of_r1": round(100 * macs["backbone"] / full["backbone"], 2),
        "score_gmacs": round(macs["score"] / 1e9, 4),
        "head_gmacs": round(macs["head"] / 1e9, 6),
    }


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="macs")
@exit_on_input_error  # a known input / config error: its message alone, exit status 2
def main(cfg: DictConfig) -> dict:
    """`python -m audioprune.macs model=ast_audioset frames=1024 retention=0.7` -> one JSON line."""
    result = macs_report(cfg)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
