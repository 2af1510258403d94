"""AudioMAE (ViT-B/16 on 1024 × 128 fbank, self-supervised on AudioSet-2M) as transformers'
`ViTModel` + mean pool over patches (CLS excluded) + `fc_norm` + head, with in-encoder pruning.
Checked against transformers 5.24. No timm: timm-format weights load by key mapping
(`timm_to_vit`), from a hub id (`gaunernst/vit_base_patch16_1024_128.audiomae_as2m`, a timm
`model.safetensors`), a local `.safetensors` / `.pth` file (facebookresearch `pretrained.pth`,
`checkpoint["model"]`, decoder keys ignored) or a folder we saved (`from_pretrained`).

Input (B, 1, T, F): patch order is time-major (index = t · F′ + f). Score: attention each patch
receives from the patch queries (`received`), recomputed from hooked q/k. Positional
embeddings for shorter inputs: `pos_crop: correct` keeps the first T′ time rows of the
(T′_max × F′) grid; `pos_crop: authors` replicates the authors' reshape as (F′ × T′_max) and
first T′ columns, which picks a scrambled subset of positions (notes §2).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from audioprune.classifier import scores as S
from audioprune.classifier.adapter import ClassifierAdapter, check_sdpa, fbank_spec
from audioprune.classifier.features import Fbank
from audioprune.classifier.pruning import PruneSpec, install

POS_CROPS = ("correct", "authors")


def audiomae_config(labels: list[str], frames: int = 1024, mel_bins: int = 128, **overrides):
    """A ViTConfig shaped like AudioMAE ViT-B (override sizes for tiny tests)."""
    from transformers import ViTConfig

    args = dict(
        hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
        layer_norm_eps=1e-6, qkv_bias=True, patch_size=16, num_channels=1,
        hidden_act="gelu",
    )  # fmt: skip
    args.update(overrides)
    return ViTConfig(
        **args,
        image_size=(frames, mel_bins),
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
    )


def _model_class():
    from transformers import ViTModel, ViTPreTrainedModel

    class AudioMAEForAudioClassification(ViTPreTrainedModel):
        """ViTModel (final layernorm = Identity) → mean of patch tokens → fc_norm → head."""

        def __init__(self, config):
            super().__init__(config)
            self.vit = ViTModel(config, add_pooling_layer=False)
            self.vit.layernorm = nn.Identity()
            self.fc_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
            self.head = nn.Linear(config.hidden_size, config.num_labels)
            self.post_init()

        def forward(self, input_values: torch.Tensor) -> torch.Tensor:
            """input_values: [B, T, F] fbank -> logits [B, C]."""
            hidden = self.vit(pixel_values=input_values.unsqueeze(1)).last_hidden_state
            return self.head_from_tokens(hidden)

        def head_from_tokens(self, hidden: torch.Tensor) -> torch.Tensor:
            return self.head(self.fc_norm(hidden[:, 1:].mean(dim=1)))

    return AudioMAEForAudioClassification


_CLASS: list = []


def model_class():
    if not _CLASS:
        _CLASS.append(_model_class())
    return _CLASS[0]


def timm_to_vit(state: dict[str, torch.Tensor], layers: int) -> dict[str, torch.Tensor]:
    """timm / AudioMAE keys -> our model's keys (`vit.*`, `fc_norm.*`, `head.*`).

    The fused `blocks.i.attn.qkv` is split into q, k, v; decoder / mask / `norm` keys (the SSL
    checkpoint's final norm, unused with global pooling) are dropped. Missing `fc_norm` / `head`
    (an encoder-only checkpoint) are left to the caller (fresh head, as fine-tuning starts).
    """
    out = {
        "vit.embeddings.cls_token": state["cls_token"],
        "vit.embeddings.position_embeddings": state["pos_embed"],
        "vit.embeddings.patch_embeddings.projection.weight": state["patch_embed.proj.weight"],
        "vit.embeddings.patch_embeddings.projection.bias": state["patch_embed.proj.bias"],
    }
    names = {"norm1": "layernorm_before", "norm2": "layernorm_after", "attn.proj": "attention.o_proj",
             "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}  # fmt: skip
    for i in range(layers):
        for kind in ("weight", "bias"):
            q, k, v = state[f"blocks.{i}.attn.qkv.{kind}"].chunk(3, dim=0)
            for name, value in (("q", q), ("k", k), ("v", v)):
                out[f"vit.layers.{i}.attention.{name}_proj.{kind}"] = value
            for theirs, ours in names.items():
                out[f"vit.layers.{i}.{ours}.{kind}"] = state[f"blocks.{i}.{theirs}.{kind}"]
    for prefix in ("fc_norm", "head"):
        for kind in ("weight", "bias"):
            if f"{prefix}.{kind}" in state:
                out[f"{prefix}.{kind}"] = state[f"{prefix}.{kind}"]
    return out


def read_timm_state(source: str | Path) -> dict[str, torch.Tensor]:
    """A timm-format state dict from a local .safetensors / .pth file or a hub repo id."""
    path = Path(source)
    if not path.exists():
        if str(source).count("/") != 1:
            raise FileNotFoundError(f"AudioMAE weights {source}: no such file, folder or hub id")
        from huggingface_hub import hf_hub_download

        path = Path(hf_hub_download(str(source), "model.safetensors"))
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    checkpoint = torch.load(str(path), map_location="cpu", weights_only=True)
    return checkpoint.get("model", checkpoint)


def crop_positions(
    pos: torch.Tensor, grid_max: tuple[int, int], frames_patches: int, mode: str
) -> torch.Tensor:
    """pos: [1, 1 + T'max·F', D] -> [1, 1 + T'·F', D] for T' = frames_patches time rows."""
    t_max, f = grid_max
    cls, grid = pos[:, :1], pos[:, 1:]
    if mode == "correct":
        kept = grid.reshape(1, t_max, f, -1)[:, :frames_patches]
    elif mode == "authors":
        kept = grid.reshape(1, f, t_max, -1)[:, :, :frames_patches]
    else:
        raise ValueError(f"model.pos_crop must be one of {', '.join(POS_CROPS)}, got {mode!r}")
    return torch.cat([cls, kept.reshape(1, -1, pos.shape[-1])], dim=1)


def load_audiomae(
    pretrained: str | Path,
    labels: list[str] | None = None,
    frames: int | None = None,
    pos_crop: str = "correct",
    dtype: str = "float32",
    **config_overrides,
):
    """Our saved folder (from_pretrained) or timm-format weights (mapped) -> model in eval mode."""
    cls = model_class()
    path = Path(pretrained)
    if path.is_dir() and (path / "config.json").exists():
        model = cls.from_pretrained(
            str(path), attn_implementation="sdpa", dtype=getattr(torch, dtype)
        )
    else:
        state = read_timm_state(pretrained)
        layers = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
        hidden = state["cls_token"].shape[-1]
        n_patches = state["pos_embed"].shape[1] - 1
        mel_bins = config_overrides.pop("mel_bins", 128)
        full_frames = n_patches // (mel_bins // 16) * 16
        head = state.get("head.weight")
        names = labels or [f"class_{i}" for i in range(head.shape[0] if head is not None else 527)]
        defaults = dict(hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=max(1, hidden // 64), intermediate_size=4 * hidden)  # fmt: skip
        config = audiomae_config(names, full_frames, mel_bins, **{**defaults, **config_overrides})
        config._attn_implementation = "sdpa"
        model = cls(config)
        mapped = timm_to_vit(state, layers)
        missing, unexpected = model.load_state_dict(mapped, strict=False)
        bad = [k for k in missing if not k.startswith(("fc_norm.", "head."))]
        if bad or unexpected:
            raise ValueError(
                f"AudioMAE weights {pretrained}: missing {bad[:5]}, unexpected {unexpected[:5]}"
            )
        model = model.to(getattr(torch, dtype))
    config = model.config
    t_max = config.image_size[0] // config.patch_size
    if frames and frames != config.image_size[0]:
        if frames > config.image_size[0]:
            raise ValueError(
                f"AudioMAE: features.frames={frames} exceeds the checkpoint's {config.image_size[0]}"
            )
        emb = model.vit.embeddings
        f = config.image_size[1] // config.patch_size
        pos = crop_positions(
            emb.position_embeddings.data, (t_max, f), frames // config.patch_size, pos_crop
        )
        emb.position_embeddings = nn.Parameter(pos, requires_grad=False)
        config.image_size = (frames, config.image_size[1])
        # ViTEmbeddings checks the input against its own copy of image_size (not the config's).
        emb.image_size = emb.patch_embeddings.image_size = config.image_size
        emb.patch_embeddings.num_patches = pos.shape[1] - 1
    return model.eval()


def build_random_audiomae(
    path: str | Path, labels: list[str], seed: int = 0, frames: int = 128, **overrides
) -> Path:
    """Save a random-weight (tiny by default) AudioMAE at `path` via save_pretrained."""
    torch.manual_seed(seed)
    tiny = dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=256)
    model = model_class()(audiomae_config(labels, frames, **{**tiny, **overrides}))
    path = Path(path)
    model.save_pretrained(path)
    return path


class AudioMAEAdapter(ClassifierAdapter):
    """AudioMAE classifier with pruning blocks installed (model YAML: `adapter: audiomae`)."""

    name = "audiomae"

    def __init__(
        self,
        pretrained: str,
        device: str = "cpu",
        dtype: str = "float32",
        attn_implementation: str = "sdpa",
        build_tiny: str | None = None,
        pruning: dict | None = None,
        features: dict | None = None,
        pos_crop: str = "correct",
    ):
        check_sdpa(attn_implementation)
        if build_tiny and not (Path(pretrained) / "config.json").exists():
            from audioprune.data.synthetic_classes import CLASSES

            build_random_audiomae(pretrained, list(CLASSES))
        frames = (features or {}).get("frames")
        model = load_audiomae(pretrained, frames=frames, pos_crop=pos_crop, dtype=dtype)
        self._attach(model, device, pretrained)
        config = self.model.config
        t, f = config.image_size
        self.fbank = Fbank(fbank_spec(features, t, f))
        paper = (3, 6, 9) if config.num_hidden_layers == 12 else (1, 2, 3)
        layers, score = self.pruning_options(pruning, paper, "received")
        spec = PruneSpec(
            layers=layers, score=score, extra=1,
            grid=(f // config.patch_size, t // config.patch_size), layout=S.TIME_MAJOR, patch=config.patch_size,
        )  # fmt: skip
        self.pruner = install(self.model.vit.layers, self.model.vit.embeddings, spec)

    def forward_logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.model(features)

    def backbone_and_layers(self):
        return self.model.vit, self.model.vit.layers

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """[B, T, F] -> token embeddings [B, 1 + P, D] (CLS + patches + positions)."""
        return self.model.vit.embeddings(features.unsqueeze(1))

    def head_from_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.head_from_tokens(tokens)

    def head_module(self) -> nn.Linear:
        return self.model.head

    def replace_head(self, linear: nn.Linear) -> None:
        self.model.head = linear

    def macs_shape(self) -> dict:
        c = self.model.config
        return {"hidden": c.hidden_size, "layers": c.num_hidden_layers, "intermediate": c.intermediate_size,
                "patches": self.spec.patches, "extra": 1, "patch": c.patch_size, "classes": c.num_labels}  # fmt: skip

    def fingerprint(self) -> str:
        return f"audiomae:{self.pretrained}:{self.spec}:{self.fbank.spec}"
