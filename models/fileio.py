"""Atomic file output: write under a temporary name beside the target, fsync, rename.

Readers never see half a file, and a failure leaves neither the final name nor a stray temporary
file. Published files get the usual permissions (0666 less the umask), not mkstemp's 0600.
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_OWNER = re.compile(r"\.pid(\d+)@(\w+)\.")


def _host() -> str:
    return re.sub(r"\W", "_", socket.gethostname().split(".")[0]) or "host"


def temporary_path(final: Path, suffix: str = ".tmp") -> Path:
    """A fresh, hidden temporary file in the target's directory."""
    final.parent.mkdir(parents=True, exist_ok=True)
    owner = f"pid{os.getpid()}@{_host()}"  # lets a later run remove what a killed process left
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.{owner}.", suffix=suffix, dir=final.parent)
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


def write_text_atomically(path: Path, text: str) -> Path:
    """Write a text file that readers see whole or not at all."""
    with atomic_output(path) as tmp:
        tmp.write_text(text)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Remove temporary files left by dead processes of this host (after a kill or a crash)."""
    removed = []
    for path in directory.glob(".*.tmp"):
        owner = _OWNER.search(path.name)
        if owner is None or owner.group(2) != _host():
            continue
        if not _alive(int(owner.group(1))):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
