"""`python -m audioprune.analyze model=... dataset=... limit=N`: how the encoder's received
attention is distributed, and how each selector covers the clip in time.

A Hydra app like `python -m audioprune.run`: the same config groups (configs/analyze.yaml
includes configs/config.yaml), the same overrides, the same encoder cache (clips whose encoder
output is cached are not encoded again). The analysis is picked by `analysis.kind` (default and
only kind so far: `attention`). Writes, to
`${paths.results_dir}/analysis/<model>/<dataset>/attention-<hash>/` (keyed like run folders by
what determines the result):
  - analysis.json: concentration statistics (top 1/5/10/25/50 % mass share, Gini, entropy;
    mean ± std over windows), the mean concentration curve, per-head statistics and Kendall τ-b
    of each head against the head average (when the adapter provides `TokenWindow.head_scores`),
    temporal coverage per selector × retention, and the kept positions drawn in the map;
  - concentration.{png,pdf,csv}, coverage.{png,pdf,csv}, kept_token_map.{png,pdf,csv}.
The math is in `audioprune.attention_stats`; the drawing in `audioprune.figures`.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from audioprune import attention_stats, figures
from audioprune.budget import check_retention, keep_count
from audioprune.config import CONFIG_DIR, plain
from audioprune.data import load_audio, load_dataset
from audioprune.errors import ConfigError, exit_on_input_error
from audioprune.identity import identity_hash, run_identity
from audioprune.loops.alm import _file_key
from audioprune.options import make_selector
from audioprune.spec import RunSpec, resolve_run
from audioprune.state import get_adapter, get_cache
from audioprune.store import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)


def seconds_per_token(adapter) -> float:
    """Audio seconds per LLM token: mel hop / rate x 4 (Whisper-style encoders: a stride-2 conv,
    then AvgPool(2, 2)), i.e. 0.04 s = 25 tokens per second; an adapter whose tokens are laid out
    otherwise says so with a `seconds_per_token` attribute (Whisper ASR: frames, 0.02 s)."""
    explicit = getattr(adapter, "seconds_per_token", None)
    if explicit:
        return float(explicit)
    fe = adapter.feature_extractor
    return 4 * fe.hop_length / fe.sampling_rate


def selector_specs(cfg: DictConfig) -> list:
    """The selectors compared: names of configs/selector/*.yaml (their shipped parameters) or
    inline mappings ({name: segmentwise_topk, segments: 5})."""
    import yaml

    selectors = []
    for entry in plain(cfg.analysis.selectors):
        if isinstance(entry, str):
            path = CONFIG_DIR / "selector" / f"{entry}.yaml"
            if not path.exists():
                valid = ", ".join(sorted(p.stem for p in path.parent.glob("*.yaml")))
                raise ValueError(f"analysis.selectors: no config {path}; valid: {valid}")
            entry = yaml.safe_load(path.read_text())
        selectors.append(make_selector(entry))
    return [s for s in selectors if s.prunes]


def analysis_identity(cfg: DictConfig, spec: RunSpec, info, selectors, samples) -> dict:
    """What determines the analysis: the run identity's model, dataset and versions (of
    `spec`, the resolved config), plus the compared selectors, retentions, S, the clips and the
    map settings (`cfg.analysis`)."""
    base = run_identity(spec.unpruned(), info)
    a = cfg.analysis
    return {
        "analysis": "attention",
        "model": base["model"],
        "dataset": base["dataset"],
        "versions": base["versions"],
        "selectors": [{"name": s.name, **s.params()} for s in selectors],
        "retentions": [check_retention(r) for r in a.retentions],
        "segments": int(a.segments),
        "samples": {
            "count": len(samples),
            "ids_sha256": hashlib.sha256("\n".join(s.id for s in samples).encode()).hexdigest(),
        },
        "map": {"retention": float(a.map_retention), "sample": str(a.map_sample)},
        "per_head": bool(a.per_head),
    }


def encoded_clips(cfg: DictConfig, adapter, samples) -> list:
    """Encoder outputs of every sample, from the encoder cache when present. With
    analysis.per_head, a cached clip without per-head scores is encoded again to get them."""
    cache = get_cache(cfg)
    fingerprint = adapter.fingerprint()
    needs = frozenset({"hidden", "keys", "head_scores"} if cfg.analysis.per_head else {"hidden", "keys"})  # fmt: skip
    keys = [_file_key(s.audio_path, adapter.sampling_rate) for s in samples]
    found = cache.lookup(fingerprint, keys, needs)  # an entry without head_scores is a miss
    todo = [i for i, hit in enumerate(found) if hit is None]
    step = max(1, int(cfg.batch_size))
    for start in range(0, len(todo), step):
        batch = todo[start : start + step]
        waves = [load_audio(samples[i].audio_path, adapter.sampling_rate) for i in batch]
        for i, encoded in zip(batch, adapter.encode(waves, needs)):
            cache.put(fingerprint, keys[i], encoded)
            found[i] = encoded  # keep the fresh output: it may carry fields the cache drops
    log.info("attention analysis: %d of %d clips encoded, the rest from the cache", len(todo), len(samples))  # fmt: skip
    return found


def concentration_stats(windows) -> tuple[dict, pd.DataFrame]:
    """Mean ± std of the concentration statistics over windows, and the mean curve."""
    stats = attention_stats.mean_std(attention_stats.concentration(w.scores) for w in windows)
    curves = np.stack([attention_stats.concentration_curve(w.scores) for w in windows])
    curve = pd.DataFrame(
        {
            "x": np.linspace(0, 1, curves.shape[1]),
            "mean": curves.mean(axis=0),
            "std": curves.std(axis=0),
        }
    )
    return stats, curve


def per_head_stats(windows) -> dict:
    """Per head of the scored layer, mean ± std over windows of its statistics and τ-b."""
    heads = [getattr(w, "head_scores", None) for w in windows]
    present = [h for h in heads if h is not None]
    if not present:
        return {
            "available": False,
            "reason": "the adapter's encoder output has no per-head scores "
            "(TokenWindow.head_scores is None)",
        }
    per_head: dict[int, list] = {}
    for head_scores in present:
        for h, row in enumerate(attention_stats.head_agreement(head_scores)):
            per_head.setdefault(h, []).append(row)
    return {
        "available": True,
        "windows": len(present),
        "heads": [
            {"head": h, **attention_stats.mean_std(rows)} for h, rows in sorted(per_head.items())
        ],
    }


def coverage_stats(clips, samples, selectors, retentions, segments, spt) -> list[dict]:
    """Coverage of every selector at every retention, mean ± std over windows."""
    rows = []
    for selector in selectors:
        for retention in retentions:
            values = []
            for sample, encoded in zip(samples, clips):
                for w, window in enumerate(encoded.windows):
                    kept = _select(selector, window, retention, f"{sample.id}#{w}")
                    values.append(attention_stats.coverage(kept, window.num_tokens, segments, spt))
            rows.append({"selector": selector.name, "retention": retention, **attention_stats.mean_std(values)})  # fmt: skip
    return rows


def _select(selector, window, retention: float, key: str):
    k = keep_count(window.num_tokens, retention)
    return selector.select_window(replace(window, sample_key=key), k).indices


def map_index(samples, wanted) -> int:
    """The clip of the kept-token map: a sample id, or an index into the analysed clips."""
    ids = [s.id for s in samples]
    if str(wanted) in ids:
        return ids.index(str(wanted))
    if isinstance(wanted, int) and -len(ids) <= wanted < len(ids):
        return wanted
    raise ValueError(
        f"analysis.map_sample={wanted!r} is neither the id of an analysed clip nor an index "
        f"below {len(ids)} (limit={len(ids)} clips; ids like {ids[0]!r})"
    )


def log_mel(adapter, waveform: np.ndarray) -> np.ndarray:
    """[mels, frames] the model's own log-mel features of the clip's first 30 s window."""
    fe = adapter.feature_extractor
    features = fe(waveform, sampling_rate=fe.sampling_rate, return_tensors="np")["input_features"]
    frames = min(features.shape[-1], int(np.ceil(len(waveform) / fe.hop_length)))
    return features[0][:, :frames]


def analyze_attention(cfg: DictConfig) -> Path:
    """Run the attention analysis; returns the folder holding analysis.json and the figures."""
    a = cfg.analysis
    spec = resolve_run(cfg)  # the run's options checked (and `imports` imported) up front
    samples, info = load_dataset(cfg.dataset.loader, **plain(cfg.dataset.get("args")))
    if spec.limit:
        samples = samples[: spec.limit]
    samples = [s for s in samples if s.audio_path is not None]
    if not samples:
        raise ValueError(f"dataset {cfg.dataset.name!r}: no sample with audio to analyse")
    selectors = selector_specs(cfg)
    retentions = [check_retention(r) for r in a.retentions]
    identity = analysis_identity(cfg, spec, info, selectors, samples)
    out = Path(cfg.paths.results_dir) / "analysis" / str(cfg.model.name) / str(cfg.dataset.name)
    out = Path(cfg.run_dir) if cfg.get("run_dir") else out / f"attention-{identity_hash(identity)}"

    adapter = get_adapter(cfg.model)
    clips = encoded_clips(cfg, adapter, samples)
    windows = [w for encoded in clips for w in encoded.windows]
    spt = seconds_per_token(adapter)
    concentration, curve = concentration_stats(windows)
    per_head = per_head_stats(windows)
    coverage = coverage_stats(clips, samples, selectors, retentions, int(a.segments), spt)

    index = map_index(samples, a.map_sample)
    sample, window = samples[index], clips[index].windows[0]
    kept = {
        s.name: _select(s, window, float(a.map_retention), f"{sample.id}#0").tolist()
        for s in selectors
    }
    mel = log_mel(adapter, load_audio(sample.audio_path, adapter.sampling_rate))

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    atomic_write_json(out / "identity.json", identity)
    drawn = {
        "concentration": figures.concentration_figure(curve, concentration, per_head),
        "coverage": figures.coverage_figure(pd.DataFrame(coverage), int(a.segments)),
        "kept_token_map": figures.kept_token_map(
            mel, window.scores.tolist(), kept, spt,
            title=f"{cfg.model.name}, {sample.id}: kept tokens at retention {float(a.map_retention):.0%}",
        ),
    }  # fmt: skip
    for stem, (fig, data) in drawn.items():
        figures.save_figure(fig, out / stem, data)
    result = {
        "identity": identity,
        "hash": identity_hash(identity),
        "num_clips": len(samples),
        "num_windows": len(windows),
        "seconds_per_token": spt,
        "concentration": concentration,
        "concentration_curve": {k: curve[k].tolist() for k in ("x", "mean", "std")},
        "per_head": per_head,
        "coverage": coverage,
        "map": {"sample": sample.id, "retention": float(a.map_retention), "kept_indices": kept},
    }
    atomic_write_json(out / "analysis.json", result)
    top = concentration["top_10%"]["mean"]
    log.info("attention analysis of %d windows: top 10%% of tokens hold %.1f%% of the mass -> %s", len(windows), 100 * top, out)  # fmt: skip
    return out


# `analysis.kind` -> the analysis it runs (each returns the folder it wrote).
ANALYSES: dict[str, Callable[[DictConfig], Path]] = {"attention": analyze_attention}
NEW_FORM = "python -m audioprune.analyze model=tiny_qwen2_audio dataset=synthetic_captions limit=8"


def analyze(cfg: DictConfig) -> Path:
    """The analysis `cfg.analysis.kind` names (default `attention`); returns its folder."""
    kind = str(cfg.analysis.get("kind", "attention"))
    if kind not in ANALYSES:
        raise ConfigError(
            f"analysis.kind={kind}: unknown analysis; valid kinds: {', '.join(sorted(ANALYSES))}"
        )
    return ANALYSES[kind](cfg)


def refuse_leading_word(argv: list[str]) -> None:
    """Refuse the old form with a leading word (`analyze attention model=...`), naming the new
    one. The analysis kind is the config key `analysis.kind` now; a bare word would otherwise
    reach Hydra's override parser, whose error names neither form. A ConfigError; run before
    Hydra reads `argv` (which is left as it is)."""
    if not argv or "=" in argv[0] or argv[0].startswith(("-", "~", "+")):
        return  # overrides (key=value, +key=value, ~key) and Hydra's own flags
    word, valid = argv[0], ", ".join(sorted(ANALYSES))
    if word in ANALYSES:
        said = (
            f"'python -m audioprune.analyze {word} ...' is now 'python -m audioprune.analyze "
            f"...' with Hydra overrides only, like audioprune.run (the analysis is the config key "
            f"analysis.kind={word}, the default)"
        )
    else:
        said = (
            f"python -m audioprune.analyze takes Hydra overrides (key=value), not {word!r}; the "
            f"analysis is picked by analysis.kind (valid: {valid})"
        )
    raise ConfigError(f"{said}; e.g.\n  {NEW_FORM}")


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="analyze")
@exit_on_input_error  # a known input / config error: its message alone, exit status 2
def main(cfg: DictConfig) -> None:
    """`python -m audioprune.analyze model=... dataset=... limit=N [analysis.kind=attention]`:
    a Hydra app over the run's configs (configs/analyze.yaml); prints the folder written."""
    logging.getLogger("audioprune").setLevel(logging.INFO)
    print(analyze(cfg))


if __name__ == "__main__":
    exit_on_input_error(refuse_leading_word)(sys.argv[1:])  # `error: ...`, exit status 2
    main()
