"""Atomic writes: all or nothing, and files as readable as a plain open() makes them."""

from __future__ import annotations

import os
import stat

import pytest

from facegen.errors import FacegenError
from facegen.files import atomic_directory, atomic_path, write_text


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_written_files_and_folders_follow_the_umask(tmp_path, umask_022):
    write_text(tmp_path / "a.txt", "hello")
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    with atomic_directory(tmp_path / "folder") as folder:
        (folder / "x").write_text("x")
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o755


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    write_text(tmp_path / "kept.txt", "old")
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "kept.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert (tmp_path / "kept.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.txt"]


def test_an_existing_folder_is_replaced_only_when_asked(tmp_path):
    with atomic_directory(tmp_path / "out") as folder:
        (folder / "first").write_text("1")
    with pytest.raises(FacegenError, match="--overwrite"), atomic_directory(tmp_path / "out"):
        pass
    with atomic_directory(tmp_path / "out", overwrite=True) as folder:
        (folder / "second").write_text("2")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["second"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
