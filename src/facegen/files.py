"""Writing files so that a crash never leaves a half-written one behind.

Every write that matters goes to a temporary name in the same folder and is renamed into
place (a rename within one file system is atomic).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from facegen.errors import FacegenError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    >>> with atomic_path("grid.png") as tmp:
    ...     image.save(tmp, format="PNG")
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp makes the file private (0600); give it the permissions a plain open()
        # would have, so written pictures and runs are readable as users expect.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    """The process's umask (reading it means setting it; it is put straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Build a folder under a temporary name beside ``path`` and rename it into place.

    If the block raises (or the process dies), ``path`` is untouched: no half-built folder
    is ever visible under the final name. With ``overwrite`` an existing ``path`` is
    replaced only once the new one is complete.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's folder is private (0700)
        if final.exists():
            if not overwrite:
                raise FacegenError(f"{final} already exists; pass --overwrite to replace it")
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def json_lines(path: str | os.PathLike[str]) -> tuple[list[tuple[int, dict]], list[int]]:
    """(line number, object) for each JSON object of a JSON-lines file, and the numbers of
    the lines that are not one (a half-written last line, a hand edit gone wrong); a
    missing file has none."""
    records: list[tuple[int, dict]] = []
    damaged: list[int] = []
    if not Path(path).is_file():
        return records, damaged
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    for line_number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            records.append((line_number, record))
        else:
            damaged.append(line_number)
    return records, damaged
