r"""The Metropolis-adjusted Langevin algorithm (MALA) with a preconditioner.

One move proposes from the Euler step of the Langevin diffusion preconditioned by
Sigma = M^{-1},

    x' = x + (eps^2 / 2) Sigma grad log pi(x) + eps Sigma^{1/2} xi,     xi ~ N(0, I),

and accepts it with probability min{1, pi(x') q(x | x') / (pi(x) q(x' | x))}, where
q(x' | x) = N(x'; x + (eps^2 / 2) Sigma grad log pi(x), eps^2 Sigma). With this scaling MALA
is exactly HMC with one leapfrog step, so step sizes and mass matrices carry over between
the two kernels.

References:
    G. O. Roberts and R. L. Tweedie, Exponential convergence of Langevin distributions and
    their discrete approximations, Bernoulli 2 (1996) 341-363.
    G. O. Roberts and J. S. Rosenthal, Optimal scaling of discrete approximations to Langevin
    diffusions, J. R. Stat. Soc. B 60 (1998) 255-268 (the 0.574 acceptance target).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import (
    GaussianMetric,
    Info,
    Kernel,
    LogDensity,
    State,
    as_metric,
    check_step_size,
    initializer,
    metropolis,
    standard_normal,
)

__all__ = ["mala"]


def mala(
    log_density: LogDensity,
    step_size: float,
    inverse_mass_matrix: Tensor | GaussianMetric | None = None,
) -> Kernel:
    r"""The MALA kernel: a preconditioned Langevin proposal with its Metropolis-Hastings test.

    Arguments:
        log_density: x (n, dim) -> :class:`~.hmc.Evaluation` of log pi and its gradient.
        step_size: eps; the proposal covariance is eps^2 Sigma.
        inverse_mass_matrix: the preconditioner Sigma, (dim,) or (dim, dim); None for I.

    Returns:
        A :class:`~.hmc.Kernel`; ``Info.energy_error`` is -log alpha.

    References:
        G. O. Roberts and R. L. Tweedie, Bernoulli 2 (1996) 341-363.

    Example:
        >>> kernel = mala(CountedDensity(target), step_size=0.5)
        >>> state, info = kernel.step(torch.Generator().manual_seed(0), kernel.init(x0))
    """
    eps = check_step_size(step_size)
    fixed = as_metric(inverse_mass_matrix)

    def step(generator: torch.Generator, state: State) -> tuple[State, Info]:
        metric = GaussianMetric.identity(state.position) if fixed is None else fixed
        x = state.position
        xi = standard_normal(generator, x)
        x_new = x + 0.5 * eps**2 * metric.velocity(state.grad) + eps * metric.scale(xi)
        ev = log_density(x_new)
        back = x - x_new - 0.5 * eps**2 * metric.velocity(ev.grad)
        log_q_back = -0.5 * metric.whiten(back).square().sum(-1) / eps**2
        log_q_forth = -0.5 * xi.square().sum(-1)
        log_alpha = ev.log_prob - state.log_prob + log_q_back - log_q_forth
        proposal = State(x_new, ev.log_prob, ev.grad, tuple(ev.aux))
        return metropolis(generator, log_alpha, proposal, state, 1)

    return Kernel(initializer(log_density), step)
