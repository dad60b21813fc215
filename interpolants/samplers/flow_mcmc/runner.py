"""``run_flow_mcmc``, ``run_is`` and ``train_transport``: the entry points of flow-MCMC and of
importance sampling through its transport (arXiv:2105.12603, arXiv:2107.08001)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..annealing import systematic_resample
from ..api import chain_result, register_method, warn_unconverged
from ..base import check_int, make_generator, progress_bar
from ..diagnostics import ess_of_weights, log_Z_from_weights
from ..distributed import map_rows
from ..evidence import (
    IMPORTANCE_CAUSE,
    REVERSE_WALKERS,
    count_check,
    posterior_draws,
    record_sandwich,
    sandwich,
)
from ..info import FlowMCMCInfo, ImportanceInfo
from ..result import SampleResult
from .config import FlowMCMCConfig
from .moves import global_move
from .training import TrainedTransport, fit_transport

__all__ = ["run_flow_mcmc", "run_is", "train_transport"]


def train_transport(
    target: Any,
    init: Tensor | None = None,
    seed: int = 0,
    *,
    config: FlowMCMCConfig | None = None,
    chains: int | None = None,
    dtype: torch.dtype | None = None,
    progress: bool = False,
    generator: torch.Generator | None = None,
    **options: Any,
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

    Arguments: as :func:`run_flow_mcmc`'s, less ``n``, plus ``generator`` (default one seeded
    by ``seed``); ``options`` are :class:`FlowMCMCConfig`'s fields other than ``thin`` and
    ``batches``.
    """
    c = FlowMCMCConfig.resolve(config, options, "train_transport")
    return fit_transport(target, init, seed, c, chains, dtype, progress, generator)


train_transport.config_class = FlowMCMCConfig  # type: ignore[attr-defined]


def run_flow_mcmc(
    target: Any,
    n: int = 1000,
    seed: int = 0,
    init: Tensor | None = None,
    *,
    config: FlowMCMCConfig | None = None,
    chains: int | None = None,
    dtype: torch.dtype | None = None,
    progress: bool = False,
    **options: Any,
) -> SampleResult:
    r"""Flow-MCMC (Gabrie, Rotskoff & Vanden-Eijnden): MALA plus independent MH moves through a
    transport trained on the walkers, then frozen for production (see :mod:`.flow_mcmc`).

    Every production iteration makes ``local_steps`` MALA moves and one global move
    (``local_steps + 1`` target evaluations per walker); ``thin`` iterations make a draw.

    Arguments:
        target: a :class:`~interpolants.targets.Target`.
        n: pooled production draws, ceil(n / chains) per chain.
        seed: seeds the run (walkers, moves, minibatches, the transport's initial weights).
        init: walker positions (chains, dim), or k < chains rows (the rough mode locations,
            repeated in turn), rows of width 1 broadcast over the dimensions; default draws
            from ``target.base``.
        config: the method's options as a :class:`FlowMCMCConfig` (transport, its training and
            its stopping rule, the MALA warm-up, ``thin``); ``options`` (any of its fields but
            ``batches``, e.g. ``transport="interpolant", max_rounds=100``) replace its values.
        chains: walkers M (default 64, or init's rows when it has more; fewer rows are
            repeated to fill 64).
        dtype: walker dtype (default: init's, else the base's).
        progress: show progress bars.

    Returns:
        :class:`~.result.SampleResult`; ``acceptance_rate`` is the production global
        acceptance; ``info`` is a :class:`~interpolants.samplers.info.FlowMCMCInfo`:
        ``transport`` (the frozen transport), ``training_acceptance`` (per round),
        ``global_accepted`` (draws, chains), ``local_acceptance``, ``training_rounds``,
        ``stopped_by``, ``training_evaluations``, ``training_seconds``, ...

    References:
        M. Gabrie, G. M. Rotskoff, E. Vanden-Eijnden, arXiv:2105.12603, arXiv:2107.08001.
    """
    c = FlowMCMCConfig.resolve(config, options, "flow-mcmc")
    n = check_int("n", n)
    generator = make_generator(seed)
    trained, training = _train(target, init, seed, c, chains, dtype, progress, generator)
    chain = _production(trained, n, c, progress, generator)
    info = _chain_info(trained, c, chain, training)
    log_prob_trace = torch.cat([trained.log_prob_trace, torch.stack(chain.trace)])
    acceptance = sum(chain.glob) / len(chain.glob)
    draws = torch.stack(chain.draws)
    result = chain_result(draws, n, "flow-mcmc", trained.density, acceptance, log_prob_trace, info)
    names = getattr(trained.density.target, "coordinate_names", None)
    return warn_unconverged(result, trained.density.name, draws.shape[0], names=names)


run_flow_mcmc.config_class = FlowMCMCConfig  # type: ignore[attr-defined]  # its options, for the CLI


@dataclass
class _Chain:
    """The production chain's record: draws, walkers' log densities, global moves accepted
    per draw, and the mean acceptances of the global and the local moves."""

    per_chain: int
    draws: list[Tensor] = field(default_factory=list)
    trace: list[Tensor] = field(default_factory=list)
    accepted: list[Tensor] = field(default_factory=list)
    glob: list[float] = field(default_factory=list)
    local: list[float] = field(default_factory=list)


def _production(
    trained: TrainedTransport,
    n: int,
    c: FlowMCMCConfig,
    progress: bool,
    generator: torch.Generator,
) -> _Chain:
    """The production chain with the frozen transport: every iteration ``local_steps`` MALA
    moves and one global move; every ``thin``-th makes a draw."""
    density, kernel, model, state = (
        trained.density,
        trained.kernel,
        trained.transport,
        trained.state,
    )
    chain = _Chain(math.ceil(n / state.position.shape[0]))
    log_q = model.log_prob(state.position).to(state.position)
    bar = progress_bar(chain.per_chain * c.thin, progress, "flow-mcmc production")
    for i in range(chain.per_chain * c.thin):
        for _ in range(c.local_steps):
            state, info = kernel.step(generator, state)
            chain.local.append(float(info.acceptance_rate.mean()))
        if c.local_steps:
            log_q = model.log_prob(state.position).to(state.position)
        state, log_q, info = global_move(generator, state, log_q, model, density)
        chain.glob.append(float(info.acceptance_rate.mean()))
        chain.trace.append(state.log_prob)
        if (i + 1) % c.thin == 0:
            chain.draws.append(state.position)
            chain.accepted.append(info.is_accepted)
        bar.update(1)
    bar.close()
    return chain


def _transport_kind(c: FlowMCMCConfig) -> str:
    return c.transport if isinstance(c.transport, str) else type(c.transport).__name__


def _final_acceptance(trained: TrainedTransport) -> float | None:
    """The mean global acceptance of the last 5 training rounds (None without training)."""
    return float(trained.acceptance_trace[-5:].mean()) if trained.rounds else None


def _train(
    target: Any,
    init: Tensor | None,
    seed: int,
    c: FlowMCMCConfig,
    chains: int | None,
    dtype: torch.dtype | None,
    progress: bool,
    generator: torch.Generator,
) -> tuple[TrainedTransport, dict[str, Any]]:
    """The trained transport, and the fields of its training for
    :class:`~interpolants.samplers.info.TransportInfo` (target, transport, rounds, acceptance,
    evaluations and seconds)."""
    start = time.perf_counter()
    trained = fit_transport(target, init, seed, c, chains, dtype, progress, generator)
    return trained, {
        "target": trained.density.name,
        "training_evaluations": trained.density.evaluations,
        "training_seconds": time.perf_counter() - start,
        "transport": trained.transport,
        "transport_kind": _transport_kind(c),
        "training_rounds": trained.rounds,
        "stopped_by": trained.stopped_by,
        "training_acceptance": trained.acceptance_trace,
        "final_training_acceptance": _final_acceptance(trained),
    }


def _chain_info(
    trained: TrainedTransport, c: FlowMCMCConfig, chain: _Chain, training: dict[str, Any]
) -> FlowMCMCInfo:
    """``info`` of a flow-MCMC result (see :func:`run_flow_mcmc`)."""
    metric = trained.metric
    return FlowMCMCInfo(
        **training,
        chains=trained.state.position.shape[0],
        draws_per_chain=chain.per_chain,
        thin=c.thin,
        local_steps=c.local_steps,
        step_size=trained.step_size,
        inverse_mass_matrix=None if metric is None else metric.inverse_mass_matrix,
        training_loss=trained.loss_trace,
        global_accepted=torch.stack(chain.accepted),
        global_acceptance_trace=torch.tensor(chain.glob, dtype=torch.float64),
        local_acceptance=sum(chain.local) / len(chain.local) if chain.local else None,
    )


def run_is(
    target: Any,
    n: int = 1000,
    seed: int = 0,
    init: Tensor | None = None,
    *,
    config: FlowMCMCConfig | None = None,
    chains: int | None = None,
    dtype: torch.dtype | None = None,
    progress: bool = False,
    **options: Any,
) -> SampleResult:
    r"""Importance sampling through a transport trained by flow-MCMC (the talk's estimator):

        x_i = T(x_b,i), x_b,i ~ rho_b,   log w_i = log rho*(x_i) - log q(x_i),
        log Z_hat = log mean_i w_i,   ESS / n = (sum w)^2 / (n sum w^2),

    with the delta-method standard error of :func:`~.diagnostics.log_Z_from_weights`.
    The transport is trained as in :func:`run_flow_mcmc` (same arguments and options, with
    ``batches`` in place of ``thin``) unless a trained one is passed with ``max_rounds=0``
    (then ``init`` only seeds the unused walkers). The draws are made in ``batches`` pieces
    (memory). ``evaluations`` counts the training's target
    evaluations too (``info["training_evaluations"]``); ``info`` is an
    :class:`~interpolants.samplers.info.ImportanceInfo`.

    The estimate is a stochastic lower bound: where q misses mass of the target the weights
    cannot restore it, and the delta-method error bar is then too small. The bias check
    (``reverse``, default "auto"; :func:`_reverse_check`) adds the reverse estimate from
    draws of the target, a stochastic upper bound, and widens the error bar when the two
    disagree.

    References:
        M. Gabrie, G. M. Rotskoff, E. Vanden-Eijnden, arXiv:2105.12603;
        A. Kong, U. Chicago TR 348 (1992) (the ESS);
        R. B. Grosse, Z. Ghahramani, R. P. Adams, arXiv:1511.02543 (the bounds).
    """
    c = FlowMCMCConfig.resolve(config, options, "is")
    n = check_int("n", n)
    generator = make_generator(seed)
    trained, training = _train(target, init, seed, c, chains, dtype, progress, generator)
    x, lw = _weighted_draws(target, trained, n, c.batches, generator)
    log_z, se = log_Z_from_weights(lw)
    result = SampleResult(
        samples=x,
        method="is",
        log_weights=lw,
        log_Z=log_z,
        log_Z_stderr=se,
        ess=float(ess_of_weights(lw)),
        evaluations=trained.density.evaluations,
        info=ImportanceInfo(**training),
    )
    _reverse_check(result, target, trained, c, generator)
    return result


run_is.config_class = FlowMCMCConfig  # type: ignore[attr-defined]  # its options, for the CLI


def _reverse_check(
    result: SampleResult, target: Any, trained: TrainedTransport, c: FlowMCMCConfig,
    generator: torch.Generator,
) -> None:  # fmt: skip
    r"""The bias check of importance sampling: the one-level case of bidirectional Monte
    Carlo (:mod:`..evidence`, arXiv:1511.02543). With draws x_j of the target,
    E[q(x) / rho*(x)] = 1 / Z, so the reverse estimate

        log Z_upper = -log mean_j exp(log q(x_j) - log rho*(x_j))

    is a stochastic upper bound, as log Z_hat = log mean_i w_i is a lower one; they meet when
    q covers the target, and a gap says that the draws of q missed mass (a funnel's neck)
    that the weights cannot restore. The bounds go into ``result.info``, a gap beyond their
    noise warns and widens ``log_Z_stderr`` (:meth:`~..evidence.Sandwich.stderr`); the
    draws' target evaluations are counted (``info.reverse_evaluations``)."""
    if c.reverse is None or c.reverse is False or not math.isfinite(result.log_Z):
        return
    walkers = c.reverse_walkers or min(result.n, REVERSE_WALKERS)
    start = result.samples[systematic_resample(result.log_weights[None], generator)[0, :4]]
    draws = posterior_draws(target, c.reverse, walkers, generator, start)
    if draws is None:
        return
    extra = draws.evaluations
    bounds = None
    if draws.x.shape[0] >= 2:  # else the HMC of reverse="auto" failed: noted, no bounds
        x = draws.x.to(trained.state.position)
        with torch.no_grad():
            log_q = trained.transport.log_prob(x).to(x)
            lp = map_rows(lambda rows: target.log_prob(rows).detach().to(rows), x)
        extra += x.shape[0]
        terms = torch.where(torch.isfinite(log_q), log_q - lp, -math.inf)
        bounds = sandwich(result.log_Z, result.log_Z_stderr, terms, x.shape[0], draws.source)
    count_check(result, extra)
    record_sandwich(result, bounds, draws.warnings, IMPORTANCE_CAUSE)


def _weighted_draws(
    target: Any, trained: TrainedTransport, n: int, batches: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """n draws x_i = T(x_b,i) of the frozen transport, in ``batches`` pieces, and their log
    weights log rho*(x_i) - log q(x_i) (-inf where q is not finite); one target evaluation
    per draw is counted."""
    model, density = trained.transport, trained.density
    xs, lws = [], []
    sizes = [n // batches + (1 if b < n % batches else 0) for b in range(batches)]
    for size in (s for s in sizes if s > 0):
        x, log_q = model.sample_with_log_prob(size, generator)
        x = x.to(trained.state.position)
        with torch.no_grad():  # under a process group: each rank its rows, all-gathered
            lp = map_rows(lambda rows: target.log_prob(rows).detach().to(rows), x)
        density.evaluations += size  # log_prob only, counted as one evaluation per draw
        xs.append(x)
        lws.append(torch.where(torch.isfinite(log_q), lp - log_q.to(x), -math.inf))
    return torch.cat(xs), torch.cat(lws)


register_method("flow-mcmc", run_flow_mcmc)
register_method("is", run_is)
