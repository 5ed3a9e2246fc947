"""Model artifacts: one TorchScript file per model with its metadata embedded.

``forward(x)`` takes **scaled** features ``(N, F)`` float32 in the order of the embedded feature
spec and returns a dict of ``cloud_mask_probability`` (P(cloudy), N), ``cloud_phase_probability``
(P(ice | cloudy), N), ``cot_class_probability`` (N, 3: thin, moderate, thick) and ``log10_cot`` (N).

The metadata (``_extra_files['mthccar.json']``) holds the sensor, the feature spec with its scaling
numbers, the attention mode, model version, training-data description, metrics and the sha256 of
the weights. ``load_artifact`` verifies all of it and refuses a corrupted or mismatched file with one
sentence. This module is all that inference needs from ``models``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import torch

from models import MODEL_NAME
from models.fileio import atomic_output
from models.mthccar import interval95_factor
from models.spec import FeatureSpec, SpecError

logger = logging.getLogger(__name__)

METADATA_NAME = "mthccar.json"
ARTIFACT_FORMAT = "mthccar-artifact"
ARTIFACT_FORMAT_VERSION = 1
OUTPUT_NAMES = (
    "cloud_mask_probability",
    "cloud_phase_probability",
    "cot_class_probability",
    "log10_cot",
    "log10_cot_uncertainty",
)
# calibrated P(cloudy) splits of the four-level mask (clear, probably clear, probably cloudy,
# cloudy): the split NOAA's enterprise cloud mask applies to its cloud probability for the ABI
# Clear Sky Mask levels (Heidinger et al., ABI Cloud Mask ATBD)
FOUR_LEVEL_MASK_THRESHOLDS = (0.1, 0.5, 0.9)
PARITY_TOLERANCE = 1e-5


class ArtifactError(ValueError):
    """A model artifact is missing, corrupted, or does not fit the data it is asked to process."""


@contextmanager
def torchscript() -> Iterator[None]:
    """TorchScript is the chosen artifact format; silence torch's deprecation notice for it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning)
        yield


def weights_sha256(module: torch.nn.Module) -> str:
    """sha256 over the parameter and buffer names and bytes, in sorted order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def probe_inputs(n_features: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.cat(
        [torch.zeros(1, n_features), torch.ones(1, n_features), torch.rand(254, n_features, generator=generator)]
    )


def output_difference(
    a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], scale_floor: float | None = None
) -> float:
    """Largest difference between two networks' outputs, divided by ``max(scale_floor, |a|)`` when a
    floor is given (absolute below it, relative above); infinite where only one of them is NaN."""
    # NaN where both are NaN (a model without an uncertainty says so in both) counts as equal
    if any(bool((a[k].isnan() != b[k].isnan()).any()) for k in OUTPUT_NAMES):
        return float("inf")
    worst = 0.0
    for name in OUTPUT_NAMES:
        difference = (a[name] - b[name]).abs()
        if scale_floor is not None:
            difference = difference / a[name].abs().clamp(min=scale_floor)
        worst = max(worst, float(difference.nan_to_num(0.0).max()))
    return worst


def check_parity(eager: torch.nn.Module, scripted: torch.jit.ScriptModule, n_features: int) -> float:
    """Largest difference between eager and scripted outputs on probe inputs; raises above 1e-5."""
    x = probe_inputs(n_features)
    with torch.inference_mode():
        a, b = eager(x), scripted(x)
    worst = output_difference(a, b)
    if worst > PARITY_TOLERANCE:
        raise ArtifactError(f"scripted and eager outputs differ by {worst:.2e} (> {PARITY_TOLERANCE:g})")
    return worst


def write_artifact(
    model: torch.nn.Module,
    spec: FeatureSpec,
    path: str | Path,
    *,
    model_version: str,
    training_data: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    name: str | None = None,
    notes: str = "",
) -> dict[str, Any]:
    """Script ``model``, check it against the eager model, embed the metadata, write atomically."""
    path = Path(path)
    model = model.cpu().eval()
    if spec.size != model.input_size:
        raise ArtifactError(f"the model takes {model.input_size} inputs but its feature spec has {spec.size}")
    if not spec.scaling_fitted:
        logger.warning("the feature spec of %s carries no fitted scaling", path.name)
    with torchscript():
        scripted = torch.jit.script(model)
    parity = check_parity(model, scripted, spec.size)
    metadata: dict[str, Any] = {
        "format": ARTIFACT_FORMAT,
        "format_version": ARTIFACT_FORMAT_VERSION,
        "model_name": MODEL_NAME,
        "name": name or path.stem,
        "model_version": model_version,
        "sensor": spec.sensor,
        "attention": model.attention,
        "input_size": spec.size,
        "feature_spec": spec.to_dict(),
        "outputs": {
            "cloud_mask_probability": "P(cloudy), (N,)",
            "cloud_phase_probability": "P(ice | cloudy), (N,)",
            "cot_class_probability": "P(thin COT<1, moderate 1-10, thick >=10), (N, 3)",
            "log10_cot": "log10 cloud optical thickness, (N,)",
        },
        "training_data": training_data,
        "metrics": metrics or {},
        "weights_sha256": weights_sha256(scripted),
        "scripted_eager_max_difference": parity,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "torch_version": torch.__version__,
        "notes": notes,
    }
    with atomic_output(path) as tmp, torchscript():
        torch.jit.save(scripted, str(tmp), _extra_files={METADATA_NAME: json.dumps(metadata, indent=1)})
    logger.info(
        "wrote %s (%s, %d features, weights sha256 %s)", path, spec.sensor, spec.size, metadata["weights_sha256"][:12]
    )
    return metadata


def update_metadata(path: str | Path, updates: dict[str, Any]) -> dict[str, Any]:
    """Rewrite an artifact with ``updates`` merged into its metadata (same weights), atomically."""
    path = Path(path)
    artifact = load_artifact(path)
    metadata = {**artifact.metadata, **updates}
    with atomic_output(path) as tmp, torchscript():
        torch.jit.save(artifact.module, str(tmp), _extra_files={METADATA_NAME: json.dumps(metadata, indent=1)})
    return metadata


@dataclass
class Artifact:
    """A verified model artifact, loaded on one device."""

    path: Path
    module: torch.jit.ScriptModule
    metadata: dict[str, Any]
    spec: FeatureSpec
    sha256: str  # of the whole file, for product provenance

    @property
    def sensor(self) -> str:
        return str(self.metadata["sensor"])

    @property
    def interval95_factor(self) -> float:
        """Half-width of the 95 % log10-COT interval in units of ``log10_cot_uncertainty``."""
        return interval95_factor(self.module)

    @property
    def trained_on_glint(self) -> bool:
        """Whether the training data had sun glint on water (files of simulator 2.0 and later)."""
        return bool(self.metadata.get("training_data", {}).get("sun_glint", False))

    @property
    def name(self) -> str:
        return str(self.metadata["name"])

    @property
    def version(self) -> str:
        return str(self.metadata["model_version"])

    @cached_property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The embedded metadata alone, read from the TorchScript zip without loading the model.

    Listing what a model needs (its sensor and bands) then costs a file read, not a TorchScript load,
    a weight hash and a probe forward; ``load_artifact`` still verifies all of it before use.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            name = next((n for n in archive.namelist() if n.endswith(f"/extra/{METADATA_NAME}")), None)
            if name is None:
                raise ArtifactError(f"{path} is a TorchScript file without MT-HCCAR metadata; export it with mthccar")
            metadata = json.loads(archive.read(name))
    except (OSError, zipfile.BadZipFile, ValueError) as err:
        raise ArtifactError(f"{path} is not a readable TorchScript model artifact ({err})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != ARTIFACT_FORMAT:
        raise ArtifactError(f"{path} has unreadable MT-HCCAR metadata (wrong format tag)")
    return metadata


@lru_cache(maxsize=16)
def _loaded(path: str, size: int, mtime_ns: int) -> Artifact:
    return load_artifact(path)


def verified_artifact(path: str | Path) -> Artifact:
    """``load_artifact`` on the CPU, once per process while the file keeps its size and modification
    time: planning a granule, staging it and each inference worker thread share one verified load."""
    resolved = Path(path).resolve()
    if not resolved.is_file():
        raise ArtifactError(f"model artifact {path} does not exist")
    stat = resolved.stat()
    return _loaded(str(resolved), stat.st_size, stat.st_mtime_ns)


def load_artifact(
    path: str | Path, expect_sensor: str | None = None, map_location: str | torch.device = "cpu"
) -> Artifact:
    """Load a TorchScript artifact and verify its metadata, weights and input size."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"model artifact {path} does not exist")
    extra = {METADATA_NAME: ""}
    try:
        with torchscript():
            module = torch.jit.load(str(path), map_location=map_location, _extra_files=extra)
    except Exception as err:  # torch raises RuntimeError and others for non-TorchScript files
        reason = str(err).strip().splitlines()[0][:120] if str(err).strip() else type(err).__name__
        raise ArtifactError(f"{path} is not a readable TorchScript model artifact ({reason})") from None
    if not extra[METADATA_NAME]:
        raise ArtifactError(f"{path} is a TorchScript file without MT-HCCAR metadata; export it with mthccar")
    try:
        metadata = json.loads(extra[METADATA_NAME])
        if metadata.get("format") != ARTIFACT_FORMAT:
            raise ValueError("wrong format tag")
        spec = FeatureSpec.from_dict(metadata["feature_spec"])
    except (ValueError, KeyError, SpecError) as err:
        raise ArtifactError(f"{path} has unreadable MT-HCCAR metadata ({err})") from None
    if weights_sha256(module) != metadata.get("weights_sha256"):
        raise ArtifactError(f"{path} is corrupted: its weights do not match the sha256 in its metadata")
    if expect_sensor is not None and spec.sensor != expect_sensor:
        raise ArtifactError(f"{path} is a model for {spec.sensor}, not for {expect_sensor}")
    try:
        with torch.inference_mode():
            out = module(torch.zeros(2, spec.size, device=map_location))
        missing = [k for k in OUTPUT_NAMES if k not in out]
    except Exception:
        raise ArtifactError(f"{path} does not accept the {spec.size} features its metadata declares") from None
    if missing:
        raise ArtifactError(f"{path} does not return {', '.join(missing)}")
    module.eval()
    return Artifact(path=path, module=module, metadata=metadata, spec=spec, sha256=file_sha256(path))
