"""Run options and what a run may compare (issue 9 items 3, 13, 14, 18): option validation before
anything is written, user imports and `+selector._target_`, smoke runs that never overwrite or
skew a full run's numbers, file modes."""

from __future__ import annotations

import json
import os
import textwrap

import pytest

from audioprune import runner
from audioprune.config import compose
from audioprune.data import load_dataset
from audioprune.metrics import compute_metrics

BASE = ("model=tiny_qwen2_audio", "dataset=synthetic_mmau", "dataset.args.num_clips=3")


pytestmark = pytest.mark.usefixtures("fresh_process_state")


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.parametrize("option", ["batch_size", "limit"])
@pytest.mark.parametrize("value", ["0", "-1", "2.5", "abc"])
def test_batch_size_and_limit_must_be_integers_of_at_least_one(
    compose_cfg, tmp_path, option, value
):
    with pytest.raises(ValueError, match=rf"option {option} must be an integer >= 1.*{value}"):
        runner.run(compose_cfg(*BASE, "selector=topk", f"{option}={value}"))
    assert not (tmp_path / "results").exists()  # refused before anything is written


def test_evaluate_only_without_saved_predictions_is_an_error(compose_cfg, tmp_path):
    with pytest.raises(FileNotFoundError, match="evaluate_only=true: .* no saved predictions"):
        runner.run(compose_cfg(*BASE, "selector=topk", "evaluate_only=true"))
    assert not list((tmp_path / "results").rglob("metrics*.json"))


def _user_package(root, name: str, body: str) -> str:
    package = root / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "selectors.py").write_text(textwrap.dedent(body))
    return f"{name}.selectors"


def test_plus_target_does_not_inherit_the_default_selectors_parameters(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    module = _user_package(
        tmp_path,
        "user_target_pkg",
        """
        import torch
        from audioprune.selectors import Selector

        class Strided(Selector):
            def __init__(self, stride: int = 2):
                self.stride = stride

            def __call__(self, scores, k, *, sample_key=""):
                return torch.arange(k) * self.stride % scores.shape[0]
        """,
    )
    built = runner.make_selector(compose([f"+selector._target_={module}.Strided"]).selector)
    assert type(built).__name__ == "Strided" and built.params() == {"stride": 2}
    with_param = compose([f"+selector._target_={module}.Strided", "+selector.stride=3"])
    assert runner.make_selector(with_param.selector).params() == {"stride": 3}


@pytest.mark.slow
def test_imports_option_and_searchpath_run_a_registered_user_selector(
    compose_cfg, tmp_path, monkeypatch
):
    """`imports=[pkg.selectors]` registers the user's class before the selector is built and
    `hydra.searchpath` finds the user's selector YAML (the README's recipe)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    module = _user_package(
        tmp_path,
        "user_imports_pkg",
        """
        import torch
        from audioprune.selectors import Selector, register_selector

        @register_selector("first_k_user")
        class FirstK(Selector):
            def __call__(self, scores, k, *, sample_key=""):
                return torch.arange(k)
        """,
    )
    configs = tmp_path / "my_configs" / "selector"
    configs.mkdir(parents=True)
    (configs / "first_k_user.yaml").write_text("name: first_k_user\n")
    result = runner.run(
        compose_cfg(
            *BASE,
            f"hydra.searchpath=[file://{tmp_path / 'my_configs'}]",
            "selector=first_k_user",
            f"imports=[{module}]",
            "retention=0.25",
            "limit=1",
        )
    )
    assert result.metrics["run"]["selector"] == {"name": "first_k_user"}
    record = result.records[0]
    assert record["kept_indices"] == [list(range(record["kept_tokens"]))]
    with pytest.raises(ImportError, match="option imports: cannot import 'no_such_pkg_x'"):
        runner.run(compose_cfg(*BASE, "imports=[no_such_pkg_x]"))


def _read(path) -> dict:
    return json.loads(path.read_text())


@pytest.mark.slow
def test_smoke_runs_never_overwrite_or_skew_the_full_runs_numbers(
    compose_cfg, caplog, umask_022, monkeypatch
):
    """Issue 9 item 3: a limit=N run writes its own metrics file; a pruned run's relative drop is
    computed on its own samples (the unpruned predictions rescored on them) or refused."""
    full = runner.run(compose_cfg(*BASE, "selector=none"))
    before = _read(full.run_dir / "metrics.json")
    assert before["metrics"]["n"] == 3 and before["run"]["sample_set"]["n"] == 3

    smoke = runner.run(compose_cfg(*BASE, "selector=none", "limit=2"))
    assert smoke.run_dir == full.run_dir and smoke.computed == 0
    assert _read(full.run_dir / "metrics.json") == before  # the full run's numbers survive
    limited = _read(full.run_dir / "metrics.limit2.json")
    assert limited["metrics"]["n"] == 2 and limited["run"]["sample_set"]["n"] == 2
    assert limited["run"]["sample_set"] != before["run"]["sample_set"]
    # files a run writes all get the predictions' mode (0644 under umask 022)
    modes = {p.name: p.stat().st_mode & 0o777 for p in full.run_dir.iterdir()}
    assert set(modes.values()) == {0o644}, modes

    pruned = runner.run(compose_cfg(*BASE, "selector=bottomk", "retention=0.1", "limit=2"))
    m = pruned.metrics
    assert pruned.metrics_file.name == "metrics.limit2.json"
    assert m["unpruned_run"] == str(full.run_dir)
    assert m["compared_on"] == m["run"]["sample_set"] and m["unpruned_metrics"]["n"] == 2
    cfg = compose_cfg(*BASE)
    samples, _ = load_dataset(cfg.dataset.loader, **cfg.dataset.args)
    base_preds = {r["id"]: r["prediction"] for r in full.records[:2]}
    expected = compute_metrics("mcq", samples[:2], base_preds, **cfg.dataset.metrics)
    assert m["unpruned_metrics"] == expected  # the unpruned predictions, on the same 2 samples
    b, p = expected["overall"], m["metrics"]["overall"]
    assert m["relative_drop"]["overall"] == (None if b == 0 else pytest.approx((p - b) / b))

    # the full pruned run: the unpruned run's metrics.json scored exactly these predictions on
    # exactly these samples, so it is reused instead of rescored (one scoring: the run's own)
    calls = []
    monkeypatch.setattr(
        runner, "compute_metrics", lambda *a, **k: calls.append(1) or compute_metrics(*a, **k)
    )
    whole = runner.run(compose_cfg(*BASE, "selector=bottomk", "retention=0.1"))
    assert whole.computed == 1 and len(calls) == 1
    assert whole.metrics["unpruned_metrics"] == before["metrics"]
    assert whole.metrics["compared_on"] == before["run"]["sample_set"]

    # an unpruned run that lacks some of the pruned run's samples: no drop, a warning says why
    runner.run(compose_cfg(*BASE, "selector=none", "limit=1", "tag=t"))
    with caplog.at_level("WARNING"):
        refused = runner.run(
            compose_cfg(*BASE, "selector=bottomk", "retention=0.1", "tag=t", "limit=2")
        )
    assert "relative_drop" not in refused.metrics and "loyalty" not in refused.metrics
    assert (
        "no saved prediction for 1 of this run's 2 samples" in refused.metrics["comparison_refused"]
    )
    assert "no saved prediction for 1 of" in caplog.text

    # overwrite=true sets the old predictions and the metrics that describe them aside
    redo = runner.run(compose_cfg(*BASE, "selector=none", "limit=1", "overwrite=true"))
    assert redo.computed == 1
    assert sorted(p.name for p in full.run_dir.glob("metrics*.json")) == ["metrics.limit1.json"]
    assert len(list(full.run_dir.glob("metrics.json.*.old"))) == 1


def test_loops_are_chosen_by_the_adapters_family():
    from audioprune.loops import LOOPS, loop_for, register_loop

    class Alm:
        pass

    class Odd:
        family = "odd_family_for_test"

    assert loop_for(Alm()) is LOOPS["alm"]
    with pytest.raises(
        ValueError, match="family 'odd_family_for_test', which has no run loop; registered: .*alm"
    ):
        loop_for(Odd())
    marker = register_loop("odd_family_for_test")(lambda *args: 0)
    try:
        assert loop_for(Odd()) is marker
    finally:
        del LOOPS["odd_family_for_test"]


@pytest.mark.slow
def test_generation_extra_is_merged_into_the_prediction_record(compose_cfg, monkeypatch):
    """Contract §2: adapter-specific per-sample values (Generation.extra) reach the record."""
    from audioprune.models.qwen2_audio import Qwen2AudioAdapter

    original = Qwen2AudioAdapter.generate

    def with_extra(self, prompts, *args, **kwargs):
        generations, timing = original(self, prompts, *args, **kwargs)
        for i, generation in enumerate(generations):
            generation.extra = {"cap_hit": i % 2 == 0, "row_in_batch": i}
        return generations, timing

    monkeypatch.setattr(Qwen2AudioAdapter, "generate", with_extra)
    result = runner.run(compose_cfg(*BASE, "selector=uniform", "batch_size=2", "limit=2"))
    assert [(r["cap_hit"], r["row_in_batch"]) for r in result.records] == [(True, 0), (False, 1)]
    saved = [json.loads(x) for x in (result.run_dir / "predictions.jsonl").read_text().splitlines()]
    assert [r["row_in_batch"] for r in saved] == [0, 1]
