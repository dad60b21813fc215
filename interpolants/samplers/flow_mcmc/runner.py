"""``run_flow_mcmc`` and ``run_is``: flow-MCMC and importance sampling through its transport."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..api import chain_result, register_method
from ..diagnostics import ess_of_weights, log_Z_from_weights
from ..hmc import check_int, make_generator, progress_bar
from ..result import SampleResult
from .moves import global_move
from .training import train_transport
from .transport import Transport

__all__ = ["run_flow_mcmc", "run_is"]


# The options of run_flow_mcmc and run_is that go to train_transport unchanged.
_TRAIN_OPTIONS = (
    "transport",
    "transport_options",
    "base",
    "chains",
    "warmup",
    "local_steps",
    "train_steps",
    "batch_size",
    "buffer",
    "anchors",
    "defensive",
    "defensive_scale",
    "max_rounds",
    "min_rounds",
    "plateau_window",
    "plateau_tol",
    "step_size",
    "target_accept",
    "mass_matrix",
    "dtype",
)


def run_flow_mcmc(
    target: Any,
    n: int = 1000,
    seed: int = 0,
    init: Tensor | None = None,
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
    thin: int = 1,
    dtype: torch.dtype | None = None,
    progress: bool = False,
) -> SampleResult:
    r"""Flow-MCMC (Gabrie, Rotskoff & Vanden-Eijnden): MALA plus independent MH moves through a
    transport trained on the walkers, then frozen for production (see the module docstring).

    Every production iteration makes ``local_steps`` MALA moves and one global move
    (``local_steps + 1`` target evaluations per walker); ``thin`` iterations make a draw.

    Arguments:
        target: a :class:`~interpolants.targets.Target`.
        n: pooled production draws, ceil(n / chains) per chain.
        seed: seeds the run (walkers, moves, minibatches, the transport's initial weights).
        init: walker positions (chains, dim), or k < chains rows (the rough mode locations,
            repeated in turn), rows of width 1 broadcast over the dimensions; default draws
            from ``target.base``.
        transport: "coupling" (RealNVP by maximum likelihood, :mod:`.coupling`),
            "interpolant" (a velocity field by the interpolant loss, q by the ODE), or a
            :class:`Transport` (e.g. ``result.info["transport"]`` of an earlier run; it keeps
            training unless ``max_rounds=0``).
        transport_options: keyword options of :class:`CouplingTransport` (layers, width, lr)
            or :class:`InterpolantTransport` (width, depth, lr, ode_steps).
        base: rho_b (``sample``, differentiable ``log_prob``); default ``target.base``
            (e.g. the Brownian bridge of phi4_1d, the prior of radial_velocity).
        chains: walkers M (default 64, or init's rows when it has more; fewer rows are
            repeated to fill 64).
        warmup: MALA adaptation iterations before training (step size, preconditioner).
        local_steps: MALA moves between global moves.
        train_steps, batch_size, buffer: fitting steps per round, their minibatch, and how many
            recent rounds of training positions the minibatches come from.
        anchors: walkers that stay in their initial mode during training, started in turn at the
            walkers' starting points (equal numbers per initial mode); their positions are the
            training data, so the transport covers every initial mode whatever its weight
            (default: as many as ``chains``; 0 trains on the walkers, as in the papers). See
            :func:`train_transport`.
        defensive: lam in [0, 1]: propose from (1 - lam) T#rho_b + lam x (one Gaussian per
            initial mode, fitted to its anchors), :class:`DefensiveMixture`; default 0.
        defensive_scale: multiplies the Gaussians' standard deviations (> 0, default 1): a
            scale > 1 covers tails the anchors have not yet explored.
        max_rounds, min_rounds, plateau_window, plateau_tol: the training length and its
            stopping rule, see :func:`train_transport`.
        step_size, target_accept, mass_matrix: the MALA warm-up, as in
            :func:`~.api.run_mala` ("diag" by default: a dense covariance pooled over
            separated modes would mislead).
        thin: keep every ``thin``-th production iteration.
        dtype: walker dtype (default: init's, else the base's).
        progress: show progress bars.

    Returns:
        :class:`~.result.SampleResult`; ``acceptance_rate`` is the production global
        acceptance; ``info`` holds ``transport`` (the frozen transport),
        ``training_acceptance`` (per round), ``global_accepted`` (draws, chains),
        ``local_acceptance``, ``training_rounds``, ``stopped_by``, ``train_evaluations``.

    References:
        M. Gabrie, G. M. Rotskoff, E. Vanden-Eijnden, arXiv:2105.12603, arXiv:2107.08001.
    """
    options = {k: v for k, v in locals().items() if k in _TRAIN_OPTIONS}
    n, thin = check_int("n", n), check_int("thin", thin)
    generator = make_generator(seed)
    trained = train_transport(target, init, seed, progress=progress, generator=generator, **options)
    density, kernel, model, state = (
        trained.density,
        trained.kernel,
        trained.transport,
        trained.state,
    )
    train_evaluations = density.evaluations
    chains = state.position.shape[0]
    per_chain = math.ceil(n / chains)
    log_q = model.log_prob(state.position).to(state.position)
    draws, trace, accepted, glob, local = [], [], [], [], []
    bar = progress_bar(per_chain * thin, progress, "flow-mcmc production")
    for i in range(per_chain * thin):
        for _ in range(local_steps):
            state, info = kernel.step(generator, state)
            local.append(float(info.acceptance_rate.mean()))
        if local_steps:
            log_q = model.log_prob(state.position).to(state.position)
        state, log_q, info = global_move(generator, state, log_q, model, density)
        glob.append(float(info.acceptance_rate.mean()))
        trace.append(state.log_prob)
        if (i + 1) % thin == 0:
            draws.append(state.position)
            accepted.append(info.is_accepted)
        bar.update(1)
    bar.close()
    info: dict[str, Any] = {
        "target": density.name,
        "chains": chains,
        "draws_per_chain": per_chain,
        "thin": thin,
        "local_steps": local_steps,
        "transport": model,
        "transport_kind": transport if isinstance(transport, str) else type(transport).__name__,
        "step_size": trained.step_size,
        "inverse_mass_matrix": None
        if trained.metric is None
        else trained.metric.inverse_mass_matrix,
        "training_rounds": trained.rounds,
        "stopped_by": trained.stopped_by,
        "training_acceptance": trained.acceptance_trace,
        "training_loss": trained.loss_trace,
        "final_training_acceptance": float(trained.acceptance_trace[-5:].mean())
        if trained.rounds
        else None,
        "global_accepted": torch.stack(accepted),
        "global_acceptance_trace": torch.tensor(glob, dtype=torch.float64),
        "local_acceptance": sum(local) / len(local) if local else None,
        "train_evaluations": train_evaluations,
    }
    log_prob_trace = torch.cat([trained.log_prob_trace, torch.stack(trace)])
    return chain_result(
        torch.stack(draws), n, "flow-mcmc", density, sum(glob) / len(glob), log_prob_trace, info
    )


def run_is(
    target: Any,
    n: int = 1000,
    seed: int = 0,
    init: Tensor | None = None,
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
    batches: int = 1,
    dtype: torch.dtype | None = None,
    progress: bool = False,
) -> SampleResult:
    r"""Importance sampling through a transport trained by flow-MCMC (the talk's estimator):

        x_i = T(x_b,i), x_b,i ~ rho_b,   log w_i = log rho*(x_i) - log q(x_i),
        log Z_hat = log mean_i w_i,   ESS / n = (sum w)^2 / (n sum w^2),

    with the delta-method standard error of :func:`~.diagnostics.log_Z_from_weights`.
    The transport is trained as in :func:`run_flow_mcmc` (same options) unless a trained one
    is passed with ``max_rounds=0`` (then ``init`` only seeds the unused walkers). The draws
    are made in ``batches`` pieces (memory). ``evaluations`` counts the training's target
    evaluations too (``info["train_evaluations"]``).

    References:
        M. Gabrie, G. M. Rotskoff, E. Vanden-Eijnden, arXiv:2105.12603;
        A. Kong, U. Chicago TR 348 (1992) (the ESS).
    """
    options = {k: v for k, v in locals().items() if k in _TRAIN_OPTIONS}
    n, batches = check_int("n", n), check_int("batches", batches)
    generator = make_generator(seed)
    trained = train_transport(target, init, seed, progress=progress, generator=generator, **options)
    density, model = trained.density, trained.transport
    train_evaluations = density.evaluations
    xs, lws = [], []
    sizes = [n // batches + (1 if b < n % batches else 0) for b in range(batches)]
    for size in (s for s in sizes if s > 0):
        x, log_q = model.sample_with_log_prob(size, generator)
        x = x.to(trained.state.position)
        with torch.no_grad():
            lp = target.log_prob(x).detach().to(x)
        density.evaluations += size  # log_prob only, counted as one evaluation per draw
        xs.append(x)
        lws.append(torch.where(torch.isfinite(log_q), lp - log_q.to(x), -math.inf))
    x, lw = torch.cat(xs), torch.cat(lws)
    log_z, se = log_Z_from_weights(lw)
    ess = float(ess_of_weights(lw))
    return SampleResult(
        samples=x,
        method="is",
        log_weights=lw,
        log_Z=log_z,
        log_Z_stderr=se,
        ess=ess,
        evaluations=density.evaluations,
        info={
            "transport": model,
            "transport_kind": transport if isinstance(transport, str) else type(transport).__name__,
            "training_rounds": trained.rounds,
            "stopped_by": trained.stopped_by,
            "training_acceptance": trained.acceptance_trace,
            "final_training_acceptance": float(trained.acceptance_trace[-5:].mean())
            if trained.rounds
            else None,
            "train_evaluations": train_evaluations,
        },
    )


register_method("flow-mcmc", run_flow_mcmc)
register_method("is", run_is)
