r"""The 2-D stochastic Navier-Stokes equation in vorticity form on the periodic square, the
forecasting test case of arXiv 2403.13724 (sec. 5.2), by a pseudo-spectral solver in torch:

    d omega + u . grad(omega) dt = (nu Lap(omega) - alpha omega) dt + eps d eta,

u = (d psi / dy, -d psi / dx) with -Lap(psi) = omega, on [0, 2 pi]^2 with an s x s grid (x
along the last axis). The noise eta is white in time and forces the large scales only: the
Fourier modes k with 1 <= |k| <= ``forced`` (our choice; the paper forces a few of the largest
modes), each with E|d eta_k|^2 = dt.

Steps: the integrating-factor Runge-Kutta method of order 4 (Lawson 1967) in Fourier space,
omega(x) = sum_k c_k e^{i k . x}, with E = e^{-lambda dt}, E2 = e^{-lambda dt / 2}:

    k1 = N(c),  k2 = N(E2 (c + dt k1 / 2)),  k3 = N(E2 c + dt k2 / 2),  k4 = N(E c + dt E2 k3),
    c' = E c + dt (E k1 + 2 E2 (k2 + k3) + k4) / 6 + eps sqrt((1 - E^2) / (2 lambda)) zeta,

lambda_k = nu |k|^2 + alpha, N = -(u . grad omega) computed on the grid and de-aliased by the
2/3 rule, zeta the transform of white noise (E|zeta_k|^2 = 1) kept on the forced modes.
Advection's eigenvalues are imaginary, which second-order steps (ETDRK2) amplify; RK4's
stability region holds them up to |z| = 2.8. The linear part and its noise are exact at any
dt (a single Fourier mode, on which N vanishes, decays as e^{-lambda t}; without N the
stationary variance of every forced mode is eps^2 / (2 lambda_k)).

The state is the vorticity flattened to s^2 entries (:meth:`StochasticNavierStokes.field`
reshapes it); it runs in float64 on the device of the states given (a GPU when lent).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..checks import positive_int
from .dynamics import SYSTEMS, StochasticDynamics, check_timing

__all__ = ["StochasticNavierStokes"]


def _wavenumbers(size: int, device: torch.device | None = None) -> tuple[Tensor, Tensor]:
    """(k_y, k_x) on the rfft2 grid (size, size // 2 + 1), integer wavenumbers."""
    ky = torch.fft.fftfreq(size, 1.0 / size, dtype=torch.float64, device=device)
    kx = torch.fft.rfftfreq(size, 1.0 / size, dtype=torch.float64, device=device)
    return ky[:, None].expand(size, len(kx)), kx[None, :].expand(size, len(kx))


class StochasticNavierStokes(StochasticDynamics):
    """The stochastic vorticity equation of the module docstring.

    Arguments:
        size: grid points a side (s; 32 or 64 for the paper's test at our scale).
        noise: eps, the forcing's amplitude.
        lag: the time between a state and the next one to forecast.
        dt: the solver's step (RK4: |u| k_max dt below about 2.8 for the advection). At the
            defaults (s = 32, nu = 1e-3, eps = 1: |omega| up to about 35 on the attractor)
            dt = 0.01 is stable over 40 time units and dt = 0.02 is not (it blew up by
            t = 15 with nu = 5e-3 in our runs).
        viscosity: nu.
        damping: alpha, the linear drag.
        forced: the largest |k| of the forced modes.
    """

    burn_in = 30.0

    def __init__(
        self,
        size: int = 32,
        noise: float = 1.0,
        lag: float = 1.0,
        dt: float = 0.01,
        *,
        viscosity: float = 1e-3,
        damping: float = 0.1,
        forced: float = 2.0,
    ):
        self.noise, self.lag, self.dt = check_timing(noise, lag, dt)
        if positive_int("size", size) < 4:
            raise ValueError(f"size must be at least 4 grid points, got {size}")
        for name, value in (("viscosity", viscosity), ("damping", damping)):
            if not value >= 0 or not math.isfinite(value):
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        if not viscosity + damping > 0:
            raise ValueError("viscosity and damping cannot both be 0 (no dissipation)")
        if not forced >= 1:
            raise ValueError(f"forced must be at least 1 (|k| of the forced modes), got {forced!r}")
        self.size, self.dim = size, size * size
        self.viscosity, self.damping, self.forced = float(viscosity), float(damping), float(forced)

    def field(self, x: Tensor) -> Tensor:
        """States (n, s^2) as vorticity fields (n, s, s)."""
        return x.reshape(len(x), self.size, self.size)

    def rates(self, device: torch.device | None = None) -> Tensor:
        """lambda_k = nu |k|^2 + alpha on the rfft2 grid."""
        ky, kx = _wavenumbers(self.size, device)
        return self.viscosity * (kx * kx + ky * ky) + self.damping

    def forced_modes(self, device: torch.device | None = None) -> Tensor:
        """The boolean mask of the forced modes on the rfft2 grid: 1 <= |k| <= ``forced``."""
        ky, kx = _wavenumbers(self.size, device)
        k2 = kx * kx + ky * ky
        return (k2 >= 1) & (k2 <= self.forced**2 + 1e-9)

    def advection(self, c: Tensor) -> Tensor:
        """N(c) = -(u . grad omega) of coefficients c (n, s, s // 2 + 1) (forward-normalised:
        omega = sum_k c_k e^{i k . x}), de-aliased by the 2/3 rule."""
        s = self.size
        ky, kx = _wavenumbers(s, c.device)
        k2 = kx * kx + ky * ky
        psi = c / torch.where(k2 > 0, k2, torch.ones_like(k2))
        psi = torch.where(k2 > 0, psi, torch.zeros_like(psi))

        def grid(coef: Tensor) -> Tensor:
            return torch.fft.irfft2(coef, s=(s, s), norm="forward")

        u, v = grid(1j * ky * psi), grid(-1j * kx * psi)
        w_x, w_y = grid(1j * kx * c), grid(1j * ky * c)
        out = torch.fft.rfft2(-(u * w_x + v * w_y), norm="forward")
        keep = (kx.abs() < s / 3) & (ky.abs() < s / 3)
        return torch.where(keep, out, torch.zeros_like(out))

    def drift(self, x: Tensor) -> Tensor:
        """nu Lap(omega) - alpha omega - u . grad(omega) on the grid, (n, s^2)."""
        c = torch.fft.rfft2(self.field(x.double()), norm="forward")
        total = -self.rates(c.device) * c + self.advection(c)
        return torch.fft.irfft2(total, s=(self.size, self.size), norm="forward").flatten(1)

    def initial(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Small random fields on the forced modes: 0.1 x their stationary standard deviation
        without advection."""
        zeta = self._noise(n, generator, torch.device("cpu"))
        c = 0.1 * self.noise * zeta / torch.sqrt(2 * self.rates())
        return torch.fft.irfft2(c, s=(self.size, self.size), norm="forward").flatten(1)

    def _noise(self, n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
        """zeta: the orthonormal transform of white noise on the grid, kept on the forced modes
        (E|zeta_k|^2 = 1 there, Hermitian as a real field's)."""
        white = torch.randn(n, self.size, self.size, generator=generator, dtype=torch.float64)
        zeta = torch.fft.rfft2(white.to(device), norm="ortho")
        return torch.where(self.forced_modes(device), zeta, torch.zeros_like(zeta))

    def advance(
        self, x: Tensor, time: float | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        w, time, steps = self.stepping(x, time)
        dt = time / steps
        lam = self.rates(w.device) * dt
        e, e2 = torch.exp(-lam), torch.exp(-lam / 2)
        small = lam < 1e-9
        safe = torch.where(small, torch.ones_like(lam), lam)
        var = torch.where(small, 2 * lam, -torch.expm1(-2 * safe)) / (2 * safe / dt)
        std = self.noise * torch.sqrt(var)
        c = torch.fft.rfft2(self.field(w), norm="forward")
        for _ in range(steps):
            k1 = self.advection(c)
            k2 = self.advection(e2 * (c + dt / 2 * k1))
            k3 = self.advection(e2 * c + dt / 2 * k2)
            k4 = self.advection(e * c + dt * e2 * k3)
            c = e * c + dt / 6 * (e * k1 + 2 * e2 * (k2 + k3) + k4)
            c = c + std * self._noise(len(w), generator, w.device)
        return torch.fft.irfft2(c, s=(self.size, self.size), norm="forward").flatten(1)

    def __repr__(self) -> str:
        return (
            f"StochasticNavierStokes(size={self.size}, noise={self.noise}, lag={self.lag}, "
            f"dt={self.dt}, viscosity={self.viscosity}, damping={self.damping})"
        )


SYSTEMS["navier_stokes"] = StochasticNavierStokes
