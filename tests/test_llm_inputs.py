"""What really reaches the LLM, through the production path (runner → prune_clip → adapter
`generate`), on both tiny models: the input embeddings at the audio placeholders are
projector(hidden[kept indices]) (VisionZip: its merged rows), `random` draws differently for two
clips of the same length, and hostile audio files (NaN samples, a 1-sample clip) are refused
naming the file or skipped and listed."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from audioprune import runner
from audioprune.budget import keep_count
from audioprune.data import AudioLoadError, load_audio
from audioprune.selectors import build_selector

pytestmark = pytest.mark.slow
RATE = 16_000
SECONDS = 3.0  # both good clips have the same length (same N, same K)
MODELS = ["tiny_qwen2_audio", "tiny_audio_flamingo_3"]
GOOD = ["a.wav", "b.wav"]


def write_clotho(root, clips: dict[str, np.ndarray]) -> list[str]:
    """A Clotho-layout dataset of `clips` (name -> wave at 16 kHz); overrides for the runner."""
    (root / "evaluation").mkdir(parents=True)
    for name, wave in clips.items():
        sf.write(root / "evaluation" / name, wave, RATE, subtype="FLOAT")
    with open(root / "clotho_captions_evaluation.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file_name", *(f"caption_{i}" for i in range(1, 6))])
        writer.writerows([name, *(f"a sound number {i}" for i in range(5))] for name in clips)
    return [
        "dataset=clotho_v2",
        f"dataset.args.root={root}",
        "dataset.args.expected_count=null",
        "dataset.args.allow_subset=true",
        "dataset.metrics.captioning_metrics=[bleu_4]",
        "model.generation.max_new_tokens=2",
    ]


def good_clip(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(SECONDS * RATE)) / RATE
    tone = 0.3 * np.sin(2 * np.pi * (300 + 400 * seed) * t) * (np.sin(2 * np.pi * 2 * t) > 0)
    return (tone + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    nan = good_clip(2)
    nan[100] = np.nan
    root = tmp_path_factory.mktemp("hostile") / "clotho"
    clips = {"a.wav": good_clip(0), "nan.wav": nan, "b.wav": good_clip(1)}
    clips["blip.wav"] = np.full(1, 0.1, dtype=np.float32)  # one sample: no audio token
    return root, write_clotho(root, clips)


@pytest.fixture(autouse=True)
def fresh_process_state():
    runner.reset_process_state()
    yield
    runner.reset_process_state()


class LLMInputs:
    """Records, per generate call, the input_ids handed to the stock `generate` and the
    inputs_embeds its LLM got at prefill (the LLM itself never sees input_ids)."""

    def __init__(self, adapter):
        self.ids, self.embeds = [], []
        self.model = adapter.model
        stock_generate = adapter.model.generate

        def generate(*args, **kwargs):
            self.ids.append(kwargs["input_ids"].detach().clone())
            return stock_generate(*args, **kwargs)

        self.model.generate = generate  # instance attribute: removed again in `remove`
        self.handles = [
            adapter.model.model.language_model.register_forward_pre_hook(
                self._llm, with_kwargs=True
            ),
        ]

    def _llm(self, module, args, kwargs):
        embeds = kwargs.get("inputs_embeds")
        if embeds is not None and embeds.shape[1] > 1:
            self.embeds.append(embeds.detach().clone())

    def audio_rows(self, audio_token_id: int) -> list[torch.Tensor]:
        """Per batch row (all prefills in order): the LLM input rows at the audio placeholders."""
        assert len(self.ids) == len(self.embeds) > 0
        rows = []
        for ids, embeds in zip(self.ids, self.embeds):
            assert ids.shape == embeds.shape[:2]
            rows += [embeds[r][ids[r] == audio_token_id] for r in range(ids.shape[0])]
        return rows

    def remove(self):
        del self.model.generate
        for handle in self.handles:
            handle.remove()


def run_capturing(cfg):
    adapter = runner.get_adapter(cfg.model)  # the instance run() will use
    seen = LLMInputs(adapter)
    try:
        result = runner.run(cfg)
    finally:
        seen.remove()
    return adapter, result, seen.audio_rows(adapter.audio_token_id)


def fresh_windows(adapter, root, names: list[str]) -> dict[str, list]:
    """Each clip's windows from an independent encode of its file (not the run's cache)."""
    waves = [load_audio(root / "evaluation" / name, adapter.sampling_rate) for name in names]
    encoded = adapter.encode(waves, needs=frozenset({"keys"}))
    return {name: e.windows for name, e in zip(names, encoded)}


def project(adapter, hidden: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return adapter.model.model.multi_modal_projector(hidden)


@pytest.mark.parametrize("model", MODELS)
def test_llm_gets_projected_kept_rows_and_hostile_files_are_skipped(compose_cfg, dataset, model):
    root, overrides = dataset
    common = [*overrides, f"model={model}", "retention=0.25", "batch_size=2"]
    cfg = compose_cfg(*common, "selector=topk", "dataset.args.on_error=skip")
    adapter, result, rows = run_capturing(cfg)

    metrics = result.metrics["run"]
    assert sorted(metrics["skipped"]) == ["blip.wav", "nan.wav"] and metrics["num_predictions"] == 2
    errors = {r["id"]: r.get("error") for r in result.records}
    assert "nan.wav: audio holds 1 non-finite" in errors["nan.wav"]
    assert "blip.wav: audio too short: 1 samples" in errors["blip.wav"]

    assert len(rows) == 2  # one batch: a.wav and b.wav (the hostile files were skipped)
    fresh = fresh_windows(adapter, root, GOOD)
    for name, got in zip(GOOD, rows):
        record = next(r for r in result.records if r["id"] == name)
        windows = fresh[name]
        expected_idx = [
            build_selector("topk")(w.scores, keep_count(w.num_tokens, 0.25)) for w in windows
        ]
        assert record["kept_indices"] == [i.tolist() for i in expected_idx]
        assert expected_idx[0].tolist() != list(range(len(expected_idx[0])))  # not the first K
        kept = torch.cat([w.hidden[i] for w, i in zip(windows, expected_idx)])
        torch.testing.assert_close(got, project(adapter, kept), atol=2e-5, rtol=1e-4)

    # VisionZip: its merged contextual rows (target + mean of joined tokens) reach the LLM.
    cfg = compose_cfg(*common, "selector=visionzip", "dataset.args.on_error=skip")
    adapter, result, rows = run_capturing(cfg)
    visionzip = build_selector("visionzip")
    for name, got in zip(GOOD, rows):
        windows = fresh[name]
        picks = [visionzip.select_window(w, keep_count(w.num_tokens, 0.25)) for w in windows]
        merged = torch.cat([p.embeddings for p in picks])
        gathered = torch.cat([w.hidden[p.indices] for w, p in zip(windows, picks)])
        assert not torch.allclose(merged, gathered)  # merging changed some rows
        torch.testing.assert_close(got, project(adapter, merged), atol=2e-5, rtol=1e-4)


def test_random_draws_differ_between_clips_of_the_same_length(compose_cfg, dataset):
    root, overrides = dataset
    cfg = compose_cfg(
        *overrides, "model=tiny_qwen2_audio", "selector=random", "retention=0.25",
        "dataset.args.on_error=skip",
    )  # fmt: skip
    adapter, result, rows = run_capturing(cfg)
    records = {r["id"]: r for r in result.records if r.get("prediction") is not None}
    a, b = records["a.wav"], records["b.wav"]
    assert a["audio_tokens"] == b["audio_tokens"] and a["kept_tokens"] == b["kept_tokens"]
    assert a["kept_indices"] != b["kept_indices"]
    fresh = fresh_windows(adapter, root, GOOD)
    for name, got in zip(GOOD, rows):  # and those are the rows the LLM got
        (window,) = fresh[name]
        idx = torch.tensor(records[name]["kept_indices"][0])
        torch.testing.assert_close(got, project(adapter, window.hidden[idx]), atol=2e-5, rtol=1e-4)


def test_hostile_file_under_on_error_raise_names_the_file(compose_cfg, dataset, tmp_path):
    root, overrides = dataset
    cfg = compose_cfg(*overrides, "model=tiny_qwen2_audio", "selector=topk")
    with pytest.raises(AudioLoadError, match=r"evaluation/nan.wav: audio holds 1 non-finite"):
        runner.run(cfg)
    (saved,) = (tmp_path / "results").rglob("predictions.jsonl")  # a.wav, done before, is kept
    assert [json.loads(x)["id"] for x in saved.read_text().splitlines()] == ["a.wav"]
