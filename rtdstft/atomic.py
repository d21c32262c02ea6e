"""Whole-or-absent output files.

:func:`atomic_output` hands out a temporary name in the target's folder (same extension, so that
libraries that pick the format from it still do) and renames it onto the target only when the
block that writes it finishes without an exception. An interruption (Ctrl-C included), a failed
write or a failed later step removes the temporary file: the target is then either the complete
new file or whatever was there before, never a partial or empty one. The rename is atomic on
POSIX file systems because both names are in one folder.

Nest it to make several outputs succeed or fail together: the inner targets are renamed first,
and an exception in the inner block removes every temporary file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_output", "check_creatable", "fit_name"]


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (created folders included); on a clean exit rename it
    to ``path``, else delete it.

    The temporary name is hidden (``.NAME.part-XXXXXXXX.EXT``) and keeps ``path``'s extension; NAME
    is ``path``'s stem, cut short where the whole would be longer than the folder's longest name
    (255 bytes on most file systems), so that any name the target may have, its temporary one may
    too. The caller creates the file at the yielded path; a block that creates nothing leaves nothing.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tail = f".part-{secrets.token_hex(4)}{target.suffix}"
    temporary = target.with_name(fit_name(target.stem, tail, _longest_name(target.parent), head="."))
    try:
        yield temporary
        if temporary.exists():
            os.replace(temporary, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def check_creatable(path: str | Path) -> None:
    """Raise OSError if :func:`atomic_output` could not create ``path`` (a folder that cannot be
    made or written, a name too long, a folder of that name), leaving nothing behind (the folders
    it makes are removed again). A long job calls it before it starts, so that it fails then and
    not at its end."""
    if Path(path).is_dir():  # the rename onto it would fail
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    parent = Path(path).parent
    missing = [p for p in (parent, *parent.parents) if not p.exists()]  # the deepest first
    try:
        with atomic_output(path) as probe:
            probe.touch()
            probe.unlink()
    finally:
        for folder in missing:
            with contextlib.suppress(OSError):
                folder.rmdir()


def fit_name(stem: str, tail: str, longest: int = 255, head: str = "") -> str:
    """``head + stem + tail``, ``stem`` cut short from its end until the name takes at most
    ``longest`` bytes in the file system's encoding: a name made from another (a temporary name, a
    derived file) stays one the file system takes, however long the original was."""
    while stem and len(os.fsencode(f"{head}{stem}{tail}")) > longest:
        stem = stem[:-1]
    return f"{head}{stem}{tail}"


def _longest_name(folder: Path) -> int:
    """The longest file name ``folder`` takes, in bytes (NAME_MAX; 255 where it cannot be asked)."""
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):  # AttributeError: no pathconf (Windows)
        return 255
