"""The granule being processed, on every log line of the project while it is processed.

``granule_context(granule_id)`` sets a context variable for the current thread of work (Prefect
copies it into the task threads it starts); a log-record factory prefixes the messages of the
project's own loggers (``pipeline``, ``flows``, ``models``) with ``[granule id]``, whatever handler
shows them: the CLI's stderr, ``serve``'s console or the Prefect UI.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

PROJECT_LOGGERS = ("pipeline", "flows", "models")

current_granule: ContextVar[str | None] = ContextVar("mthccar_granule", default=None)


@contextmanager
def granule_context(granule_id: str) -> Iterator[None]:
    token = current_granule.set(granule_id)
    try:
        yield
    finally:
        current_granule.reset(token)


def _tagging(factory: Any) -> Any:
    def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = factory(*args, **kwargs)
        granule = current_granule.get()
        record.granule_id = granule or ""
        if granule and record.name.split(".")[0] in PROJECT_LOGGERS and granule not in str(record.msg):
            record.msg = f"[{granule}] {record.msg}"
        return record

    make_record.mthccar_tagging = True  # type: ignore[attr-defined]
    return make_record


def install() -> None:
    """Install the tagging record factory once per process."""
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "mthccar_tagging", False):
        logging.setLogRecordFactory(_tagging(factory))


install()
