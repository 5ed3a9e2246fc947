"""Where a run may read and write, and which models it may load: the policy of a shared deployment.

An operator configures, through the environment of ``mthccar serve`` or of a worker (``serve``'s
options set the same variables):

* ``MTHCCAR_INPUT_ROOTS``, ``MTHCCAR_OUTPUT_ROOTS``, ``MTHCCAR_MODEL_ROOTS``: folders, separated by
  ``:``, under which inputs may be read, products and reports written, and model files found;
* ``MTHCCAR_URL_PREFIXES``: comma-separated fsspec URL prefixes inputs may come from
  (``s3://noaa-goes17/,gs://my-bucket/``);
* ``MTHCCAR_MODEL_REGISTRY``: a JSON file ``{"name": "sha256 of the .pt file", ...}`` of the models an
  operator has approved, writable by its owner only.

Once any root or prefix is set, the policy is restricted: every path is resolved (``..`` and
symlinks included) and must fall under a root of its kind, and a URL must start with a listed
prefix; a kind with no root allows nothing. Flows always load only trusted models: the shipped
default artifacts and registered ones. The CLI is unrestricted unless the variables are set, and
only warns about an unregistered model.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import models
from models.artifact import file_sha256
from pipeline.granules import is_url

logger = logging.getLogger(__name__)

ENV_INPUT_ROOTS = "MTHCCAR_INPUT_ROOTS"
ENV_OUTPUT_ROOTS = "MTHCCAR_OUTPUT_ROOTS"
ENV_MODEL_ROOTS = "MTHCCAR_MODEL_ROOTS"
ENV_URL_PREFIXES = "MTHCCAR_URL_PREFIXES"
ENV_MODEL_REGISTRY = "MTHCCAR_MODEL_REGISTRY"
SHIPPED_MODELS = (Path(models.__file__).parent / "artifacts").resolve()  # installed with the package


class AccessError(ValueError):
    """A path outside the configured roots, a URL not allowed, or a model not trusted."""


def _roots(variable: str) -> tuple[Path, ...]:
    return tuple(Path(p).expanduser().resolve() for p in os.environ.get(variable, "").split(os.pathsep) if p.strip())


@dataclass(frozen=True)
class AccessPolicy:
    input_roots: tuple[Path, ...] = ()
    output_roots: tuple[Path, ...] = ()
    model_roots: tuple[Path, ...] = ()
    url_prefixes: tuple[str, ...] = ()

    @classmethod
    def from_env(cls) -> AccessPolicy:
        prefixes = tuple(p.strip() for p in os.environ.get(ENV_URL_PREFIXES, "").split(",") if p.strip())
        return cls(_roots(ENV_INPUT_ROOTS), _roots(ENV_OUTPUT_ROOTS), _roots(ENV_MODEL_ROOTS), prefixes)

    @property
    def restricted(self) -> bool:
        return bool(self.input_roots or self.output_roots or self.model_roots or self.url_prefixes)

    def _check(self, value: str, what: str, roots: Sequence[Path], variable: str) -> None:
        if not self.restricted:
            return
        if is_url(value):
            if not any(value == p.rstrip("/") or value.startswith(p.rstrip("/") + "/") for p in self.url_prefixes):
                allowed = ", ".join(self.url_prefixes) or "none"
                raise AccessError(
                    f"{what} {value!r} is not under an allowed URL prefix ({allowed}; {ENV_URL_PREFIXES})"
                )
            return
        resolved = Path(value.removeprefix("file://")).expanduser().resolve()
        if not any(resolved.is_relative_to(root) for root in roots):
            allowed = ", ".join(str(r) for r in roots) or "none configured"
            raise AccessError(
                f"{what} {value!r} resolves to {resolved}, outside the allowed folders ({allowed}; {variable})"
            )

    def check_input(self, value: str, what: str = "input") -> None:
        self._check(value, what, self.input_roots, ENV_INPUT_ROOTS)

    def check_output(self, value: str, what: str = "out_dir") -> None:
        if self.restricted and is_url(value):
            raise AccessError(f"{what} {value!r} must be a local folder, not a URL")
        self._check(value, what, self.output_roots, ENV_OUTPUT_ROOTS)

    def check_model(self, value: str) -> None:
        self._check(value, "model", self.model_roots, ENV_MODEL_ROOTS)


# ---- trusted models ------------------------------------------------------------------------------
@lru_cache(maxsize=8)
def _registry(path: str, mtime_ns: int) -> dict[str, str]:
    """name -> sha256 of a registry file; cached per modification."""
    registry = Path(path)
    mode = registry.stat().st_mode
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise AccessError(f"model registry {registry} is writable by others than its owner; chmod go-w it")
    try:
        entries = json.loads(registry.read_text())
    except (OSError, ValueError) as error:
        raise AccessError(f"model registry {registry} cannot be read as JSON ({error})") from None
    if not isinstance(entries, dict) or not all(isinstance(v, str) for v in entries.values()):
        raise AccessError(f"model registry {registry} must be a JSON object of model name -> sha256")
    return {str(k): v.lower() for k, v in entries.items()}


def registered_models() -> dict[str, str]:
    """The operator's registry (empty when ``MTHCCAR_MODEL_REGISTRY`` is not set)."""
    path = os.environ.get(ENV_MODEL_REGISTRY)
    if not path:
        return {}
    registry = Path(path).expanduser()
    if not registry.is_file():
        raise AccessError(f"model registry {registry} ({ENV_MODEL_REGISTRY}) does not exist")
    return _registry(str(registry.resolve()), registry.stat().st_mtime_ns)


def untrusted_reason(model: Path) -> str | None:
    """Why a model file is not trusted (None: a shipped default or a registered model)."""
    resolved = model.expanduser().resolve()
    if resolved.parent == SHIPPED_MODELS:
        return None
    digest = file_sha256(resolved)
    if digest in registered_models().values():
        return None
    where = os.environ.get(ENV_MODEL_REGISTRY) or f"a registry named by {ENV_MODEL_REGISTRY}"
    return f"model {model} (sha256 {digest[:16]}...) is not a shipped model and is not registered in {where}"


def require_trusted(model: Path) -> None:
    """Refuse a model file that is neither shipped nor registered (flows)."""
    reason = untrusted_reason(model)
    if reason:
        raise AccessError(f"{reason}; an operator must register it before runs may load it")
