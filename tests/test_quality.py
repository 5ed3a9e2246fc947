"""Retrieval-quality codes: night-model pixels, the sun-glint flag and which codes carry what."""

from __future__ import annotations

import dask.array as da
import numpy as np
import xarray as xr

from pipeline.features import (
    DAY_PIXEL,
    DEGRADED_GLINT,
    GOOD,
    NIGHT,
    NIGHT_RETRIEVED,
    NO_INPUT,
    cot_retrieved,
    mask_retrieved,
    retrieval_quality,
)
from pipeline.ingest import FLAG_FILL


def _scene(sza: list[float], vza: list[float], raa: list[float], surface: list[int], flags: list[int]) -> xr.Dataset:
    def column(values: list[float] | list[int], dtype: type) -> tuple[tuple[str, str], da.Array]:
        return ("y", "x"), da.from_array(np.array([values], dtype=dtype))

    return xr.Dataset(
        {
            "solar_zenith_angle": column(sza, np.float32),
            "sensor_zenith_angle": column(vza, np.float32),
            "relative_azimuth_angle": column(raa, np.float32),
            "albedo_type": column(surface, np.int16),
            "input_flags": column(flags, np.uint8),
            "h2o": column([2.0] * len(sza), np.float32),
            "o3": column([300.0] * len(sza), np.float32),
            "spress": column([1000.0] * len(sza), np.float32),
        }
    )


def test_sun_glint_is_flagged_only_for_models_trained_without_it() -> None:
    # water at the specular point, water far from it, land at the specular point
    scene = _scene([30, 30, 30], [30, 30, 30], [180, 40, 180], [17, 17, 12], [0, 0, 0])
    assert retrieval_quality(scene, flag_glint=True).compute().tolist() == [[DEGRADED_GLINT, GOOD, GOOD]]
    assert retrieval_quality(scene, flag_glint=False).compute().tolist() == [[GOOD, GOOD, GOOD]]


def test_night_model_takes_the_pixels_without_sun() -> None:
    scene = _scene([40, 120, 120], [30, 30, 30], [90, 90, 90], [12, 12, 12], [0, 0, FLAG_FILL])
    assert retrieval_quality(scene, night_model=True).compute().tolist() == [[DAY_PIXEL, NIGHT_RETRIEVED, NO_INPUT]]
    assert retrieval_quality(scene).compute().tolist() == [[GOOD, NIGHT, NIGHT]]


def test_night_pixels_have_mask_and_phase_but_no_cot() -> None:
    codes = np.arange(7)
    assert mask_retrieved(codes).tolist() == [True, True, False, False, False, True, True]
    assert cot_retrieved(codes).tolist() == [True, True, False, False, False, False, True]
