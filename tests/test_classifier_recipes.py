"""The classifier family's fine-tuning recipes (configs/train/) and evaluation recipes
(configs/experiment/paper2_*) against the authors' scripts: the keep-rate and LR schedules per
epoch, and the input features (frames, dataset statistics, padding) used to fine-tune and to
evaluate."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from audioprune.classifier.train import Recipe
from audioprune.config import CONFIG_DIR, compose

# The authors' flags (ast/egs/*/run_*.sh, audiomae/ft_*.sh, main_finetune.py's norm_stats and
# target_length): shrink_start_epoch, shrink_epochs, the number their loop gives the first
# epoch, and the fbank they fine-tune on (frames, mean, std; both code bases pad with the
# spectrogram's minimum).
AUTHORS = {
    "ast_esc50": dict(start=5, length=15, first=1, features=(512, -6.6268077, 5.358466)),
    "ast_speech_commands": dict(start=5, length=15, first=1, features=(128, -6.845978, 5.5654526)),
    "ast_audioset20k": dict(start=15, length=10, first=1, features=(1024, -4.2677393, 4.5689974)),
    "audiomae_esc50": dict(start=20, length=40, first=0, features=(512, -6.6268077, 5.358466)),
    "audiomae_speech_commands": dict(
        start=10, length=30, first=0, features=(128, -6.845978, 5.5654526)
    ),
    "audiomae_voxceleb1": dict(start=20, length=40, first=0, features=(1024, -6.370, 3.074)),
}
MODEL = {"ast": "ast_audioset", "audiomae": "audiomae_as2m"}
DATASET = {
    "esc50": "esc50",
    "speech_commands": "speech_commands_v2",
    "audioset20k": "audioset_20k",
    "voxceleb1": "voxceleb1",
}
# The evaluation recipe each fine-tuning recipe feeds (model.pretrained points at its output).
EVALUATED_BY = {
    "ast_esc50": "paper2_ast_esc50",
    "ast_speech_commands": "paper2_ast_speech_commands_v2",
    "audiomae_esc50": "paper2_audiomae_esc50",
    "audiomae_voxceleb1": "paper2_audiomae_voxceleb1",
}


def authors_keep_rate(epoch: int, base: float, start: int, length: int) -> float:
    """get_scheduled_keep_rate_list of both code bases, in the epoch numbers their loop uses."""
    if epoch < start:
        return 1.0
    if epoch >= start + length:
        return base
    return base + (1 - base) * (math.cos((epoch - start) / length * math.pi) + 1) * 0.5


def train_cfg(name: str):
    family, dataset = name.split("_", 1)
    return compose([f"model={MODEL[family]}", f"dataset={DATASET[dataset]}", f"+train={name}"])


@pytest.mark.parametrize("name", sorted(AUTHORS))
def test_keep_rate_per_epoch_is_the_authors(name):
    """Epoch i of our loop (counted from 0) is the authors' epoch i + first: AST's loop counts
    from 1, so with shrink_start_epoch 5 its keep rate first drops in our epoch 5 (their 6th)."""
    a = AUTHORS[name]
    recipe = Recipe(**OmegaConf.to_container(train_cfg(name).train.recipe, resolve=True))
    ours = [recipe.keep_rate(i, 0, 10) for i in range(recipe.epochs)]
    theirs = [
        authors_keep_rate(i + a["first"], recipe.base_keep_rate, a["start"], a["length"])
        for i in range(recipe.epochs)
    ]
    assert ours == pytest.approx(theirs, abs=1e-12)
    first_drop = next(i for i, r in enumerate(ours) if r < 1.0)
    assert first_drop + a["first"] == a["start"] + 1  # the authors' epoch after shrink start


@pytest.mark.parametrize("name", [n for n in sorted(AUTHORS) if n.startswith("ast")])
def test_ast_lr_per_epoch_is_multisteplr_stepped_once_per_epoch(name):
    """The authors' AST loop calls MultiStepLR(range(start, 1000, every)).step() after each
    epoch: our factor for epoch i equals torch's after i steps, independent of the numbering."""
    recipe = Recipe(**OmegaConf.to_container(train_cfg(name).train.recipe, resolve=True))
    s = recipe.lr_schedule
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([param], lr=recipe.lr)
    sched = torch.optim.lr_scheduler.MultiStepLR(
        opt, list(range(s["start"], 1000, s["every"])), gamma=s["gamma"]
    )
    for i in range(recipe.epochs):
        assert recipe.lr * recipe.lr_factor(i, 0, 10) == pytest.approx(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()


@pytest.mark.parametrize("name", sorted(AUTHORS))
def test_fine_tuning_features_are_the_authors(name):
    """The documented command (`model=… dataset=… +train=<recipe>`) fine-tunes on the authors'
    fbank: their length and the dataset's statistics, not the model config's AudioSet default."""
    frames, mean, std = AUTHORS[name]["features"]
    features = train_cfg(name).model.features
    assert (features.frames, features.mean, features.std) == (frames, mean, std)
    assert features.padding == "min"  # both code bases pad with the spectrogram's minimum


@pytest.mark.parametrize("name", sorted(EVALUATED_BY))
def test_evaluation_features_equal_fine_tuning_features(name):
    trained = train_cfg(name).model.features
    evaluated = compose([f"experiment={EVALUATED_BY[name]}"]).model.features
    assert OmegaConf.to_container(evaluated) == OmegaConf.to_container(trained)


PAPER2 = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("paper2_*.yaml"))


def word_clip(seconds: float, seed: int = 0) -> np.ndarray:
    """A spoken-word-like clip: quiet noise, a 0.6 s harmonic burst in the middle, quiet noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16_000)) / 16_000
    centre = seconds / 2
    gate = (np.abs(t - centre) < 0.3).astype(np.float32)
    voice = sum(np.sin(2 * np.pi * f0 * t) / k for k, f0 in enumerate((180, 360, 540, 900), 1))
    return (0.3 * gate * voice + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


def test_every_paper2_experiment_is_checked():
    assert len(PAPER2) >= 5


@pytest.mark.parametrize("experiment", PAPER2)
def test_paper2_padding_is_the_authors_and_never_outranks_the_clip(experiment):
    """The authors pad with the spectrogram's minimum. With transformers' zero padding and SPC-2
    statistics the padding normalises to (0 − μ)/(2σ) = +0.615, and on a 1 s word every padding
    patch ranks in the top half by intensity (what the `intensity` selector keeps)."""
    from audioprune.classifier import scores as S
    from audioprune.classifier.adapter import fbank_spec
    from audioprune.classifier.features import Fbank

    features = compose([f"experiment={experiment}"]).model.features
    assert features.padding == "min"
    spec = fbank_spec(OmegaConf.to_container(features), features.frames, 128)
    fbank = Fbank(spec)
    seconds = {128: 1.0, 512: 3.0, 1024: 6.0}[spec.frames]
    wave = word_clip(seconds)
    x = fbank([wave])  # [1, T, F]
    real = fbank.real_frames(len(wave))
    assert 0 < real < spec.frames
    assert torch.all(x[0, real:] == x[0, :real].min())  # the clip's quietest value
    intensity = S.patch_statistics(x, 16, S.TIME_MAJOR)["intensity"][0].view(-1, 8)  # [T', F']
    padded_columns = [c for c in range(spec.frames // 16) if (c + 1) * 16 - real > 8]
    top_half = set(intensity.flatten().argsort(descending=True)[: intensity.numel() // 2].tolist())
    padded = {c * 8 + f for c in padded_columns for f in range(8)}
    assert padded and not padded & top_half
