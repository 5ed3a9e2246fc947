"""Quicklook PNG beside each product: cloud mask, phase and optical thickness, with colour bars.

ABI products are drawn on their native fixed grid (a map already); swath products (VIIRS, OCI) are
first put by nearest neighbour on a north-up equal-area grid fitted to their footprint
(``pipeline.gridded.fitted_area``). Every panel carries the coastline and a latitude/longitude
graticule, so a picture can be placed on Earth by eye: coastlines are the 0.5 contour of the
land/water mask the pipeline already ships (nothing is downloaded).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from models.fileio import atomic_output
from pipeline.features import NIGHT_RETRIEVED
from pipeline.netcdf_lock import netcdf_lock

NOT_RETRIEVED = "#b0b0b0"


def quicklook_path(product: Path) -> Path:
    return product.with_name(product.stem + "_quicklook.png")


def _thin(array: np.ndarray, max_pixels: int = 1200) -> np.ndarray:
    step = max(1, int(np.ceil(max(array.shape) / max_pixels)))
    return array[::step, ::step]


GRATICULE_STEPS = (0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0)
COAST = "#ff2d95"  # magenta: visible on every panel colour (clear blue, cloud grey, ice yellow)
GRATICULE = "#3a3a3a"


def land_fraction(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """1 on land, 0 on water, NaN where there is no geolocation (off the Earth's disk)."""
    from models.earth import WATER_CLASS, land_water_class

    ok = np.isfinite(lat) & np.isfinite(lon)
    land = (land_water_class(np.where(ok, lat, 0), np.where(ok, lon, 0)) != WATER_CLASS).astype(np.float32)
    return np.where(ok, land, np.nan)


def graticule_step(values: np.ndarray) -> float:
    """A round step giving a handful of graticule lines over the span of ``values``."""
    finite = values[np.isfinite(values)]
    span = float(finite.max() - finite.min()) if finite.size else 0.0
    return next((s for s in GRATICULE_STEPS if span / s <= 6), GRATICULE_STEPS[-1])


def draw_geography(ax: Any, lat: np.ndarray, lon: np.ndarray) -> None:
    """Coastline and labelled latitude/longitude lines on an image axis of the product grid."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "no contour levels were found" on open ocean
        land = land_fraction(lat, lon)
        if np.nanmin(land, initial=1.0) < 0.5 < np.nanmax(land, initial=0.0):
            ax.contour(land, levels=[0.5], colors=COAST, linewidths=0.9)
        for values, hemispheres in ((lat, "NS"), (lon, "EW")):
            step = graticule_step(values)
            finite = values[np.isfinite(values)]
            if not finite.size:
                continue
            levels = np.arange(np.ceil(finite.min() / step) * step, finite.max(), step)
            if levels.size:
                lines = ax.contour(values, levels=levels, colors=GRATICULE, linewidths=0.5, linestyles="--")
                ax.clabel(lines, fontsize=7, fmt=lambda v, h=hemispheres: f"{abs(v):g}°{h[int(v < 0)]}")


def _on_fitted_area(ds: xr.Dataset, max_pixels: int) -> tuple[np.ndarray, ...]:
    """Mask, phase, COT, latitude and longitude of a swath product on its fitted map grid."""
    from pipeline.gridded import fitted_area, resample_nearest

    # a full VIIRS granule has ten million pixels: thin it to about twice the picture's resolution
    # before building the neighbour tree
    lat, lon = _thin(ds["latitude"].values, 2 * max_pixels), _thin(ds["longitude"].values, 2 * max_pixels)
    area = fitted_area(lat, lon, max_pixels)
    names = ("cloud_mask", "cloud_phase", "cloud_optical_thickness")
    values = {name: _thin(ds[name].values, 2 * max_pixels).astype(np.float32) for name in names}
    fields, _ = resample_nearest(lat, lon, values, area)
    grid_lon, grid_lat = area.get_lonlats()
    return (*(fields[name] for name in names), grid_lat, grid_lon)


def write_quicklook(product: Path, target: Path | None = None, max_pixels: int = 1200) -> Path:
    """Three panels (mask, phase, COT) of a product, written atomically to ``target`` (default: beside it).

    Drawn on a bare ``Figure`` (no pyplot state), so granules in concurrent threads can draw at once.
    """
    from matplotlib import colormaps
    from matplotlib.colors import BoundaryNorm, ListedColormap, LogNorm
    from matplotlib.figure import Figure

    with netcdf_lock(), xr.open_dataset(product, mask_and_scale=True) as ds:
        swath = "goes_imager_projection" not in ds
        if swath:  # a scan array is no map: put it on a north-up equal-area grid around its footprint
            mask, phase, cot, lat, lon = _on_fitted_area(ds, max_pixels)
        else:  # ABI keeps its native fixed grid, already a map
            mask = _thin(ds["cloud_mask"].values, max_pixels)
            phase = _thin(ds["cloud_phase"].values, max_pixels)
            cot = _thin(ds["cloud_optical_thickness"].values, max_pixels)
            lat = _thin(ds["latitude"].values, max_pixels)
            lon = _thin(ds["longitude"].values, max_pixels)
        title = f"{ds.attrs['platform']} {ds.attrs['instrument']} {ds.attrs['time_coverage_start']}"
        retrieved = int(ds.attrs.get("retrieved_pixels", 0))
        fraction = float(ds.attrs.get("cloud_fraction", -1))
        night_model = str(ds.attrs.get("night_model_artifact", ""))
        night_pixels = int((ds["retrieval_quality"].values == NIGHT_RETRIEVED).sum())
    # fixed margins: matplotlib's constrained layout took a third of the quicklook's time (0.7 of 2.1 s
    # for a Meso scan), paid again on every scan
    fig = Figure(figsize=(15, 5.2))
    fig.subplots_adjust(left=0.01, right=0.97, top=0.9, bottom=0.03, wspace=0.08)
    axes = fig.subplots(1, 3)
    panels = [
        (mask, ["#1f3b73", "#f2f2f2"], ["clear", "cloudy"], "cloud mask"),
        (phase, ["#1f3b73", "#3fa7d6", "#f4d35e"], ["clear", "liquid", "ice"], "cloud phase"),
    ]
    for ax, (values, colours, labels, name) in zip(axes[:2], panels, strict=False):
        classes = ListedColormap(colours).with_extremes(bad=NOT_RETRIEVED)
        norm = BoundaryNorm(np.arange(len(colours) + 1) - 0.5, len(colours))
        image = ax.imshow(np.ma.masked_invalid(values), cmap=classes, norm=norm, interpolation="nearest")
        bar = fig.colorbar(image, ax=ax, ticks=range(len(colours)), shrink=0.8)
        bar.ax.set_yticklabels(labels)
        ax.set_title(name)
    cmap = colormaps["viridis"].with_extremes(bad=NOT_RETRIEVED)
    finite = cot[np.isfinite(cot) & (cot > 0)]
    image = axes[2].imshow(
        np.ma.masked_invalid(np.where(cot > 0, cot, np.nan)),
        cmap=cmap,
        norm=LogNorm(vmin=0.1, vmax=max(100.0, float(finite.max()) if finite.size else 100.0)),
        interpolation="nearest",
    )
    fig.colorbar(image, ax=axes[2], shrink=0.8, label="COT")
    axes[2].set_title("cloud optical thickness" + (" (none at night)" if night_pixels else ""))
    for ax in axes:
        draw_geography(ax, lat, lon)
        ax.set_xticks([])
        ax.set_yticks([])
    summary = f"cloud fraction {fraction:.2f}" if retrieved else "no retrieved pixels (night or no valid input)"
    if night_pixels:
        summary += f"; night: mask and phase by {night_model}"
    grid = "; nearest neighbour on an equal-area grid around the swath" if swath else ""
    fig.suptitle(f"MT-HCCAR {title} - {summary} (grey: not retrieved{grid})")
    target = target or quicklook_path(product)
    with atomic_output(target) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    return target
