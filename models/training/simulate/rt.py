"""Fast top-of-atmosphere reflectance of a plane-parallel atmosphere over a Lambertian surface.

Three homogeneous layers, top to bottom: Rayleigh and gas above the cloud, the cloud with its
share of Rayleigh and gas, Rayleigh and gas below the cloud. Clear samples use a cloud of zero
optical thickness. Per layer:

* delta-M scaling with the second Legendre moment of the cloud (Henyey-Greenstein) + Rayleigh
  mixture (Wiscombe 1977), then the closed-form Eddington solution of Meador & Weaver (1980,
  J. Atmos. Sci. 37, 630) for plane albedo and total transmittance at any incidence;
* adding of layers (two-stream doubling-adding) for every direction needed: mu0, mu and eight
  Gauss nodes for the diffuse quantities;
* exact single scattering with the true phase function (TMS, Nakajima & Tanaka 1988, JQSRT 40,
  51) plus a separable multiple-scattering term, optionally corrected by a table built once from
  DISORT (``tables.MSCorrection``);
* the atmosphere is split into two blocks, U = the layer above the cloud and S = cloud, layer
  below and surface, coupled as in 6S (Tanre et al. 1979): this keeps Rayleigh-cloud coupling in
  the blue accurate. Exact Lambertian-surface coupling inside S.

All inputs broadcast against each other: per-sample geometry (N, 1) against per-band optics
(N, B). ``cos_phi`` uses the DISORT convention (phi = 0 is the forward-scattering half-plane), so
for a satellite relative azimuth RAA (0 = backscatter) ``cos_phi = -cos(RAA)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(8)
GAUSS_MU = 0.5 * (_NODES + 1.0)  # Gauss nodes on (0, 1)
GAUSS_WEIGHT = 0.5 * _WEIGHTS
RAYLEIGH_DEPOLARIZATION = 0.0279  # Bodhaine et al. (1999)
_GAMMA = RAYLEIGH_DEPOLARIZATION / (2 - RAYLEIGH_DEPOLARIZATION)
RAYLEIGH_CHI2 = (1 - _GAMMA) / (10 * (1 + 2 * _GAMMA))  # second Legendre moment, phase normalised to 1


def henyey_greenstein(g: np.ndarray, cos_scatter: np.ndarray) -> np.ndarray:
    return (1 - g * g) / (1 + g * g - 2 * g * cos_scatter) ** 1.5


def rayleigh_phase(cos_scatter: np.ndarray) -> np.ndarray:
    """Rayleigh phase function with depolarisation (Hansen & Travis 1974, eq. 2.15)."""
    return 3.0 / (4 * (1 + 2 * _GAMMA)) * ((1 + 3 * _GAMMA) + (1 - _GAMMA) * cos_scatter**2)


def eddington(
    tau: np.ndarray, w: np.ndarray, g: np.ndarray, mu0: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plane albedo, total and direct transmittance of a delta-scaled layer (Meador & Weaver 1980).

    Written with decaying exponentials only, so it stays finite for optical thicknesses of 300+.
    """
    w = np.minimum(w, 1 - 1e-9)
    g1 = (7 - w * (4 + 3 * g)) / 4
    g2 = -(1 - w * (4 - 3 * g)) / 4
    g3 = (2 - 3 * g * mu0) / 4
    g4 = 1 - g3
    k = np.sqrt(np.maximum(g1 * g1 - g2 * g2, 1e-12))
    km = k * mu0
    km = np.where(np.abs(1 - km) < 1e-4, km * (1 - 2e-4), km)  # step off the k mu0 = 1 singularity
    a1 = g1 * g4 + g2 * g3
    a2 = g1 * g3 + g2 * g4
    ek = np.exp(-k * tau)
    e2k = ek * ek
    direct = np.exp(-tau / mu0)
    den = (1 - km * km) * ((k + g1) + (k - g1) * e2k)
    reflect = (
        w / den * ((1 - km) * (a2 + k * g3) - (1 + km) * (a2 - k * g3) * e2k - 2 * k * (g3 - a2 * mu0) * direct * ek)
    )
    total = direct - w / den * (
        (1 + km) * (a1 + k * g4) * direct - (1 - km) * (a1 - k * g4) * e2k * direct - 2 * k * (g4 + a1 * mu0) * ek
    )
    return np.clip(reflect, 0.0, 1.0), np.clip(total, 0.0, 1.0), direct


@dataclass
class Layer:
    """One homogeneous layer: cloud (HG) + Rayleigh + absorber, with its delta-Eddington scaling."""

    tau_cloud: np.ndarray
    ssa_cloud: np.ndarray
    g_cloud: np.ndarray
    tau_rayleigh: np.ndarray
    tau_absorption: np.ndarray

    def __post_init__(self) -> None:
        scatter_cloud = self.tau_cloud * self.ssa_cloud
        scatter = scatter_cloud + self.tau_rayleigh
        self.tau = self.tau_cloud + self.tau_rayleigh + self.tau_absorption
        self.ssa = np.where(self.tau > 0, scatter / np.maximum(self.tau, 1e-30), 0.0)
        self.cloud_fraction = np.where(scatter > 0, scatter_cloud / np.maximum(scatter, 1e-30), 0.0)
        self.scatter = scatter
        g = self.cloud_fraction * self.g_cloud
        f = self.cloud_fraction * self.g_cloud**2 + (1 - self.cloud_fraction) * RAYLEIGH_CHI2
        self.tau_scaled = (1 - self.ssa * f) * self.tau
        self.ssa_scaled = (1 - f) * self.ssa / (1 - self.ssa * f)
        self.g_scaled = (g - f) / (1 - f)
        self.ssa_tms = self.ssa / (1 - self.ssa * f)

    def phase(self, cos_scatter: np.ndarray) -> np.ndarray:
        return self.cloud_fraction * henyey_greenstein(self.g_cloud, cos_scatter) + (
            1 - self.cloud_fraction
        ) * rayleigh_phase(cos_scatter)

    def single_scatter_truncated(self, mu0: Any, mu: Any, tau_above: Any) -> np.ndarray:
        """Reflectance of single scattering in the scaled Eddington problem (two-term phase)."""
        m = 1 / mu0 + 1 / mu
        return (
            self.ssa_scaled
            * (1 - 3 * self.g_scaled * mu * mu0)
            / (4 * (mu + mu0))
            * np.exp(-tau_above * m)
            * (1 - np.exp(-self.tau_scaled * m))
        )


class Correction(Protocol):
    def __call__(
        self, g: np.ndarray, ssa: np.ndarray, tau: np.ndarray, mu0: np.ndarray, mu: np.ndarray, phi_deg: np.ndarray
    ) -> np.ndarray: ...


@dataclass
class BlockOptics:
    """Black-surface BRF of a stack (single + multiple scattering) and its two-stream quantities."""

    single: np.ndarray
    multiple: np.ndarray
    plane_albedo: list[np.ndarray]  # r(mu) for [mu0, mu, Gauss nodes...]
    total_transmittance: list[np.ndarray]
    direct_transmittance: list[np.ndarray]
    spherical_albedo_top: np.ndarray
    spherical_albedo_bottom: np.ndarray
    diffuse_transmittance: np.ndarray

    @property
    def brf(self) -> np.ndarray:
        return self.single + self.multiple


def _add_layers(layers: Sequence[Layer], mus: Sequence[Any]) -> tuple[list[Any], list[Any], list[Any], Any, Any, Any]:
    """Adding over a black surface: per direction r(mu), T(mu), e(mu); and the diffuse quantities."""
    r: list[Any] = [0.0] * len(mus)
    total: list[Any] = [1.0] * len(mus)
    direct: list[Any] = [1.0] * len(mus)
    rb_top = rb_bot = 0.0
    tb = 1.0
    for index, layer in enumerate(layers):
        solutions = [eddington(layer.tau_scaled, layer.ssa_scaled, layer.g_scaled, m) for m in mus]
        gauss = solutions[2:]
        rb_layer = sum(2 * w * m * s[0] for m, w, s in zip(GAUSS_MU, GAUSS_WEIGHT, gauss, strict=True))
        tb_layer = sum(2 * w * m * s[1] for m, w, s in zip(GAUSS_MU, GAUSS_WEIGHT, gauss, strict=True))
        if index == 0:
            r = [s[0] for s in solutions]
            total = [s[1] for s in solutions]
            direct = [s[2] for s in solutions]
            rb_top, rb_bot, tb = rb_layer, rb_layer, tb_layer
            continue
        den = 1 - rb_bot * rb_layer
        for i, (r_b, t_b, e_b) in enumerate(solutions):
            e_a = direct[i]
            t_a = total[i] - e_a
            r[i] = r[i] + (e_a * r_b + t_a * rb_layer) * tb / den
            total[i] = e_a * t_b + (t_a + e_a * r_b * rb_bot) / den * tb_layer
            direct[i] = e_a * e_b
        rb_top = rb_top + tb * tb * rb_layer / den
        rb_bot = rb_layer + tb_layer * tb_layer * rb_bot / den
        tb = tb * tb_layer / den
    return r, total, direct, rb_top, rb_bot, tb


def block_optics(
    mu0: np.ndarray,
    mu: np.ndarray,
    cos_phi: np.ndarray,
    layers: Sequence[Layer],
    correction: Correction | None = None,
    cloud: tuple[np.ndarray, np.ndarray] | None = None,
) -> BlockOptics:
    """TMS single scattering + separable multiple scattering of a stack over a black surface.

    ``cloud`` = (tau_cloud, g_cloud) of the stack's first layer selects the DISORT correction.
    """
    mus = [mu0, mu, *GAUSS_MU]
    r, total, direct, rb_top, rb_bot, tb = _add_layers(layers, mus)
    sin0 = np.sqrt(np.maximum(1 - mu0**2, 0))
    sinv = np.sqrt(np.maximum(1 - mu**2, 0))
    cos_scatter = -mu0 * mu + sin0 * sinv * cos_phi
    m = 1 / mu0 + 1 / mu
    single: Any = 0.0
    above: Any = 0.0
    for layer in layers:
        single = single + layer.ssa_tms * layer.phase(cos_scatter) / (4 * (mu + mu0)) * np.exp(-above * m) * (
            1 - np.exp(-layer.tau_scaled * m)
        )
        above = above + layer.tau_scaled

    def truncated_plane(m0: Any) -> Any:
        out: Any = 0.0
        for node, weight in zip(GAUSS_MU, GAUSS_WEIGHT, strict=True):
            ss: Any = 0.0
            tau_above: Any = 0.0
            for layer in layers:
                ss = ss + layer.single_scatter_truncated(m0, node, tau_above)
                tau_above = tau_above + layer.tau_scaled
            out = out + 2 * weight * node * ss
        return out

    multiple = [np.maximum(r[i] - truncated_plane(m_i), 0.0) for i, m_i in enumerate(mus)]
    multiple_bar = sum(
        2 * w * node * multiple[2 + j] for j, (node, w) in enumerate(zip(GAUSS_MU, GAUSS_WEIGHT, strict=True))
    )
    # separable term; the denominator is bounded so a vanishing diffuse part (thin layers, where
    # r - r_ss is a small difference) cannot blow up
    bound = np.maximum(np.maximum(multiple_bar, 0.25 * np.maximum(multiple[0], multiple[1])), 1e-12)
    ms = multiple[0] * multiple[1] / bound
    if correction is not None and cloud is not None:
        tau_c, g_c = cloud
        top = layers[0]
        factor = correction(g_c, top.ssa, tau_c, mu0, mu, np.degrees(np.arccos(np.clip(cos_phi, -1, 1))))
        scatter_all = sum(np.asarray(layer.scatter) for layer in layers)
        share = np.minimum(tau_c * top.ssa / np.maximum(scatter_all, 1e-12), 1.0)
        ms = ms * (1 + (factor - 1) * share)
    return BlockOptics(single, ms, r, total, direct, rb_top, rb_bot, tb)


def toa_brf(
    mu0: np.ndarray,
    mu: np.ndarray,
    cos_phi: np.ndarray,
    above: Layer,
    cloud_layer: Layer,
    below: Layer,
    albedo: np.ndarray,
    correction: Correction | None = None,
    direct_excess: np.ndarray | None = None,
) -> np.ndarray:
    """TOA bidirectional reflectance factor of the three-layer atmosphere over a Lambertian surface.

    ``direct_excess`` is what a non-Lambertian surface (sun glint, a BRDF hot spot) reflects beyond
    its albedo into the sensor's direction; it is carried on the direct beams only.
    """
    upper = block_optics(mu0, mu, cos_phi, [above])
    lower = block_optics(
        mu0, mu, cos_phi, [cloud_layer, below], correction, (cloud_layer.tau_cloud, cloud_layer.g_cloud)
    )
    coupling = albedo / (1 - albedo * lower.spherical_albedo_bottom)
    t_low = lower.total_transmittance
    brf_lower = lower.brf + t_low[0] * t_low[1] * coupling
    plane_lower = [lower.plane_albedo[i] + t_low[i] * coupling * lower.diffuse_transmittance for i in (0, 1)]
    spherical_lower = lower.spherical_albedo_top + lower.diffuse_transmittance**2 * coupling
    e0, e1 = upper.direct_transmittance[0], upper.direct_transmittance[1]
    t0 = upper.total_transmittance[0] - e0
    t1 = upper.total_transmittance[1] - e1
    rb_upper = upper.spherical_albedo_bottom
    specular: Any = 0.0
    if direct_excess is not None:
        specular = e0 * e1 * lower.direct_transmittance[0] * lower.direct_transmittance[1] * direct_excess
    return (
        specular
        + upper.brf
        + e0 * e1 * brf_lower
        + t0 * e1 * plane_lower[1]
        + e0 * t1 * plane_lower[0]
        + t0 * t1 * spherical_lower
        + upper.total_transmittance[0]
        * upper.total_transmittance[1]
        * rb_upper
        * spherical_lower**2
        / (1 - rb_upper * spherical_lower)
    )
