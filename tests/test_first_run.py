"""What a new user sees first (issue 16 §4): `scripts/reproduce.py` writes each recipe's tables
as it finishes, and a resumed run says how many samples were already saved."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def load_reproduce():
    """The reproduce logic (`audioprune.reproduce`; scripts/reproduce.py only calls its main)."""
    from audioprune import reproduce

    return reproduce


def test_an_interrupted_reproduce_keeps_the_tables_of_finished_recipes(tmp_path, monkeypatch):
    reproduce = load_reproduce()
    first, second = list(reproduce.EXPERIMENTS)[:2]
    events = []

    def run_experiment(name, *_):
        events.append(("run", name))
        if name == second:
            raise KeyboardInterrupt  # the user stops the second recipe

    def write(kind):
        def fn(results_dir, names, *_):
            events.append((kind, tuple(names)))
            return []

        return fn

    monkeypatch.setattr(reproduce, "run_experiment", run_experiment)
    monkeypatch.setattr(reproduce, "write_tables", write("tables"))
    monkeypatch.setattr(reproduce, "write_extras", write("extras"))
    argv = [
        "reproduce.py",
        "--tiny",
        "--results-dir",
        str(tmp_path),
        "--experiments",
        first,
        second,
    ]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(KeyboardInterrupt):
        reproduce.main()
    # The first recipe's tables were written before the second recipe started.
    assert events == [
        ("run", first),
        ("tables", (first,)),
        ("extras", (first,)),
        ("run", second),
    ]


def test_a_resumed_run_says_how_many_samples_were_saved(
    compose_cfg, session_cache, fresh_runner, caplog
):
    def cfg(limit: int):
        return compose_cfg(
            "model=tiny_ast_random",
            f"model.pretrained={session_cache / 'models' / 'tiny-ast-random'}",
            "dataset=synthetic_classes",
            f"dataset.args.root={session_cache / 'data' / 'sc'}",
            "dataset.args.clips_per_class=5",
            "selector=topk",
            "retention=0.5",
            f"limit={limit}",
        )

    fresh_runner.run(cfg(2))
    with caplog.at_level(logging.INFO, logger="audioprune"):
        result = fresh_runner.run(cfg(3))
    assert result.computed == 1
    assert "2 of 3 samples already saved, 1 to compute" in caplog.text


def test_a_failed_recipe_stops_with_one_line_after_the_finished_tables(tmp_path, monkeypatch):
    import subprocess

    reproduce = load_reproduce()
    first, second = list(reproduce.EXPERIMENTS)[:2]
    written = []

    def run_experiment(name, *_):
        if name == second:
            raise subprocess.CalledProcessError(2, ["python", "-m", "audioprune.run"])

    monkeypatch.setattr(reproduce, "run_experiment", run_experiment)
    monkeypatch.setattr(
        reproduce, "write_tables", lambda _, names, *__: written.extend(names) or []
    )
    monkeypatch.setattr(reproduce, "write_extras", lambda *_: [])
    argv = ["reproduce.py", "--results-dir", str(tmp_path), "--experiments", first, second]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit, match=f"error: recipe {second} stopped \\(exit status 2\\)"):
        reproduce.main()
    assert written == [first]
