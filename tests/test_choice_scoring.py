"""Choice scoring (`scoring: choice_loglik`), bootstrap intervals and event coverage.

Pure math on hand-checkable cases; then, on both tiny models, each choice's log-likelihood
against a plain forward of the model on what `generate` fed it (the captured prefill
`inputs_embeds` and positions, then the choice's token embeddings), batched clips against
single ones, in-LLM selectors keeping the same audio tokens as in generate; then the runner:
the run key, the metric names, what `choice_loglik_only` leaves out, and clear refusals.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _tiny import FirstCall, synthetic_clip
from test_llm_pruning import MaskOracle

from audioprune.metrics.bootstrap import bootstrap_ci, percent_ci
from audioprune.metrics.choice import pick_choice, score_choice_loglik
from audioprune.metrics.coverage import event_coverage, events_kept
from audioprune.metrics.relative import relative_drop
from audioprune.models.audio_flamingo3 import AudioFlamingo3Adapter
from audioprune.models.qwen2_audio import Qwen2AudioAdapter
from audioprune.models.tiny import tiny_audio_flamingo3, tiny_qwen2_audio
from audioprune.pruning import prune_clip
from audioprune.records import Sample
from audioprune.selectors import build_selector

CHOICES = ["a dog barking", "rain", "three beeps", "the second one"]

# ---------------------------------------------------------------- pure functions


def test_bootstrap_of_two_clips_has_the_hand_computed_percentiles():
    # Resamples of [0, 1] have means 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4: with many
    # resamples the 2.5 % quantile is 0 and the 97.5 % quantile is 1.
    assert bootstrap_ci([0, 1], n_resamples=4000) == (0.0, 1.0)
    # One clip, or identical clips, leave nothing to resample: the interval is the value.
    assert bootstrap_ci([1]) == (1.0, 1.0)
    assert bootstrap_ci([0.25] * 7) == (0.25, 0.25)
    assert bootstrap_ci([]) is None


def test_bootstrap_is_seeded_and_brackets_the_mean():
    hits = np.random.default_rng(5).random(200) < 0.7
    low, high = bootstrap_ci(hits)
    assert bootstrap_ci(hits) == (low, high)  # same seed, same interval
    assert low < hits.mean() < high
    # Near the normal approximation p ± 1.96 √(p(1 − p) / n) for n = 200.
    p = hits.mean()
    half = 1.96 * np.sqrt(p * (1 - p) / hits.size)
    assert low == pytest.approx(p - half, abs=0.015) and high == pytest.approx(p + half, abs=0.015)
    # A ratio over clips: Σ covered / Σ events, resampling whole clips.
    assert bootstrap_ci([2, 2], totals=[2, 2]) == (1.0, 1.0)
    assert percent_ci([1, 0, 1, 1], n_resamples=10)["high"] <= 100.0
    with pytest.raises(ValueError, match="totals must be 2 positive numbers"):
        bootstrap_ci([1, 0], totals=[1, 0])


def test_pick_choice_sum_and_per_token_rules_differ_on_length():
    logliks, tokens = [-3.0, -4.0], [1, 4]
    assert pick_choice(logliks, tokens) == 0  # sum: -3 > -4
    assert pick_choice(logliks, tokens, per_token=True) == 1  # mean: -1 > -3
    assert pick_choice([-1.0, -1.0], [1, 1]) == 0  # ties: the first choice
    with pytest.raises(ValueError, match="one token count per choice"):
        pick_choice([-1.0], [1, 2])


def test_choice_accuracy_per_task_and_family_from_records():
    samples = [
        Sample(f"s{i}", None, "mcq", "q", ["one", "two"], "one", meta={"task": t, "family": f})
        for i, (t, f) in enumerate([("count", "beeps"), ("count", "beeps"), ("order", "scene")])
    ]
    records = {
        "s0": {"choice_loglik": [-1.0, -2.0], "choice_tokens": [1, 1]},  # right
        "s1": {"choice_loglik": [-3.0, -2.0], "choice_tokens": [1, 1]},  # wrong
    }  # s2 has no scores: counted wrong
    result = score_choice_loglik(samples, records)
    assert result["accuracy_choice_loglik"] == pytest.approx(100 / 3)
    assert result["accuracy_choice_loglik_by_task"] == {"count": 50.0, "order": 0.0}
    assert result["accuracy_choice_loglik_by_family"] == {"beeps": 50.0, "scene": 0.0}
    assert result["accuracy_choice_loglik_by_family_ci95"]["scene"] == {"low": 0.0, "high": 0.0}
    assert result["missing_choice_scores"] == ["s2"] and result["n_choice_scored"] == 2
    # Intervals are not metrics: the relative drop leaves them out.
    assert "accuracy_choice_loglik_ci95" not in relative_drop(result, result)


def test_events_kept_uses_25_tokens_per_second_and_the_window_offset():
    events = [
        {"kind": "beep", "label": "a", "onset": 0.10, "offset": 0.20},  # tokens 2..4
        {"kind": "beep", "label": "b", "onset": 1.00, "offset": 1.04},  # token 25 only
        {"kind": "beep", "label": "c", "onset": 30.5, "offset": 30.6},  # window 1, tokens 12..14
    ]
    assert events_kept(events, [[2], [12]]) == [True, False, True]
    assert events_kept(events, [[5, 24, 26], [11, 15]]) == [False, False, False]
    assert events_kept(events, [[25], []]) == [False, True, False]
    # Token 4 spans [0.16, 0.20): it overlaps [0.10, 0.20); token 5 starts at 0.20: it does not.
    assert events_kept(events[:1], [[4]]) == [True]
    with pytest.raises(ValueError, match="event 0 must have numeric onset"):
        events_kept([{"onset": None, "offset": 1}], [[0]])
    records = [
        {"id": "x", "events_kept": [True, False, True]},
        {"id": "y", "events_kept": [True]},
        {"id": "z"},  # a clip without events does not count
    ]
    coverage = event_coverage(records, {"x": "count", "y": "order"})
    assert coverage["overall"] == pytest.approx(75.0) and coverage["events"] == 4
    assert coverage["by_group"] == {"count": pytest.approx(200 / 3), "order": 100.0}
    assert event_coverage([{"id": "z"}]) is None


# ---------------------------------------------------------------- on the tiny models

MODELS = {
    "qwen2_audio": (tiny_qwen2_audio, Qwen2AudioAdapter, 6.0),
    "audio_flamingo_3": (tiny_audio_flamingo3, AudioFlamingo3Adapter, 35.0),
}


@pytest.fixture(scope="module", params=list(MODELS))
def setup(request):
    """(adapter with a 4-layer LLM, two encoded clips); AF3's first clip spans two windows."""
    build, cls, seconds = MODELS[request.param]
    adapter = cls.from_model(*build(text_layers=4), label=f"tiny-{request.param}")
    clips = [synthetic_clip(seconds, seed=3), synthetic_clip(4.0, seed=4)]
    return adapter, adapter.encode(clips)


def reference_logliks(adapter, prefill: dict, row: int, choices: list[str]) -> list[float]:
    """Σ log p(choice tokens) from plain, unbatched forwards of the whole model on the prompt
    rows generate fed it (its captured prefill inputs, padding removed), then the choice."""
    embeds = prefill["inputs_embeds"][row]
    mask = prefill.get("attention_mask")  # generate drops an all-ones mask
    valid = mask[row].bool() if mask is not None else torch.ones(embeds.shape[0], dtype=torch.bool)
    embeds = embeds[valid]
    if prefill.get("position_ids") is not None:
        positions = prefill["position_ids"][row][valid]
    else:
        positions = torch.arange(embeds.shape[0])
    out = []
    for choice in choices:
        ids = torch.tensor(adapter.tokenizer(choice, add_special_tokens=False).input_ids)
        full = torch.cat([embeds, adapter.model.get_input_embeddings()(ids)])
        pos = torch.cat([positions, positions[-1] + 1 + torch.arange(len(ids))])
        with torch.inference_mode():
            logits = adapter.model(inputs_embeds=full[None], position_ids=pos[None]).logits[0]
        logp = torch.log_softmax(logits.double(), -1)
        p = embeds.shape[0]
        out.append(sum(float(logp[p - 1 + j, t]) for j, t in enumerate(ids.tolist())))
    return out


@pytest.mark.parametrize("positions", ["compact", "original"])
def test_choice_logliks_equal_a_plain_forward_on_what_generate_fed_the_model(setup, positions):
    adapter, encoded = setup
    selector = build_selector("topk")
    pruned = [prune_clip(e, selector, r, f"c{i}") for i, (e, r) in enumerate(zip(encoded, [0.5, 0.25]))]  # fmt: skip
    prompts = ["Which sound is it?", "How many beeps?"]
    with FirstCall(adapter.model, kwargs=True) as seen:
        adapter.generate(prompts, pruned, max_new_tokens=1, positions=positions)
    prefill = seen.values[0]
    assert prefill["attention_mask"].shape[0] == 2 and not bool(prefill["attention_mask"].all())
    scored = adapter.score_choices(prompts, pruned, [CHOICES, CHOICES[:2]], positions=positions)
    for row, options in enumerate([CHOICES, CHOICES[:2]]):
        expected = reference_logliks(adapter, prefill, row, options)
        np.testing.assert_allclose(scored[row].logliks, expected, rtol=1e-4, atol=1e-4)
        assert scored[row].tokens == [
            len(adapter.tokenizer(c, add_special_tokens=False).input_ids) for c in options
        ]
    # One clip at a time (no left padding in the prompt) gives the same numbers.
    alone = adapter.score_choices(prompts[1:], pruned[1:], [CHOICES[:2]], positions=positions)
    np.testing.assert_allclose(alone[0].logliks, scored[1].logliks, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("positions", ["compact", "original"])
def test_generate_scores_choices_from_its_own_prefill_as_score_choices_does(setup, positions):
    adapter, encoded = setup
    audio = [prune_clip(encoded[0], build_selector("uniform"), 0.25, "c0")]
    with FirstCall(adapter.model, kwargs=True) as seen:
        gens, timing = adapter.generate(
            ["Which sound is it?"], audio, max_new_tokens=3, positions=positions, choices=[CHOICES]
        )
    plain, _ = adapter.generate(["Which sound is it?"], audio, 3, positions=positions)
    assert gens[0].token_ids == plain[0].token_ids  # the reply is the same
    assert timing.extra["decode_steps"] == len(seen.values) - 1 - 1  # + one scoring forward
    alone = adapter.score_choices(["Which sound is it?"], audio, [CHOICES], positions=positions)
    np.testing.assert_allclose(gens[0].choice_scores.logliks, alone[0].logliks, atol=1e-4)
    assert gens[0].choice_scores.tokens == alone[0].tokens
    expected = reference_logliks(adapter, seen.values[0], 0, CHOICES)
    np.testing.assert_allclose(gens[0].choice_scores.logliks, expected, rtol=1e-4, atol=1e-4)
    # Several clips, or an in-LLM selector: left to score_choices.
    two, _ = adapter.generate(["a", "b"], audio * 2, 1, choices=[CHOICES, CHOICES])
    assert two[0].choice_scores is None


@pytest.mark.parametrize("name,params", [("fastv", {}), ("fastv", {"query": "all"}), ("dart", {})])
@pytest.mark.parametrize("choices", [CHOICES, ["a dog barking"] * 2], ids=["padded", "equal"])
def test_in_llm_selectors_keep_generates_tokens_while_scoring_choices(setup, name, params, choices):
    adapter, encoded = setup
    selector = build_selector(name, layer=2, **params)
    audio = prune_clip(encoded[0], selector, 0.25, "c0")
    prompt = ["Which sound is it?"]
    gens, _ = adapter.generate(prompt, [audio], max_new_tokens=1, llm_pruner=selector)
    scored = adapter.score_choices(prompt, [audio], [choices], llm_pruner=selector)[0]
    assert scored.extra["kept_indices"] == gens[0].extra["kept_indices"]
    assert scored.extra["kept_tokens"] == sum(k for _, k in audio.llm_budget)
    # Reference: every token stays, pruned audio keys are masked in layers >= K (the oracle
    # of tests/test_llm_pruning.py), keep = generate's kept prompt positions + the choice.
    inputs = adapter.prepare_inputs(prompt, [audio])
    start = int((inputs["input_ids"][0] == adapter.audio_token_id).nonzero()[0])
    seq = inputs["input_ids"].shape[1]
    kept_audio = [start + sum(audio.window_sizes[:w]) + i for w, idx in enumerate(gens[0].extra["kept_indices"]) for i in idx]  # fmt: skip
    is_audio = (inputs["input_ids"][0] == adapter.audio_token_id).tolist()
    for choice, loglik in zip(choices, scored.logliks):
        ids = torch.tensor(adapter.tokenizer(choice, add_special_tokens=False).input_ids)
        full = torch.cat([inputs["inputs_embeds"][0], adapter.model.get_input_embeddings()(ids)])
        keep = [p for p in range(seq) if not is_audio[p] or p in kept_audio]
        keep = torch.tensor(keep + list(range(seq, seq + len(ids))))
        decoder = adapter.model.model.language_model
        with torch.inference_mode(), MaskOracle(decoder, 2, keep, seq + len(ids)):
            logits = adapter.model(inputs_embeds=full[None]).logits[0]
        logp = torch.log_softmax(logits.double(), -1)
        expected = sum(float(logp[seq - 1 + j, t]) for j, t in enumerate(ids.tolist()))
        assert loglik == pytest.approx(expected, abs=1e-3)


def test_choice_scoring_refuses_batches_for_in_llm_selectors_and_empty_choices(setup):
    adapter, encoded = setup
    selector = build_selector("fastv", layer=1)
    audio = prune_clip(encoded[0], selector, 0.5, "c0")
    with pytest.raises(ValueError, match=r"scores one clip at a time; got a batch of 2"):
        adapter.score_choices(["a", "b"], [audio, audio], [CHOICES, CHOICES], llm_pruner=selector)
    kept = prune_clip(encoded[0], build_selector("topk"), 0.5, "c0")
    with pytest.raises(ValueError, match="choice '' has no tokens"):
        adapter.score_choices(["a"], [kept], [["rain", ""]])


# ---------------------------------------------------------------- through the runner

BASE = (
    "model=tiny_qwen2_audio",
    "dataset=synthetic_mmau",
    "dataset.args.num_clips=3",
    "model.generation.max_new_tokens=2",
)


def saved(run_dir):
    return [json.loads(x) for x in (run_dir / "predictions.jsonl").read_text().splitlines()]


@pytest.mark.usefixtures("fresh_runner")
def test_runner_reports_both_scorings_under_their_names_and_keys_them(compose_cfg):
    from audioprune import runner

    plain = runner.run(compose_cfg(*BASE, "selector=topk", "retention=0.5"))
    both = runner.run(compose_cfg(*BASE, "selector=topk", "retention=0.5", "scoring=choice_loglik"))
    only = runner.run(
        compose_cfg(*BASE, "selector=topk", "retention=0.5", "scoring=choice_loglik_only")
    )
    assert len({plain.run_dir, both.run_dir, only.run_dir}) == 3  # scoring is in the run key
    assert "scoring" not in json.loads((plain.run_dir / "identity.json").read_text())
    assert json.loads((both.run_dir / "identity.json").read_text())["scoring"] == "choice_loglik"
    m = both.metrics["metrics"]
    assert {"overall", "overall_ci95", "accuracy_choice_loglik", "accuracy_choice_loglik_ci95",
            "accuracy_choice_loglik_per_token", "accuracy_choice_loglik_by_task"} <= set(m)  # fmt: skip
    assert m["overall"] == plain.metrics["metrics"]["overall"]  # the free reply is unchanged
    records, short = saved(both.run_dir), saved(only.run_dir)
    assert [r["prediction"] for r in records] == [r["prediction"] for r in saved(plain.run_dir)]
    for rec, other in zip(records, short):
        assert len(rec["choice_loglik"]) == len(rec["choice_tokens"]) >= 2
        assert rec["choice_loglik"] == pytest.approx(other["choice_loglik"], abs=1e-5)
        assert other["prediction"] is None and other["kept_indices"] == rec["kept_indices"]
    assert "overall" not in only.metrics["metrics"]
    assert only.metrics["run"]["num_predictions"] == 3  # each sample's most likely choice
    assert only.metrics["metrics"]["accuracy_choice_loglik"] == m["accuracy_choice_loglik"]


@pytest.mark.usefixtures("fresh_runner")
def test_runner_refuses_choice_scoring_where_it_cannot_apply(compose_cfg):
    from audioprune import runner

    with pytest.raises(ValueError, match="option scoring must be one of generate"):
        runner.run(compose_cfg(*BASE, "scoring=loglik"))
    with pytest.raises(ValueError, match="has task 'captioning'; use scoring=generate"):
        runner.run(
            compose_cfg(
                "model=tiny_qwen2_audio", "dataset=synthetic_captions", "scoring=choice_loglik"
            )
        )
