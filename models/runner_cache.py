"""Compiled inference networks kept on disk, so that a new process loads one instead of compiling it.

``torch.jit.script`` of the cloudy-heads network takes 0.3-0.5 s on two cores, paid by every
process that runs a model: each flow run of a granule is a new process, and on a Meso scan that is
a tenth of the run. Loading the same compiled network back takes 0.04 s. A network is stored once
per (artifact sha256, precision, torch version, source of the modules it is compiled from), under
``$MTHCCAR_RUNNER_CACHE`` (``off`` disables it), by default ``runners/`` in the project's cache
directory. Files are written atomically (``models.fileio``), so a concurrent process never loads
half a file; one that cannot be read is rebuilt. The caller still checks a float32
network against the artifact's own forward on every load (``models.runner``), so a stale or damaged
file can cost time but never change an output.
"""

from __future__ import annotations

import hashlib
import logging
import os
from functools import cache
from pathlib import Path
from typing import Any

import torch

from models import mthccar
from models.earth import cache_dir
from models.fileio import atomic_output

logger = logging.getLogger(__name__)

CACHE_ENV = "MTHCCAR_RUNNER_CACHE"


def cache_root() -> Path | None:
    """Where compiled networks are kept; None when caching is off."""
    configured = os.environ.get(CACHE_ENV, "")
    if configured.lower() == "off":
        return None
    return Path(configured) if configured else cache_dir() / "runners"


@cache
def _code_key() -> str:
    """What the compiled network depends on besides the weights: torch and the network's source."""
    from models import runner

    digest = hashlib.sha256(torch.__version__.encode())
    for module in (runner, mthccar):
        digest.update(Path(str(module.__file__)).read_bytes())
    return digest.hexdigest()[:16]


def runner_path(root: Path, artifact_sha256: str, precision: str) -> Path:
    return root / f"{artifact_sha256[:24]}-{precision}-{_code_key()}.pt"


def load_runner(artifact_sha256: str, precision: str) -> Any | None:
    """The stored network of an artifact at a precision (on the CPU); None when there is none."""
    root = cache_root()
    if root is None:
        return None
    path = runner_path(root, artifact_sha256, precision)
    if not path.exists():
        return None
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, OSError, ValueError) as err:
        logger.warning("the cached network %s cannot be read (%s); compiling it again", path, err)
        return None


def store_runner(artifact_sha256: str, precision: str, network: Any) -> Path | None:
    """Keep a compiled (CPU) network for later processes; None when the cache cannot be written."""
    root = cache_root()
    if root is None:
        return None
    path = runner_path(root, artifact_sha256, precision)
    try:
        with atomic_output(path) as staging:  # the last writer wins; every writer's file is the same network
            torch.jit.save(network, str(staging))
    except (RuntimeError, OSError) as err:
        logger.warning("could not store the compiled network in %s (%s); it is compiled in each process", path, err)
        return None
    logger.info("stored the compiled network %s", path)
    return path


def warm() -> list[Path]:
    """Compile and keep the float32 network of every shipped model (the container images run this at
    build time, so that no granule pays for compiling); the files it wrote or found."""
    from models.artifact import load_artifact
    from models.registry import default_artifacts
    from models.runner import runner_network

    root = cache_root()
    if root is None:
        raise SystemExit(f"{CACHE_ENV} is off: there is no network cache to fill")
    paths = []
    for artifact_path in default_artifacts():
        artifact = load_artifact(artifact_path)
        runner_network(artifact)
        path = runner_path(root, artifact.sha256, "float32")
        if not path.is_file():
            raise SystemExit(f"the network of {artifact_path.name} could not be stored in {root}")
        paths.append(path)
    return paths


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for stored in warm():
        logger.info("ready: %s", stored)
