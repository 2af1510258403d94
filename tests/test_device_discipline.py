"""Selection on the tokens' device, checked without a GPU (issue 16 §5, issue 19 item 2).

`audioprune.devicecheck.DeviceAudit` runs code with its tensors on a pretend device (data on the
CPU) and records every host read (`.item()`, `int(t)`, `nonzero`, boolean-mask indexing), copy to
the host (`.cpu()`, `.tolist()`) and CPU tensor mixed into a device op. Here:
- every selector gives exactly the outputs the code gave before selection left the CPU
  (`tests/data/selector_reference.pt`, written from the old code) — on the CPU and on the device;
- selectors read nothing back (SA-MAP and A-ToMe: only their declared sequential scans), and
  their outputs stay on the device;
- `prune_clip` makes one transfer per clip (the kept indices), and refuses NaN off the CPU;
- the whole pipeline — scorer hook, selection, projection, generate, the fastv / dart hooks —
  runs on the tiny Qwen2-Audio moved to the pretend device with no CPU tensor mixed in, and
  generates the same tokens as on the CPU;
- an injected `.cpu()` or `.item()` in a selector is caught, naming where.
"""

from __future__ import annotations

import pytest
import torch
from _selector_cases import BUDGETS, CASES, REFERENCE, case_key, make_window, selector_outputs
from _tiny import synthetic_clip

from audioprune.budget import Budget
from audioprune.devicecheck import DeviceAudit, on_device
from audioprune.models.base import EncodedAudio
from audioprune.pruning import prune_clip, to_device
from audioprune.selectors import build_selector


def same(a, b) -> bool:
    """Equal results: integer tensors exactly, float tensors within 1e-6, the rest by ==."""
    if isinstance(a, torch.Tensor):
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        if a.is_floating_point():
            return torch.allclose(a, b, atol=1e-6, rtol=1e-6)
        return torch.equal(a, b)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.fixture(scope="module")
def reference():
    return torch.load(REFERENCE)


def test_selector_outputs_equal_the_code_before_the_move(reference):
    got = selector_outputs()
    assert got.keys() == reference.keys()
    differ = [
        (case, key) for case in reference for key in reference[case]
        if not same(got[case][key], reference[case][key])
    ]  # fmt: skip
    assert not differ


def allowed(selector, violations) -> list:
    """The violations a selector does not declare (`Selector.host_sync`)."""
    if selector.host_sync:
        return [v for v in violations if v.kind != "to_host"]
    return violations


@pytest.mark.parametrize(("name", "params"), CASES, ids=[case_key(*c) for c in CASES])
def test_selectors_run_on_the_tokens_device(name, params, reference):
    selector = build_selector(name, **params)
    for seed in (0, 1):
        for k in BUDGETS:
            with DeviceAudit() as audit:
                selection = selector.select_window(audit.put(make_window(seed)), k)
            assert not allowed(selector, audit.violations), audit.report()
            assert on_device(selection.indices)
            assert selection.embeddings is None or on_device(selection.embeddings)
            indices, embeddings, space, flops = reference[case_key(name, params)][
                f"k={k},seed={seed}"
            ]
            assert same(audit.host(selection.indices), indices)
            if embeddings is not None:
                assert same(audit.host(selection.embeddings).float(), embeddings)
            assert (selection.space, selection.flops) == (space, flops)
            if selector.host_sync:  # one transfer per sequential scan, at most one per merge
                assert 1 <= len(audit.violations) <= make_window(seed).num_tokens - k + 1


@pytest.mark.parametrize("budget", ["per_window", "global"])
def test_prune_clip_reads_the_kept_indices_back_once_per_clip(budget, reference):
    clip = EncodedAudio(windows=[make_window(s, n) for s, n in ((4, 32), (5, 7), (6, 20))])
    for name, params in CASES:
        selector = build_selector(name, **params)
        with DeviceAudit() as audit:
            pruned = prune_clip(audit.put(clip), selector, 0.3, "clip", Budget(name=budget))
        own = [v for v in audit.violations if "pruning.py" in v.where]
        assert [(v.kind, v.where.split(" in ")[-1]) for v in own] == [
            ("to_host", "_indices_to_host")
        ], audit.report()
        assert not allowed(selector, [v for v in audit.violations if v not in own])
        assert all(not on_device(i) for i in pruned.indices)  # on the host, for the records
        assert all(on_device(t) for t in pruned.tokens)
        indices, tokens, space, flops = reference["prune_clip"][
            f"{case_key(name, params)}|{budget}"
        ]
        assert same(pruned.indices, indices)
        assert same([audit.host(t).float() for t in pruned.tokens], tokens)
        assert (pruned.space, pruned.select_flops) == (space, flops)


def test_nan_scores_are_refused_on_the_device_too():
    window = make_window(0)
    window.scores[3] = float("nan")
    for name in ("topk", "tome", "divprune"):
        with pytest.raises(ValueError, match="NaN"):
            prune_clip(EncodedAudio(windows=[window]), build_selector(name), 0.5, "x")
        with DeviceAudit() as audit, pytest.raises(ValueError, match="NaN"):
            prune_clip(audit.put(EncodedAudio(windows=[window])), build_selector(name), 0.5, "x")


def test_an_injected_host_copy_or_read_is_caught(monkeypatch):
    """The audit fails the selector as soon as it copies to the host or reads a value."""
    from audioprune.selectors import simple

    rank = simple.rank_descending
    monkeypatch.setattr(simple, "rank_descending", lambda scores: rank(scores.cpu()))
    with DeviceAudit() as audit:
        build_selector("topk").select_window(audit.put(make_window(0)), 5)
    assert [v.kind for v in audit.violations][:1] == ["to_host"]
    assert "test_device_discipline.py" in audit.violations[0].where

    monkeypatch.setattr(simple, "rank_descending", lambda scores: rank(scores) + 0 * int(scores[0]))
    with DeviceAudit() as audit:
        build_selector("topk").select_window(audit.put(make_window(0)), 5)
    assert [v.kind for v in audit.violations] == ["sync"]

    with DeviceAudit() as audit:  # and a CPU tensor meeting a device one
        audit.put(torch.ones(3)) + torch.ones(3)
    assert [v.kind for v in audit.violations] == ["mixed"]


@pytest.fixture(scope="module")
def adapters(session_cache):
    """The tiny Qwen2-Audio twice: on the CPU, and on the pretend device."""
    from audioprune.models.qwen2_audio import Qwen2AudioAdapter

    path = str(session_cache / "models" / "tiny-qwen2-audio")
    cpu = Qwen2AudioAdapter(path, build_tiny="qwen2_audio")
    device = Qwen2AudioAdapter(path)
    DeviceAudit.put_module(device.model)
    device.device = device.model.device
    return cpu, device


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("segmentwise_topk", {}),
        ("tome", {}),
        ("samap", {}),
        ("fastv", {"layer": 1}),
        ("dart", {"layer": 1}),
    ],
)
def test_pipeline_on_the_device_mixes_in_no_host_tensor(adapters, name, params):
    cpu, device = adapters
    assert device.model.device.type == "meta"
    selector = build_selector(name, **params)
    needs = frozenset({"hidden", "keys", "head_scores"}) | selector.needs - {"projected"}
    wave = synthetic_clip(3.0, seed=2)
    llm = {"llm_pruner": selector} if selector.stage == "llm" else {}
    from audioprune.models.needs import complete_windows

    expected = prune_clip(
        complete_windows(cpu, cpu.encode([wave], needs)[0], selector.needs), selector, 0.5, "x"
    )
    want, _ = cpu.generate(["What do you hear?"], [expected], max_new_tokens=5, **llm)
    with DeviceAudit() as audit:
        encoded = to_device(device.encode([wave], needs)[0], device.device)
        # the encoder reads nothing back: the scorer copies the valid-frame mask to the host
        # once per forward, the encode step its outputs (for the encoder cache)
        assert {v.kind for v in audit.violations} == {"to_host"}, audit.report()
        assert len([v for v in audit.violations if "attention_scores.py" in v.where]) == 1
        encoded = complete_windows(device, encoded, selector.needs)
        assert all(on_device(w.hidden) and on_device(w.scores) for w in encoded.windows)
        start = len(audit.violations)
        pruned = prune_clip(encoded, selector, 0.5, "x")
        selection = audit.violations[start:]
        start = len(audit.violations)
        got, _ = device.generate(["What do you hear?"], [pruned], max_new_tokens=5, **llm)
        generation = audit.violations[start:]
    assert not [v for v in audit.violations if v.kind == "mixed"], audit.report()
    # the kept indices, once (an in-LLM selector keeps every token here and transfers nothing)
    assert len([v for v in selection if "pruning.py" in v.where]) == (0 if llm else 1)
    assert not allowed(selector, [v for v in selection if "pruning.py" not in v.where])
    # generate: the new token ids to the host; an in-LLM selector also its kept positions and
    # the prompt's audio run (both once per call, outside any per-window loop)
    assert all(v.kind == "to_host" for v in generation), audit.report()
    assert len(generation) == (3 if llm else 1), audit.report()
    assert got[0].token_ids == want[0].token_ids
    assert [i.tolist() for i in pruned.indices] == [i.tolist() for i in expected.indices]


def test_select_ms_is_recorded_per_sample_and_summarised(compose_cfg, fresh_runner):
    cfg = compose_cfg("selector=tome", "retention=0.5", "limit=3")
    result = fresh_runner.run(cfg)
    timings = [r["timings"] for r in result.records]
    assert all(t["select_ms"] > 0 for t in timings)
    timed = [t["select_ms"] for t in timings if not t["warmup"]]
    assert result.metrics["summary"]["select_ms_mean"] == pytest.approx(sum(timed) / len(timed))
