"""The one atomic-build helper (issue 18): models, converted weights and synthetic datasets are
built in a temporary sibling and renamed into place."""

from __future__ import annotations

import pytest

from audioprune.atomic import atomic_directory


def test_a_finished_build_appears_whole_and_a_crash_leaves_nothing(tmp_path):
    target = tmp_path / "built"
    with pytest.raises(RuntimeError, match="crash"):
        with atomic_directory(target, complete="done") as tmp:
            (tmp / "half").write_text("x")
            raise RuntimeError("crash mid-build")
    assert list(tmp_path.iterdir()) == []
    with atomic_directory(target, complete="done") as tmp:
        assert tmp.parent == tmp_path and tmp != target and not target.exists()
        (tmp / "done").write_text("1")
    assert (target / "done").read_text() == "1" and [p.name for p in tmp_path.iterdir()] == [
        "built"
    ]


def test_a_concurrent_finished_build_wins_unless_replacing(tmp_path):
    target = tmp_path / "built"
    with atomic_directory(target, complete="done") as tmp:
        (tmp / "done").write_text("ours")
        target.mkdir()  # another process finished the same build meanwhile
        (target / "done").write_text("theirs")
    assert (target / "done").read_text() == "theirs" and len(list(tmp_path.iterdir())) == 1
    with atomic_directory(target, complete="done", replace=True) as tmp:  # an outdated build
        (tmp / "done").write_text("new")
    assert (target / "done").read_text() == "new" and len(list(tmp_path.iterdir())) == 1


def test_an_unfinished_foreign_folder_is_not_overwritten(tmp_path):
    target = tmp_path / "built"
    target.mkdir()
    (target / "someone_elses").write_text("keep")
    with pytest.raises(OSError):
        with atomic_directory(target, complete="done") as tmp:
            (tmp / "done").write_text("1")
    assert (target / "someone_elses").read_text() == "keep" and len(list(tmp_path.iterdir())) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    with atomic_directory(empty, complete="done") as tmp:  # an empty folder is replaced
        (tmp / "done").write_text("1")
    assert (empty / "done").exists()
