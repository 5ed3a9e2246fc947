"""Atomic file output: write under a temporary name beside the target, fsync, rename.

Readers never see half a file, and a failure leaves neither the final name nor a stray temporary
file. Published files get the usual permissions (0666 less the umask), not mkstemp's 0600.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def temporary_path(final: Path, suffix: str = ".tmp") -> Path:
    """A fresh, hidden temporary file in the target's directory."""
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix, dir=final.parent)
    os.close(fd)
    return Path(name)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def publish(temporary: Path, final: Path) -> Path:
    """Give the temporary file its final permissions, flush it to disk and rename it into place."""
    os.chmod(temporary, 0o666 & ~_umask())
    with open(temporary, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, final)
    try:
        directory = os.open(final.parent, os.O_RDONLY)
    except OSError:
        return final
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return final


@contextmanager
def atomic_output(final: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path to write; publish it as ``final`` on success, remove it on failure."""
    temporary = temporary_path(final, suffix)
    try:
        yield temporary
        publish(temporary, final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
