"""Background and event aerosol: spectral optical depth, single-scattering albedo and asymmetry.

Four types, each a power law in optical depth (Angstrom exponent) with ``ssa`` and ``g`` linear in
wavelength and clamped, values rounded from AERONET climatologies (Dubovik et al. 2002, J. Atmos.
Sci. 59, 590, table 1: GSFC urban-industrial, Lanai oceanic, Amazonian and boreal biomass burning,
Bahrain/Solar Village desert dust) and OPAC (Hess et al. 1998, BAMS 79, 831):

============  ========  ===========================  =====================
type          Angstrom  ssa                          g
============  ========  ===========================  =====================
continental   1.3       0.94 at 0.55 um, -0.05/um    0.68 at 0.55, -0.10/um
maritime      0.5       0.98                         0.75
smoke         1.9       0.91 at 0.55 um, -0.08/um    0.64 at 0.55, -0.12/um
dust          0.3       0.92 at 0.44 um, +0.12/um    0.72
                        up to 0.97
============  ========  ===========================  =====================

The asymmetry parameter stands in for the full phase function (Henyey-Greenstein), as it does for
cloud droplets in the fast model. Optical depths at SWIR wavelengths follow the same power law.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

REFERENCE_UM = 0.55


@dataclass(frozen=True)
class AerosolType:
    name: str
    angstrom: float
    ssa_ref: float
    ssa_slope: float  # per um from ssa_ref_um
    ssa_ref_um: float
    g_ref: float
    g_slope: float  # per um from 0.55 um
    ssa_max: float = 0.99


AEROSOL_TYPES: tuple[AerosolType, ...] = (
    AerosolType("continental", 1.3, 0.94, -0.05, 0.55, 0.68, -0.10),
    AerosolType("maritime", 0.5, 0.98, 0.0, 0.55, 0.75, 0.0),
    AerosolType("smoke", 1.9, 0.91, -0.08, 0.55, 0.64, -0.12),
    AerosolType("dust", 0.3, 0.92, 0.12, 0.44, 0.72, 0.0, ssa_max=0.97),
)
TYPE_INDEX = {t.name: i for i, t in enumerate(AEROSOL_TYPES)}


def aerosol_optics(
    aod_550: np.ndarray, aerosol_type: np.ndarray, wavelengths_um: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tau, ssa, g), each (N, B), of each sample's aerosol at the band wavelengths."""
    wl = np.asarray(wavelengths_um, dtype=np.float64)[None, :]
    kind = np.asarray(aerosol_type, dtype=np.int64)
    table = np.array(
        [[t.angstrom, t.ssa_ref, t.ssa_slope, t.ssa_ref_um, t.g_ref, t.g_slope, t.ssa_max] for t in AEROSOL_TYPES]
    )[kind]
    angstrom, ssa_ref, ssa_slope, ssa_ref_um, g_ref, g_slope, ssa_max = (table[:, i : i + 1] for i in range(7))
    tau = np.asarray(aod_550, dtype=np.float64)[:, None] * (wl / REFERENCE_UM) ** -angstrom
    ssa = np.clip(ssa_ref + ssa_slope * (wl - ssa_ref_um), 0.75, ssa_max)
    g = np.clip(g_ref + g_slope * (wl - REFERENCE_UM), 0.45, 0.80)
    return tau, ssa, g


def mix_particles(
    tau_a: np.ndarray, ssa_a: np.ndarray, g_a: np.ndarray, tau_b: np.ndarray, ssa_b: np.ndarray, g_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One particle population equivalent to two in the same layer (extinction and scattering add)."""
    tau = tau_a + tau_b
    scatter_a, scatter_b = tau_a * ssa_a, tau_b * ssa_b
    scatter = scatter_a + scatter_b
    ssa = np.where(tau > 0, scatter / np.maximum(tau, 1e-30), 1.0)
    g = np.where(scatter > 0, (scatter_a * g_a + scatter_b * g_b) / np.maximum(scatter, 1e-30), 0.85)
    return tau, ssa, g
