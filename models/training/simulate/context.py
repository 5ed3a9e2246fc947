"""The window contrast (``models.context``) of independent simulated pixels, drawn from their state.

The simulation has no neighbours, so each sample draws what its box would hold:

* **clear ground nearby**: the warmest clear ground of its own kind (water, or land within a few
  hundred metres of the pixel's height, as the estimator separates them) in a ~22 km box exceeds
  the pixel's own clear-sky brightness temperature by ``spread x (1.5 + 0.6 z)``, ``z`` standard
  normal: the maximum of a few tens of correlated neighbours lies about 1.5 standard deviations
  above their mean. ``spread`` is the clear-sky standard deviation of the box, drawn per sample:
  0.5-4 K over land and snow (sunlit and shaded slopes, soil moisture, the height left within the
  estimator's altitude bands), 0.1-0.8 K over water (sea-surface fronts). These ranges are this
  project's assumption, wide on purpose; no measured distribution of box-scale skin-temperature
  spread was at hand.
* **only cloud nearby**: the warmest cloud top of the box exceeds the pixel's by
  ``cloud_spread x (1.5 + 0.6 z)``, with 0.5-8 K of cloud-top temperature spread. A broken
  (partly covered) cloud nearly always has clear ground within the box (9 in 10); an overcast pixel
  half the time; a clear pixel always has itself.
* as the estimator at inference does, the pixel itself counts: the contrast is never positive.

The numbers describe typical scenes, not one granule; the real scenes in ``shared/granules`` judge
the result afterwards (``mthccar validate``).
"""

from __future__ import annotations

import numpy as np

from models.training.simulate.surface import WATER_CLASS

LAND_SPREAD_K = (0.5, 4.0)
WATER_SPREAD_K = (0.1, 0.8)
CLOUD_SPREAD_K = (0.5, 8.0)
WARM_EXCESS = 1.5  # standard deviations of the box's warmest value above its mean
WARM_SCATTER = 0.6
CLEAR_NEARBY_OVERCAST = 0.5  # chance an overcast pixel's box holds clear ground
CLEAR_NEARBY_BROKEN = 0.9  # ... and a partly covered pixel's


def draw_window_contrast(
    own_bt: np.ndarray,
    clear_sky_bt: np.ndarray,
    cloudy: np.ndarray,
    cloud_cover: np.ndarray,
    surface_class: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Window contrast (K, <= 0) of each sample from its observed and its clear-sky window BT.

    ``cloud_cover`` is 1 for overcast pixels (any value for clear ones).
    """
    n = len(own_bt)
    water = surface_class == WATER_CLASS
    spread = np.where(water, rng.uniform(*WATER_SPREAD_K, n), rng.uniform(*LAND_SPREAD_K, n))
    warmest_ground = clear_sky_bt + spread * (WARM_EXCESS + WARM_SCATTER * rng.normal(size=n))
    chance = np.where(np.nan_to_num(cloud_cover, nan=1.0) < 1.0, CLEAR_NEARBY_BROKEN, CLEAR_NEARBY_OVERCAST)
    ground_nearby = ~cloudy | (rng.random(n) < chance)
    cloud_spread = rng.uniform(*CLOUD_SPREAD_K, n)
    warmest_cloud = np.minimum(
        own_bt + cloud_spread * (WARM_EXCESS + WARM_SCATTER * rng.normal(size=n)), warmest_ground
    )
    background = np.maximum(own_bt, np.where(ground_nearby, warmest_ground, warmest_cloud))
    return (own_bt - background).astype(np.float32)
