"""The paper's analyses on a loaded classifier: Kendall τ between the attention score and patch
statistic ranks per block, and the share of low-intensity tokens that survive pruning.

- Ranks: the patch statistic (intensity = mean, variation = std of the normalised fbank tile) is
  bucketed into 5 K-means clusters over the evaluated set (the authors' C1..C5), then compared
  with the block's attention score (AST: CLS row; AudioMAE: received from patch queries) over
  the tokens present in that block, pairs within a sample pooled over samples.
- Two τ, both reported and named: `tau_b` (scipy's) and `tau_ties_concordant` (the authors':
  tied pairs count as concordant, which inflates τ with 5 rank levels).
- Low-intensity share: of the patches that leave the last pruning stage, the share in clusters
  C1–C2, beside that share among all patches (the authors' AudioMAE-vs-AST argument).

    python -m audioprune.classifier.analysis model=tiny_ast dataset=synthetic_classes retention=0.5
writes tau_per_block.{png,pdf,csv}, low_intensity.json, identity.json and config.yaml to
`${paths.results_dir}/analysis/<model>/<dataset>/tau-<selector>-r<retention>-<hash>/` (or
`run_dir`), keyed like run folders by what determines the result (the run identity of the
selector and retention, the clips and the cluster count), so another selector or retention
never overwrites it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from audioprune.classifier import scores as S
from audioprune.config import CONFIG_DIR
from audioprune.errors import exit_on_input_error

if TYPE_CHECKING:
    from audioprune.records import DatasetInfo, Sample
    from audioprune.spec import RunSpec

STATISTICS = ("intensity", "variation")
CLUSTERS = 5  # the authors' K-means levels C1..C5


def analysis_identity(spec: RunSpec, info: DatasetInfo, samples: list[Sample]) -> dict:
    """What determines the analysis: the run identity of `spec` (a `RunSpec`: model, features,
    dataset, selector, retention, versions) plus the analysed clips and the number of
    clusters."""
    from audioprune.identity import run_identity

    ids = "\n".join(s.id for s in samples)
    return {
        "analysis": "classifier_tau",
        **run_identity(spec, info),
        "clusters": CLUSTERS,
        "samples": {"count": len(samples), "ids_sha256": hashlib.sha256(ids.encode()).hexdigest()},
    }


def analysis_dir(cfg, selector, retention: float, identity: dict) -> Path:
    """results/analysis/<model>/<dataset>/tau-<selector label>-r<retention>-<hash>."""
    from audioprune.identity import identity_hash, run_label

    base = Path(cfg.paths.results_dir) / "analysis" / str(cfg.model.name) / str(cfg.dataset.name)
    return base / f"tau-{run_label(selector, retention)}-{identity_hash(identity)}"


def _layer_inputs(pruner, layer_index: int, batch: int) -> torch.Tensor:
    """Patch ids [B, n] of the tokens entering encoder layer `layer_index` in the last forward."""
    ids = torch.arange(pruner.spec.patches).expand(batch, -1)
    for stage, index in enumerate(pruner.spec.layers):
        record = pruner.stages.get(stage)
        if record is None or index >= layer_index:
            break
        ids = record.patch_ids.gather(1, record.positions)
    return ids


def analyse(
    adapter, features: torch.Tensor, selector, retention: float, keys: list[str], clusters: int = 5
) -> dict:
    """features: [N, T, F]. Returns {"tau": DataFrame(block, statistic, variant, tau),
    "low_intensity": {...}, "thresholds": {...}}."""
    spec = adapter.spec
    stats = S.patch_statistics(features, spec.patch, spec.layout)
    thresholds = {name: S.kmeans_thresholds(stats[name], clusters) for name in STATISTICS}
    ranks = {name: S.cluster_ranks(stats[name], thresholds[name]) for name in STATISTICS}
    _, layers = adapter.backbone_and_layers()
    captured: dict[int, dict] = {}
    handles = []
    for i, layer in enumerate(layers):
        for name in ("q", "k"):
            handles.append(getattr(layer.attention, f"{name}_proj").register_forward_hook(
                lambda m, a, out, i=i, name=name: captured.setdefault(i, {}).__setitem__(name, out.detach())
            ))  # fmt: skip
    pairs = {(i, name): [] for i in range(len(layers)) for name in STATISTICS}
    kept_low, kept_total = 0, 0
    try:
        for start in range(0, features.shape[0], 32):
            batch = features[start : start + 32]
            with torch.no_grad():
                _, kept = adapter.classify(batch, selector, retention, keys[start : start + 32])
            b = batch.shape[0]
            for i, layer in enumerate(layers):
                q, k = captured[i]["q"], captured[i]["k"]
                heads, head_dim = layer.attention.num_attention_heads, layer.attention.head_dim
                q4, k4 = q.view(b, -1, heads, head_dim), k.view(b, -1, heads, head_dim)
                if spec.score == "received":
                    score = S.received_attention(q4, k4, layer.attention.scaling, spec.extra)
                else:
                    score = S.cls_attention(
                        q4,
                        k4,
                        layer.attention.scaling,
                        2 if spec.score == "cls_dist" else 1,
                        spec.extra,
                    )
                ids = _layer_inputs(adapter.pruner, i, b)
                for name in STATISTICS:
                    rank = ranks[name][start : start + b].gather(1, ids)
                    pairs[(i, name)] += [
                        (rank[j].float(), score[j].float().cpu()) for j in range(b)
                    ]
            final = kept if kept is not None else torch.arange(spec.patches).expand(b, -1)
            low = ranks["intensity"][start : start + b].gather(1, final) <= 1
            kept_low += int(low.sum())
            kept_total += low.numel()
            captured.clear()
    finally:
        for handle in handles:
            handle.remove()
    rows = []
    for (i, name), data in pairs.items():
        counts = S.pooled_pair_counts(data)
        rows.append({"block": i + 1, "statistic": name, "variant": "tau_b", "tau": S.tau_b(counts)})
        rows.append({"block": i + 1, "statistic": name, "variant": "tau_ties_concordant",
                     "tau": S.tau_ties_concordant(counts)})  # fmt: skip
    all_low = float((ranks["intensity"] <= 1).float().mean())
    return {
        "tau": pd.DataFrame(rows),
        "low_intensity": {
            "kept_share_c1_c2": kept_low / kept_total if kept_total else float("nan"),
            "all_share_c1_c2": all_low,
            "retention": retention,
            "selector": getattr(selector, "name", None),
        },
        "thresholds": thresholds,
    }


def analyse_from_config(cfg: DictConfig) -> dict:
    """The analysis of `cfg.model` under `cfg.selector` at `cfg.retention` (what `main` runs):
    writes the keyed folder, prints and returns its summary."""
    from audioprune import figures
    from audioprune.classifier.tiny_classifier import ensure_tiny_classifier
    from audioprune.classifier.train import features_of
    from audioprune.config import plain
    from audioprune.data import load_dataset
    from audioprune.spec import resolve_run
    from audioprune.state import get_adapter
    from audioprune.store import atomic_write_json, atomic_write_text

    # The analysis keys the retention as configured, also under a selector that does not prune
    # (a run resolves that to 1.0): its folders keep the names they had.
    spec = replace(resolve_run(cfg), retention=float(cfg.retention))
    selector, retention = spec.selector, spec.retention
    samples, info = load_dataset(cfg.dataset.loader, **plain(cfg.dataset.get("args")))
    if spec.limit:
        samples = samples[: spec.limit]
    identity = analysis_identity(spec, info, samples)
    out = (
        Path(cfg.run_dir)
        if cfg.get("run_dir")
        else analysis_dir(cfg, selector, retention, identity)
    )
    ensure_tiny_classifier(cfg.model)
    adapter = get_adapter(cfg.model)
    features = features_of(adapter, samples)
    result = analyse(adapter, features, selector, retention, [s.id for s in samples], CLUSTERS)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    atomic_write_json(out / "identity.json", identity)
    title = f"{cfg.model.name} / {cfg.dataset.name}, {cfg.selector.name} r={cfg.retention}"
    fig, drawn = figures.tau_per_block(result["tau"], title=title)
    figures.save_figure(fig, out / "tau_per_block", drawn)
    atomic_write_json(
        out / "low_intensity.json", result["low_intensity"] | {"thresholds": result["thresholds"]}
    )
    summary = result["tau"].groupby(["statistic", "variant"])["tau"].mean().round(3).to_dict()
    print(json.dumps({"out": str(out), "mean_tau": {f"{a}/{b}": v for (a, b), v in summary.items()},
                      **result["low_intensity"]}))  # fmt: skip
    return result | {"out": out}


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
@exit_on_input_error  # a known input / config error: its message alone, exit status 2
def main(cfg: DictConfig) -> dict:
    """`python -m audioprune.classifier.analysis model=... dataset=... selector=... retention=...`:
    a Hydra app over the run's configs."""
    return analyse_from_config(cfg)


if __name__ == "__main__":
    main()
