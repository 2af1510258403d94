"""Average projector weights (a "model soup", Wortsman et al. 2022) into one safetensors file.

In the chain that trains the miniature Qwen2-Audio's projector, stage 6g starts from the mean of
stages 6e and 6f, two runs continued from the same start (stage 6d) at lr 3e-4 and 6e-4
(docs/mini-alm.md):

    python scripts/average_projectors.py \
        results/train_projector/mini_qwen2_audio-v1-stage6e/projector.safetensors \
        results/train_projector/mini_qwen2_audio-v1-stage6f/projector.safetensors \
        --out results/train_projector/mini_qwen2_audio-v1-stage6ef/projector.safetensors
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def average(paths: list[Path]) -> dict[str, torch.Tensor]:
    """Element-wise mean of the tensors of `paths` (same keys, shapes and dtypes required)."""
    states = [load_file(str(p)) for p in paths]
    keys = set(states[0])
    for path, state in zip(paths[1:], states[1:]):
        if set(state) != keys:
            raise ValueError(
                f"{path}: tensors {sorted(state)}, expected {sorted(keys)} (as in {paths[0]})"
            )
        for k in keys:
            if state[k].shape != states[0][k].shape or state[k].dtype != states[0][k].dtype:
                raise ValueError(
                    f"{path}: {k} is {tuple(state[k].shape)} {state[k].dtype}, expected "
                    f"{tuple(states[0][k].shape)} {states[0][k].dtype} (as in {paths[0]})"
                )
    return {k: sum(s[k] for s in states) / len(states) for k in sorted(keys)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("projectors", nargs="+", type=Path, help="safetensors files to average")
    parser.add_argument("--out", type=Path, required=True, help="the averaged safetensors file")
    args = parser.parse_args(argv)
    if len(args.projectors) < 2:
        parser.error("give at least two projector files to average")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(average(args.projectors), str(args.out))
    print(f"wrote {args.out} (mean of {len(args.projectors)} projectors)")


if __name__ == "__main__":
    main()
