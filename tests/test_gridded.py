"""Products on a map grid (``--area``): footprint, values kept by nearest neighbour, format, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from pipeline.granules import single_granule
from pipeline.gridded import AreaError, gridded_path, resolve_area
from pipeline.process import ProcessOptions, process_granule
from tests.support.compliance import compliance_issues

AREA_YAML = """
swath_box:
  description: A 10 km equal-area grid around the synthetic granules (coarse swaths ~3000 km wide)
  projection:
    proj: laea
    lat_0: {lat}
    lon_0: {lon}
    datum: WGS84
  shape:
    height: 360
    width: 360
  area_extent:
    lower_left_xy: [-1800000.0, -1800000.0]
    upper_right_xy: [1800000.0, 1800000.0]
other:
  description: unused
  projection:
    proj: longlat
    datum: WGS84
  shape:
    height: 10
    width: 10
  area_extent:
    lower_left_xy: [0.0, 0.0]
    upper_right_xy: [1.0, 1.0]
"""


def _area_file(product: Path, target: Path) -> Path:
    with xr.open_dataset(product) as ds:
        lat, lon = float(ds["latitude"].mean()), float(ds["longitude"].mean())
    target.write_text(AREA_YAML.format(lat=lat, lon=lon))
    return target


@pytest.fixture(scope="module", params=["viirs_l1b", "oci"])
def swath_product(request, synthetic_granules: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp(f"grid_{request.param}")
    return process_granule(
        single_granule([synthetic_granules[request.param]]), ProcessOptions(out_dir=out, quicklook=False)
    ).product


def _haversine_km(lat1: np.ndarray, lon1: np.ndarray, lat2: float, lon2: float) -> np.ndarray:
    la1, lo1, la2, lo2 = map(np.deg2rad, (lat1, lon1, lat2, lon2))
    h = np.sin((la2 - la1) / 2) ** 2 + np.cos(la1) * np.cos(la2) * np.sin((lo2 - lo1) / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(h))


def test_swath_on_an_area_covers_its_footprint_and_keeps_native_values(swath_product: Path, tmp_path: Path) -> None:
    from pipeline.gridded import grid_product

    area = resolve_area(f"{_area_file(swath_product, tmp_path / 'areas.yaml')}:swath_box")
    gridded = grid_product(swath_product, area)
    assert gridded == gridded_path(swath_product, "swath_box")
    with xr.open_dataset(swath_product) as native, xr.open_dataset(gridded) as grid:
        lat, lon = native["latitude"].values, native["longitude"].values
        mask = native["cloud_mask"].values
        probability = native["cloud_mask_probability"].values
        glat, glon = grid["latitude"].values, grid["longitude"].values
        gmask = grid["cloud_mask"].values
        gprobability = grid["cloud_mask_probability"].values
        assert grid["cloud_mask"].attrs["flag_meanings"] == native["cloud_mask"].attrs["flag_meanings"]
        assert grid["cloud_mask"].attrs["grid_mapping"] == "crs"
        assert grid["crs"].attrs["grid_mapping_name"] == "lambert_azimuthal_equal_area"
    filled = np.isfinite(gmask)
    # the footprint: filled cells lie on the swath, and the swath's interior is filled
    inside_box = (glat > np.nanmin(lat)) & (glat < np.nanmax(lat)) & (glon > np.nanmin(lon)) & (glon < np.nanmax(lon))
    assert filled.sum() > 1000
    assert np.all(inside_box[filled] | (np.abs(glat[filled] - np.nanmean(lat)) < 5))
    centre = _haversine_km(glat, glon, float(np.nanmean(lat)), float(np.nanmean(lon))) < 20
    assert filled[centre].all()
    reach = np.nanmax(_haversine_km(lat, lon, float(np.nanmean(lat)), float(np.nanmean(lon))))
    far = _haversine_km(glat, glon, float(np.nanmean(lat)), float(np.nanmean(lon))) > reach + 100
    assert far.any()
    assert not filled[far].any()  # nothing beyond the swath's own reach (plus a cell)
    # nearest neighbour: every gridded value is one native pixel's, mask and probability from the same pixel
    assert set(np.unique(gmask[filled])) <= {0.0, 1.0}
    np.testing.assert_array_equal(gmask[filled] == 1, gprobability[filled] >= 0.5)
    rows, cols = np.nonzero(filled)
    for k in np.random.default_rng(0).choice(len(rows), 25, replace=False):
        row, col = rows[k], cols[k]
        distance = np.nan_to_num(_haversine_km(lat, lon, float(glat[row, col]), float(glon[row, col])), nan=1e9)
        # the nearest native pixel (or its runner-up where two are equally near on the ellipsoid)
        candidates = np.argsort(distance, axis=None)[:2]
        assert any(
            gmask[row, col] == mask.flat[i] and gprobability[row, col] == probability.flat[i] for i in candidates
        ), (row, col)
    issues = compliance_issues(gridded)
    assert issues["high"] == []
    assert issues["medium"] == []


def test_cli_writes_the_gridded_product_and_refuses_an_unknown_area(
    synthetic_granules: dict[str, Path], tmp_path: Path
) -> None:
    from flows.cli import app

    runner = CliRunner()
    bad = runner.invoke(app, ["process", str(synthetic_granules["oci"]), "--out", str(tmp_path), "--area", "mars"])
    assert bad.exit_code == 1
    assert "unknown area 'mars': shipped areas are conus, europe, global_0p1" in bad.output
    assert not list(tmp_path.glob("*.nc"))
    lonely = runner.invoke(app, ["process", str(synthetic_granules["oci"]), "--out", str(tmp_path), "--geotiff"])
    assert lonely.exit_code == 1
    assert "give an --area too" in lonely.output
    good = runner.invoke(
        app,
        [
            "process",
            str(synthetic_granules["oci"]),
            "--out",
            str(tmp_path),
            "--area",
            "global_0p1",
            "--geotiff",
            "--no-progress",
        ],
    )
    assert good.exit_code == 0, good.output
    gridded = list(tmp_path.glob("*_grid-global_0p1.nc"))
    assert len(gridded) == 1
    assert f"gridded {gridded[0].name}" in good.output
    # the GeoTIFF: same cells, same place, in a GIS library
    import rasterio

    with rasterio.open(gridded[0].with_suffix(".tif")) as tif, xr.open_dataset(gridded[0]) as grid:
        assert tif.descriptions == ("cloud_mask", "cloud_phase", "cloud_optical_thickness")
        assert tif.crs.is_geographic
        mask = tif.read(1)
        np.testing.assert_array_equal(mask, grid["cloud_mask"].values)
        np.testing.assert_allclose(tif.read(3), grid["cloud_optical_thickness"].values)
        row, col = np.argwhere(np.isfinite(mask))[0]
        lon, lat = tif.xy(row, col)
        assert lat == pytest.approx(float(grid["latitude"][row]), abs=1e-6)
        assert lon == pytest.approx(float(grid["longitude"][col]), abs=1e-6)


def test_area_files_are_checked(tmp_path: Path) -> None:
    many = tmp_path / "areas.yaml"
    many.write_text(AREA_YAML.format(lat=40.0, lon=-100.0))
    assert resolve_area(f"{many}:other").shape == (10, 10)
    with pytest.raises(AreaError, match=r"holds 2 areas .*: give FILE:NAME"):
        resolve_area(str(many))
    with pytest.raises(AreaError, match="has no area 'nowhere'"):
        resolve_area(f"{many}:nowhere")
    with pytest.raises(AreaError, match="does not exist"):
        resolve_area(str(tmp_path / "missing.yaml"))
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [unclosed")
    with pytest.raises(AreaError, match="not a pyresample area file"):
        resolve_area(str(broken))


def test_swath_quicklook_is_drawn_north_up_around_its_footprint(swath_product: Path) -> None:
    from pipeline.gridded import fitted_area
    from pipeline.quicklook import _on_fitted_area, write_quicklook

    with xr.open_dataset(swath_product) as ds:
        lat, lon = ds["latitude"].values, ds["longitude"].values
        mask, _, _, grid_lat, grid_lon = _on_fitted_area(ds, 1200)
        native_fraction = float(np.nanmean(ds["cloud_mask"].values))
    area = fitted_area(lat, lon)
    from pyproj import Proj

    x, y = Proj(area.crs)(lon, lat)
    xmin, ymin, xmax, ymax = area.area_extent
    assert np.all((x >= xmin - 1) & (x <= xmax + 1) & (y >= ymin - 1) & (y <= ymax + 1))
    row, col = grid_lat.shape[0] // 2, grid_lat.shape[1] // 2
    assert grid_lat[0, col] > grid_lat[-1, col]  # north up
    assert grid_lon[row, -1] > grid_lon[row, 0]  # east right
    # classes drawn as they are (a coarse swath's wide edge pixels cover more of the map than its
    # narrow nadir ones, so the map's cloud fraction is area-weighted, not a pixel count)
    assert set(np.unique(mask[np.isfinite(mask)])) == {0.0, 1.0}
    assert 0 < native_fraction < 1
    assert write_quicklook(swath_product).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
