"""Analytic multiply-adds (MACs) of a pruned spectrogram ViT, per sample (pure math).

Convention (notes `audio-transformer-paper.md` §1, the paper published none): with D = hidden
size, F = MLP size, E extra tokens (CLS, +DIST), n_in tokens entering a block and n_out after its
gather (n_out = n_in outside pruning blocks):

    block     = 4 · n_in · D²  +  2 · n_in² · D  +  2 · n_out · D · F
                (q, k, v, o projections; QKᵀ and AV over all tokens; the MLP on the kept ones)
    embedding = P · p² · D     (patch conv, P patches of p × p)
    gmacs     = (embedding + Σ blocks) / 1e9

The pruning blocks' attention runs at the pre-pruning length. Reported beside it, not inside:
`score_gmacs` (recomputed attention scores: rows · n_in · D for CLS rows, (n_in − E) · n_in · D
for AudioMAE's received attention) and `head_gmacs` (D · C). The total of all three equals what
`torch.utils.flop_counter.FlopCounterMode` counts (halved) with the sdpa mapping
(`flop_counter_macs`; tested). ViT-B at 1024 frames (512 patches): AST 48.63 / 31.28 / 23.73 G
at r = 1 / 0.7 / 0.5.

The classifier adapters count with `model_macs` (`ClassifierAdapter.macs`);
`python -m audioprune.macs` (audioprune/macs.py) prints it for a model YAML.
"""

from __future__ import annotations

from typing import Any

from audioprune.classifier.scores import stage_keep_count
from audioprune.errors import ConfigError


def block_macs(n_in: int, n_out: int, hidden: int, intermediate: int) -> int:
    """One encoder block: projections and attention over n_in tokens, MLP over n_out."""
    return 4 * n_in * hidden**2 + 2 * n_in**2 * hidden + 2 * n_out * hidden * intermediate


def tokens_per_block(
    patches: int, layers: int, prune_layers: tuple[int, ...], retention: float, prunes: bool = True
) -> list[tuple[int, int]]:
    """(patches entering, patches leaving) each block (extra tokens not counted)."""
    out, n = [], patches
    for i in range(layers):
        n_in = n
        if prunes and retention < 1.0 and i in prune_layers:
            n = stage_keep_count(n, retention)
        out.append((n_in, n))
    return out


def model_macs(shape: dict, retention: float, selector: Any = None, spec: Any = None) -> dict:
    """MACs of one sample through the classifier at keep rate `retention`.

    shape: {hidden, layers, intermediate, patches, extra, patch, classes, score}
    (`score` ∈ cls | cls_dist | received; `prune_layers` tuple); `spec` (a PruneSpec) or
    shape["prune_layers"] gives the pruning blocks. A selector that ranks by a patch statistic
    (`intensity`, `variation`) or that does not prune (`none`) adds no score cost.
    Returns integer MACs {"backbone", "score", "head", "total"} plus `gmacs` (= backbone / 1e9),
    `tokens_per_stage` (patches after each pruning stage).
    """
    d, f, layers = shape["hidden"], shape["intermediate"], shape["layers"]
    patches, extra = shape["patches"], shape["extra"]
    prune_layers = tuple(spec.layers if spec is not None else shape.get("prune_layers", ()))
    score_kind = spec.score if spec is not None else shape.get("score", "cls")
    prunes = selector is None or getattr(selector, "prunes", True)
    by_statistic = bool(getattr(selector, "patch_statistic", None))
    flow = tokens_per_block(patches, layers, prune_layers, retention, prunes)
    backbone = patches * shape["patch"] ** 2 * d
    score = 0
    for i, (n_in, n_out) in enumerate(flow):
        backbone += block_macs(n_in + extra, n_out + extra, d, f)
        if prunes and retention < 1.0 and i in prune_layers and not by_statistic:
            n = n_in + extra
            if score_kind == "received":
                score += n_in * n * d
            else:
                score += (2 if score_kind == "cls_dist" else 1) * n * d
    head = d * shape["classes"]
    return {
        "backbone": backbone,
        "score": score,
        "head": head,
        "total": backbone + score + head,
        "gmacs": backbone / 1e9,
        "tokens_per_stage": [n_out for i, (_, n_out) in enumerate(flow) if i in prune_layers],
    }


def sdpa_flop_mapping() -> dict:
    """FlopCounterMode custom_mapping for the CPU sdpa kernel torch does not register."""
    import torch
    from torch.utils.flop_counter import sdpa_flop_count

    def cpu_flash(query, key, value, *args, out_shape=None, **kwargs) -> int:
        # FlopCounterMode hands custom formulas the input shapes
        return sdpa_flop_count(query, key, value)

    return {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_flash}


def flop_counter_macs(fn, *args, **kwargs) -> int:
    """MACs torch's FlopCounterMode counts for fn(*args) (its FLOPs / 2), sdpa mapped."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False, custom_mapping=sdpa_flop_mapping()) as counter:
        fn(*args, **kwargs)
    return counter.get_total_flops() // 2


def architecture_shape(model_cfg: Any, frames: int | None = None) -> dict:
    """The `shape` dict of `model_macs` from a model YAML's `architecture:` and `pruning:`."""
    arch = dict(model_cfg["architecture"])
    frames = int(arch["frames"] if frames is None else frames)
    patch = int(arch["patch"])
    if frames < patch:
        raise ConfigError(f"frames={frames}: must be >= the patch size {patch}")
    patches = (arch["mel_bins"] // patch) * (frames // patch)
    pruning = dict(model_cfg.get("pruning") or {})
    return {
        "hidden": arch["hidden_size"],
        "layers": arch["num_hidden_layers"],
        "intermediate": arch["intermediate_size"],
        "patches": patches,
        "extra": arch["extra_tokens"],
        "patch": patch,
        "classes": arch["num_labels"],
        "prune_layers": tuple(pruning.get("layers", ())),
        "score": pruning.get("score", "cls"),
    }
