"""Shared fixtures: small reference-schema files, trained toy models, the real granules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.reference_schema import write_reference_file

REPO = Path(__file__).resolve().parents[1]


def granules_root() -> Path:
    """Where the real granules live: $MTHCCAR_GRANULES, else ../shared/granules beside the repo."""
    return Path(os.environ.get("MTHCCAR_GRANULES", REPO.parent / "shared" / "granules"))


@pytest.fixture(scope="session")
def granules() -> Path:
    root = granules_root()
    if not (root / "abi").is_dir():
        pytest.fail(f"real granules not found under {root}; set MTHCCAR_GRANULES")
    return root


@pytest.fixture(scope="session")
def toy_reference_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6000 toy samples with OCI, VIIRS and ABI reflectances."""
    return write_reference_file(tmp_path_factory.mktemp("toy") / "toy_reference.nc", npoints=6000, seed=3)


@pytest.fixture(scope="session")
def trained_viirs(tmp_path_factory: pytest.TempPathFactory, toy_reference_file: Path):
    """A VIIRS model trained for a few epochs on the toy file, and its exported artifact."""
    from models.export import export_checkpoint
    from models.train import TrainConfig, train

    out = tmp_path_factory.mktemp("viirs_run")
    cfg = TrainConfig(sensor="viirs", epochs=6, batch_size=256, patience=6)
    result = train(toy_reference_file, out, cfg, progress=False)
    artifact = out / "viirs.pt"
    export_checkpoint(result.best_checkpoint, artifact)
    return result, artifact
