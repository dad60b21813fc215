r"""The many-well target of FAB: 16 independent copies of a 2D double well (docs/benchmarks.md)."""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import torch
from torch import Tensor

from ..checks import float_dtype, int_at_least
from .base import Target, gaussian_base

__all__ = ["ManyWell", "double_well_log_Z"]

LOG_2PI = math.log(2 * math.pi)


def _well(a: Tensor) -> Tensor:
    """f(a) = -a^4 + 6 a^2 + a / 2, the double-well coordinate's log density."""
    a2 = a.square()
    return -a2.square() + 6 * a2 + 0.5 * a


@functools.lru_cache(maxsize=1)
def double_well_log_Z() -> float:
    r"""log int exp(-a^4 + 6 a^2 + a / 2) da = log 11784.509265... = 9.374541...

    By the trapezoid rule in float64 on [-6, 6] with step 1e-4 (the integrand is smooth and
    below e^{-1000} at the ends, so the rule is accurate to machine precision).
    """
    a = torch.linspace(-6.0, 6.0, 120_001, dtype=torch.float64)
    f = _well(a)
    return float(torch.logsumexp(f, 0) + math.log(a[1] - a[0]))


class _Proposal(NamedTuple):
    """A Gaussian-mixture envelope q for rejection sampling: exp(f(a)) <= M q(a)."""

    means: Tensor  # (3,)
    stds: Tensor  # (3,)
    log_weights: Tensor  # (3,)
    log_M: float

    def log_q(self, a: Tensor) -> Tensor:
        u = (a[:, None] - self.means) / self.stds
        log_n = -0.5 * u.square() - self.stds.log() - 0.5 * LOG_2PI
        return torch.logsumexp(log_n + self.log_weights, dim=1)


@functools.lru_cache(maxsize=1)
def _proposal() -> _Proposal:
    # the wells: roots of f'(a) = -4 a^3 + 12 a + 1/2 near a = +-sqrt(3), where f'' = 12 - 12 a^2
    roots = torch.tensor([-math.sqrt(3), math.sqrt(3)], dtype=torch.float64)
    for _ in range(50):
        roots = roots - (-4 * roots**3 + 12 * roots + 0.5) / (-12 * roots**2 + 12)
    well_stds = 1.2 / (12 * roots.square() - 12).sqrt()
    # one Gaussian per well weighted by its Laplace mass, plus a broad one for the barrier
    well_log_w = torch.log_softmax(_well(roots) + well_stds.log(), 0) + math.log(0.95)
    means = torch.cat([roots, roots.new_zeros(1)])
    stds = torch.cat([well_stds, well_stds.new_full((1,), 1.5)])
    log_weights = torch.cat([well_log_w, well_log_w.new_full((1,), math.log(0.05))])
    proposal = _Proposal(means, stds, log_weights, 0.0)
    # log M = max_a f(a) - log q(a) on a grid of step h = 1e-4 over [-5, 5] (outside, f - log q
    # is below -400 and falling), plus a margin above the grid error
    # max|(f - log q)''| h^2 / 8 < 4e-7
    a = torch.linspace(-5.0, 5.0, 100_001, dtype=torch.float64)
    log_M = float((_well(a) - proposal.log_q(a)).max()) + 1e-6
    return proposal._replace(log_M=log_M)


def sample_double_well(n: int, generator: torch.Generator | None = None) -> Tensor:
    """n exact draws of a ~ exp(-a^4 + 6 a^2 + a / 2), float64, by rejection sampling from a
    three-Gaussian envelope (one per well and a broad one; acceptance rate 0.81)."""
    q = _proposal()
    rate = math.exp(double_well_log_Z() - q.log_M)
    kept: list[Tensor] = []
    remaining = n
    while remaining > 0:
        m = int(remaining / rate * 1.1) + 16
        comp = torch.multinomial(q.log_weights.exp(), m, replacement=True, generator=generator)
        z = torch.randn(m, generator=generator, dtype=torch.float64)
        a = q.means[comp] + q.stds[comp] * z
        log_u = torch.rand(m, generator=generator, dtype=torch.float64).log()
        a = a[log_u < _well(a) - q.log_q(a) - q.log_M]
        kept.append(a[:remaining])
        remaining -= kept[-1].shape[0]
    return torch.cat(kept)


class ManyWell(Target):
    r"""The many-well density of FAB (Midgley et al., arXiv:2208.01893), d = 2 * n_wells.

    log rho(x) = sum_{i < n_wells} f(x_{2i}) - x_{2i+1}^2 / 2,  f(a) = -a^4 + 6 a^2 + a / 2,

    so each pair (a, b) = (x_{2i}, x_{2i+1}) has two wells in a (near a = -1.70 and 1.76,
    the right one about e^{1.7} times heavier) and b ~ N(0, 1); 2^16 modes for 16 wells.

    log Z = n_wells * (log int e^{f(a)} da + log(2 pi) / 2) = 164.69568 for 16 wells, with
    int e^{f} = 11784.509265 by float64 quadrature (trapezoid here, checked against
    scipy.integrate.quad in the tests; FAB state 164.6957).

    Exact samples: a by rejection sampling from a Gaussian-mixture envelope, b Gaussian. The
    gradient is the closed form (f'(a), -b) with f'(a) = -4 a^3 + 12 a + 1/2. The
    recommended base is N(0, 2^2 I), which puts both wells within one standard deviation.

    Arguments:
        n_wells: the number of independent 2D double wells.
        dtype: float32 or float64, the dtype of the samples and of the base.
    """

    block_size = 2  # independent (a, b) pairs

    def __init__(self, n_wells: int = 16, dtype: torch.dtype = torch.float32):
        self.n_wells = int_at_least("n_wells", n_wells, 1)
        self.dtype = float_dtype(dtype)
        log_Z = n_wells * (double_well_log_Z() + 0.5 * LOG_2PI)
        refs = {
            "log_Z": log_Z,
            "log_Z_source": "1D quadrature of the double well (float64), times n_wells",
            "reference": "arXiv:2208.01893",
        }
        super().__init__(
            self._log_prob,
            dim=2 * n_wells,
            log_Z=log_Z,
            sample=self._sample,
            grad_log_prob=self._grad_log_prob,
            base=gaussian_base(2 * n_wells, 2.0, self.dtype),
            base_scale=2.0,
            name="many_well",
            references=refs,
        )

    def _log_prob(self, x: Tensor) -> Tensor:
        a, b = x[:, 0::2], x[:, 1::2]
        return (_well(a) - 0.5 * b.square()).sum(1)

    def _grad_log_prob(self, x: Tensor) -> Tensor:
        a, b = x[:, 0::2], x[:, 1::2]
        return torch.stack([-4 * a**3 + 12 * a + 0.5, -b], dim=2).flatten(1)

    def _sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        n = int_at_least("n", n, 1)
        a = sample_double_well(n * self.n_wells, generator).view(n, self.n_wells)
        b = torch.randn(n, self.n_wells, generator=generator, dtype=torch.float64)
        return torch.stack([a, b], dim=2).flatten(1).to(self.dtype)
