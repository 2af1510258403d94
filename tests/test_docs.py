"""The README states what the code and the environment really are (issue 9 item 18)."""

from __future__ import annotations

from pathlib import Path

import transformers

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_names_the_transformers_version_the_suite_runs_on():
    assert f"Tested with transformers {transformers.__version__}" in README


def test_readme_documents_the_changed_behaviours():
    for phrase in ("metrics.limit<N>.json", "official_normalized", "imports=[", "hydra.searchpath"):
        assert phrase in README, phrase
