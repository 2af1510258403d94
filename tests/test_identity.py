"""Run identity (issue 9, item 2): the run key covers the selector's class and implementation, so
a subclass, a renamed copy or an edited selector never reuses another's saved predictions."""

from __future__ import annotations

import importlib
import sys
import textwrap
from dataclasses import replace

import pytest

from audioprune import runner
from audioprune.config import compose
from audioprune.identity import run_dir_for
from audioprune.records import DatasetInfo
from audioprune.selectors import Selector, build_selector
from audioprune.selectors.simple import TopK
from audioprune.spec import resolve_run

INFO = DatasetInfo(name="x", version="v1", task="captioning", files={"captions": "ab12"})


def identity_of(cfg, selector, retention: float) -> dict:
    """The run identity of `cfg` run with `selector` at `retention`."""
    spec = replace(resolve_run(cfg), selector=selector, retention=retention)
    return runner.run_identity(spec, INFO)


def key(selector, retention: float = 0.25) -> tuple[str, str]:
    """(hash, run folder name) of a run of `selector` under the default config."""
    cfg = compose(["selector=topk", "paths.results_dir=/nonexistent"])
    spec = replace(resolve_run(cfg), selector=selector, retention=retention)
    identity = runner.run_identity(spec, INFO)
    folder = run_dir_for(spec, identity, cfg.paths.results_dir).name
    return runner.identity_hash(identity), folder


class MyTopK(TopK):
    """A user's variant: inherits `name = "topk"` but is not topk."""

    def __call__(self, scores, k, *, sample_key=""):
        return super().__call__(-scores, k, sample_key=sample_key)


class Unnamed1(Selector):  # no registered name at all
    def __call__(self, scores, k, *, sample_key=""):
        return scores.argsort()[:k].sort().values


class Unnamed2(Selector):
    def __call__(self, scores, k, *, sample_key=""):
        return scores.argsort()[:k].sort().values


def test_subclass_of_a_registered_selector_gets_its_own_key_and_label():
    topk_hash, topk_folder = key(build_selector("topk"))
    mine_hash, mine_folder = key(MyTopK())
    assert mine_hash != topk_hash
    assert topk_folder.startswith("topk-r0.25-")
    assert mine_folder.startswith("my_top_k-r0.25-")  # readable label from the class name


def test_two_unnamed_classes_do_not_share_a_folder():
    (h1, f1), (h2, f2) = key(Unnamed1()), key(Unnamed2())
    assert h1 != h2 and f1 != f2
    assert f1.startswith("unnamed1-r0.25-") and f2.startswith("unnamed2-r0.25-")


def test_editing_a_selector_or_its_user_base_class_or_helper_changes_the_key(tmp_path, monkeypatch):
    """A user package: base class + helper in one module, the selector in another."""
    monkeypatch.syspath_prepend(str(tmp_path))
    pkg = tmp_path / "userpkg_identity"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    base_src = textwrap.dedent(
        """
        from audioprune.selectors import Selector

        def order(scores):
            return scores.argsort(descending=True)

        class Base(Selector):
            def __call__(self, scores, k, *, sample_key=""):
                return order(scores)[:k].sort().values
        """
    )
    (pkg / "base.py").write_text(base_src)
    (pkg / "mine.py").write_text(
        "from userpkg_identity.base import Base\n\nclass Mine(Base):\n    pass\n"
    )

    def current() -> str:
        for name in ("userpkg_identity.base", "userpkg_identity.mine"):
            if name in sys.modules:
                importlib.reload(sys.modules[name])
            else:
                importlib.import_module(name)
        return key(sys.modules["userpkg_identity.mine"].Mine())[0]

    first = current()
    assert current() == first  # stable while nothing changes
    # the user base class's method changes
    (pkg / "base.py").write_text(base_src.replace("[:k]", "[:k].flip(0)"))
    edited_base = current()
    assert edited_base != first
    # only the module-level helper the base class calls changes
    (pkg / "base.py").write_text(
        base_src.replace("[:k]", "[:k].flip(0)").replace("descending=True", "descending=False")
    )
    edited_helper = current()
    assert edited_helper not in (first, edited_base)
    # the selector's own class changes
    (pkg / "mine.py").write_text(
        "from userpkg_identity.base import Base\n\nclass Mine(Base):\n    extra = 1\n"
    )
    assert current() not in (first, edited_base, edited_helper)


def test_identity_covers_selector_class_source_and_runtime_keys_do_not_count():
    cfg = compose(["selector=topk"])
    identity = identity_of(cfg, build_selector("topk"), 0.25)
    selector = identity["selector"]
    assert selector["class"] == "audioprune.selectors.simple:TopK"
    assert len(selector["source_sha256"]) == 16 and selector["name"] == "topk"
    other = compose(["selector=topk", "model.device=cuda", "batch_size=4", "limit=3"])
    assert identity_of(other, build_selector("topk"), 0.25) == identity
    # any model setting that can change predictions counts, also one the runner never names
    extra = compose(["selector=topk", "+model.new_decoding_knob=2"])
    assert identity_of(extra, build_selector("topk"), 0.25) != identity


@pytest.mark.parametrize("budget", ["per_window", "global", "adaptive"])
def test_budget_config_is_part_of_the_key(budget):
    from dataclasses import asdict

    from audioprune.budget import make_budget

    cfg = compose(["selector=topk", f"budget={budget}"])
    identity = identity_of(cfg, build_selector("topk"), 0.25)
    assert identity["budget"] == asdict(make_budget(cfg)) and identity["budget"]["name"] == budget
    default = identity_of(compose(["selector=topk"]), build_selector("topk"), 0.25)
    assert (identity == default) == (budget == "per_window")
