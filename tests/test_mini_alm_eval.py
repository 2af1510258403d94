"""Choice scoring, intervals and event coverage on the trained miniature Qwen2-Audio (slow).

Robust facts only, never tuned thresholds: on held-out `keyword` scenes (a spoken word among
noise) the unpruned model beats Bottom-K at 25 % retention (the least-attended tokens), it covers
every true event while Bottom-K does not, and the demo's
first section prints its table under a heading that says the weights are real. The model is the
session's (tests/_mini.py builds it once under the session cache; runs here load that folder).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from tests._mini import fixture_mini_dir  # noqa: F401  (the session's assembled model)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
KEYWORD = (
    "model=mini_qwen2_audio",
    "dataset=synthetic_scenes",
    "dataset.args.families=[keyword]",
    "dataset.args.num_clips=12",
    "scoring=choice_loglik_only",
)


@pytest.mark.usefixtures("mini_dir")
def test_unpruned_beats_bottomk_at_a_quarter_on_keywords_and_covers_every_event(
    compose_cfg, fresh_runner
):
    full = fresh_runner.run(compose_cfg(*KEYWORD, "selector=none", "retention=1.0")).metrics
    bottom = fresh_runner.run(compose_cfg(*KEYWORD, "selector=bottomk", "retention=0.25")).metrics
    acc_full = full["metrics"]["accuracy_choice_loglik"]
    acc_bottom = bottom["metrics"]["accuracy_choice_loglik"]
    assert acc_full > acc_bottom, (acc_full, acc_bottom)
    low, high = (full["metrics"]["accuracy_choice_loglik_ci95"][k] for k in ("low", "high"))
    assert low <= acc_full <= high
    assert full["metrics"]["event_coverage"]["overall"] == 100.0
    assert bottom["metrics"]["event_coverage"]["overall"] < 100.0
    assert bottom["relative_drop"]["accuracy_choice_loglik"] < 0


@pytest.mark.usefixtures("mini_dir")
def test_demo_leads_with_the_trained_models_table(session_cache, tmp_path, fresh_runner):
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        spec = importlib.util.spec_from_file_location(
            "demo_mini", REPO / "scripts" / "demo_mini.py"
        )
        demo_mini = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(demo_mini)
    finally:
        sys.path.remove(str(REPO / "scripts"))
    text = demo_mini.mini_section(
        tmp_path, num_clips=3, selectors=["topk"], retentions=[0.25],
        overrides=[f"paths.cache_dir={session_cache}"],
    )  # fmt: skip
    assert text.startswith(demo_mini.HEADING) and "real model behaviour" in demo_mini.HEADING
    rows = [line for line in text.splitlines() if line.startswith(("| none", "| topk"))]
    assert len(rows) == 4  # none and topk, in the main and the per-family table
    assert all("[" in row for row in rows)  # every cell carries its interval
    assert (tmp_path / "mini_alm_table.md").read_text().startswith(demo_mini.HEADING)
