"""Known input and config errors print one line on stderr, without Hydra's "Error executing job"
and a traceback; HYDRA_FULL_ERROR=1 shows the trace (issue 16 §3.14)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_module(module: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {
        k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "AUDIOPRUNE_TRACEBACK")
    }
    environ |= {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    return lines[0]


def test_run_refusal_is_one_line(tmp_path):
    overrides = ["model=whisper_tiny_en", "dataset=synthetic_speech", "selector=fastv"]
    result = run_module("audioprune.run", *overrides, f"paths.results_dir={tmp_path}")
    assert result.returncode == 2
    assert "selector=fastv" in one_line(result.stderr)
    assert "Error executing job" not in result.stderr


@pytest.mark.slow
def test_full_trace_on_request(tmp_path):
    result = run_module(
        "audioprune.run",
        "retention=2",
        f"paths.results_dir={tmp_path}",
        "hydra.run.dir=" + str(tmp_path / "h"),
        env={"HYDRA_FULL_ERROR": "1"},
    )
    assert result.returncode != 0 and "Traceback" in result.stderr and "retention" in result.stderr


def test_macs_refusal_is_one_line():
    result = run_module("audioprune.macs", "model=ast_audioset", "retention=1.5")
    assert result.returncode == 2 and "retention" in one_line(result.stderr)


def test_macs_refuses_frames_below_one_patch():
    from audioprune.config import compose
    from audioprune.errors import ConfigError
    from audioprune.macs import macs_report

    def macs(*overrides):
        return macs_report(compose(["model=ast_audioset", *overrides], config_name="macs"))

    with pytest.raises(ConfigError, match="frames=0: must be >= the patch size 16"):
        macs("frames=0")  # printed the 1024-frame figure before
    with pytest.raises(ConfigError, match="frames=8: must be >= the patch size 16"):
        macs("frames=8")
    assert macs("frames=128")["patches"] == (128 // 16) * (128 // 16)


def test_a_full_disk_names_the_file(tmp_path, monkeypatch):
    import errno

    from audioprune import store

    def full(_fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store.os, "fsync", full)
    predictions = store.PredictionStore(tmp_path / "run" / "predictions.jsonl")
    with pytest.raises(store.WriteError, match=r"append to .*predictions.jsonl: No space left"):
        predictions.append({"id": "a", "prediction": "x"})
    with pytest.raises(OSError, match=r"write .*metrics.json: No space left") as err:
        store.atomic_write_json(tmp_path / "run" / "metrics.json", {})
    assert err.value.errno == errno.ENOSPC and not list((tmp_path / "run").glob(".metrics*"))


def test_model_option_errors_are_config_errors(compose_cfg):
    """Option errors raised while a model loads are ConfigErrors too (one line, not a trace)."""
    from audioprune.classifier.adapter import check_sdpa, fbank_spec
    from audioprune.errors import ConfigError
    from audioprune.identity import prompt_template
    from audioprune.models.runtime import resolve_dtype

    cfg = compose_cfg("dataset=synthetic_captions", "~model.prompts.captioning")
    with pytest.raises(ConfigError, match=r"no prompt for task 'captioning'"):
        prompt_template(cfg)
    with pytest.raises(ConfigError, match="dtype"):
        resolve_dtype("float99")
    with pytest.raises(ConfigError, match="model.attn_implementation='eager'"):
        check_sdpa("eager")
    with pytest.raises(ConfigError, match=r"model.features: unknown option\(s\) \['hop'\]"):
        fbank_spec({"hop": 10}, 128, 128)
