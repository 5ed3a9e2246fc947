"""The reference-schema reader: feature order, stored scaling, splits, streaming, bad files."""

from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np
import pytest

from models.spec import FeatureSpec, SpecError
from models.training.data import FeatureSource, ReferenceDataset, SchemaError, fold_selector, split_selector
from tests.support.reference_schema import write_reference_file


@pytest.mark.parametrize(
    ("sensor", "bands", "size"),
    [("oci", None, 233), ("viirs", None, 20), ("abi", None, 16), ("abi", ["C01", "C03", "C04", "C05", "C06"], 15)],
)
def test_feature_order_follows_the_reference(sensor: str, bands: list[str] | None, size: int) -> None:
    spec = FeatureSpec.for_sensor(sensor, bands)
    assert spec.size == size
    n_bands = size - 10
    assert [f.kind for f in spec.features[n_bands:]] == ["ancillary"] * 3 + ["surface_class"] * 4 + ["geometry"] * 3
    assert spec.names[n_bands : n_bands + 3] == ["h2o", "o3", "spress"]
    assert spec.names[-3:] == ["cos_solar_zenith_angle", "cos_viewing_zenith_angle", "cos_relative_azimuth_angle"]
    assert spec.features[n_bands + 3].classes == (*tuple(range(1, 15)), 18)


def test_features_of_known_values() -> None:
    spec = FeatureSpec.for_sensor("abi", ["C01"])
    variables = {
        "C01": np.array([0.5]),
        "h2o": np.array([2.0]),
        "o3": np.array([300.0]),
        "spress": np.array([1000.0]),
        "albedo_type": np.array([17]),
        "solar_zenith_angle": np.array([60.0]),
        "viewing_zenith_angle": np.array([0.0]),
        "relative_azimuth_angle": np.array([180.0]),
    }
    raw = spec.raw_features(variables)[0]
    np.testing.assert_allclose(raw, [0.5, 2.0, 300.0, 1000.0, 0, 0, 0, 1, 0.5, 1.0, -1.0], atol=1e-6)


def test_spec_round_trips_through_json() -> None:
    spec = FeatureSpec.for_sensor("viirs").with_scaling(list(range(20)), list(range(1, 21)))
    again = FeatureSpec.from_json(spec.to_json())
    assert again == spec
    np.testing.assert_allclose(again.scale(np.full((1, 20), 1.0, np.float32))[0, :3], [1.0, 0.0, -1.0])


def test_unknown_band_is_a_clear_error() -> None:
    with pytest.raises(SpecError, match="abi has no band named 'C17'"):
        FeatureSpec.for_sensor("abi", ["C01", "C17"])
    with pytest.raises(SpecError, match="night model cannot use the solar band C01"):
        FeatureSpec.for_sensor("abi", ["C01", "C13"], night=True)
    with pytest.raises(ValueError, match="unknown sensor 'modis'"):
        FeatureSpec.for_sensor("modis")


def test_scaling_is_fitted_on_the_training_split_only(toy_reference_file: Path) -> None:
    with ReferenceDataset(toy_reference_file, "viirs") as data:
        spec = data.fit_scaling()
        everything = data.read(0, data.npoints)
        u = data.split_numbers(0, data.npoints)
    train = everything.features[u < 0.675]
    np.testing.assert_allclose(spec.offsets, train.min(axis=0), rtol=1e-6)
    np.testing.assert_allclose([f.maximum for f in spec.features], train.max(axis=0), rtol=1e-6)
    assert spec.scaling_fitted
    # the test split reaches beyond the training range somewhere: scaling was not refitted on it
    assert not np.allclose(spec.offsets, everything.features.min(axis=0))


def test_split_is_seeded_disjoint_and_in_reference_proportions(toy_reference_file: Path) -> None:
    with ReferenceDataset(toy_reference_file, "abi", seed=5) as data:
        u = data.split_numbers(0, data.npoints)
        again = data.split_numbers(1000, 3000)
    masks = [split_selector(s)(u) for s in ("train", "validation", "test")]
    assert np.array_equal(np.sum(masks, axis=0), np.ones(len(u)))
    fractions = [m.mean() for m in masks]
    np.testing.assert_allclose(fractions, [0.675, 0.225, 0.1], atol=0.02)
    np.testing.assert_array_equal(again, u[1000:3000])
    with ReferenceDataset(toy_reference_file, "abi", seed=6) as other:
        assert not np.array_equal(other.split_numbers(0, 100), u[:100])


def test_kfold_selectors_partition_the_non_test_points(toy_reference_file: Path) -> None:
    with ReferenceDataset(toy_reference_file, "abi") as data:
        u = data.split_numbers(0, data.npoints)
    held = [fold_selector(4, k, held_out=True)(u) for k in range(4)]
    assert np.array_equal(np.sum(held, axis=0), (u < 0.9).astype(int))
    assert not np.any(fold_selector(4, 1, held_out=False)(u) & held[1])


def test_streaming_gives_the_same_points_as_the_in_memory_cache(toy_reference_file: Path) -> None:
    with ReferenceDataset(toy_reference_file, "oci") as data:
        spec = data.fit_scaling(block_size=1000)
        cached = FeatureSource(data, spec, split_selector("validation"), block_size=1000)
        streamed = FeatureSource(data, spec, split_selector("validation"), block_size=1000, memory_budget_bytes=0)
        assert cached.cached
        assert not streamed.cached
        a, b = cached.all(), streamed.all()
        np.testing.assert_array_equal(a.features, b.features)
        shuffled = list(streamed.blocks(np.random.default_rng(0)))
    assert len(shuffled) == 6
    assert sum(len(s) for s in shuffled) == len(a)
    assert a.features.shape[1] == 233


def test_angles_in_radians_give_the_same_features(tmp_path: Path) -> None:
    degrees = write_reference_file(tmp_path / "deg.nc", 500, seed=1)
    radians = write_reference_file(tmp_path / "rad.nc", 500, seed=1, angle_units="radians")
    with ReferenceDataset(degrees, "abi") as a, ReferenceDataset(radians, "abi") as b:
        np.testing.assert_allclose(a.read(0, 500).features, b.read(0, 500).features, atol=1e-5)


def test_targets_follow_the_schema(toy_reference_file: Path) -> None:
    with ReferenceDataset(toy_reference_file, "viirs") as data:
        block = data.read(0, 2000)
    clear = block.cloudy == 0
    assert np.all(block.cot_class[clear] == -1)
    assert np.all(block.log10_cot[clear] == -2.0)
    assert np.all(block.ice[clear] == 0)
    cloudy = ~clear
    assert set(np.unique(block.cot_class[cloudy])) == {0, 1, 2}
    assert np.all((block.log10_cot[cloudy & (block.cot_class == 2)]) >= 1.0)


def test_missing_variable_names_the_file_and_variable(tmp_path: Path) -> None:
    path = write_reference_file(tmp_path / "no_o3.nc", 100, omit=("o3",))
    with pytest.raises(SchemaError, match=r"no_o3\.nc is not a reference-schema training file for oci: it lacks o3"):
        ReferenceDataset(path, "oci")


def test_sensor_missing_from_the_file_is_a_clear_error(tmp_path: Path) -> None:
    path = write_reference_file(tmp_path / "no_abi.nc", 100, sensors=("oci", "viirs"))
    with pytest.raises(SchemaError, match="it lacks abi_reflectances"):
        ReferenceDataset(path, "abi")


def test_not_a_netcdf_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.nc"
    path.write_bytes(b"this is not netCDF" * 10)
    with pytest.raises(SchemaError, match=r"junk\.nc is not a readable netCDF file"):
        ReferenceDataset(path, "oci")


def test_transposed_reflectances_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "transposed.nc"
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("npoints", 5)
        nc.createDimension("nbands_abi", 6)
        nc.createVariable("abi_reflectances", "f4", ("npoints", "nbands_abi"))
        for name in (
            "h2o",
            "o3",
            "spress",
            "albedo_type",
            "solar_zenith_angle",
            "viewing_zenith_angle",
            "relative_azimuth_angle",
            "scene_type",
            "cloud_type",
            "log10_cloud_optical_thickness",
        ):
            nc.createVariable(name, "f4", ("npoints",))
    with pytest.raises(SchemaError, match=r"abi_reflectances has dimensions \('npoints', 'nbands_abi'\)"):
        ReferenceDataset(path, "abi")
