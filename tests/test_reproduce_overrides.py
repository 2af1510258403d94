"""`scripts/reproduce.py --tiny` builds Hydra overrides that Hydra accepts: a replaced sweep list
(tiny models, synthetic datasets) must not read as a sweep over Hydra's own config."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

REPO = Path(__file__).resolve().parents[1]


def reproduce():
    from audioprune import reproduce

    return reproduce


@pytest.mark.parametrize("name", list(reproduce().EXPERIMENTS))
def test_tiny_overrides_are_not_sweeps_over_hydra_config(name, tmp_path):
    parser = OverridesParser.create()
    parsed = [parser.parse_override(o) for o in reproduce().overrides_for(name, tmp_path, True, [])]
    for override in parsed:
        if override.key_or_group.startswith("hydra."):
            assert not override.is_sweep_override(), override.input_line
    values = {o.key_or_group: o.value() for o in parsed}
    if name == "field_methods":
        assert values["hydra.sweeper.params.model"] == "tiny_qwen2_audio,tiny_audio_flamingo_3"
    if name == "paper_table1_audio_flamingo_3":
        assert values["hydra.sweeper.params.dataset"] == (
            "synthetic_aqa,synthetic_captions,synthetic_mmau"
        )
