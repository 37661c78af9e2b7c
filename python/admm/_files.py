"""Crash-safe file writing shared by models, checkpoints and manifests. Local."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from typing import IO, Any

import numpy as np


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> None:
    """Write a file through ``write(f)`` on a temporary file, then rename it.

    The temporary file lives in the destination folder, is flushed and synced
    before the rename, and gets the permissions of an ordinary new file
    (mkstemp's 0600 would hide shared models from a group). Readers see the
    old file or the new one, never a mix; the folder is synced after the
    rename where the platform allows. ``path`` is used as given.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def atomic_savez(path: str | os.PathLike, arrays: dict[str, Any]) -> None:
    """Write ``arrays`` to ``path`` as an uncompressed ``.npz``, atomically."""
    atomic_write(path, lambda f: np.savez(f, **arrays))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path``, atomically."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def unwritable_reason(folder: str | os.PathLike) -> str | None:
    """Why no file can be created in ``folder`` (by creating one), or None."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return str(exc.strerror or exc)
    return None
