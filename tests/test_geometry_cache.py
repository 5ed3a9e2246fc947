"""The fixed geostationary geometry, computed once per grid and memory-mapped by later scans."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from pipeline import geometry_cache
from pipeline.granules import single_granule
from pipeline.ingest import ingest

BANDS = ["C01", "C13"]
ANGLES = ("solar_zenith_angle", "sensor_zenith_angle", "relative_azimuth_angle", "latitude", "longitude")


@pytest.fixture
def day_granule(granules: Path):
    return single_granule([granules / "abi" / "g17_meso1_20191027T2000_day"])


def test_cached_geometry_equals_satpy_and_is_built_once(
    day_granule, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MTHCCAR_GEOMETRY_CACHE", "off")
    plain = ingest(day_granule, BANDS)[list(ANGLES)].compute()
    monkeypatch.setenv("MTHCCAR_GEOMETRY_CACHE", str(tmp_path))
    builds = []
    original = geometry_cache._build
    monkeypatch.setattr(geometry_cache, "_build", lambda *a, **k: builds.append(1) or original(*a, **k))
    first = ingest(day_granule, BANDS)[list(ANGLES)].compute()
    second = ingest(day_granule, BANDS)[list(ANGLES)].compute()
    assert builds == [1]  # the second scan maps what the first one built
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left
    for name in ANGLES:
        a, b = first[name].values, plain[name].values
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=name)
        np.testing.assert_allclose(a, b, atol=1e-4, equal_nan=True, err_msg=name)
        np.testing.assert_array_equal(second[name].values, a, err_msg=name)


def test_concurrent_scans_publish_one_cache(day_granule, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTHCCAR_GEOMETRY_CACHE", str(tmp_path))
    results: list[object] = []

    def read() -> None:
        results.append(ingest(day_granule, BANDS)["sensor_zenith_angle"].values)

    threads = [threading.Thread(target=read) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 3
    assert len(list(tmp_path.iterdir())) == 1  # one grid directory, no staging copies


def test_an_unwritable_cache_falls_back_to_computing(
    day_granule, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    monkeypatch.setenv("MTHCCAR_GEOMETRY_CACHE", str(blocked / "cache"))
    scene = ingest(day_granule, BANDS)
    assert np.isfinite(scene["sensor_zenith_angle"].values).any()
    assert "is not writable" in caplog.text
