"""AST (`ASTForAudioClassification`) with in-encoder Top-K pruning: the classifier family's
first model. Checked against transformers 5.24.

Weights: a hub id (`MIT/ast-finetuned-audioset-16-16-0.442`, the paper's stride-16 checkpoint)
or a local folder, through `from_pretrained`. Inputs shorter than the checkpoint's max_length
get the 8 × T′ positional grid centre-cropped in time (columns T/2 − T′/2 … T/2 + T′/2), as the
authors do; `ignore_mismatched_sizes` would re-initialise it instead. Patch order is
frequency-major (index = f · T′ + t). Score: CLS-row attention (`cls`) or the mean of the CLS
and DIST rows (`cls_dist`), recomputed from hooked q/k in the pruning blocks.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from audioprune.classifier import scores as S
from audioprune.classifier.adapter import ClassifierAdapter, check_sdpa, fbank_spec
from audioprune.classifier.features import Fbank
from audioprune.classifier.pruning import PruneSpec, install

# The tiny from-scratch model of tests and the demo: D 64, 4 layers, 4 heads, 1.28 s inputs.
TINY = {
    "hidden_size": 64,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "intermediate_size": 256,
    "max_length": 128,
    "num_mel_bins": 128,
}
TINY_PRUNE_LAYERS = (1, 2, 3)
PAPER_PRUNE_LAYERS = (3, 6, 9)


def ast_config(labels: list[str], **overrides):
    """An ASTConfig with the paper's 16 × 16 patches at stride 16 (transformers defaults to 10)."""
    from transformers import ASTConfig

    args = {"patch_size": 16, "frequency_stride": 16, "time_stride": 16, **TINY, **overrides}
    return ASTConfig(
        **args,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
    )


def randomize_extra_parameters(model: nn.Module, seed: int = 0) -> None:
    """AST initialises CLS, DIST and positional embeddings to zero; give them random values so
    that tokens differ by position (tests, training from scratch)."""
    embeddings = model.audio_spectrogram_transformer.embeddings
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in (
            embeddings.cls_token,
            embeddings.distillation_token,
            embeddings.position_embeddings,
        ):
            param.copy_(torch.randn(param.shape, generator=generator) * 0.02)


def build_random_ast(path: str | Path, labels: list[str], seed: int = 0, **overrides) -> Path:
    """Save a random-weight AST at `path` (loaded back through `from_pretrained` like a hub id)."""
    from transformers import ASTForAudioClassification

    torch.manual_seed(seed)
    model = ASTForAudioClassification(ast_config(labels, **overrides))
    randomize_extra_parameters(model, seed)
    path = Path(path)
    model.save_pretrained(path)
    return path


def crop_time_positions(model: nn.Module, frames: int) -> None:
    """Centre-crop the positional grid to `frames` input frames (shorter inputs only)."""
    config = model.config
    emb = model.audio_spectrogram_transformer.embeddings
    freq = (config.num_mel_bins - config.patch_size) // config.frequency_stride + 1
    old = (config.max_length - config.patch_size) // config.time_stride + 1
    new = (frames - config.patch_size) // config.time_stride + 1
    if new > old:
        raise ValueError(
            f"AST: features.frames={frames} is longer than the checkpoint's max_length "
            f"{config.max_length}; only shorter inputs can be cropped"
        )
    pos = emb.position_embeddings.data  # [1, 2 + F'·T', D], frequency-major grid
    grid = pos[:, 2:].reshape(1, freq, old, -1)
    start = old // 2 - new // 2
    cropped = grid[:, :, start : start + new].reshape(1, freq * new, -1)
    emb.position_embeddings = nn.Parameter(torch.cat([pos[:, :2], cropped], dim=1))
    config.max_length = frames


def load_ast(pretrained: str | Path, frames: int | None = None, dtype: str = "float32"):
    """ASTForAudioClassification from a hub id or folder, cropped to `frames` if given."""
    from transformers import ASTForAudioClassification

    model = ASTForAudioClassification.from_pretrained(
        str(pretrained), attn_implementation="sdpa", dtype=getattr(torch, dtype)
    )
    config = model.config
    if not (config.patch_size == config.frequency_stride == config.time_stride):
        raise ValueError(
            f"AST checkpoint {pretrained}: patch {config.patch_size} with strides "
            f"{config.frequency_stride}/{config.time_stride}; in-encoder pruning needs "
            "non-overlapping patches (stride = patch size, the paper's 16-16 checkpoint)"
        )
    if frames and frames != config.max_length:
        crop_time_positions(model, frames)
    return model


class ASTAdapter(ClassifierAdapter):
    """AST classifier with pruning blocks installed (model YAML: `adapter: ast`)."""

    name = "ast"

    def __init__(
        self,
        pretrained: str,
        device: str = "cpu",
        dtype: str = "float32",
        attn_implementation: str = "sdpa",
        build_tiny: str | None = None,
        pruning: dict | None = None,
        features: dict | None = None,
    ):
        check_sdpa(attn_implementation)
        if build_tiny and not (Path(pretrained) / "config.json").exists():
            # A trained tiny model (`ast_synthetic`) needs the training loop, which sits above
            # the adapters: a run builds it first (audioprune.state.get_adapter).
            if build_tiny != "ast_random":
                raise ValueError(
                    f"model.build_tiny={build_tiny!r}: ASTAdapter builds only 'ast_random' itself; "
                    f"build {build_tiny!r} with audioprune.classifier.tiny_classifier.build_tiny_classifier "
                    "(runs do this before loading the model)"
                )
            from audioprune.data.synthetic_classes import CLASSES

            build_random_ast(Path(pretrained), list(CLASSES), seed=0)
        frames = (features or {}).get("frames")
        self._attach(load_ast(pretrained, frames, dtype), device, pretrained)
        config = self.model.config
        self.fbank = Fbank(fbank_spec(features, config.max_length, config.num_mel_bins))
        paper = PAPER_PRUNE_LAYERS if config.num_hidden_layers == 12 else TINY_PRUNE_LAYERS
        layers, score = self.pruning_options(pruning, paper, "cls")
        grid = (
            (config.num_mel_bins - config.patch_size) // config.frequency_stride + 1,
            (config.max_length - config.patch_size) // config.time_stride + 1,
        )
        spec = PruneSpec(
            layers=layers,
            score=score,
            extra=2,
            grid=grid,
            layout=S.FREQ_MAJOR,
            patch=config.patch_size,
        )
        if spec.score == "received":
            raise ValueError(
                "model.pruning.score: AST uses cls or cls_dist (received is AudioMAE's)"
            )
        backbone = self.model.audio_spectrogram_transformer
        self.pruner = install(backbone.layers, backbone.embeddings, spec)

    def forward_logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.model(input_values=features).logits

    def backbone_and_layers(self) -> tuple[nn.Module, nn.ModuleList]:
        backbone = self.model.audio_spectrogram_transformer
        return backbone, backbone.layers

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """[B, T, F] -> token embeddings [B, 2 + P, D] (CLS, DIST, patches, positions)."""
        return self.model.audio_spectrogram_transformer.embeddings(features)

    def head_from_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, n, D] after the last block -> logits [B, C] (final LN, (CLS+DIST)/2, head)."""
        out = self.model.audio_spectrogram_transformer.layernorm(tokens)
        return self.model.classifier((out[:, 0] + out[:, 1]) / 2)

    def head_module(self) -> nn.Linear:
        return self.model.classifier.dense

    def replace_head(self, linear: nn.Linear) -> None:
        self.model.classifier.dense = linear
        self.model.num_labels = linear.out_features

    def macs_shape(self) -> dict:
        c = self.model.config
        return {
            "hidden": c.hidden_size,
            "layers": c.num_hidden_layers,
            "intermediate": c.intermediate_size,
            "patches": self.spec.patches,
            "extra": 2,
            "patch": c.patch_size,
            "classes": c.num_labels,
        }

    def fingerprint(self) -> str:
        return f"ast:{self.pretrained}:{self.spec}:{self.fbank.spec}"
