"""The README and docs/ state what the code and the environment really are (issue 9 item 18,
issue 18): versions from the lock, the documented behaviours, and no link to developer notes
outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

from audioprune.environment import locked_versions

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
DOCS = {p: p.read_text() for p in sorted((REPO / "docs").glob("*.md"))}
ALL_DOCS = README + "\n".join(DOCS.values())


def test_readme_tested_with_line_comes_from_the_lock():
    """The versions the README names are the lock's, so the README cannot drift from outside."""
    pins = locked_versions()
    line = f"Tested with transformers {pins['transformers']}, torch {pins['torch']}"
    assert line in README, line


def test_docs_document_the_changed_behaviours():
    for phrase in ("metrics.limit<N>.json", "official_normalized", "imports=[", "hydra.searchpath"):
        assert phrase in ALL_DOCS, phrase


# Built from pieces so this file does not itself hold the string it looks for.
DEV_NOTES = re.compile(r"(\.\./)?" + "sha" + r"red/(notes|data|README)")


def test_no_reference_to_the_developer_notes():
    """Nothing users get (README, docs/, the package) points at the developers' notes folder,
    which is not part of the repository."""
    files = [REPO / "README.md", *DOCS, *sorted((REPO / "audioprune").rglob("*.py"))]
    hits = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if DEV_NOTES.search(line)
    ]
    assert not hits, "references to files outside the repository:\n" + "\n".join(hits)


def test_readme_links_resolve():
    """Every relative link in README.md and docs/*.md names a file that exists."""
    missing = []
    for path, text in [(REPO / "README.md", README), *DOCS.items()]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target:
                continue
            if not (path.parent / target).exists():
                missing.append(f"{path.relative_to(REPO)} -> {target}")
    assert not missing, missing


def test_docs_carry_no_changelog_prose():
    """History belongs in docs/CHANGELOG.md; the pages describe what the code does."""
    pattern = re.compile(r"\b(before issue|issue \d+|\(before,|used to)\b", re.IGNORECASE)
    hits = [
        f"{p.name}: {m.group(0)}"
        for p, text in [(REPO / "README.md", README), *DOCS.items()]
        if p.name != "CHANGELOG.md"
        for m in pattern.finditer(text)
    ]
    assert not hits, hits
