"""One registry mechanism (issue 18): selectors, dataset loaders, loops and metric scorers are
`audioprune.registry.Registry` objects; an unknown name is a config error that lists the known
ones."""

from __future__ import annotations

import pytest

from audioprune.errors import ConfigError
from audioprune.registry import Registry


def test_register_get_and_the_error_listing_known_names():
    things = Registry("widget")

    @things.register("b")
    def b():
        return "b"

    things.register("a")(len)
    assert things.get("b") is b and things["a"] is len and sorted(things) == ["a", "b"]
    with pytest.raises(ConfigError, match=r"unknown widget 'c'; valid widgets: a, b"):
        things.get("c")
    assert things.get("c", None) is None  # dict.get semantics with a default


def test_a_name_is_registered_once_but_a_reloaded_definition_replaces_itself():
    things = Registry("widget")
    things.register("x")(len)
    with pytest.raises(ValueError, match="widget name 'x' is already registered by"):
        things.register("x")(abs)

    def make():
        def f():
            return 1

        return f

    first, again = make(), make()  # same module and qualified name: a re-executed definition
    things.register("f")(first)
    things.register("f")(again)
    assert things["f"] is again


def test_lazy_entries_are_listed_at_once_and_imported_on_first_use():
    things = Registry("widget")
    things.register_lazy("joiner", "os.path:join")
    assert "joiner" in things
    import os.path

    assert things.get("joiner") is os.path.join
    with pytest.raises(ValueError, match="not module:attr"):
        things.register_lazy("bad", "os.path.join")


def test_the_package_registries_are_registries():
    from audioprune.data import LOADERS
    from audioprune.loops import LOOPS
    from audioprune.metrics import SCORERS, metric_options
    from audioprune.selectors import SELECTORS, build_selector

    for registry in (LOADERS, LOOPS, SCORERS, SELECTORS):
        assert isinstance(registry, Registry)
    with pytest.raises(ConfigError, match="unknown selector 'tpok'; valid selectors: .*topk"):
        build_selector("tpok")
    with pytest.raises(ConfigError, match="unknown dataset loader 'nope'; valid loaders: .*clotho"):
        from audioprune.data import load_dataset

        load_dataset("nope")
    # a scorer's keyword parameters are the options its dataset YAML may set
    assert metric_options("aqa") == {"match"}
    assert metric_options("mcq") == {"matcher", "normalize", "sbert_model", "extra_matchers"}
    assert metric_options("asr") == set()


def test_model_adapters_and_tiny_builders_are_lazy_registries():
    import sys

    from audioprune.models import ADAPTERS
    from audioprune.models.tiny import TINY_BUILDERS, ensure_tiny_model

    assert {"qwen2_audio", "audio_flamingo_3", "whisper", "ast", "audiomae"} <= set(ADAPTERS)
    assert ADAPTERS.get("whisper").__name__ == "WhisperAdapter"
    assert "audioprune.models.whisper" in sys.modules  # imported by the first get
    with pytest.raises(ConfigError, match="unknown model adapter 'nope'; valid adapters: ast"):
        ADAPTERS.get("nope")
    assert {"qwen2_audio", "audio_flamingo_3", "mini_qwen2_audio"} <= set(TINY_BUILDERS)
    with pytest.raises(ConfigError, match="unknown tiny model kind 'nope'; valid kinds"):
        ensure_tiny_model("nope", "/nonexistent/tiny")
