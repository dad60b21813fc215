r"""Warm-up adaptation as in Stan: dual averaging of the step size, windowed mass matrix.

Step size: the dual averaging iteration of Hoffman & Gelman (Algorithm 5) drives the mean
acceptance probability alpha_t of the pooled chains to a target delta,

    H_t = (1 - 1/(t + t0)) H_{t-1} + (delta - alpha_t) / (t + t0),
    log eps_t = mu - sqrt(t) H_t / gamma,
    log eps_bar_t = t^{-kappa} log eps_t + (1 - t^{-kappa}) log eps_bar_{t-1},

with mu = log(10 eps_0), gamma = 0.05, kappa = 0.75 and t0 = 50; eps_bar is used after
warm-up. The paper's t0 = 10 suits one noisy chain; the mean acceptance of many pooled chains
is nearly noise-free, and with t0 = 10 the iteration overshoots into a period-2 oscillation
on steep acceptance curves (measured: MALA on a 50-dimensional Gaussian ended at acceptance
0.75 for a 0.574 target), which t0 = 50 damps.

Mass matrix: Stan's schedule, a fast initial buffer (75 iterations), slow windows of
doubling length (25, 50, 100, ...; the last stretched to fill), a fast terminal buffer (50).
At the end of each slow window Sigma = M^{-1} is set to the covariance of the draws of that
window pooled over all chains, regularised towards 1e-3 I as Stan does,
Sigma = n / (n + 5) C + 1e-3 * 5 / (n + 5) I, and dual averaging restarts.

References:
    M. D. Hoffman and A. Gelman, The No-U-Turn sampler, JMLR 15 (2014), arXiv:1111.4246.
    Stan Reference Manual, "HMC algorithm parameters: automatic parameter tuning".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from .base import GaussianMetric, Kernel, LogDensity, State
from .mala import mala

__all__ = [
    "AdaptationResult",
    "CovarianceEstimate",
    "DualAveragingState",
    "WarmupStage",
    "covariance_init",
    "covariance_update",
    "dual_averaging_init",
    "dual_averaging_update",
    "find_reasonable_step_size",
    "regularized_covariance",
    "warmup_schedule",
    "window_adaptation",
]

MASS_MATRICES = ("auto", "diag", "dense", "identity")
GAMMA, T0, KAPPA = 0.05, 50.0, 0.75


# --- step size: dual averaging -----------------------------------------------------------


class DualAveragingState(NamedTuple):
    """log eps_t, log eps_bar_t, H_t, mu and the iteration count t."""

    log_step_size: float
    log_step_size_avg: float
    h_bar: float
    mu: float
    count: int


def dual_averaging_init(step_size: float) -> DualAveragingState:
    """Start at eps_0 with shrinkage point mu = log(10 eps_0)."""
    log_eps = math.log(step_size)
    return DualAveragingState(log_eps, log_eps, 0.0, math.log(10.0) + log_eps, 0)


def dual_averaging_update(
    state: DualAveragingState,
    acceptance: float,
    target_accept: float,
    gamma: float = GAMMA,
    t0: float = T0,
    kappa: float = KAPPA,
) -> DualAveragingState:
    """One step of Hoffman & Gelman's Algorithm 5 (arXiv:1111.4246) given alpha_t."""
    t = state.count + 1
    w = 1.0 / (t + t0)
    h_bar = (1.0 - w) * state.h_bar + w * (target_accept - acceptance)
    log_eps = state.mu - math.sqrt(t) / gamma * h_bar
    eta = t**-kappa
    log_avg = eta * log_eps + (1.0 - eta) * state.log_step_size_avg
    return DualAveragingState(log_eps, log_avg, h_bar, state.mu, t)


def find_reasonable_step_size(
    log_density: LogDensity,
    state: State,
    generator: torch.Generator,
    step_size: float = 1.0,
    metric: GaussianMetric | None = None,
    max_iter: int = 60,
) -> float:
    """Double or halve eps until the mean one-step (MALA = one-leapfrog HMC) acceptance
    of the pooled chains crosses 1/2 (Hoffman & Gelman, Algorithm 4, arXiv:1111.4246).
    Each trial costs one evaluation per walker; no walker is moved."""
    eps = step_size

    def accept(e: float) -> float:
        return float(mala(log_density, e, metric).step(generator, state)[1].acceptance_rate.mean())

    direction = 1.0 if accept(eps) > 0.5 else -1.0
    for _ in range(max_iter):
        trial = eps * 2.0**direction
        if not 1e-10 < trial < 1e10:
            break
        a = accept(trial)
        if (direction > 0 and a < 0.5) or (direction < 0 and a > 0.5):
            return eps if direction > 0 else trial
        eps = trial
    return eps


# --- mass matrix: pooled covariance in windows --------------------------------------------


class CovarianceEstimate(NamedTuple):
    """Running count, mean (dim,) and sum of squared deviations (dim,) or (dim, dim)."""

    count: int
    mean: Tensor
    m2: Tensor


def covariance_init(dim: int, dense: bool, like: Tensor) -> CovarianceEstimate:
    shape = (dim, dim) if dense else (dim,)
    zeros = torch.zeros(shape, dtype=like.dtype, device=like.device)
    return CovarianceEstimate(0, torch.zeros(dim, dtype=like.dtype, device=like.device), zeros)


def covariance_update(est: CovarianceEstimate, x: Tensor) -> CovarianceEstimate:
    """Add a batch x (n, dim) by Chan et al.'s pairwise combination of (count, mean, M2)."""
    nb = x.shape[0]
    mb = x.mean(0)
    d = x - mb
    dense = est.m2.ndim == 2
    m2b = d.T @ d if dense else d.square().sum(0)
    n = est.count + nb
    delta = mb - est.mean
    mean = est.mean + delta * (nb / n)
    corr = torch.outer(delta, delta) if dense else delta.square()
    return CovarianceEstimate(n, mean, est.m2 + m2b + corr * (est.count * nb / n))


def regularized_covariance(est: CovarianceEstimate) -> Tensor:
    """Stan's n / (n + 5) C + 1e-3 * 5 / (n + 5) I from the draws collected so far."""
    n = est.count
    if n < 2:
        raise ValueError("need at least two draws to estimate a covariance")
    cov = est.m2 / (n - 1)
    shrink = 1e-3 * 5.0 / (n + 5.0)
    if cov.ndim == 2:
        eye = torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)
        return (n / (n + 5.0)) * 0.5 * (cov + cov.T) + shrink * eye
    return (n / (n + 5.0)) * cov + shrink


# --- the schedule and the driver ----------------------------------------------------------


class WarmupStage(NamedTuple):
    """slow: this iteration's draws feed the mass matrix; window_end: re-estimate after it."""

    slow: bool
    window_end: bool


def warmup_schedule(
    num_steps: int, init_buffer: int = 75, term_buffer: int = 50, base_window: int = 25
) -> list[WarmupStage]:
    """Stan's windows: fast buffer, slow windows 25, 50, 100, ... (the last one stretched to
    end where the terminal buffer starts), fast terminal buffer. When the three defaults do
    not fit, they become 15% / 75% / 10% of ``num_steps``; under 20 steps, step size only."""
    if num_steps < 20:
        return [WarmupStage(False, False)] * num_steps
    if init_buffer + base_window + term_buffer > num_steps:
        init_buffer, term_buffer = int(0.15 * num_steps), int(0.1 * num_steps)
        base_window = num_steps - init_buffer - term_buffer
    slow_end = num_steps - term_buffer
    stages = [WarmupStage(False, False)] * init_buffer
    start, size = init_buffer, base_window
    while start < slow_end:
        if start + 3 * size >= slow_end:
            size = slow_end - start
        stages += [WarmupStage(True, False)] * (size - 1) + [WarmupStage(True, True)]
        start, size = start + size, 2 * size
    return stages + [WarmupStage(False, False)] * term_buffer


class AdaptationResult(NamedTuple):
    """The state after warm-up, the tuned parameters and the warm-up traces."""

    state: State
    step_size: float
    metric: GaussianMetric | None
    acceptance: Tensor  # (num_steps,) mean acceptance probability per iteration
    log_prob_trace: Tensor  # (num_steps, chains)
    step_size_trace: Tensor  # (num_steps,)


def window_adaptation(
    log_density: LogDensity,
    build_kernel: Callable[[float, GaussianMetric | None], Kernel],
    state: State,
    generator: torch.Generator,
    num_steps: int,
    target_accept: float,
    mass_matrix: str | Tensor = "diag",
    step_size: float | None = None,
    callback: Callable[[int], None] | None = None,
) -> AdaptationResult:
    r"""Stan-style warm-up of a kernel over a batch of chains.

    Arguments:
        log_density: the density the kernel samples (used for the step size heuristic).
        build_kernel: (eps, metric) -> :class:`~.hmc.Kernel`, e.g.
            ``lambda e, m: hmc(log_density, e, m, num_steps=10)``.
        state: the chains' initial state, batch (chains, dim).
        num_steps: warm-up iterations (see :func:`warmup_schedule`).
        target_accept: delta for dual averaging (0.574 for MALA, 0.8 for HMC).
        mass_matrix: "diag" or "dense" (adapted), "identity", a fixed tensor Sigma, or "auto":
            dense when dim <= min(100, 2.5 chains) (the first 25-iteration window then pools
            at least ten draws per dimension), else diag.
        step_size: eps_0; None runs :func:`find_reasonable_step_size` from 1.

    Returns:
        :class:`AdaptationResult` with eps = eps_bar at the end and the metric in use.

    References:
        M. D. Hoffman and A. Gelman (2014), arXiv:1111.4246; the Stan Reference Manual.
    """
    chains, dim = state.position.shape
    if isinstance(mass_matrix, str) and mass_matrix == "auto":
        mass_matrix = "dense" if dim <= min(100, 2.5 * chains) else "diag"
    adapt_metric = isinstance(mass_matrix, str) and mass_matrix in ("diag", "dense")
    if isinstance(mass_matrix, str):
        if mass_matrix not in MASS_MATRICES:
            raise ValueError(f"mass_matrix must be one of {MASS_MATRICES} or a tensor")
        metric = None
    else:
        metric = GaussianMetric(torch.as_tensor(mass_matrix).to(state.position))
    if step_size is None:
        step_size = find_reasonable_step_size(log_density, state, generator, 1.0, metric)
    da = dual_averaging_init(step_size)
    cov = covariance_init(dim, mass_matrix == "dense", state.position)
    acc, trace, eps_trace = [], [], []
    for i, stage in enumerate(warmup_schedule(num_steps)):
        eps = math.exp(da.log_step_size)
        state, info = build_kernel(eps, metric).step(generator, state)
        a = float(info.acceptance_rate.mean())
        da = dual_averaging_update(da, a, target_accept)
        acc.append(a)
        eps_trace.append(eps)
        trace.append(state.log_prob)
        if adapt_metric and stage.slow:
            cov = covariance_update(cov, state.position)
        if adapt_metric and stage.window_end:
            metric = GaussianMetric(regularized_covariance(cov))
            cov = covariance_init(dim, mass_matrix == "dense", state.position)
            eps = find_reasonable_step_size(log_density, state, generator, eps, metric)
            da = dual_averaging_init(eps)
        if callback is not None:
            callback(i)
    final = math.exp(da.log_step_size_avg) if num_steps > 0 else step_size
    empty = state.log_prob.new_zeros((0, state.log_prob.shape[0]))
    return AdaptationResult(
        state,
        final,
        metric,
        torch.tensor(acc, dtype=torch.float64),
        torch.stack(trace) if trace else empty,
        torch.tensor(eps_trace, dtype=torch.float64),
    )
