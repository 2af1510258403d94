"""The public Python API: load a model by its config name and prune-and-generate one clip.

    model = audioprune.load_model("qwen2_audio", pretrained="/models/Qwen2-Audio-7B-Instruct")
    out = model.generate(wave, "Describe the audio.", selector="segmentwise_topk", retention=0.25)
    out.text, out.kept_indices

It calls the functions the run loop calls for each clip (`audioprune.loops.alm`): the adapter's
`encode`, `complete_windows`, `prune_clip` under the composed budget, the adapter's `generate`;
the selector and budget come from the same YAML files as `python -m audioprune.run`, so a
record of a run and `Model.generate` agree on the kept tokens and the text for the same clip,
prompt, selector and retention. No run folder, store or cache is involved.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

# Fields the adapter reports for an in-LLM selector, replacing the pre-LLM counts (as in the loop).
_IN_LLM_FIELDS = ("kept_tokens", "kept_per_window", "kept_indices")


@dataclass
class Result:
    """One clip's answer and what reached the LLM.

    kept_indices: per 30 s window, the kept token positions (ascending, within the window);
    kept_per_window: their counts; kept_tokens / audio_tokens: kept and valid audio tokens of
    the clip; prompt_tokens: LLM input length (text + kept audio tokens); extra: the adapter's
    per-sample values (e.g. Whisper's `cap_hit`).
    """

    text: str
    kept_indices: list[list[int]]
    kept_per_window: list[int]
    kept_tokens: int
    audio_tokens: int
    prompt_tokens: int
    token_ids: list[int] = field(default_factory=list)
    extra: dict = field(default_factory=dict)


def _override(key: str, value: Any) -> str:
    """A Hydra override `key=value`; lists, None and strings Hydra would split (spaces, commas,
    `=`, quotes) in Hydra's own syntax."""
    if value is None:
        return f"{key}=null"
    if isinstance(value, bool):
        return f"{key}={str(value).lower()}"
    if isinstance(value, list | tuple):
        return f"{key}=[{','.join(_value(v) for v in value)}]"
    return f"{key}={_value(value)}"


def _value(value: Any) -> str:
    text = str(value)
    if isinstance(value, str) and not re.fullmatch(r"[\w./:+-]+", text):
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return text


class Model:
    """A loaded model adapter with its composed model config (see `load_model`)."""

    def __init__(self, name: str, model_overrides: list[str], cfg: DictConfig, adapter) -> None:
        self.name = name
        self.cfg = cfg
        self.adapter = adapter
        self._model_overrides = model_overrides

    @property
    def sampling_rate(self) -> int:
        return int(self.adapter.sampling_rate)

    def config(
        self, selector: str, retention: float, budget: str, positions: str, **params: Any
    ) -> DictConfig:
        """The run config these settings compose to (the same files `audioprune.run` reads)."""
        from audioprune.config import compose

        return compose(
            [
                f"model={self.name}",
                *self._model_overrides,
                f"selector={selector}",
                *(_override(f"selector.{k}", v) for k, v in params.items()),
                f"budget={budget}",
                f"retention={retention}",
                f"positions={positions}",
            ]
        )

    def generate(
        self,
        audio: np.ndarray | str | Path,
        prompt: str,
        selector: str = "none",
        retention: float = 1.0,
        *,
        budget: str = "per_window",
        positions: str = "compact",
        sample_id: str = "clip",
        max_new_tokens: int | None = None,
        **selector_params: Any,
    ) -> Result:
        """Score, select and generate for one clip.

        audio: [T] float32 mono at `self.sampling_rate` Hz, or the path of an audio file (read
            and resampled as a run reads it); prompt: the user text (the run's rendered prompt).
        selector / selector_params: a selector config name (`configs/selector/`) and overrides
            of its parameters, e.g. `segments=5`; retention in (0, 1]; budget: a
            `configs/budget/` name (an adaptive budget with `mass: null` is calibrated on this
            clip alone); sample_id seeds `random` as a run's sample id does.
        """
        from audioprune.budget import check_retention, make_budget
        from audioprune.config import plain
        from audioprune.data import load_audio
        from audioprune.models.needs import DERIVED_NEEDS, complete_windows
        from audioprune.options import check_model_support, check_run_options, make_selector
        from audioprune.pruning import calibrate_budget, prune_clip

        cfg = self.config(selector, retention, budget, positions, **selector_params)
        check_run_options(cfg)
        chosen = make_selector(cfg.selector)
        check_model_support(cfg, chosen)  # what the run refuses, refused here too
        retention = check_retention(cfg.retention) if chosen.prunes else 1.0
        if isinstance(audio, str | Path):
            audio = load_audio(audio, self.adapter.sampling_rate, self.adapter.min_samples)
        wave = np.asarray(audio, dtype=np.float32)
        if wave.ndim != 1:
            raise ValueError(f"audio must be a mono waveform [T], got shape {wave.shape}")
        needs = frozenset({"hidden", "keys", "head_scores"}) | (chosen.needs - DERIVED_NEEDS)
        encoded = self.adapter.encode([wave], needs)[0]
        encoded = complete_windows(self.adapter, encoded, chosen.needs, prompt)
        rules = make_budget(cfg)
        if rules.needs_calibration and chosen.prunes:
            rules = calibrate_budget(rules, [encoded], retention)
        pruned = prune_clip(encoded, chosen, retention, sample_id, rules)
        generation = dict(plain(cfg.model.get("generation")))
        default_new = int(generation.pop("max_new_tokens", 32))
        in_llm = chosen.stage == "llm"
        generations, _ = self.adapter.generate(
            [prompt],
            [pruned],
            max_new_tokens=default_new if max_new_tokens is None else int(max_new_tokens),
            positions=cfg.positions,
            **({"llm_pruner": chosen} if in_llm else {}),
            **generation,
        )
        gen = generations[0]
        extra = dict(gen.extra)
        kept = {
            "kept_tokens": pruned.kept,
            "kept_per_window": [int(t.shape[0]) for t in pruned.tokens],
            "kept_indices": [idx.tolist() for idx in pruned.indices],
        }
        if in_llm:  # what the LLM kept is only known inside it: the adapter reports it
            kept |= {k: extra.pop(k) for k in _IN_LLM_FIELDS if k in extra}
        return Result(
            text=gen.text,
            audio_tokens=pruned.total,
            prompt_tokens=gen.prompt_tokens,
            token_ids=list(gen.token_ids),
            extra=extra,
            **kept,
        )


def load_model(name: str, **overrides: Any) -> Model:
    """Load the model of `configs/model/<name>.yaml` with `model.<key>=value` overrides.

    e.g. `load_model("qwen2_audio", pretrained="/models/qwen2-audio", device="cuda",
    dtype="bfloat16")`. The adapter is loaded as a run loads it (tiny models are built on
    first use under `paths.cache_dir`, i.e. `.cache` or `$AUDIOPRUNE_CACHE`).
    """
    from audioprune.config import compose
    from audioprune.state import get_adapter

    model_overrides = [_override(f"model.{k}", v) for k, v in overrides.items()]
    cfg = compose([f"model={name}", *model_overrides])
    family = cfg.model.get("family", "alm")
    if family != "alm":
        raise ValueError(
            f"model {name!r} is of the {family!r} family; load_model serves audio LMs and "
            "Whisper (family 'alm'). Run classifiers with `python -m audioprune.run`."
        )
    return Model(name, model_overrides, cfg, get_adapter(cfg.model))
