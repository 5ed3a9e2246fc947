"""The project's log lines in the Prefect UI and in ``serve``'s output, each with its granule id.

Prefect ships the records of its own loggers to the API; the project's loggers (``pipeline``,
``flows``, ``models``) get a handler that does the same while a flow or task run is active (and
stays silent outside one, in the CLI), and log at INFO so ``serve`` and workers print them.
"""

from __future__ import annotations

import logging

from prefect.context import FlowRunContext, TaskRunContext
from prefect.logging.handlers import APILogHandler

from pipeline.logcontext import PROJECT_LOGGERS


class RunLogHandler(APILogHandler):
    """Prefect's API handler for records logged inside a run; records outside one are dropped."""

    def emit(self, record: logging.LogRecord) -> None:
        if FlowRunContext.get() is None and TaskRunContext.get() is None:
            return
        super().emit(record)


def route_project_logs() -> None:
    """Attach the run handler to the project's loggers (idempotent) and let INFO through."""
    for name in PROJECT_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)
        if not any(isinstance(h, RunLogHandler) for h in logger.handlers):
            logger.addHandler(RunLogHandler())
