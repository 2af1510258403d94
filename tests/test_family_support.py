"""Each model family states which selectors, budgets and positions it supports; everything else
is refused at config time, before data or model are touched (issue 16 §3.7, §3.9)."""

from __future__ import annotations

import pytest

from audioprune.options import make_selector

CLASSIFIER = ("model=tiny_ast_random", "dataset=synthetic_classes", "model.build_tiny=null")
WHISPER = ("model=whisper_tiny_en", "dataset=synthetic_speech")
ALM = ("model=tiny_qwen2_audio", "dataset=synthetic_captions", "model.build_tiny=null")


def refusal(compose_cfg, tmp_path, *overrides) -> str:
    """The message `run` refuses `overrides` with; the model path does not exist, so a run that
    got as far as loading a model would fail with another message."""
    from audioprune.errors import ConfigError
    from audioprune.runner import run

    cfg = compose_cfg(*overrides, f"model.pretrained={tmp_path / 'no-model'}")
    with pytest.raises(ConfigError) as err:
        run(cfg)
    assert not (tmp_path / "results").exists()  # nothing written
    return str(err.value)


@pytest.mark.parametrize("selector", ["visionzip", "fastv", "tome", "divprune", "dart", "atome"])
def test_classifier_refuses_selectors_it_cannot_run(compose_cfg, tmp_path, selector):
    message = refusal(compose_cfg, tmp_path, *CLASSIFIER, f"selector={selector}")
    assert f"selector={selector}" in message and "classifier" in message
    assert "topk" in message  # says what it supports


@pytest.mark.parametrize("budget", ["global", "adaptive"])
def test_classifier_refuses_budgets_other_than_per_window(compose_cfg, tmp_path, budget):
    message = refusal(compose_cfg, tmp_path, *CLASSIFIER, "selector=topk", f"budget={budget}")
    assert f"budget={budget}" in message and "per_window" in message


def test_classifier_refuses_positions_and_prompt(compose_cfg, tmp_path):
    assert "positions=original" in refusal(
        compose_cfg, tmp_path, *CLASSIFIER, "selector=topk", "positions=original"
    )
    assert "prompt" in refusal(compose_cfg, tmp_path, *CLASSIFIER, "selector=topk", "prompt=hi")


@pytest.mark.parametrize("selector", ["fastv", "dart", "divprune", "cdpruner"])
def test_whisper_refuses_selectors_that_need_an_llm(compose_cfg, tmp_path, selector):
    message = refusal(compose_cfg, tmp_path, *WHISPER, f"selector={selector}")
    assert f"selector={selector}" in message and "no LLM" in message


def test_whisper_refuses_original_positions(compose_cfg, tmp_path):
    message = refusal(compose_cfg, tmp_path, *WHISPER, "selector=topk", "positions=original")
    assert "positions=original" in message


@pytest.mark.parametrize("selector", ["intensity", "variation"])
def test_audio_lms_refuse_patch_statistic_selectors(compose_cfg, tmp_path, selector):
    assert "classifier" in refusal(compose_cfg, tmp_path, *ALM, f"selector={selector}")


def test_supported_combinations_pass(compose_cfg):
    from audioprune.options import check_model_support

    for overrides in [
        (*CLASSIFIER, "selector=segmentwise_topk"),
        (*CLASSIFIER, "selector=intensity"),
        (*CLASSIFIER, "selector=none"),
        (*WHISPER, "selector=visionzip", "budget=adaptive"),
        (*ALM, "selector=fastv", "positions=original"),
        (*ALM, "selector=divprune", "budget=global"),
    ]:
        cfg = compose_cfg(*overrides)
        check_model_support(cfg, make_selector(cfg.selector))


@pytest.mark.parametrize(
    "option",
    [
        "model.generation.max_new_tokens=0",
        "model.generation.new_tokens_per_second=-1",
        "model.generation.new_tokens_per_second=0",
        "model.generation.new_tokens_extra=-2",
        "model.generation.max_new_tokens=2.5",
    ],
)
def test_out_of_range_decoding_options_are_refused_by_name(compose_cfg, tmp_path, option):
    message = refusal(compose_cfg, tmp_path, *WHISPER, "selector=topk", option)
    assert message.startswith(option.partition("=")[0])


@pytest.mark.parametrize("frames", [8, 0])
def test_classifier_input_shorter_than_a_patch_is_refused(compose_cfg, tmp_path, frames):
    option = f"model.features.frames={frames}"  # crashed in a reshape while loading
    message = refusal(compose_cfg, tmp_path, *CLASSIFIER, "selector=topk", option)
    assert message.startswith(option) and "patch size 16" in message


def test_the_python_api_refuses_the_same(session_cache, monkeypatch, fresh_process_state):
    import numpy as np

    import audioprune
    from audioprune.errors import ConfigError

    monkeypatch.setenv("AUDIOPRUNE_CACHE", str(session_cache))
    model = audioprune.load_model("tiny_qwen2_audio")
    clip = np.zeros(16_000, dtype=np.float32)
    with pytest.raises(ConfigError, match="selector=intensity: ranks spectrogram patches"):
        model.generate(clip, "Describe the audio.", selector="intensity", retention=0.5)
