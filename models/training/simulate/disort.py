"""DISORT reference radiances through ``nanodisort`` (optional, GPL-3.0: never a runtime need).

Used offline to build the multiple-scattering correction table and by the validation test. The
intensity correction is Nakajima & Tanaka's TMS/IMS (``old_intensity_correction``), as in the
tables the simulator notes were measured with.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models.training.simulate.rt import RAYLEIGH_CHI2


def available() -> bool:
    try:
        import nanodisort  # noqa: F401
    except ImportError:
        return False
    return True


def layer_moments(
    tau_c: np.ndarray, ssa_c: np.ndarray, g_c: np.ndarray, tau_r: np.ndarray, tau_a: np.ndarray, nmom: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Total optical depth, single-scattering albedo and Legendre moments of cloud + Rayleigh + gas."""
    scatter_c = tau_c * ssa_c
    scatter = scatter_c + tau_r
    tau = tau_c + tau_r + tau_a
    ssa = np.where(tau > 0, scatter / np.maximum(tau, 1e-30), 0.0)
    fraction = np.where(scatter > 0, scatter_c / np.maximum(scatter, 1e-30), 0.0)
    orders = np.arange(nmom + 1)
    rayleigh = np.zeros(nmom + 1)
    rayleigh[0] = 1.0
    rayleigh[2] = RAYLEIGH_CHI2
    moments = fraction[:, None] * np.asarray(g_c)[:, None] ** orders[None, :] + (1 - fraction)[:, None] * rayleigh
    return np.maximum(tau, 1e-10), np.minimum(ssa, 1 - 1e-10), moments


def toa_brf(
    mu0: float,
    layers: Sequence[dict[str, np.ndarray]],
    albedo: np.ndarray,
    umu: Sequence[float] | np.ndarray,
    phi_deg: Sequence[float] | np.ndarray,
    nstr: int = 32,
    nmom: int = 256,
    threads: int = 0,
) -> np.ndarray:
    """BRF (ncol, numu, nphi) of columns sharing one solar zenith; layers listed top to bottom.

    Each layer is a dict of (ncol,) arrays tau_c, ssa_c, g_c, tau_r, tau_a; ``phi_deg`` in the
    DISORT convention (0 = forward-scattering half-plane).
    """
    import nanodisort

    ncol = len(albedo)
    solver = nanodisort.BatchSolver(nthreads=threads)
    solver.nstr = nstr
    solver.nlyr = len(layers)
    solver.nmom = nmom
    solver.ntau = 1
    solver.numu = len(umu)
    solver.nphi = len(phi_deg)
    solver.usrtau = True
    solver.usrang = True
    solver.lamber = True
    solver.onlyfl = False
    solver.quiet = True
    solver.intensity_correction = True
    solver.old_intensity_correction = True
    solver.umu0 = float(mu0)
    solver.phi0 = 0.0
    solver.set_utau(np.array([0.0]))
    solver.set_umu(np.asarray(umu, dtype=np.float64))
    solver.set_phi(np.asarray(phi_deg, dtype=np.float64))
    solver.allocate(ncol)
    dtauc = np.zeros((ncol, len(layers)))
    ssalb = np.zeros((ncol, len(layers)))
    pmom = np.zeros((nmom + 1, len(layers), ncol), order="F")
    for k, layer in enumerate(layers):
        tau, ssa, moments = layer_moments(
            layer["tau_c"], layer["ssa_c"], layer["g_c"], layer["tau_r"], layer["tau_a"], nmom
        )
        dtauc[:, k], ssalb[:, k], pmom[:, k, :] = tau, ssa, moments.T
    solver.set_dtauc(np.ascontiguousarray(dtauc))
    solver.set_ssalb(np.ascontiguousarray(ssalb))
    solver.set_pmom(pmom)
    solver.set_fbeam(np.ones(ncol))
    solver.set_albedo(np.ascontiguousarray(albedo, dtype=np.float64))
    solver.solve()
    intensity = np.asarray(solver.uu)[:, :, 0, :]  # (ncol, numu, nphi)
    return np.pi * intensity / mu0
