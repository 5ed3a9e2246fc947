"""Where the shared real granules are, and the same-time references the real day scene is judged by.

The demo, the model build's real-scene table, the tests and the benchmarks all read the same files;
one place names them.
"""

from __future__ import annotations

import os
from pathlib import Path

GRANULES_ENV = "MTHCCAR_GRANULES"
REAL_DAY_SCENE = ("abi", "g17_meso1_20191027T2000_day")
REAL_NIGHT_SCENE = ("abi", "g17_meso1_20191201T1027_night")
# NOAA's same-time GOES-17 CONUS fire product: its mask marks clear land and the clouds its tests found
REAL_FIRE_REFERENCE = ("abi", "g17_conus_20191027T2001_l2fire")


def granules_root() -> Path:
    """The shared real granules: ``$MTHCCAR_GRANULES``, else ``../shared/granules`` beside the checkout."""
    return Path(os.environ.get(GRANULES_ENV, Path(__file__).resolve().parents[2] / "shared" / "granules"))


def real_day_references() -> list[Path]:
    """The same-time FDCC and the real day scan's own C13, as ``mthccar validate`` takes them; empty
    unless both are there."""
    root = granules_root()
    fire = sorted(root.joinpath(*REAL_FIRE_REFERENCE).glob("OR_ABI-L2-FDC*.nc"))
    c13 = _scan_c13(REAL_DAY_SCENE)
    return [*fire, *c13] if fire and c13 else []


def real_night_references() -> list[Path]:
    """The real night scan's own C13, which judges its mask and phase (no operational product of that
    time is shared); empty when it is not there."""
    return _scan_c13(REAL_NIGHT_SCENE)


def _scan_c13(scene: tuple[str, ...]) -> list[Path]:
    """A shared real scan's 10.3 um (C13) L1b file, as a list (empty when it is not there)."""
    return sorted(granules_root().joinpath(*scene).glob("OR_ABI-L1b-Rad*C13_*.nc"))
