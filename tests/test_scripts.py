"""The user-facing scripts run end to end: `make demo`'s sweep (shrunk) and `make reproduce --tiny`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def run_script(*args: str) -> subprocess.CompletedProcess:
    env = dict(
        os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false"
    )
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )


def test_demo_prints_the_table(tmp_path, session_cache):
    proc = run_script(
        "scripts/demo.py", "--models", "tiny_qwen2_audio", "tiny_audio_flamingo_3",
        "--selectors", "segmentwise_topk", "visionzip", "--retentions", "0.5", "0.1", "--no-classifier",
        "--results-dir", str(tmp_path), f"paths.cache_dir={session_cache}", "dataset.args.num_clips=2",
        "--skip-field-methods",
        "--asr-clips", "0",  # the real-weights section: tests/test_asr_real.py
        "--mini-clips", "0",  # the trained mini audio LLM: tests/test_mini_alm_eval.py
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = [line for line in proc.stdout.splitlines() if line.startswith("| tiny_")]
    assert len(table) == 2 * (1 + 2 * 2)  # per model: none + 2 selectors x 2 retentions
    header = next(line for line in proc.stdout.splitlines() if line.startswith("| model"))
    assert header.split("|")[1:-1] == [
        " model ", " selector ", " retention ", " kept_tokens ", " audio_tokens ",
        " prefill_ms_median ", " prefill_flops_vs_r1 ", " cider_d ",
    ]  # fmt: skip
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in table]
    for model in ("tiny_qwen2_audio", "tiny_audio_flamingo_3"):
        mine = {(r[1], float(r[2])): r for r in rows if r[0] == model}
        full, tenth = mine[("none", 1.0)], mine[("segmentwise_topk", 0.1)]
        assert float(full[3]) == float(full[4])  # unpruned keeps every token
        assert float(tenth[3]) < 0.11 * float(tenth[4])
        # (wall-clock prefill is printed, not asserted: speed is checked by benchmarks)
        assert float(full[6]) == 1.0 and 0 < float(tenth[6]) < 0.5  # analytic FLOPs vs r = 1
    # Every row's median covers the same clips: the model was warmed up before the sweep.
    for run_dir in {p.parent for p in (tmp_path / "runs").rglob("predictions.jsonl")}:
        timings = [json.loads(x)["timings"] for x in (run_dir / "predictions.jsonl").open()]
        assert len(timings) == 2 and not any(t["warmup"] for t in timings)
    assert "Untokenizable" not in proc.stderr  # the Java tokenizer's warnings are captured
    assert (tmp_path / "demo_table.md").read_text().startswith("| model")


def test_reproduce_tiny_writes_a_table_next_to_the_paper(tmp_path, session_cache):
    proc = run_script(
        "scripts/reproduce.py", "--tiny", "--experiments", "paper_table3_ablation",
        "--results-dir", str(tmp_path), f"paths.cache_dir={session_cache}", "dataset.args.num_clips=2",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = (tmp_path / "tables" / "paper_table3_ablation.md").read_text()
    assert "## Against the paper, per column" in table and "### clotho_v2 — cider_d" in table
    assert "| method | keep | clotho_v2 cider_d |" in table and "| Bottom-K | 10% |" in table
    # the paper's Table 3 values sit beside ours
    assert "| bottomk | 0.1 |" in table and "0.020" in table  # retention as run
    runs = sorted(
        p.parent.name.rsplit("-", 1)[0] for p in (tmp_path / "runs").rglob("metrics.json")
    )
    assert len(runs) == 1 + 3 * 3 and "none-r1" in runs


def test_bench_selectors_prints_time_and_cost_per_selector(monkeypatch, capsys):
    import runpy

    argv = ["bench_selectors.py", "--tokens", "30", "--d-audio", "8", "--d-keys", "4"]
    argv += ["--d-llm", "12", "--retentions", "0.5", "--repeats", "1"]
    argv += ["--selectors", "topk", "samap", "divprune"]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(REPO / "scripts" / "bench_selectors.py"), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    samap = [line for line in lines if line.startswith("| samap")]
    assert len(samap) == 1 and samap[0].split("|")[3].strip() == "15"  # K = 15 of 30
    divprune = next(line for line in lines if line.startswith("| divprune"))
    assert float(divprune.split("|")[5]) == pytest.approx(2 * 30 * 30 * 12 / 1e9)  # gram_flops


def test_bench_bucketing_prints_fewer_padded_positions_when_bucketed(monkeypatch, capsys):
    import runpy

    argv = ["bench_bucketing.py", "--clips", "40", "--batch-size", "4", "--seconds-max", "8"]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(REPO / "scripts" / "bench_bucketing.py"), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    ratios = {
        int(line.split("=")[1].split(":")[0]): float(line.split("(")[1].split(" x")[0])
        for line in lines
        if "bucket_batches=" in line
    }
    assert set(ratios) == {0, 4, 8, 16}
    assert all(r >= 1.0 for r in ratios.values())
    assert ratios[16] <= ratios[8] <= ratios[4] < ratios[0]
