r"""Typed ``SampleResult.info``: one frozen dataclass per method family, read as a mapping.

Every runner fills ``result.info`` with a subclass of :class:`Info`: :class:`MCMCInfo`
(:class:`HMCInfo` for HMC) for MALA and HMC, :class:`AnnealingInfo` for AIS and SMC,
:class:`NETSInfo`, :class:`FlowMCMCInfo` and :class:`ImportanceInfo` (importance sampling
through a flow-MCMC transport). The fields are attributes (``result.info.step_size``) and,
since :class:`Info` is a read-only ``Mapping[str, Any]`` over them, also keys
(``result.info["step_size"]``, ``"batches" in result.info``, ``result.info.get("model")``,
``dict(result.info)``). A field declared ``field(default=None, metadata=OMIT_NONE)`` is left
out of the mapping while it is None (e.g. SMC's batch fields in an AIS result), so that its key
is present exactly when the method has it.

Shared names: every method trained before it samples (NETS, flow-MCMC, importance sampling)
reports the training's cost as ``training_evaluations`` and ``training_seconds``
(:class:`TrainingInfo`); the parallel-chain methods (MALA, HMC, flow-MCMC) share
:class:`ChainInfo`.

A method added with :func:`~.api.register_method` returns its own subclass of :class:`Info`
(``@dataclass(frozen=True, kw_only=True, eq=False)``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from torch import Tensor

if TYPE_CHECKING:
    from .flow_mcmc.transport import Transport
    from .nets.model import NETSModel

__all__ = [
    "OMIT_NONE",
    "AnnealingInfo",
    "ChainInfo",
    "FlowMCMCInfo",
    "HMCInfo",
    "ImportanceInfo",
    "Info",
    "LEAPSInfo",
    "MCMCInfo",
    "NETSInfo",
    "SiteChainInfo",
    "TrainingInfo",
    "TransportInfo",
]

OMIT_NONE: Mapping[str, Any] = MappingProxyType({"omit_none": True})
"""Field metadata: the field (default None) is left out of the :class:`Info` mapping while it
is None (its key absent, as for a method that does not have it); the attribute stays None."""


@dataclass(frozen=True, kw_only=True, eq=False)
class Info(Mapping[str, Any]):
    """Method-specific details of a :class:`~.result.SampleResult`: a frozen dataclass that is
    also a read-only mapping from its field names to their values (fields declared with
    ``metadata=OMIT_NONE`` are absent while None). Equality is the mapping's (as for a dict).

    Attributes:
        target: the target's name (absent when unknown).
        log_Z_lower, log_Z_upper: the bidirectional bounds of methods that estimate log Z
            (AIS, SMC, NETS, importance sampling; :mod:`.evidence`): the forward estimate
            and the reverse run's stochastic upper bound (absent without a reverse run).
        log_Z_upper_stderr: the upper bound's standard error.
        log_Z_mc_stderr: the forward estimate's Monte Carlo standard error (``log_Z_stderr``
            is widened beyond it to reach the upper bound: to |gap| / 3, and to gap / 3 +
            ``log_Z_upper_stderr`` when the bounds disagree with the upper one above;
            :meth:`~.evidence.Sandwich.stderr`).
        reverse_walkers, reverse_source: the reverse run's walkers and where their draws of
            the target came from ("exact", "hmc" or "given").
        reverse_evaluations: the target evaluations of that check (HMC draws, reverse run,
            NETS's SMC pilot), included in ``SampleResult.evaluations``.
    """

    target: str | None = field(default=None, metadata=OMIT_NONE)
    log_Z_lower: float | None = field(default=None, metadata=OMIT_NONE)
    log_Z_upper: float | None = field(default=None, metadata=OMIT_NONE)
    log_Z_upper_stderr: float | None = field(default=None, metadata=OMIT_NONE)
    log_Z_mc_stderr: float | None = field(default=None, metadata=OMIT_NONE)
    reverse_walkers: int | None = field(default=None, metadata=OMIT_NONE)
    reverse_source: str | None = field(default=None, metadata=OMIT_NONE)
    reverse_evaluations: int | None = field(default=None, metadata=OMIT_NONE)

    def _keys(self) -> list[str]:
        return [
            f.name
            for f in dataclasses.fields(self)
            if not (f.metadata.get("omit_none") and getattr(self, f.name) is None)
        ]

    def __getitem__(self, key: str) -> Any:
        if key not in self._keys():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())


# --- shared pieces ----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, eq=False)
class ChainInfo(Info):
    """What parallel Markov chains report (MALA, HMC, flow-MCMC).

    Attributes:
        chains: the number of parallel chains.
        draws_per_chain: post-warm-up draws kept per chain, ceil(n / chains).
        thin: every ``thin``-th iteration was kept.
        step_size: the local kernel's step size eps after warm-up.
        inverse_mass_matrix: Sigma = M^{-1} of the local kernel after warm-up, (dim,) or
            (dim, dim), or None for the identity.
        ess_per_dim: (dim,) ESS in draws per dimension from the integrated autocorrelation
            time (filled by :func:`~.api.chain_result`).
        rhat_max: the largest split R-hat over dimensions (filled by
            :func:`~.api.chain_result`).
    """

    chains: int
    draws_per_chain: int
    thin: int
    step_size: float
    inverse_mass_matrix: Tensor | None = None
    ess_per_dim: Tensor | None = None
    rhat_max: float | None = None


@dataclass(frozen=True, kw_only=True, eq=False)
class TrainingInfo(Info):
    """The cost of a method's training phase, counted apart from its sampling.

    Attributes:
        training_evaluations: walker-evaluations of the target during training (included in
            ``result.evaluations``).
        training_seconds: wall-clock seconds of the training (with NETS, those before a
            resumed checkpoint included).
    """

    training_evaluations: int
    training_seconds: float


@dataclass(frozen=True, kw_only=True, eq=False)
class TransportInfo(TrainingInfo):
    """A transport trained by flow-MCMC (:func:`~.flow_mcmc.train_transport`) and its training.

    Attributes:
        transport: the frozen trained transport (a :class:`~.flow_mcmc.transport.Transport`;
            pass it back as ``transport=`` with ``max_rounds=0`` to reuse it).
        transport_kind: "coupling", "interpolant", or the class name of a given transport.
        training_rounds: training rounds made.
        stopped_by: why the training stopped ("plateau" or "max_rounds").
        training_acceptance: (rounds,) mean global acceptance per training round.
        final_training_acceptance: mean global acceptance of the last 5 rounds (None without
            training).
    """

    transport: Transport
    transport_kind: str
    training_rounds: int
    stopped_by: str
    training_acceptance: Tensor
    final_training_acceptance: float | None = None


# --- one class per method family --------------------------------------------------------


@dataclass(frozen=True, kw_only=True, eq=False)
class MCMCInfo(ChainInfo):
    """``info`` of MALA (:func:`~.api.run_mala`); :class:`HMCInfo` adds HMC's trajectory.

    Attributes:
        warmup: adaptation iterations run (discarded; they come first in
            ``log_prob_trace``): the ``warmup`` option plus those of the re-adaptation rounds.
        mass_matrix: the preconditioner used: "identity", "diag" or "dense".
        divergences: divergent transitions after warm-up, summed over chains.
        warmup_acceptance: (warmup,) mean acceptance probability per warm-up iteration.
        warmup_step_size: (warmup,) the step size of every warm-up iteration.
        target_accept: the acceptance target the step size was tuned to in the end: the
            ``target_accept`` option, or higher when warm-up divergences raised it (HMC's
            ``max_target_accept``).
        warmup_divergences: divergent transitions during warm-up (all rounds), summed over
            chains.
        adaptation_rounds: the times warm-up divergences raised ``target_accept`` and re-ran
            the last slow window and terminal buffer (0: none).
        draw_acceptance: (draws_per_chain, chains) the acceptance probability of the move(s)
            that led to each kept draw (their mean over the ``thin`` moves), for ArviZ's
            ``sample_stats.acceptance_rate``; None where not recorded.
        draw_divergent: (draws_per_chain, chains) bool, whether any of those moves diverged
            (ArviZ's ``diverging``); None where not recorded.
    """

    warmup: int
    mass_matrix: str
    divergences: int
    warmup_acceptance: Tensor
    warmup_step_size: Tensor
    target_accept: float
    warmup_divergences: int
    adaptation_rounds: int
    draw_acceptance: Tensor | None = None
    draw_divergent: Tensor | None = None


@dataclass(frozen=True, kw_only=True, eq=False)
class HMCInfo(MCMCInfo):
    """``info`` of HMC (:func:`~.api.run_hmc`): :class:`MCMCInfo` and

    Attributes:
        num_steps: the leapfrog steps L per move (before jitter).
        trajectory_length: T when given (then L = ceil(T / eps)), else None.
        jitter: the relative jitter j of the number of leapfrog steps.
    """

    num_steps: int
    trajectory_length: float | None
    jitter: float


@dataclass(frozen=True, kw_only=True, eq=False)
class AnnealingInfo(Info):
    """``info`` of AIS and SMC (:func:`~.ais.run_ais`, :func:`~.ais.run_smc`). The traces per
    level and per move are those of the first run (the pilot's design for SMC with a pilot).

    Attributes:
        kernel: the moves' kernel, "mala" or "hmc".
        moves: MCMC moves per level.
        levels: temperatures after beta = 0, averaged over the runs (a float).
        pilot: whether a discarded pilot run fixed the design (SMC; False for AIS).
        temperatures: (levels + 1,) 0 = beta_0 < ... < beta_K = 1.
        ess_per_level: (levels,) ESS / m of the weights at every level.
        acceptance_per_move: mean acceptance of every move.
        step_size_per_move: the step size of every move.
        batches: SMC: R, the independent runs (absent for AIS).
        walkers_per_batch: SMC: m = n / R walkers per run (absent for AIS).
        resampling_steps: SMC: resamplings over all runs (absent for AIS).
        log_Z_batches: SMC: (R,) float64 log Z_hat_r of every run (absent for AIS).
        correlation_per_level: (levels,) the largest |correlation| over coordinates between
            the walkers' positions before and after each level's moves (NaN where a level
            made none): near 1 means the moves did not decorrelate them.
        escalations: SMC: the discarded attempts before this one, when the bias check made
            it rerun with heavier moves (``SMCConfig.escalate``): each one's reason, kernel,
            mass_matrix, moves, decorrelation, log_Z, log_Z_upper and evaluations.
        transport_gain: with a transport between the levels (NETS's drift): how much it cut
            the weights' loss of ESS, sum_k log CESS_k of the reweighting alone over sum_k
            log CESS_k with the transport, over all R runs
            (:func:`~.diagnostics.transport_gain`; absent without a transport).
    """

    kernel: str
    moves: int
    levels: float
    pilot: bool
    temperatures: Tensor
    ess_per_level: Tensor
    acceptance_per_move: Tensor
    step_size_per_move: Tensor
    batches: int | None = field(default=None, metadata=OMIT_NONE)
    walkers_per_batch: int | None = field(default=None, metadata=OMIT_NONE)
    resampling_steps: int | None = field(default=None, metadata=OMIT_NONE)
    log_Z_batches: Tensor | None = field(default=None, metadata=OMIT_NONE)
    correlation_per_level: Tensor | None = field(default=None, metadata=OMIT_NONE)
    escalations: tuple[dict[str, Any], ...] | None = field(default=None, metadata=OMIT_NONE)
    transport_gain: float | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True, kw_only=True, eq=False)
class NETSInfo(TrainingInfo):
    """``info`` of NETS (:func:`~.nets.run_nets`): :class:`TrainingInfo` (the drift's
    training; 0 evaluations for a given model or no drift) and

    Attributes:
        steps: the uniform grid's steps (``steps`` option; None: SMC's adaptive ladder).
        grid_steps: steps of the grid used, after refinement (with ``steps=None``: the
            levels of the SMC run's ladder, averaged over its populations).
        refinements: times the grid was refined where the Heun map folded.
        eps_scale: the scale of the diffusion eps_t used (the sweep's best for "sweep").
        eps_profile: (grid_steps,) eps_t on the grid, None with eps="adapt".
        eps_sweep: eps="sweep": one {"eps_scale", "ess", "log_Z"} per scale tried, else [].
        mass_matrix: "identity" or "diag".
        step_size_per_move: float64, the step size of every MALA move.
        sampling_evaluations: target evaluations of the sampling run (and sweep, refinement).
        iterations: training iterations (0 without a learned drift).
        divergence: the training's divergence, "exact" or "hutchinson".
        log_det: the sampling run's log-determinant, "exact" or "hutchinson".
        schedule: the annealing path's schedule.
        non_invertible_steps: walker-steps where the transport map was not invertible (their
            weights set to 0).
        resampled: whether the returned samples were resampled by weight.
        resample_threshold: the within-run resampling threshold on ESS / m (0: none).
        batches: independent populations of walkers.
        resampling_steps: resamplings during the run.
        history: the training's rows (loss, ESS, log Z, ...), one per logged iteration;
            ``left_out``: PINN residuals beyond ``training.RESIDUAL_CAP`` sds, left out of
            the loss since the row before (walkers deep in a funnel's neck).
        model: the drift used (a :class:`~.nets.NETSModel`), None for b = 0.
        log_Z_F: the free energy's log Z estimate, -int_0^1 dF_t/dt dt (absent without model).
        final_training_ess: the ESS of the last training row (absent without training).
        annealing: with ``steps=None``, the SMC run's own :class:`AnnealingInfo` (its
            temperatures, levels, moves, per-level traces and heavier reruns); absent for a
            grid run.
        drift_gain: what the drift's transport did for the weights: sum_k log CESS_k of each
            level's reweighting alone over sum_k log CESS_k with the Heun step of b
            (:func:`~.diagnostics.transport_gain`). 1: nothing (the run is the annealing run
            of b = 0, with more noise and the training's cost); > 1: the drift carried the
            walkers where the next level wants them. Absent without a drift.
        escalations: with ``steps=None``, the SMC run's discarded attempts, as
            :class:`AnnealingInfo`'s (so that ``metrics.json`` lists NETS's reruns too).
    """

    steps: int | None
    grid_steps: int
    refinements: int
    eps_scale: float
    eps_profile: Tensor | None
    eps_sweep: list[dict[str, float]]
    mass_matrix: str
    step_size_per_move: Tensor
    sampling_evaluations: int
    iterations: int
    divergence: str
    log_det: str
    schedule: str
    non_invertible_steps: int
    resampled: bool
    resample_threshold: float
    batches: int
    resampling_steps: int
    history: list[dict[str, Any]]
    model: NETSModel | None
    log_Z_F: float | None = field(default=None, metadata=OMIT_NONE)
    final_training_ess: float | None = field(default=None, metadata=OMIT_NONE)
    annealing: AnnealingInfo | None = field(default=None, metadata=OMIT_NONE)
    drift_gain: float | None = field(default=None, metadata=OMIT_NONE)
    escalations: tuple[dict[str, Any], ...] | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True, kw_only=True, eq=False)
class ImportanceInfo(TransportInfo):
    """``info`` of importance sampling through a flow-MCMC transport (:func:`~.flow_mcmc.run_is`):
    the fields of :class:`TransportInfo`, with the training's cost in ``training_evaluations``
    and ``training_seconds``."""


@dataclass(frozen=True, kw_only=True, eq=False)
class FlowMCMCInfo(ChainInfo, TransportInfo):
    """``info`` of flow-MCMC (:func:`~.flow_mcmc.run_flow_mcmc`): :class:`ChainInfo` (the
    production chains, ``step_size`` and ``inverse_mass_matrix`` of the MALA moves),
    :class:`TransportInfo` (the transport and its training) and

    Attributes:
        local_steps: MALA moves per production iteration (before the global move).
        training_loss: (rounds,) mean training loss per round.
        global_accepted: (draws_per_chain, chains) bool, whether the global move of every
            kept iteration was accepted.
        global_acceptance_trace: (iterations,) float64 mean global acceptance per production
            iteration.
        local_acceptance: mean acceptance of the production MALA moves (None without them).
    """

    local_steps: int
    training_loss: Tensor
    global_accepted: Tensor
    global_acceptance_trace: Tensor
    local_acceptance: float | None = None


@dataclass(frozen=True, kw_only=True, eq=False)
class SiteChainInfo(ChainInfo):
    """``info`` of single-site Markov chains on a discrete target ("metropolis", "gibbs"):
    :class:`ChainInfo` (``step_size`` NaN: there is none) and

    Attributes:
        move: "gibbs" (heat bath) or "metropolis".
        warmup: sweeps discarded per chain.
        sweep_evaluations: walker-evaluations per sweep (the number of colours).
        draw_acceptance: (draws_per_chain, chains) mean acceptance of the sweeps before
            each kept draw.
    """

    move: str
    warmup: int
    sweep_evaluations: int
    draw_acceptance: Tensor | None = None


@dataclass(frozen=True, kw_only=True, eq=False)
class LEAPSInfo(AnnealingInfo, TrainingInfo):
    """``info`` of LEAPS (:func:`~.discrete.leaps.run_leaps`): :class:`AnnealingInfo`
    (``kernel`` names the corrector moves, ``moves`` their sweeps per level),
    :class:`TrainingInfo`, and

    Attributes:
        training_steps: gradient steps of the rate network's loss.
        loss_history: (training_steps,) the loss at every step.
        jumps_per_level: mean sites changed per walker by the learned CTMC per level (of
            the first population run in turn, or of all when they run together).
        model: the trained :class:`~.discrete.leaps.LEAPSModel` (pass it as ``model=`` to
            sample again without training).
    """

    training_steps: int
    loss_history: Tensor
    jumps_per_level: Tensor
    model: Any = None
