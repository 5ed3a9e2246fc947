"""The window contrast input: the estimator at inference, its simulated counterpart, and their files."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import netCDF4
import numpy as np
import pytest
import xarray as xr

from models.context import ALTITUDE_BAND_M, box_pixels, window_contrast
from models.spec import FeatureSpec
from models.training.data import ReferenceDataset, SchemaError
from models.training.simulate.context import draw_window_contrast
from models.training.simulate.dataset import simulate_dataset
from pipeline.features import FeatureError, needs_window_contrast, scene_window_contrast, with_window_contrast


def test_box_is_about_22_km_and_odd_for_each_sensor() -> None:
    assert box_pixels("abi") == 11  # 2 km pixels
    assert box_pixels("viirs") == 29  # 0.75 km pixels


def test_cloud_edge_is_cold_against_the_ground_and_a_wide_deck_against_itself() -> None:
    """A 240 K deck of 30 x 30 pixels on 290 K ground: within half a box of its edge a pixel sees the
    ground (-50 K); at its middle the box holds only cloud (0 K), as a fully overcast box does."""
    bt = np.full((80, 80), 290.0)
    bt[20:50, 20:50] = 240.0
    contrast = window_contrast(bt, 11)
    assert contrast.dtype == np.float32
    assert contrast[21, 21] == pytest.approx(-50.0)
    assert contrast[35, 35] == pytest.approx(0.0)
    assert contrast[5, 5] == pytest.approx(0.0)
    assert np.all(contrast <= 0.0)


def test_a_lone_hot_pixel_and_missing_values_do_not_move_the_background() -> None:
    bt = np.full((40, 40), 290.0)
    bt[20, 20] = 330.0  # a fire
    bt[10, 10] = np.nan
    bt[12, 12] = 280.0
    contrast = window_contrast(bt, 11)
    assert contrast[20, 20] == 0.0  # the pixel itself counts
    assert contrast[20, 22] == 0.0  # its neighbours keep the ground's 290 K
    assert contrast[12, 12] == pytest.approx(-10.0)
    assert np.isnan(contrast[10, 10])
    assert np.isfinite(np.delete(contrast.ravel(), 10 * 40 + 10)).all()


def test_a_clear_sea_is_not_cold_for_lying_beside_warm_land() -> None:
    """By day the sea is often 10 K colder than the shore: each surface takes its own background."""
    bt = np.full((40, 40), 300.0)
    water = np.zeros((40, 40), dtype=bool)
    water[:, 20:] = True
    bt[water] = 288.0
    bt[30, 30] = 270.0  # a cloud over the sea
    assert window_contrast(bt, 11)[10, 22] == pytest.approx(-12.0)  # land and sea as one surface
    contrast = window_contrast(bt, 11, water)
    assert contrast[10, 22] == 0.0
    assert contrast[10, 17] == 0.0
    assert contrast[30, 30] == pytest.approx(-18.0)


def test_land_compares_with_land_of_its_height_and_with_lower_land_brought_up_to_it() -> None:
    """By day a clear ridge at 1,500 m is 9 K colder than the valley floor beside it, about what the
    6.5 K/km lapse rate makes it: against the valley brought up to its height it is not cold, and a
    250 K cloud on it still is. At night a clear valley with cold air pooled in it is not cold for
    lying under warmer slopes (higher land never counts). Neighbouring altitude bands (150 and 250
    m) compare as they are."""
    water = np.zeros((40, 40), dtype=bool)
    altitude = np.zeros((40, 40))
    altitude[:, 20:] = 1500.0
    day = np.full((40, 40), 290.0)
    day[:, 20:] = 281.0
    day[30, 30] = 250.0  # a cloud on the ridge
    assert window_contrast(day, 11, water)[10, 22] == pytest.approx(-9.0)  # land as one surface
    contrast = window_contrast(day, 11, water, altitude)
    assert contrast[10, 22] == 0.0
    assert contrast[30, 30] == pytest.approx(-31.0)
    day[:, 20:] = 275.0  # colder than the lapse rate makes it
    assert window_contrast(day, 11, water, altitude)[10, 22] == pytest.approx(275.0 - (290.0 - 0.0065 * 1500.0))
    night = np.full((40, 40), 270.0)
    night[:, 20:] = 278.0
    assert window_contrast(night, 11, water)[10, 17] == pytest.approx(-8.0)
    assert window_contrast(night, 11, water, altitude)[10, 17] == 0.0
    hills = np.where(np.arange(40) < 20, 0.75, 1.25)[None, :].repeat(40, axis=0) * ALTITUDE_BAND_M
    day[:, 20:] = 280.0
    assert window_contrast(day, 11, water, hills)[10, 22] == pytest.approx(-10.0)


def test_scene_contrast_does_not_depend_on_the_chunking() -> None:
    rng = np.random.default_rng(3)
    bt = (285 + rng.normal(0, 3, (170, 130))).astype(np.float32)
    bt[60:90, 30:80] = 235.0
    surface = np.where(np.arange(130) < 70, 12, 17)[None, :].repeat(170, axis=0)
    altitude = np.where(surface == 17, 0.0, np.linspace(0, 3000, 170)[:, None])
    expected = window_contrast(bt, box_pixels("abi"), surface == 17, altitude)
    for chunks in ((32, 32), (50, 130), (170, 130)):
        scene = xr.Dataset(
            {
                "brightness_temperature_C13": (("y", "x"), da.from_array(bt, chunks=chunks)),
                "albedo_type": (("y", "x"), da.from_array(surface, chunks=chunks)),
                "surface_altitude": (("y", "x"), da.from_array(altitude, chunks=chunks)),
            }
        )
        np.testing.assert_array_equal(scene_window_contrast(scene, "abi").compute(), expected)
    without = xr.Dataset({"brightness_temperature_C14": (("y", "x"), da.from_array(bt))}, attrs={"granule_id": "g1"})
    with pytest.raises(FeatureError, match="needs band C13 for its window contrast, which granule g1"):
        scene_window_contrast(without, "abi")


def test_contrast_computed_ahead_equals_the_lazy_one_and_leaves_the_chunks_independent() -> None:
    """``with_window_contrast`` computes the contrast before the product's graph: the same values,
    and a product chunk no longer waits on its neighbours' chunks (what held rows of chunks of
    every input in memory)."""
    rng = np.random.default_rng(5)
    bt = (285 + rng.normal(0, 3, (90, 70))).astype(np.float32)
    bt[30:60, 10:40] = 240.0
    surface = np.where(np.arange(70) < 35, 12, 17)[None, :].repeat(90, axis=0)
    altitude = np.zeros(bt.shape)
    scene = xr.Dataset(
        {
            "brightness_temperature_C13": (("y", "x"), da.from_array(bt, chunks=30)),
            "albedo_type": (("y", "x"), da.from_array(surface, chunks=30)),
            "surface_altitude": (("y", "x"), da.from_array(altitude, chunks=30)),
        }
    )
    ahead = with_window_contrast(scene, "abi")["window_contrast"].data
    np.testing.assert_array_equal(ahead.compute(), scene_window_contrast(scene, "abi").compute())
    assert ahead.chunks == scene["brightness_temperature_C13"].data.chunks
    graph = dict(ahead.__dask_graph__())
    assert len(graph) == ahead.npartitions  # one stored block per chunk, nothing left to overlap
    thermal = ("C07", "C11", "C13", "C14", "C15")
    assert needs_window_contrast(FeatureSpec.for_sensor("abi"), FeatureSpec.for_sensor("abi", thermal, night=True))
    assert not needs_window_contrast(FeatureSpec.for_sensor("abi"), None)


def test_simulated_contrast_follows_the_described_neighbourhoods() -> None:
    """Clear land sits 0.5-4 K spreads under its warmest neighbours; a 230 K cloud over 290 K ground
    sees the ground in half the overcast boxes and nine in ten broken ones, and only cloud otherwise."""
    n = 40_000
    rng = np.random.default_rng(8)
    own = np.full(n, 230.0)
    clear_sky = np.full(n, 290.0)
    land = np.full(n, 12)
    clear = draw_window_contrast(clear_sky, clear_sky, np.zeros(n, bool), np.ones(n), land, rng)
    assert np.all(clear <= 0)
    assert -4.5 < np.median(clear) < -2.0
    sea = draw_window_contrast(clear_sky, clear_sky, np.zeros(n, bool), np.ones(n), np.full(n, 17), rng)
    assert -1.0 < np.median(sea) < -0.3
    for cover, ground_share in ((1.0, 0.5), (0.7, 0.9)):
        cloud = draw_window_contrast(own, clear_sky, np.ones(n, bool), np.full(n, cover), land, rng)
        sees_ground = cloud < -45.0  # about the 60 K from cloud to ground
        assert abs(sees_ground.mean() - ground_share) < 0.02
        assert np.all(cloud[sees_ground] < -54.0)
        assert np.all(cloud[~sees_ground] > -35.0)  # the warmest cloud top: a few 0.5-8 K spreads away


def test_files_of_physics_2_6_carry_the_contrast_and_keep_every_2_5_number(tmp_path: Path) -> None:
    old = simulate_dataset(tmp_path / "v25.nc", "abi", 300, seed=6, workers=1, physics="2.5")
    new = simulate_dataset(tmp_path / "v26.nc", "abi", 300, seed=6, workers=1, physics="2.6")
    with netCDF4.Dataset(old) as a, netCDF4.Dataset(new) as b:
        assert "abi_window_contrast" not in a.variables
        assert b.getncattr("simulator_version") == "2.6"
        for name in ("abi_reflectances", "abi_brightness_temperatures", "skt", "cloud_cover", "scene_type"):
            np.testing.assert_array_equal(a[name][:], b[name][:], err_msg=name)
        contrast = np.asarray(b["abi_window_contrast"][:])
        cloudy = np.asarray(b["scene_type"][:]) == 2
        assert np.all(contrast <= 0)
        assert np.median(contrast[cloudy]) < np.median(contrast[~cloudy]) - 3
    spec = FeatureSpec.for_sensor("abi", ["C01", "C13"])
    with ReferenceDataset(new, "abi", spec=spec) as dataset:
        block = dataset.read(0, 300)
    np.testing.assert_array_equal(block.features[:, spec.names.index("window_contrast")], contrast)
    with pytest.raises(SchemaError, match=r"v25\.nc has no abi_window_contrast \(simulator physics 2\.6 on\)"):
        ReferenceDataset(old, "abi", spec=spec)
    with ReferenceDataset(old, "abi", ["C01", "C13"]) as dataset:  # an earlier world trains as it did then
        assert dataset.spec.names == FeatureSpec.for_sensor("abi", ["C01", "C13"], window_contrast=False).names
        assert "window_contrast" not in dataset.spec.names


def test_specs_read_the_contrast_only_with_their_window_band() -> None:
    assert "window_contrast" in FeatureSpec.for_sensor("abi", ["C01", "C13", "C14"]).names
    assert "window_contrast" in FeatureSpec.for_sensor("viirs", ["M14", "M15"]).names
    assert "window_contrast" not in FeatureSpec.for_sensor("abi", ["C01", "C14"]).names
    assert "window_contrast" not in FeatureSpec.for_sensor("abi", ["C01", "C03"]).names
