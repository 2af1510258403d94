"""Typed boundaries (issue 18): the run resolves its config once into a RunSpec; the family
loops read that, never the config, and add their own summary fields."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from audioprune.budget import Budget
from audioprune.config import compose
from audioprune.errors import ConfigError
from audioprune.spec import Decoding, RunSpec, resolve_run

LOOPS = Path(__file__).resolve().parents[1] / "audioprune" / "loops"


def test_resolve_run_types_what_the_loops_need():
    cfg = compose(
        [
            "model=whisper_tiny_en",
            "dataset=librispeech_test_clean",
            "selector=segmentwise_topk",
            "retention=0.5",
            "budget=adaptive",
            "batch_size=3",
            "limit=7",
            "dataset.args.on_error=skip",
            "progress=false",
        ]
    )
    spec = resolve_run(cfg)
    assert isinstance(spec, RunSpec) and spec.family == "alm"
    assert (spec.model, spec.dataset) == ("whisper_tiny_en", "librispeech_test_clean")
    assert spec.selector.name == "segmentwise_topk" and spec.selector.params()["segments"] == 10
    assert spec.retention == 0.5 and isinstance(spec.budget, Budget)
    assert spec.budget.name == "adaptive" and spec.budget.calibration_clips == 32
    assert (spec.batch_size, spec.limit, spec.on_error, spec.progress) == (3, 7, "skip", False)
    assert spec.prompt == "" and spec.scoring.name == "generate" and spec.positions == "compact"
    # model.generation: the cap apart, the rest passed to generate as keywords
    assert spec.decoding == Decoding(
        max_new_tokens=440, options={"new_tokens_per_second": 6.0, "new_tokens_extra": 8}
    )
    assert spec.label == "whisper_tiny_en/librispeech_test_clean/segmentwise_topk-S10-r0.5"
    with pytest.raises(AttributeError):  # frozen
        spec.retention = 0.25  # type: ignore[misc]


def test_a_selector_that_does_not_prune_runs_at_retention_one_and_classifiers_resolve():
    spec = resolve_run(compose(["selector=none", "retention=0.25"]))
    assert spec.retention == 1.0 and spec.family == "alm" and spec.prompt
    classifier = resolve_run(
        compose(["model=tiny_ast", "dataset=synthetic_classes", "selector=topk", "retention=0.5"])
    )
    assert classifier.family == "classifier" and classifier.prompt is None
    with pytest.raises(ConfigError, match="batch_size"):
        resolve_run(compose(["batch_size=0"]))


def test_the_family_loops_never_read_the_config():
    """No `cfg` in loops/*.py: what a loop depends on is a RunSpec field."""
    for path in sorted(LOOPS.glob("*.py")):
        names = {n.id for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Name)}
        args = {
            a.arg
            for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, ast.arg)
            for a in [n]
        }
        assert "cfg" not in names | args, f"{path.name} reads the config"


def test_families_add_their_own_summary_fields():
    from audioprune.loops import family_summary

    assert family_summary("classifier", [{"macs": 2e9}, {"macs": 4e9}, {"error": "x"}]) == {
        "gmacs_mean": pytest.approx(3.0)
    }
    assert family_summary("alm", [{"cap_hit": True}, {"cap_hit": False}, {}]) == {"cap_hits": 1}
    assert family_summary("alm", [{"kept_tokens": 3}]) == {"cap_hits": None}  # no cap recorded
    assert family_summary("no_such_family", [{"macs": 1}]) == {}


def test_the_run_identity_is_read_from_the_spec_not_the_config():
    """`run_identity(spec, info)`: what the spec says (tag, budget, prompt, model and dataset
    configs) is what the key holds; the config is not read again, and the identity handed out
    is a copy (editing it leaves the spec as it was)."""
    from dataclasses import replace

    from omegaconf import OmegaConf

    from audioprune.identity import run_identity
    from audioprune.records import DatasetInfo

    info = DatasetInfo(name="x", version="v1", task="captioning", files={"captions": "ab12"})
    cfg = compose(["selector=topk", "tag=t1", "budget=global", "+model.knob=2"])
    spec = resolve_run(cfg)
    identity = run_identity(spec, info)
    assert identity["tag"] == spec.tag == "t1" and identity["prompt"] == spec.prompt
    assert identity["budget"]["name"] == "global" and identity["model"]["knob"] == 2
    assert (
        identity["dataset"]["name"] == "synthetic_captions" and "metrics" not in identity["dataset"]
    )
    OmegaConf.update(cfg, "tag", "changed after resolving", merge=False)
    assert run_identity(spec, info) == identity
    assert run_identity(replace(spec, tag="t2"), info)["tag"] == "t2"
    identity["model"]["knob"] = 3
    identity["dataset"]["args"]["x"] = 1
    assert spec.model_config["knob"] == 2 and "x" not in spec.dataset_config["args"]
    assert run_identity(spec, info)["model"]["knob"] == 2
