"""Operations as an operator meets them, through a real temporary Prefect server.

Concurrent granules in one process and in two, a kill -9 in the middle of a backfill, two CLI runs
at once, failures of every kind as one sentence while the batch goes on, the operational state,
quicklooks published with their products, and the project's log lines in the run's logs.
Flows that could crash their process run in a process of their own (``tests.support.run_flow``).
"""

from __future__ import annotations

import datetime as dt
import errno
import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from pipeline.failures import describe_failure
from pipeline.granules import single_granule

REPO = Path(__file__).resolve().parents[1]
NO_C02 = ["C01", "C03", "C04", "C05", "C06"]
FIRST_SCAN = dt.datetime(2019, 10, 27, 20, 0, 27, 500000)
N_SCANS = 5  # more than the default concurrency of 4: the window fills and moves
VARIABLES = ("cloud_mask", "cloud_mask_probability", "cloud_phase", "cloud_optical_thickness", "retrieval_quality")

pytestmark = pytest.mark.server


# ---- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(prefect_server: str) -> str:
    return prefect_server


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """N_SCANS Meso-1 scans 5 minutes apart (quick renderer: real format), one directory each."""
    from models.synthetic.l1b_abi import write_abi_scene

    root = tmp_path_factory.mktemp("ops_scans")
    dirs = []
    for i in range(N_SCANS):
        target = root / f"scan{i}"
        write_abi_scene(target, FIRST_SCAN + dt.timedelta(minutes=5 * i), "M1", "G17", NO_C02, seed=40 + i, quick=True)
        dirs.append(target)
    return dirs


@pytest.fixture(scope="module")
def archive(scans: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scans in NOAA's archive layout (ABI-L1b-RadM/YYYY/DDD/HH/)."""
    root = tmp_path_factory.mktemp("ops_archive")
    for scan in scans:
        start = single_granule([scan]).start_time
        hour = root / "ABI-L1b-RadM" / f"{start:%Y}" / f"{start:%j}" / f"{start:%H}"
        hour.mkdir(parents=True, exist_ok=True)
        for path in scan.glob("OR_ABI-L1b-*.nc"):
            shutil.copy(path, hour / path.name)
    return root


def _env(server: str) -> dict[str, str]:
    env = {**os.environ, "PREFECT_API_URL": server, "PYTHONPATH": str(REPO)}
    for name in ("MTHCCAR_OUT_DIR", "MTHCCAR_DASK_SCHEDULER", "MTHCCAR_DASK_WORKERS"):
        env.pop(name, None)
    return env


def _start_flow(server: str, name: str, parameters: dict, log: Path) -> subprocess.Popen:
    with log.open("w") as output:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "tests.support.run_flow", name, json.dumps(parameters)],
            cwd=REPO,
            env=_env(server),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _finish(process: subprocess.Popen, log: Path, timeout: float = 400) -> dict:
    code = process.wait(timeout=timeout)
    text = log.read_text()
    assert code == 0, f"flow process exited with {code}:\n{text[-3000:]}"
    line = next(line for line in reversed(text.splitlines()) if line.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def _backfill(archive: Path, out: Path, **extra) -> dict:
    return {
        "archive": str(archive),
        "start": "2019-10-27T20:00:00",
        "end": "2019-10-27T20:59:59",
        "product": "ABI-L1b-RadM",
        "out_dir": str(out),
        **extra,
    }


def _products(out: Path) -> list[Path]:
    return sorted(out.glob("MTHCCAR-L2-CLD_*.nc"))


def _quicklooks(out: Path) -> list[Path]:
    return sorted(out.glob("MTHCCAR-L2-CLD_*_quicklook.png"))


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.glob(".*") if p.name.endswith((".tmp", ".claim")))


def _stem(product: Path) -> str:
    return product.name.rsplit("_c", 1)[0]


def _assert_one_per_granule(out: Path, granules: int) -> None:
    products, quicklooks = _products(out), _quicklooks(out)
    assert len(products) == granules, [p.name for p in products]
    assert len({_stem(p) for p in products}) == granules
    assert sorted(q.name.removesuffix("_quicklook.png") for q in quicklooks) == sorted(p.stem for p in products)
    assert _leftovers(out) == []


def _same_data(reference: Path, other: Path) -> None:
    by_stem = {_stem(p): p for p in _products(reference)}
    for product in _products(other):
        with xr.open_dataset(by_stem[_stem(product)]) as a, xr.open_dataset(product) as b:
            for name in VARIABLES:
                np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=f"{product.name} {name}")


@pytest.fixture(scope="module")
def serial_products(scans: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference: every scan processed one after the other in this process (the CLI's path; the
    flows run the same plan, stage and publish steps), without a flow process to start."""
    from pipeline.process import ProcessOptions, process_granule

    out = tmp_path_factory.mktemp("serial")
    for scan in scans:
        process_granule(single_granule([scan]), ProcessOptions(out_dir=out, quicklook=False))
    assert len(_products(out)) == N_SCANS
    return out


# ---- concurrency ----------------------------------------------------------------------------------
# One backfill at four granules at once runs with ``make test-slow`` (about 50 s of the default run,
# a minute more on a local cluster). The default run has the shipped defaults at four granules at
# once: two backfills at their default concurrency of 2 sharing one folder, and a killed backfill
# resumed, both compared with the serial run; the local cluster is in it through test_flows and
# test_products.
@pytest.mark.slow
@pytest.mark.parametrize("where", ["threads", "local_cluster"])
def test_backfill_at_concurrency_4_matches_a_serial_run(
    server: str, archive: Path, serial_products: Path, tmp_path: Path, where: str
) -> None:
    settings = {"where": where, "workers": 2}
    log = tmp_path / "log"
    report = _finish(
        _start_flow(server, "backfill", _backfill(archive, tmp_path, max_concurrency=4, settings=settings), log), log
    )
    assert report["processed"] == N_SCANS
    assert report["failed"] == 0
    _assert_one_per_granule(tmp_path, N_SCANS)
    _same_data(serial_products, tmp_path)


def test_two_backfills_at_their_defaults_share_one_folder_without_duplicates(
    server: str, archive: Path, serial_products: Path, tmp_path: Path
) -> None:
    runs = [_start_flow(server, "backfill", _backfill(archive, tmp_path), tmp_path / f"log{i}") for i in range(2)]
    reports = [_finish(run, tmp_path / f"log{i}") for i, run in enumerate(runs)]
    assert sum(r["processed"] for r in reports) == N_SCANS
    assert all(r["failed"] == 0 for r in reports)
    assert all(r["processed"] + r["skipped"] + r["busy"] == N_SCANS for r in reports)
    _assert_one_per_granule(tmp_path, N_SCANS)
    _same_data(serial_products, tmp_path)
    assert len({r["report"] for r in reports}) == 2  # each run keeps its own report
    assert all(Path(r["report"]).exists() for r in reports)


def test_a_backfill_killed_mid_run_resumes_to_one_product_and_quicklook_per_granule(
    server: str, archive: Path, serial_products: Path, tmp_path: Path
) -> None:
    run = _start_flow(server, "backfill", _backfill(archive, tmp_path), tmp_path / "log")
    deadline = time.monotonic() + 300
    while not _products(tmp_path) and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.1)
    assert run.poll() is None, "the backfill finished before it could be killed"
    os.killpg(run.pid, signal.SIGKILL)
    run.wait(timeout=30)
    done = {p.name.split("_s", 1)[1][:15] for p in _products(tmp_path)}  # their scans' start times
    assert 0 < len(done) < N_SCANS
    report = _finish(
        _start_flow(server, "backfill", _backfill(archive, tmp_path), tmp_path / "resume"), tmp_path / "resume"
    )
    # what was published is skipped, what was half-done (staging files, claims of a dead process) redone
    assert report["failed"] == 0
    assert (report["skipped"], report["processed"]) == (len(done), N_SCANS - len(done))
    saved = json.loads(Path(report["report"]).read_text())  # and the run's report names the skipped
    assert sorted(o["granule"].rsplit("_", 1)[1] for o in saved["skipped"]) == sorted(done)
    _assert_one_per_granule(tmp_path, N_SCANS)
    _same_data(serial_products, tmp_path)  # the killed run's products and the redone ones alike


def test_two_cli_runs_at_once_write_one_product(scans: list[Path], tmp_path: Path) -> None:
    command = [str(Path(sys.executable).parent / "mthccar"), "process", str(scans[0]), "--out", str(tmp_path)]
    runs = [
        subprocess.Popen(
            [*command, "--no-progress"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    _assert_one_per_granule(tmp_path, 1)
    assert sum("cloud fraction" in text for text in outputs) == 1  # one made it; the other skipped it
    # busy: "by pid N on HOST", or "by another run" when the holder has not yet written its record
    assert any("already processed" in text or "is being processed by" in text for text in outputs), outputs


def test_sigterm_leaves_no_staging_file_or_claim(scans: list[Path], tmp_path: Path) -> None:
    run = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mthccar"),
            "process",
            str(scans[1]),
            "--out",
            str(tmp_path),
            "--no-progress",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".*.claim")) and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.02)
    run.send_signal(signal.SIGTERM)
    output = run.communicate(timeout=60)[0]
    assert run.returncode != 0, output
    assert _leftovers(tmp_path) == []
    assert _products(tmp_path) == []


# ---- failures: one sentence each, the batch goes on -----------------------------------------------
def _corrupt_a_chunk(path: Path) -> None:
    """Overwrite the middle of one compressed chunk of Rad (the header stays readable)."""
    import h5py

    with h5py.File(path, "r") as handle:
        info = handle["Rad"].id.get_chunk_info(0)
    with path.open("r+b") as raw:
        raw.seek(info.byte_offset + info.size // 4)
        raw.write(bytes(range(256)) * max(1, info.size // 512))


def _cli(args: list[str]) -> tuple[int, str]:
    from flows.cli import app

    result = CliRunner().invoke(app, ["process", *args, "--no-progress"])
    return result.exit_code, result.output


def test_a_corrupt_chunk_fails_its_granule_in_one_sentence_and_the_next_is_processed(
    scans: list[Path], tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(scans[2], broken)
    c05 = next(broken.glob("*C05_*.nc"))
    _corrupt_a_chunk(c05)
    code, output = _cli([str(broken), str(scans[3]), "--out", str(tmp_path / "out")])
    assert code == 1
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: granule abi_G17_M1_20191027T201027: input file {c05.name} has a corrupt or unreadable chunk "
        "(NetCDF: HDF error)"
    ]
    assert "Traceback" not in output
    assert len(_products(tmp_path / "out")) == 1  # the good granule after the corrupt one
    assert _leftovers(tmp_path / "out") == []


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[callable]:
    """Mount small tmpfs file systems (root only, as in CI); unmounted afterwards."""
    mounted: list[Path] = []

    def mount(name: str, size: str, read_only: bool = False) -> Path:
        target = tmp_path / name
        target.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(target)
        return target

    yield mount
    for target in mounted:
        subprocess.run(["umount", "-l", str(target)], check=False)


def test_a_read_only_output_is_one_sentence(scans: list[Path], tmpfs) -> None:
    out = tmpfs("ro", "4m", read_only=True)
    code, output = _cli([str(scans[4]), "--out", str(out)])
    assert code == 1
    assert "error: granule abi_G17_M1_20191027T202027: the file system is read-only at" in output
    assert "(errno 30)" in output
    assert "Traceback" not in output


def test_a_full_disk_is_one_sentence_and_leaves_nothing_behind(scans: list[Path], tmpfs) -> None:
    out = tmpfs("full", "96k")
    code, output = _cli([str(scans[3]), str(scans[4]), "--out", str(out)])
    assert code == 1
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 2  # both granules tried, both reported
    assert all("no space is left" in line for line in errors), errors
    assert "Traceback" not in output
    assert _products(out) == []
    assert _leftovers(out) == []
    from xarray.backends.file_manager import FILE_CACHE

    assert not [key for key in list(FILE_CACHE) if str(out) in str(key)]  # no file left open for the collector
    gc.collect()  # closing one then would raise an HDF error in whatever ran next


def test_permission_denied_is_one_sentence(scans: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline import product as product_module

    def forbidden(temporary: Path, final: Path) -> Path:  # as a directory the worker may not write
        raise PermissionError(errno.EACCES, "Permission denied", str(final))

    monkeypatch.setattr(product_module, "publish", forbidden)
    code, output = _cli([str(scans[0]), "--out", str(tmp_path)])
    assert code == 1
    assert f"error: granule abi_G17_M1_20191027T200027: permission is denied at {tmp_path}/MTHCCAR-L2-CLD_G17" in output
    assert _products(tmp_path) == []
    assert _leftovers(tmp_path) == []


def test_failure_sentences_for_library_errors() -> None:
    assert describe_failure(OSError(errno.ENOSPC, "No space left on device", "/data/p.nc"), "g1") == (
        "granule g1: no space is left on the device at /data/p.nc (errno 28)"
    )
    assert describe_failure(RuntimeError("NetCDF: HDF error"), "g1", Path("/")) == (
        "granule g1: writing its product in / failed (NetCDF: HDF error)"
    )
    assert describe_failure(TypeError("unsupported operand\nmore"), "g1") == (
        "granule g1 failed: TypeError: unsupported operand"
    )
    assert describe_failure(ValueError("granule g1 lacks band C02"), "g1") == "granule g1 lacks band C02"


# ---- quicklooks with their products -----------------------------------------------------------------
def test_quicklooks_follow_their_products(scans: list[Path], tmp_path: Path) -> None:
    code, _ = _cli([str(scans[1]), "--out", str(tmp_path)])
    assert code == 0
    (product,) = _products(tmp_path)
    (quicklook,) = _quicklooks(tmp_path)
    quicklook.unlink()  # as a run killed between the product and its quicklook left it
    orphan = tmp_path / (product.stem.replace("_c2", "_c1") + "_quicklook.png")
    orphan.write_bytes(b"a quicklook whose product was never published")
    assert _cli([str(scans[1]), "--out", str(tmp_path)])[0] == 0
    assert _quicklooks(tmp_path) == sorted([quicklook, orphan])  # drawn again on skip
    code, _ = _cli([str(scans[1]), "--out", str(tmp_path), "--overwrite"])
    assert code == 0
    _assert_one_per_granule(tmp_path, 1)  # the replaced product's quicklook and the orphan are gone


# ---- the operational flow --------------------------------------------------------------------------
@pytest.fixture
def on_server(server: str) -> Iterator[None]:
    from flows.server import using_server

    with using_server(server):
        yield


def test_operational_checks_its_state_location_before_any_work(on_server, scans: list[Path], tmp_path: Path) -> None:
    from flows.operational import operational
    from flows.parameters import OperationalRequest

    a_file = tmp_path / "a_file"
    a_file.write_text("")
    out = tmp_path / "out"
    request = OperationalRequest(
        incoming=str(scans[0]), out_dir=str(out), settle_minutes=0, state_file=str(a_file / "s.json")
    )
    with pytest.raises(ValueError, match=r"operational state file .*a_file/s\.json cannot be written"):
        operational(request)
    assert _products(out) == []
    for content in ("[1, 2]", '{"done": ["x"]}'):
        (tmp_path / "bad.json").write_text(content)
        bad = request.model_copy(update={"state_file": str(tmp_path / "bad.json")})
        with pytest.raises(ValueError, match=r"bad\.json is not a state file of this pipeline"):
            operational(bad)
    assert _products(out) == []


def test_operational_reprocesses_a_redelivered_scan_and_counts_done_ones(
    on_server, scans: list[Path], tmp_path: Path
) -> None:
    from flows.operational import operational
    from flows.parameters import OperationalRequest

    incoming, out = tmp_path / "incoming", tmp_path / "out"
    incoming.mkdir()
    for path in scans[0].glob("OR_ABI-*.nc"):
        shutil.copy(path, incoming / path.name)
    request = OperationalRequest(incoming=str(incoming), out_dir=str(out), settle_minutes=0)
    assert [o["status"] for o in operational(request)["outcomes"]] == ["processed"]
    again = operational(request)
    assert again["outcomes"] == []
    assert again["already_done"] == 1
    first = _products(out)
    c01 = next(incoming.glob("*C01_*.nc"))
    os.utime(c01, (time.time() + 60, time.time() + 60))  # the scan is delivered again, corrected
    redelivered = operational(request)
    assert [o["status"] for o in redelivered["outcomes"]] == ["processed"]
    _assert_one_per_granule(out, 1)
    assert _products(out) != first


# ---- what operators see ----------------------------------------------------------------------------
def test_project_log_lines_reach_the_run_with_the_granule_id(on_server, scans: list[Path], tmp_path: Path) -> None:
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import ArtifactSort
    from prefect.logging.handlers import APILogWorker

    from flows.parameters import ProcessRequest
    from flows.process import process_granule

    state = process_granule(ProcessRequest(inputs=[str(scans[3])], out_dir=str(tmp_path)), return_state=True)
    APILogWorker.drain_all(timeout=10)

    async def read() -> tuple[list, str]:
        async with get_client() as client:
            run_id = state.state_details.flow_run_id
            logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["mthccar-process-report"])),
                sort=ArtifactSort.CREATED_DESC,
            )
            return logs, str(artifacts[0].data)

    logs, report = asyncio.run(read())
    ours = [log for log in logs if log.name.split(".")[0] in ("pipeline", "flows", "models")]
    assert ours, [log.name for log in logs]
    assert all("[abi_G17_M1_20191027T201527]" in log.message for log in ours if "granule" not in log.message)
    assert any(log.name == "pipeline.product" and "wrote" in log.message for log in ours)
    (product,) = _products(tmp_path)
    assert f"`{product}`" in report  # the full path
    assert "data:image/png;base64," in report  # the quicklook itself
    assert state.result()[0]["product"] == str(product)


def test_served_runs_take_their_defaults_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from flows.parameters import BackfillRequest, ProcessRequest, RunSettings, Where

    assert RunSettings().where == Where.threads
    monkeypatch.setenv("MTHCCAR_DASK_SCHEDULER", "tcp://127.0.0.1:8786")
    monkeypatch.setenv("MTHCCAR_OUT_DIR", str(tmp_path / "products"))
    settings = RunSettings()
    assert (settings.where, settings.scheduler_address) == (Where.scheduler, "tcp://127.0.0.1:8786")
    assert ProcessRequest(inputs=[str(tmp_path)]).out_dir == str(tmp_path / "products")
    assert (
        BackfillRequest(archive=str(tmp_path), start="2019-01-01", end="2019-01-02").settings.where == Where.scheduler
    )
    monkeypatch.setenv("MTHCCAR_DASK_SCHEDULER", "nonsense")
    with pytest.raises(ValueError, match="'nonsense' is not a tcp:// or tls:// address"):
        RunSettings()


def test_serve_keeps_parameters_an_operator_edited_in_the_ui(on_server, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentUpdate

    from flows.deployments import build_deployments, keep_edited_parameters

    def operational_of(deployments: list) -> object:
        return next(d for d in deployments if d.name == "operational")

    first = operational_of(build_deployments(str(tmp_path), str(tmp_path / "out")))
    deployment_id = first.apply()
    edited = {"request": {**first.parameters["request"], "settle_minutes": 17.0}}
    with get_client(sync_client=True) as client:  # as the UI's form does
        client.update_deployment(deployment_id, DeploymentUpdate(parameters=edited))
    restarted = operational_of(keep_edited_parameters(build_deployments(str(tmp_path), str(tmp_path / "moved"))))
    assert restarted.parameters == {
        "request": {"incoming": str(tmp_path), "out_dir": str(tmp_path / "moved"), "settle_minutes": 17.0}
    }
