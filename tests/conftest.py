"""Shared fixtures: one cache folder per test session for tiny models and synthetic data, and a
helper that composes the real Hydra configs with test overrides (tiny model, few clips, tmp dirs)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Under pytest-xdist (`make test` runs one process per core) each process gets its share of the
# cores, set before torch is imported (child processes of a test inherit it): two processes
# of two threads each on two cores run far slower than two of one thread.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _WORKERS)))

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> Path:
    """Tiny models and synthetic data are built here once per session."""
    return tmp_path_factory.mktemp("audioprune-cache")


@pytest.fixture
def compose_cfg(session_cache, tmp_path):
    """compose_cfg("selector=topk", ...) -> the real root config, pointed at tmp folders."""
    from audioprune.config import compose

    def _compose(*overrides: str):
        return compose(
            [
                f"paths.cache_dir={session_cache}",
                f"paths.results_dir={tmp_path / 'results'}",
                "progress=false",
                *overrides,
            ]
        )

    return _compose


@pytest.fixture
def fresh_process_state():
    """No model or encoder cache left over from another test, none left behind."""
    from audioprune.state import reset_process_state

    reset_process_state()
    yield
    reset_process_state()


@pytest.fixture
def fresh_runner():
    """A run that loads its own model and encoder cache, and leaves none behind."""
    from audioprune import runner

    runner.reset_process_state()
    yield runner
    runner.reset_process_state()
