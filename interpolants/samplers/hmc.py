r"""Hamiltonian Monte Carlo with a Gaussian kinetic energy, and the plumbing all kernels share.

H(x, p) = -log pi(x) + p^T M^{-1} p / 2 with momentum p ~ N(0, M). One move draws p,
integrates Hamilton's equations with ``num_steps`` leapfrog steps of size eps,

    p <- p + (eps / 2) grad log pi(x),   x <- x + eps M^{-1} p,   p <- p + (eps / 2) grad log pi(x),

and accepts the end point with probability min{1, exp(H(x, p) - H(x', p'))}.

Kernels follow BlackJAX: ``kernel = hmc(log_density, step_size, ...)`` binds the parameters,
``state = kernel.init(position)`` evaluates the walkers and ``state, info =
kernel.step(generator, state)`` moves every walker of the batch (n, dim) at once. A
``log_density`` is any callable x -> :class:`Evaluation` (log density, gradient and optional
per-walker extras carried along with the state, used by the annealed samplers).

References:
    R. M. Neal, MCMC using Hamiltonian dynamics, Handbook of Markov Chain Monte Carlo (2011),
    arXiv:1206.1901.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import (
    Evaluation,
    GaussianMetric,
    Info,
    Kernel,
    LogDensity,
    State,
    as_metric,
    check_step_size,
    initializer,
    metropolis,
)

__all__ = ["hmc", "leapfrog"]


def leapfrog(
    log_density: LogDensity,
    metric: GaussianMetric,
    step_size: float,
    num_steps: int,
    state: State,
    momentum: Tensor,
) -> tuple[State, Tensor]:
    """``num_steps`` leapfrog steps of size eps from (state, momentum), merged half kicks."""
    x, p = state.position, momentum + 0.5 * step_size * state.grad
    ev = Evaluation(state.log_prob, state.grad, state.aux)
    for i in range(num_steps):
        x = x + step_size * metric.velocity(p)
        ev = log_density(x)
        p = p + (0.5 if i == num_steps - 1 else 1.0) * step_size * ev.grad
    return State(x, ev.log_prob, ev.grad, tuple(ev.aux)), p


def hmc(
    log_density: LogDensity,
    step_size: float,
    inverse_mass_matrix: Tensor | GaussianMetric | None = None,
    num_steps: int = 10,
    trajectory_length: float | None = None,
    max_num_steps: int = 1024,
    jitter: float = 0.0,
) -> Kernel:
    r"""The HMC kernel: momentum refresh, leapfrog trajectory, Metropolis correction.

    Arguments:
        log_density: x (n, dim) -> :class:`Evaluation` of log pi and its gradient.
        step_size: the leapfrog step eps.
        inverse_mass_matrix: Sigma = M^{-1}, (dim,) diagonal or (dim, dim) dense; None for I.
        num_steps: leapfrog steps per move (ignored when ``trajectory_length`` is given).
        trajectory_length: T; then num_steps = ceil(T / eps), at most ``max_num_steps``.
        jitter: j in [0, 1]; each move draws its number of steps uniformly from
            [(1 - j) L, (1 + j) L] (at least 1), the same for all walkers, to break the
            periodic trajectories of a fixed length (Neal 2011, section 5.4.1). A mixture of
            reversible kernels that each leave pi invariant, so still exact.

    Returns:
        A :class:`Kernel`; ``Info.energy_error`` is H(x', p') - H(x, p).

    References:
        R. M. Neal, MCMC using Hamiltonian dynamics (2011), arXiv:1206.1901.

    Example:
        >>> density = CountedDensity(target)
        >>> kernel = hmc(density, step_size=0.3, num_steps=10)
        >>> state, info = kernel.step(torch.Generator().manual_seed(0), kernel.init(x0))
    """
    step_size = check_step_size(step_size)
    if trajectory_length is not None:
        if not trajectory_length > 0:
            raise ValueError(f"trajectory_length must be positive, got {trajectory_length!r}")
        num_steps = min(max(1, math.ceil(trajectory_length / step_size)), max_num_steps)
    if not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")
    if not 0.0 <= jitter <= 1.0:
        raise ValueError(f"jitter must be in [0, 1], got {jitter!r}")
    fixed = as_metric(inverse_mass_matrix)
    low = max(1, math.ceil((1 - jitter) * num_steps))
    high = max(low, math.floor((1 + jitter) * num_steps))

    def step(generator: torch.Generator, state: State) -> tuple[State, Info]:
        metric = GaussianMetric.identity(state.position) if fixed is None else fixed
        steps = num_steps
        if jitter > 0:
            steps = int(torch.randint(low, high + 1, (1,), generator=generator))
        p = metric.sample_momentum(generator, state.position)
        h0 = -state.log_prob + metric.kinetic_energy(p)
        proposal, p1 = leapfrog(log_density, metric, step_size, steps, state, p)
        h1 = -proposal.log_prob + metric.kinetic_energy(p1)
        return metropolis(generator, h0 - h1, proposal, state, steps)

    return Kernel(initializer(log_density), step)
