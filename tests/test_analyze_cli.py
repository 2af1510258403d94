"""`python -m audioprune.analyze` is a plain Hydra app like `audioprune.run`: overrides only, the
analysis picked by the config key `analysis.kind`; the old leading word (`analyze attention`) is
refused with the new form, and the run's options are checked before any data is read."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from audioprune.analyze import analyze, analyze_attention, refuse_leading_word
from audioprune.config import compose
from audioprune.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def python_m(*args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    env.pop("AUDIOPRUNE_TRACEBACK", None)
    return subprocess.run(
        [sys.executable, "-m", "audioprune.analyze", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_old_leading_word_is_refused_with_the_new_form():
    old = python_m("attention", "model=tiny_qwen2_audio", "dataset=synthetic_captions", "limit=2")
    assert old.returncode == 2, old.stderr  # a config error: its message alone, no traceback
    assert "Traceback" not in old.stderr
    assert "analysis.kind=attention" in old.stderr
    assert "python -m audioprune.analyze model=tiny_qwen2_audio dataset=synthetic_captions" in (
        old.stderr
    )
    with pytest.raises(ConfigError, match="not 'coverage'.*valid: attention"):
        refuse_leading_word(["coverage", "model=tiny_qwen2_audio"])
    # Hydra's own forms pass untouched: overrides, additions, deletions, flags
    for argv in (["model=x"], ["+foo=1"], ["~analysis.per_head"], ["--cfg", "job"], ["-m"], []):
        refuse_leading_word(argv)


def test_the_app_takes_overrides_like_run():
    """The new form composes configs/analyze.yaml with the overrides given (`--cfg job` prints
    the composed config without running the analysis)."""
    new = python_m("model=tiny_audio_flamingo_3", "limit=2", "analysis.kind=attention", "--cfg", "job")  # fmt: skip
    assert new.returncode == 0, new.stderr
    assert "name: tiny_audio_flamingo_3" in new.stdout and "limit: 2" in new.stdout
    assert "kind: attention" in new.stdout and "map_retention: 0.25" in new.stdout


def test_an_unknown_analysis_kind_is_refused_naming_the_valid_ones():
    cfg = compose(["analysis.kind=nope"], config_name="analyze")
    with pytest.raises(ConfigError, match=r"analysis.kind=nope: unknown analysis; valid kinds: attention"):  # fmt: skip
        analyze(cfg)
    assert compose([], config_name="analyze").analysis.kind == "attention"


@pytest.mark.parametrize(
    ("override", "option"), [("batch_size=0", "batch_size"), ("limit=-1", "limit")]
)
def test_the_run_options_are_checked_before_any_data_is_read(tmp_path, override, option):
    """A bad option is refused naming it, before the dataset is built (no data folder)."""
    root = tmp_path / "nothing"
    cfg = compose([override, f"paths.root_dir={root}"], config_name="analyze")
    with pytest.raises(ConfigError, match=f"option {option} must be"):
        analyze_attention(cfg)
    assert not root.exists()
