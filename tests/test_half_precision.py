"""Half precision on the CPU (issue 19 item 1): every model family in bfloat16 and float16.

- retention 1.0 in half precision is the stock model's half-precision generate (tiny
  Qwen2-Audio, tiny Audio Flamingo 3, tiny Whisper);
- the shared score (and keys, per-head scores) stays fp32, the encoder tokens keep the model
  dtype, and what reaches the LLM (`inputs_embeds`) has the model dtype for gathering, merging
  (encoder space and LLM input space) and in-LLM selectors alike — no silent promotion;
- every family runs end to end through the run loop with model.dtype=bfloat16 / float16.
"""

from __future__ import annotations

import json

import pytest
import torch
from _tiny import FirstCall, cut_at_eos, prune, synthetic_clip

from audioprune.models.needs import complete_windows
from audioprune.pruning import prune_clip, to_device
from audioprune.selectors import build_selector
from tests._whisper import fixture_tiny_whisper_dir  # noqa: F401  (fixture)


def _cpu_half_works(dtype: torch.dtype) -> bool:
    try:
        x = torch.ones(2, 4, 8, dtype=dtype)
        torch.nn.functional.conv1d(x, torch.ones(4, 4, 3, dtype=dtype))
        return bool((x @ x.transpose(1, 2)).isfinite().all())
    except RuntimeError:
        return False


# float16 where this CPU's torch build runs it (it does on x86 with torch 2.13)
HALF = [torch.bfloat16] + ([torch.float16] if _cpu_half_works(torch.float16) else [])
PROMPT = "Describe the audio."
NEW_TOKENS = 6


@pytest.fixture(scope="module", params=HALF, ids=lambda d: str(d).split(".")[-1])
def qwen(request, session_cache):
    from audioprune.models.qwen2_audio import Qwen2AudioAdapter

    path = session_cache / "models" / "tiny-qwen2-audio"
    return Qwen2AudioAdapter(str(path), build_tiny="qwen2_audio", dtype=str(request.param)[6:])


@pytest.fixture(scope="module", params=HALF, ids=lambda d: str(d).split(".")[-1])
def flamingo(request, session_cache):
    from audioprune.models.audio_flamingo3 import AudioFlamingo3Adapter

    path = session_cache / "models" / "tiny-audio-flamingo-3"
    return AudioFlamingo3Adapter(
        str(path), build_tiny="audio_flamingo_3", dtype=str(request.param)[6:]
    )


def test_qwen2_audio_full_retention_in_half_is_the_stock_half_generate(qwen):
    stock_equality(qwen, padding=True, return_tensors="pt")


def test_audio_flamingo3_full_retention_in_half_is_the_stock_half_generate(flamingo):
    stock_equality(flamingo)


def stock_equality(adapter, **processor_kwargs) -> None:
    """Our generate at retention 1.0 == the stock generate on processor inputs, same dtype."""
    assert adapter.model.dtype in HALF
    clips = [synthetic_clip(4.0, seed=0), synthetic_clip(2.5, seed=1)]
    prompts = [PROMPT, "What is the sound?"]
    ours, _ = adapter.generate(
        prompts, prune(adapter.encode(clips), 1.0), max_new_tokens=NEW_TOKENS
    )
    texts = [adapter.chat_text(p) for p in prompts]
    stock_inputs = adapter.processor(text=texts, audio=clips, **processor_kwargs)
    stock_inputs = stock_inputs.to(adapter.model.dtype)  # floats only: the features
    with torch.no_grad():
        stock = adapter.model.generate(**stock_inputs, max_new_tokens=NEW_TOKENS, do_sample=False)
    new = stock[:, stock_inputs["input_ids"].shape[1] :]
    for row, gen in enumerate(ours):
        assert gen.token_ids == cut_at_eos(new[row].tolist(), adapter)


# gather, merge in encoder space, merge in LLM input space, diversity, in-LLM
SELECTORS = [
    ("segmentwise_topk", {}),
    ("visionzip", {}),
    ("tome", {}),
    ("fastadasp", {}),
    ("samap", {"threshold": 0.5}),
    ("cdpruner", {"relevance": "instruction"}),
    ("fastv", {"layer": 1}),
    ("dart", {"layer": 1}),
]


@pytest.fixture(scope="module")
def qwen_bf16(session_cache):
    from audioprune.models.qwen2_audio import Qwen2AudioAdapter

    path = session_cache / "models" / "tiny-qwen2-audio"
    return Qwen2AudioAdapter(str(path), build_tiny="qwen2_audio", dtype="bfloat16")


@pytest.mark.parametrize(("name", "params"), SELECTORS, ids=[s[0] for s in SELECTORS])
def test_scores_stay_fp32_and_the_llm_gets_the_model_dtype(qwen_bf16, name, params):
    qwen = qwen_bf16
    dtype = qwen.model.dtype
    selector = build_selector(name, **params)
    needs = frozenset({"hidden", "keys", "head_scores"}) | (
        selector.needs - {"projected", "instruction"}
    )
    (encoded,) = qwen.encode([synthetic_clip(3.0, seed=2)], needs)
    window = encoded.windows[0]
    assert window.scores.dtype == window.keys.dtype == window.head_scores.dtype == torch.float32
    assert window.hidden.dtype == dtype
    encoded = complete_windows(qwen, to_device(encoded, qwen.device), selector.needs, PROMPT)
    if "projected" in selector.needs:
        assert encoded.windows[0].projected.dtype == dtype
    pruned = prune_clip(encoded, selector, 0.5, "clip")
    assert all(t.dtype == dtype for t in pruned.tokens)  # merged rows are not promoted to fp32
    llm = {"llm_pruner": selector} if selector.stage == "llm" else {}
    with FirstCall(qwen.model.model.language_model, kwargs=True) as seen:
        (gen,), _ = qwen.generate([PROMPT], [pruned], max_new_tokens=3, **llm)
    assert seen.values[0]["inputs_embeds"].dtype == dtype
    kept = gen.extra["kept_tokens"] if llm else pruned.kept
    assert kept == int(0.5 * encoded.num_tokens)


@pytest.mark.parametrize("dtype", HALF, ids=lambda d: str(d).split(".")[-1])
def test_whisper_full_retention_in_half_is_stock(tiny_whisper_dir, dtype):
    from audioprune.models.whisper import WhisperAdapter

    adapter = WhisperAdapter(str(tiny_whisper_dir), padding="keep", dtype=str(dtype)[6:])
    wave = synthetic_clip(3.0, seed=3)
    (encoded,) = adapter.encode([wave], frozenset({"hidden"}))
    assert encoded.windows[0].scores.dtype == torch.float32
    assert encoded.windows[0].hidden.dtype == dtype
    (gen,), _ = adapter.generate(
        [""], [prune_clip(encoded, build_selector("none"), 1.0, "c")], max_new_tokens=8
    )
    features = adapter.feature_extractor(wave, sampling_rate=16_000, return_tensors="pt")
    with torch.no_grad():
        stock = adapter.model.generate(
            features["input_features"].to(dtype), max_new_tokens=gen.extra["new_token_cap"]
        )[0].tolist()
    stop = adapter.model.generation_config.eos_token_id
    assert gen.token_ids == (stock[: stock.index(stop)] if stop in stock else stock)


RUNS = [
    ("tiny_qwen2_audio", "synthetic_captions", "tome"),
    ("tiny_qwen2_audio", "synthetic_captions", "dart"),
    ("tiny_audio_flamingo_3", "synthetic_mmau", "segmentwise_topk"),
    ("tiny_ast", "synthetic_classes", "topk"),
    ("tiny_audiomae", "synthetic_classes", "topk"),
]


@pytest.mark.slow
@pytest.mark.parametrize("dtype", HALF, ids=lambda d: str(d).split(".")[-1])
@pytest.mark.parametrize(("model", "dataset", "selector"), RUNS)
def test_every_family_runs_end_to_end_in_half(
    compose_cfg, fresh_runner, model, dataset, selector, dtype
):
    name = str(dtype).split(".")[-1]
    cfg = compose_cfg(
        f"model={model}", f"dataset={dataset}", f"selector={selector}", "retention=0.5",
        f"model.dtype={name}", "limit=2",
    )  # fmt: skip
    result = fresh_runner.run(cfg)
    assert result.metrics["run"]["num_predictions"] == 2
    assert all(r.get("error") is None for r in result.records)
    assert next(fresh_runner.get_adapter(cfg.model).model.parameters()).dtype == dtype
    identity = json.loads((result.run_dir / "identity.json").read_text())
    assert identity["model"]["dtype"] == name  # the dtype is part of the run key
