"""FeatureSpec: the ordered inputs of a model, how each is computed and how it is scaled.

The spec is stored inside every model artifact, so inference recomputes exactly the features the
model was trained on. Feature order follows the reference implementation: reflectances, h2o, o3,
surface pressure, a 4-class surface one-hot, then cosines of the solar zenith, sensor zenith and
relative azimuth angles.

Conventions (settled here, recorded in every spec):

* reflectance is the bidirectional reflectance factor BRF = pi L / (mu0 E0), unitless;
* angles are in degrees and the geometry features are ``cos(radians(angle))``. The reference code
  applied ``np.cos`` to whatever the file held; a spec converted from a reference checkpoint can
  reproduce that with the ``cos_raw`` transform;
* relative azimuth is ``|sensor azimuth - solar azimuth|`` folded to [0, 180] degrees, with
  0 = backscatter (sun behind the sensor) and 180 = forward scattering (glint side).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from models.bands import sensor_bands
from models.context import SOURCE as CONTEXT_SOURCE
from models.context import WINDOW_BAND

REFLECTANCE_CONVENTION = "BRF = pi * L / (mu0 * E0), unitless"
RELATIVE_AZIMUTH_CONVENTION = (
    "|sensor_azimuth - solar_azimuth| folded to [0, 180] degrees; 0 = backscatter, 180 = forward scatter"
)
SPEC_VERSION = 1

# Surface classes of the 20-class CERES-modified IGBP scheme, grouped as the reference does.
SURFACE_GROUPS: dict[str, tuple[int, ...]] = {
    "land": (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 18),
    "snow": (15, 19, 20),
    "desert": (16,),
    "ocean_water": (17,),
}

# The default models split the reference's "land" by how much soil and dry vegetation shows through:
# a land-cover map at inference (``models.earth.igbp_class``) then tells the network which surfaces
# can be as bright as thin cloud.
LAND_COVER_GROUPS: dict[str, tuple[int, ...]] = {
    "forest": (1, 2, 3, 4, 5, 8),
    "open_land": (6, 7, 9, 10, 11, 12, 13, 14, 18),
    "snow": (15, 19, 20),
    "desert": (16,),
    "ocean_water": (17,),
}
SURFACE_GROUPINGS: dict[str, dict[str, tuple[int, ...]]] = {
    "reference": SURFACE_GROUPS,
    "land_cover": LAND_COVER_GROUPS,
}

ANCILLARY_UNITS = {"h2o": "cm", "o3": "DU", "spress": "hPa"}
THERMAL_ANCILLARY_UNITS = {"skt": "K"}  # surface skin temperature, for models with thermal bands
GEOMETRY_ANGLES = ("solar_zenith_angle", "viewing_zenith_angle", "relative_azimuth_angle")
NIGHT_GEOMETRY_ANGLES = ("viewing_zenith_angle",)  # without the sun, only the view angle matters


class SpecError(ValueError):
    """A feature spec is malformed or cannot be applied to the given inputs."""


@dataclass(frozen=True)
class Feature:
    """One model input: what it is computed from, how, and the fitted min-max scaling."""

    name: str
    kind: str  # reflectance | brightness_temperature | ancillary | context | surface_class | geometry
    source: str  # the input variable: a band name, "h2o", "albedo_type", "solar_zenith_angle", ...
    transform: str = "identity"  # identity | one_hot | cos_degrees | cos_raw
    units: str = "1"
    wavelength_um: float | None = None
    classes: tuple[int, ...] | None = None
    minimum: float = 0.0
    maximum: float = 1.0


def _one_hot(values: Any, feature: Feature) -> Any:
    assert feature.classes is not None
    return np.isin(values, np.asarray(feature.classes)).astype(np.float32)


TRANSFORMS: dict[str, Callable[[Any, Feature], Any]] = {
    "identity": lambda values, feature: values,
    "one_hot": _one_hot,
    "cos_degrees": lambda values, feature: np.cos(np.deg2rad(values)),
    "cos_raw": lambda values, feature: np.cos(values),
}


@dataclass(frozen=True)
class FeatureSpec:
    """Ordered model inputs of one sensor, with their scaling numbers."""

    sensor: str
    features: tuple[Feature, ...]
    scaling_fitted: bool = False
    reflectance_convention: str = REFLECTANCE_CONVENTION
    relative_azimuth_convention: str = RELATIVE_AZIMUTH_CONVENTION
    angle_units: str = "degrees"
    version: int = SPEC_VERSION
    notes: dict[str, str] = field(default_factory=dict)

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def for_sensor(
        cls,
        sensor: str,
        bands: Sequence[str] | None = None,
        angle_transform: str = "cos_degrees",
        surface_grouping: str = "reference",
        night: bool = False,
        window_contrast: bool = True,
    ) -> FeatureSpec:
        """The reference feature order for ``sensor`` and a band subset (default: its training bands).

        Thermal bands in ``bands`` become brightness-temperature features and add the skin
        temperature input, and the window band the window contrast (``models.context``) unless
        ``window_contrast`` is false (worlds before simulator 2.6); a ``night`` spec (implied when
        every band is thermal) keeps only the view angle of the geometry.
        """
        if surface_grouping not in SURFACE_GROUPINGS:
            raise SpecError(f"unknown surface grouping {surface_grouping!r} (known: {', '.join(SURFACE_GROUPINGS)})")
        table = sensor_bands(sensor)
        names = list(bands) if bands else [b.name for b in table.training_bands]
        if len(set(names)) != len(names):
            raise SpecError(f"band list {names} names a band twice")
        night = night or (
            bool(names) and all(table.is_thermal(n) for n in names if n in {b.name for b in table.all_bands})
        )
        features: list[Feature] = []
        for name in names:
            try:
                band = table.band(name)
            except KeyError as err:
                raise SpecError(str(err.args[0])) from None
            if table.is_thermal(name):
                features.append(Feature(name, "brightness_temperature", name, units="K", wavelength_um=band.central_um))
            elif night:
                raise SpecError(f"a night model cannot use the solar band {name}")
            else:
                features.append(Feature(name, "reflectance", name, wavelength_um=band.central_um))
        thermal = any(table.is_thermal(name) for name in names)
        ancillary = {**ANCILLARY_UNITS, **(THERMAL_ANCILLARY_UNITS if thermal else {})}
        for name, units in ancillary.items():
            features.append(Feature(name, "ancillary", name, units=units))
        if window_contrast and WINDOW_BAND.get(sensor) in names:  # the scene's clear-sky background
            window = table.band(WINDOW_BAND[sensor])
            features.append(
                Feature(CONTEXT_SOURCE, "context", CONTEXT_SOURCE, units="K", wavelength_um=window.central_um)
            )
        for group, classes in SURFACE_GROUPINGS[surface_grouping].items():
            features.append(Feature(f"surface_{group}", "surface_class", "albedo_type", "one_hot", classes=classes))
        if angle_transform not in ("cos_degrees", "cos_raw"):
            raise SpecError(f"unknown angle transform {angle_transform!r}")
        for angle in NIGHT_GEOMETRY_ANGLES if night else GEOMETRY_ANGLES:
            features.append(Feature(f"cos_{angle}", "geometry", angle, angle_transform))
        return cls(sensor=sensor, features=tuple(features))

    # ---- properties ---------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return len(self.features)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def bands(self) -> list[str]:
        """Every band the model reads, solar and thermal."""
        return [f.source for f in self.features if f.kind in ("reflectance", "brightness_temperature")]

    @property
    def reflective_bands(self) -> list[str]:
        return [f.source for f in self.features if f.kind == "reflectance"]

    @property
    def thermal_bands(self) -> list[str]:
        return [f.source for f in self.features if f.kind == "brightness_temperature"]

    @property
    def night(self) -> bool:
        """A night model: no solar band and no solar geometry."""
        return not self.reflective_bands and "solar_zenith_angle" not in self.sources

    @property
    def sources(self) -> list[str]:
        """The distinct input variables the features need, in first-use order."""
        return list(dict.fromkeys(f.source for f in self.features))

    # ---- computation --------------------------------------------------------------------------
    def raw_features(self, variables: Mapping[str, Any]) -> Any:
        """Stack the unscaled features along a new last axis (numpy or dask, any leading shape)."""
        missing = [s for s in self.sources if s not in variables]
        if missing:
            raise SpecError(f"inputs lack {', '.join(missing)} needed by the {self.sensor} feature spec")
        columns = [TRANSFORMS[f.transform](variables[f.source], f) for f in self.features]
        return np.stack(columns, axis=-1).astype(np.float32)

    @property
    def offsets(self) -> np.ndarray:
        return np.array([f.minimum for f in self.features], dtype=np.float32)

    @property
    def scales(self) -> np.ndarray:
        span = np.array([f.maximum - f.minimum for f in self.features], dtype=np.float64)
        return np.where(span > 0, span, 1.0).astype(np.float32)

    def scale(self, raw: Any) -> Any:
        """Min-max scale raw features (..., F) with the stored numbers."""
        return ((raw - self.offsets) / self.scales).astype(np.float32)

    def with_scaling(self, minimum: Sequence[float], maximum: Sequence[float]) -> FeatureSpec:
        """A copy of this spec carrying fitted scaling numbers."""
        if len(minimum) != self.size or len(maximum) != self.size:
            raise SpecError(f"scaling has {len(minimum)} values for {self.size} features")
        features = tuple(
            replace(f, minimum=float(lo), maximum=float(hi))
            for f, lo, hi in zip(self.features, minimum, maximum, strict=True)
        )
        return replace(self, features=features, scaling_fitted=True)

    # ---- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["features"] = [
            {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(f).items()} for f in self.features
        ]
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        try:
            features = tuple(
                Feature(**{**f, "classes": tuple(f["classes"]) if f.get("classes") is not None else None})
                for f in data["features"]
            )
            spec = cls(**{**data, "features": features})
        except (KeyError, TypeError) as err:
            raise SpecError(f"malformed feature spec: {err}") from None
        unknown = {f.transform for f in spec.features} - set(TRANSFORMS)
        if unknown:
            raise SpecError(f"feature spec uses unknown transforms {sorted(unknown)}")
        return spec

    @classmethod
    def from_json(cls, text: str) -> FeatureSpec:
        return cls.from_dict(json.loads(text))


def relative_azimuth(sensor_azimuth: Any, solar_azimuth: Any) -> Any:
    """Relative azimuth in the spec's convention: |sensor - solar| folded to [0, 180] degrees.

    Azimuths are directions from the pixel towards the sensor and the sun (degrees clockwise from
    north), so 0 means the sun is behind the sensor (backscatter). Works on numpy and dask arrays.
    """
    difference = abs(sensor_azimuth - solar_azimuth) % 360
    return np.where(difference > 180, 360 - difference, difference)
