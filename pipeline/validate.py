"""Score an ABI product against same-time operational files and the scan's own infrared bands.

Real data is the judge of a retrieval. ``validate_product`` samples each reference on the product's
grid (same satellite: both are on the GOES fixed grid, so each product pixel takes the reference
pixel whose scan angles are nearest; a coarser reference pixel covers several product pixels) and
reports, overall and over land and water:

* NOAA ABI L2 Clear Sky Mask (``ACM*``: its binary ``BCM``) and the Fire product's mask (``FDC*``:
  code 100 processed clear land, 200-245 cloud tests, also scored per test and split into
  infrared and visible-albedo tests): agreement, probability of detection,
  false-alarm rate (flagged cloudy among reference-clear pixels) and false-alarm ratio; with an
  ACM file also the four-level mask (its ``ACM`` variable against our ``cloud_mask_4level``): the
  4 x 4 table of levels, exact agreement and agreement within one level; and our cloud probability
  against the reference's cloud and clear pixels at every threshold (``operating_curve``: the area
  under the detection / false-alarm curve, the detection at 1-20 % false alarms);
* Cloud Top Phase (``ACTP*``): agreement of liquid (liquid, supercooled) and ice where both are cloudy;
* Cloud Optical Depth (``COD*``): bias and RMSE of log10 COT where both retrieved one;
* an L1b ``C13`` (10.3 um) file: the share of warm (> 290 K) pixels flagged cloudy, which should be
  small, and of cold (< 250 K) ones, which should be large; and the phase against it: the share of
  cloudy pixels colder than 233.15 K (too cold for liquid water) called ice, which should be all of
  them, the share called ice in each 10 K band of C13 above, and the share of opaque clouds (COT >=
  10) warmer than 273.15 K called liquid, which should be nearly all (thin cirrus over them aside);
* with both an FDC and a C13 file, the FDC's land pixels split by whether the scan's own infrared
  agrees with them (``c13_contrast``): a cloud it confirms is at least 4 K colder than the mean of
  the FDC's clear land within 31 x 31 pixels; clear land it confirms is not. The two references are
  independent (the FDC's albedo test, bright barren ground and thin cirrus are where they part), so
  the lines where both agree are the firmest part of the reference, and the disputed ones are
  reported beside them.

It writes JSON, a markdown summary and a PNG map of agreement beside each other.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from scipy.ndimage import uniform_filter

from models.earth import WATER_CLASS, igbp_class
from models.fileio import atomic_output, write_text_atomically
from pipeline.features import cot_retrieved, mask_retrieved
from pipeline.netcdf_lock import netcdf_lock

logger = logging.getLogger(__name__)

WARM_K = 290.0
COLD_K = 250.0
# Water does not stay liquid below about -38 C (homogeneous freezing: Pruppacher and Klett 1997,
# Microphysics of Clouds and Precipitation), and a cloud's 10.3 um brightness temperature is
# no colder than its top (a thin cloud's is warmer, the ground showing through), so a cloudy pixel
# colder than -40 C has an ice top whatever its thickness.
TOO_COLD_FOR_LIQUID_K = 233.15
PHASE_BT_EDGES_K = (233.15, 243.15, 253.15, 263.15, 273.15)  # the phase's share of ice per 10 K of C13
# The other end: ice melts above 0 C, and a cloud of visible COT >= 10 is opaque at 10.3 um (water
# absorbs strongly there: absorption optical depth about half the visible extinction, emissivity
# above 0.99), so its C13 is its top's temperature and a top warmer than 0 C is liquid. Thin cirrus
# over such a cloud is the exception (an ice top, C13 near the water cloud's).
OPAQUE_COT = 10.0
MELTING_K = 273.15
# surface groups of the scores, from the IGBP class of each pixel
SURFACE_REPORT_GROUPS: dict[str, tuple[int, ...]] = {
    "forest": (1, 2, 3, 4, 5, 8),
    "open land": (6, 7, 9, 10, 11, 12, 14, 18),
    "urban": (13,),
    "barren": (16,),
    "snow/ice": (15, 19, 20),
    "water": (17,),
}
# (file-name marker, kind); the first match names the reference
REFERENCE_KINDS = (
    ("-L2-FDC", "fire_mask"),
    ("-L2-ACM", "clear_sky_mask"),
    ("-L2-ACTP", "cloud_phase"),
    ("-L2-COD", "optical_depth"),
    ("C13_", "c13"),
)
# the C13 cross-check of the FDC's land pixels: a cloud is this much colder than the local clear
# land (on land, clear-sky C13 within ~60 km spreads by a few K with height and surface), the local
# clear land being the FDC's clear pixels in a box of this side, where they are at least this share
CONTRAST_COLDER_K = 4.0
CONTRAST_BOX_PIXELS = 31
CONTRAST_MIN_CLEAR_SHARE = 0.05
FALSE_ALARM_RATES = (0.01, 0.02, 0.05, 0.10, 0.20)  # where the operating curve is read off
FDC_CLEAR_LAND = (100, 100)
FDC_CLOUD = (200, 245)
ACTP_LIQUID = (1, 2)  # liquid water, supercooled water
ACTP_ICE = (4,)
FOUR_LEVELS = ("clear", "probably clear", "probably cloudy", "cloudy")  # ACM codes 0-3, as ours


LABELS = {
    "clear_land_flagged_cloudy": "reference clear land (FDC code 100)",
    "cloud_flagged_cloudy": "reference cloud over land (FDC codes 200-245)",
    "cloud_infrared_test_flagged_cloudy": "of which found by an infrared test",
    "cloud_albedo_test_flagged_cloudy": "of which found by a visible-albedo test alone",
    f"warm_above_{WARM_K:.0f}K": f"C13 brightness temperature > {WARM_K:.0f} K",
    f"cold_below_{COLD_K:.0f}K": f"C13 brightness temperature < {COLD_K:.0f} K",
    "cloud_c13_confirmed_flagged_cloudy": f"reference cloud over land that C13 confirms (>= {CONTRAST_COLDER_K:.0f} K "
    "colder than the local clear land)",
    "cloud_c13_disputed_flagged_cloudy": "reference cloud over land that C13 disputes (or cannot judge)",
    "clear_land_c13_confirmed_flagged_cloudy": "reference clear land that C13 confirms",
    "clear_land_c13_disputed_flagged_cloudy": f"reference clear land that C13 disputes (>= {CONTRAST_COLDER_K:.0f} K "
    "colder than the local clear land)",
}
SUBLINES = (
    "cloud_infrared_test_flagged_cloudy",
    "cloud_albedo_test_flagged_cloudy",
    "cloud_c13_disputed_flagged_cloudy",
    "clear_land_c13_disputed_flagged_cloudy",
)


class ValidationError(ValueError):
    """A reference that cannot be compared with the product."""


@dataclass
class ProductGrid:
    """What validation needs of a product, as plain arrays."""

    x_rad: np.ndarray
    y_rad: np.ndarray
    lon0: float
    cloudy: np.ndarray  # float: 1 cloudy, 0 clear, nan not retrieved
    phase: np.ndarray  # 1 liquid, 2 ice, nan otherwise
    log10_cot: np.ndarray
    water: np.ndarray  # bool
    surface_class: np.ndarray  # IGBP class per pixel (-1 without geolocation)
    four_level: np.ndarray  # 0 clear .. 3 cloudy, nan not retrieved (or a product without it)
    probability: np.ndarray  # P(cloudy), nan not retrieved (or a product without it)


def read_product(path: Path) -> ProductGrid:
    with netcdf_lock(), xr.open_dataset(path) as ds:
        if "goes_imager_projection" not in ds:
            raise ValidationError(f"{path.name} is not on the GOES fixed grid; validation needs an ABI product")
        mapping = ds["goes_imager_projection"].attrs
        height = float(mapping["perspective_point_height"])
        quality = ds["retrieval_quality"].values
        retrieved = mask_retrieved(quality)  # mask and phase, day or night model
        with_cot = cot_retrieved(quality)
        mask = ds["cloud_mask"].values.astype(np.float64)
        phase = ds["cloud_phase"].values.astype(np.float64)
        cot = ds["cloud_optical_thickness"].values.astype(np.float64)
        levels = ds["cloud_mask_4level"].values.astype(np.float64) if "cloud_mask_4level" in ds else None
        probability = ds["cloud_mask_probability"].values if "cloud_mask_probability" in ds else None
        lat, lon = ds["latitude"].values, ds["longitude"].values
        grid = ProductGrid(
            x_rad=ds["x"].values / height,
            y_rad=ds["y"].values / height,
            lon0=float(mapping["longitude_of_projection_origin"]),
            cloudy=np.where(retrieved, mask, np.nan),
            phase=np.where(retrieved & (mask == 1) & (phase > 0), phase, np.nan),
            log10_cot=np.where(with_cot & (mask == 1) & (cot > 0), np.log10(np.where(cot > 0, cot, 1)), np.nan),
            water=np.zeros(mask.shape, dtype=bool),
            surface_class=np.full(mask.shape, -1, dtype=np.int16),
            four_level=np.full(mask.shape, np.nan) if levels is None else np.where(retrieved, levels, np.nan),
            probability=np.where(retrieved, np.nan if probability is None else probability, np.nan),
        )
    finite = np.isfinite(lat) & np.isfinite(lon)
    classes = igbp_class(np.where(finite, lat, 0), np.where(finite, lon, 0))
    grid.water = finite & (classes == WATER_CLASS)
    grid.surface_class = np.where(finite, classes, -1).astype(np.int16)
    return grid


def _axis_index(reference: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Index of the reference pixel covering each wanted scan angle (-1 outside the reference)."""
    step = float(reference[1] - reference[0])
    index = np.rint((wanted - reference[0]) / step).astype(np.int64)
    inside = (index >= 0) & (index < reference.size)
    index = np.where(inside, index, 0)
    close = np.abs(reference[index] - wanted) <= 0.5 * abs(step) * 1.001
    return np.where(inside & close, index, -1)


def sample_reference(path: Path, variable: str, grid: ProductGrid) -> np.ndarray:
    """A reference variable on the product grid (float, nan where it has no value or no pixel)."""
    with netcdf_lock(), xr.open_dataset(path) as ds:
        for name in (variable, "goes_imager_projection"):
            if name not in ds:
                raise ValidationError(f"{path.name} has no variable {name}")
        lon0 = float(ds["goes_imager_projection"].attrs["longitude_of_projection_origin"])
        if abs(lon0 - grid.lon0) > 1e-6:
            raise ValidationError(
                f"{path.name} is from the satellite at {lon0} deg, the product from the one at {grid.lon0} deg"
            )
        rows, cols = _axis_index(ds["y"].values, grid.y_rad), _axis_index(ds["x"].values, grid.x_rad)
        if (rows < 0).all() or (cols < 0).all():
            raise ValidationError(f"{path.name} does not overlap the product")
        values = ds[variable]
        data = values.isel(y=xr.DataArray(np.maximum(rows, 0), dims="y"), x=xr.DataArray(np.maximum(cols, 0), dims="x"))
        sampled = np.asarray(data.values, dtype=np.float64)
    sampled[rows < 0, :] = np.nan
    sampled[:, cols < 0] = np.nan
    return sampled


def _in(values: np.ndarray, codes: tuple[int, ...]) -> np.ndarray:
    return np.isin(np.nan_to_num(values, nan=-1).astype(np.int64), codes)


def _between(values: np.ndarray, bounds: tuple[int, int]) -> np.ndarray:
    return (values >= bounds[0]) & (values <= bounds[1])


def binary_scores(ours: np.ndarray, reference_cloudy: np.ndarray, compared: np.ndarray) -> dict[str, Any]:
    """Agreement, POD and false alarms of our mask against a reference cloudy/clear mask."""
    valid = compared & np.isfinite(ours)
    cloudy, ref = ours[valid] == 1, reference_cloudy[valid]
    n, n_ref_cloudy, n_ref_clear = int(valid.sum()), int(ref.sum()), int((~ref).sum())
    hits, false_alarms = int((cloudy & ref).sum()), int((cloudy & ~ref).sum())
    return {
        "pixels": n,
        "reference_cloudy": n_ref_cloudy,
        "agreement": float((cloudy == ref).mean()) if n else None,
        "pod": hits / n_ref_cloudy if n_ref_cloudy else None,
        "false_alarm_rate": false_alarms / n_ref_clear if n_ref_clear else None,
        "false_alarm_ratio": false_alarms / (hits + false_alarms) if hits + false_alarms else None,
    }


def _by_surface(grid: ProductGrid, reference_cloudy: np.ndarray, compared: np.ndarray) -> dict[str, Any]:
    scores = {
        "all": binary_scores(grid.cloudy, reference_cloudy, compared),
        "land": binary_scores(grid.cloudy, reference_cloudy, compared & ~grid.water),
    }
    for group, classes in SURFACE_REPORT_GROUPS.items():
        scores[group] = binary_scores(grid.cloudy, reference_cloudy, compared & np.isin(grid.surface_class, classes))
    return scores


def operating_curve(probability: np.ndarray, cloudy: np.ndarray, clear: np.ndarray) -> dict[str, Any] | None:
    """How well our cloud probability separates the reference's cloud from its clear pixels at any
    threshold: the area under the detection / false-alarm curve, and the detection at the lowest
    thresholds whose false alarms stay within ``FALSE_ALARM_RATES``. Two models compare on it at
    equal false alarms, which their flags at one threshold do not allow. None without probabilities."""
    finite = np.isfinite(probability)
    cloud_p, clear_p = np.sort(probability[cloudy & finite]), np.sort(probability[clear & finite])
    if not cloud_p.size or not clear_p.size:
        return None
    thresholds = np.unique(np.concatenate([cloud_p, clear_p]))[::-1]  # flagged cloudy where p >= threshold
    detection = np.concatenate([[0.0], 1 - np.searchsorted(cloud_p, thresholds) / cloud_p.size])
    false_alarm = np.concatenate([[0.0], 1 - np.searchsorted(clear_p, thresholds) / clear_p.size])
    at = np.searchsorted(false_alarm, FALSE_ALARM_RATES, side="right") - 1  # false alarms never decrease
    return {
        "cloud_pixels": int(cloud_p.size),
        "clear_pixels": int(clear_p.size),
        "area_under_curve": float(np.trapezoid(detection, false_alarm)),
        "detection_at_false_alarm": [
            {
                "false_alarm_rate": rate,
                "detection": float(detection[i]),
                "threshold": float(thresholds[i - 1]) if i else None,  # none: no threshold stays within the rate
            }
            for rate, i in zip(FALSE_ALARM_RATES, at, strict=True)
        ],
    }


def four_level_scores(ours: np.ndarray, theirs: np.ndarray) -> dict[str, Any]:
    """Table (rows theirs, columns ours), exact agreement and agreement within one level."""
    both = np.isfinite(ours) & np.isin(theirs, (0, 1, 2, 3))
    a, b = theirs[both].astype(np.int64), ours[both].astype(np.int64)
    table = np.zeros((4, 4), dtype=np.int64)
    np.add.at(table, (a, b), 1)
    n = int(both.sum())
    return {
        "pixels": n,
        "levels": list(FOUR_LEVELS),
        "table": table.tolist(),
        "exact": float((a == b).mean()) if n else None,
        "within_one_level": float((np.abs(a - b) <= 1).mean()) if n else None,
    }


def _fraction_cloudy(grid: ProductGrid, where: np.ndarray) -> dict[str, Any]:
    valid = where & np.isfinite(grid.cloudy)
    n = int(valid.sum())
    return {"pixels": n, "flagged_cloudy": float((grid.cloudy[valid] == 1).mean()) if n else None}


def fdc_cloud_tests(path: Path) -> dict[int, str]:
    """The FDC file's cloud codes and the test each one names (its ``Mask`` flag meanings)."""
    with netcdf_lock(), xr.open_dataset(path) as ds:
        attrs = ds["Mask"].attrs
    values = np.atleast_1d(attrs.get("flag_values", [])).astype(int).tolist()
    meanings = str(attrs.get("flag_meanings", "")).split()
    if len(values) != len(meanings):
        raise ValidationError(f"{path.name}: Mask has {len(values)} flag values but {len(meanings)} meanings")
    return {v: m for v, m in zip(values, meanings, strict=True) if FDC_CLOUD[0] <= v <= FDC_CLOUD[1]}


def _fdc_cloud_by_test(path: Path, codes: np.ndarray, grid: ProductGrid) -> dict[str, Any]:
    """Detection of the FDC's clouds over land split by the test that found them.

    The fire product's cloud tests are screens for fire detection, not a cloud mask: its albedo
    threshold flags bright clear land too (salt flats, bright ridges), so clouds that only an
    albedo test found are the least certain part of the reference, and scored apart.
    """
    tests = fdc_cloud_tests(path)
    land = ~grid.water
    by_test = {
        str(code): {"test": meaning, **_fraction_cloudy(grid, land & _in(codes, (code,)))}
        for code, meaning in tests.items()
    }
    albedo = tuple(code for code, meaning in tests.items() if "albedo" in meaning)
    infrared = tuple(code for code in tests if code not in albedo)
    return {
        "cloud_infrared_test_flagged_cloudy": _fraction_cloudy(grid, land & _in(codes, infrared)),
        "cloud_albedo_test_flagged_cloudy": _fraction_cloudy(grid, land & _in(codes, albedo)),
        "cloud_by_test": {k: v for k, v in by_test.items() if v["pixels"]},
    }


PHASE_CODES = {"liquid": 1, "ice": 2}  # of ProductGrid.phase


def _fraction_called(grid: ProductGrid, where: np.ndarray, phase: str) -> dict[str, Any]:
    """Share of the cloudy pixels of ``where`` called ``phase`` (liquid or ice)."""
    calls = grid.phase[where & np.isfinite(grid.phase)]
    share = float((calls == PHASE_CODES[phase]).mean()) if calls.size else None
    return {"pixels": int(calls.size), f"called_{phase}": share}


def _ice_by_temperature(grid: ProductGrid, bt: np.ndarray) -> list[dict[str, Any]]:
    """The phase against the scan's own C13, coldest first: the share of cloudy pixels called ice in
    each band of ``PHASE_BT_EDGES_K`` (open at both ends). Only the coldest band has a right answer
    (ice); above it the share shows where the phase changes, for thick clouds near their top's
    temperature and for thin ones warmer."""
    edges = (-np.inf, *PHASE_BT_EDGES_K, np.inf)
    rows = []
    for low, high in pairwise(edges):
        share = _fraction_called(grid, (bt >= low) & (bt < high), "ice")
        rows.append({"from_k": None if low == -np.inf else low, "to_k": None if high == np.inf else high, **share})
    return rows


def local_clear_contrast(bt: np.ndarray, clear: np.ndarray) -> np.ndarray:
    """``bt`` minus the mean ``bt`` of the ``clear`` pixels in a box around each pixel (K); nan where
    too few of the box are clear or ``bt`` is missing."""
    usable = clear & np.isfinite(bt)
    total = uniform_filter(np.where(usable, bt, 0.0), CONTRAST_BOX_PIXELS, mode="constant")
    share = uniform_filter(usable.astype(np.float64), CONTRAST_BOX_PIXELS, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        local = np.where(share >= CONTRAST_MIN_CLEAR_SHARE, total / share, np.nan)
    return bt - local


def _c13_cross_check(grid: ProductGrid, clear: np.ndarray, cloud: np.ndarray, bt: np.ndarray) -> dict[str, Any]:
    """The FDC's ``clear`` land and ``cloud`` over land, each split by whether C13's local contrast agrees."""
    colder = local_clear_contrast(bt, clear) <= -CONTRAST_COLDER_K  # nan compares False: not confirmed
    return {
        "cloud_c13_confirmed_flagged_cloudy": _fraction_cloudy(grid, cloud & colder),
        "cloud_c13_disputed_flagged_cloudy": _fraction_cloudy(grid, cloud & ~colder),
        "clear_land_c13_confirmed_flagged_cloudy": _fraction_cloudy(grid, clear & ~colder),
        "clear_land_c13_disputed_flagged_cloudy": _fraction_cloudy(grid, clear & colder),
        "c13_contrast": {
            "colder_than_local_clear_k": CONTRAST_COLDER_K,
            "box_pixels": CONTRAST_BOX_PIXELS,
            "min_clear_share": CONTRAST_MIN_CLEAR_SHARE,
        },
    }


def _brightness_temperature(path: Path, grid: ProductGrid) -> np.ndarray:
    radiance = sample_reference(path, "Rad", grid)
    with netcdf_lock(), xr.open_dataset(path) as ds:
        fk1, fk2, bc1, bc2 = (float(ds[k]) for k in ("planck_fk1", "planck_fk2", "planck_bc1", "planck_bc2"))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (fk2 / np.log(fk1 / np.where(radiance > 0, radiance, np.nan) + 1.0) - bc1) / bc2


def _kind(path: Path) -> str:
    for marker, kind in REFERENCE_KINDS:
        if marker in path.name:
            return kind
    known = ", ".join(marker.strip("-_") for marker, _ in REFERENCE_KINDS)
    raise ValidationError(f"{path.name} is not a reference this command reads ({known})")


def score(product: Path, references: list[Path]) -> tuple[dict[str, Any], np.ndarray | None]:
    """The scores against every reference, and the agreement map of the first mask reference."""
    grid = read_product(product)
    report: dict[str, Any] = {"product": str(product), "references": {}}
    agreement_map = None
    # every C13 file read once: the first one also cross-checks a fire mask given before or after it
    temperatures = {path: _brightness_temperature(path, grid) for path in references if _kind(path) == "c13"}
    c13 = next(iter(temperatures.values()), None)
    for reference in references:
        kind = _kind(reference)
        entry: dict[str, Any] = {"file": reference.name, "kind": kind}
        if kind in ("fire_mask", "clear_sky_mask"):
            if kind == "fire_mask":
                codes = sample_reference(reference, "Mask", grid)
                # code 100 is land by the FDC's own map; its clouds are kept over land by ours
                ref_cloudy, clear_land = _between(codes, FDC_CLOUD), _between(codes, FDC_CLEAR_LAND)
                cloud_land = ref_cloudy & ~grid.water
                compared = ref_cloudy | clear_land
                curve_classes = (cloud_land, clear_land)  # the lines above: cloud over land, clear land
                entry["clear_land_flagged_cloudy"] = _fraction_cloudy(grid, clear_land)
                entry["cloud_flagged_cloudy"] = _fraction_cloudy(grid, cloud_land)
                entry.update(_fdc_cloud_by_test(reference, codes, grid))
                if c13 is not None:
                    entry.update(_c13_cross_check(grid, clear_land, cloud_land, c13))
            else:
                flags = sample_reference(reference, "BCM", grid)
                ref_cloudy, compared = flags == 1, np.isin(flags, (0, 1))
                curve_classes = (ref_cloudy, compared & ~ref_cloudy)
                if np.isfinite(grid.four_level).any():
                    entry["four_level"] = four_level_scores(grid.four_level, sample_reference(reference, "ACM", grid))
            entry["scores"] = _by_surface(grid, ref_cloudy, compared)
            entry["operating_curve"] = operating_curve(grid.probability, *curve_classes)
            if agreement_map is None:
                agreement_map = _agreement(grid.cloudy, ref_cloudy, compared)
        elif kind == "cloud_phase":
            phase = sample_reference(reference, "Phase", grid)
            theirs = np.where(_in(phase, ACTP_LIQUID), 1.0, np.where(_in(phase, ACTP_ICE), 2.0, np.nan))
            both = np.isfinite(theirs) & np.isfinite(grid.phase)
            entry["pixels"] = int(both.sum())
            entry["agreement"] = float((theirs[both] == grid.phase[both]).mean()) if both.any() else None
        elif kind == "optical_depth":
            cod = sample_reference(reference, "COD", grid)
            with np.errstate(invalid="ignore", divide="ignore"):
                theirs = np.where(cod > 0, np.log10(cod), np.nan)
            both = np.isfinite(theirs) & np.isfinite(grid.log10_cot)
            diff = grid.log10_cot[both] - theirs[both]
            entry.update(
                pixels=int(both.sum()),
                log10_bias=float(diff.mean()) if diff.size else None,
                log10_rmse=float(np.sqrt((diff**2).mean())) if diff.size else None,
            )
        else:
            bt = temperatures[reference]
            entry[f"warm_above_{WARM_K:.0f}K"] = _fraction_cloudy(grid, bt > WARM_K)
            entry[f"cold_below_{COLD_K:.0f}K"] = _fraction_cloudy(grid, bt < COLD_K)
            entry["cloudy_too_cold_for_liquid"] = _fraction_called(grid, bt < TOO_COLD_FOR_LIQUID_K, "ice")
            entry["ice_by_c13"] = _ice_by_temperature(grid, bt)
            opaque_warm = (grid.log10_cot >= np.log10(OPAQUE_COT)) & (bt > MELTING_K)
            entry["opaque_too_warm_for_ice"] = _fraction_called(grid, opaque_warm, "liquid")
        report["references"][reference.name] = entry
    retrieved = np.isfinite(grid.cloudy)
    report["cloud_fraction"] = float((grid.cloudy[retrieved] == 1).mean()) if retrieved.any() else None
    return report, agreement_map


def _agreement(ours: np.ndarray, ref_cloudy: np.ndarray, compared: np.ndarray) -> np.ndarray:
    """0 both clear, 1 both cloudy, 2 we say cloudy (false alarm), 3 we say clear (miss), nan not compared."""
    cloudy = ours == 1
    codes = np.select([~cloudy & ~ref_cloudy, cloudy & ref_cloudy, cloudy & ~ref_cloudy], [0.0, 1.0, 2.0], 3.0)
    return np.where(compared & np.isfinite(ours), codes, np.nan)


def _band_label(row: dict[str, Any]) -> str:
    if row["from_k"] is None:
        return f"< {row['to_k']:.2f}"
    if row["to_k"] is None:
        return f">= {row['from_k']:.2f}"
    return f"{row['from_k']:.2f}-{row['to_k']:.2f}"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def flagged_cloudy_shares(report: dict[str, Any]) -> dict[str, float]:
    """Every "share flagged cloudy" line of a validation report (``clear_land_flagged_cloudy``,
    ``warm_above_290K``, ...), by name, whichever reference it came from."""
    return {
        key: value["flagged_cloudy"]
        for entry in report["references"].values()
        for key, value in entry.items()
        if isinstance(value, dict) and "flagged_cloudy" in value
    }


def summary_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Validation of `{Path(report['product']).name}`",
        "",
        f"Cloud fraction {_percent(report['cloud_fraction'])}.",
        "",
    ]
    for file_name, entry in report["references"].items():
        lines += [f"## {entry['kind']}: `{file_name}`", ""]
        if "scores" in entry:
            lines += ["| surface | pixels | agreement | POD | false-alarm rate |", "|---|---:|---:|---:|---:|"]
            for surface, s in entry["scores"].items():
                if not s["pixels"] and surface != "all":
                    continue
                lines.append(
                    f"| {surface} | {s['pixels']} | {_percent(s['agreement'])} | {_percent(s['pod'])} | "
                    f"{_percent(s['false_alarm_rate'])} |"
                )
            lines.append("")
        if entry.get("operating_curve"):
            curve = entry["operating_curve"]
            rates = " / ".join(f"{p['false_alarm_rate']:.0%}" for p in curve["detection_at_false_alarm"])
            found = " / ".join(_percent(p["detection"]) for p in curve["detection_at_false_alarm"])
            lines += [
                f"Our cloud probability against the reference's cloud ({curve['cloud_pixels']} pixels) and clear "
                f"({curve['clear_pixels']}), at any threshold: area under the curve {curve['area_under_curve']:.3f}; "
                f"cloud detected at {rates} false alarms: {found}.",
                "",
            ]
        if "four_level" in entry:
            levels = entry["four_level"]
            lines += [
                f"Four-level mask against the ACM levels ({levels['pixels']} pixels): exact "
                f"{_percent(levels['exact'])}, within one level {_percent(levels['within_one_level'])}.",
                "",
                "| ACM \\ ours | " + " | ".join(FOUR_LEVELS) + " |",
                "|---|" + "---:|" * len(FOUR_LEVELS),
                *[
                    f"| {name} | " + " | ".join(str(v) for v in row) + " |"
                    for name, row in zip(FOUR_LEVELS, levels["table"], strict=True)
                ],
                "",
            ]
        for key, value in entry.items():
            if isinstance(value, dict) and "flagged_cloudy" in value:
                share = _percent(value["flagged_cloudy"])
                indent = "  " if key in SUBLINES else ""
                lines.append(f"{indent}- {LABELS.get(key, key)}: {share} flagged cloudy ({value['pixels']} pixels)")
            elif key in ("agreement", "log10_bias", "log10_rmse") and value is not None:
                lines.append(f"- {key.replace('_', ' ')}: {value:.3f} over {entry['pixels']} pixels")
        if "cloudy_too_cold_for_liquid" in entry:
            cold = entry["cloudy_too_cold_for_liquid"]
            lines += [
                f"- cloudy pixels with C13 < {TOO_COLD_FOR_LIQUID_K:.2f} K, too cold for liquid water: "
                f"{_percent(cold['called_ice'])} called ice ({cold['pixels']} pixels)",
                "",
                "| C13 (K) | cloudy pixels | called ice |",
                "|---|---:|---:|",
                *[
                    f"| {_band_label(row)} | {row['pixels']} | {_percent(row['called_ice'])} |"
                    for row in entry["ice_by_c13"]
                ],
                "",
            ]
            warm = entry["opaque_too_warm_for_ice"]
            if warm["pixels"]:  # none where no COT is retrieved (night)
                share = _percent(warm["called_liquid"])
                lines.append(
                    f"- cloudy pixels with COT >= {OPAQUE_COT:.0f} (opaque at 10.3 um) and C13 > {MELTING_K:.2f} K, "
                    f"too warm for an ice top: {share} called liquid ({warm['pixels']} pixels)"
                )
        if entry.get("cloud_by_test"):
            lines += ["", "| FDC cloud code | test | land pixels | flagged cloudy |", "|---|---|---:|---:|"]
            for code, test in entry["cloud_by_test"].items():
                name, share = test["test"].replace("_", " "), _percent(test["flagged_cloudy"])
                lines.append(f"| {code} | {name} | {test['pixels']} | {share} |")
        lines.append("")
    return "\n".join(lines)


def _draw_map(agreement: np.ndarray, target: Path, title: str) -> None:
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 6), layout="constrained")
    ax = fig.subplots()
    colours = ["#1f3b73", "#f2f2f2", "#d7301f", "#fdae61"]
    image = ax.imshow(
        np.ma.masked_invalid(agreement),
        cmap=ListedColormap(colours).with_extremes(bad="#b0b0b0"),
        norm=BoundaryNorm(np.arange(5) - 0.5, 4),
        interpolation="nearest",
    )
    bar = fig.colorbar(image, ax=ax, ticks=range(4), shrink=0.8)
    bar.ax.set_yticklabels(["both clear", "both cloudy", "false cloud", "missed cloud"])
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    with atomic_output(target) as tmp:
        fig.savefig(tmp, dpi=80, format="png")


def validate_product(product: Path, references: list[Path], out_dir: Path) -> dict[str, Path]:
    """Score ``product`` against ``references``; write ``{stem}_validation.json/.md/.png`` in ``out_dir``."""
    if not references:
        raise ValidationError("give at least one reference file (--reference)")
    for path in [product, *references]:
        if not path.is_file():
            raise ValidationError(f"{path} does not exist")
    report, agreement = score(product, references)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {
        "json": out_dir / f"{product.stem}_validation.json",
        "markdown": out_dir / f"{product.stem}_validation.md",
    }
    write_text_atomically(written["json"], json.dumps(report, indent=1))
    write_text_atomically(written["markdown"], summary_markdown(report))
    if agreement is not None:
        written["map"] = out_dir / f"{product.stem}_validation.png"
        _draw_map(agreement, written["map"], "cloud mask against the first mask reference (grey: not compared)")
    logger.info("validation of %s written to %s", product.name, out_dir)
    return written
