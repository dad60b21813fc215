"""NETS's walkers: the path, the sampling run on the annealing engine (:func:`simulate`),
time grids and how the populations of a resampled run combine into log Z."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ...checks import positive_number as check_positive
from ...distributions import DiagonalNormal
from ...divergence import heun_step
from ..annealing import AdaptiveMoves, AnnealedDensity, LangevinMoves, Resampler, TimeGrid, anneal
from ..base import State, make_generator
from ..diagnostics import log_mean_exp
from .model import TARGET_ACCEPT, NETSModel, schedule, schedule_time

__all__ = [
    "NETSPath",
    "OnDevice",
    "Trajectory",
    "base_on",
    "combine_batches",
    "eps_function",
    "record_walkers",
    "refine_grid",
    "simulate",
    "time_grid",
]


class OnDevice:
    """A base density used on ``device``: its samples are moved there and its log density is
    evaluated where the base lives (autograd carries the gradient across devices)."""

    def __init__(self, base: Any, device: torch.device):
        self.base, self.device = base, device
        self.home = base.sample(1, make_generator(0)).device

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return self.base.sample(n, generator).to(self.device)

    def log_prob(self, x: Tensor) -> Tensor:
        return self.base.log_prob(x.to(self.home)).to(x.device)


def base_on(base: Any, device: torch.device | None) -> Any:
    """The base on ``device``: a DiagonalNormal is moved, any other base is wrapped."""
    if device is None:
        return base
    if isinstance(base, DiagonalNormal):
        return DiagonalNormal(base.mean.to(device), base.std.to(device))
    return OnDevice(base, device)


@dataclass
class NETSPath:
    """The annealed path of NETS: the counted target and base (:class:`~.annealing.
    AnnealedDensity`) and the schedule beta_t (:func:`schedule`, ``kind`` and ``power``)."""

    annealed: AnnealedDensity
    kind: str
    power: float

    def beta(self, t: float) -> tuple[float, float]:
        b, db = schedule(torch.tensor(t, dtype=torch.float64), self.kind, self.power)
        return float(b), float(db)

    def time(self, beta: float) -> float:
        """The time t of temperature beta on this path (:func:`schedule_time`)."""
        return schedule_time(beta, self.kind, self.power)

    def state(self, x: Tensor, beta: float, parts: tuple[Tensor, ...] | None = None) -> State:
        """Walkers x with log pi_beta, its gradient and (log p_0, log rho*, grads) as aux."""
        return self.annealed.state(x, beta, parts)


class Trajectory(NamedTuple):
    """Walkers after a run: final state, log weights A_1 (float64), per-step records of
    (t, x, log rho* - log p_0, grad log p_0, grad log rho*, A_t) and MALA acceptances."""

    state: State
    log_w: Tensor
    records: list[tuple[float, Tensor, Tensor, Tensor, Tensor, Tensor]]
    acceptance: list[tuple[float, float]]
    bad_steps: int
    log_z: Tensor | None = None
    resamplings: int = 0
    step_sizes: tuple[float, ...] = ()
    folded: tuple[int, ...] = ()  # indices k of the steps with a non-invertible walker
    transport_cess: tuple[tuple[float, float], ...] = ()  # log CESS without / with b, per step


def simulate(
    path: NETSPath,
    model: NETSModel | None,
    x: Tensor,
    grid: Tensor,
    eps: Callable[[float], float],
    generator: torch.Generator,
    *,
    exact: bool = True,
    probes: int = 1,
    moves: int = 1,
    record: bool = False,
    resample_threshold: float = 0.0,
    groups: int = 1,
    mass_matrix: str = "identity",
    adapt: bool = False,
) -> Trajectory:
    r"""Move walkers x ~ p_0 along ``grid`` (0 = t_0 < ... < t_K = 1) by the split steps of
    the module docstring (annealing, Heun transport by b, MALA at eps_t): the annealing
    engine :func:`~.annealing.anneal` with the Heun map of b as its transport; b = 0 when
    ``model`` is None (then this is AIS with MALA moves of step size sqrt(2 eps_t h)).

    With ``resample_threshold`` r > 0 the walkers form ``groups`` independent populations of
    equal size (consecutive rows); whenever ESS/N of a population's weights falls below r after
    the transport (before the MALA move), its log mean exp(A) is added to its ``log_z`` and it is
    resampled (systematic) with A reset to 0, as in SMC (Del Moral et al.,
    arXiv:cond-mat/0212648): exp(log_z) mean exp(A_1) per population is still an unbiased
    estimate of Z.

    ``mass_matrix="diag"`` preconditions the MALA moves by the walkers' (unweighted) variance
    at each step, ``adapt=True`` replaces the step size sqrt(2 eps_t h) by one found at t = 0
    (doubling until the acceptance crosses 1/2) and then retuned after every move,
    step <- step exp(2 (acceptance - 0.574)): the moves of :func:`~.ais.run_ais`, so that with
    b = 0 and the linear schedule this is that AIS run. Either keeps every move exact for
    pi_t, so the weights are unchanged; eps only has to be > 0 where moves are made."""
    if adapt:
        mover: Any = AdaptiveMoves(moves, TARGET_ACCEPT, mass_matrix,
                                   active=lambda t: eps(t) > 0)  # fmt: skip
    else:
        mover = LangevinMoves(eps, moves, mass_matrix)
    transport = None
    if model is not None:

        def transport(t0: float, t1: float, y: Tensor) -> tuple[Tensor, Tensor]:
            return heun_step(model, t0, t1, y, exact, probes, generator)

    records: list[tuple[float, Tensor, Tensor, Tensor, Tensor, Tensor]] = []

    def keep(t: float, state: State, log_w: Tensor) -> None:
        records.append(record_walkers(t, state, log_w))

    run = anneal(
        path.annealed, path.state(x, 0.0), TimeGrid(grid, lambda t: path.beta(t)[0]), mover,
        generator, transport=transport, resample=Resampler(resample_threshold, groups),
        on_level=keep if record else None,
    )  # fmt: skip
    sizes = tuple(e for level in run.levels for e in level.step_sizes)
    return Trajectory(run.state, run.log_w, records, run.acceptance, run.bad_steps, run.log_z,
                      run.resamplings, sizes, run.folded, tuple(run.transport_cess))  # fmt: skip


def record_walkers(t: float, state: State, log_w: Tensor) -> tuple[float, Tensor, ...]:
    """What training keeps of walkers at time t: (t, x, log rho* - log p_0, grad log p_0,
    grad log rho*, log w)."""
    lp0, lp1, g0, g1 = state.aux
    return (t, state.position, (lp1 - lp0), g0, g1, log_w.clone())


def refine_grid(grid: Tensor, steps: list[int] | tuple[int, ...]) -> Tensor:
    """``grid`` with the midpoint of each interval [t_k, t_{k+1}], k in ``steps``, added."""
    mids = [0.5 * (grid[k] + grid[k + 1]) for k in sorted(set(steps))]
    return torch.sort(torch.cat([grid, torch.stack(mids)]))[0] if mids else grid


def time_grid(steps: int, generator: torch.Generator | None = None) -> Tensor:
    """0, then K points (k + u) / (K + 1) with one random shift u (or u = 1/2), then... 1."""
    if generator is None:
        return torch.linspace(0, 1, steps + 1, dtype=torch.float64)
    u = float(torch.rand((), generator=generator, dtype=torch.float64))
    inner = (torch.arange(steps - 1, dtype=torch.float64) + u) / (steps - 1)
    return torch.cat(
        [torch.zeros(1, dtype=torch.float64), inner, torch.ones(1, dtype=torch.float64)]
    )


def combine_batches(traj: Trajectory, batches: int) -> tuple[Tensor, float, float | None, Tensor]:
    """R resampled populations of m walkers: log weights log Z_r + log m softmax(A_r) (so that
    log mean exp is log Z_hat = log mean_r Z_r), log Z_hat, the delta-method error over the
    populations (None when R = 1) and the population of every walker."""
    lw = traj.log_w.cpu().view(batches, -1)
    log_z = traj.log_z.cpu() + log_mean_exp(lw, -1)
    m = lw.shape[1]
    log_w = (log_z[:, None] + torch.log_softmax(lw, -1) + math.log(m)).flatten()
    z = (log_z - log_z.max()).exp()
    stderr = float(z.std() / (math.sqrt(batches) * z.mean())) if batches > 1 else None
    groups = torch.arange(batches).repeat_interleave(m)
    return log_w, float(log_mean_exp(log_z, 0)), stderr, groups


def eps_function(model: NETSModel | None, eps: Any, scale: float) -> Callable[[float], float]:
    if eps is None:
        if model is None:
            raise ValueError("eps=None uses the trained eps_t; without a model pass eps=")
        return lambda t: scale * model.eps(t)
    if callable(eps):
        return lambda t: scale * float(eps(t))
    e = check_positive("eps", eps, allow_zero=True)
    return lambda t: scale * e
