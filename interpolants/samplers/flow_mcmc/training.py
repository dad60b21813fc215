"""The training phase of flow-MCMC: MALA warm-up, then rounds of local moves, one global
move through the current transport and fitting steps (arXiv:2105.12603, arXiv:2107.08001)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..adaptation import MASS_MATRICES, window_adaptation
from ..api import initial_positions
from ..hmc import (
    CountedDensity,
    GaussianMetric,
    Kernel,
    State,
    check_fraction,
    check_initial,
    check_int,
    make_generator,
    progress_bar,
)
from ..mala import mala
from .moves import global_move, walker_rows
from .transport import DefensiveMixture, Transport, make_transport

__all__ = ["DEFAULT_CHAINS", "TrainedTransport", "train_transport"]


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


def train_transport(
    target: Any,
    init: Tensor | None = None,
    seed: int = 0,
    *,
    transport: str | Transport = "coupling",
    transport_options: dict | None = None,
    base: Any = None,
    chains: int | None = None,
    warmup: int = 200,
    local_steps: int = 5,
    train_steps: int = 5,
    batch_size: int = 256,
    buffer: int = 20,
    anchors: int | None = None,
    defensive: float = 0.0,
    defensive_scale: float = 1.0,
    max_rounds: int = 500,
    min_rounds: int = 50,
    plateau_window: int = 25,
    plateau_tol: float = 0.05,
    step_size: float | None = None,
    target_accept: float = 0.574,
    mass_matrix: str | Tensor = "diag",
    dtype: torch.dtype | None = None,
    progress: bool = False,
    generator: torch.Generator | None = None,
) -> TrainedTransport:
    r"""The training phase of flow-MCMC: MALA warm-up, then rounds of ``local_steps`` MALA
    moves, one global move through the current transport, and ``train_steps`` fitting steps
    on minibatches of the training data's last ``buffer`` rounds of positions.

    Training data (stratified anchors, the default): ``anchors`` extra walkers (default as many
    as the walkers) start as copies of the walkers' starting points, in turn, so that every
    initial mode holds the same number of them; they make the local MALA moves and global moves
    restricted to their own mode's basin (a proposal is open to an anchor of group k only if
    it is most likely under group k's Gaussian, fitted once to the anchors after the warm-up),
    and their positions are the transport's training data. The transport thus learns every
    initial mode with equal mass, whatever their weights, the anchors explore their modes
    faster than by MALA once the transport is good, and the walkers' global moves (exact MH)
    correct the weights. Training on the walkers themselves
    (``anchors=0``, the papers' scheme) collapses when a light mode holds few walkers: the
    global moves first carry them to the heavy mode, the flow then forgets the light mode and
    nothing brings walkers back (radial_velocity: weight 1.000 for a mode of weight 0.919).
    The anchors cost ``local_steps + 1`` evaluations each per round, and only during
    training; production runs on the walkers alone.

    ``defensive`` = lam > 0 mixes the transport with one Gaussian per initial mode fitted to
    its anchors (:class:`DefensiveMixture`): a second, explicit guarantee of coverage, and a
    good proposal where the modes are nearly Gaussian; lam = 0 (default) keeps the pure
    transport (a Gaussian in R^d is no proposal for, e.g., the particles on the torus, and
    needs n_k >> d anchor positions per mode). On phi4_1d (d = 100) lam = 0.8 raised the
    global acceptance from 0.02 to 0.20 (benchmarks/RESULTS_flow_mcmc.md).

    Stopping (the acceptance plateau): after ``min_rounds`` rounds, training stops at the
    first round where the mean global acceptance a_new over the last ``plateau_window``
    rounds exceeds that of the window before, a_old, by less than the fraction
    ``plateau_tol`` of it, a_new - a_old < plateau_tol max(a_old, 1e-3) (a relative test: a
    rise from 0.01 to 0.02 is no plateau); else at ``max_rounds``.
    See :func:`run_flow_mcmc` for the arguments.
    """
    warmup, local_steps = check_int("warmup", warmup, 0), check_int("local_steps", local_steps, 0)
    train_steps, batch_size = (
        check_int("train_steps", train_steps, 0),
        check_int("batch_size", batch_size),
    )
    buffer, max_rounds = check_int("buffer", buffer), check_int("max_rounds", max_rounds, 0)
    min_rounds, plateau_window = (
        check_int("min_rounds", min_rounds, 0),
        check_int("plateau_window", plateau_window),
    )
    target_accept = check_fraction("target_accept", target_accept)
    if anchors is not None:
        anchors = check_int("anchors", anchors, 0)
    if (
        isinstance(defensive, bool)
        or not isinstance(defensive, (int, float))
        or not (0 <= defensive <= 1)
    ):
        raise ValueError(f"defensive must be a number in [0, 1], got {defensive!r}")
    if isinstance(defensive_scale, bool) or not (
        isinstance(defensive_scale, (int, float)) and defensive_scale > 0
    ):
        raise ValueError(f"defensive_scale must be a positive number, got {defensive_scale!r}")
    if not isinstance(plateau_tol, (int, float)) or plateau_tol < 0:
        raise ValueError(f"plateau_tol must be a number >= 0, got {plateau_tol!r}")
    if step_size is not None and not (isinstance(step_size, (int, float)) and step_size > 0):
        raise ValueError(f"step_size must be a positive number or None, got {step_size!r}")
    if isinstance(mass_matrix, str) and mass_matrix not in MASS_MATRICES:
        raise ValueError(
            f"mass_matrix must be one of {MASS_MATRICES} or a tensor, got {mass_matrix!r}"
        )
    if transport_options is not None and not isinstance(transport_options, dict):
        raise ValueError(
            f"transport_options must be a dict, got {type(transport_options).__name__}"
        )
    base = target.base if base is None else base
    if not (callable(getattr(base, "sample", None)) and callable(getattr(base, "log_prob", None))):
        raise ValueError("base must have sample(n, generator) and log_prob(x)")
    generator = make_generator(seed) if generator is None else generator
    density = CountedDensity(target)
    x0, groups = _walkers(target, chains, init, dtype, generator)
    M = x0.shape[0]
    model = make_transport(
        transport, target.dim, base, x0.dtype, dict(transport_options or {}), seed
    )
    A = (M if anchors is None else anchors) if max_rounds > 0 else 0
    if isinstance(model, DefensiveMixture):
        mixture = model
    elif defensive > 0:
        if A == 0 and max_rounds > 0:
            raise ValueError("defensive > 0 needs anchors > 0 (the Gaussians are fitted to them)")
        mixture = model = DefensiveMixture(model, defensive, defensive_scale)
    else:
        mixture = None
    # the anchors' basins: Gaussians fitted once, to the anchors after the warm-up, label the
    # proposals (most likely component); fixed, so that a group cannot drift to another mode
    labeller = DefensiveMixture(model, 0.0)
    anchor_group = torch.arange(A) % M % groups  # walker j starts at mode j % groups
    x_all = torch.cat([x0, x0[torch.arange(A) % M]]) if A else x0

    state = mala(density, 1.0).init(x_all)
    check_initial(state, density.name)
    bar = progress_bar(warmup + max_rounds, progress, "flow-mcmc training")
    adapted = window_adaptation(
        density,
        lambda eps, metric: mala(density, eps, metric),
        state,
        generator,
        warmup,
        target_accept,
        mass_matrix,
        step_size,
        callback=lambda i: bar.update(1),
    )
    kernel = mala(density, adapted.step_size, adapted.metric)
    state = adapted.state
    trace = [adapted.log_prob_trace.reshape(-1, M + A)[:, :M]]
    log_q = None

    def allow(x: Tensor) -> Tensor:
        """Walkers move anywhere; anchors only within their own mode's basin (the proposals
        most likely under their group's Gaussian), so each group explores its mode by the
        global moves too, but never leaves it."""
        ok = torch.ones(x.shape[0], dtype=torch.bool)
        if A and groups > 1:
            ok[M:] = labeller.component_log_prob(x[M:]).argmax(0) == anchor_group
        return ok

    history: list[Tensor] = []
    acc: list[float] = []
    losses: list[float] = []
    stopped_by, rounds = "max_rounds", 0
    for r in range(max_rounds):
        for _ in range(local_steps):
            state, _ = kernel.step(generator, state)
            trace.append(state.log_prob[None, :M])
        if A and not history:  # the anchors' Gaussians before the first global move
            start = [state.position[M:][anchor_group == g] for g in range(groups)]
            if groups > 1:
                labeller.refit(start)
            if mixture is not None:
                mixture.refit(start)
        if local_steps or log_q is None:
            log_q = model.log_prob(state.position).to(state.position)
        state, log_q, info = global_move(generator, state, log_q, model, density, allow)
        walkers = walker_rows(state, slice(0, M))
        trace.append(walkers.log_prob[None])
        acc.append(float(info.acceptance_rate[:M].mean()))
        data = state.position[M:] if A else walkers.position
        history = [*history[-(buffer - 1) :], data] if buffer > 1 else [data]
        pool = torch.cat(history)
        if mixture is not None and A:  # the anchors' moments over about the last half
            mixture.refit(
                [data[anchor_group == g] for g in range(groups)], memory=1 - 2 / (rounds + 3)
            )
        loss = 0.0
        for _ in range(train_steps):
            idx = torch.randint(
                pool.shape[0], (min(batch_size, pool.shape[0]),), generator=generator
            )
            loss += model.fit_step(pool[idx], generator) / train_steps
        losses.append(loss)
        rounds = r + 1
        bar.update(1)
        w = plateau_window
        if rounds >= max(min_rounds, 2 * w):
            new, old = sum(acc[-w:]) / w, sum(acc[-2 * w : -w]) / w
            if new - old < plateau_tol * max(old, 1e-3):
                stopped_by = "plateau"
                break
    bar.close()
    state = walker_rows(state, slice(0, M))
    return TrainedTransport(
        transport=model,
        state=state,
        kernel=kernel,
        step_size=adapted.step_size,
        metric=adapted.metric,
        density=density,
        acceptance_trace=torch.tensor(acc, dtype=torch.float64),
        loss_trace=torch.tensor(losses, dtype=torch.float64),
        log_prob_trace=torch.cat([t.reshape(-1, M) for t in trace]),
        rounds=rounds,
        stopped_by=stopped_by,
    )
