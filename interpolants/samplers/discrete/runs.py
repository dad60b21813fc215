r"""AIS, SMC and single-site Markov chains on discrete targets, by the one annealing engine.

The path is log pi_beta = (1 - beta) log p_0 + beta log rho* from the uniform law p_0 on
values^dim; :class:`~interpolants.samplers.annealing.AnnealedDensity` carries the single-site
log ratios where a continuous path carries gradients, and the moves are heat-bath or
Metropolis sweeps (:mod:`.moves`). AIS (Neal 2001, arXiv:physics/9803008) is the engine with
fixed levels and no resampling; SMC (Del Moral, Doucet & Jasra 2006,
arXiv:cond-mat/0212648) adds resampling and adaptive tempering (Zhou et al.,
arXiv:1303.3123); LEAPS (:mod:`.leaps`) adds a learned CTMC as the transport.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..annealing import (
    AdaptiveTempering,
    Annealed,
    AnnealedDensity,
    Resampler,
    TimeGrid,
    Transport,
    anneal,
)
from ..api import chain_result, default_chains, warn_unconverged
from ..base import CountedDensity, MethodConfig, State, check_fraction, check_int, make_generator
from ..diagnostics import ess_of_weights, log_mean_exp, log_Z_from_weights, log_Z_over_batches
from ..info import AnnealingInfo, SiteChainInfo
from ..result import SampleResult
from .moves import KINDS, SiteMoves, sweep

__all__ = [
    "DiscreteAISConfig",
    "DiscreteSMCConfig",
    "Populations",
    "SiteMCMCConfig",
    "anneal_discrete",
    "check_discrete",
    "is_discrete",
    "run_discrete_ais",
    "run_discrete_smc",
    "run_site_mcmc",
]


def is_discrete(target: Any) -> bool:
    """Whether ``target`` is a discrete one (values and single-site log ratios)."""
    return hasattr(target, "log_prob_and_ratios") and hasattr(target, "values")


def check_discrete(target: Any, method: str) -> None:
    """A ValueError naming ``target`` unless it is discrete."""
    if not is_discrete(target):
        raise ValueError(
            f"target must be a discrete target (interpolants.targets.DiscreteTarget) for "
            f"method {method!r}, got {type(target).__name__}"
        )


def _check_move(move: Any) -> str:
    if move not in KINDS:
        raise ValueError(f"move must be one of {KINDS}, got {move!r}")
    return move


@dataclass
class DiscreteAISConfig(MethodConfig):
    r"""AIS on a discrete target (:func:`run_discrete_ais`).

    Arguments:
        steps: levels, equally spaced in beta; None: adaptive tempering (SMC).
        sweeps: heat-bath or Metropolis sweeps per level (each costs one walker-evaluation
            per colour of the target).
        move: "gibbs" (heat bath) or "metropolis".
        resample_threshold: resample a population when its ESS/N falls below this (0: never).
        batches: R independent populations of n / R walkers; log Z_hat's standard error is
            over them when R > 1 (else the delta method over walkers).
        cess: adaptive tempering's conditional ESS (``steps=None``).
        max_levels: adaptive tempering's cap on the levels.
        progress: unused here (kept for the command line's common options).
    """

    steps: int | None = 100
    sweeps: int = 1
    move: str = "gibbs"
    resample_threshold: float = 0.0
    batches: int = 1
    cess: float = 0.9
    max_levels: int = 1000
    method: ClassVar[str] = "ais"

    def __post_init__(self) -> None:
        if self.steps is not None:
            self.steps = check_int("steps", self.steps)
        self.sweeps = check_int("sweeps", self.sweeps, 0)
        self.move = _check_move(self.move)
        if not (isinstance(self.resample_threshold, (int, float)) and
                0 <= self.resample_threshold <= 1):  # fmt: skip
            raise ValueError(
                f"resample_threshold must be in [0, 1], got {self.resample_threshold!r}"
            )
        self.batches = check_int("batches", self.batches)
        self.cess = check_fraction("cess", self.cess)
        self.max_levels = check_int("max_levels", self.max_levels)

    def levels(self) -> Any:
        """The engine's levels: a uniform grid in beta, or adaptive tempering."""
        if self.steps is None:
            return AdaptiveTempering(self.cess, self.max_levels)
        return TimeGrid(torch.linspace(0, 1, self.steps + 1, dtype=torch.float64))


@dataclass
class DiscreteSMCConfig(DiscreteAISConfig):
    """SMC on a discrete target: :class:`DiscreteAISConfig` with adaptive tempering,
    resampling at ESS/N < 0.5, 5 sweeps per level and 10 independent batches by default."""

    steps: int | None = None
    sweeps: int = 5
    resample_threshold: float = 0.5
    batches: int = 10
    method: ClassVar[str] = "smc"


@dataclass
class Populations:
    """R annealed populations: their walkers, log weights and log Z_hat per population."""

    runs: list[Annealed]
    log_z: Tensor  # (R,) float64
    samples: Tensor
    log_weights: Tensor  # (n,) with log mean exp = log Z_hat


def anneal_discrete(
    target: Any,
    density: CountedDensity,
    n: int,
    batches: int,
    generator: torch.Generator,
    levels: Any,
    moves: Any,
    resample_threshold: float,
    transport: Transport | None = None,
    on_level: Callable[[float, Any, Tensor], None] | None = None,
    dtype: torch.dtype | None = None,
) -> Populations:
    """Anneal ``batches`` populations of n / batches uniform walkers to the target with the
    engine: all at once on fixed levels (independent populations, resampled apart), in turn
    under adaptive tempering (whose levels depend on the walkers)."""
    if n % batches:
        raise ValueError(f"n ({n}) must be a multiple of batches ({batches})")
    m = n // batches
    annealed = AnnealedDensity(density, target.base)
    together = isinstance(levels, TimeGrid)
    runs = []
    for _ in range(1 if together else batches):
        x = target.base.sample(n if together else m, generator)
        x = x.to(dtype) if dtype is not None else x
        groups = batches if together else 1
        runs.append(anneal(annealed, annealed.state(x, 0.0), levels, moves, generator,
                           transport=transport, resample=Resampler(resample_threshold, groups),
                           on_level=on_level))  # fmt: skip
    log_z = torch.cat([r.log_z + log_mean_exp(r.log_w.view(r.log_z.numel(), -1), -1)
                       for r in runs])  # fmt: skip
    log_w = torch.cat([r.log_w.view(r.log_z.numel(), -1) for r in runs])  # (R, m)
    log_weights = (log_z[:, None] + torch.log_softmax(log_w, -1) + math.log(m)).flatten()
    samples = torch.cat([r.state.position for r in runs])
    return Populations(runs, log_z, samples, log_weights)


def population_result(
    pops: Populations, method: str, density: CountedDensity, info: Any
) -> SampleResult:
    """The weighted walkers of R populations with log Z_hat and its standard error: over the
    populations when R > 1, else by the delta method over walkers (None after resampling,
    which makes the walkers dependent)."""
    batches = pops.log_z.numel()
    resampled = sum(r.resamplings for r in pops.runs)
    if batches > 1:
        log_Z, stderr = log_Z_over_batches(pops.log_z)
        groups = torch.arange(batches).repeat_interleave(pops.samples.shape[0] // batches)
    else:
        log_Z, se = log_Z_from_weights(pops.log_weights)
        stderr, groups = (None if resampled else se), None
    return SampleResult(
        samples=pops.samples,
        method=method,
        log_weights=pops.log_weights,
        log_Z=log_Z,
        log_Z_stderr=stderr,
        ess=float(ess_of_weights(pops.log_weights)),
        evaluations=density.evaluations,
        acceptance_rate=_mean([a for r in pops.runs for _, a in r.acceptance]),
        groups=groups,
        info=info,
    )


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def annealing_info(pops: Populations, c: DiscreteAISConfig, name: str, m: int) -> dict:
    """The fields of :class:`~..info.AnnealingInfo` of a discrete run (first population's
    traces)."""
    first = pops.runs[0]
    batches = pops.log_z.numel()
    return dict(
        target=name,
        kernel=c.move,
        moves=c.sweeps,
        levels=sum(len(r.levels) for r in pops.runs) / len(pops.runs),
        pilot=False,
        temperatures=torch.tensor([0.0] + [lv.beta for lv in first.levels]),
        ess_per_level=torch.tensor(first.ess, dtype=torch.float64),
        acceptance_per_move=torch.tensor([a for _, a in first.acceptance], dtype=torch.float64),
        step_size_per_move=torch.zeros(0),
        correlation_per_level=torch.tensor(
            [math.nan if v is None else v for v in first.correlation], dtype=torch.float64
        ),
        batches=batches if batches > 1 else None,
        walkers_per_batch=m if batches > 1 else None,
        resampling_steps=sum(r.resamplings for r in pops.runs),
        log_Z_batches=pops.log_z if batches > 1 else None,
    )


def _run_annealing(
    target: Any, n: int, seed: int, c: DiscreteAISConfig, dtype: Any
) -> SampleResult:
    n = check_int("n", n)
    density = CountedDensity(target)
    generator = make_generator(seed)
    moves = SiteMoves(c.sweeps, target.colours, target.values, c.move)
    pops = anneal_discrete(target, density, n, c.batches, generator, c.levels(), moves,
                           c.resample_threshold, dtype=dtype)  # fmt: skip
    info = AnnealingInfo(**annealing_info(pops, c, density.name, n // c.batches))
    return population_result(pops, c.method, density, info)


def _no_init(init: Any, method: str) -> None:
    if init is not None:
        raise ValueError(f"init is not taken by method {method!r}: its walkers start uniform")


def run_discrete_ais(
    target: Any,
    n: int = 1000,
    seed: int = 0,
    init: None = None,
    *,
    config: DiscreteAISConfig | None = None,
    dtype: torch.dtype | None = None,
    progress: bool = False,
    **options: Any,
) -> SampleResult:
    r"""Annealed importance sampling on a discrete target: n uniform walkers, levels
    beta_k = k / steps, log w += (beta_k - beta_{k-1}) log rho*(x) before each level's
    sweeps (Neal 2001, arXiv:physics/9803008); log Z_hat = log mean exp(log w).

    Arguments:
        target: a :class:`~interpolants.targets.DiscreteTarget` (Ising, Potts, your own).
        n, seed: walkers and the seed of the run's generator.
        init: must be None (the walkers start from the uniform law).
        config: a :class:`DiscreteAISConfig`; ``options`` replace its fields.
        dtype: the walkers' dtype.
        progress: unused (the run is one loop over levels).
    """
    check_discrete(target, "ais")
    _no_init(init, "ais")
    return _run_annealing(target, n, seed, DiscreteAISConfig.resolve(config, options), dtype)


def run_discrete_smc(
    target: Any,
    n: int = 1000,
    seed: int = 0,
    init: None = None,
    *,
    config: DiscreteSMCConfig | None = None,
    dtype: torch.dtype | None = None,
    progress: bool = False,
    **options: Any,
) -> SampleResult:
    r"""Sequential Monte Carlo on a discrete target: :func:`run_discrete_ais` with
    systematic resampling, adaptive tempering and R independent batches by default
    (:class:`DiscreteSMCConfig`)."""
    check_discrete(target, "smc")
    _no_init(init, "smc")
    return _run_annealing(target, n, seed, DiscreteSMCConfig.resolve(config, options), dtype)


@dataclass
class SiteMCMCConfig(MethodConfig):
    """Parallel single-site chains on a discrete target (:func:`run_site_mcmc`).

    Arguments:
        chains: parallel chains (default: as for MALA, from n).
        warmup: sweeps discarded per chain.
        thin: sweeps per kept draw.
        move: "metropolis" or "gibbs" (heat bath).
    """

    chains: int | None = None
    warmup: int = 500
    thin: int = 1
    move: str = "metropolis"
    method: ClassVar[str] = "metropolis"

    def __post_init__(self) -> None:
        if self.chains is not None:
            self.chains = check_int("chains", self.chains)
        self.warmup = check_int("warmup", self.warmup, 0)
        self.thin = check_int("thin", self.thin)
        self.move = _check_move(self.move)


def run_site_mcmc(
    target: Any,
    n: int = 1000,
    seed: int = 0,
    init: Tensor | None = None,
    *,
    config: SiteMCMCConfig | None = None,
    dtype: torch.dtype | None = None,
    progress: bool = False,
    **options: Any,
) -> SampleResult:
    r"""Parallel Markov chains of single-site sweeps (Metropolis et al. 1953, or the heat
    bath), a whole colour of the target's sites at a time; n pooled draws after ``warmup``
    sweeps, with R-hat and ESS as for MALA.

    Arguments:
        target: a :class:`~interpolants.targets.DiscreteTarget`.
        n, seed: draws returned and the seed.
        init: (chains, dim) starting states with entries among ``target.values``; None:
            uniform draws.
        config: a :class:`SiteMCMCConfig`; ``options`` replace its fields.
    """
    check_discrete(target, "metropolis")
    c = SiteMCMCConfig.resolve(config, options)
    n = check_int("n", n)
    density = CountedDensity(target)
    generator = make_generator(seed)
    if init is not None:
        x = torch.as_tensor(init, dtype=dtype or target.values.dtype)
        if x.ndim != 2 or x.shape[1] != target.dim:
            raise ValueError(f"init must have shape (chains, {target.dim}), got {tuple(x.shape)}")
        if not bool(torch.isin(x, target.values.to(x.dtype)).all()):
            raise ValueError(f"init must hold only the values {target.values.tolist()}")
    else:
        x = target.base.sample(c.chains or default_chains(n), generator)
        x = x.to(dtype) if dtype is not None else x
    chains = x.shape[0]
    per_chain = math.ceil(n / chains)

    def evaluate(y: Tensor) -> State:
        ev = density(y)
        return State(y, ev.log_prob, ev.grad)

    state = evaluate(x)
    trace, draws, acc = [], [], []
    for i in range(c.warmup + per_chain * c.thin):
        state, a = sweep(evaluate, state, target.colours, target.values, c.move, generator)
        trace.append(state.log_prob)
        if i >= c.warmup:
            acc.append(a)
            if (i - c.warmup + 1) % c.thin == 0:
                draws.append(state.position)
    info = SiteChainInfo(
        target=density.name, chains=chains, draws_per_chain=per_chain, thin=c.thin,
        step_size=math.nan, move=c.move, warmup=c.warmup,
        sweep_evaluations=len(target.colours),
        draw_acceptance=torch.tensor(acc, dtype=torch.float64)
        .reshape(per_chain, c.thin).mean(1)[:, None].expand(per_chain, chains),
    )  # fmt: skip
    result = chain_result(torch.stack(draws), n, c.method, density, _mean(acc) or 1.0,
                          torch.stack(trace), info)  # fmt: skip
    result = dataclasses.replace(result, method="metropolis")
    return warn_unconverged(result, density.name, per_chain)


run_discrete_ais.config_class = DiscreteAISConfig  # type: ignore[attr-defined]
run_discrete_smc.config_class = DiscreteSMCConfig  # type: ignore[attr-defined]
run_site_mcmc.config_class = SiteMCMCConfig  # type: ignore[attr-defined]
