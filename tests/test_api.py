"""The public API (`audioprune.load_model`, `Model.generate`) gives what a run records for the
same clip, prompt, selector and retention, and `import audioprune` stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

from audioprune import runner
from audioprune.data import load_dataset
from audioprune.identity import prompt_template
from audioprune.prompts import render_prompt

BASE = ("model=tiny_qwen2_audio", "dataset=synthetic_mmau", "limit=2")


def test_import_audioprune_imports_neither_torch_nor_transformers():
    code = (
        "import sys, audioprune; "
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_attribute_is_an_attribute_error():
    import audioprune

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        audioprune.nope  # noqa: B018


@pytest.mark.parametrize(
    ("selector", "params"),
    [
        ("segmentwise_topk", {"segments": 4}),
        ("random", {}),  # seeded per sample id: the API's sample_id must reach the selector
        ("fastv", {}),  # in-LLM: the kept tokens come from inside the LLM
    ],
)
def test_generate_equals_the_run_record(
    compose_cfg, session_cache, monkeypatch, fresh_process_state, selector, params
):
    import audioprune

    overrides = [f"selector.{k}={v}" for k, v in params.items()]
    cfg = compose_cfg(*BASE, f"selector={selector}", "retention=0.25", *overrides)
    result = runner.run(cfg)
    samples, _ = load_dataset(cfg.dataset.loader, **runner.plain(cfg.dataset.args))
    by_id = {s.id: s for s in samples}

    monkeypatch.setenv("AUDIOPRUNE_CACHE", str(session_cache))  # the run's tiny model
    model = audioprune.load_model("tiny_qwen2_audio")
    assert len(result.records) == 2
    for record in result.records:
        sample = by_id[record["id"]]
        prompt = render_prompt(prompt_template(cfg), sample)
        out = model.generate(
            sample.audio_path,
            prompt,
            selector=selector,
            retention=0.25,
            sample_id=sample.id,
            **params,
        )
        assert out.kept_indices == record["kept_indices"]
        assert out.kept_per_window == record["kept_per_window"]
        assert out.kept_tokens == record["kept_tokens"] < out.audio_tokens
        assert out.prompt_tokens == record["prompt_tokens"]
        assert out.text == record["prediction"]


def test_generate_refuses_bad_input(session_cache, monkeypatch, fresh_process_state):
    import numpy as np

    import audioprune

    monkeypatch.setenv("AUDIOPRUNE_CACHE", str(session_cache))
    model = audioprune.load_model("tiny_qwen2_audio")
    stereo = np.zeros((2, 16_000), dtype=np.float32)
    with pytest.raises(ValueError, match=r"mono waveform \[T\]"):
        model.generate(stereo, "Describe the audio.")
    with pytest.raises(ValueError, match="retention"):
        model.generate(stereo[0], "Describe the audio.", selector="topk", retention=1.5)


@pytest.mark.parametrize(
    "value", ["/models/a b/qwen", "it's,x=y", "cuda", 3, 0.5, None, True, ["a", "b c"]]
)
def test_keyword_overrides_reach_the_config_unchanged(value):
    """load_model's keywords become Hydra overrides; paths with spaces, commas, quotes or `=`
    arrive as given."""
    from omegaconf import OmegaConf

    from audioprune.api import _override
    from audioprune.config import compose

    cfg = compose(["model=tiny_qwen2_audio", _override("model.pretrained", value)])
    got = cfg.model.pretrained
    assert (OmegaConf.to_container(got) if OmegaConf.is_config(got) else got) == value
