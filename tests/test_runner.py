"""The network inference runs (models.runner): the artifact's outputs with the heads on cloudy pixels
only, and bfloat16 only where the artifact's held-out check clears it."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from typer.testing import CliRunner

from flows.cli import app
from models.artifact import ArtifactError, load_artifact, probe_inputs, update_metadata, write_artifact
from models.mthccar import ATTENTION_MODES, MTHCCAR
from models.registry import default_artifacts
from models.runner import (
    PRECISION_BOUNDS,
    PRECISION_CHECKS_KEY,
    build_runner,
    cpu_has_native_bfloat16,
    precision_bounds,
    precision_change,
)
from models.spec import FeatureSpec
from models.training.evaluate import predict, scored_points
from models.training.simulate.dataset import simulate_dataset


def _mixed_inputs(n_features: int) -> np.ndarray:
    """Probe inputs and draws over the scaled features' range (min-max scaled to 0-1 on the training
    split) with a margin: clear and cloudy pixels for any trained model."""
    draws = torch.rand(8000, n_features, generator=torch.Generator().manual_seed(1)) * 1.5 - 0.25
    return torch.cat([probe_inputs(n_features), draws]).numpy()


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few hundred simulated day samples of every sensor, thermal bands and window contrast included:
    inputs as a model meets them (independent random draws of each feature mostly look like cloud to
    a thermal model, whose clear sky needs its bands, skin temperature and contrast to agree)."""
    return simulate_dataset(tmp_path_factory.mktemp("runner") / "all.nc", "all", 400, seed=5, workers=1)


@pytest.mark.parametrize("path", default_artifacts(), ids=lambda p: p.stem)
def test_runner_gives_the_shipped_artifacts_outputs(path: Path, simulated: Path) -> None:
    artifact = load_artifact(path)
    samples = scored_points(artifact, simulated, split="all")[0].features
    x = np.concatenate([_mixed_inputs(artifact.spec.size), samples])
    expected = predict(artifact.module, x)
    runner = build_runner(artifact)
    assert runner is not artifact.module  # the cloudy-heads network, not the fallback
    got = predict(runner, x)
    cloudy = expected["cloud_mask_probability"] > 0.5
    assert 20 <= cloudy.sum() <= cloudy.size - 20, "the inputs must hold clear and cloudy pixels"
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], atol=1e-5, rtol=0, err_msg=key)


@pytest.mark.parametrize("attention", ATTENTION_MODES)
def test_runner_matches_every_attention_mode(attention: str, tmp_path: Path) -> None:
    torch.manual_seed(4)
    spec = FeatureSpec.for_sensor("viirs")
    net = MTHCCAR(spec.size, attention)
    for module in net.modules():  # non-zero attention output, so the heads' rows really differ
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, std=0.4)
            torch.nn.init.normal_(module.bias, std=0.4)
    write_artifact(net, spec, tmp_path / "net.pt", model_version="0", training_data={})
    artifact = load_artifact(tmp_path / "net.pt")
    x = _mixed_inputs(spec.size)
    runner = build_runner(artifact)
    assert runner is not artifact.module  # the cloudy-heads network, not the fallback
    expected, got = predict(artifact.module, x), predict(runner, x)
    for key in expected:  # these weights drive log10 COT to the hundreds: float32's 7 digits beyond 1
        np.testing.assert_allclose(got[key], expected[key], atol=1e-5, rtol=1e-6, err_msg=key)


def test_bfloat16_is_refused_without_a_held_out_check(tiny_artifacts: dict[str, Path], tmp_path: Path) -> None:
    path = shutil.copy(tiny_artifacts["viirs"], tmp_path / "unchecked.pt")
    artifact = load_artifact(path)
    with pytest.raises(
        ArtifactError, match=r"unchecked\.pt has no measured bfloat16 accuracy change .*check-precision"
    ):
        build_runner(artifact, precision="bfloat16")
    with pytest.raises(ArtifactError, match="unknown precision 'float16'"):
        build_runner(artifact, precision="float16")


def test_bfloat16_is_refused_over_its_bound(tiny_artifacts: dict[str, Path], tmp_path: Path) -> None:
    path = shutil.copy(tiny_artifacts["viirs"], tmp_path / "coarse.pt")
    over = {**dict.fromkeys(PRECISION_BOUNDS, 0.0), "phase_decisions_changed": 0.02}
    update_metadata(path, {PRECISION_CHECKS_KEY: {"bfloat16": over}})
    refused = r"coarse\.pt in bfloat16: phase decisions changed 0\.02 on its held-out split is over the bound 0\.005"
    with pytest.raises(ArtifactError, match=refused):
        build_runner(load_artifact(path), precision="bfloat16")


def test_bfloat16_warns_where_the_cpu_would_emulate_it(
    tiny_artifacts: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """On a CPU without AVX-512 BF16 or AMX, bfloat16 is emulated and slower than float32: the user is
    told so (and only there)."""
    path = shutil.copy(tiny_artifacts["viirs"], tmp_path / "cleared.pt")
    update_metadata(path, {PRECISION_CHECKS_KEY: {"bfloat16": dict.fromkeys(PRECISION_BOUNDS, 0.0)}})
    with caplog.at_level(logging.WARNING, logger="models.runner"):
        build_runner(load_artifact(path), precision="bfloat16")
    warned = [r.getMessage() for r in caplog.records if "no native bfloat16" in r.getMessage()]
    assert bool(warned) == (not cpu_has_native_bfloat16())
    if warned:
        assert warned[0].startswith("cleared.pt: this CPU (")
        assert "use float32 here" in warned[0]


def test_check_precision_measures_and_records(trained_viirs, toy_reference_file: Path, tmp_path: Path) -> None:
    _, trained = trained_viirs
    path = shutil.copy(trained, tmp_path / "viirs.pt")
    before = load_artifact(path)
    result = CliRunner().invoke(app, ["check-precision", str(path), str(toy_reference_file)])
    assert result.exit_code == 0, result.output
    assert "viirs.pt in bfloat16 on" in result.output
    assert "test samples" in result.output
    after = load_artifact(path)
    check = after.metadata[PRECISION_CHECKS_KEY]["bfloat16"]
    assert check["split"] == "test"
    assert check["pixels"] > 100
    assert after.metadata["weights_sha256"] == before.metadata["weights_sha256"]  # same weights, new metadata
    # what it recorded is what the runner does on those inputs
    x = _mixed_inputs(after.spec.size)
    change = precision_change(predict(after.module, x), predict(build_runner(after, precision="bfloat16"), x))
    assert change["mask_decisions_changed"] < 0.02
    assert check["within_bounds"] == all(check[k] <= v for k, v in PRECISION_BOUNDS.items())


@pytest.mark.parametrize("path", default_artifacts(), ids=lambda p: p.stem)
def test_shipped_models_are_cleared_for_bfloat16_within_the_bounds(path: Path) -> None:
    check = load_artifact(path).metadata[PRECISION_CHECKS_KEY]["bfloat16"]
    assert check["split"] == "test"
    assert check["pixels"] >= 20_000
    assert check["within_bounds"]
    artifact = load_artifact(path)
    for name, bound in precision_bounds(artifact.spec).items():
        assert 0 <= check[name] <= bound


def test_a_night_model_is_held_to_its_mask_and_phase_bounds_only(tmp_path: Path) -> None:
    night = FeatureSpec.for_sensor("abi", ["C07", "C11", "C13", "C14", "C15"])
    day = FeatureSpec.for_sensor("abi", ["C01", "C03", "C13"])
    assert night.night
    assert not day.night
    assert set(precision_bounds(night)) == set(PRECISION_BOUNDS) - {"log10_cot_change_p99"}
    assert precision_bounds(day) == PRECISION_BOUNDS
    cot_over = {**dict.fromkeys(PRECISION_BOUNDS, 0.0), "log10_cot_change_p99": 0.2}
    for spec, name in ((night, "night.pt"), (day, "day.pt")):
        write_artifact(MTHCCAR(spec.size), spec, tmp_path / name, model_version="0", training_data={})
        update_metadata(tmp_path / name, {PRECISION_CHECKS_KEY: {"bfloat16": cot_over}})
    build_runner(load_artifact(tmp_path / "night.pt"), precision="bfloat16")  # no COT at night: cleared
    with pytest.raises(ArtifactError, match=r"day\.pt in bfloat16: log10 cot change p99 0\.2 .* over the bound 0\.05"):
        build_runner(load_artifact(tmp_path / "day.pt"), precision="bfloat16")


def test_a_bfloat16_product_says_so_and_agrees_with_float32(synthetic_granules, tmp_path: Path) -> None:
    from pipeline.granules import single_granule
    from pipeline.process import ProcessOptions, process_granule

    granule = single_granule([synthetic_granules["abi"]])
    products = {}
    for precision in ("float32", "bfloat16"):
        options = ProcessOptions(out_dir=tmp_path / precision, quicklook=False, precision=precision)
        products[precision] = process_granule(granule, options).product
    with xr.open_dataset(products["float32"]) as full, xr.open_dataset(products["bfloat16"]) as reduced:
        assert (full.attrs["model_precision"], reduced.attrs["model_precision"]) == ("float32", "bfloat16")
        valid = np.isfinite(full["cloud_mask_probability"].values)
        assert int(valid.sum()) > 1000
        agree = np.mean(full["cloud_mask"].values[valid] == reduced["cloud_mask"].values[valid])
        assert agree >= 0.99
