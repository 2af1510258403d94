"""Tiny classifiers built offline for tests, smoke runs and the demo (`model.build_tiny`).

- `ast_random`: a random-weight tiny AST (D 64 × 4 layers) with the synthetic set's 10 classes;
- `ast_synthetic`: the same, trained from scratch on the synthetic set's training folds (1-4)
  at r = 1 for `SYNTHETIC_RECIPE.max_steps` steps (1000 steps, about two minutes on 2 free CPU cores), so that
  pruning has something to lose. The synthetic data goes to `<cache>/data/synthetic_classes`
  (the folder the `synthetic_classes` dataset config reads when the model sits in
  `<cache>/models/`).
Both are saved with `save_pretrained` and loaded back through `from_pretrained`.
"""

from __future__ import annotations

from pathlib import Path

from audioprune.classifier.train import Recipe
from audioprune.data.synthetic_classes import CLASSES

KINDS = ("ast_random", "ast_synthetic")
SYNTHETIC_CLIPS_PER_CLASS = 100
SYNTHETIC_RECIPE = Recipe(
    epochs=60, batch_size=32, lr=1e-3, optimizer="adamw", weight_decay=0.01, max_steps=1000, seed=0
)


def build_tiny_classifier(
    kind: str,
    path: Path,
    seed: int = 0,
    max_steps: int | None = None,
    features: dict | None = None,
    clips_per_class: int = SYNTHETIC_CLIPS_PER_CLASS,
) -> Path:
    """Build the tiny model `kind` at `path` (see the module docstring). `features`: the model
    YAML's fbank options, so training sees the same normalisation as later runs."""
    from audioprune.models.ast import build_random_ast

    if kind not in KINDS:
        raise ValueError(f"model.build_tiny must be one of {', '.join(KINDS)}, got {kind!r}")
    path = Path(path)
    if kind == "ast_random":
        return build_random_ast(path, list(CLASSES), seed=seed)
    init = path.with_name(path.name + ".init")
    build_random_ast(init, list(CLASSES), seed=seed)
    train_tiny_on_synthetic(init, path, seed, max_steps, features, clips_per_class)
    return path


def ensure_tiny_classifier(model_cfg) -> None:
    """Build the model config's trained tiny classifier (`build_tiny: ast_synthetic`) if it is
    missing, before the adapter loads it: the training loop sits above the model adapters, so
    `ASTAdapter` builds only the untrained `ast_random` itself. A no-op for other models."""
    kind, path = model_cfg.get("build_tiny"), model_cfg.get("pretrained")
    if model_cfg.get("adapter") != "ast" or kind in (None, "ast_random") or path is None:
        return
    if not (Path(path) / "config.json").exists():
        build_tiny_classifier(kind, Path(path), features=model_cfg.get("features"))


def synthetic_root(model_path: Path) -> Path:
    return Path(model_path).resolve().parents[1] / "data" / "synthetic_classes"


def train_tiny_on_synthetic(
    init: Path,
    out: Path,
    seed: int = 0,
    max_steps: int | None = None,
    features: dict | None = None,
    clips_per_class: int = SYNTHETIC_CLIPS_PER_CLASS,
) -> dict:
    """Train the AST at `init` on synthetic folds 1-4 at r = 1; save to `out`."""
    from dataclasses import replace

    from audioprune.data import load_dataset
    from audioprune.models.ast import ASTAdapter

    samples, _ = load_dataset(
        "synthetic_classes",
        root=str(synthetic_root(out)),
        clips_per_class=clips_per_class,
        split="train",
    )
    adapter = ASTAdapter(str(init), features=features)
    recipe = replace(SYNTHETIC_RECIPE, seed=seed, max_steps=max_steps or SYNTHETIC_RECIPE.max_steps)
    from audioprune.classifier.train import train_classifier

    return train_classifier(adapter, samples, recipe, out)
