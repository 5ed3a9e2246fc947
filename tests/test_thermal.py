"""The thermal simulator against known physics and a published split-window relation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from models.training.simulate.simulator import AtmosphereState
from models.training.simulate.thermal import THERMAL_BANDS, ThermalSimulator, temperature_at

ABI = ThermalSimulator(["C07", "C11", "C13", "C14", "C15"])
C07, C11, C13, C14, C15 = range(5)


def _state(n: int = 1, **overrides: object) -> AtmosphereState:
    base: dict[str, object] = {
        "solar_zenith": 100.0,
        "viewing_zenith": 0.0,
        "relative_azimuth": 90.0,
        "surface_pressure": 1013.0,
        "h2o": 4.5,
        "o3": 300.0,
        "surface_class": 17,
        "surface_brightness": 1.0,
        "snow_grain": 100.0,
        "surface_dryness": 0.0,
        "cloudy": False,
        "ice": False,
        "log10_cot": np.nan,
        "effective_radius": 10.0,
        "cloud_top_pressure": 800.0,
        "cloud_base_pressure": 900.0,
        "skin_temperature": 300.0,
        "air_temperature_offset": 1.0,
        "tropopause_temperature": 200.0,
    }
    base.update(overrides)
    return AtmosphereState(**{k: np.broadcast_to(np.asarray(v), (n,)).copy() for k, v in base.items()})


def test_planck_round_trip_with_the_l1b_constants() -> None:
    for band in THERMAL_BANDS.values():
        temperatures = np.array([200.0, 250.0, 300.0, 330.0])
        assert band.brightness_temperature(band.radiance(temperatures)) == pytest.approx(temperatures, abs=1e-6)


def test_clear_tropical_ocean_is_a_few_kelvin_below_the_skin() -> None:
    bt = ABI.brightness_temperature(_state(h2o=4.5))[0]
    assert 2.0 < 300.0 - bt[C13] < 8.0
    assert bt[C13] > bt[C14] > bt[C15]  # the cleanest window is 10.3 um


def test_split_window_difference_grows_with_water_vapour() -> None:
    bt = ABI.brightness_temperature(_state(3, h2o=np.array([0.5, 2.5, 5.0])))
    difference = bt[:, C14] - bt[:, C15]
    assert np.all(np.diff(difference) > 0.2)


def test_split_window_sst_relation_of_mcclain_et_al_1985() -> None:
    """MCSST (AVHRR 10.8/12.0 um): SST = 1.0346 T11 + 2.58 (T11 - T12) - 283.21 (deg C) recovers
    the skin temperature of simulated clear nadir oceans with VIIRS M15/M16 within about 1 K."""
    skin = np.array([275.0, 285.0, 292.0, 297.0, 300.0, 302.0])
    water = np.array([0.5, 1.5, 2.5, 3.5, 4.5, 5.0])
    bt = ThermalSimulator(["M15", "M16"]).brightness_temperature(
        _state(6, skin_temperature=skin, h2o=water, air_temperature_offset=1.0)
    )
    mcsst = 1.0346 * bt[:, 0] + 2.58 * (bt[:, 0] - bt[:, 1]) - 283.21 + 273.15
    assert np.sqrt(np.mean((mcsst - skin) ** 2)) < 1.0


def test_thick_cloud_is_close_to_its_top_temperature() -> None:
    for ice, top, radius in ((False, 700.0, 10.0), (True, 300.0, 30.0)):
        state = _state(
            cloudy=True,
            ice=ice,
            log10_cot=2.0,
            cloud_top_pressure=top,
            cloud_base_pressure=top + 100,
            effective_radius=radius,
        )
        top_temperature = temperature_at(np.array(top), np.array(1013.0), np.array(299.0), np.array(200.0))
        assert ABI.brightness_temperature(state)[0, C13] == pytest.approx(float(top_temperature), abs=2.0)


def test_8_4_minus_11_2_is_larger_for_ice_than_liquid_at_one_top_temperature() -> None:
    """Ice absorbs far more at 11 than at 8.5 um (k 0.28 against 0.037; water 0.097 against 0.036).

    With Mie spheres the contrast shows for the small crystals of cold cirrus tops (here 12 um);
    for equivalent spheres above about 20 um the absorption saturates in both bands and it fades,
    a known limit of spheres for ice in the infrared (README, thermal model limits).
    """
    common = {"cloudy": True, "log10_cot": 0.3, "cloud_top_pressure": 300.0, "cloud_base_pressure": 400.0}
    liquid = ABI.brightness_temperature(_state(ice=False, effective_radius=10.0, **common))[0]
    ice = ABI.brightness_temperature(_state(ice=True, effective_radius=12.0, **common))[0]
    assert ice[C11] - ice[C14] > liquid[C11] - liquid[C14] + 0.5


def test_3_9_um_reflected_sunlight_separates_liquid_from_ice_by_day_only() -> None:
    def difference(ice: bool, solar_zenith: float) -> float:
        state = _state(
            cloudy=True,
            ice=ice,
            log10_cot=1.0,
            effective_radius=30.0 if ice else 10.0,
            cloud_top_pressure=780.0,
            cloud_base_pressure=900.0,
            solar_zenith=solar_zenith,
        )
        bt = ABI.brightness_temperature(state)[0]
        return float(bt[C07] - bt[C14])

    assert difference(False, 30.0) > difference(True, 30.0) + 5.0  # small droplets reflect more at 3.9 um
    assert difference(False, 30.0) > 8.0
    assert abs(difference(False, 100.0)) < 3.0  # no sun: emission only


def test_simulator_needs_the_temperatures() -> None:
    with pytest.raises(ValueError, match="skin"):
        ABI.brightness_temperature(replace(_state(), skin_temperature=None))


def test_clear_ocean_8_5_um_is_only_slightly_colder_than_11_um() -> None:
    """Over a clear sea BT(8.5) - BT(11) is a small negative number that grows with water vapour
    (the 8.5 um window has more water-vapour absorption and sea water a slightly lower emissivity)."""
    bt = ABI.brightness_temperature(_state(3, h2o=np.array([0.5, 2.5, 5.0])))
    difference = bt[:, C11] - bt[:, C14]
    assert np.all((difference < -0.2) & (difference > -2.0))


def test_13_3_um_co2_band_sees_less_of_the_ground_and_more_of_a_cloud_top() -> None:
    """ABI C16 in the CO2 band's wing: clear-sky C13 - C16 of 10-25 K that grows with the ground's
    warmth (GOES-17 clear sky at C13 270-290 K: 16-19 K), less over high ground (a shorter CO2
    column), and a few kelvin for a thick high cloud, whose top lies above most of the CO2: the
    contrast CO2 slicing reads a cloud's height from."""
    co2 = ThermalSimulator(["C13", "C16"])
    warmth = co2.brightness_temperature(_state(3, skin_temperature=np.array([275.0, 290.0, 305.0]), h2o=1.5))
    clear = warmth[:, 0] - warmth[:, 1]
    assert np.all((clear > 10.0) & (clear < 25.0))
    assert np.all(np.diff(clear) > 1.0)
    plateau = co2.brightness_temperature(_state(skin_temperature=290.0, h2o=1.5, surface_pressure=700.0))[0]
    assert plateau[0] - plateau[1] < clear[1] - 3.0
    tops = co2.brightness_temperature(
        _state(
            2,
            cloudy=True,
            ice=True,
            log10_cot=1.5,
            effective_radius=30.0,
            cloud_top_pressure=np.array([300.0, 700.0]),
            cloud_base_pressure=np.array([400.0, 800.0]),
            skin_temperature=290.0,
            h2o=1.5,
        )
    )
    difference = tops[:, 0] - tops[:, 1]
    assert difference[0] < 4.0  # high top: above nearly all the CO2
    assert difference[1] > difference[0] + 3.0  # a lower top has more CO2 above it


def test_the_co2_band_changes_no_other_band() -> None:
    """Simulated beside C16 or without it, every other band's temperature is the same."""
    state = _state(
        4,
        cloudy=np.array([False, True, True, True]),
        ice=np.array([False, False, True, True]),
        log10_cot=np.array([np.nan, 0.3, -0.5, 1.2]),
        effective_radius=np.array([10.0, 12.0, 40.0, 25.0]),
        cloud_top_pressure=np.array([800.0, 750.0, 250.0, 400.0]),
        cloud_base_pressure=np.array([900.0, 850.0, 320.0, 520.0]),
    )
    with_co2 = ThermalSimulator(["C07", "C11", "C13", "C14", "C15", "C16"]).brightness_temperature(state)
    np.testing.assert_array_equal(with_co2[:, :5], ABI.brightness_temperature(state))
    alone = ThermalSimulator(["C16"]).brightness_temperature(state)[:, 0]
    assert np.all(np.isfinite(alone))
    assert np.all(alone[[1, 3]] < with_co2[[1, 3], 2])  # under a cloud too, C16 is colder than C13
