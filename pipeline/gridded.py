"""A product resampled onto a map grid (a pyresample area): the ``--area`` output.

Named areas ship in ``pipeline/etc/areas.yaml`` (``conus``, ``europe``, ``global_0p1``); a user's own
pyresample area file is given as ``FILE`` (its only area) or ``FILE:NAME``. Every product variable on
the native grid is resampled by **nearest neighbour** within a radius of 1.5 times the coarser of
the two grids' pixel sizes (pyresample's k-d tree): classes and flags must never be averaged, and
taking the probabilities and the COT from the same native pixel keeps the gridded variables
consistent with each other (``cloud_mask`` is 1 exactly where ``cloud_mask_probability`` >= 0.5,
COT exists exactly where the mask is cloudy) and never invents a COT between a thin and a thick
neighbour. Grid cells farther than the radius from any retrieved pixel are fill.

The gridded file sits beside the product, named after it with ``_grid-{area}``, and carries a CF
grid mapping (``crs``) with projection coordinates and their bounds (or latitude/longitude axes
with bounds on a geographic grid), 2-D latitude/longitude, and the product's metadata.

With ``geotiff`` a GeoTIFF copy is written beside it for GIS tools (rasterio, the ``geotiff``
extra): three float32 bands, cloud mask (0 clear, 1 cloudy), cloud phase (0 clear, 1 liquid,
2 ice) and cloud optical thickness, NaN where nothing was retrieved, with the grid's CRS and
geotransform and the band meanings in band descriptions and tags.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from pyresample.area_config import AreaNotFound, load_area
from pyresample.geometry import AreaDefinition, SwathDefinition
from pyresample.kd_tree import get_neighbour_info, get_sample_from_neighbour_info

from models.fileio import atomic_output
from pipeline import schema
from pipeline.netcdf_lock import netcdf_lock

logger = logging.getLogger(__name__)

AREAS_FILE = Path(__file__).resolve().parent / "etc" / "areas.yaml"
RADIUS_FACTOR = 1.5
EARTH_RADIUS_M = 6_371_000.0
METRES_PER_DEGREE = np.pi * EARTH_RADIUS_M / 180.0
FILL_U1 = schema.fill_value(np.uint8)
SKIPPED_ATTRS = ("coordinates", "grid_mapping")
GEOTIFF_BANDS = (
    ("cloud_mask", "cloud mask: 0 clear, 1 cloudy"),
    ("cloud_phase", "cloud phase: 0 clear, 1 liquid, 2 ice"),
    ("cloud_optical_thickness", "cloud optical thickness at 0.55 um"),
)


class AreaError(ValueError):
    """An area that cannot be used: unknown name, unreadable file, or no overlap with the product."""


def shipped_areas() -> list[str]:
    import yaml

    return list(yaml.safe_load(AREAS_FILE.read_text()))


def resolve_area(spec: str) -> AreaDefinition:
    """``NAME`` of a shipped area, ``FILE`` with one area, or ``FILE:NAME``."""
    import yaml

    shipped = shipped_areas()
    if spec in shipped:
        return load_area(str(AREAS_FILE), spec)
    path, name = spec, ""
    if not Path(spec).exists() and ":" in spec:
        path, name = spec.rsplit(":", 1)
    candidate = Path(path)
    if not candidate.exists() and candidate.suffix not in (".yaml", ".yml"):
        raise AreaError(
            f"unknown area {spec!r}: shipped areas are {', '.join(shipped)}, or give a pyresample area file "
            "(FILE or FILE:NAME)"
        )
    if not candidate.is_file():
        raise AreaError(f"area file {candidate} does not exist")
    try:
        content = yaml.safe_load(candidate.read_text())
    except yaml.YAMLError as err:
        raise AreaError(f"{candidate} is not a pyresample area file (not YAML: {err})") from None
    names = list(content) if isinstance(content, dict) else []
    if not name:
        if len(names) != 1:
            raise AreaError(f"{candidate} holds {len(names)} areas ({', '.join(names)}): give FILE:NAME")
        name = names[0]
    if name not in names:
        raise AreaError(f"{candidate} has no area {name!r} (it has {', '.join(names) or 'none'})")
    try:
        return load_area(str(candidate), name)
    except (AreaNotFound, KeyError, TypeError, ValueError) as err:
        raise AreaError(f"{candidate}: area {name!r} is not a pyresample area ({type(err).__name__}: {err})") from None


def gridded_path(product: Path, area_id: str) -> Path:
    return product.with_name(f"{product.stem}_grid-{area_id}.nc")


def geotiff_path(product: Path, area_id: str) -> Path:
    return product.with_name(f"{product.stem}_grid-{area_id}.tif")


def gridded_products(product: Path) -> list[Path]:
    """Gridded files of a product, NetCDF and GeoTIFF (to remove with it)."""
    return sorted(p for p in product.parent.glob(f"{product.stem}_grid-*") if p.suffix in (".nc", ".tif"))


def _spacing_m(lat: np.ndarray, lon: np.ndarray) -> float:
    """Median distance between horizontally adjacent geolocated pixels (haversine)."""
    la, lo = np.deg2rad(lat), np.deg2rad(lon)
    dlat, dlon = np.diff(la, axis=1), np.diff(lo, axis=1)
    mid = (la[:, 1:] + la[:, :-1]) / 2
    d = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.sin(dlat / 2) ** 2 + np.cos(mid) ** 2 * np.sin(dlon / 2) ** 2))
    d = d[np.isfinite(d) & (d > 0)]
    if not d.size:
        raise AreaError("the product has too few geolocated pixels to grid")
    return float(np.median(d))


def _cell_size_m(area: AreaDefinition) -> float:
    size = max(abs(area.pixel_size_x), abs(area.pixel_size_y))
    return size * METRES_PER_DEGREE if area.crs.is_geographic else size


def _axes(area: AreaDefinition) -> tuple[dict[str, Any], dict[str, Any], tuple[str, str]]:
    """Coordinate variables of the grid, the grid-mapping variable and the dimension names."""
    xs, ys = area.get_proj_vectors()
    half_x, half_y = abs(area.pixel_size_x) / 2, abs(area.pixel_size_y) / 2
    mapping = {k: (np.asarray(v) if isinstance(v, tuple) else v) for k, v in area.crs.to_cf().items()}
    mapping["long_name"] = f"grid mapping of area {area.area_id}"
    coords: dict[str, tuple[Any, ...]]
    if area.crs.is_geographic:
        dims = ("latitude", "longitude")
        coords = {
            "latitude": (
                "latitude",
                ys,
                {
                    "standard_name": "latitude",
                    "long_name": "latitude",
                    "units": "degrees_north",
                    "axis": "Y",
                    "bounds": "latitude_bounds",
                },
            ),
            "longitude": (
                "longitude",
                xs,
                {
                    "standard_name": "longitude",
                    "long_name": "longitude",
                    "units": "degrees_east",
                    "axis": "X",
                    "bounds": "longitude_bounds",
                },
            ),
        }
        bounds = {
            "latitude_bounds": (("latitude", "nv"), np.stack([ys + half_y, ys - half_y], axis=1)),
            "longitude_bounds": (("longitude", "nv"), np.stack([xs - half_x, xs + half_x], axis=1)),
        }
    else:
        dims = ("y", "x")
        coords = {
            axis: (
                axis,
                values,
                {
                    "standard_name": f"projection_{axis}_coordinate",
                    "long_name": f"{axis} coordinate of the {area.area_id} grid",
                    "units": "m",
                    "axis": axis.upper(),
                    "bounds": f"{axis}_bounds",
                },
            )
            for axis, values in (("x", xs), ("y", ys))
        }
        lons, lats = area.get_lonlats()
        for name, values, units in (("latitude", lats, "degrees_north"), ("longitude", lons, "degrees_east")):
            coords[name] = (dims, values.astype(np.float32), {"standard_name": name, "long_name": name, "units": units})
        bounds = {
            "x_bounds": (("x", "nv"), np.stack([xs - half_x, xs + half_x], axis=1)),
            "y_bounds": (("y", "nv"), np.stack([ys + half_y, ys - half_y], axis=1)),
        }
    return {**coords, **{k: (v[0], v[1], {}) for k, v in bounds.items()}}, mapping, dims


def resample_nearest(
    lat: np.ndarray, lon: np.ndarray, fields: dict[str, np.ndarray], area: AreaDefinition
) -> tuple[dict[str, np.ndarray], float]:
    """Each 2-D field on ``area`` by nearest neighbour (fill: 255 for uint8, NaN otherwise), and the radius."""
    lat, lon = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
    valid = np.isfinite(lat) & np.isfinite(lon)
    if not valid.any():
        raise AreaError("the product has no geolocated pixels")
    radius = RADIUS_FACTOR * max(_spacing_m(lat, lon), _cell_size_m(area))
    source = SwathDefinition(lons=lon[valid], lats=lat[valid])
    valid_in, valid_out, index, _ = get_neighbour_info(source, area, radius, neighbours=1)
    if not valid_out.any():
        raise AreaError(f"the product does not overlap area {area.area_id}")
    out = {}
    for name, values in fields.items():
        fill = FILL_U1 if values.dtype == np.uint8 else np.nan
        out[name] = get_sample_from_neighbour_info(
            "nn", area.shape, values[valid], valid_in, valid_out, index, fill_value=fill
        ).astype(values.dtype)
    return out, radius


def fitted_area(lat: np.ndarray, lon: np.ndarray, max_pixels: int = 1200) -> AreaDefinition:
    """A north-up equal-area grid around a swath's footprint, at about its resolution (quicklooks)."""
    from pyproj import Proj

    ok = np.isfinite(lat) & np.isfinite(lon)
    if not ok.any():
        raise AreaError("the product has no geolocated pixels")
    centre_lat, centre_lon = float(np.median(lat[ok])), float(np.median(lon[ok]))
    projection = {"proj": "laea", "lat_0": centre_lat, "lon_0": centre_lon, "datum": "WGS84"}
    x, y = Proj(projection)(lon[ok], lat[ok])
    extent = (float(x.min()), float(y.min()), float(x.max()), float(y.max()))
    size = max(_spacing_m(lat, lon), (extent[2] - extent[0]) / max_pixels, (extent[3] - extent[1]) / max_pixels)
    width = max(2, int(np.ceil((extent[2] - extent[0]) / size)))
    height = max(2, int(np.ceil((extent[3] - extent[1]) / size)))
    return AreaDefinition("swath_footprint", "the swath's footprint", "laea", projection, width, height, extent)


def _grid_variables(ds: xr.Dataset, area: AreaDefinition, dims: tuple[str, str]) -> tuple[dict[str, Any], float]:
    names = [str(name) for name, var in ds.data_vars.items() if var.dims == ("y", "x")]
    fields, radius = resample_nearest(
        ds["latitude"].values, ds["longitude"].values, {name: ds[name].values for name in names}, area
    )
    out: dict[str, Any] = {}
    for name in names:
        attrs = {k: v for k, v in ds[name].attrs.items() if k not in SKIPPED_ATTRS}
        if dims == ("y", "x"):
            attrs["grid_mapping"] = "crs"
            attrs["coordinates"] = "latitude longitude"
        out[name] = (dims, fields[name], attrs)
    return out, radius


def grid_product(product: Path, area: AreaDefinition) -> Path:
    """Write ``product`` resampled onto ``area`` beside it (atomically); returns the gridded file."""
    with netcdf_lock(), xr.open_dataset(product, mask_and_scale=False, decode_times=False) as opened:
        ds = opened.load()
    for var in ds.variables.values():  # fills travel as NaN (floats) or 255 (classes) and are set again on writing
        fill = var.attrs.pop("_FillValue", None)
        if fill is not None and var.dtype.kind == "f":
            var.values = np.where(var.values == fill, np.nan, var.values)
    coords, mapping, dims = _axes(area)
    data_vars, radius = _grid_variables(ds, area, dims)
    data_vars["crs"] = ((), np.int32(0), mapping)
    for name in ("time_bounds",):
        if name in ds:
            data_vars[name] = (ds[name].dims, ds[name].values, dict(ds[name].attrs))
    for name in ("time", "altitude"):
        if name in ds.coords:
            coords[name] = (ds[name].dims, ds[name].values, dict(ds[name].attrs))
    gridded = xr.Dataset(data_vars, coords=coords)
    gridded.attrs = _attributes(ds.attrs, area, radius, gridded)
    target = gridded_path(product, area.area_id)
    with atomic_output(target, ".nc.tmp") as tmp, netcdf_lock():
        gridded.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=_encoding(gridded))
    logger.info("wrote %s", target)
    return target


def _attributes(native: dict[str, Any], area: AreaDefinition, radius: float, gridded: xr.Dataset) -> dict[str, Any]:
    attrs = dict(native)
    lat = gridded["latitude"].values
    lon = gridded["longitude"].values
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    attrs.update(
        {
            "title": f"{native.get('title', 'MT-HCCAR cloud product')}, on the {area.area_id} grid",
            "id": f"{native.get('id', '')}_grid-{area.area_id}",
            "area_id": area.area_id,
            "area_description": area.description,
            "resampling": f"nearest neighbour within {radius:.0f} m (pyresample k-d tree) for every variable, so "
            "classes, flags, probabilities and COT are those of one native pixel",
            "date_modified": now,
            "history": f"{native.get('history', '')}\n{now}: resampled to area {area.area_id}".strip(),
            # the grid's extent (cells without data are fill)
            "geospatial_lat_min": float(np.nanmin(lat)),
            "geospatial_lat_max": float(np.nanmax(lat)),
            "geospatial_lon_min": float(np.nanmin(lon)),
            "geospatial_lon_max": float(np.nanmax(lon)),
        }
    )
    return attrs


def _encoding(gridded: xr.Dataset) -> dict[str, dict[str, Any]]:
    compressed = {"zlib": True, "complevel": 4, "shuffle": True}
    encoding: dict[str, dict[str, Any]] = {}
    for name, var in gridded.variables.items():
        if var.ndim == 2 and name not in ("x_bounds", "y_bounds", "latitude_bounds", "longitude_bounds", "time_bounds"):
            fill = schema.fill_value(var.dtype)
            encoding[str(name)] = {**compressed, "_FillValue": fill}
        else:
            encoding[str(name)] = {"_FillValue": None}
    return encoding


def write_geotiff(gridded: Path, area: AreaDefinition) -> Path:
    """A GeoTIFF of mask, phase and COT from a gridded file, written atomically beside it."""
    try:
        import rasterio
        from affine import Affine
    except ImportError:
        raise AreaError("GeoTIFF output needs rasterio: pip install 'mthccar-pipeline[geotiff]'") from None
    with netcdf_lock(), xr.open_dataset(gridded) as ds:
        bands = [ds[name].values.astype(np.float32) for name, _ in GEOTIFF_BANDS]
        time = str(ds.attrs.get("time_coverage_start", ""))
    height, width = area.shape
    xmin, ymin, xmax, ymax = area.area_extent
    profile = {
        "driver": "GTiff",
        "height": height,
        "width": width,
        "count": len(bands),
        "dtype": "float32",
        "crs": area.crs.to_wkt(),
        "transform": Affine((xmax - xmin) / width, 0.0, xmin, 0.0, -(ymax - ymin) / height, ymax),
        "nodata": float("nan"),
        "compress": "deflate",
        "tiled": True,
    }
    target = gridded.with_suffix(".tif")
    with atomic_output(target, ".tif.tmp") as tmp, rasterio.open(tmp, "w", **profile) as dst:
        for index, ((name, meaning), values) in enumerate(zip(GEOTIFF_BANDS, bands, strict=True), start=1):
            dst.write(values, index)
            dst.set_band_description(index, name)
            dst.update_tags(index, meaning=meaning)
        dst.update_tags(source=gridded.name, time_coverage_start=time, area_id=area.area_id)
    logger.info("wrote %s", target)
    return target
