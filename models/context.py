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
* land takes it from land at about its own height (``ALTITUDE_BAND_M``) and from lower land as
  that land would be at the pixel's height (6.5 K/km colder), never from higher land: across 22 km
  of mountains the ground spans a kilometre or more, colder upwards by day, while at night cold air
  pools in the valleys under warmer slopes; a clear ridge or valley is not a cloud for being colder
  than ground a kilometre below or above it;
* the 3 x 3 median (over the pixel's own kind of surface) keeps a lone hot pixel (a fire, a noisy
  detector) from warming its whole box;
* the pixel itself always counts, so the contrast is never positive.

A clear pixel's contrast is the clear-sky spread of its box (a few kelvin on land, under one over
the sea); a cloud's is its top's coldness against the ground around it, unless the whole box is
cloud. The simulator draws both from the same description (``models.training.simulate.context``).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy.ndimage import maximum_filter, median_filter

WINDOW_BAND = {"abi": "C13", "viirs": "M15"}  # the 10.3-10.8 um window band of each thermal sensor
PIXEL_KM = {"abi": 2.0, "viirs": 0.75}  # the model grid's nominal pixel (ABI IR 2 km, VIIRS M bands)
BOX_KM = 22.0
# land compares with land whose terrain height lies in its own band or the next one up or down, so
# within 2 x 200 m of its own (under 2.6 K at the 6.5 K/km standard lapse rate)
ALTITUDE_BAND_M = 200.0
# lower land counts as it would be at the pixel's height: the standard atmosphere's lapse rate, the
# one the skin-temperature climatology (``models.earth``) takes too
LAPSE_RATE_K_PER_M = 0.0065
SOURCE = "window_contrast"

Group = tuple[np.ndarray, np.ndarray, np.ndarray | None]


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


def _surfaces(shape: tuple[int, ...], water: np.ndarray | None) -> list[tuple[np.ndarray, bool]]:
    """(pixels of one kind of surface, whether it is land): water and land apart, or all as one."""
    if water is None:
        return [(np.ones(shape, dtype=bool), False)]
    return [(water, False), (~water, True)]


def _groups(surface: np.ndarray, is_land: bool, height: np.ndarray | None) -> Iterator[Group]:
    """(pixels that take this background, pixels it is taken from as they are, lower pixels it is
    taken from brought up to the takers' height, or None): land from land within one altitude band
    of its own (``ALTITUDE_BAND_M``) and from lower land; any other surface from itself. ``height``
    is the terrain height (m) without missing values."""
    if not is_land or height is None:
        yield surface, surface, None
        return
    band = np.floor(height / ALTITUDE_BAND_M).astype(np.int64)
    for b in np.unique(band[surface]):
        lower = surface & (band < b - 1)
        yield surface & (band == b), surface & (np.abs(band - b) <= 1), lower if lower.any() else None


def warm_background(
    bt: np.ndarray, box: int, water: np.ndarray | None = None, altitude: np.ndarray | None = None
) -> np.ndarray:
    """``max(bt, the box maximum of bt's 3 x 3 median)`` (K); missing values (NaN) never count.

    With ``water`` (bool, same shape), water pixels take the background of the water in their box
    and land pixels that of the land: by day the sea is often 10 K colder than the shore, and a
    clear sea pixel is not a cloud for being colder than the land next to it. With ``altitude`` (m,
    same shape) too, land takes it from land within one ``ALTITUDE_BAND_M`` band of its own height,
    and from lower land as that land would be at its height (``LAPSE_RATE_K_PER_M`` colder); higher
    land never counts (at night it can be warmer than the cold air pooled below it).
    """
    missing = ~np.isfinite(bt)
    low = np.where(missing, -np.inf, bt)
    height = None if altitude is None else np.nan_to_num(np.asarray(altitude, dtype=np.float64))
    nearby = np.full(bt.shape, -np.inf)
    for surface, is_land in _surfaces(bt.shape, water):
        if not surface.any():  # a chunk of open sea or inland ground filters once
            continue
        # the 3 x 3 median over the surface's own pixels, so that a lone hot pixel (a fire, a noisy
        # detector) does not warm its whole box
        smooth = median_filter(np.where(surface, low, -np.inf), size=3, mode="nearest")
        for takers, givers, lower in _groups(surface, is_land, height):
            # only the takers' extent and half a box around it matter (an altitude band is often a
            # small part of a chunk)
            window = _extent(takers, box // 2 + 1)
            candidate = _box_maximum(np.where(givers[window], smooth[window], -np.inf), box)
            if lower is not None and height is not None:
                lift = LAPSE_RATE_K_PER_M * height[window]
                from_below = _box_maximum(np.where(lower[window], smooth[window] + lift, -np.inf), box) - lift
                candidate = np.maximum(candidate, from_below)
            nearby[window] = np.where(takers[window], candidate, nearby[window])
    background = np.maximum(nearby, low)
    return np.where(missing | ~np.isfinite(background), np.nan, background)


def _box_maximum(values: np.ndarray, box: int) -> np.ndarray:
    """The maximum of ``values`` in the box around each pixel, -inf where the box holds none."""
    return maximum_filter(values, size=box, mode="nearest")


def _extent(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    """The bounding box of ``mask``'s true pixels widened by ``margin``, within the array."""
    bounds = []
    for axis in range(mask.ndim):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        bounds.append(slice(max(int(hit[0]) - margin, 0), min(int(hit[-1]) + margin + 1, mask.shape[axis])))
    return tuple(bounds)


def window_contrast(
    bt: np.ndarray, box: int, water: np.ndarray | None = None, altitude: np.ndarray | None = None
) -> np.ndarray:
    """``bt`` minus its warm background (K, <= 0; NaN where ``bt`` is missing), float32."""
    values = np.asarray(bt, dtype=np.float64)
    return (values - warm_background(values, box, water, altitude)).astype(np.float32)
