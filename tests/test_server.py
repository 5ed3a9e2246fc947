"""A real ``prefect server start`` on loopback, ``mthccar serve``, and a run started as the UI does."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.server import temporary_server, using_server

DEPLOYMENT = "mthccar-process-granule/on-demand"


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from models.synthetic.l1b_abi import write_abi_scene

    target = tmp_path_factory.mktemp("server_scan")
    write_abi_scene(
        target,
        dt.datetime(2019, 10, 27, 20, 0, 27, 500000),
        "M1",
        "G17",
        ["C01", "C03", "C04", "C05", "C06"],
        seed=31,
        quick=True,
    )
    return target


def _wait_for_deployment(name: str, timeout: float = 120) -> None:
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    async def exists() -> bool:
        async with get_client() as client:
            try:
                await client.read_deployment_by_name(name)
                return True
            except ObjectNotFound:
                return False

    deadline = time.monotonic() + timeout
    while not asyncio.run(exists()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"deployment {name} was not registered within {timeout} s")
        time.sleep(1)


@pytest.mark.server
def test_ui_style_run_of_a_served_deployment(scan: Path, tmp_path: Path) -> None:
    from prefect.deployments import run_deployment
    from prefect.exceptions import PrefectHTTPStatusError

    incoming, out = tmp_path / "incoming", tmp_path / "products"
    incoming.mkdir()
    with temporary_server(ui=False) as api, using_server(api):
        env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
        log = open(tmp_path / "serve.log", "w")  # noqa: SIM115
        serve = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "mthccar"),
                "serve",
                "--incoming",
                str(incoming),
                "--out",
                "products",  # relative: resolved against serve's folder when serve starts
                "--interval-minutes",
                "600",
            ],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_for_deployment(DEPLOYMENT)
            run = run_deployment(
                DEPLOYMENT,
                parameters={"request": {"inputs": [str(scan)]}},  # out_dir: serve's default
                timeout=600,
                poll_interval=1,
            )
            assert run.state is not None
            assert run.state.is_completed(), (tmp_path / "serve.log").read_text()[-3000:]
            products = list(out.glob("MTHCCAR-L2-CLD_G17_abi_M1_*.nc"))
            assert len(products) == 1
            assert len(list(out.glob("*_quicklook.png"))) == 1
            served = (tmp_path / "serve.log").read_text()
            assert "pipeline.product" in served  # the project's own log lines, with the granule id
            assert "[abi_G17_M1_20191027T200027] wrote" in served
            # a wrong type from the UI form: the server refuses to create the run at all
            with pytest.raises(PrefectHTTPStatusError, match=r"409|422|chunk_size"):
                run_deployment(
                    DEPLOYMENT,
                    parameters={
                        "request": {"inputs": [str(scan)], "out_dir": str(out), "settings": {"chunk_size": 10}}
                    },
                    timeout=0,
                )
            # a well-typed but wrong value: the flow run fails on its parameters before any task
            bad = run_deployment(
                DEPLOYMENT,
                parameters={"request": {"inputs": ["/no/such/scan"], "out_dir": str(tmp_path / "never")}},
                timeout=300,
                poll_interval=1,
            )
            assert bad.state is not None
            assert bad.state.is_failed()
            assert "does not exist" in str(bad.state.message)
            assert not (tmp_path / "never").exists()
        finally:
            os.killpg(serve.pid, signal.SIGTERM)
            try:
                serve.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(serve.pid, signal.SIGKILL)
            log.close()
