"""Pruning-aware fine-tuning of a classifier (the paper's recipe), resumable, via accelerate.

The keep rate follows the authors' cosine warm-down (`scores.keep_rate_schedule`): r = 1 until
`shrink_start`, then down to `base_keep_rate` over `shrink_epochs`, then fixed. The authors move
it once per epoch (their iteration counter is never advanced inside an epoch); `schedule: step`
moves it every step instead. Evaluation always uses the base keep rate.

State after every epoch and where `max_steps` stops (model, optimizer, random states, epoch,
batch, per-step history) goes to `<out>/state/`; re-running the call resumes there with the same
data order (the shuffle is seeded per epoch), so a run stopped and resumed ends with the same
weights as an uninterrupted one (tested). The finished model is saved with `save_pretrained` in `<out>/`, so the
run loop loads it like any checkpoint (`model.pretrained=<out>`).

The recipes (configs/train/) also set the input the authors fine-tune on (frames, dataset μ/σ),
the same the paper2_* experiments evaluate with. Left out of the recipe (documented in the
README): mixup, SpecAugment, noise augmentation, AudioMAE's layer-wise LR decay, patch masking,
drop_path 0.1 and no weight decay on biases and norms, AST's 1000-step warm-up, AMP, and the
authors' best-epoch selection (the last epoch is saved).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from audioprune.classifier.scores import keep_rate_schedule
from audioprune.config import CONFIG_DIR
from audioprune.data import load_audio
from audioprune.errors import exit_on_input_error
from audioprune.records import Sample
from audioprune.selectors import build_selector
from audioprune.store import atomic_write_json

log = logging.getLogger(__name__)


@dataclass
class Recipe:
    """Fine-tuning hyperparameters (configs/train/*.yaml hold the paper's per dataset)."""

    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "adamw"  # adam | adamw
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    loss: str = "ce"  # ce | bce
    base_keep_rate: float = 1.0
    shrink_start: float = 0
    shrink_epochs: float = 0
    schedule: str = "epoch"  # epoch (the authors') | step
    # The number the recipe's source gives its first epoch: shrink_start is in that numbering.
    # The authors' AST code counts epochs from 1, their AudioMAE code (and our loop) from 0.
    # lr_schedule.start counts completed epochs (MultiStepLR's steps), so it needs no shift.
    first_epoch: int = 0
    selector: str = "topk"
    lr_schedule: dict = field(
        default_factory=dict
    )  # {} | {kind: step, start, every, gamma} | {kind: cosine, warmup_epochs, min_lr}
    seed: int = 0
    max_steps: int | None = None  # stop early (bounded demo / CI runs); counts across resumes
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)
        for name, value, allowed in (
            ("optimizer", self.optimizer, ("adam", "adamw")),
            ("loss", self.loss, ("ce", "bce")),
            ("schedule", self.schedule, ("epoch", "step")),
        ):
            if value not in allowed:
                raise ValueError(f"train.{name} must be one of {', '.join(allowed)}, got {value!r}")
        if self.first_epoch not in (0, 1):
            raise ValueError(f"train.recipe.first_epoch must be 0 or 1, got {self.first_epoch!r}")

    def keep_rate(self, epoch: int, step_in_epoch: int, steps_per_epoch: int) -> float:
        position = epoch + self.first_epoch
        if self.schedule == "step":
            position += step_in_epoch / steps_per_epoch
        return keep_rate_schedule(
            position, self.base_keep_rate, self.shrink_start, self.shrink_epochs
        )

    def lr_factor(self, epoch: int, step_in_epoch: int, steps_per_epoch: int) -> float:
        kind = self.lr_schedule.get("kind")
        if not kind:
            return 1.0
        if kind == "step":  # AST: × gamma every `every` epochs from `start`
            start, every = self.lr_schedule.get("start", 0), self.lr_schedule.get("every", 1)
            steps = 0 if epoch < start else (epoch - start) // every + 1
            return self.lr_schedule.get("gamma", 0.5) ** steps
        if kind == "cosine":  # AudioMAE: linear warm-up, then cosine to min_lr
            e = epoch + step_in_epoch / steps_per_epoch
            warm = self.lr_schedule.get("warmup_epochs", 0)
            if e < warm:
                return e / warm
            floor = self.lr_schedule.get("min_lr", 0.0) / self.lr
            phase = (e - warm) / max(1e-9, self.epochs - warm)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * phase))
        raise ValueError(f"train.lr_schedule.kind must be step or cosine, got {kind!r}")


def features_of(adapter, samples: list[Sample], batch: int = 64) -> torch.Tensor:
    """[N, T, F] fbank of every sample (computed once per training run)."""
    out = []
    for start in range(0, len(samples), batch):
        waves = [
            load_audio(s.audio_path, adapter.sampling_rate) for s in samples[start : start + batch]
        ]
        out.append(adapter.features(waves))
    return torch.cat(out)


def targets_of(samples: list[Sample], labels: list[str], loss: str) -> torch.Tensor:
    """[N] class indices (ce) or [N, C] multi-hot (bce)."""
    index = {name: i for i, name in enumerate(labels)}
    if loss == "ce":
        return torch.tensor([index[s.answer] for s in samples])
    hot = torch.zeros(len(samples), len(labels))
    for row, s in enumerate(samples):
        for ref in s.references or [s.answer]:
            hot[row, index[ref]] = 1
    return hot


def train_classifier(
    adapter,
    samples: list[Sample],
    recipe: Recipe,
    out_dir: str | Path,
    features: torch.Tensor | None = None,
) -> dict:
    """Fine-tune `adapter.model` on `samples` with pruning-aware keep rates; resumable.

    features: precomputed [N, T, F] (else extracted here). Returns the training summary
    (also written to `<out>/training.json`).
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    out_dir = Path(out_dir)
    state_dir = out_dir / "state"
    accelerator = Accelerator(cpu=adapter.device.type == "cpu")
    set_seed(recipe.seed)
    labels = adapter.labels
    feats = features_of(adapter, samples) if features is None else features
    targets = targets_of(samples, labels, recipe.loss)
    ids = [s.id for s in samples]
    model = adapter.model
    if recipe.gradient_checkpointing:
        model.gradient_checkpointing_enable({"use_reentrant": False})
    opt_cls = torch.optim.AdamW if recipe.optimizer == "adamw" else torch.optim.Adam
    optimizer = opt_cls(
        model.parameters(), lr=recipe.lr, betas=recipe.betas, weight_decay=recipe.weight_decay
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    selector = build_selector(recipe.selector)
    steps_per_epoch = math.ceil(len(samples) / recipe.batch_size)
    progress = {"epoch": 0, "batch": 0, "step": 0, "history": []}
    if (state_dir / "progress.json").is_file():
        accelerator.load_state(str(state_dir))
        progress = json.loads((state_dir / "progress.json").read_text())
        log.info(
            "resuming training from %s at epoch %d, batch %d",
            state_dir,
            progress["epoch"],
            progress["batch"],
        )
    loss_fn = torch.nn.CrossEntropyLoss() if recipe.loss == "ce" else torch.nn.BCEWithLogitsLoss()
    started = time.perf_counter()
    model.train()

    def save() -> None:
        accelerator.save_state(str(state_dir))
        atomic_write_json(state_dir / "progress.json", progress)

    while progress["epoch"] < recipe.epochs:
        if recipe.max_steps is not None and progress["step"] >= recipe.max_steps:
            break
        epoch = progress["epoch"]
        # The order depends only on (seed, epoch), so a resumed epoch continues the same order.
        generator = torch.Generator().manual_seed(recipe.seed * 100_003 + epoch)
        order = torch.randperm(len(samples), generator=generator)
        for i in range(progress["batch"], steps_per_epoch):
            if recipe.max_steps is not None and progress["step"] >= recipe.max_steps:
                break
            rows = order[i * recipe.batch_size : (i + 1) * recipe.batch_size]
            keep = recipe.keep_rate(epoch, i, steps_per_epoch)
            for group in optimizer.param_groups:
                group["lr"] = recipe.lr * recipe.lr_factor(epoch, i, steps_per_epoch)
            keys = [f"{ids[r]}@e{epoch}" for r in rows.tolist()]
            logits, _ = adapter.classify(feats[rows], selector, keep, keys)
            loss = loss_fn(logits, targets[rows].to(logits.device))
            optimizer.zero_grad()
            accelerator.backward(loss)
            optimizer.step()
            progress["step"] += 1
            progress["batch"] = i + 1
            progress["history"].append(
                {"epoch": epoch, "batch": i, "loss": loss.item(), "keep_rate": keep}
            )
        if progress["batch"] >= steps_per_epoch:
            progress["epoch"], progress["batch"] = epoch + 1, 0
        save()
    model.eval()
    if recipe.gradient_checkpointing:
        accelerator.unwrap_model(model).gradient_checkpointing_disable()
    accelerator.unwrap_model(model).save_pretrained(out_dir)
    summary = {
        "recipe": asdict(recipe),
        "samples": len(samples),
        "steps": progress["step"],
        "epochs_done": progress["epoch"],
        "final_loss": progress["history"][-1]["loss"] if progress["history"] else None,
        "history": progress["history"],
        "seconds_this_call": time.perf_counter() - started,
    }
    atomic_write_json(out_dir / "training.json", summary)
    return summary


def evaluate(
    adapter,
    features: torch.Tensor,
    answers: list[int],
    selector,
    retention: float,
    keys: list[str],
    batch: int = 128,
) -> float:
    """Top-1 accuracy (%) of `adapter` on precomputed features (the sweep's fast path)."""
    correct = 0
    with torch.no_grad():
        for start in range(0, len(answers), batch):
            logits, _ = adapter.classify(
                features[start : start + batch], selector, retention, keys[start : start + batch]
            )
            pred = logits.argmax(-1).cpu()
            correct += int((pred == torch.tensor(answers[start : start + batch])).sum())
    return 100.0 * correct / len(answers)


def default_out_dir(cfg) -> Path:
    """<cache>/models/<model>-<dataset>-<selector>-r<keep>-seed<seed> for a training config."""
    t = cfg.train.recipe
    name = f"{cfg.model.name}-{cfg.dataset.name}-{t.selector}-r{t.base_keep_rate:g}-seed{t.seed}"
    return Path(cfg.paths.cache_dir) / "models" / name


def train_from_config(cfg: DictConfig) -> dict:
    """Fine-tune `cfg.model` on `cfg.dataset`'s training side with the recipe `cfg.train`
    (what `main` runs); prints and returns the training summary."""
    from omegaconf import OmegaConf

    from audioprune.config import plain
    from audioprune.data import load_dataset
    from audioprune.errors import ConfigError
    from audioprune.state import get_adapter

    if "train" not in cfg:
        raise ConfigError("classifier.train: pick a recipe, e.g. +train=ast_esc50 (configs/train/)")
    args = dict(plain(cfg.dataset.get("args")))
    args["split"] = cfg.train.get("split", "train")
    samples, info = load_dataset(cfg.dataset.loader, **args)
    adapter = get_adapter(cfg.model)
    adapter.set_labels(info.extra["labels"])
    recipe = Recipe(**OmegaConf.to_container(cfg.train.recipe, resolve=True))
    out = Path(cfg.train.out) if cfg.train.get("out") else default_out_dir(cfg)
    summary = train_classifier(adapter, samples, recipe, out)
    print(
        json.dumps(
            {"out": str(out), "steps": summary["steps"], "final_loss": summary["final_loss"]}
        )
    )
    return summary


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
@exit_on_input_error  # a known input / config error: its message alone, exit status 2
def main(cfg: DictConfig) -> dict:
    """`python -m audioprune.classifier.train model=ast_audioset dataset=esc50 +train=ast_esc50
    train.recipe.base_keep_rate=0.7 [train.out=DIR]`: fine-tune on the dataset's training side
    (`train.split`, default "train"), resumable; then evaluate with
    `python -m audioprune.run ... model.pretrained=DIR`. A Hydra app over the run's configs."""
    logging.getLogger("audioprune").setLevel(logging.INFO)
    return train_from_config(cfg)


if __name__ == "__main__":
    main()
