"""A shared deployment: UI-submitted paths confined to configured roots, models trusted from a pinned set.

Requests go through a real temporary Prefect server, as a UI run would: refused before any work
with one sentence, or run when allowed.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.exceptions import ParameterTypeError
from pydantic import ValidationError
from typer.testing import CliRunner

from models.artifact import file_sha256
from pipeline.access import AccessError, AccessPolicy

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def on_server(prefect_server: str) -> Iterator[str]:
    from flows.server import using_server

    with using_server(prefect_server):
        yield prefect_server


@pytest.fixture(scope="module")
def area(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """data/ (one scan), products/, models/, and elsewhere/ outside all of them."""
    from models.synthetic.l1b_abi import write_abi_scene

    root = tmp_path_factory.mktemp("shared_area")
    places = {name: root / name for name in ("data", "products", "models", "elsewhere")}
    for path in places.values():
        path.mkdir()
    write_abi_scene(
        places["data"] / "scan",
        dt.datetime(2019, 10, 27, 20, 0, 27, 500000),
        "M1",
        "G17",
        ["C01", "C03", "C04", "C05", "C06"],
        seed=3,
        quick=True,
    )
    (places["elsewhere"] / "secret").mkdir()
    (places["data"] / "link").symlink_to(places["elsewhere"] / "secret")
    return places


@pytest.fixture
def roots(area: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.setenv("MTHCCAR_INPUT_ROOTS", str(area["data"]))
    monkeypatch.setenv("MTHCCAR_OUTPUT_ROOTS", str(area["products"]))
    monkeypatch.setenv("MTHCCAR_MODEL_ROOTS", str(area["models"]))
    monkeypatch.setenv("MTHCCAR_URL_PREFIXES", "s3://noaa-goes17/")
    return area


def _refused(request: dict, match: str) -> None:
    from flows.process import process_granule

    with pytest.raises(ParameterTypeError, match=match):
        process_granule(request=request)


def test_paths_outside_the_roots_are_refused_before_any_work(on_server, roots: dict[str, Path]) -> None:
    scan, out = roots["data"] / "scan", roots["products"] / "run"
    escape = f"{roots['data']}/../elsewhere/secret"
    _refused({"inputs": [escape], "out_dir": str(out)}, r"resolves to .*elsewhere/secret, outside the allowed folders")
    _refused({"inputs": [str(roots["data"] / "link")], "out_dir": str(out)}, "outside the allowed folders")
    _refused({"inputs": [str(scan)], "out_dir": str(roots["elsewhere"] / "out")}, r"out_dir .* outside the allowed")
    _refused({"inputs": ["/etc"], "out_dir": str(out)}, r"input '/etc' resolves to /etc, outside the allowed folders")
    _refused({"inputs": ["s3://another-bucket/x.nc"], "out_dir": str(out)}, "not under an allowed URL prefix")
    assert not out.exists()
    assert list(roots["elsewhere"].iterdir()) == [roots["elsewhere"] / "secret"]
    allowed = AccessPolicy.from_env()
    allowed.check_input("s3://noaa-goes17/ABI-L1b-RadM/2019/300/20/x.nc")  # an allowed bucket passes
    with pytest.raises(AccessError, match="not under an allowed URL prefix"):
        allowed.check_input("s3://noaa-goes17-lookalike/x.nc")  # a prefix ends at a path boundary
    with pytest.raises(AccessError, match="state_file"):
        allowed.check_output(str(roots["elsewhere"] / "state.json"), "state_file")


def test_backfill_and_operational_requests_are_confined_too(roots: dict[str, Path]) -> None:
    from flows.parameters import BackfillRequest, OperationalRequest

    with pytest.raises(ValidationError, match=r"archive .* outside the allowed folders"):
        BackfillRequest(archive=str(roots["elsewhere"]), start="2019-01-01", end="2019-01-02")
    with pytest.raises(ValidationError, match=r"report_file .* outside the allowed folders"):
        BackfillRequest(
            archive=str(roots["data"]),
            start="2019-01-01",
            end="2019-01-02",
            out_dir=str(roots["products"]),
            report_file=str(roots["elsewhere"] / "r.json"),
        )
    with pytest.raises(ValidationError, match=r"state_file .* outside the allowed folders"):
        OperationalRequest(
            incoming=str(roots["data"]), out_dir=str(roots["products"]), state_file=str(roots["elsewhere"] / "s")
        )


def test_only_shipped_or_registered_models_run(
    on_server, roots: dict[str, Path], tiny_artifacts: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.process import process_granule

    model = roots["models"] / "tiny_abi_noc02.pt"
    model.write_bytes(tiny_artifacts["abi_noc02"].read_bytes())
    request = {"inputs": [str(roots["data"] / "scan")], "out_dir": str(roots["products"] / "models")}
    with_model = {**request, "settings": {"model": str(model)}}
    _refused(
        with_model, r"tiny_abi_noc02\.pt \(sha256 [0-9a-f]{16}\.\.\.\) is not a shipped model and is not registered"
    )
    registry = roots["elsewhere"] / "registry.json"
    registry.write_text(json.dumps({"tiny_abi_noc02": file_sha256(model)}))
    registry.chmod(0o664)
    monkeypatch.setenv("MTHCCAR_MODEL_REGISTRY", str(registry))
    _refused(with_model, "is writable by others than its owner")
    registry.chmod(0o644)
    outcome = process_granule(request=with_model)
    assert outcome[0]["status"] == "processed"
    assert outcome[0]["model"] == "tiny_abi_noc02"
    outside = roots["elsewhere"] / "tiny.pt"
    outside.write_bytes(model.read_bytes())  # registered bytes, but not under the model roots
    _refused({**request, "settings": {"model": str(outside)}}, r"model .*tiny\.pt.* outside the allowed folders")


def test_the_cli_warns_about_an_unregistered_model_and_honours_roots_when_set(
    area: dict[str, Path], tiny_artifacts: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.cli import app

    monkeypatch.delenv("MTHCCAR_MODEL_REGISTRY", raising=False)
    out = area["elsewhere"] / "cli"
    args = ["process", str(area["data"] / "scan"), "--out", str(out), "--no-progress"]
    result = CliRunner().invoke(app, [*args, "--model", str(tiny_artifacts["abi_noc02"])])
    assert result.exit_code == 0, result.output
    assert "warning: model" in result.output
    assert "is not registered" in result.output
    monkeypatch.setenv("MTHCCAR_INPUT_ROOTS", str(area["data"]))
    monkeypatch.setenv("MTHCCAR_OUTPUT_ROOTS", str(area["products"]))
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 1
    assert "error: --out" in refused.output
    assert "outside the allowed folders" in refused.output
