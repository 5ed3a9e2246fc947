"""Build the simulator's shipped tables (run once, offline; needs the ``disort`` extra).

* ``data/cloud_optics.npz``: bulk Mie properties of liquid and ice clouds against wavelength and
  effective radius (``miepython``);
* ``data/ms_correction.npz``: multiplicative correction of the fast model's multiple-scattering
  term, C = (R_DISORT - R_single) / R_multiple, for a single non-absorbing-to-absorbing HG cloud
  layer over a black surface, over (g, log10(1 - ssa), log10 tau, mu0, mu, phi) (``nanodisort``,
  32 streams, TMS/IMS).

* ``data/surface_library.npz``: measured land-surface endmember spectra from ``earthlib``
  (``surface_library``; needs the ``surfaces`` extra).

``python -m models.training.simulate.build_tables [cloud-optics|cloud-optics-extend|surfaces|correction|all]``
"""

from __future__ import annotations

import logging
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from models.bands import SENSORS
from models.fileio import atomic_output
from models.training.simulate import disort
from models.training.simulate.optics import DATA, read_table
from models.training.simulate.rt import Layer, block_optics

logger = logging.getLogger(__name__)

EFFECTIVE_VARIANCE = 0.1
RADII = {
    "liquid": np.array([3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0, 25.0, 30.0]),
    "ice": np.array([5.0, 8.0, 10.0, 15.0, 20.0, 30.0, 40.0, 60.0, 80.0]),
}
ICE_G_NONABSORBING = 0.75  # roughened aggregate of columns (Yang et al. 2013; Platnick et al. 2017)

# correction-table axes (as validated against DISORT in the simulator notes)
CORRECTION_AXES = {
    "G": np.array([0.70, 0.78, 0.86, 0.90]),
    "LW": np.array([-7.0, -4.0, -3.0, -2.5, -2.0, -1.5, -1.0, -0.5]),
    "LTAU": np.linspace(np.log10(0.01), np.log10(400), 15),
    "MU0": np.linspace(0.2, 1.0, 9),
    "MU": np.linspace(0.2, 1.0, 9),
    "PHI": np.linspace(0, 180, 13),
}


def table_wavelengths() -> np.ndarray:
    """A 20 nm grid from 0.34 to 2.42 um plus every band centre of the supported sensors."""
    centres = {round(b.central_um, 4) for table in SENSORS.values() for b in table.all_bands}
    return np.unique(np.concatenate([np.round(np.arange(0.34, 2.4201, 0.02), 4), sorted(centres)]))


@lru_cache(maxsize=2)
def _index_table(phase: str) -> dict[str, np.ndarray]:
    """The refractive-index table of a phase, read once (every Mie call needs it)."""
    return read_table(f"refractive_index_{'water' if phase == 'liquid' else 'ice'}.csv")


def refractive_index(phase: str, wavelength_um: float) -> complex:
    table = _index_table(phase)
    x = np.log(wavelength_um)
    n = np.interp(x, np.log(table["wavelength_um"]), table["n"])
    k = np.exp(np.interp(x, np.log(table["wavelength_um"]), np.log(table["k"])))
    return complex(n, -k)


def bulk_mie(phase: str, wavelength_um: float, effective_radius_um: float) -> tuple[float, float, float]:
    """(Q_ext, ssa, g) of a gamma size distribution (v_eff = 0.1) of spheres."""
    import miepython

    a = (1 - 3 * EFFECTIVE_VARIANCE) / EFFECTIVE_VARIANCE
    r = np.geomspace(max(0.05, effective_radius_um * 0.02), effective_radius_um * 6, 400)
    n = r**a * np.exp(-r / (effective_radius_um * EFFECTIVE_VARIANCE))
    weight = n * np.pi * r**2 * np.gradient(r)
    qext, qsca, _, g = miepython.efficiencies_mx(refractive_index(phase, wavelength_um), 2 * np.pi * r / wavelength_um)
    cext, csca = np.sum(weight * qext), np.sum(weight * qsca)
    return cext / np.sum(weight), csca / cext, np.sum(weight * qsca * g) / csca


def _mie_row(args: tuple[str, float]) -> np.ndarray:
    phase, wavelength = args
    return np.array([bulk_mie(phase, wavelength, r) for r in RADII[phase]])


def build_cloud_optics(path: Path = DATA / "cloud_optics.npz", workers: int = 2, extend: bool = False) -> Path:
    """Mie tables at ``table_wavelengths``; with ``extend`` only the wavelengths the file lacks."""
    wavelengths = table_wavelengths()
    existing: dict[str, np.ndarray] = {}
    if extend and path.exists():
        with np.load(path) as data:
            existing = {key: data[key] for key in data.files}
        have = np.round(existing["wavelength_um"].astype(np.float64), 4)
        wavelengths = np.array([w for w in wavelengths if not np.any(np.abs(have - w) < 1e-4)])
        if not len(wavelengths):
            return path
    out: dict[str, np.ndarray] = {"wavelength_um": wavelengths.astype(np.float32)}
    started = time.perf_counter()
    for phase in ("liquid", "ice"):
        with ProcessPoolExecutor(workers) as pool:
            rows = np.array(list(pool.map(_mie_row, [(phase, float(w)) for w in wavelengths], chunksize=4)))
        qext, ssa, g = rows[..., 0], rows[..., 1], rows[..., 2]
        if phase == "ice":
            # roughened-crystal asymmetry: 0.75 where ice does not absorb, plus the sphere's
            # absorption-driven increase scaled by (1 - 0.75) / (1 - g_sphere(0.64 um))
            g_ref = np.array([np.interp(0.64, wavelengths, g[:, j]) for j in range(g.shape[1])])
            g = ICE_G_NONABSORBING + (g - g_ref) * (1 - ICE_G_NONABSORBING) / (1 - g_ref)
        out[f"{phase}_effective_radius_um"] = RADII[phase].astype(np.float32)
        out[f"{phase}_qext"] = qext.astype(np.float32)
        out[f"{phase}_ssa"] = ssa.astype(np.float64)  # co-albedos down to 1e-9 need double precision
        out[f"{phase}_g"] = g.astype(np.float32)
        logger.info("%s Mie table done (%.0f s)", phase, time.perf_counter() - started)
    if existing:
        order = np.argsort(np.concatenate([existing["wavelength_um"], out["wavelength_um"]]))
        for key, values in out.items():
            if key.endswith("effective_radius_um"):
                continue
            out[key] = np.concatenate([existing[key], values])[order]
    save_arrays(path, out)
    return path


def build_ms_correction(path: Path = DATA / "ms_correction.npz") -> Path:
    axes = CORRECTION_AXES
    table = np.ones([len(v) for v in axes.values()], dtype=np.float64)
    g, lw, ltau = np.meshgrid(axes["G"], axes["LW"], axes["LTAU"], indexing="ij")
    g, ssa, tau = g.ravel(), 1 - 10 ** lw.ravel(), 10 ** ltau.ravel()
    zero = np.zeros_like(tau)
    started = time.perf_counter()
    for i, mu0 in enumerate(axes["MU0"]):
        layers = [{"tau_c": tau, "ssa_c": ssa, "g_c": g, "tau_r": zero, "tau_a": zero}]
        reference = disort.toa_brf(mu0, layers, zero, axes["MU"], axes["PHI"])  # (n, mu, phi)
        fast = block_optics(
            np.array(mu0),
            axes["MU"][None, :, None],
            np.cos(np.radians(axes["PHI"]))[None, None, :],
            [Layer(tau[:, None, None], ssa[:, None, None], g[:, None, None], zero[:, None, None], zero[:, None, None])],
        )
        single, multiple = fast.single, fast.multiple
        factor = np.where(multiple < 1e-4, 1.0, np.clip((reference - single) / np.maximum(multiple, 1e-12), 0.2, 5.0))
        table[:, :, :, i] = factor.reshape(
            len(axes["G"]), len(axes["LW"]), len(axes["LTAU"]), len(axes["MU"]), len(axes["PHI"])
        )
        logger.info("correction mu0=%.1f done (%.0f s)", mu0, time.perf_counter() - started)
    arrays = {"C": table.astype(np.float32), **{k: v.astype(np.float64) for k, v in axes.items()}}
    save_arrays(path, arrays)
    return path


def save_arrays(path: Path, arrays: dict[str, Any]) -> None:
    """Write a shipped table atomically: a failed or interrupted rebuild leaves the old one intact."""
    with atomic_output(path) as tmp, tmp.open("wb") as handle:
        np.savez_compressed(handle, **arrays)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    what = argv[0] if argv else "all"
    if what in ("cloud-optics", "all"):
        print(build_cloud_optics())
    if what == "cloud-optics-extend":
        print(build_cloud_optics(extend=True))
    if what in ("surfaces", "all"):
        from models.training.simulate.surface_library import build_surface_library

        print(build_surface_library())
    if what == "water-band":  # not in "all": LOWTRAN7 needs a Fortran compiler (gfortran)
        from models.training.simulate.water_band import build_water_band

        print(build_water_band())
    if what in ("correction", "all"):
        if not disort.available():
            raise SystemExit("the correction table needs nanodisort: pip install -e '.[disort]'")
        print(build_ms_correction())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
