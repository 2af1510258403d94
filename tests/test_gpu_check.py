"""scripts/gpu_check.py (issue 19 item 3): the prepared GPU check, run here as its CPU dry run.

`--tiny` runs the same code on the tiny models on the CPU; this checks that every part ran and
wrote what a GPU user reads (JSON + Markdown), that batched outputs equal batch 1 (fp32), and
that without CUDA the real check exits 3 with one line saying why.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from audioprune.budget import keep_count
from audioprune.selectors import SELECTORS

REPO = Path(__file__).resolve().parents[1]
ENV = {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}


@pytest.mark.slow
def test_tiny_dry_run_writes_every_part(tmp_path):
    out = subprocess.run(
        [sys.executable, "scripts/gpu_check.py", "--tiny", "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=REPO, timeout=600, env=ENV,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads((tmp_path / "tiny.json").read_text())
    assert (tmp_path / "tiny.md").read_text().startswith("# gpu_check (tiny, CPU)")
    assert result["environment"]["torch"] == torch.__version__ and not result["skipped"]
    rows = result["prefill"]
    cases = {(r["model"], r["seconds"], r["selector"], r["retention"]) for r in rows}
    for model, seconds in (("qwen2_audio", 30), ("audio_flamingo_3", 30), ("audio_flamingo_3", 60)):
        assert (model, seconds, "none", 1.0) in cases
        for name in ("segmentwise_topk", "topk", "fastv"):
            assert {(model, seconds, name, r) for r in (0.5, 0.25, 0.1)} <= cases
    for r in rows:
        kept = r["windows"] * keep_count(r["audio_tokens"] // r["windows"], r["retention"])
        assert r["kept_tokens"] == kept  # full 30 s windows here
        # the prompt really shrinks for pre-LLM pruning; fastv keeps it whole up to its layer
        assert r["prompt_tokens"] - (r["audio_tokens"] if r["in_llm"] else kept) > 0
        assert r["prefill_ms"] > 0 and r["token_bound"] >= 1.0 and r["plan_peak_gib"] > 0
    assert [b["batch"] for b in result["batch"]] == [1, 4, 8]
    assert all(b["rows_equal_batch1"] == b["batch"] for b in result["batch"])
    assert result["scorer"]["encoder_ms_with_scorer"] > 0
    timed = {r["selector"] for r in result["selectors"]}
    # the package's own selectors (the script runs in a fresh process: a selector another test
    # registered in this one is not there)
    encoder_stage = {
        n for n, c in SELECTORS.items()
        if c.stage == "encoder" and c.__module__.startswith("audioprune.")
    }  # fmt: skip
    assert timed == encoder_stage - {"none", "intensity", "variation"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
def test_without_cuda_it_exits_3_with_one_line(tmp_path):
    out = subprocess.run(
        [sys.executable, "scripts/gpu_check.py", "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=REPO, timeout=300, env=ENV,
    )  # fmt: skip
    assert out.returncode == 3
    assert out.stdout.strip().count("\n") == 0 and "no CUDA device" in out.stdout
    assert not list(tmp_path.iterdir())
