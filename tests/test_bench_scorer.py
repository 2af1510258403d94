"""scripts/bench_scorer.py runs end to end (at a tiny width; its numbers are not asserted)."""

from __future__ import annotations

import runpy
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_scorer.py"


def test_bench_scorer_prints_the_overhead_ratio(capsys):
    main = runpy.run_path(str(SCRIPT))["main"]
    args = ["--d-model", "32", "--heads", "2", "--frames", "40", "--repeats", "2"]
    main([*args, "--lengths", "40,25"])
    out = capsys.readouterr().out
    assert "| scoring hook (its own time, median) |" in out
    assert "scoring hook overhead:" in out and "% of the encoder" in out
    assert "clips [40, 25] of 40 frames, d 32, 2 heads, process time" in out
