"""One writer per product: an exclusive claim on the granule's product name, held while it is made.

A run claims ``.{product stem}.claim`` in the output directory before it looks for an existing
product and keeps the claim until its product and quicklook are published, so checking, writing
and replacing are one step for every run sharing the directory: threads of one backfill, two
backfills, a CLI run beside a flow, or machines sharing a file system. The claim is a ``flock`` on
that file: the kernel releases it when its holder exits, even on ``kill -9``, so a claim is never
stale. (On NFS, Linux maps ``flock`` onto POSIX locks, which exclude other machines and other
processes but not two threads of one process; one run never processes a granule twice at once.)
A run that finds the claim taken does not wait: it reports the granule as busy, naming the holder.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

CLAIM_SUFFIX = ".claim"


class GranuleBusyError(RuntimeError):
    """Another run holds the claim on this granule's product."""


def claim_path(out_dir: Path, stem: str) -> Path:
    return out_dir / f".{stem}{CLAIM_SUFFIX}"


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"pid {info['pid']} on {info['host']} since {info['since']}"
    except (OSError, ValueError, KeyError):
        return "another run"


@contextmanager
def claim(out_dir: Path, stem: str, granule_id: str) -> Iterator[Path]:
    """Hold the exclusive claim on a product stem; ``GranuleBusyError`` when another run holds it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = claim_path(out_dir, stem)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise GranuleBusyError(f"granule {granule_id} is being processed by {holder}") from None
        try:
            same_file = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same_file = False
        if same_file:
            break
        os.close(fd)  # the holder removed the file as we opened it: claim the new one
    try:
        record = {"pid": os.getpid(), "host": socket.gethostname(), "since": f"{dt.datetime.now(dt.UTC):%FT%TZ}"}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        yield path
    finally:
        path.unlink(missing_ok=True)  # while still locked: a waiting opener sees the inode change
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
