"""Shared fixtures: small reference-schema files, trained toy models, the real granules."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline.real_scenes import granules_root
from tests.support.reference_schema import write_reference_file

# The order in which ``make test`` hands whole modules to its two workers: the long ones first, the
# short ones fill the gaps (``--durations`` with ``-n 2``, 2026-12-02: operations 303 s, flows 163 s,
# products 155 s, ingest 150 s, server 80 s, runner 80 s, gridded 57 s, of 1,184 s). The server
# module goes ahead of the longer products and ingest modules: by test count, xdist's default, its
# one 80-second test started last and one worker ran alone for its whole length.
HEAVY_MODULES_FIRST = (
    "test_operations",
    "test_flows",
    "test_server",
    "test_products",
    "test_ingest",
    "test_runner",
    "test_gridded",
    "test_train_export",
    "test_validate",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Heavy modules first (see HEAVY_MODULES_FIRST), the rest in their collected order."""
    rank = {name: position for position, name in enumerate(HEAVY_MODULES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))


def _built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """A folder that ``build`` fills once per test run, shared by every xdist worker of the run.

    Session fixtures are per worker; the expensive ones (rendered granules, trained toy models)
    are read-only to the tests, so the second worker waits for the first one's files instead of
    making its own. A file lock serialises the build; a marker says it completed.
    """
    if "PYTEST_XDIST_WORKER" not in os.environ:  # no xdist: this process is the whole run
        target = tmp_path_factory.mktemp(name)
        build(target)
        return target
    shared = tmp_path_factory.getbasetemp().parent  # the run's folder, above each worker's own
    target, done = shared / name, shared / f"{name}.done"
    with (shared / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            target.mkdir(exist_ok=True)
            build(target)
            done.touch()
    return target


@pytest.fixture(scope="session", autouse=True)
def geometry_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixed-grid geometry cache of this test session (never the user's ~/.cache); flows started
    in child processes inherit it through the environment."""
    root = tmp_path_factory.mktemp("geometry_cache")
    os.environ["MTHCCAR_GEOMETRY_CACHE"] = str(root)
    return root


@pytest.fixture(scope="session", autouse=True)
def network_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The compiled-network cache of this test session (never the user's ~/.cache)."""
    root = tmp_path_factory.mktemp("runners")
    os.environ["MTHCCAR_RUNNER_CACHE"] = str(root)
    return root


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    """One real ``prefect server start`` (loopback, throw-away SQLite) for every module that needs a
    server: starting one takes 10-15 s on two cores. Tests that serve deployments keep their own."""
    from flows.server import temporary_server

    with temporary_server(ui=False) as url:
        yield url


@pytest.fixture(scope="session")
def granules() -> Path:
    root = granules_root()
    if not (root / "abi").is_dir():
        pytest.fail(f"real granules not found under {root}; set MTHCCAR_GRANULES")
    return root


@pytest.fixture(scope="session")
def toy_reference_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6000 toy samples with OCI, VIIRS and ABI reflectances."""
    root = _built_once(
        tmp_path_factory,
        "toy",
        lambda target: write_reference_file(target / "toy_reference.nc", npoints=6000, seed=3),
    )
    return root / "toy_reference.nc"


@pytest.fixture(scope="session")
def trained_viirs(tmp_path_factory: pytest.TempPathFactory, toy_reference_file: Path):
    """A VIIRS model trained for a few epochs on the toy file, and its exported artifact."""
    from models.training.export import export_checkpoint
    from models.training.train import TrainConfig, train

    out = tmp_path_factory.mktemp("viirs_run")
    cfg = TrainConfig(sensor="viirs", epochs=6, batch_size=256, patience=6)
    result = train(toy_reference_file, out, cfg, progress=False)
    artifact = out / "viirs.pt"
    export_checkpoint(result.best_checkpoint, artifact)
    return result, artifact


TINY_VARIANTS = {
    "abi": ("abi", None),
    "abi_noc02": ("abi", ["C01", "C03", "C04", "C05", "C06"]),
    "viirs": ("viirs", None),
    "oci": ("oci", None),
}


def _train_tiny_artifacts(out: Path, reference: Path) -> None:
    from models.artifact import read_metadata
    from models.registry import ARTIFACTS
    from models.training.export import export_checkpoint
    from models.training.train import TrainConfig, train

    for name, (sensor, bands) in TINY_VARIANTS.items():
        result = train(reference, out / name, TrainConfig(sensor=sensor, bands=bands, epochs=1), progress=False)
        # the version of the shipped model it stands in for (models are rebuilt one at a time, so
        # versions differ): a tiny model's product then has the same name as that model's
        version = read_metadata(ARTIFACTS / f"mthccar_{name}.pt")["model_version"]
        export_checkpoint(result.best_checkpoint, out / f"{name}.pt", version, name=f"tiny_{name}")


@pytest.fixture(scope="session")
def tiny_artifacts(tmp_path_factory: pytest.TempPathFactory, toy_reference_file: Path) -> dict[str, Path]:
    """Artifacts trained for one epoch on the toy file (their skill does not matter, their specs do)."""
    out = _built_once(
        tmp_path_factory, "tiny_artifacts", lambda target: _train_tiny_artifacts(target, toy_reference_file)
    )
    return {name: out / f"{name}.pt" for name in TINY_VARIANTS}


def _write_synthetic_granules(root: Path) -> None:
    from models.synthetic.l1b_abi import write_abi_scene
    from models.synthetic.l1b_oci import write_oci_granule
    from models.synthetic.l1b_viirs import write_viirs_granule

    time = dt.datetime(2019, 10, 27, 20, 30)
    write_viirs_granule(root / "viirs_l1b", time, lines=48, pixels=80, seed=1)
    write_viirs_granule(root / "viirs_sdr", time, file_format="sdr", lines=48, pixels=80, seed=1)
    write_oci_granule(root / "oci", dt.datetime(2024, 5, 1, 19, 0), lines=32, pixels=40, seed=2)
    write_abi_scene(
        root / "abi",
        dt.datetime(2019, 10, 27, 20, 0, 27, 500000),
        "M1",
        "G17",
        ["C01", "C03", "C04", "C05", "C06"],
        seed=4,
        block=2,  # radiative transfer once per 2 x 2 pixels (truth alike): 6 s instead of 19 s
    )


@pytest.fixture(scope="session")
def synthetic_granules(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small synthetic granules in the real VIIRS L1B, VIIRS SDR and OCI L1B formats, and an ABI Meso scan."""
    root = _built_once(tmp_path_factory, "synthetic", _write_synthetic_granules)
    return {"viirs_l1b": root / "viirs_l1b", "viirs_sdr": root / "viirs_sdr", "oci": root / "oci", "abi": root / "abi"}
