"""The training phase of flow-MCMC: MALA warm-up, then rounds of local moves, one global
move through the current transport and fitting steps (arXiv:2105.12603, arXiv:2107.08001).

The public entry point, with the full description, is :func:`~.runner.train_transport`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..adaptation import AdaptationResult, window_adaptation
from ..annealing import resolve_base
from ..api import initial_positions
from ..base import (
    CountedDensity,
    GaussianMetric,
    Kernel,
    State,
    check_initial,
    make_generator,
    progress_bar,
)
from ..mala import mala
from .config import FlowMCMCConfig
from .moves import global_move, walker_rows
from .transport import DefensiveMixture, Transport, make_transport

__all__ = ["DEFAULT_CHAINS", "TrainedTransport", "fit_transport"]


@dataclass
class TrainedTransport:
    """What :func:`train_transport` hands on: the frozen transport, the walkers' state, the
    local kernel, and the training diagnostics."""

    transport: Transport
    state: State
    kernel: Kernel
    step_size: float
    metric: GaussianMetric | None
    density: CountedDensity
    acceptance_trace: Tensor  # (rounds,) mean global acceptance per training round
    loss_trace: Tensor  # (rounds,) mean training loss per round
    log_prob_trace: Tensor  # (iterations, chains), warm-up and training
    rounds: int
    stopped_by: str


DEFAULT_CHAINS = 64


def _walkers(
    target: Any, chains: int | None, init: Tensor | None, dtype: Any, generator: torch.Generator
) -> tuple[Tensor, int]:
    """Walkers from ``init``: (chains, dim) as given; k < chains rows (the mode locations) are
    repeated in turn to fill ``chains``; rows of width 1 are broadcast over the dimensions.
    Also returns the number of groups: k in the second case (walker j starts at mode j % k),
    else 1."""
    if init is None:
        x = initial_positions(
            target, chains, DEFAULT_CHAINS if chains is None else chains, None, dtype, generator
        )
        return x, 1
    init = torch.as_tensor(init)
    if init.ndim == 2 and init.shape[1] == 1 and target.dim > 1:
        init = init.expand(-1, target.dim)
    if chains is None and init.ndim == 2 and init.shape[0] < DEFAULT_CHAINS:
        chains = DEFAULT_CHAINS  # a few mode locations: fill the default number of walkers
    groups = 1
    if init.ndim == 2 and chains is not None and 1 <= init.shape[0] < chains:
        groups = init.shape[0]
        init = init[torch.arange(chains) % init.shape[0]]
    return initial_positions(target, chains, 1, init, dtype, generator), groups


@dataclass
class _Anchors:
    """The training data's walkers: ``count`` anchors after the ``walkers`` walkers, anchor i
    in initial mode ``group[i]``, and the Gaussians fitted to them (``labeller``: the modes'
    basins, fitted once; ``mixture``: the defensive mixture, refitted every round)."""

    count: int
    walkers: int
    groups: int
    group: Tensor
    labeller: DefensiveMixture
    mixture: DefensiveMixture | None

    def allow(self, x: Tensor) -> Tensor:
        """Walkers move anywhere; anchors only within their own mode's basin (the proposals
        most likely under their group's Gaussian), so each group explores its mode by the
        global moves too, but never leaves it."""
        ok = torch.ones(x.shape[0], dtype=torch.bool)
        if self.count and self.groups > 1:
            m = self.walkers
            ok[m:] = self.labeller.component_log_prob(x[m:]).argmax(0) == self.group
        return ok

    def by_group(self, x: Tensor) -> list[Tensor]:
        """The anchors' positions ``x`` (count, dim), one tensor per initial mode."""
        return [x[self.group == g] for g in range(self.groups)]

    def fit_start(self, x: Tensor) -> None:
        """The anchors' Gaussians before the first global move: the basins (fixed, so that a
        group cannot drift to another mode) and the defensive mixture's first fit."""
        start = self.by_group(x)
        if self.groups > 1:
            self.labeller.refit(start)
        if self.mixture is not None:
            self.mixture.refit(start)

    def refit(self, x: Tensor, rounds: int) -> None:
        """The defensive mixture from the anchors' moments over about the last half of the
        rounds."""
        if self.mixture is not None and self.count:
            self.mixture.refit(self.by_group(x), memory=1 - 2 / (rounds + 3))


def _anchors(
    model: Transport, c: FlowMCMCConfig, walkers: int, groups: int
) -> tuple[Transport, _Anchors]:
    """The transport to train (wrapped in a :class:`DefensiveMixture` when ``defensive`` > 0)
    and the anchors (none when there is no training)."""
    count = (walkers if c.anchors is None else c.anchors) if c.max_rounds > 0 else 0
    if isinstance(model, DefensiveMixture):
        mixture = model
    elif c.defensive > 0:
        mixture = model = DefensiveMixture(model, c.defensive, c.defensive_scale)
    else:
        mixture = None
    group = torch.arange(count) % walkers % groups  # walker j starts at mode j % groups
    labeller = DefensiveMixture(model, 0.0)
    return model, _Anchors(count, walkers, groups, group, labeller, mixture)


@dataclass
class _Training:
    """The training rounds' running state: walkers and anchors, log q at their positions,
    the buffer of training positions, and the per-round traces."""

    c: FlowMCMCConfig
    density: CountedDensity
    kernel: Kernel
    model: Transport
    anchors: _Anchors
    generator: torch.Generator
    state: State
    trace: list[Tensor]  # (iterations, walkers) log densities of the walkers
    log_q: Tensor | None = None
    history: list[Tensor] = field(default_factory=list)
    acc: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    rounds: int = 0

    def run(self, bar: Any) -> str:
        """Rounds until the acceptance plateau or ``max_rounds``; returns which stopped them."""
        for r in range(self.c.max_rounds):
            self.round()
            self.rounds = r + 1
            bar.update(1)
            if self.plateau():
                return "plateau"
        return "max_rounds"

    def round(self) -> None:
        """``local_steps`` MALA moves, one global move (anchors within their basins), then
        ``train_steps`` fitting steps."""
        m, gen = self.anchors.walkers, self.generator
        for _ in range(self.c.local_steps):
            self.state, _ = self.kernel.step(gen, self.state)
            self.trace.append(self.state.log_prob[None, :m])
        if self.anchors.count and not self.history:
            self.anchors.fit_start(self.state.position[m:])
        if self.c.local_steps or self.log_q is None:
            self.log_q = self.model.log_prob(self.state.position).to(self.state.position)
        self.state, self.log_q, info = global_move(
            gen, self.state, self.log_q, self.model, self.density, self.anchors.allow
        )
        walkers = walker_rows(self.state, slice(0, m))
        self.trace.append(walkers.log_prob[None])
        self.acc.append(float(info.acceptance_rate[:m].mean()))
        data = self.state.position[m:] if self.anchors.count else walkers.position
        buffer = self.c.buffer
        self.history = [*self.history[-(buffer - 1) :], data] if buffer > 1 else [data]
        self.anchors.refit(data, self.rounds)
        self.losses.append(self.fit())

    def fit(self) -> float:
        """``train_steps`` fitting steps on minibatches of the buffer; their mean loss."""
        pool, steps, loss = torch.cat(self.history), self.c.train_steps, 0.0
        for _ in range(steps):
            size = min(self.c.batch_size, pool.shape[0])
            idx = torch.randint(pool.shape[0], (size,), generator=self.generator)
            loss += self.model.fit_step(pool[idx], self.generator) / steps
        return loss

    def plateau(self) -> bool:
        """After ``min_rounds`` rounds: the mean global acceptance of the last
        ``plateau_window`` rounds, a_new, exceeds the window before's, a_old, by less than
        ``plateau_tol`` max(a_old, 1e-3)."""
        w = self.c.plateau_window
        if self.rounds < max(self.c.min_rounds, 2 * w):
            return False
        new, old = sum(self.acc[-w:]) / w, sum(self.acc[-2 * w : -w]) / w
        return new - old < self.c.plateau_tol * max(old, 1e-3)

    def result(self, adapted: AdaptationResult, stopped_by: str) -> TrainedTransport:
        """The frozen transport, the walkers (anchors dropped) and the training's traces."""
        m = self.anchors.walkers
        return TrainedTransport(
            transport=self.model,
            state=walker_rows(self.state, slice(0, m)),
            kernel=self.kernel,
            step_size=adapted.step_size,
            metric=adapted.metric,
            density=self.density,
            acceptance_trace=torch.tensor(self.acc, dtype=torch.float64),
            loss_trace=torch.tensor(self.losses, dtype=torch.float64),
            log_prob_trace=torch.cat([t.reshape(-1, m) for t in self.trace]),
            rounds=self.rounds,
            stopped_by=stopped_by,
        )


def fit_transport(
    target: Any,
    init: Tensor | None,
    seed: int,
    config: FlowMCMCConfig,
    chains: int | None = None,
    dtype: torch.dtype | None = None,
    progress: bool = False,
    generator: torch.Generator | None = None,
) -> TrainedTransport:
    """The training phase of flow-MCMC with a checked ``config``: MALA warm-up of walkers and
    anchors, then training rounds (see :func:`~.runner.train_transport`)."""
    c = config
    base = resolve_base(target, c.base, None, None, transport=True)
    generator = make_generator(seed) if generator is None else generator
    density = CountedDensity(target)
    x0, groups = _walkers(target, chains, init, dtype, generator)
    m = x0.shape[0]
    options = dict(c.transport_options or {})
    model = make_transport(c.transport, target.dim, base, x0.dtype, options, seed)
    model, anchors = _anchors(model, c, m, groups)
    x_all = torch.cat([x0, x0[torch.arange(anchors.count) % m]]) if anchors.count else x0
    state = mala(density, 1.0).init(x_all)
    check_initial(state, density.name)
    bar = progress_bar(c.warmup + c.max_rounds, progress, "flow-mcmc training")
    adapted = window_adaptation(
        density,
        lambda eps, metric: mala(density, eps, metric),
        state,
        generator,
        c.warmup,
        c.target_accept,
        c.mass_matrix,
        c.step_size,
        callback=lambda i: bar.update(1),
    )
    kernel = mala(density, adapted.step_size, adapted.metric)
    trace = [adapted.log_prob_trace.reshape(-1, x_all.shape[0])[:, :m]]
    training = _Training(c, density, kernel, model, anchors, generator, adapted.state, trace)
    stopped_by = training.run(bar)
    bar.close()
    return training.result(adapted, stopped_by)
