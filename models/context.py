"""Window contrast: how much colder a pixel's 11 um window band is than the warmest ground near it.

A pixel's own radiances cannot say what its clear sky would look like, and the skin-temperature
input (a climatology or an NWP field) misses by several kelvin, which is what most held-out mask
errors of the infrared models come down to. Operational masks read the missing background off the
scene itself: the ABI Clear Sky Mask's relative thermal contrast test and CLAVR-x's spatial tests
compare the 11 um brightness temperature with the warmest of its neighbours. This module is that
estimate, one definition for the training simulation and for inference:

``window_contrast = BT - background``, ``background = max(BT, warmest 3 x 3 median within the box)``

* the box is about ``BOX_KM`` on a side in the model grid's pixels (``box_pixels``);
* water and land each take their background from their own kind (the simulator's spreads are
  those of one surface; across a coast the sea is often 10 K colder than the land by day);
* the 3 x 3 median keeps a lone hot pixel (a fire, a noisy detector) from warming its whole box;
* the pixel itself always counts, so the contrast is never positive.

A clear pixel's contrast is the clear-sky spread of its box (a few kelvin on land, under one over
the sea); a cloud's is its top's coldness against the ground around it, unless the whole box is
cloud. The simulator draws both from the same description (``models.training.simulate.context``).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import maximum_filter, median_filter

WINDOW_BAND = {"abi": "C13", "viirs": "M15"}  # the 10.3-10.8 um window band of each thermal sensor
PIXEL_KM = {"abi": 2.0, "viirs": 0.75}  # the model grid's nominal pixel (ABI IR 2 km, VIIRS M bands)
BOX_KM = 22.0
SOURCE = "window_contrast"


def window_band(sensor: str) -> str:
    """The band whose contrast a ``sensor`` model reads; a clear error for sensors without one."""
    try:
        return WINDOW_BAND[sensor]
    except KeyError:
        raise ValueError(f"{sensor} has no thermal window band, so no window contrast") from None


def box_pixels(sensor: str) -> int:
    """The box side in pixels, odd so that it centres on the pixel."""
    pixels = round(BOX_KM / PIXEL_KM[sensor])
    return pixels + 1 - pixels % 2


def halo_pixels(sensor: str) -> int:
    """Pixels a chunk needs from its neighbours for the result not to depend on chunking."""
    return box_pixels(sensor) // 2 + 1


def _box_maximum(bt: np.ndarray, box: int) -> np.ndarray:
    """The box maximum of ``bt``'s 3 x 3 median, -inf where the box holds no value."""
    return maximum_filter(median_filter(bt, size=3, mode="nearest"), size=box, mode="nearest")


def warm_background(bt: np.ndarray, box: int, water: np.ndarray | None = None) -> np.ndarray:
    """``max(bt, the box maximum of bt's 3 x 3 median)`` (K); missing values (NaN) never count.

    With ``water`` (bool, same shape), water pixels take the background of the water in their box
    and land pixels that of the land: by day the sea is often 10 K colder than the shore, and a
    clear sea pixel is not a cloud for being colder than the land next to it.
    """
    missing = ~np.isfinite(bt)
    low = np.where(missing, -np.inf, bt)
    kinds = [np.ones(bt.shape, dtype=bool)] if water is None else [water, ~water]
    nearby = np.full(bt.shape, -np.inf)
    for kind in kinds:
        if kind.any():  # a chunk of open sea or inland ground filters once
            nearby = np.where(kind, _box_maximum(np.where(kind, low, -np.inf), box), nearby)
    background = np.maximum(nearby, low)
    return np.where(missing | ~np.isfinite(background), np.nan, background)


def window_contrast(bt: np.ndarray, box: int, water: np.ndarray | None = None) -> np.ndarray:
    """``bt`` minus its warm background (K, <= 0; NaN where ``bt`` is missing), float32."""
    values = np.asarray(bt, dtype=np.float64)
    return (values - warm_background(values, box, water)).astype(np.float32)
