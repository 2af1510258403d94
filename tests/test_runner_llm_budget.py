"""The runner with an in-LLM selector and with budget policies, through the real configs on
the tiny Qwen2-Audio: what the record says the LLM kept, the partial prefill FLOPs, the run key
covering the budget, and an adaptive budget whose mean retention is held at r."""

from __future__ import annotations

import json

import pytest

from audioprune import runner
from audioprune.budget import keep_count

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fresh_runner")]

BASE = ("model=tiny_qwen2_audio", "dataset=synthetic_captions", "dataset.args.num_clips=4")


def records(run_dir):
    return [json.loads(x) for x in (run_dir / "predictions.jsonl").read_text().splitlines()]


def test_fastv_run_records_the_llm_selection_and_partial_flops(compose_cfg):
    fastv = runner.run(
        compose_cfg(*BASE, "selector=fastv", "selector.layer=1", "retention=0.25", "limit=2")
    )
    pre = runner.run(compose_cfg(*BASE, "selector=topk", "retention=0.25", "limit=2"))
    adapter = runner.get_adapter(compose_cfg(*BASE).model)  # the loaded model, reused
    assert fastv.run_dir.name.startswith("fastv-r0.25-")
    for rec, p in zip(records(fastv.run_dir), records(pre.run_dir)):
        assert rec["kept_tokens"] == keep_count(rec["audio_tokens"], 0.25) == p["kept_tokens"]
        assert len(rec["kept_indices"][0]) == rec["kept_tokens"]
        # The prompt still holds every placeholder; the LLM drops at layer 1 of 2.
        long, short = rec["prompt_tokens"], p["prompt_tokens"]
        assert long - short == rec["audio_tokens"] - rec["kept_tokens"]
        assert rec["llm_prefill_lengths"] == [long, short]
        assert rec["prefill_flops"] == adapter.prefill_flops([long, short])
        assert p["prefill_flops"] < rec["prefill_flops"] < adapter.prefill_flops(long)
    # batch_size=2 still gives the in-LLM selector one clip per generate call.
    again = runner.run(
        compose_cfg(
            *BASE, "selector=fastv", "batch_size=2", "limit=2", "run_dir=${paths.results_dir}/b2"
        )
    )
    got = records(again.run_dir)
    assert [r["timings"]["batch_size"] for r in got] == [1, 1]
    assert [r["prediction"] for r in got] == [r["prediction"] for r in records(fastv.run_dir)]


def test_budget_is_part_of_the_run_key_and_adaptive_holds_the_mean_retention(compose_cfg):
    common = (*BASE, "selector=topk", "retention=0.25")
    adaptive = runner.run(compose_cfg(*common, "budget=adaptive", "budget.calibration_clips=null"))
    identity = json.loads((adaptive.run_dir / "identity.json").read_text())
    assert identity["budget"] == {
        "name": "adaptive", "mass": None, "scope": "clip", "calibration_clips": None
    }  # fmt: skip
    for other in ({"name": "per_window"}, {"name": "global"}):
        changed = identity | {"budget": identity["budget"] | other}
        assert runner.identity_hash(changed) != runner.identity_hash(identity)
    assert adaptive.run_dir.name.endswith(runner.identity_hash(identity))
    got = records(adaptive.run_dir)
    kept = [r["kept_tokens"] for r in got]
    assert len(set(kept)) > 1  # K varies per clip
    assert len({r["budget_mass"] for r in got}) == 1
    ratio = sum(kept) / sum(r["audio_tokens"] for r in got)
    assert abs(ratio - 0.25) < 0.01
    # Same mass whatever the run's cut: a fresh limit=2 run gives the first two clips their K.
    cut = runner.run(
        compose_cfg(
            *common,
            "budget=adaptive",
            "budget.calibration_clips=null",
            "limit=2",
            "run_dir=${paths.results_dir}/cut",
        )
    )
    assert [r["kept_tokens"] for r in records(cut.run_dir)] == kept[:2]
