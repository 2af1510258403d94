"""The classifier family's adapter interface: a spectrogram ViT that prunes inside its encoder.

Unlike an audio-language model there is nothing to cache between selectors (the pruning
decisions live inside the forward), so an adapter only turns waveforms into features and
features into logits under a selector and keep rate. `family = "classifier"` routes the run
loop to `audioprune.loops.classifier`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch
from torch import nn

from audioprune.classifier.features import Fbank, FbankSpec
from audioprune.classifier.pruning import Pruner, PruneSpec
from audioprune.errors import ConfigError
from audioprune.models.base import selector_option
from audioprune.selectors.base import SELECTORS, Selector, WindowSelector


class ClassifierAdapter(ABC):
    """Base of `ASTAdapter` and `AudioMAEAdapter`.

    Subclasses set `model` (an nn.Module returning logits from `forward_logits`), `pruner`,
    `features` (Fbank) and `labels` (class names in logit order).
    """

    family = "classifier"
    name = ""
    # The keep rate per pruning stage is the budget; there is no text input and no LLM.
    budgets = ("per_window",)
    sampling_rate = 16_000
    model: nn.Module
    pruner: Pruner
    fbank: Fbank
    labels: list[str]
    device: torch.device

    @classmethod
    def check_support(
        cls, selector: Selector, *, budget: str, positions: str, prompt: str | None, model: str
    ) -> None:
        """Refuse (ConfigError) what the in-encoder seam cannot honour, before loading.

        The seam hands a selector one score per patch still present (attention or a patch
        statistic) and takes back indices: selectors that read more than scores (merging,
        diversity, head-weighted scores), work inside an LLM or build tokens cannot run.
        Budget: `per_window` only (the keep rate per stage); positions: compact; no prompt.
        """
        if selector.prunes and not scores_only(type(selector), selector):
            supported = ", ".join(n for n, c in sorted(SELECTORS.items()) if scores_only(c))
            raise ConfigError(
                f"{selector_option(selector)}: the classifier family (model={model}) prunes "
                f"patches by their scores only; supported selectors: {supported}"
            )
        if budget not in cls.budgets:
            raise ConfigError(
                f"budget={budget}: the classifier family (model={model}) keeps "
                f"ceil(r · patches) per pruning stage; use budget=per_window"
            )
        if positions != "compact":
            raise ConfigError(
                f"positions={positions}: the classifier family (model={model}) has no LLM "
                "positions to keep; use positions=compact"
            )
        if prompt is not None:
            raise ConfigError(
                f"prompt={prompt!r}: the classifier family (model={model}) takes no text prompt"
            )

    @classmethod
    def check_model_config(cls, model: dict) -> None:
        """Refuse, before loading, a `model.features.frames` that gives no patch row: the
        input must hold at least one patch (`architecture.patch`, 16 for the checkpoints)."""
        frames = (model.get("features") or {}).get("frames")
        if frames is None:
            return
        patch = int((model.get("architecture") or {}).get("patch", 16))
        if isinstance(frames, bool) or not isinstance(frames, int) or frames < patch:
            raise ConfigError(
                f"model.features.frames={frames!r}: must be an integer >= the patch size {patch} "
                "(spectrogram frames the classifier reads)"
            )

    @property
    def spec(self) -> PruneSpec:
        return self.pruner.spec

    def _attach(self, model: nn.Module, device: str, pretrained: str) -> None:
        """The loaded classifier, in eval mode on `device`, and its class names in logit order."""
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.pretrained = str(pretrained)
        config = model.config
        self.labels = [config.id2label[i] for i in range(config.num_labels)]

    @staticmethod
    def pruning_options(
        pruning: dict | None, default_layers: tuple[int, ...], default_score: str
    ) -> tuple[tuple[int, ...], str]:
        """`model.pruning` -> (pruning blocks, score), refusing unknown options by name."""
        pruning = dict(pruning or {})
        unknown = set(pruning) - {"layers", "score"}
        if unknown:
            raise ConfigError(
                f"model.pruning: unknown option(s) {sorted(unknown)}; valid: layers, score"
            )
        return tuple(pruning.get("layers") or default_layers), pruning.get("score", default_score)

    def features(self, waveforms: list[np.ndarray]) -> torch.Tensor:
        """waveforms -> [B, T, F] normalised fbank."""
        return self.fbank(waveforms)

    @abstractmethod
    def forward_logits(self, features: torch.Tensor) -> torch.Tensor:
        """features [B, T, F] on the model's device -> logits [B, C] (pruning as armed)."""

    def classify(
        self,
        features: torch.Tensor,
        selector: Selector | None,
        retention: float,
        sample_keys: list[str],
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One batch: features [B, T, F] -> (logits [B, C] fp32 on CPU, kept patch ids [B, n] or
        None when nothing was pruned). Gradients follow the model's mode; wrap in no_grad to
        evaluate."""
        # half-precision weights take their own dtype (AST's embedding does not cast its input)
        features = features.to(self.device, next(self.model.parameters()).dtype)
        self.pruner.begin(selector, retention, sample_keys, features)
        logits = self.forward_logits(features)
        kept = self.pruner.kept_patch_ids()
        return logits, (None if kept is None else kept.clone())

    def set_labels(self, labels: list[str]) -> None:
        """Give the model a fresh head for `labels` (fine-tuning on a new dataset, as the paper
        re-initialises the head per dataset); a no-op when the labels are already these."""
        if list(labels) == self.labels:
            return
        config = self.model.config
        config.num_labels = len(labels)
        config.id2label = dict(enumerate(labels))
        config.label2id = {name: i for i, name in enumerate(labels)}
        head = self.head_module()
        new = nn.Linear(head.in_features, len(labels)).to(head.weight.device, head.weight.dtype)
        nn.init.trunc_normal_(new.weight, std=2e-5)
        nn.init.zeros_(new.bias)
        self.replace_head(new)
        self.labels = list(labels)

    def head_module(self) -> nn.Linear:
        raise NotImplementedError

    def replace_head(self, linear: nn.Linear) -> None:
        raise NotImplementedError

    def macs(self, retention: float, selector: Selector | None = None) -> dict:
        """Analytic multiply-adds per sample at this keep rate (`classifier.macs_count`)."""
        from audioprune.classifier.macs_count import model_macs

        return model_macs(self.macs_shape(), retention, selector, self.spec)

    @abstractmethod
    def macs_shape(self) -> dict:
        """Sizes `classifier.macs_count.model_macs` needs (hidden, layers, intermediate, classes...)."""

    def fingerprint(self) -> str:
        return f"{self.name}:{self.spec}"


def scores_only(cls: type[Selector], selector: Selector | None = None) -> bool:
    """Whether a selector picks from one score per token alone (what the classifier seam
    gives): not a WindowSelector, stage "encoder", no extra TokenWindow fields."""
    needs = cls.needs if selector is None else selector.needs
    return not issubclass(cls, WindowSelector) and cls.stage == "encoder" and not needs


def check_sdpa(attn_implementation: str | None) -> None:
    """The classifier family runs sdpa only: pruning scores come from hooked q/k, never eager."""
    if attn_implementation not in (None, "sdpa"):
        raise ConfigError(
            f"model.attn_implementation={attn_implementation!r}: the classifier family runs "
            "sdpa only (pruning scores are recomputed from hooked q/k)"
        )


def fbank_spec(features: dict | None, frames: int, mel_bins: int) -> FbankSpec:
    """The model YAML's `features:` block, with the model's input size as the default."""
    options = dict(features or {})
    unknown = set(options) - {"frames", "mean", "std", "padding"}
    if unknown:
        raise ConfigError(
            f"model.features: unknown option(s) {sorted(unknown)}; valid: frames, mean, std, padding"
        )
    options.setdefault("frames", frames)
    if int(options["frames"]) != frames:
        raise ConfigError(
            f"model.features.frames={options['frames']} but the model was built for {frames} frames"
        )
    return FbankSpec(mel_bins=mel_bins, **options)
