"""Prefect flows on the session's temporary server: on-demand, operational, backfill, retries, parameters."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from flows import process as process_module
from flows import tasks as tasks_module
from flows.backfill import archive_directories, backfill
from flows.operational import operational
from flows.parameters import BackfillRequest, OperationalRequest, ProcessRequest, RunSettings
from flows.process import process_granule
from models.artifact import file_sha256
from pipeline import process as pipeline_process
from pipeline.granules import single_granule
from pipeline.ingest import IngestError

SCAN_TIMES = [
    dt.datetime(2019, 10, 27, 20, 0, 27, 500000),
    dt.datetime(2019, 10, 27, 21, 0, 27, 500000),
    dt.datetime(2019, 10, 27, 21, 30, 27, 500000),
]
NO_C02 = ["C01", "C03", "C04", "C05", "C06"]


@pytest.fixture(scope="module", autouse=True)
def harness(prefect_server: str):
    from flows.server import using_server

    with using_server(prefect_server):
        yield


@pytest.fixture(scope="module")
def quick_scans(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three Meso-1 scans (quick renderer: real format, plausible radiances), one directory each."""
    from models.synthetic.l1b_abi import write_abi_scene

    root = tmp_path_factory.mktemp("scans")
    dirs = []
    for i, time in enumerate(SCAN_TIMES):
        target = root / f"scan{i}"
        write_abi_scene(target, time, "M1", "G17", NO_C02, seed=20 + i, quick=True)
        dirs.append(target)
    return dirs


def _l1b(directory: Path) -> list[Path]:
    return sorted(directory.glob("OR_ABI-L1b-*.nc"))


def _copy(files: list[Path], target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for path in files:
        shutil.copy(path, target / path.name)


def test_on_demand_flow_processes_then_skips_then_forces(
    quick_scans: list[Path], tmp_path: Path, tiny_artifacts: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    request = ProcessRequest(inputs=[str(quick_scans[0])], out_dir=str(tmp_path))
    first = process_granule(request)
    assert [o["status"] for o in first] == ["processed"]
    product = Path(first[0]["product"])
    assert product.exists()
    assert Path(first[0]["quicklook"]).exists()
    assert first[0]["model"] == "mthccar_abi_noc02"
    again = process_granule(request)
    assert again[0]["status"] == "skipped"
    assert again[0]["product"] == str(product)
    forced = process_granule(request.model_copy(update={"force": True}))
    assert forced[0]["status"] == "processed"
    assert sorted(p.name for p in tmp_path.glob("MTHCCAR-L2-CLD_*.nc")) == [Path(forced[0]["product"]).name]
    registry = tmp_path.parent / f"{tmp_path.name}-registry.json"  # runs load registered models only
    registry.write_text(json.dumps({"tiny_abi_noc02": file_sha256(tiny_artifacts["abi_noc02"])}))
    registry.chmod(0o644)
    monkeypatch.setenv("MTHCCAR_MODEL_REGISTRY", str(registry))
    other_model = request.model_copy(update={"settings": RunSettings(model=str(tiny_artifacts["abi_noc02"]))})
    with pytest.raises(process_module.GranuleFailuresError, match="is a different product of the same granule"):
        process_granule(other_model)
    assert [p.name for p in tmp_path.glob("MTHCCAR-L2-CLD_*.nc")] == [Path(forced[0]["product"]).name]


def test_run_report_is_a_markdown_artifact(quick_scans: list[Path], tmp_path: Path) -> None:
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    process_granule(ProcessRequest(inputs=[str(quick_scans[1])], out_dir=str(tmp_path)))

    async def latest() -> str:
        async with get_client() as client:
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["mthccar-process-report"])),
                sort=ArtifactSort.CREATED_DESC,
            )
            return str(artifacts[0].data)

    report = asyncio.run(latest())
    assert "| granule | status |" in report
    assert "abi_G17_M1_20191027T210027" in report
    assert "_quicklook.png" in report


def test_bad_parameters_are_rejected_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"input '/no/such/granule' does not exist"):
        ProcessRequest(inputs=["/no/such/granule"], out_dir=str(tmp_path))
    with pytest.raises(ValidationError, match="chunk_size"):
        RunSettings(chunk_size=10)
    with pytest.raises(ValidationError, match="precision"):
        RunSettings(precision="float16")
    with pytest.raises(ValidationError, match="where=scheduler needs a scheduler_address"):
        RunSettings(where="scheduler")
    with pytest.raises(ValidationError, match=r"model artifact '/nope\.pt' does not exist"):
        RunSettings(model="/nope.pt")
    with pytest.raises(ValidationError, match="end 2019-01-01T00:00:00 is before start"):
        BackfillRequest(archive=str(tmp_path), start="2019-01-02T00:00:00", end="2019-01-01T00:00:00")
    with pytest.raises(ValidationError, match="sensor"):
        ProcessRequest(inputs=[str(tmp_path)], sensor="modis")
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    for request in (ProcessRequest, OperationalRequest, BackfillRequest):
        fields = {"inputs": [str(tmp_path)], "incoming": str(tmp_path), "archive": str(tmp_path)}
        fields.update(start="2019-01-01T00:00:00", end="2019-01-02T00:00:00", out_dir=str(a_file))
        wanted = {k: v for k, v in fields.items() if k in request.model_fields}
        with pytest.raises(ValidationError, match=r"out_dir '.*a_file' is a file, not a directory"):
            request(**wanted)
    from prefect.exceptions import ParameterTypeError

    with pytest.raises(ParameterTypeError, match="does not exist"):
        process_granule(request={"inputs": ["/no/such/granule"], "out_dir": str(tmp_path / "out")})
    assert not (tmp_path / "out").exists()


def test_transient_failures_are_retried_and_bad_input_is_not(
    quick_scans: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert tasks_module.is_transient(TimeoutError())
    assert tasks_module.is_transient(ConnectionResetError())
    assert tasks_module.is_transient(OSError(5, "Input/output error"))
    assert not tasks_module.is_transient(FileNotFoundError(2, "gone"))
    assert not tasks_module.is_transient(IngestError("bad file"))
    calls = {"n": 0}
    real = pipeline_process.stage_product

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionResetError("the archive dropped the connection")
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline_process, "stage_product", flaky)
    monkeypatch.setattr(tasks_module.stage_task, "retry_delay_seconds", [0, 0, 0])
    outcome = process_granule(ProcessRequest(inputs=[str(quick_scans[2])], out_dir=str(tmp_path / "flaky")))
    assert outcome[0]["status"] == "processed"
    assert calls["n"] == 2

    calls["n"] = 0

    def broken(*args, **kwargs):
        calls["n"] += 1
        raise IngestError("C05 file is truncated")

    monkeypatch.setattr(pipeline_process, "stage_product", broken)
    with pytest.raises(process_module.GranuleFailuresError, match="C05 file is truncated"):
        process_granule(ProcessRequest(inputs=[str(quick_scans[2])], out_dir=str(tmp_path / "broken")))
    assert calls["n"] == 1


def test_operational_scan_waits_for_a_late_scan_and_resumes(quick_scans: list[Path], tmp_path: Path) -> None:
    incoming, out = tmp_path / "incoming", tmp_path / "products"
    _copy(_l1b(quick_scans[0]), incoming)
    late = _l1b(quick_scans[1])
    _copy([p for p in late if "C05_" not in p.name and "C06_" not in p.name], incoming)  # still arriving
    # no C02 in these scans: complete for the no-C02 model once settled (here at once)
    request = OperationalRequest(incoming=str(incoming), out_dir=str(out), settle_minutes=0)
    first = operational(request)
    assert [o["granule"] for o in first["outcomes"]] == ["abi_G17_M1_20191027T200027"]
    assert first["waiting"]
    assert first["waiting"][0].startswith("abi_G17_M1_20191027T210027 (lacks bands C02, C05, C06")
    state = json.loads(Path(first["state_file"]).read_text())
    assert list(state["done"]) == ["abi_G17_M1_20191027T200027"]
    _copy([p for p in late if "C05_" in p.name or "C06_" in p.name], incoming)  # the rest arrives
    second = operational(request)
    assert [o["granule"] for o in second["outcomes"]] == ["abi_G17_M1_20191027T210027"]
    assert second["outcomes"][0]["status"] == "processed"
    assert not second["waiting"]
    third = operational(request)  # a restart: nothing left to do
    assert third["outcomes"] == []
    assert len(list(out.glob("MTHCCAR-L2-CLD_*.nc"))) == 2


def _goes_archive(scans: list[Path], root: Path) -> Path:
    for scan in scans:
        granule = single_granule([scan])
        hour = (
            root / "ABI-L1b-RadM" / f"{granule.start_time:%Y}" / f"{granule.start_time:%j}" / f"{granule.start_time:%H}"
        )
        _copy(_l1b(scan), hour)
    return root


def test_archive_directories_follow_the_goes_layout(tmp_path: Path) -> None:
    request = BackfillRequest(
        archive=str(tmp_path), start="2019-10-27T20:10:00", end="2019-10-27T22:00:00", product="ABI-L1b-RadM"
    )
    assert [d.removeprefix(str(tmp_path)) for d in archive_directories(request)] == [
        "/ABI-L1b-RadM/2019/300/20",
        "/ABI-L1b-RadM/2019/300/21",
        "/ABI-L1b-RadM/2019/300/22",
    ]


# the default run resumes a backfill after a real kill -9 (tests/test_operations.py); this in-process
# interruption, the same plan through KeyboardInterrupt, runs with the slow tests
@pytest.mark.slow
def test_backfill_resumes_after_an_interrupted_run(
    quick_scans: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = _goes_archive(quick_scans, tmp_path / "archive")
    out = tmp_path / "products"
    request = BackfillRequest(
        archive=str(archive),
        start="2019-10-27T20:00:00",
        end="2019-10-27T21:59:59",
        product="ABI-L1b-RadM",
        out_dir=str(out),
        max_concurrency=1,
    )
    # the first run dies in the middle of writing its second product (as a killed process would)
    real = process_module.run_granule
    seen = []

    def dies_on_second(ref, options, quicklook=True):
        seen.append(ref["id"])
        if len(seen) == 2:
            (out / ".MTHCCAR-L2-CLD_G17_abi_M1_s20191027T210027.nc.pid999999@nohost.x.nc.tmp").write_text("half")
            raise KeyboardInterrupt
        return real(ref, options, quicklook)

    monkeypatch.setattr(process_module, "run_granule", dies_on_second)
    with pytest.raises(KeyboardInterrupt):
        backfill(request)
    monkeypatch.setattr(process_module, "run_granule", real)
    assert len(list(out.glob("MTHCCAR-L2-CLD_*.nc"))) == 1
    report = backfill(request)
    assert report["processed"] == 2
    assert report["skipped"] == 1
    assert report["failed"] == 0
    products = sorted(p.name for p in out.glob("MTHCCAR-L2-CLD_*.nc"))
    assert len(products) == 3
    assert len({p.split("_c")[0] for p in products}) == 3
    saved = json.loads(Path(report["report"]).read_text())
    assert [o["granule"] for o in saved["skipped"]] == ["abi_G17_M1_20191027T200027"]


def test_backfill_reports_failures_with_reasons(quick_scans: list[Path], tmp_path: Path) -> None:
    archive = _goes_archive(quick_scans[:1], tmp_path / "archive")
    broken = next((archive / "ABI-L1b-RadM").rglob("*C05_*.nc"))
    broken.write_bytes(broken.read_bytes()[:5000])
    report = backfill(
        BackfillRequest(
            archive=str(archive),
            start="2019-10-27T20:00:00",
            end="2019-10-27T20:59:59",
            product="ABI-L1b-RadM",
            out_dir=str(tmp_path / "out"),
        )
    )
    assert report["failed"] == 1
    saved = json.loads(Path(report["report"]).read_text())
    assert "is truncated or corrupt" in saved["failed"][0]["reason"]


def test_flow_runs_on_a_local_cluster_of_two_processes(quick_scans: list[Path], tmp_path: Path) -> None:
    settings = RunSettings(where="local_cluster", workers=2, chunk_size=226)
    outcome = process_granule(ProcessRequest(inputs=[str(quick_scans[0])], out_dir=str(tmp_path), settings=settings))
    assert outcome[0]["status"] == "processed"
    threaded = process_granule(
        ProcessRequest(
            inputs=[str(quick_scans[0])], out_dir=str(tmp_path / "threads"), settings=RunSettings(chunk_size=226)
        )
    )
    import numpy as np
    import xarray as xr

    with xr.open_dataset(outcome[0]["product"]) as a, xr.open_dataset(threaded[0]["product"]) as b:
        assert set(a.variables) == set(b.variables)
        for name in a.variables:  # every variable, as the flow wrote it from the cluster and from threads
            np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=str(name))


def test_prefect_yaml_names_real_flows() -> None:
    import importlib

    import yaml

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "prefect.yaml").read_text())
    names = {}
    for deployment in config["deployments"]:
        path, attribute = deployment["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        names[deployment["name"]] = getattr(module, attribute).name
        assert deployment["enforce_parameter_schema"] is True
    assert names == {
        "on-demand": "mthccar-process-granule",
        "operational": "mthccar-operational",
        "backfill": "mthccar-backfill",
    }
    retries = {
        d["name"]: getattr(importlib.import_module("flows.deployments"), d["entrypoint"].split(":")[1]).retries
        for d in config["deployments"]
    }
    assert retries == {"on-demand": 0, "operational": 2, "backfill": 2}  # the flows serve deploys too
    operational_request = config["deployments"][1]["parameters"]["request"]
    OperationalRequest.model_validate({**operational_request, "incoming": "/"})
    from flows.deployments import PREFECT_SERVER_VERSION, PREFECT_YAML, prefect_yaml

    assert PREFECT_YAML.read_text() == prefect_yaml(), "run python -m flows.deployments --write-prefect-yaml"
    compose = (PREFECT_YAML.parent / "docker" / "compose.yaml").read_text()
    assert f"prefecthq/prefect:{PREFECT_SERVER_VERSION}-" in compose  # the version prefect.yaml names


def test_the_cli_and_a_flow_run_the_same_plan_stage_and_publish(
    quick_scans: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.process import ProcessOptions
    from pipeline.process import process_granule as cli_process

    calls: list[tuple[str, object]] = []

    def spying(name: str):
        real = getattr(pipeline_process, name)

        def spy(*args, **kwargs):
            result = real(*args, **kwargs)
            calls.append((name, result))
            return result

        return spy

    for name in ("plan", "stage", "publish"):
        monkeypatch.setattr(pipeline_process, name, spying(name))
    cli_process(single_granule([quick_scans[0]]), ProcessOptions(out_dir=tmp_path / "cli"))
    cli_calls, calls[:] = list(calls), []
    process_granule(ProcessRequest(inputs=[str(quick_scans[0])], out_dir=str(tmp_path / "flow")))
    assert [c[0] for c in cli_calls] == [c[0] for c in calls] == ["plan", "stage", "publish"]
    cli_plan, flow_plan = cli_calls[0][1], calls[0][1]
    assert (cli_plan.granule, cli_plan.model, cli_plan.model_sha256) == (
        flow_plan.granule,
        flow_plan.model,
        flow_plan.model_sha256,
    )
    assert cli_plan.out_dir != flow_plan.out_dir
