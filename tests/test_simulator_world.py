"""The training world's surfaces, aerosol, glint and geometry: known values and physical behaviour."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from models.bands import sensor_bands
from models.earth import igbp_class
from models.training.simulate.aerosol import AEROSOL_TYPES, TYPE_INDEX, aerosol_optics
from models.training.simulate.dataset import sample_state, simulate_bands
from models.training.simulate.geometry import geostationary_geometry
from models.training.simulate.surface import (
    LI_SPARSE_WHITE_SKY,
    ROSS_THICK_WHITE_SKY,
    cox_munk_glint,
    fresnel_reflectance,
    glint_angle,
    ross_li_kernels,
    ross_li_shape,
)
from models.training.simulate.surface_library import POOLS, crust_spectra, shipped_library

ABI = sensor_bands("abi").training_bands  # C01-C06


def test_ross_li_kernels_integrate_to_the_published_white_sky_values() -> None:
    """Bihemispherical integrals of the kernels equal Lucht et al. (2000), table 1."""
    x, w = np.polynomial.legendre.leggauss(48)
    mu, weight = 0.5 * (x + 1), 0.5 * w
    phi = np.linspace(0, 180, 181)
    phi_weight = np.full(181, 1.0)
    phi_weight[[0, -1]] = 0.5
    phi_weight /= phi_weight.sum()
    mu0, mu_v, azimuth = np.meshgrid(mu, mu, phi, indexing="ij")
    k_vol, k_geo = ross_li_kernels(np.degrees(np.arccos(mu0)), np.degrees(np.arccos(mu_v)), azimuth)
    measure = 4 * weight[:, None, None] * weight[None, :, None] * phi_weight[None, None, :] * mu0 * mu_v
    assert (k_vol * measure).sum() == pytest.approx(ROSS_THICK_WHITE_SKY, abs=1e-4)
    assert (k_geo * measure).sum() == pytest.approx(LI_SPARSE_WHITE_SKY, abs=1e-3)


def test_brdf_hot_spot_is_brightest_in_backscatter() -> None:
    raa = np.array([0.0, 30.0, 90.0, 180.0])
    shape = ross_li_shape(np.full(4, 50.0), np.full(4, 50.0), raa, np.full(4, 0.5), np.full(4, 0.15))
    assert shape[0] > 1.25
    assert np.all(np.diff(shape) < 0)
    assert shape[-1] < 1


def test_fresnel_and_glint_known_values() -> None:
    # normal incidence: ((n - 1) / (n + 1))^2 = 0.0205 for n = 1.334
    assert fresnel_reflectance(np.array(1.0)) == pytest.approx(((1.334 - 1) / (1.334 + 1)) ** 2, rel=1e-6)
    # at the specular point the facet is flat: BRF = R(theta) / (4 mu0^2 sigma^2)
    wind = 5.0
    sigma2 = 0.003 + 0.00512 * wind
    expected = fresnel_reflectance(np.cos(np.radians(30.0))) / (4 * np.cos(np.radians(30.0)) ** 2 * sigma2)
    centre = cox_munk_glint(np.array(30.0), np.array(30.0), np.array(180.0), np.array(wind))
    assert centre == pytest.approx(expected, rel=1e-6)
    assert glint_angle(np.array(30.0), np.array(30.0), np.array(180.0)) == pytest.approx(0.0, abs=1e-6)
    # calmer sea: a brighter, narrower glint
    calm = cox_munk_glint(np.array([30.0, 30.0]), np.array([30.0, 30.0]), np.array([180.0, 150.0]), np.array(2.0))
    rough = cox_munk_glint(np.array([30.0, 30.0]), np.array([30.0, 30.0]), np.array([180.0, 150.0]), np.array(12.0))
    assert calm[0] > rough[0]
    assert calm[1] / calm[0] < rough[1] / rough[0]


def test_aerosol_spectral_optics_follow_the_type_table() -> None:
    wavelengths = np.array([0.47, 0.55, 1.61])
    for name in ("smoke", "dust"):
        kind = np.array([TYPE_INDEX[name]])
        tau, ssa, g = aerosol_optics(np.array([1.0]), kind, wavelengths)
        angstrom = AEROSOL_TYPES[TYPE_INDEX[name]].angstrom
        assert tau[0, 1] == pytest.approx(1.0)
        assert tau[0, 0] / tau[0, 2] == pytest.approx((0.47 / 1.61) ** -angstrom)
        assert np.all((ssa > 0.75) & (ssa <= 0.99))
        assert np.all((g > 0.4) & (g < 0.8))
    smoke = aerosol_optics(np.array([1.0]), np.array([TYPE_INDEX["smoke"]]), wavelengths)
    dust = aerosol_optics(np.array([1.0]), np.array([TYPE_INDEX["dust"]]), wavelengths)
    assert smoke[0][0, 2] < 0.15 < dust[0][0, 2]  # fine smoke is gone by 1.6 um, coarse dust is not


def _clear(state_n: int = 400, seed: int = 3):
    state = sample_state(state_n, np.random.default_rng(seed))
    return replace(state, cloudy=np.zeros(state_n, bool), ice=np.zeros(state_n, bool))


def test_aerosol_brightens_dark_water_most_in_the_blue() -> None:
    base = _clear()
    water = replace(
        base,
        surface_class=np.full(len(base), 17, np.int16),
        wind_speed=np.full(len(base), 3.0),
        relative_azimuth=np.full(len(base), 60.0),
        solar_zenith=np.full(len(base), 40.0),
        viewing_zenith=np.full(len(base), 30.0),
        aerosol_type=np.full(len(base), TYPE_INDEX["smoke"], np.int16),
    )
    clean = simulate_bands(ABI, replace(water, aerosol_aod=np.full(len(base), 0.02)))
    smoky = simulate_bands(ABI, replace(water, aerosol_aod=np.full(len(base), 1.5)))
    gain = (smoky - clean).mean(axis=0)
    assert gain[0] > 0.08
    assert gain[0] > 3 * gain[4]


def test_sun_glint_brightens_water_at_the_specular_geometry() -> None:
    base = _clear(8)
    water = replace(
        base,
        surface_class=np.full(8, 17, np.int16),
        aerosol_aod=np.full(8, 0.05),
        wind_speed=np.full(8, 5.0),
        solar_zenith=np.full(8, 30.0),
        viewing_zenith=np.full(8, 30.0),
    )
    glint = simulate_bands(ABI, replace(water, relative_azimuth=np.full(8, 180.0)))
    away = simulate_bands(ABI, replace(water, relative_azimuth=np.full(8, 60.0)))
    assert np.all(glint[:, 2] > away[:, 2] + 0.1)  # C03


def test_surface_library_holds_measured_pools() -> None:
    library = shipped_library()
    assert set(library.spectra) == set(POOLS)
    at = library.at(np.array([0.47, 0.65, 0.86, 1.61]))
    green, soil = np.median(at["green"], axis=0), np.median(at["soil"], axis=0)
    assert green[2] > 3 * green[1]  # the red edge
    assert soil[0] > 2 * green[0]
    assert soil[3] > green[3]
    assert all(np.all((rows >= 0) & (rows <= 1.05)) for rows in library.spectra.values())


def test_playa_crusts_are_bright_flat_and_darker_in_the_blue_and_at_2_2_um() -> None:
    at = shipped_library().at(np.array([0.47, 0.65, 0.86, 1.61, 2.20]))["crust"]
    assert len(at) == 200
    assert np.all(at[:, 1] >= 0.25)  # playas reflect more than 0.3 in the visible (CEOS LANDNET)
    assert np.all(at[:, 0] < at[:, 1])  # lower blue
    assert np.all(np.abs(at[:, 2] / at[:, 1] - 1) < 0.05)  # flat across the red and near infrared
    assert np.median(at[:, 4] / at[:, 3]) < 0.95  # the clay/sulfate and moisture dip at 2.2 um
    # the same pool everywhere: drawn from a fixed seed
    np.testing.assert_array_equal(shipped_library().spectra["crust"], crust_spectra(shipped_library().wavelength_um))


def test_barren_land_mixes_soil_crust_and_sparse_vegetation() -> None:
    state = sample_state(20_000, np.random.default_rng(2))
    barren = state.surface_class == 16
    assert state.land_fractions is not None
    crust = state.land_fractions[barren, POOLS.index("crust")]
    soil = state.land_fractions[barren, POOLS.index("soil")]
    assert 0.25 < crust.mean() < 0.35
    assert 0.45 < soil.mean() < 0.6
    assert np.mean(crust > 0.5) > 0.1  # whole playas, not only specks of crust
    forest = np.isin(state.surface_class, (1, 2, 3, 4, 5))
    assert np.all(state.land_fractions[forest, POOLS.index("crust")] == 0)


def test_sampled_land_mixtures_are_convex_and_cover_soil_bright_land() -> None:
    state = sample_state(4000, np.random.default_rng(0))
    land = np.isin(state.surface_class, (*range(1, 15), 16, 18))
    assert state.land_fractions is not None
    assert np.allclose(state.land_fractions[land].sum(axis=1), 1.0)
    albedo = state.albedo(np.array([0.47]))[:, 0]
    open_land = np.isin(state.surface_class, (7, 9, 10))
    assert np.percentile(albedo[open_land], 90) > 0.12  # bright soil and dry grass are in the world


def test_geostationary_geometry_stays_in_the_sampled_ranges() -> None:
    sza, vza, raa = geostationary_geometry(2000, np.random.default_rng(1), 80.0, 70.0)
    assert len(sza) == 2000
    assert sza.max() < 80
    assert vza.max() < 70
    assert raa.min() >= 0
    assert raa.max() <= 180
    assert np.median(vza) > 35  # a geostationary disk is seen mostly at oblique angles


def test_land_cover_map_knows_known_places() -> None:
    lat = np.array([-5.0, 23.0, 36.3, -80.0, 30.0, np.nan])
    lon = np.array([-65.0, 12.0, -120.0, 30.0, -40.0, 0.0])
    classes = igbp_class(lat, lon)
    assert classes[0] == 2  # Amazon: evergreen broadleaf forest
    assert classes[1] == 16  # central Sahara: barren
    assert classes[2] == 12  # San Joaquin valley: croplands
    assert classes[3] == 15  # Antarctic plateau: permanent snow and ice
    assert classes[4] == 17
    assert classes[5] == 17


def test_thermal_training_files_feed_day_and_night_specs(tmp_path) -> None:
    from models.training.data import ReferenceDataset
    from models.training.simulate.dataset import simulate_dataset

    day = simulate_dataset(tmp_path / "day.nc", "abi", 600, seed=1)
    night = simulate_dataset(tmp_path / "night.nc", "thermal", 600, seed=2, night=True)
    with ReferenceDataset(day, "abi", ["C01", "C13", "C14"]) as dataset:
        block = dataset.read(0, 600)
        assert dataset.spec.names[:4] == ["C01", "C13", "C14", "h2o"]
        assert "skt" in dataset.spec.names
        assert np.all((block.features[:, 1] > 180) & (block.features[:, 1] < 345))
    with ReferenceDataset(night, "viirs", ["M12", "M15", "M16"]) as dataset:
        assert dataset.spec.night
        assert "cos_solar_zenith_angle" not in dataset.spec.names
        assert dataset.read(0, 600).features.shape == (600, dataset.spec.size)


def test_night_water_vapour_rises_above_inversions_and_reaches_models_with_its_error(tmp_path) -> None:
    """At night the column may hold far more water than the cooled ground's air could (a 2 cm column
    over 260 K land), and night models see it through a climatology-sized error; day files keep the
    exact column (their models were trained without it)."""
    import netCDF4

    from models.training.data import ReferenceDataset
    from models.training.simulate.dataset import saturated_column_cm, simulate_dataset

    night = simulate_dataset(tmp_path / "night.nc", "thermal", 6000, seed=3, night=True)
    day = simulate_dataset(tmp_path / "day.nc", "abi", 500, seed=3)
    with netCDF4.Dataset(night) as nc:
        h2o, given = np.asarray(nc["h2o"][:]), np.asarray(nc["h2o_input"][:])
        skin, land = np.asarray(nc["skin_temperature"][:]), ~np.isin(nc["albedo_type"][:], (15, 17, 19, 20))
    cold_moist = land & (skin < 265.0) & (h2o > 0.8)
    assert cold_moist.sum() > 10
    # the old bound: the air at most 8 K warmer than the ground, saturated
    assert np.all(h2o[cold_moist] > saturated_column_cm(skin[cold_moist] + 8.0))
    log_ratio = np.log(given / h2o)
    assert 0.2 < np.std(log_ratio) < 0.6
    assert abs(np.median(log_ratio)) < 0.05
    with ReferenceDataset(night, "abi", ["C13", "C14"]) as dataset:
        features = dataset.read(0, 6000).features
        assert np.allclose(features[:, dataset.spec.names.index("h2o")], given)
    with netCDF4.Dataset(day) as nc:
        assert "h2o_input" not in nc.variables


def test_synthetic_columns_are_never_supersaturated() -> None:
    """Synthetic scenes take the zonal water-vapour climatology, bounded by what their air holds."""
    import datetime as dt

    from models.synthetic.scenes import with_temperatures
    from models.training.simulate.dataset import saturated_column_cm

    state = sample_state(500, np.random.default_rng(4))
    night = replace(state, solar_zenith=np.full(500, 130.0), h2o=np.full(500, 2.3))
    lat, lon = np.full(500, 38.0), np.full(500, -117.0)
    hot = with_temperatures(night, lat, lon, dt.datetime(2019, 10, 27, 9, 30))
    air = hot.skin_temperature - hot.air_temperature_offset
    assert np.all(hot.h2o <= saturated_column_cm(air) + 1e-9)
    land = hot.surface_class != 17
    assert np.all(hot.air_temperature_offset[land] < 0)  # the ground is colder than the air at night
    assert hot.h2o[land].max() < 2.3


def test_broken_clouds_train_mask_and_phase_but_not_cot(tmp_path) -> None:
    """A physics 2.5 file marks partly covered pixels; they are cloudy targets with no COT truth, so
    the COT loss and metrics skip them while mask and phase keep them."""
    import torch

    from models.mthccar import MTHCCAR
    from models.training.data import ReferenceDataset, has_cot_truth
    from models.training.evaluate import compute_metrics, predict
    from models.training.simulate.dataset import simulate_dataset
    from models.training.train import TrainConfig, _tensors, compute_loss

    path = simulate_dataset(tmp_path / "broken.nc", "abi", 800, seed=4, workers=1, physics="2.5")
    with ReferenceDataset(path, "abi", ["C01", "C13"]) as dataset:
        block = dataset.read(0, 800)
        spec_size = dataset.spec.size
    cloudy = block.cloudy > 0.5
    broken = cloudy & ~has_cot_truth(block)
    assert 0.15 < broken.sum() / cloudy.sum() < 0.35
    assert np.all(block.cot_class[broken] == -1)
    assert np.all(np.isfinite(block.log10_cot[~broken]))
    torch.manual_seed(0)
    model = MTHCCAR(spec_size)
    loss, parts = compute_loss(model, _tensors(block, torch.device("cpu")), TrainConfig(sensor="abi"))
    assert np.isfinite(loss.item())
    assert all(np.isfinite(v) for v in parts.values())
    pred = predict(model.eval(), block.features)
    pred["cloud_mask_probability"] = np.ones(len(block), dtype=np.float32)  # every point judged
    metrics = compute_metrics(pred, block)
    assert metrics["log10_cot"]["all"]["n"] == int((cloudy & ~broken).sum())
    assert np.isfinite(metrics["log10_cot"]["all"]["rmse"])
    assert metrics["phase"]["n"] == int(cloudy.sum())
