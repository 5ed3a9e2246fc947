"""Chunk-by-chunk inference: the TorchScript artifact applied to each dask chunk of features.

Each task gets one chunk of features and quality codes, sends only the retrievable pixels to the
model in bounded batches, and returns the outputs for the chunk. The model is loaded once per
worker process (cached by the artifact's sha256, device and precision), on ``cuda`` when the worker
has one (else CPU, overridable), under ``torch.inference_mode``, with torch's intra-op threads capped
so dask's own parallelism does not oversubscribe the cores. What runs is ``models.runner``'s network
built from the artifact's weights: the same outputs, with the heads evaluated on cloudy pixels only,
in float32 or (opt-in, when the artifact's held-out check allows it) bfloat16.

The same graph runs under the threaded scheduler, a ``distributed.LocalCluster`` of processes, or
a remote scheduler; with ``resources={"GPU": 1}`` the inference tasks only go to workers started
with ``--resources GPU=1``. Workers find the artifact at the same path (the shipped models are in
the package; custom ones on a shared volume) and refuse a file whose sha256 differs.
"""

from __future__ import annotations

import logging
import os
import threading
from contextlib import nullcontext
from typing import Any

import dask
import dask.array as da
import numpy as np
import torch
import xarray as xr

from models.artifact import Artifact, ArtifactError, load_artifact, verified_artifact
from models.runner import build_runner, require_precision
from pipeline.features import mask_retrieved
from pipeline.netcdf_lock import NETCDF_LOCK  # noqa: F401  (dask workers importing this share xarray's locks too)

logger = logging.getLogger(__name__)

OUTPUTS = (
    "cloud_mask_probability",
    "cloud_phase_probability",
    "cot_probability_thin",
    "cot_probability_moderate",
    "cot_probability_thick",
    "log10_cot",
    "log10_cot_uncertainty",
)
# Pixels per model call. On CPU, 8192 is faster than 65536 (cache-resident activations: 5.8 s vs
# 10 s per 1356x1356 chunk on 2 cores) and keeps the transient memory of a chunk under ~100 MB.
DEFAULT_BATCH = {"cpu": 8_192, "cuda": 1_048_576}

_CACHE: dict[tuple[str, str, str], Any] = {}
_LOCK = threading.Lock()
CALLS = {"blocks": 0}  # chunks processed in this process (tests assert one per chunk)


def resolve_device(device: str) -> str:
    """``auto``: cuda when this process sees a GPU, else cpu; ``cuda`` without one is an error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was requested but this worker has no CUDA device")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"unknown device {device!r}: expected auto, cpu or cuda")
    return device


def worker_model(path: str, sha256: str, device: str, precision: str = "float32") -> Any:
    """The artifact's network on this worker, built once per (sha256, device, precision)."""
    key = (sha256, device, precision)
    with _LOCK:
        module = _CACHE.get(key)
        if module is None:
            artifact = verified_artifact(path) if device == "cpu" else load_artifact(path, map_location=device)
            if artifact.sha256 != sha256:
                raise ArtifactError(
                    f"{path} on this worker is not the artifact the run was planned with "
                    f"(sha256 {artifact.sha256[:12]} instead of {sha256[:12]})"
                )
            module = build_runner(artifact, device, precision)
            _CACHE[key] = module
            logger.info("loaded %s on %s in %s (pid %d)", os.path.basename(path), device, precision, os.getpid())
    return module


def infer_block(
    features: np.ndarray,
    quality: np.ndarray,
    *,
    path: str,
    sha256: str,
    device: str,
    batch_size: int,
    torch_threads: int,
    precision: str = "float32",
) -> np.ndarray:
    """Outputs (rows, cols, 7) for one chunk; NaN where the pixel is not retrieved.

    A chunk with nothing for this model (a day scan's chunks for the night model) never builds the
    network, so a process that needs no night model does not pay for one.
    """
    CALLS["blocks"] += 1
    resolved = resolve_device(device)
    rows, cols, n_features = features.shape
    flat = features.reshape(-1, n_features)
    valid = mask_retrieved(quality.reshape(-1)) & np.isfinite(flat).all(axis=1)
    out = np.full((rows * cols, len(OUTPUTS)), np.nan, dtype=np.float32)
    index = np.flatnonzero(valid)
    if not len(index):
        return out.reshape(rows, cols, len(OUTPUTS))
    if torch.get_num_threads() != torch_threads:
        torch.set_num_threads(torch_threads)
    module = worker_model(path, sha256, resolved, precision)
    batch = batch_size or DEFAULT_BATCH["cuda" if resolved.startswith("cuda") else "cpu"]
    with torch.inference_mode():
        for start in range(0, len(index), batch):
            take = index[start : start + batch]
            x = torch.from_numpy(np.ascontiguousarray(flat[take], dtype=np.float32)).to(resolved, non_blocking=True)
            result = module(x)
            stacked = torch.cat(
                [
                    result["cloud_mask_probability"][:, None],
                    result["cloud_phase_probability"][:, None],
                    result["cot_class_probability"],
                    result["log10_cot"][:, None],
                    result["log10_cot_uncertainty"][:, None],
                ],
                dim=1,
            )
            out[take] = stacked.float().cpu().numpy()
    return out.reshape(rows, cols, len(OUTPUTS))


def compute_context(resources: dict[str, float] | None) -> Any:
    """Config for computing a graph whose inference tasks carry resource annotations.

    dask's low-level task fusion merges the inference tasks with their neighbours and drops the
    annotations, so it is switched off while such a graph is computed.
    """
    return dask.config.set({"optimization.fuse.active": False}) if resources else nullcontext()


def _bands_for_cores(x: da.Array, quality: da.Array, cores: int) -> tuple[da.Array, da.Array]:
    """A scene of fewer chunks than cores (a Meso scan is one 678-pixel chunk) is inferred in row
    bands, one per core, so that every core runs the model; the outputs return to the scene's chunks."""
    if x.numblocks[0] * x.numblocks[1] >= cores or x.shape[0] < 2 * cores:
        return x, quality
    rows = -(-x.shape[0] // cores)
    return x.rechunk({0: rows, 1: -1}), quality.rechunk({0: rows, 1: -1})


def run_inference(
    features: xr.Dataset,
    artifact: Artifact,
    device: str = "auto",
    batch_size: int = 0,
    torch_threads: int = 1,
    resources: dict[str, float] | None = None,
    precision: str = "float32",
) -> xr.Dataset:
    """Lazy model outputs (y, x) for a features dataset; nothing is computed here."""
    require_precision(artifact, precision)  # refused in one sentence before any chunk is read
    x = features["features"].data
    quality = features["retrieval_quality"].data
    if x.shape[-1] != artifact.spec.size:
        raise ArtifactError(f"{artifact.path.name} takes {artifact.spec.size} features, the scene gives {x.shape[-1]}")
    if x.numblocks[2] != 1:
        x = x.rechunk({2: -1})
    scene_chunks = x.chunks[:2]
    x, quality = _bands_for_cores(x, quality, os.cpu_count() or 1)
    kwargs = {
        "path": str(artifact.path.resolve()),
        "sha256": artifact.sha256,
        "device": device,
        "batch_size": batch_size,
        "torch_threads": max(1, torch_threads),
        "precision": precision,
    }
    with dask.annotate(resources=resources) if resources else nullcontext():
        outputs = da.map_blocks(
            infer_block,
            x,
            quality[:, :, None],
            chunks=(x.chunks[0], x.chunks[1], (len(OUTPUTS),)),
            dtype=np.float32,
            meta=np.empty((0, 0, 0), dtype=np.float32),
            token=f"mthccar-infer-{artifact.sha256[:8]}",  # a prefix: the keys still hash the inputs
            **kwargs,
        )
    if outputs.chunks[:2] != scene_chunks:
        outputs = outputs.rechunk((*scene_chunks, (len(OUTPUTS),)))
    data_vars = {name: (("y", "x"), outputs[:, :, i]) for i, name in enumerate(OUTPUTS)}
    return xr.Dataset(data_vars, attrs={"model_sha256": artifact.sha256, "model_name": artifact.name})
