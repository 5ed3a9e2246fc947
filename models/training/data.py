"""Reader for training files in the reference MT-HCCAR schema, streamed in blocks of points.

Schema (``npoints`` samples; reflectances stored band-first as the reference does)::

    oci_reflectances(nbands_oci, npoints)     viirs_reflectances(nbands_viirs, npoints)
    abi_reflectances(nbands_abi, npoints)     [optional; the reference file has no ABI]
    h2o, o3, spress, albedo_type, solar_zenith_angle, viewing_zenith_angle,
    relative_azimuth_angle, scene_type (1 clear, 2 cloudy), cloud_type (1 liquid, 2 ice),
    log10_cloud_optical_thickness (NaN when clear)

The file is never loaded whole: points are read in blocks, so files larger than memory work.
Each point gets a pseudo-random number ``u`` in [0, 1) from the seed and its block, which fixes
its split (train ``u < 0.675``, validation ``u < 0.9``, test above, the reference's proportions)
and, for K-fold cross-validation, its fold. Angles are returned in degrees whatever the file uses.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np

from models.bands import sensor_bands
from models.context import SOURCE as CONTEXT_SOURCE
from models.mthccar import LOG10_COT_MIN
from models.spec import GEOMETRY_ANGLES, FeatureSpec

logger = logging.getLogger(__name__)

SCALAR_VARIABLES = (
    "h2o",
    "o3",
    "spress",
    "albedo_type",
    *GEOMETRY_ANGLES,
    "scene_type",
    "cloud_type",
    "log10_cloud_optical_thickness",
)
THERMAL_SCALARS = ("skt",)  # read when a spec uses them
# a feature's source -> the file variable holding what a model sees, where a file has one apart from
# the truth the simulator used (night files: the water vapour with its climatology-to-NWP error)
MODEL_INPUTS = {"h2o": "h2o_input"}
SPLIT_BLOCK = 65_536  # points per block of split random numbers; fixed so splits never move
# Salts the split stream so it never coincides with a generator a data writer seeded plainly
# (numpy's default_rng(0) and default_rng([0, 0]) are the same stream).
SPLIT_SALT = 0x4D54_4843
TRAIN_FRACTION = 0.675
VALIDATION_END = 0.9
SPLITS = ("train", "validation", "test", "all")
# thin / moderate / thick boundaries in log10 COT (COT 1 and 10)
COT_CLASS_EDGES = (0.0, 1.0)

Selector = Callable[[np.ndarray], np.ndarray]


class SchemaError(ValueError):
    """A file is not a usable training file in the reference schema."""


def split_selector(split: str) -> Selector:
    """Points of a named split, from their split numbers ``u``."""
    table: dict[str, Selector] = {
        "train": lambda u: u < TRAIN_FRACTION,
        "validation": lambda u: (u >= TRAIN_FRACTION) & (u < VALIDATION_END),
        "test": lambda u: u >= VALIDATION_END,
        "all": lambda u: np.ones(u.shape, dtype=bool),
    }
    try:
        return table[split]
    except KeyError:
        raise ValueError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}") from None


def fold_selector(folds: int, fold: int, *, held_out: bool) -> Selector:
    """Points of fold ``fold`` (or all other folds) among the non-test points."""

    def select(u: np.ndarray) -> np.ndarray:
        in_pool = u < VALIDATION_END
        index = np.minimum((u / VALIDATION_END * folds).astype(np.int64), folds - 1)
        return in_pool & ((index == fold) if held_out else (index != fold))

    return select


@dataclass
class Block:
    """Features and targets of some points, as numpy arrays."""

    features: np.ndarray  # (n, F) float32, raw or scaled
    cloudy: np.ndarray  # (n,) float32 0/1
    ice: np.ndarray  # (n,) float32 0/1 (0 when clear)
    # (n,) float32, LOG10_COT_MIN when clear, NaN when cloudy without a COT truth (a partly covered
    # pixel: its COT is only defined for the overcast part, so it trains mask and phase, not COT)
    log10_cot: np.ndarray
    cot_class: np.ndarray  # (n,) int64 0 thin, 1 moderate, 2 thick, -1 clear or without a COT truth
    surface_type: np.ndarray  # (n,) int16, the 20-class albedo_type

    def __len__(self) -> int:
        return len(self.cloudy)

    def take(self, index: np.ndarray) -> Block:
        return Block(*(getattr(self, name)[index] for name in self.__dataclass_fields__))

    @staticmethod
    def concatenate(blocks: Sequence[Block], n_features: int) -> Block:
        if not blocks:
            empty = np.zeros(0, np.float32)
            return Block(
                np.zeros((0, n_features), np.float32), empty, empty, empty, np.zeros(0, np.int64), np.zeros(0, np.int16)
            )
        return Block(*(np.concatenate([getattr(b, name) for b in blocks]) for name in Block.__dataclass_fields__))


def has_cot_truth(truth: Block) -> np.ndarray:
    """Points that train and judge COT: cloudy, and overcast (a finite log10 COT)."""
    return (truth.cloudy > 0.5) & np.isfinite(truth.log10_cot)


def cot_class_of(log10_cot: np.ndarray) -> np.ndarray:
    """Coarse COT class of log10 COT: 0 thin (< 1), 1 moderate (1-10), 2 thick (>= 10)."""
    return np.digitize(log10_cot, COT_CLASS_EDGES).astype(np.int64)


class ReferenceDataset:
    """One reference-schema training file, the bands of one sensor, read lazily."""

    def __init__(
        self,
        path: str | Path,
        sensor: str,
        bands: Sequence[str] | None = None,
        seed: int = 0,
        angle_transform: str = "cos_degrees",
        spec: FeatureSpec | None = None,
        surface_grouping: str = "reference",
    ) -> None:
        """Open ``path`` for ``sensor``; ``spec`` (e.g. an artifact's) overrides bands and transform."""
        self.path = Path(path)
        self.sensor = sensor
        self.seed = seed
        table = sensor_bands(sensor)
        if not self.path.exists():
            raise FileNotFoundError(f"training file {self.path} does not exist")
        try:
            self._nc = netCDF4.Dataset(self.path)
        except OSError as err:
            raise SchemaError(f"{self.path} is not a readable netCDF file ({err})") from None
        self._nc.set_auto_mask(False)
        try:
            self.npoints = self._check_layout()
            self.spec = spec or self._default_spec(bands, angle_transform, surface_grouping)
            self.band_index = self._select_bands(self._nc.variables[table.reflectance_variable])
            self.thermal_index = self._select_thermal_bands()
            self.angle_factor = self._angle_factor()
        except Exception:
            self.close()
            raise

    def _default_spec(self, bands: Sequence[str] | None, angle_transform: str, surface_grouping: str) -> FeatureSpec:
        """The sensor's spec for ``bands``; a file of a world before simulator 2.6 has no window
        contrast, so its models are built without one, as they were then."""
        with_contrast = self._contrast_variable in self._nc.variables
        spec = FeatureSpec.for_sensor(
            self.sensor, bands, angle_transform, surface_grouping, window_contrast=with_contrast
        )
        if not with_contrast and spec.thermal_bands:
            logger.info("%s has no %s: the spec goes without the window contrast", self.path, self._contrast_variable)
        return spec

    # ---- file layout --------------------------------------------------------------------------
    def _check_layout(self) -> int:
        """The number of points, after checking every schema variable is there with its shape."""
        table = sensor_bands(self.sensor)
        missing = [v for v in (table.reflectance_variable, *SCALAR_VARIABLES) if v not in self._nc.variables]
        if missing:
            raise SchemaError(
                f"{self.path} is not a reference-schema training file for {self.sensor}: it lacks {', '.join(missing)}"
            )
        refl = self._nc.variables[table.reflectance_variable]
        if len(refl.dimensions) != 2 or refl.dimensions[1] != "npoints":
            raise SchemaError(
                f"{self.path}: {table.reflectance_variable} has dimensions {refl.dimensions}, "
                f"expected ({table.band_dimension}, npoints)"
            )
        npoints = int(refl.shape[1])
        for name in SCALAR_VARIABLES:
            if self._nc.variables[name].shape != (npoints,):
                raise SchemaError(
                    f"{self.path}: {name} has shape {self._nc.variables[name].shape}, expected ({npoints},)"
                )
        return npoints

    def _file_wavelengths_um(self, refl: Any) -> np.ndarray:
        table = sensor_bands(self.sensor)
        dim = refl.dimensions[0]
        if dim in self._nc.variables:
            values = np.asarray(self._nc.variables[dim][:], dtype=np.float64)
            units = str(getattr(self._nc.variables[dim], "units", "")).lower()
            in_nm = "nm" in units or "nanomet" in units or (not units and values.max() > 100)
            return values / 1e3 if in_nm else values
        if refl.shape[0] == len(table.training_bands):
            return np.array([b.central_um for b in table.training_bands])
        raise SchemaError(f"{self.path}: {refl.name} has {refl.shape[0]} bands and no {dim} wavelength coordinate")

    def _select_bands(self, refl: Any) -> np.ndarray:
        """Index of each spec band in the file's band axis, matched by central wavelength."""
        wavelengths = self._file_wavelengths_um(refl)
        table = sensor_bands(self.sensor)
        index = []
        for name in self.spec.reflective_bands:
            band = table.band(name)
            tolerance = max(0.2 * (band.max_um - band.min_um), 5e-4)
            nearest = int(np.argmin(np.abs(wavelengths - band.central_um)))
            if abs(wavelengths[nearest] - band.central_um) > tolerance:
                raise SchemaError(
                    f"{self.path}: no band near {band.central_um * 1e3:.1f} nm ({name}) in {refl.name}; "
                    f"nearest is {wavelengths[nearest] * 1e3:.1f} nm"
                )
            index.append(nearest)
        return np.asarray(index)

    def _select_thermal_bands(self) -> np.ndarray:
        """Index of each spec thermal band in the file's thermal axis, matched by name."""
        wanted = self.spec.thermal_bands
        if not wanted:
            return np.zeros(0, dtype=np.int64)
        table = sensor_bands(self.sensor)
        names_var = f"{self.sensor}_thermal_band_name"
        missing_vars = [
            v
            for v in (table.brightness_temperature_variable, names_var, *THERMAL_SCALARS)
            if v not in self._nc.variables
        ]
        if missing_vars:
            raise SchemaError(f"{self.path} has no thermal bands for {self.sensor}: it lacks {', '.join(missing_vars)}")
        if CONTEXT_SOURCE in self.spec.sources and self._contrast_variable not in self._nc.variables:
            raise SchemaError(
                f"{self.path} has no {self._contrast_variable} (simulator physics 2.6 on), which the "
                f"{self.sensor} thermal feature spec reads"
            )
        names = [str(n) for n in self._nc.variables[names_var][:]]
        absent = [n for n in wanted if n not in names]
        if absent:
            raise SchemaError(f"{self.path}: thermal bands {', '.join(absent)} are not in {names_var} ({names})")
        return np.array([names.index(n) for n in wanted])

    @property
    def _contrast_variable(self) -> str:
        return sensor_bands(self.sensor).window_contrast_variable

    def _angle_factor(self) -> float:
        """Factor taking the file's angles to degrees (from ``units``, else from their range)."""
        var = self._nc.variables["solar_zenith_angle"]
        units = str(getattr(var, "units", "")).lower()
        if units.startswith("deg"):
            return 1.0
        if units.startswith("rad"):
            return 180.0 / math.pi
        sample = np.asarray(var[: min(self.npoints, 100_000)], dtype=np.float64)
        in_degrees = np.nanmax(np.abs(sample)) > 2 * math.pi
        logger.warning(
            "%s: angles carry no units attribute; taking them as %s from their range",
            self.path,
            "degrees" if in_degrees else "radians",
        )
        return 1.0 if in_degrees else 180.0 / math.pi

    @property
    def attributes(self) -> dict[str, Any]:
        return {name: self._nc.getncattr(name) for name in self._nc.ncattrs()}

    def describe(self) -> dict[str, Any]:
        """What a model card says of its training data."""
        attrs = self.attributes
        return {
            "file_name": self.path.name,
            "npoints": self.npoints,
            "sensor": self.sensor,
            "bands": self.spec.bands,
            "split_seed": self.seed,
            "description": str(attrs.get("description", attrs.get("title", ""))),
            "version": str(attrs.get("version", attrs.get("simulator_version", ""))),
            "simulator_version": str(attrs.get("simulator_version", "")),
            # glint-free worlds (the reference's data, simulator 1.x) leave glint geometry untrained
            "sun_glint": "wind_speed" in self._nc.variables,
        }

    def close(self) -> None:
        if getattr(self, "_nc", None) is not None and self._nc.isopen():
            self._nc.close()

    def __enter__(self) -> ReferenceDataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- reading --------------------------------------------------------------------------------
    def split_numbers(self, start: int, stop: int) -> np.ndarray:
        """The split number ``u`` of points [start, stop), fixed by the seed."""
        first, last = start // SPLIT_BLOCK, (stop - 1) // SPLIT_BLOCK
        u = np.concatenate(
            [
                np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(SPLIT_SALT, b))).random(SPLIT_BLOCK)
                for b in range(first, last + 1)
            ]
        )
        offset = first * SPLIT_BLOCK
        return u[start - offset : stop - offset]

    def read(self, start: int, stop: int) -> Block:
        """Raw (unscaled) features and targets of points [start, stop)."""
        table = sensor_bands(self.sensor)
        refl = np.asarray(self._nc.variables[table.reflectance_variable][:, start:stop], dtype=np.float32)
        variables: dict[str, Any] = {
            name: refl[i] for name, i in zip(self.spec.reflective_bands, self.band_index, strict=True)
        }
        if self.spec.thermal_bands:
            bt = np.asarray(self._nc.variables[table.brightness_temperature_variable][:, start:stop], dtype=np.float32)
            for name, i in zip(self.spec.thermal_bands, self.thermal_index, strict=True):
                variables[name] = bt[i]
        if CONTEXT_SOURCE in self.spec.sources:
            variables[CONTEXT_SOURCE] = np.asarray(self._nc.variables[self._contrast_variable][start:stop])
        for name in (*SCALAR_VARIABLES, *THERMAL_SCALARS):
            if name in self.spec.sources or name in SCALAR_VARIABLES:
                stored = MODEL_INPUTS.get(name, name)
                stored = stored if stored in self._nc.variables else name
                variables[name] = np.asarray(self._nc.variables[stored][start:stop])
        for angle in GEOMETRY_ANGLES:
            variables[angle] = variables[angle].astype(np.float64) * self.angle_factor
        features = self.spec.raw_features(variables)
        cloudy = variables["scene_type"] == 2
        log10_cot = np.where(cloudy, variables["log10_cloud_optical_thickness"], LOG10_COT_MIN).astype(np.float32)
        if np.any(cloudy & ~np.isfinite(log10_cot)):
            raise SchemaError(f"{self.path}: cloudy points with no finite log10_cloud_optical_thickness")
        if "cloud_cover" in self._nc.variables:  # physics 2.5 on: broken clouds have no COT truth
            cover = np.asarray(self._nc.variables["cloud_cover"][start:stop], dtype=np.float32)
            log10_cot = np.where(cloudy & (cover < 1.0), np.float32(np.nan), log10_cot)
        overcast = cloudy & np.isfinite(log10_cot)
        return Block(
            features=features,
            cloudy=cloudy.astype(np.float32),
            ice=(cloudy & (variables["cloud_type"] == 2)).astype(np.float32),
            log10_cot=log10_cot,
            cot_class=np.where(overcast, cot_class_of(np.nan_to_num(log10_cot)), -1),
            surface_type=variables["albedo_type"].astype(np.int16),
        )

    def ranges(self, block_size: int) -> list[tuple[int, int]]:
        return [(s, min(s + block_size, self.npoints)) for s in range(0, self.npoints, block_size)]

    def iter_blocks(
        self, selector: Selector, block_size: int = 262_144, order: np.ndarray | None = None
    ) -> Iterator[Block]:
        """Raw blocks of the selected points, in file order or the given block order."""
        ranges = self.ranges(block_size)
        for i in order if order is not None else range(len(ranges)):
            start, stop = ranges[int(i)]
            block = self.read(start, stop)
            yield block.take(selector(self.split_numbers(start, stop)))

    def fit_scaling(self, selector: Selector | None = None, block_size: int = 262_144) -> FeatureSpec:
        """The spec with min-max scaling fitted on the selected points (default: the training split)."""
        selector = selector or split_selector("train")
        lo = np.full(self.spec.size, np.inf)
        hi = np.full(self.spec.size, -np.inf)
        count = 0
        for block in self.iter_blocks(selector, block_size):
            if len(block):
                lo = np.minimum(lo, np.nanmin(block.features, axis=0))
                hi = np.maximum(hi, np.nanmax(block.features, axis=0))
                count += len(block)
        if count == 0:
            raise SchemaError(f"{self.path}: no points to fit the scaling on")
        return self.spec.with_scaling(lo.tolist(), hi.tolist())


class FeatureSource:
    """Scaled blocks of one selection of points, cached in memory when they fit the budget."""

    def __init__(
        self,
        dataset: ReferenceDataset,
        spec: FeatureSpec,
        selector: Selector,
        block_size: int = 262_144,
        memory_budget_bytes: int = 2 * 1024**3,
    ) -> None:
        self.dataset = dataset
        self.spec = spec
        self.selector = selector
        self.block_size = block_size
        estimate = dataset.npoints * spec.size * 4
        self._cache: Block | None = None
        if estimate <= memory_budget_bytes:
            self._cache = Block.concatenate(list(self._scaled_blocks(None)), spec.size)
            logger.debug("cached %d points of %s in memory", len(self._cache), dataset.path.name)

    def _scaled_blocks(self, order: np.ndarray | None) -> Iterator[Block]:
        for block in self.dataset.iter_blocks(self.selector, self.block_size, order):
            block.features = self.spec.scale(block.features)
            yield block

    @property
    def cached(self) -> bool:
        return self._cache is not None

    def __len__(self) -> int:
        if self._cache is not None:
            return len(self._cache)
        return sum(len(b) for b in self.dataset.iter_blocks(self.selector, self.block_size))

    def blocks(self, rng: np.random.Generator | None = None) -> Iterator[Block]:
        """Blocks of scaled points; with ``rng``, in random block order, shuffled within each block."""
        if self._cache is not None:
            yield self._cache.take(rng.permutation(len(self._cache))) if rng is not None else self._cache
            return
        n_ranges = len(self.dataset.ranges(self.block_size))
        order = rng.permutation(n_ranges) if rng is not None else None
        for block in self._scaled_blocks(order):
            yield block.take(rng.permutation(len(block))) if rng is not None else block

    def all(self) -> Block:
        """Every selected point in one block (use only when it fits in memory)."""
        if self._cache is not None:
            return self._cache
        return Block.concatenate(list(self.blocks()), self.spec.size)
