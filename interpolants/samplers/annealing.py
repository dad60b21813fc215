r"""The one annealing engine: walkers carried from a base p_0 to the target rho* through
log pi_beta = (1 - beta) log p_0 + beta log rho*, with weights that keep log Z.

:func:`anneal` moves a population level by level. At level k (time t_k, temperature beta_k):

1. reweight, x fixed: log w += (beta_k - beta_{k-1}) (log rho* - log p_0)(x), the increment
   of Jarzynski (arXiv:cond-mat/9610209) and Neal's AIS (arXiv:physics/9803008);
2. transport (optional): x <- T x by a map T of the time step (NETS: the Heun step of a
   learned drift, arXiv:2410.02711), log w += log pi_k(T x) - log pi_k(x) + log |det grad T|;
   a walker where T is not invertible (log |det| = -inf) gets weight 0; or a random move
   y ~ K(. | x) of a Markov kernel with a backward kernel L (LEAPS's learned CTMC,
   arXiv:2502.10843), log w += log pi_k(y) - log pi_k(x) + log L(x | y) - log K(y | x);
3. resample (optional): populations whose ESS/N fell below a threshold are resampled
   (systematic) and their log mean w carried into log Z, as in SMC (Del Moral, Doucet &
   Jasra, arXiv:cond-mat/0212648);
4. move: MCMC kernels that leave pi_k invariant (MALA, HMC), which change no weight.

Then E[w f(x)] / E[w] = E_rho*[f] and Z_hat = exp(log Z carried) mean w is unbiased for Z.
With no transport this is AIS (fixed levels) or SMC (resampling, adaptive levels); NETS is
the same loop with its transport, so NETS with b = 0 is AIS by construction.

The parts are small objects passed in (BlackJAX's ``smc/tempered.py`` composes a step the
same way): the levels (:class:`TimeGrid`, :class:`AdaptiveTempering`), the moves
(:class:`AdaptiveMoves`, :class:`LangevinMoves`, :class:`ReplayMoves`), a transport callable
and a :class:`Resampler`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor

from ..distributions import DiagonalNormal, TorchDistribution
from .adaptation import find_reasonable_step_size
from .base import Evaluation, GaussianMetric, Kernel, LogDensity, State, select, uniform
from .diagnostics import (
    ess_of_weights,
    log_conditional_ess,
    log_mean_exp,
    start_end_correlation,
)
from .distributed import broadcast_from_rank0
from .latent import LatentFlow
from .mala import mala

__all__ = [
    "ADAPT_RATE",
    "AdaptiveMoves",
    "AdaptiveTempering",
    "Annealed",
    "AnnealedDensity",
    "LangevinMoves",
    "Level",
    "MarkovTransport",
    "MetricStore",
    "ReplayMoves",
    "Resampler",
    "TimeGrid",
    "Transport",
    "anneal",
    "base_sample",
    "decorrelated",
    "gather",
    "next_temperature",
    "preconditioner",
    "resolve_base",
    "systematic_resample",
]

ADAPT_RATE = 2.0  # eps <- eps exp(ADAPT_RATE (acceptance - target)) after every move


# --- the path ---------------------------------------------------------------------------------


class AnnealedDensity:
    r"""log pi_beta = (1 - beta) log p_0 + beta log rho* and its gradient.

    Evaluations carry (log p_0, log rho*, grad log p_0, grad log rho*) as ``aux`` so that the
    weight increments and a change of temperature cost no further target evaluations.
    """

    def __init__(self, target: Any, base: Any):
        self.target, self.base = target, base

    def components(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(log p_0, log rho*, grad log p_0, grad log rho*) at x; for a discrete target the
        single-site log ratios take the gradients' place (:mod:`~interpolants.targets.discrete`:
        they combine along the path as gradients do)."""
        if hasattr(self.base, "log_prob_and_ratios"):
            lp0, r0 = self.base.log_prob_and_ratios(x)
            ev = self.target(x)
            return lp0.to(x.dtype), ev.log_prob, r0.to(x.dtype), ev.grad
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            lp0 = self.base.log_prob(xg)
            # a constant base density (the uniform one on the torus) carries no graph
            g0 = torch.autograd.grad(lp0.sum(), xg)[0] if lp0.requires_grad else torch.zeros_like(x)
        ev = self.target(x)
        return lp0.detach().to(x.dtype), ev.log_prob, g0.to(x.dtype), ev.grad

    def at(self, beta: float) -> LogDensity:
        """x -> Evaluation of log pi_beta."""

        def log_density(x: Tensor) -> Evaluation:
            lp0, lp1, g0, g1 = self.components(x)
            aux = (lp0, lp1, g0, g1)
            return Evaluation((1 - beta) * lp0 + beta * lp1, (1 - beta) * g0 + beta * g1, aux)

        return log_density

    def state(self, x: Tensor, beta: float, parts: tuple[Tensor, ...] | None = None) -> State:
        """Walkers x at temperature beta (evaluating the components unless ``parts``)."""
        lp0, lp1, g0, g1 = self.components(x) if parts is None else parts
        return State(x, (1 - beta) * lp0 + beta * lp1, (1 - beta) * g0 + beta * g1,
                     (lp0, lp1, g0, g1))  # fmt: skip

    @staticmethod
    def retemper(state: State, beta: float) -> State:
        """The same walkers seen at temperature beta (no evaluation)."""
        lp0, lp1, g0, g1 = state.aux
        return State(
            state.position, (1 - beta) * lp0 + beta * lp1, (1 - beta) * g0 + beta * g1, state.aux
        )


def log_ratio(state: State) -> Tensor:
    """ell = log rho* - log p_0 at the walkers (float64): d log pi_beta / d beta."""
    return state.aux[1].double() - state.aux[0].double()


# --- resampling and preconditioning -----------------------------------------------------------


def systematic_resample(log_weights: Tensor, generator: torch.Generator) -> Tensor:
    """Systematic resampling per row of log weights (R, m): ancestor indices (R, m).

    One uniform u per row; walker j is copied once for every (u + i) / m, i = 0..m-1, that
    falls in (C_{j-1}, C_j], C the cumulative normalised weights (Douc, Cappe & Moulines,
    arXiv:cs/0507025). Under a process group rank 0's indices go to every rank
    (:func:`~.distributed.broadcast_from_rank0`)."""
    r, m = log_weights.shape
    c = torch.softmax(log_weights.double(), -1).cumsum(-1)
    c[:, -1] = 1.0
    u = (uniform(generator, r, c)[:, None] + torch.arange(m, dtype=c.dtype, device=c.device)) / m
    return broadcast_from_rank0(torch.searchsorted(c, u).clamp(max=m - 1))


def gather(state: State, idx: Tensor) -> State:
    """The walkers ``idx`` of a state (copies of ancestors after resampling)."""
    return State(
        state.position[idx], state.log_prob[idx], state.grad[idx], tuple(a[idx] for a in state.aux)
    )


@dataclass(frozen=True)
class Resampler:
    """Resample, within each of ``groups`` equal populations (consecutive rows), those whose
    ESS/N is below ``threshold`` (0: never)."""

    threshold: float = 0.5
    groups: int = 1

    def __call__(
        self, state: State, log_w: Tensor, generator: torch.Generator
    ) -> tuple[State, Tensor, Tensor, int]:
        """(state, log weights (0 where resampled), log mean w of every population (0 where it
        was not resampled), how many were)."""
        lw = log_w.view(self.groups, -1)
        low = ess_of_weights(lw, -1) < self.threshold
        if not bool(low.any()):
            return state, log_w, torch.zeros_like(lw[:, 0]), 0
        m = lw.shape[1]
        rows = torch.arange(self.groups * m, device=lw.device).view(self.groups, m)
        idx = systematic_resample(lw.cpu(), generator).to(lw.device) + rows[:, :1]
        idx = torch.where(low[:, None], idx, rows).flatten()
        new_w = torch.where(low[:, None], torch.zeros_like(lw), lw).flatten()
        inc = torch.where(low, log_mean_exp(lw, -1), 0.0)
        return gather(state, idx), new_w, inc, int(low.sum())


def preconditioner(x: Tensor, log_w: Tensor | None, kind: str | Tensor) -> GaussianMetric | None:
    """A Gaussian metric from the walkers' (weighted) spread, regularised as in Stan:
    "diag", "dense", "identity" (None) or a given tensor."""
    if not isinstance(kind, str):
        return GaussianMetric(kind)
    if kind == "identity":
        return None
    n = x.shape[0]
    w = torch.full((n,), 1.0 / n, dtype=torch.float64, device=x.device)
    if log_w is not None:
        w = torch.softmax(log_w.double().flatten(), 0).to(x.device)
    k = float(1.0 / w.square().sum())
    xd = x.double()
    d = xd - (w[:, None] * xd).sum(0)
    shrink = 1e-3 * 5.0 / (k + 5.0)
    if kind == "dense":
        cov = (w[:, None] * d).T @ d
        eye = torch.eye(x.shape[1], dtype=torch.float64, device=x.device)
        return GaussianMetric((k / (k + 5.0) * cov + shrink * eye).to(x.dtype))
    return GaussianMetric((k / (k + 5.0) * (w[:, None] * d.square()).sum(0) + shrink).to(x.dtype))


# --- levels -----------------------------------------------------------------------------------


class Levels(Protocol):
    """The next level after (t, beta), or None at the end."""

    def next(
        self, k: int, t: float, beta: float, log_w: Tensor, ell: Tensor
    ) -> tuple[float, float] | None: ...


@dataclass(frozen=True)
class TimeGrid:
    """Levels at the times of ``grid`` (0 = t_0 < ... < t_K = 1) with beta = ``beta(t)``
    (the identity when None: a fixed temperature ladder)."""

    grid: Tensor
    beta: Callable[[float], float] | None = None

    def next(
        self, k: int, t: float, beta: float, log_w: Tensor, ell: Tensor
    ) -> tuple[float, float] | None:
        if k + 1 >= len(self.grid):
            return None
        t1 = float(self.grid[k + 1])
        return t1, (t1 if self.beta is None else self.beta(t1))


def next_temperature(log_weights: Tensor, ell: Tensor, beta: float, cess: float) -> float:
    """The largest beta' in (beta, 1] with min over rows of the conditional ESS >= ``cess``.

    CESS(beta') = (sum_i W_i v_i)^2 / sum_i W_i v_i^2, v_i = exp((beta' - beta) ell_i),
    W the normalised current weights, per row of (R, m) (:func:`log_conditional_ess`);
    found by bisection (Zhou et al., arXiv:1303.3123)."""
    ell = ell.double()

    def worst(delta: float) -> float:
        return float(log_conditional_ess(log_weights, delta * ell).min())

    target, hi = math.log(cess), 1.0 - beta
    if worst(hi) >= target:
        return 1.0
    lo = 0.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if worst(mid) >= target else (lo, mid)
    return beta + lo if lo > 0 else beta + hi


@dataclass(frozen=True)
class AdaptiveTempering:
    """Adaptive temperatures: the next beta keeps the conditional ESS at ``cess``
    (:func:`next_temperature`); after ``max_levels`` levels it jumps to beta = 1 (warning)."""

    cess: float = 0.9
    max_levels: int = 1000

    def next(
        self, k: int, t: float, beta: float, log_w: Tensor, ell: Tensor
    ) -> tuple[float, float] | None:
        if beta >= 1.0:
            return None
        new = next_temperature(log_w.cpu()[None], ell.cpu()[None], beta, self.cess)
        if k + 1 >= self.max_levels and new < 1.0:
            warnings.warn(
                f"reached max_levels={self.max_levels} at beta={new:.3g}; jumping to beta=1",
                stacklevel=5,
            )
            new = 1.0
        return new, new


# --- moves ------------------------------------------------------------------------------------

KernelBuilder = Callable[[LogDensity, float, GaussianMetric | None], Kernel]


def mala_kernel(log_density: LogDensity, step: float, metric: GaussianMetric | None) -> Kernel:
    return mala(log_density, step, metric)


class Step(NamedTuple):
    """One level's moves: the new state and what they used and saw, with the largest
    |correlation| between the walkers' positions before and after them and the share of
    walkers that moved at all (None: no move)."""

    state: State
    metric: Any
    step_sizes: list[float]
    acceptance: list[float]
    correlation: float | None = None
    moved: float | None = None


Preconditioner = GaussianMetric | LatentFlow | None
"""How a level's moves see the walkers: a Gaussian metric, a learned flow (moves in its
latent space, :mod:`.latent`), or neither."""


def _run_kernel(
    build: KernelBuilder,
    log_density: LogDensity,
    state: State,
    metric: Preconditioner,
    sizes: Callable[[int], float],
    moves: int,
    generator: torch.Generator,
    tune: Callable[[float], None] | None = None,
    done: Callable[[Tensor, Tensor], bool] | None = None,
) -> Step:
    """Up to ``moves`` kernel steps; with ``done``, stop once done(start, now) holds. With a
    :class:`~.latent.LatentFlow` the steps are made in its latent space (unit metric)."""
    flow = metric if isinstance(metric, LatentFlow) else None
    if flow is not None and moves > 0:
        state, log_density = flow.to_latent(state), flow.density(log_density)
    gauss = None if flow is not None else metric
    used, acc, start = [], [], state.position
    for j in range(moves):
        e = sizes(j)
        state, info = build(log_density, e, gauss).step(generator, state)  # type: ignore[arg-type]
        a = float(info.acceptance_rate.mean())
        used.append(e)
        acc.append(a)
        if tune is not None:
            tune(a)
        if done is not None and done(start, state.position):
            break
    if not used:
        return Step(state, metric, used, acc)
    moved = float((state.position != start).any(1).double().mean())
    corr = start_end_correlation(start, state.position)
    if flow is not None:
        state = flow.to_data(state)
    return Step(state, metric, used, acc, corr, moved)


def decorrelated(threshold: float) -> Callable[[Tensor, Tensor], bool]:
    r"""Whether the walkers have forgotten where the level's moves began:
    :func:`start_end_correlation` is below ``threshold`` (the stopping rule of adaptive
    numbers of MCMC steps in SMC: Buchholz, Chopin & Jacob, arXiv:1808.07730; pocoMC,
    Karamanis et al., arXiv:2207.05652)."""

    def done(start: Tensor, now: Tensor) -> bool:
        return start_end_correlation(start, now) < threshold

    return done


@dataclass
class AdaptiveMoves:
    """``moves`` kernel steps per level whose step size starts at ``step_size`` (or the
    doubling heuristic at beta = 0) and is retuned after every move,
    eps <- eps exp(ADAPT_RATE (acceptance - target_accept)); the preconditioner is re-fitted
    to the walkers at every level (weighted by w when ``weighted_metric``). Only levels where
    ``active(t)`` holds move (default: all). With ``decorrelation`` r, a level's moves stop as
    soon as the walkers have decorrelated from where they began (:func:`decorrelated`), at
    most ``moves`` of them. With ``mass_matrix="flow"`` the preconditioner is a RealNVP
    refitted to the walkers at every level (``flow_steps`` Adam steps from the previous
    level's), and the moves are made in its latent space (:mod:`.latent`)."""

    moves: int
    target_accept: float
    mass_matrix: str | Tensor = "diag"
    step_size: float | None = None
    kernel: KernelBuilder = mala_kernel
    weighted_metric: bool = False
    active: Callable[[float], bool] | None = None
    decorrelation: float | None = None  # with it, ``moves`` is the cap of a self-tuned count
    flow_steps: int = 100  # Adam steps of each level's flow fit (mass_matrix="flow")
    eps: float = field(default=0.0, init=False)
    flow: Any = field(default=None, init=False)

    def start(self, density: AnnealedDensity, state: State, generator: torch.Generator) -> None:
        if self.mass_matrix == "flow":
            seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
            x = state.position
            self.flow = LatentFlow.new(x.shape[1], x.dtype, seed)
            self.eps = self.step_size or 1.0  # the latent law is near N(0, I)
            return
        metric = preconditioner(state.position, None, self.mass_matrix)
        self.eps = self.step_size or find_reasonable_step_size(
            density.at(0.0), state, generator, 1.0, metric
        )

    def __call__(
        self, density: AnnealedDensity, state: State, log_w: Tensor, t0: float, t1: float,
        beta: float, k: int, generator: torch.Generator,
    ) -> Step:  # fmt: skip
        if self.active is not None and not (self.active(t1) and self.moves > 0):
            return Step(state, None, [], [])
        weights = log_w if self.weighted_metric else None
        metric: Preconditioner
        if self.mass_matrix == "flow":
            self.flow = metric = self.flow.refit(state.position, weights, self.flow_steps)
        else:
            metric = preconditioner(state.position, weights, self.mass_matrix)

        def tune(a: float) -> None:
            self.eps *= math.exp(ADAPT_RATE * (a - self.target_accept))

        done = None if self.decorrelation is None else decorrelated(self.decorrelation)
        return _run_kernel(self.kernel, density.at(beta), state, metric, lambda j: self.eps,
                           self.moves, generator, tune, done)  # fmt: skip


@dataclass
class LangevinMoves:
    """``moves`` MALA steps of size sqrt(2 eps(t) h) at every level with eps(t) > 0 (the
    Langevin part of NETS's SDE, arXiv:2410.02711), preconditioned by the walkers' spread."""

    eps: Callable[[float], float]
    moves: int = 1
    mass_matrix: str | Tensor = "identity"

    def start(self, density: AnnealedDensity, state: State, generator: torch.Generator) -> None:
        return None

    def __call__(
        self, density: AnnealedDensity, state: State, log_w: Tensor, t0: float, t1: float,
        beta: float, k: int, generator: torch.Generator,
    ) -> Step:  # fmt: skip
        e = self.eps(t1)
        if not (e > 0 and self.moves > 0):
            return Step(state, None, [], [])
        metric = preconditioner(state.position, None, self.mass_matrix)
        size = math.sqrt(2 * e * (t1 - t0))
        return _run_kernel(mala_kernel, density.at(beta), state, metric, lambda j: size,
                           self.moves, generator)  # fmt: skip


@dataclass
class ReplayMoves:
    """The metrics and step sizes of an earlier run's levels, followed as they were."""

    design: Sequence[Level]
    kernel: KernelBuilder = mala_kernel

    def start(self, density: AnnealedDensity, state: State, generator: torch.Generator) -> None:
        return None

    def __call__(
        self, density: AnnealedDensity, state: State, log_w: Tensor, t0: float, t1: float,
        beta: float, k: int, generator: torch.Generator,
    ) -> Step:  # fmt: skip
        level = self.design[k]
        sizes = level.step_sizes
        return _run_kernel(self.kernel, density.at(beta), state, level.metric,
                           lambda j: sizes[j], len(sizes), generator)  # fmt: skip


# --- the engine -------------------------------------------------------------------------------


class Level(NamedTuple):
    """What one level was: its time and temperature, and the metric and step sizes of its
    moves (a design that :class:`ReplayMoves` and :class:`TimeGrid` can follow again)."""

    t: float
    beta: float
    metric: Any  # a Preconditioner
    step_sizes: list[float]


class MetricStore:
    """The levels' Gaussian metrics, copied into a few blocks of doubling size.

    Kept one by one, each level's small metric tensors land in holes that the level's large
    temporaries leave in the C heap, and pin them: with glibc's malloc, AIS with a diagonal
    metric grew by 0.7 MB a level at n = 2000, d = 50 (7 GB at 10 000 levels, and swapping).
    A block holds at most ``MAX_BYTES`` (beyond, a block a level).
    """

    MAX_BYTES = 1 << 24

    def __init__(self) -> None:
        self.block: Tensor | None = None
        self.used = 0

    def keep(self, metric: Any) -> Any:
        """``metric`` held in the current block (a new one when full); others as they are."""
        if not isinstance(metric, GaussianMetric):
            return metric
        im, b = metric.inverse_mass_matrix, self.block
        kind = (im.shape, im.dtype, im.device)
        if b is None or self.used == b.shape[0] or (b.shape[2:], b.dtype, b.device) != kind:
            fits = max(1, self.MAX_BYTES // (2 * im.numel() * im.element_size()))
            rows = 16 if b is None else 2 * b.shape[0]
            self.block, self.used = im.new_empty((min(rows, fits), 2, *im.shape)), 0
        row = self.block[self.used]  # type: ignore[index]
        self.used += 1
        return metric.copied_into(row[0], row[1])


Transport = Callable[[float, float, Tensor], tuple[Tensor, Tensor]]
"""(t0, t1, x) -> (T x, log |det grad T(x)|) for one time step."""


@dataclass
class Annealed:
    """The walkers after :func:`anneal` and how they got there."""

    state: State
    log_w: Tensor  # (n,) float64, since the last resampling of each population
    log_z: Tensor  # (groups,) float64: sum of log mean w at the resamplings
    levels: list[Level]
    ess: list[float]  # ESS/N of all walkers at every level, before resampling
    acceptance: list[tuple[float, float]]  # (t, acceptance) of every move
    resamplings: int = 0
    bad_steps: int = 0  # walker-steps where the transport was not invertible
    folded: tuple[int, ...] = ()  # the levels k with such a walker
    correlation: list[float | None] = field(default_factory=list)  # per level, after its moves
    moved: list[float | None] = field(default_factory=list)  # share of walkers that moved
    # with a transport, per level: log CESS of the reweighting alone and with the transport
    transport_cess: list[tuple[float, float]] = field(default_factory=list)


class MarkovTransport(Protocol):
    r"""A random transport: a Markov kernel K_t(y | x) with a backward kernel L_t(x | y).

    The weight increment log pi(y) - log pi(x) + log L(x | y) - log K(y | x) is that of an
    SMC sampler with these kernels (Del Moral, Doucet & Jasra 2006, arXiv:cond-mat/0212648):
    unbiased for any pair whose L covers K's moves, and a deterministic invertible map T is
    the case K = delta_{T x}, L = delta_{T^{-1} y} with log |det grad T| in their place.
    LEAPS's continuous-time Markov chain (:mod:`.discrete.leaps`) is one.
    """

    def propose(
        self, t0: float, t1: float, old: State, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """(y ~ K(. | x), log K(y | x)) per walker, x the walkers of ``old`` (a state of
        pi_beta, its evaluations at hand)."""
        ...

    def log_backward(self, t0: float, t1: float, x: Tensor, y: Tensor, new: State) -> Tensor:
        """log L(x | y) per walker, given the state ``new`` of pi_beta at y."""
        ...


def _transport(
    density: AnnealedDensity, transport: Transport | MarkovTransport, old: State, t0: float,
    t1: float, beta: float, generator: torch.Generator,
) -> tuple[State, Tensor, Tensor]:  # fmt: skip
    """(new state, log w increment (-inf where T failed), ok mask)."""
    if hasattr(transport, "propose"):
        with torch.no_grad():
            y, log_k = transport.propose(t0, t1, old, generator)
            new = density.state(y, beta)
            logdet = transport.log_backward(t0, t1, old.position, y, new) - log_k
    else:
        with torch.no_grad():
            y, logdet = transport(t0, t1, old.position)
    ok = torch.isfinite(y).all(1) & torch.isfinite(logdet)
    y = torch.where(ok[:, None], y, old.position)
    if not hasattr(transport, "propose"):
        new = density.state(y, beta)
    dw = (new.log_prob - old.log_prob).double() + logdet
    ok &= torch.isfinite(dw)
    return select(ok, new, old), torch.where(ok, dw, 0.0), ok


def anneal(
    density: AnnealedDensity,
    state: State,
    levels: Levels,
    moves: Any,
    generator: torch.Generator,
    *,
    transport: Transport | MarkovTransport | None = None,
    resample: Resampler | None = None,
    on_level: Callable[[float, State, Tensor], None] | None = None,
    start: float = 0.0,
) -> Annealed:
    r"""Carry walkers ``state`` (at beta = 0, with the components of
    :class:`AnnealedDensity` as aux) to beta = 1 by the four steps of the module docstring.
    With ``start`` = 1 and levels that go down to 0, the same loop anneals draws of the
    target back to the base (reverse AIS, :mod:`.evidence`).

    Arguments:
        density: the annealed path between the base and the (counted) target.
        state: the walkers at t = 0, e.g. ``density.state(x, 0.0)``.
        levels: where the levels lie (:class:`TimeGrid`, :class:`AdaptiveTempering`).
        moves: the invariant moves (:class:`AdaptiveMoves`, :class:`LangevinMoves`,
            :class:`ReplayMoves`): ``start(density, state, generator)`` once, then called
            at every level.
        generator: the random stream of every step.
        transport: (t0, t1, x) -> (T x, log |det grad T|), a :class:`MarkovTransport`
            (LEAPS), or None (AIS, SMC).
        resample: a :class:`Resampler`, or None.
        on_level: called as ``on_level(t, state, log_w)`` at t = 0 and after every level.
        start: the time and temperature of ``state`` (0, or 1 for reverse annealing).

    Returns:
        :class:`Annealed`: log Z_hat = log_z + log mean exp(log_w) per population.
    """
    groups = resample.groups if resample is not None else 1
    log_w = torch.zeros(state.position.shape[0], dtype=torch.float64, device=state.position.device)
    log_z = torch.zeros(groups, dtype=torch.float64, device=state.position.device)
    out = Annealed(state, log_w, log_z, [], [], [])
    metrics = MetricStore()
    moves.start(density, state, generator)
    t, beta = start, start
    if on_level is not None:
        on_level(t, state, log_w)
    while True:
        ell = log_ratio(out.state)
        nxt = levels.next(len(out.levels), t, beta, out.log_w, ell)
        if nxt is None:
            break
        t1, beta1 = nxt
        before, reweight = out.log_w, (beta1 - beta) * ell
        out.log_w = out.log_w + reweight
        out.state = density.retemper(out.state, beta1)
        if transport is not None:
            out.state, dw, ok = _transport(density, transport, out.state, t, t1, beta1,
                                           generator)  # fmt: skip
            n_bad = int((~ok).sum())
            if n_bad:
                out.bad_steps, out.folded = out.bad_steps + n_bad, (*out.folded, len(out.levels))
            out.log_w = torch.where(ok, out.log_w + dw, -math.inf)
            total = torch.where(torch.isfinite(before), out.log_w - before, 0.0)  # with T
            out.transport_cess.append((float(log_conditional_ess(before, reweight)),
                                       float(log_conditional_ess(before, total))))  # fmt: skip
        out.ess.append(float(ess_of_weights(out.log_w)))
        if resample is not None and resample.threshold > 0:
            out.state, out.log_w, inc, count = resample(out.state, out.log_w, generator)
            out.log_z, out.resamplings = out.log_z + inc, out.resamplings + count
        step = moves(density, out.state, out.log_w, t, t1, beta1, len(out.levels), generator)
        out.state = step.state
        out.acceptance += [(t1, a) for a in step.acceptance]
        out.correlation.append(step.correlation)
        out.moved.append(step.moved)
        out.levels.append(Level(t1, beta1, metrics.keep(step.metric), step.step_sizes))
        t, beta = t1, beta1
        if on_level is not None:
            on_level(t, out.state, out.log_w)
    return out


# --- the path's base p_0 ------------------------------------------------------------------


class _TorchBase(TorchDistribution):
    """A ``torch.distributions`` base with log p_0 = -inf outside its support (where torch
    would raise with ``validate_args``), so that moves may propose there and be rejected."""

    def log_prob(self, x: Tensor) -> Tensor:
        try:
            inside = self.dist.support.check(x).reshape(x.shape[0], -1).all(1)
        except NotImplementedError:  # a support torch cannot check: leave it to torch
            return super().log_prob(x)
        lp = torch.full(x.shape[:1], -math.inf, dtype=x.dtype, device=x.device)
        if bool(inside.any()):
            lp = lp.index_put((inside,), super().log_prob(x[inside]).to(x.dtype))
        return lp


def resolve_base(
    target: Any, base: Any, base_scale: float | None, dtype: Any, *, transport: bool = False
) -> Any:
    """The annealing path's p_0: ``base`` (anything with sample(n, generator) and log_prob,
    or a torch.distributions.Distribution), N(0, base_scale^2 I), or ``target.base``
    (``transport``: the target's ``transport_base``, the base of learned transports, which
    is its ``base`` unless that is a heavy-tailed prior; NETS, flow-MCMC)."""
    if isinstance(base, Tensor):
        raise ValueError(
            "base must be a distribution with a density (sample(n, generator) and log_prob), "
            "not a tensor of samples: e.g. interpolants.distributions.DiagonalNormal(mean, std)"
        )
    if isinstance(base, torch.distributions.Distribution):
        base = _TorchBase(base)
    if base is not None and base_scale is not None:
        raise ValueError("give base or base_scale, not both")
    if base_scale is not None:
        if not (isinstance(base_scale, (int, float)) and base_scale > 0):
            raise ValueError(f"base_scale must be a positive number, got {base_scale!r}")
        zeros = torch.zeros(target.dim, dtype=dtype or torch.get_default_dtype())
        return DiagonalNormal(zeros, float(base_scale))
    if base is None:
        base = (getattr(target, "transport_base", None) if transport else None) or target.base
    if not (callable(getattr(base, "sample", None)) and callable(getattr(base, "log_prob", None))):
        raise ValueError("base must have sample(n, generator) and log_prob(x)")
    return base


def base_sample(base: Any, m: int, generator: torch.Generator, dtype: Any) -> Tensor:
    """m draws of the base, in ``dtype`` when given."""
    x = base.sample(m, generator)
    return x.to(dtype) if dtype is not None else x
