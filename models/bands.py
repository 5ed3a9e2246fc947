"""Band tables of the supported imagers (solar-reflective and thermal infrared), as data.

Band edges are satpy's reader tables (``abi_l1b.yaml``, ``viirs_l1b.yaml``: ``[min, central, max]``
in micrometres). OCI uses the MT-HCCAR training grid: 216 hyperspectral bands at 2.5 nm steps
(5 nm wide) from 349.994 nm, plus seven SWIR bands with the OBPG L1B bandpasses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class SensorName(StrEnum):
    """The sensors a user can name (CLI options, flow parameters)."""

    abi = "abi"
    viirs = "viirs"
    oci = "oci"


@dataclass(frozen=True)
class Band:
    """One spectral band: a name and its top-hat edges in micrometres."""

    name: str
    min_um: float
    central_um: float
    max_um: float


@dataclass(frozen=True)
class SensorBands:
    """Where a sensor's reflectances live in a reference-schema training file, and which bands."""

    sensor: str
    reflectance_variable: str
    band_dimension: str
    training_bands: tuple[Band, ...]
    extra_bands: tuple[Band, ...] = ()
    thermal_bands: tuple[Band, ...] = ()

    @property
    def brightness_temperature_variable(self) -> str:
        return f"{self.sensor}_brightness_temperatures"

    @property
    def window_contrast_variable(self) -> str:
        return f"{self.sensor}_window_contrast"

    @property
    def thermal_dimension(self) -> str:
        return f"nbands_{self.sensor}_thermal"

    @property
    def all_bands(self) -> tuple[Band, ...]:
        return self.training_bands + self.extra_bands + self.thermal_bands

    def is_thermal(self, name: str) -> bool:
        return any(b.name == name for b in self.thermal_bands)

    def band(self, name: str) -> Band:
        for candidate in self.all_bands:
            if candidate.name == name:
                return candidate
        known = ", ".join(b.name for b in self.all_bands[:20])
        raise KeyError(f"{self.sensor} has no band named {name!r} (known: {known}...)")


def _bands(rows: list[tuple[str, float, float, float]]) -> tuple[Band, ...]:
    return tuple(Band(*row) for row in rows)


ABI_BANDS = _bands(
    [
        ("C01", 0.450, 0.470, 0.490),
        ("C02", 0.590, 0.640, 0.690),
        ("C03", 0.8455, 0.865, 0.8845),
        ("C04", 1.3705, 1.378, 1.3855),
        ("C05", 1.580, 1.610, 1.640),
        ("C06", 2.225, 2.250, 2.275),
    ]
)

VIIRS_M_BANDS = _bands(
    [
        ("M01", 0.402, 0.412, 0.422),
        ("M02", 0.436, 0.445, 0.454),
        ("M03", 0.478, 0.488, 0.498),
        ("M04", 0.545, 0.555, 0.565),
        ("M05", 0.662, 0.672, 0.682),
        ("M06", 0.739, 0.746, 0.754),
        ("M07", 0.846, 0.865, 0.885),
        ("M08", 1.230, 1.240, 1.250),
        ("M09", 1.371, 1.378, 1.386),
        ("M10", 1.580, 1.610, 1.640),
        ("M11", 2.225, 2.250, 2.275),
    ]
)
# Thermal infrared (``thermal_bands``): the window and split-window bands the night and day-IR
# models use; edges from satpy's reader tables as above.
ABI_THERMAL_BANDS = _bands(
    [
        ("C07", 3.80, 3.90, 4.00),
        ("C11", 8.30, 8.50, 8.70),
        ("C13", 10.10, 10.35, 10.60),
        ("C14", 10.80, 11.20, 11.60),
        ("C15", 11.80, 12.30, 12.80),
        ("C16", 13.00, 13.30, 13.60),  # the CO2 band's wing: how high a cloud's top is (CO2 slicing)
    ]
)
VIIRS_THERMAL_BANDS = _bands(
    [
        ("M12", 3.61, 3.70, 3.79),
        ("M13", 3.973, 4.05, 4.128),
        ("M14", 8.40, 8.55, 8.70),
        ("M15", 10.263, 10.763, 11.263),
        ("M16", 11.538, 12.013, 12.489),
    ]
)

VIIRS_I_BANDS = _bands(
    [
        ("I01", 0.600, 0.640, 0.680),
        ("I02", 0.845, 0.865, 0.884),
        ("I03", 1.580, 1.610, 1.640),
    ]
)
# The reference training file's 10 VIIRS bands (412-2250 nm): the M bands without M06, which
# saturates over bright cloud.
VIIRS_TRAINING_BANDS = tuple(b for b in VIIRS_M_BANDS if b.name != "M06")

OCI_HYPERSPECTRAL_START_NM = 349.994
OCI_HYPERSPECTRAL_STEP_NM = 2.5
OCI_HYPERSPECTRAL_COUNT = 216
OCI_HYPERSPECTRAL_WIDTH_NM = 5.0
# centre (nm, MT-HCCAR grid) and bandpass (nm, OBPG write_band_parms)
OCI_SWIR_NM = (
    (940.691, 45.0),
    (1039.085, 80.0),
    (1250.153, 30.0),
    (1378.000, 15.0),
    (1616.101, 75.0),
    (2130.368, 50.0),
    (2260.707, 75.0),
)


def oci_band_name(centre_nm: float) -> str:
    """The project's name of an OCI band: ``oci_`` and the rounded centre in nm (unique on the grid)."""
    return f"oci_{round(centre_nm)}"


def _oci_bands() -> tuple[Band, ...]:
    rows = []
    for i in range(OCI_HYPERSPECTRAL_COUNT):
        centre = OCI_HYPERSPECTRAL_START_NM + OCI_HYPERSPECTRAL_STEP_NM * i
        half = OCI_HYPERSPECTRAL_WIDTH_NM / 2
        rows.append((oci_band_name(centre), (centre - half) / 1e3, centre / 1e3, (centre + half) / 1e3))
    for centre, width in OCI_SWIR_NM:
        rows.append((oci_band_name(centre), (centre - width / 2) / 1e3, centre / 1e3, (centre + width / 2) / 1e3))
    return _bands(rows)


OCI_BANDS = _oci_bands()

SENSORS: dict[str, SensorBands] = {
    "abi": SensorBands("abi", "abi_reflectances", "nbands_abi", ABI_BANDS, thermal_bands=ABI_THERMAL_BANDS),
    "viirs": SensorBands(
        "viirs",
        "viirs_reflectances",
        "nbands_viirs",
        VIIRS_TRAINING_BANDS,
        extra_bands=tuple(b for b in VIIRS_M_BANDS if b.name == "M06") + VIIRS_I_BANDS,
        thermal_bands=VIIRS_THERMAL_BANDS,
    ),
    "oci": SensorBands("oci", "oci_reflectances", "nbands_oci", OCI_BANDS),
}


def requested_bands(requested: Sequence[str] | None, known: Sequence[str], what: str) -> list[str]:
    """The requested band names (every known one when none are asked for); names the unknown ones."""
    names = list(requested) if requested else list(known)
    unknown = [b for b in names if b not in known]
    if unknown:
        raise ValueError(f"{what}; cannot use {', '.join(unknown)}")
    return names


def sensor_bands(sensor: str) -> SensorBands:
    """The band table of ``sensor``; a clear error for an unknown sensor."""
    try:
        return SENSORS[sensor]
    except KeyError:
        raise ValueError(f"unknown sensor {sensor!r}: expected one of {', '.join(SENSORS)}") from None
