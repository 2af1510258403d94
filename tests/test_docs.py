"""The README states what the code and the environment really are (issue 9 item 18)."""

from __future__ import annotations

from pathlib import Path

from audioprune.environment import locked_versions

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_tested_with_line_comes_from_the_lock():
    """The versions the README names are the lock's, so the README cannot drift from outside."""
    pins = locked_versions()
    line = f"Tested with transformers {pins['transformers']}, torch {pins['torch']}"
    assert line in README, line


def test_readme_documents_the_changed_behaviours():
    for phrase in ("metrics.limit<N>.json", "official_normalized", "imports=[", "hydra.searchpath"):
        assert phrase in README, phrase
