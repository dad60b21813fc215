r"""Soft attractive particles in the periodic unit box: the ``particles`` target (BENCHMARKS.md)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import Target
from .gmm import _float_dtype, _int_at_least, _positive

__all__ = ["Particles", "UniformTorus"]


class UniformTorus:
    r"""The uniform density on the torus [0, 1)^d: log q(x) = 0 (x is read modulo 1).

    Arguments:
        dim: d.
        dtype: float32 or float64, the dtype of the samples.
    """

    def __init__(self, dim: int, dtype: torch.dtype = torch.float32):
        self.event_shape = torch.Size((_int_at_least("dim", dim, 1),))
        self.dtype = _float_dtype(dtype)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        shape = (_int_at_least("n", n, 1), *self.event_shape)
        return torch.rand(shape, generator=generator, dtype=self.dtype)

    def log_prob(self, x: Tensor) -> Tensor:
        if x.ndim != 2 or x.shape[1:] != self.event_shape:
            raise ValueError(f"x must have shape (n, {self.event_shape[0]}), got {tuple(x.shape)}")
        return x.new_zeros(x.shape[0])


class Particles(Target):
    r"""N particles with a soft periodic attraction in the unit box [0, 1)^2, d = 2N.

    W(r) = -exp(a cos(2 pi r_x) + a cos(2 pi r_y) - 2a),
    U(x) = (1 / 2N) sum_{i, j} W(x_i - x_j),   log rho(x) = -U(x) / kT,

    with x = (x_1, y_1, x_2, y_2, ...) and a = 4. The double sum includes the N terms i = j,
    each W(0) = -1, so U = (1/N) sum_{i<j} W(x_i - x_j) - 1/2: the constant only shifts
    log Z by 1 / (2 kT). The 1/N (mean-field) scaling makes U extensive; the system has a
    first-order transition from a gas (particles spread over the box, U/N near 0) at high kT
    to a liquid drop (all particles in one well of width about sqrt(kT / (4 pi^2 a)),
    U/N near -1/2) at low kT.

    Periodicity: W has period 1 in each coordinate, so ``log_prob`` is periodic and needs no
    wrapping; the target lives on the torus and Z = int_{[0,1)^{2N}} exp(-U/kT) dx. Samplers
    may let positions leave [0, 1) and map them back with :meth:`wrap` (which leaves log_prob
    unchanged); transport methods should start from the recommended base, the uniform
    density on the torus (:class:`UniformTorus`, exact at kT = infinity). The density is also
    invariant under a common translation of all particles and under their permutations.

    Observables: :meth:`energy_per_particle` U/N and :meth:`order_parameter`, the mean over
    the two smallest wave vectors k in {(1, 0), (0, 1)} of |rho_k|^2, rho_k = (1/N) sum_j
    exp(2 pi i k . x_j): about 1/N in the gas, near 1 in a compact drop (the structure factor
    is S(k) = N |rho_k|^2). log Z and the transition temperature are unknown; reference
    observables are still to be measured by long MCMC runs.

    Arguments:
        N: the number of particles (default 16).
        a: the stiffness of the attraction (default 4).
        kT: the temperature (default 0.09, near the transition for N = 16: in a rough scan with
            short single-particle Metropolis runs, 32 chains x 800 sweeps, both the gas and
            the drop persisted from either start at kT = 0.09, while the drop took over at
            kT <= 0.08 and the gas at kT >= 0.1; not a reference measurement).
        dtype: float32 or float64, the dtype of the base.
    """

    def __init__(
        self, N: int = 16, a: float = 4.0, kT: float = 0.09, dtype: torch.dtype = torch.float32
    ):
        self.N = _int_at_least("N", N, 2)
        self.a, self.kT = _positive("a", a), _positive("kT", kT)
        refs = {
            "log_Z": None,
            "observables": "not yet measured: U/N and the order parameter need long MCMC runs",
        }
        super().__init__(
            self._log_prob,
            dim=2 * N,
            log_Z=None,
            grad_log_prob=self._grad_log_prob,
            base=UniformTorus(2 * N, _float_dtype(dtype)),
            name="particles",
            references=refs,
        )

    @staticmethod
    def wrap(x: Tensor) -> Tensor:
        """Positions mapped into [0, 1): x - floor(x)."""
        return x - x.floor()

    def _pair_terms(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """W(x_i - x_j) (n, N, N) and 2 pi (x_i - x_j) (n, N, N, 2)."""
        pos = x.reshape(x.shape[0], self.N, 2)
        angle = 2 * math.pi * (pos[:, :, None, :] - pos[:, None, :, :])
        W = -torch.exp(self.a * (angle.cos().sum(-1) - 2))
        return W, angle

    def energy(self, x: Tensor) -> Tensor:
        """U(x) per configuration: (n,)."""
        self._check_x(x)
        W, _ = self._pair_terms(x)
        return W.sum((1, 2)) / (2 * self.N)

    def _log_prob(self, x: Tensor) -> Tensor:
        return -self.energy(x) / self.kT

    def _grad_log_prob(self, x: Tensor) -> Tensor:
        # dU/dx_i = (1/N) sum_j grad W(x_i - x_j), grad W(r) = -2 pi a sin(2 pi r) W(r)
        W, angle = self._pair_terms(x)
        grad_W = -2 * math.pi * self.a * angle.sin() * W[..., None]
        return -(grad_W.sum(2) / (self.N * self.kT)).flatten(1)

    def energy_per_particle(self, x: Tensor) -> Tensor:
        """U(x) / N per configuration: (n,)."""
        return self.energy(x) / self.N

    def order_parameter(self, x: Tensor) -> Tensor:
        """(|rho_(1,0)|^2 + |rho_(0,1)|^2) / 2, rho_k = (1/N) sum_j exp(2 pi i k . x_j): (n,)."""
        self._check_x(x)
        angle = 2 * math.pi * x.reshape(x.shape[0], self.N, 2)
        power = angle.cos().mean(1).square() + angle.sin().mean(1).square()
        return power.mean(1)
