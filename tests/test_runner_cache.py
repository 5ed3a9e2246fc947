"""The compiled-network cache (models.runner_cache): a later process loads the network instead of
compiling it, and a damaged or foreign file never changes an output."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from models.artifact import Artifact, load_artifact, probe_inputs, write_artifact
from models.mthccar import MTHCCAR
from models.runner import build_runner
from models.runner_cache import CACHE_ENV, runner_path
from models.spec import FeatureSpec
from models.training.evaluate import predict


def _artifact(path: Path, seed: int) -> Artifact:
    torch.manual_seed(seed)
    spec = FeatureSpec.for_sensor("viirs")
    net = MTHCCAR(spec.size)
    for module in net.modules():  # weights that give clear and cloudy pixels on the probes
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, std=0.4)
            torch.nn.init.normal_(module.bias, std=0.4)
    write_artifact(net, spec, path, model_version="0", training_data={})
    return load_artifact(path)


def _inputs(n_features: int) -> np.ndarray:
    draws = torch.rand(2000, n_features, generator=torch.Generator().manual_seed(2)) * 1.5 - 0.25
    return torch.cat([probe_inputs(n_features), draws]).numpy()


def _assert_same_outputs(candidate: object, artifact: Artifact) -> None:
    x = _inputs(artifact.spec.size)
    expected, got = predict(artifact.module, x), predict(candidate, x)
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], atol=1e-5, rtol=1e-6, err_msg=key)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "runners"
    monkeypatch.setenv(CACHE_ENV, str(root))
    return root


def test_a_network_compiled_once_is_loaded_by_the_next_build(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    artifact = _artifact(tmp_path / "a.pt", seed=1)
    build_runner(artifact)
    stored = runner_path(cache, artifact.sha256, "float32")
    assert stored.is_file()
    assert [p.name for p in cache.iterdir()] == [stored.name]  # no staging file left
    umask = os.umask(0)
    os.umask(umask)
    assert stored.stat().st_mode & 0o777 == 0o666 & ~umask  # other users' processes may load it

    def no_compiling(*args: object, **kwargs: object) -> None:
        raise AssertionError("compiled again although the network is in the cache")

    monkeypatch.setattr(torch.jit, "script", no_compiling)
    _assert_same_outputs(build_runner(artifact), artifact)


def test_a_damaged_cached_network_is_compiled_again(
    cache: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    artifact = _artifact(tmp_path / "a.pt", seed=1)
    cache.mkdir()
    stored = runner_path(cache, artifact.sha256, "float32")
    stored.write_bytes(b"half a zip file")
    with caplog.at_level(logging.WARNING, logger="models.runner_cache"):
        runner = build_runner(artifact)
    assert str(stored) in caplog.text
    assert "cannot be read" in caplog.text
    _assert_same_outputs(runner, artifact)
    _assert_same_outputs(torch.jit.load(str(stored)), artifact)  # replaced by a good one


def test_a_cached_network_of_other_weights_is_never_run(
    cache: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = _artifact(tmp_path / "a.pt", seed=1), _artifact(tmp_path / "b.pt", seed=2)
    build_runner(first)
    runner_path(cache, first.sha256, "float32").rename(runner_path(cache, second.sha256, "float32"))
    with caplog.at_level(logging.WARNING, logger="models.runner"):
        runner = build_runner(second)
    assert "cached network differs" in caplog.text
    _assert_same_outputs(runner, second)


def test_no_file_is_written_with_the_cache_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, "off")
    monkeypatch.setenv("MTHCCAR_CACHE_DIR", str(tmp_path / "cache"))
    artifact = _artifact(tmp_path / "a.pt", seed=1)
    _assert_same_outputs(build_runner(artifact), artifact)
    assert not (tmp_path / "cache").exists()


def test_an_unwritable_cache_still_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not_a_directory"
    blocker.write_text("")
    monkeypatch.setenv(CACHE_ENV, str(blocker / "runners"))
    artifact = _artifact(tmp_path / "a.pt", seed=1)
    _assert_same_outputs(build_runner(artifact), artifact)


def test_warming_compiles_every_shipped_model_once(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from models.registry import default_artifacts
    from models.runner_cache import warm

    stored = warm()
    assert len(stored) == len(default_artifacts())
    assert sorted(cache.iterdir()) == sorted(stored)

    def no_compiling(*args: object, **kwargs: object) -> None:
        raise AssertionError("compiled again although the image's build compiled it")

    monkeypatch.setattr(torch.jit, "script", no_compiling)
    artifact = load_artifact(default_artifacts()[0])
    _assert_same_outputs(build_runner(artifact), artifact)
