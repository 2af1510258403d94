"""Statements in the docs and shipped files that the code must make true: the loop signature
under "Extending", module paths the docs name, the model YAML's `family` key, the MAC range filed
for the second paper's "30–40 % fewer MACs", and code comments that state facts instead of
pointing at documents outside the repository."""

from __future__ import annotations

import csv
import functools
import re
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_a_loop_written_from_the_documented_signature_runs(compose_cfg, session_cache, monkeypatch):
    """docs/extending.md gives the signature of a family's batch loop; a loop with exactly that
    parameter list must accept what `run()` passes."""
    from audioprune import loops
    from audioprune.loops.classifier import classify_batches
    from audioprune.runner import reset_process_state, run

    text = (REPO / "docs" / "extending.md").read_text()
    (params,) = re.findall(r"`fn\(([^)]*)\) -> int`", text)
    namespace = {"classify_batches": classify_batches}
    exec(  # noqa: S102 - the documented signature, verbatim
        f"def documented_loop({params}):\n"
        "    return classify_batches(spec, adapter, todo, store)\n",
        namespace,
    )
    monkeypatch.setitem(loops.LOOPS, "classifier", namespace["documented_loop"])
    reset_process_state()
    cfg = compose_cfg(
        "model=tiny_ast_random",
        f"model.pretrained={session_cache / 'models' / 'tiny-ast-random'}",
        "dataset=synthetic_classes",
        f"dataset.args.root={session_cache / 'data' / 'sc'}",
        "dataset.args.clips_per_class=5",
        "selector=topk",
        "retention=0.5",
        "batch_size=4",
        "limit=3",
    )
    try:
        assert run(cfg).computed == 3
    finally:
        reset_process_state()


def test_module_paths_named_in_the_docs_exist():
    """Every `dir/file.py` the docs name is a file (examples under my_pkg/ aside; the changelog
    names the paths things were moved or renamed from)."""
    missing = []
    for path in DOCS:
        if path.name == "CHANGELOG.md":
            continue
        for match in re.finditer(
            r"(?<![\w./-])((?:[a-z_0-9]+/)+[a-z_0-9]+\.py)\b", path.read_text()
        ):
            name = match.group(1)
            if name.startswith("my_pkg/"):
                continue
            if not any((REPO / base / name).is_file() for base in (".", "audioprune", "scripts")):
                missing.append(f"{path.name}: {name}")
    assert not missing, missing


def test_model_family_key_is_checked_against_the_adapter(compose_cfg):
    """The adapter class routes the run loop; a model YAML's `family` must agree with it."""
    from audioprune.errors import ConfigError
    from audioprune.options import adapter_class, check_model_support
    from audioprune.selectors import build_selector

    for path in sorted((REPO / "configs" / "model").glob("*.yaml")):
        cfg = compose_cfg(f"model={path.stem}")
        if cfg.model.get("family") is not None:
            cls = adapter_class(cfg.model.adapter)
            assert cfg.model.family == getattr(cls, "family", "alm"), path.name
    wrong = compose_cfg("model=tiny_ast", "dataset=synthetic_classes", "model.family=alm")
    with pytest.raises(ConfigError, match="family='alm'.*'classifier' family"):
        check_model_support(wrong, build_selector("topk"))


def test_no_comment_points_at_a_contracts_document():
    hits = [
        f"{path.relative_to(REPO)}:{n}"
        for pattern in ("audioprune/**/*.py", "configs/**/*.yaml", "docs/*.md", "scripts/*.py")
        for path in sorted(REPO.glob(pattern))
        if path.name != "CHANGELOG.md"  # history may name it
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"CONTRACTS\s*§", line)
    ]
    assert not hits, hits


@functools.cache
def model_shape(model: str, frames: int) -> dict:
    from audioprune.classifier.macs_count import architecture_shape
    from audioprune.config import compose

    return architecture_shape(compose([f"model={model}"]).model, frames)


def mac_reduction(model: str, frames: int, retention: float) -> float:
    """% fewer backbone MACs than at r = 1, by `classifier.macs_count.model_macs`."""
    from audioprune.classifier.macs_count import model_macs

    shape = model_shape(model, frames)
    return 100 - 100 * model_macs(shape, retention)["gmacs"] / model_macs(shape, 1.0)["gmacs"]


def test_paper2_mac_claim_is_filed_with_the_keep_rates_our_formula_gives():
    """results/paper2_reference.csv files the abstract's "30–40 % fewer MACs" with the keep
    rates that give exactly that under our MAC count (`model_macs`), per input length, for AST and AudioMAE."""
    with open(REPO / "results" / "paper2_reference.csv", newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["claim"] == "macs_reduction_percent")
    low, high = (100 - float(v) for v in reversed(row["value"].split("-")))  # 60-70 % of r = 1
    ranges = re.findall(r"(\d\.\d+)-(\d\.\d+) at (\d+)", row["note"])
    assert {int(frames) for *_, frames in ranges} == {1024, 512, 128}
    for model in ("ast_audioset", "audiomae_as2m"):
        for lo, hi, frames in ranges:
            lo, hi, frames = float(lo), float(hi), int(frames)
            for r in np.round(np.arange(lo, hi + 1e-9, 0.01), 2):
                assert low <= mac_reduction(model, frames, float(r)) <= high, (model, frames, r)
            for r in (round(lo - 0.01, 2), round(hi + 0.01, 2)):  # the range is not too narrow
                assert not low <= mac_reduction(model, frames, r) <= high, (model, frames, r)
        (r, a, b) = re.search(r"r = (\d\.\d+) gives (\d+)-(\d+) % fewer", row["note"]).groups()
        for frames in (1024, 512, 128):
            assert int(a) <= mac_reduction(model, frames, float(r)) <= int(b), (model, frames)
