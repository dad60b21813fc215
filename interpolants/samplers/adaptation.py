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
    "next_target_accept",
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
    """The state after warm-up, the tuned parameters and the warm-up traces.

    ``target_accept`` is the acceptance target of the last adaptation round (raised from the
    one asked for when divergences made warm-up re-adapt), ``divergences`` the divergent
    transitions of all warm-up iterations and ``rounds`` the re-adaptations made."""

    state: State
    step_size: float
    metric: GaussianMetric | None
    acceptance: Tensor  # (iterations,) mean acceptance probability per iteration
    log_prob_trace: Tensor  # (iterations, chains)
    step_size_trace: Tensor  # (iterations,)
    target_accept: float = math.nan
    divergences: int = 0
    rounds: int = 0
    first_step_size: float = math.nan  # eps_bar before the first raise (= step_size without)


TARGET_ACCEPT_LADDER = (0.9, 0.95, 0.99)
SETTLE, STEP_FACTOR = 10, 1.2


def next_target_accept(target_accept: float, max_target_accept: float) -> float:
    """The next acceptance target when warm-up diverged: the next of 0.9, 0.95, 0.99 (Stan's
    usual advice for adapt_delta) above ``target_accept``, at most ``max_target_accept``."""
    above = [t for t in TARGET_ACCEPT_LADDER if t > target_accept]
    return min(above[0] if above else max_target_accept, max_target_accept)


class _Adapter:
    """The mutable warm-up: dual averaging, the covariance of the current window, the metric
    and the traces; :meth:`run` goes through a list of :class:`WarmupStage`."""

    def __init__(self, log_density, build_kernel, state, generator, mass_matrix, metric, eps):
        self.log_density, self.build_kernel = log_density, build_kernel
        self.state, self.generator, self.metric = state, generator, metric
        self.dense = isinstance(mass_matrix, str) and mass_matrix == "dense"
        self.adapt_metric = isinstance(mass_matrix, str) and mass_matrix in ("diag", "dense")
        self.da = dual_averaging_init(eps)
        self.cov = covariance_init(state.position.shape[1], self.dense, state.position)
        self.acc: list[float] = []
        self.eps_trace: list[float] = []
        self.trace: list[Tensor] = []
        self.divergent: list[int] = []

    def restart(self, eps: float) -> None:
        """Restart dual averaging at eps and empty the covariance window."""
        self.da = dual_averaging_init(eps)
        self.cov = covariance_init(self.state.position.shape[1], self.dense, self.state.position)

    def run(self, stages: list[WarmupStage], target_accept: float, callback) -> int:
        """Iterate through ``stages`` towards ``target_accept``; return the divergent
        transitions made at a step size at most ``STEP_FACTOR`` times the eps_bar the stages
        end with, less those of the first ``SETTLE`` iterations after a restart of dual
        averaging. Dual averaging's first steps try up to 10 eps_0, and its excursions reach
        past the leapfrog's stability limit even on a Gaussian: such divergences say nothing
        of the step size sampling will use."""
        start, settled = len(self.acc), []
        for stage in stages:
            eps = math.exp(self.da.log_step_size)
            self.state, info = self.build_kernel(eps, self.metric).step(self.generator, self.state)
            a = float(info.acceptance_rate.mean())
            self.da = dual_averaging_update(self.da, a, target_accept)
            self.divergent.append(int(info.is_divergent.sum()))
            settled.append(self.da.count > SETTLE)
            self.acc.append(a)
            self.eps_trace.append(eps)
            self.trace.append(self.state.log_prob)
            if self.adapt_metric and stage.slow:
                self.cov = covariance_update(self.cov, self.state.position)
            if self.adapt_metric and stage.window_end:
                self.metric = GaussianMetric(regularized_covariance(self.cov))
                eps = find_reasonable_step_size(
                    self.log_density, self.state, self.generator, eps, self.metric
                )
                self.restart(eps)
            if callback is not None:
                callback(len(self.acc) - 1)
        limit = STEP_FACTOR * math.exp(self.da.log_step_size_avg)
        rows = zip(self.eps_trace[start:], self.divergent[start:], settled, strict=True)
        return sum(d for eps, d, ok in rows if ok and eps <= limit)


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
    max_target_accept: float | None = None,
    build_raised: Callable[[float, float, GaussianMetric | None], Kernel] | None = None,
) -> AdaptationResult:
    r"""Stan-style warm-up of a kernel over a batch of chains.

    Divergences: with ``max_target_accept`` set, a warm-up whose last slow window and
    terminal buffer (the iterations run with the final metric's estimate and step size)
    made a divergent transition raises the acceptance target (:func:`next_target_accept`:
    0.8 -> 0.9 -> 0.95 -> 0.99, a smaller step size) and runs that last window and buffer
    again from where the chains are, the metric re-estimated, until a round has no
    divergence or the target is ``max_target_accept``. Without slow windows (fewer than 20
    iterations) the whole warm-up is the round re-run.

    Arguments:
        log_density: the density the kernel samples (used for the step size heuristic).
        build_kernel: (eps, metric) -> :class:`~.hmc.Kernel`, e.g.
            ``lambda e, m: hmc(log_density, e, m, num_steps=10)``.
        state: the chains' initial state, batch (chains, dim).
        num_steps: warm-up iterations (see :func:`warmup_schedule`); re-adaptation rounds
            add to them.
        target_accept: delta for dual averaging (0.574 for MALA, 0.8 for HMC).
        mass_matrix: "diag" or "dense" (adapted), "identity", a fixed tensor Sigma, or "auto":
            dense when dim <= min(100, 2.5 chains) (the first 25-iteration window then pools
            at least ten draws per dimension), else diag.
        step_size: eps_0; None runs :func:`find_reasonable_step_size` from 1.
        callback: called with the iteration's index after every warm-up iteration.
        max_target_accept: the highest acceptance target divergences may raise delta to;
            None (default) keeps ``target_accept``.
        build_raised: (eps_1, eps, metric) -> kernel for the rounds after a raise, given
            the step size eps_1 the first round ended with (HMC keeps its trajectory
            length eps_1 L with more, smaller steps); None: ``build_kernel``.

    Returns:
        :class:`AdaptationResult` with eps = eps_bar at the end, the metric in use, the
        final target and the warm-up's divergences.

    References:
        M. D. Hoffman and A. Gelman (2014), arXiv:1111.4246; the Stan Reference Manual;
        Stan's advice on divergences (raise adapt_delta), Stan User's Guide.
    """
    chains, dim = state.position.shape
    if isinstance(mass_matrix, str) and mass_matrix == "auto":
        mass_matrix = "dense" if dim <= min(100, 2.5 * chains) else "diag"
    if isinstance(mass_matrix, str):
        if mass_matrix not in MASS_MATRICES:
            raise ValueError(f"mass_matrix must be one of {MASS_MATRICES} or a tensor")
        metric = None
    else:
        metric = GaussianMetric(torch.as_tensor(mass_matrix).to(state.position))
    if step_size is None:
        step_size = find_reasonable_step_size(log_density, state, generator, 1.0, metric)
    adapter = _Adapter(log_density, build_kernel, state, generator, mass_matrix, metric, step_size)
    stages = warmup_schedule(num_steps)
    slow = [i for i, s in enumerate(stages) if s.slow]
    ends = [i for i, s in enumerate(stages) if s.window_end]
    # where the last slow window starts (0 without slow windows)
    last = ends[-2] + 1 if len(ends) > 1 else (slow[0] if slow else 0)
    adapter.run(stages[:last], target_accept, callback)
    divergent, rounds = adapter.run(stages[last:], target_accept, callback), 0
    cap = target_accept if max_target_accept is None else max(max_target_accept, target_accept)
    first = math.exp(adapter.da.log_step_size_avg) if num_steps > 0 else step_size
    if build_raised is not None:
        adapter.build_kernel = lambda eps, m: build_raised(first, eps, m)
    while divergent > 0 and target_accept < cap and stages:
        target_accept, rounds = next_target_accept(target_accept, cap), rounds + 1
        adapter.restart(math.exp(adapter.da.log_step_size_avg))
        divergent = adapter.run(stages[last:], target_accept, callback)
    final = math.exp(adapter.da.log_step_size_avg) if num_steps > 0 else step_size
    empty = state.log_prob.new_zeros((0, state.log_prob.shape[0]))
    return AdaptationResult(
        adapter.state,
        final,
        adapter.metric,
        torch.tensor(adapter.acc, dtype=torch.float64),
        torch.stack(adapter.trace) if adapter.trace else empty,
        torch.tensor(adapter.eps_trace, dtype=torch.float64),
        target_accept,
        sum(adapter.divergent),
        rounds,
        first,
    )
