"""`make demo`, classifier section: a tiny AST trained on the synthetic classification set, pruned
inside its encoder, accuracy and GMACs per keep rate and selector — inference-only and after a
short pruning-aware fine-tune. Synthetic data and a small from-scratch model: the numbers show
the harness working and the qualitative effects, not the paper's results.

Steps (each cached under paths.cache_dir, so a second run only re-reads results):
1. train the tiny AST (D 64 × 4 layers) from scratch on folds 1-4 at r = 1 (`--pretrain-steps`);
2. inference-only: every selector × keep rate through the run loop (`audioprune.run`'s path);
3. pruning-aware fine-tune per (selector, keep rate) with the per-step cosine keep-rate schedule
   (`--finetune-steps`), plus an r = 1 fine-tune of the same length as the control, then the
   same evaluation. With several `--seeds` the table shows mean ± std over seeds.

    python scripts/demo_classifier.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import pandas as pd

from audioprune.config import compose
from audioprune.runner import reset_process_state, run
from audioprune.store import atomic_write_text
from audioprune.tables import to_markdown

SELECTORS = ["topk", "random", "bottomk", "intensity", "segmentwise_topk"]
RETENTIONS = [0.9, 0.7, 0.5]
FINETUNE_SELECTORS = ["topk", "random"]
FINETUNE_RETENTIONS = [0.7, 0.5]
BANNER = (
    "Synthetic classification set (10 classes, {clips} test clips), tiny AST (D64 x 4 layers) "
    "trained from scratch on CPU: synthetic, small-model numbers, not the paper's."
)


def _cfg(overrides: list[str], results_dir: str, pretrained: Path, selector: str, retention: float):
    return compose(
        [
            "model=tiny_ast",
            "dataset=synthetic_classes",
            f"selector={selector}",
            f"retention={retention}",
            f"model.pretrained={pretrained}",
            "model.build_tiny=null",
            f"paths.results_dir={results_dir}",
            "batch_size=50",
            "progress=false",
            *overrides,
        ]
    )


def _row(result, mode: str, seed: int, selector: str, retention: float) -> dict:
    m = result.metrics
    return {
        "mode": mode,
        "seed": seed,
        "selector": selector,
        "retention": retention,
        "accuracy": m["metrics"]["accuracy"],
        "gmacs": m["summary"]["gmacs_mean"],
        "kept_tokens": m["summary"]["kept_tokens_mean"],
        "clips": m["run"]["num_samples"],
    }


def finetune(
    base: Path, out: Path, cfg, selector: str, retention: float, steps: int, seed: int, cache: dict
) -> Path:
    """Pruning-aware fine-tune of `base` (cached at `out`); per-step cosine over 2/3 of the steps."""
    from audioprune.classifier.train import Recipe, features_of, train_classifier
    from audioprune.data import load_dataset
    from audioprune.models.ast import ASTAdapter

    if (out / "config.json").is_file():
        return out
    features = dict(cfg.model.features)
    adapter = ASTAdapter(str(base), features=features)
    if "train" not in cache:
        args = dict(cfg.dataset.args)
        args["split"] = "train"
        samples, _ = load_dataset(cfg.dataset.loader, **args)
        cache["train"] = (samples, features_of(adapter, samples))
    samples, feats = cache["train"]
    per_epoch = -(-len(samples) // 32)
    recipe = Recipe(
        epochs=-(-steps // per_epoch),
        batch_size=32,
        lr=3e-4,
        optimizer="adamw",
        weight_decay=0.01,
        base_keep_rate=retention,
        shrink_start=0,
        shrink_epochs=(2 * steps / 3) / per_epoch,
        schedule="step",
        selector=selector,
        max_steps=steps,
        seed=seed,
    )
    train_classifier(adapter, samples, recipe, out, features=feats)
    return out


def classifier_section(
    results_dir: str = "results/demo",
    overrides: list[str] | None = None,
    seeds: list[int] | None = None,
    pretrain_steps: int | None = None,
    finetune_steps: int = 120,
    selectors: list[str] | None = None,
    retentions: list[float] | None = None,
    finetune_selectors: list[str] | None = None,
    finetune_retentions: list[float] | None = None,
) -> pd.DataFrame:
    """Run the section; print and save the table (classifier_table.md/.csv) and the figure."""
    from audioprune.classifier.tiny_classifier import SYNTHETIC_RECIPE, build_tiny_classifier

    overrides = list(overrides or [])
    seeds = seeds or [0]
    pretrain_steps = pretrain_steps or SYNTHETIC_RECIPE.max_steps
    selectors = selectors or SELECTORS
    retentions = retentions or RETENTIONS
    ft_selectors = FINETUNE_SELECTORS if finetune_selectors is None else finetune_selectors
    ft_retentions = finetune_retentions or FINETUNE_RETENTIONS
    started = time.perf_counter()
    base_cfg = compose(["model=tiny_ast", "dataset=synthetic_classes", *overrides])
    models = Path(base_cfg.paths.cache_dir) / "models"
    rows = []
    for seed in seeds:
        base = models / f"tiny-ast-synthetic-seed{seed}-steps{pretrain_steps}"
        if not (base / "config.json").is_file():
            print(
                f"training the tiny AST (seed {seed}, {pretrain_steps} steps; cached at {base}) ...",
                flush=True,
            )
            build_tiny_classifier(
                "ast_synthetic",
                base,
                seed=seed,
                max_steps=pretrain_steps,
                features=dict(base_cfg.model.features),
                clips_per_class=int(base_cfg.dataset.args.clips_per_class),
            )
        jobs = [("none", 1.0)] + [(s, r) for s in selectors for r in retentions]
        for selector, retention in jobs:
            result = run(_cfg(overrides, results_dir, base, selector, retention))
            rows.append(_row(result, "inference-only", seed, selector, retention))
        cache: dict = {}
        ft_jobs = (
            [("none", 1.0)] + [(s, r) for s in ft_selectors for r in ft_retentions]
            if ft_selectors
            else []
        )
        for selector, retention in ft_jobs:
            out = models / f"{base.name}-ft-{selector}-r{retention:g}-steps{finetune_steps}"
            finetune(base, out, base_cfg, selector, retention, finetune_steps, seed, cache)
            result = run(_cfg(overrides, results_dir, out, selector, retention))
            rows.append(_row(result, "pruning-aware fine-tune", seed, selector, retention))
        reset_process_state()
    frame = pd.DataFrame(rows)
    table = summarize(frame)
    banner = BANNER.format(clips=int(frame["clips"].max()))
    out_dir = Path(results_dir)
    columns = [
        "mode",
        "selector",
        "retention",
        "accuracy",
        "accuracy_std",
        "seeds",
        "gmacs",
        "percent_of_r1",
        "kept_tokens",
    ]
    text = to_markdown(table, columns, digits=3)
    atomic_write_text(out_dir / "classifier_table.md", f"{banner}\n\n{text}\n")
    frame.to_csv(out_dir / "classifier_runs.csv", index=False)
    from audioprune import figures

    fig, drawn = figures.accuracy_vs_gmacs(table, title="synthetic data, tiny AST (plumbing)")
    figures.save_figure(fig, out_dir / "classifier_accuracy_vs_gmacs", drawn)
    print(f"\n{banner}\n")
    print(text)
    print(
        f"\n{len(rows)} classifier runs over {len(seeds)} seed(s) in {time.perf_counter() - started:.1f} s; "
        f"table saved to {out_dir / 'classifier_table.md'}"
    )
    return table


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean and std of accuracy over seeds per (mode, selector, retention); GMACs and % of r=1."""
    keys = ["mode", "selector", "retention"]
    grouped = frame.groupby(keys, sort=False)
    table = grouped.agg(
        accuracy=("accuracy", "mean"),
        accuracy_std=("accuracy", "std"),
        seeds=("seed", "nunique"),
        gmacs=("gmacs", "mean"),
        kept_tokens=("kept_tokens", "mean"),
    ).reset_index()
    full = frame.loc[frame["retention"] == 1.0, "gmacs"].max()
    table["percent_of_r1"] = 100 * table["gmacs"] / full
    table["accuracy_std"] = table["accuracy_std"].fillna(0.0)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results-dir", default="results/demo")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--pretrain-steps", type=int, default=None)
    parser.add_argument("--finetune-steps", type=int, default=120)
    parser.add_argument("--selectors", nargs="+", default=SELECTORS)
    parser.add_argument("--retentions", nargs="+", type=float, default=RETENTIONS)
    parser.add_argument("--finetune-selectors", nargs="*", default=FINETUNE_SELECTORS)
    parser.add_argument("--finetune-retentions", nargs="+", type=float, default=FINETUNE_RETENTIONS)
    parser.add_argument(
        "overrides", nargs="*", help="extra Hydra overrides, e.g. paths.cache_dir=/tmp/c"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    classifier_section(
        args.results_dir, args.overrides, args.seeds, args.pretrain_steps, args.finetune_steps,
        args.selectors, args.retentions, args.finetune_selectors, args.finetune_retentions,
    )  # fmt: skip


if __name__ == "__main__":
    main()
