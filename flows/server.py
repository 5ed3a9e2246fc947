"""A temporary Prefect server on loopback with its own SQLite database (demo and integration tests)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextmanager
def temporary_server(ui: bool = True) -> Iterator[str]:
    """Start ``prefect server start`` on 127.0.0.1 with a throw-away home; yield its API URL."""
    home = Path(tempfile.mkdtemp(prefix="mthccar-prefect-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "true" if ui else "false",
        "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
        "PREFECT_API_URL": url,
    }
    env.pop("PREFECT_API_KEY", None)
    prefect = Path(sys.executable).parent / "prefect"
    log = open(home / "server.log", "w")  # noqa: SIM115 (kept open for the server's lifetime)
    process = subprocess.Popen(
        [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _healthy(url):
            if process.poll() is not None:
                tail = (home / "server.log").read_text()[-2000:]
                raise RuntimeError(f"the Prefect server exited with status {process.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the Prefect server did not answer at {url} within {STARTUP_TIMEOUT_S} s")
            time.sleep(0.5)
        logger.info("temporary Prefect server at %s (UI %s)", url, url.removesuffix("/api"))
        yield url
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()


@contextmanager
def using_server(url: str) -> Iterator[None]:
    """Point this process's Prefect client at ``url``."""
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: url}):
        try:
            yield
        finally:
            APILogWorker.drain_all(timeout=5)  # send buffered run logs while the server is still there
