"""The offline Earth: the packed, memory-mapped land mask answers as global-land-mask does."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from models import earth


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("MTHCCAR_CACHE_DIR", str(tmp_path / "cache"))
    earth._ocean_bits.cache_clear()
    yield tmp_path / "cache"
    earth._ocean_bits.cache_clear()


@cache
def _package_answers() -> np.ndarray:
    """``globe.is_ocean`` at ``_points()``, from the package's own file (importing it pins 933 MB)."""
    lat, lon = _points()
    with np.load(earth._land_mask_file()) as npz:
        mask, lat_axis, lon_axis = npz["mask"], npz["lat"], npz["lon"]
    i = ((np.clip(lat, lat_axis.min(), lat_axis.max()) - lat_axis[0]) / (lat_axis[1] - lat_axis[0])).astype(int)
    j = ((np.clip(lon, lon_axis.min(), lon_axis.max()) - lon_axis[0]) / (lon_axis[1] - lon_axis[0])).astype(int)
    return mask[i, j]


def _points() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    lat = np.r_[rng.uniform(-90, 90, 100_000), 90.0, -90.0, 0.0, 89.999, -89.999]
    lon = np.r_[rng.uniform(-180, 180, 100_000), -180.0, 179.9999, 0.0, 179.999999, -179.99]
    return lat, lon


def test_packed_mask_matches_the_package_and_is_cached(fresh_cache: Path) -> None:
    lat, lon = _points()
    np.testing.assert_array_equal(earth.is_ocean(lat, lon), _package_answers())
    (cached,) = fresh_cache.glob("ocean_mask_packed_*.npy")
    assert cached.stat().st_size > 100_000_000
    assert not list(fresh_cache.glob(".*"))  # no temporary left behind
    assert isinstance(earth._ocean_bits()[0], np.memmap)


def test_known_places(fresh_cache: Path) -> None:
    # Fresno (CA), the central Pacific, Lake Victoria (a lake counts as land), the Sahara, the Southern Ocean
    lat = np.array([36.74, 0.0, -1.0, 23.0, -60.0])
    lon = np.array([-119.79, -140.0, 33.0, 10.0, 0.0])
    assert earth.is_ocean(lat, lon).tolist() == [False, True, False, False, True]
    classes = earth.land_water_class(np.r_[lat, np.nan], np.r_[lon, 0.0])
    assert classes.tolist() == [12, 17, 12, 12, 17, 17]


def test_corrupt_cache_is_rebuilt(fresh_cache: Path) -> None:
    earth.is_ocean(np.array([0.0]), np.array([0.0]))
    (cached,) = fresh_cache.glob("ocean_mask_packed_*.npy")
    cached.write_bytes(cached.read_bytes()[:1000])  # truncated by a full disk, say
    earth._ocean_bits.cache_clear()
    lat, lon = _points()
    np.testing.assert_array_equal(earth.is_ocean(lat, lon), _package_answers())
    assert cached.stat().st_size > 100_000_000


def test_unwritable_cache_falls_back_to_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("MTHCCAR_CACHE_DIR", str(blocker / "cache"))
    earth._ocean_bits.cache_clear()
    try:
        lat, lon = _points()
        np.testing.assert_array_equal(earth.is_ocean(lat, lon), _package_answers())
        assert not isinstance(earth._ocean_bits()[0], np.memmap)
    finally:
        earth._ocean_bits.cache_clear()
