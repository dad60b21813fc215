"""``run_nets``: train (or take) a drift, then run the walkers of NETS with Jarzynski weights."""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ...data import fingerprint
from ...divergence import heun_step
from ...nn import build_drift, same_drift
from ...run_folder import RunFolder
from ..ais import SMCConfig, bias_check, resolve_base, run_smc
from ..annealing import AnnealedDensity, systematic_resample
from ..base import CountedDensity, check_int, make_generator
from ..diagnostics import ess_of_weights, log_mean_exp, log_Z_from_weights, transport_gain
from ..evidence import report
from ..info import Info, NETSInfo
from ..result import SampleResult
from .config import FEATURES, LOG_DET_EXACT_MAX_DIM, NETSConfig, default_features
from .model import NETSModel, Potential
from .sampling import (
    NETSPath,
    Trajectory,
    base_on,
    combine_batches,
    eps_function,
    refine_grid,
    simulate,
    time_grid,
)
from .training import TrainingLog, TrainOptions, train_drift

__all__ = ["run_nets"]


@dataclasses.dataclass
class _Setup:
    """What the sampling run needs from the set-up and the training."""

    config: NETSConfig
    density: CountedDensity
    generator: torch.Generator
    base: Any
    path: NETSPath
    dtype: torch.dtype | None
    model: NETSModel | None  # the drift used (None: b = 0)
    history: list[dict[str, Any]]
    training_evaluations: int
    training_seconds: float
    exact: bool  # the training divergence
    exact_log_det: bool


def run_nets(
    target: Any,
    n: int = 2000,
    seed: int = 0,
    init: None = None,
    *,
    config: NETSConfig | None = None,
    log_dir: str | Path | RunFolder | None = None,
    resume: bool = False,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
    **options: Any,
) -> SampleResult:
    r"""NETS (arXiv:2410.02711): learn a drift b_t by the PINN (or action-matching) objective,
    then run n walkers of the NETS SDE with Jarzynski weights (see :mod:`.nets`).

    Arguments:
        target: a :class:`~interpolants.targets.Target`.
        n: walkers (samples returned).
        seed: seeds the run's one torch.Generator (training and sampling).
        init: must be None (walkers start from the base).
        config: the method's options as a :class:`NETSConfig`; ``options`` (any field of
            it, e.g. ``steps=200, eps="adapt"``) replace its values.
        log_dir: a run folder for metrics.jsonl (loss, ESS, log Z every ``log_every``
            rounds) and checkpoint.safetensors (every ``checkpoint_every`` rounds); one that
            already holds something is refused unless ``resume``.
        resume: continue the training from log_dir's checkpoint (refused, before anything
            is written, when the drift's settings differ).
        dtype: walker dtype (default the base's).
        device: where the walkers, the drift and the target evaluations live (e.g. "cuda";
            default: where the base samples). Random numbers come from one CPU generator,
            so a seed gives the same draws on every device.
        progress: show a progress bar with the loss, ESS and log Z of training.

    Returns:
        :class:`~.result.SampleResult` with log weights A_1, log Z, its delta-method standard
        error, ESS/N and all target evaluations (training included); ``info`` is a
        :class:`~interpolants.samplers.info.NETSInfo`: the model, the training history, the
        eps used, the evaluations of training and of sampling apart, and the ESS of every eps
        of a sweep.
    """
    n = check_int("n", n, 2)
    c = NETSConfig.resolve(config, options)
    if n % c.batches or n // c.batches < 2:
        raise ValueError(f"n={n} must be a multiple of batches={c.batches} with >= 2 per batch")
    if init is not None:
        raise ValueError("init: nets starts from the base distribution; pass base= instead")
    setup = _set_up(target, c, seed, dtype, device, log_dir, resume, progress)
    if c.adaptive:
        return _drift_warning(_run_smc(setup, target, n, seed, progress))
    eps_fn, eps_scale, sweep = _choose_eps(setup)
    grid, refinements = _refined_grid(setup, eps_fn)
    traj = _run(setup, n, eps_fn, c.resample_threshold, grid)
    if traj.bad_steps:
        warnings.warn(
            f"nets: the transport map was not invertible (or not finite) for {traj.bad_steps} "
            "walker-steps, whose weights were set to 0; where the Heun map folds, log Z is "
            "biased upwards (the fold's image is counted twice): use more steps or refine=",
            stacklevel=2,
        )
    sampling = {
        "grid_steps": len(grid) - 1,
        "refinements": refinements,
        "eps_scale": eps_scale,
        "eps_profile": torch.tensor([eps_fn(float(t)) for t in grid[1:]])
        if c.eps != "adapt"
        else None,
        "eps_sweep": sweep,
    }
    result = _result(setup, traj, sampling)
    if result.samples.device.type == "cpu":
        bias_check(result, target, seed, reverse=c.reverse, base=setup.base,
                   walkers=c.reverse_walkers, dtype=result.samples.dtype)  # fmt: skip
    return _drift_warning(result)


run_nets.config_class = NETSConfig  # type: ignore[attr-defined]  # its options, for the CLI


HURTING_GAIN = 0.5  # a drift_gain below this: the drift (at least) doubled the weights' loss


def _drift_warning(result: SampleResult) -> SampleResult:
    """``result``, warned when its drift made the weights clearly worse than no drift."""
    gain = result.info.drift_gain
    if gain is not None and gain < HURTING_GAIN:
        report(result, [
            f"nets: the drift made the weights worse than reweighting alone (drift_gain "
            f"{gain:.3g}: each level lost {1 / gain:.3g}x the conditional ESS it loses without "
            f"it), so log Z's error bar may not cover: train longer (iterations=)"
            f"{_features_hint(result.info.model)}, or use method='smc'"
        ])  # fmt: skip
    return result


def _features_hint(model: Any) -> str:
    """The other choice of the drift MLP's random Fourier features, for the warning: which
    one trains the better drift depends on the target, not only on d (benchmarks/RESULTS.md:
    without them the drift's gain was higher on mixtures of 10 Gaussians from d = 5 up, both
    eight schools models and the funnel; with them on ``gmm40`` and local_level)."""
    features = getattr(getattr(model, "drift", None), "config", {}).get("features")
    if features is None:  # a drift of the user's, or one without the MLP's options
        return ""
    return (
        f", train the drift {'without' if features else 'with'} random Fourier features "
        f"(features={0 if features else FEATURES})"
    )


def _set_up(
    target: Any,
    c: NETSConfig,
    seed: int,
    dtype: torch.dtype | None,
    device: Any,
    log_dir: Any,
    resume: bool,
    progress: bool,
) -> _Setup:
    """The counted target, base, path and generator; the drift, trained or given."""
    start = time.perf_counter()
    density = CountedDensity(target)
    generator = make_generator(seed)
    device = None if device is None else torch.device(device)
    base = base_on(resolve_base(target, c.base, c.base_scale, dtype, transport=True), device)
    exact = c.divergence == "exact" or (c.divergence == "auto" and target.dim <= c.exact_max_dim)
    exact_log_det = c.log_det == "exact" or (
        c.log_det == "auto" and target.dim <= LOG_DET_EXACT_MAX_DIM
    )
    path = NETSPath(AnnealedDensity(density, base), c.schedule, c.schedule_power)
    setup = _Setup(c, density, generator, base, path, dtype, None, [], 0, 0.0, exact,
                   exact_log_det)  # fmt: skip
    logger = TrainingLog(log_dir, c.iterations if c.model is None and c.drift else 0, progress,
                         resume)  # fmt: skip
    earlier_seconds = 0.0  # training seconds before a resumed checkpoint
    model = c.model
    if c.drift is not None and model is None:
        model, earlier_seconds = _train(setup, target, seed, device, log_dir, resume, logger)
    elif model is not None:
        if model.config.get("dim") != target.dim:
            raise ValueError(
                f"model was trained for dim={model.config.get('dim')}, target has {target.dim}"
            )
        setup.path = NETSPath(path.annealed, model.config["schedule"],
                              model.config["schedule_power"])  # fmt: skip
        if device is not None:
            model.to(device)
    logger.bar.close()
    setup.model = model if c.drift is not None else None
    setup.training_evaluations = density.evaluations
    setup.training_seconds = time.perf_counter() - start + earlier_seconds
    return setup


def _new_model(setup: _Setup, target: Any, seed: int, device: Any) -> NETSModel:
    """A fresh drift with weights from the seed (the global stream untouched)."""
    c = setup.config
    # the network's input scale from a separate stream, so that b = 0 draws what AIS draws
    probe_x = setup.base.sample(256, make_generator(seed + 7919))
    scale = probe_x.float().std(0).clamp(min=1e-3)
    config = {"schedule": c.schedule, "schedule_power": c.schedule_power,
              "objective": c.objective, "dim": target.dim}  # fmt: skip
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        features = default_features(target.dim) if c.features is None else c.features
        raw = build_drift(target, c.net, scale, c.width, c.depth, features, c.feature_scale,
                          c.block, c.net_options)  # fmt: skip
        if c.objective == "action":
            raw = Potential(raw, scale)
        eps0 = (0.5 * float(scale.mean())) ** 2 * c.train_steps / 2
        model = NETSModel(raw, config, eps0=eps0)
    return model.to(device or scale.device)


def _train(
    setup: _Setup, target: Any, seed: int, device: Any, log_dir: Any, resume: bool,
    logger: TrainingLog,
) -> tuple[NETSModel, float]:  # fmt: skip
    """Train a new drift (or resume its training): (model, training seconds before resume)."""
    c = setup.config
    model = _new_model(setup, target, seed, device)
    if resume and log_dir is None:
        raise ValueError("resume=True needs log_dir (where the checkpoint is)")
    state = logger.load() if resume else None
    earlier = 0.0
    identity = {"target": setup.density.name, "base": fingerprint(setup.base)}
    opts = TrainOptions(c.iterations, c.train_walkers, c.train_steps, c.updates, c.batch_size,
                        c.lr, c.objective, setup.exact, c.probes, c.moves, c.log_every,
                        c.checkpoint_every, c.buffer if c.objective == "pinn" else 1,
                        c.time_weighted, setup.history, identity)  # fmt: skip
    if state is not None:
        drift_config = getattr(model.drift, "config", None)
        saved = (state["config"], state.get("drift_config", drift_config))
        if saved[0] != model.config or not same_drift(saved[1], model.drift):
            raise ValueError(
                f"resume: the checkpoint in {log_dir} was made with {saved}, "
                f"now {(model.config, drift_config)}"
            )
        changed = _changed(state.get("settings"), opts.settings())
        if changed:
            raise ValueError(
                f"resume refused: {log_dir} was trained with other settings: {changed}"
            )
        model.load_state_dict(state["model"])
        setup.generator.set_state(state["generator"])
        setup.density.evaluations = state["evaluations"]
        setup.history = state["history"]
        earlier = state.get("seconds", 0.0)
    # resumed: lines past the checkpoint go; no checkpoint yet: start again, so does the log
    logger.accept(None if state is None else state["iteration"])
    opts.history = setup.history
    setup.history = train_drift(model, setup.path, setup.base, setup.dtype, setup.generator,
                                opts, logger, state)  # fmt: skip
    return model, earlier


def _changed(saved: dict[str, Any] | None, now: dict[str, Any]) -> str:
    """'key: checkpoint v, now w; ...' for the settings that differ ('' when none, or when the
    checkpoint predates the settings record)."""
    if saved is None:
        return ""
    keys = sorted(set(saved) | set(now))
    return "; ".join(f"{k}: checkpoint {saved.get(k)!r:.80}, now {now.get(k)!r:.80}"
                     for k in keys if saved.get(k) != now.get(k))  # fmt: skip


def _run(
    setup: _Setup,
    m: int,
    eps_fn: Callable[[float], float],
    threshold: float = 0.0,
    grid: Tensor | None = None,
) -> Trajectory:
    """m walkers from the base through the sampling run."""
    c = setup.config
    x0 = setup.base.sample(m, setup.generator)
    x0 = x0.to(setup.dtype) if setup.dtype is not None else x0
    grid = time_grid(c.steps) if grid is None else grid
    return simulate(setup.path, setup.model, x0, grid, eps_fn, setup.generator,
                    exact=setup.exact_log_det, probes=c.probes, moves=c.moves,
                    resample_threshold=threshold, groups=c.batches,
                    mass_matrix=c.mass_matrix, adapt=c.eps == "adapt")  # fmt: skip


def _choose_eps(
    setup: _Setup,
) -> tuple[Callable[[float], float], float, list[dict[str, float]]]:
    """eps_t of the sampling run, its scale, and the sweep's record ("sweep" only)."""
    c, model = setup.config, setup.config.model or setup.model
    sweep: list[dict[str, float]] = []
    if c.eps == "sweep":
        best, best_ess = 1.0, -1.0
        for s in c.eps_sweep:
            traj = _run(setup, c.sweep_walkers, eps_function(model, None, s))
            ess = float(ess_of_weights(traj.log_w))
            sweep.append({"eps_scale": s, "ess": ess, "log_Z": float(log_mean_exp(traj.log_w, 0))})
            if ess > best_ess:
                best, best_ess = s, ess
        return eps_function(model, None, best * c.eps_scale), best * c.eps_scale, sweep
    if c.eps == "adapt":
        return eps_function(None, 1.0, 1.0), c.eps_scale, sweep  # only its sign: moves everywhere
    return eps_function(model, c.eps, c.eps_scale), c.eps_scale, sweep


def _refined_grid(setup: _Setup, eps_fn: Callable[[float], float]) -> tuple[Tensor, int]:
    """The uniform grid with the steps where a pilot walker's Heun map folded halved."""
    grid, refinements = time_grid(setup.config.steps), 0
    while setup.model is not None and refinements < setup.config.refine:
        folded = _run(setup, setup.config.sweep_walkers, eps_fn, grid=grid).folded
        if not folded:
            break
        grid, refinements = refine_grid(grid, folded), refinements + 1
    return grid, refinements


class _BetaTransport:
    """The Heun map of the drift between temperatures beta0 < beta1 of an SMC ladder, at the
    times t = beta_t^{-1}(beta) of the drift's path; counts the walker-steps where the map was
    not invertible."""

    label = "nets: sampling"  # the SMC run's progress bar

    def __init__(self, setup: _Setup):
        self.setup, self.bad_steps = setup, 0

    def __call__(self, beta0: float, beta1: float, x: Tensor) -> tuple[Tensor, Tensor]:
        s = self.setup
        t0, t1 = s.path.time(beta0), s.path.time(beta1)
        y, logdet = heun_step(s.model, t0, t1, x, s.exact_log_det, s.config.probes, s.generator)
        self.bad_steps += int((~torch.isfinite(logdet)).sum())
        return y, logdet


def _run_smc(setup: _Setup, target: Any, n: int, seed: int, progress: bool) -> SampleResult:
    """The sampling run of ``steps=None``: SMC (adaptive ladder, resampling, bias check,
    heavier reruns) with the drift's Heun map between its temperatures."""
    c = setup.config
    transport = None if setup.model is None else _BetaTransport(setup)
    smc = SMCConfig(**(c.smc or {}), base=setup.base, batches=c.batches, reverse=c.reverse,
                    reverse_walkers=c.reverse_walkers)  # fmt: skip
    run = run_smc(target, n, seed + 1, config=smc, dtype=setup.dtype, progress=progress,
                  transport=transport)  # fmt: skip
    bad = 0 if transport is None else transport.bad_steps
    if bad:
        warnings.warn(f"nets: the transport map was not invertible for {bad} walker-steps, "
                      "whose weights were set to 0", stacklevel=3)  # fmt: skip
    smc_info = run.info
    samples, log_w = run.samples, run.log_weights
    if c.resample:
        idx = systematic_resample(log_w[None].cpu(), setup.generator)[0].to(samples.device)
        samples, log_w = samples[idx], torch.full_like(log_w, run.log_Z)
    # the bias check's fields, those every Info declares (target aside)
    checked = {f.name: getattr(smc_info, f.name) for f in dataclasses.fields(Info)}
    checked.pop("target")
    info = NETSInfo(
        **_training_fields(setup),
        **checked,
        steps=None,
        grid_steps=round(smc_info.levels),
        refinements=0,
        eps_scale=1.0,
        eps_profile=None,
        eps_sweep=[],
        mass_matrix=str(smc.mass_matrix) if isinstance(smc.mass_matrix, str) else "given",
        step_size_per_move=smc_info.step_size_per_move.double(),
        sampling_evaluations=run.evaluations,
        non_invertible_steps=bad,
        resample_threshold=smc.resample_threshold,
        resampling_steps=smc_info.resampling_steps,
        annealing=smc_info,
        drift_gain=smc_info.transport_gain,
        escalations=smc_info.escalations,
    )
    result = SampleResult(
        samples=samples,
        method="nets",
        log_weights=log_w,
        log_Z=run.log_Z,
        log_Z_stderr=run.log_Z_stderr,
        ess=run.ess if not c.resample else float(ess_of_weights(log_w)),
        evaluations=setup.training_evaluations + run.evaluations,
        acceptance_rate=run.acceptance_rate,
        groups=None if c.resample else run.groups,
        info=info,
    )
    result.warnings.extend(run.warnings)
    return result


def _training_fields(setup: _Setup) -> dict[str, Any]:
    """The :class:`NETSInfo` fields of the drift and its training, and of the run's settings
    that both sampling runs (grid and SMC ladder) share."""
    c, model = setup.config, setup.model
    return {
        "target": setup.density.name,
        "training_evaluations": setup.training_evaluations,
        "training_seconds": setup.training_seconds,
        "iterations": c.iterations if c.drift is not None else 0,
        "divergence": "exact" if setup.exact else "hutchinson",
        "log_det": "exact" if setup.exact_log_det else "hutchinson",
        "schedule": setup.path.kind,
        "resampled": bool(c.resample),
        "batches": c.batches,
        "history": setup.history,
        "model": model,
        "log_Z_F": None if model is None else model.log_Z_from_F(),
        "final_training_ess": setup.history[-1]["ess"] if setup.history else None,
    }


def _result(setup: _Setup, traj: Trajectory, sampling: dict[str, Any]) -> SampleResult:
    """The result of the sampling run; ``sampling`` holds the :class:`NETSInfo` fields of the
    grid and eps (grid_steps, refinements, eps_scale, eps_profile, eps_sweep)."""
    c = setup.config
    samples, groups = traj.state.position, None
    if c.resample_threshold > 0:
        log_w, log_Z, stderr, groups = combine_batches(traj, c.batches)
        groups = groups.to(samples.device)
    else:
        log_w = traj.log_w
        log_Z, stderr = log_Z_from_weights(log_w)
    ess = float(ess_of_weights(log_w))
    if c.resample:
        idx = systematic_resample(log_w[None], setup.generator)[0].to(samples.device)
        samples = samples[idx]
        log_w = torch.full_like(log_w, log_Z)
    acc = [a for _, a in traj.acceptance]
    info = NETSInfo(
        **_training_fields(setup),
        steps=c.steps,
        **sampling,
        mass_matrix=c.mass_matrix,
        step_size_per_move=torch.tensor(traj.step_sizes, dtype=torch.float64),
        sampling_evaluations=setup.density.evaluations - setup.training_evaluations,
        non_invertible_steps=traj.bad_steps,
        resample_threshold=float(c.resample_threshold),
        resampling_steps=traj.resamplings,
        drift_gain=transport_gain(traj.transport_cess),  # None without a drift (no levels)
    )
    return SampleResult(
        samples=samples,
        method="nets",
        log_weights=log_w.to(samples.device),
        log_Z=log_Z,
        log_Z_stderr=stderr,
        ess=ess,
        evaluations=setup.density.evaluations,
        acceptance_rate=sum(acc) / len(acc) if acc else None,
        groups=None if c.resample else groups,
        info=info,
    )
