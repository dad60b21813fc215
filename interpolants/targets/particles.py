r"""Soft attractive particles in the periodic unit box: ``particles`` (docs/benchmarks.md)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..checks import float_dtype, int_at_least, positive_float
from .base import Target

__all__ = ["Particles", "UniformTorus"]


#: Reference observables of :class:`Particles` for N = 16, a = 4, keyed by kT: (U/N, its
#: standard error, order parameter, its standard error, drop fraction P(order parameter > 0.5),
#: its standard error). Made by ``OMP_NUM_THREADS=1 python benchmarks/references/particles.py``
#: (2026-11-22, about 6 minutes on one core): parallel tempering over these 13 temperatures,
#: 16 independent ladders (8 started with every replica in the gas, 8 in a compact drop),
#: single-particle Metropolis sweeps (step sizes tuned in the 1500 burn-in sweeps, then
#: frozen) and neighbour swaps after every sweep, 8000 production sweeps; standard errors
#: over the 16 ladder means (each ladder made at least 14, on average 30 round trips between
#: the ends; drop fractions are rounded to 3 decimals, so 0.000 means below 0.0005). The
#: gas and drop starts give the same drop fraction at every kT within errors (e.g. kT = 0.09:
#: 0.813 +- 0.020 and 0.776 +- 0.034); the integrated autocorrelation time peaks at about 600
#: sweeps at kT = 0.0925, where the two phases have equal weight (the transition for N = 16).
#: Library HMC (``si.sample(..., "hmc")``, 64 chains x 500 draws) agrees at kT = 0.075 (from a
#: drop: U/N -0.40749 +- 0.00136, order parameter 0.96505 +- 0.00385) and at kT = 0.105 (from
#: the gas: -0.06320 +- 0.00084 and 0.1106 +- 0.0031, which leaves out the 1 % drop weight).
#: States: the gas (order parameter about 0.11, U/N about -0.065, near 1/N and the uniform
#: value) above kT = 0.1, the drop (order parameter 0.93 to 0.97, U/N -0.38 to -0.41) below
#: kT = 0.085, and coexistence in between: at the default kT = 0.09 the drop has weight 0.80.
_PARTICLES_REFERENCES: dict[tuple[int, float], dict[float, tuple[float, ...]]] = {
    (16, 4.0): {
        0.075: (-0.40745, 0.00020, 0.96515, 0.00033, 1.000, 0.000),
        0.0775: (-0.40173, 0.00023, 0.96016, 0.00046, 1.000, 0.000),
        0.08: (-0.39524, 0.00031, 0.95359, 0.00062, 1.000, 0.000),
        0.0825: (-0.38737, 0.00043, 0.94406, 0.00088, 0.998, 0.000),
        0.085: (-0.37596, 0.00074, 0.92621, 0.00168, 0.988, 0.001),
        0.0875: (-0.35272, 0.00243, 0.87794, 0.00621, 0.944, 0.008),
        0.09: (-0.29844, 0.00592, 0.74683, 0.01555, 0.795, 0.020),
        0.0925: (-0.20582, 0.00897, 0.50704, 0.02410, 0.501, 0.031),
        0.095: (-0.13160, 0.00617, 0.30693, 0.01701, 0.249, 0.022),
        0.0975: (-0.09138, 0.00289, 0.19498, 0.00811, 0.106, 0.011),
        0.1: (-0.07431, 0.00111, 0.14592, 0.00327, 0.045, 0.004),
        0.1025: (-0.06771, 0.00052, 0.12554, 0.00150, 0.021, 0.002),
        0.105: (-0.06459, 0.00023, 0.11515, 0.00074, 0.011, 0.001),
    },
}


class UniformTorus:
    r"""The uniform density on the torus [0, 1)^d: log q(x) = 0 (x is read modulo 1).

    Arguments:
        dim: d.
        dtype: float32 or float64, the dtype of the samples.
    """

    def __init__(self, dim: int, dtype: torch.dtype = torch.float32):
        self.event_shape = torch.Size((int_at_least("dim", dim, 1),))
        self.dtype = float_dtype(dtype)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        shape = (int_at_least("n", n, 1), *self.event_shape)
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
    is S(k) = N |rho_k|^2). log Z is unknown. Reference observables (``self.references``:
    U/N, the order parameter and the drop fraction, with standard errors) for N = 16, a = 4
    and kT = 0.075, 0.0775, ..., 0.105 come from parallel tempering
    (:data:`_PARTICLES_REFERENCES`); the two phases have equal weight near kT = 0.0925.

    Arguments:
        N: the number of particles (default 16).
        a: the stiffness of the attraction (default 4).
        kT: the temperature (default 0.09, near the transition for N = 16: in a rough scan with
            short single-particle Metropolis runs, 32 chains x 800 sweeps, both the gas and
            the drop persisted from either start at kT = 0.09, while the drop took over at
            kT <= 0.08 and the gas at kT >= 0.1; the reference run gives the drop a weight of
            0.80 at kT = 0.09).
        dtype: float32 or float64, the dtype of the base.
    """

    def __init__(
        self, N: int = 16, a: float = 4.0, kT: float = 0.09, dtype: torch.dtype = torch.float32
    ):
        self.N = int_at_least("N", N, 2)
        self.a, self.kT = positive_float("a", a), positive_float("kT", kT)
        refs = {"log_Z": None}
        measured = _PARTICLES_REFERENCES.get((self.N, self.a), {}).get(round(self.kT, 6))
        if measured is None:
            refs["observables"] = "not measured for these parameters (see _PARTICLES_REFERENCES)"
        else:
            for k, name in enumerate(("energy_per_particle", "order_parameter", "drop_fraction")):
                refs[name], refs[f"{name}_stderr"] = measured[2 * k], measured[2 * k + 1]
            refs["observables_source"] = (
                "parallel tempering, 16 ladders x 8000 sweeps; "
                "benchmarks/references/particles.py, 2026-11-22"
            )
        super().__init__(
            self._log_prob,
            dim=2 * N,
            log_Z=None,
            grad_log_prob=self._grad_log_prob,
            base=UniformTorus(2 * N, float_dtype(dtype)),
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
