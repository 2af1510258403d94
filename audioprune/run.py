"""Hydra entry point: `python -m audioprune.run model=... dataset=... selector=... retention=...`.

`-m` sweeps (e.g. `-m selector=topk,segmentwise_topk retention=0.5,0.25`) run every job in this
process with the default launcher, sharing the loaded model and the encoder outputs.
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig

from audioprune.config import CONFIG_DIR
from audioprune.errors import exit_on_input_error
from audioprune.runner import run


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
@exit_on_input_error  # a known input / config error: its message alone, exit status 2
def main(cfg: DictConfig) -> float | None:
    logging.getLogger("audioprune").setLevel(logging.INFO)
    result = run(cfg)  # logs a one-line summary of the finished run
    # Returning a number lets Hydra sweepers (e.g. Optuna) optimise it; other ranks return None.
    metrics = result.metrics.get("metrics", {})
    return next((v for v in metrics.values() if isinstance(v, int | float)), None)


if __name__ == "__main__":
    main()
