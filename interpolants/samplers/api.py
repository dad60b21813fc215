"""``sample(target, method=..., n=..., seed=..., init=None, **options)``: one entry point.

Every method is a runner ``(target, n, seed, init, **options) -> SampleResult`` registered
in :data:`METHODS`; other modules add theirs with :func:`register_method`. This module
holds the MCMC runners (:func:`run_mala`, :func:`run_hmc`); AIS and SMC live in :mod:`.ais`.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ..checks import float_dtype
from .adaptation import MASS_MATRICES, window_adaptation
from .ais import run_ais, run_smc
from .base import (
    CountedDensity,
    GaussianMetric,
    Kernel,
    check_fraction,
    check_initial,
    check_int,
    make_generator,
    progress_bar,
)
from .diagnostics import (
    MIN_DRAWS_PER_CHAIN,
    ConvergenceWarning,
    convergence_warnings,
    ess_bulk,
    ess_tail,
    integrated_autocorr_time,
    rank_rhat,
    split_rhat,
)
from .evidence import POSTERIOR_SAMPLERS
from .hmc import hmc
from .info import ChainInfo, HMCInfo, MCMCInfo
from .mala import mala
from .nets import run_nets
from .result import SampleResult

__all__ = [
    "DISCRETE_METHODS",
    "METHODS",
    "as_init",
    "default_chains",
    "register_method",
    "run_hmc",
    "run_mala",
    "runner_for",
    "sample",
    "warn_unconverged",
]

Runner = Callable[..., SampleResult]
MAX_NUM_STEPS = 1024  # leapfrog steps per HMC move at most (trajectory_length)
RAISED_STEPS = 4  # after a raised target_accept, at most this many times num_steps


# --- argument checks shared by the runners ------------------------------------------------


def _check_mass_matrix(mass_matrix: Any, dim: int, like: Tensor) -> str | Tensor:
    if isinstance(mass_matrix, str):
        if mass_matrix not in MASS_MATRICES:
            raise ValueError(
                f"mass_matrix must be one of {MASS_MATRICES} or a tensor, got {mass_matrix!r}"
            )
        return mass_matrix
    m = torch.as_tensor(mass_matrix).to(like)
    if m.shape not in ((dim,), (dim, dim)):
        raise ValueError(f"mass_matrix must have shape ({dim},) or ({dim}, {dim})")
    GaussianMetric(m)  # validates positivity
    return m


def as_init(init: Any) -> Tensor | None:
    """``init`` as a finite (rows, columns) tensor, else ``ValueError`` naming ``init``
    (strings such as a mistyped ``--option init=[[1,2]``, ragged or non-numeric data, other
    shapes, NaN or inf entries). None stays None."""
    if init is None:
        return None
    what = "a (chains, dim) tensor or nested list of numbers"
    if isinstance(init, (str, bytes)):
        raise ValueError(f"init must be {what}, got the string {init!r}")
    try:
        t = torch.as_tensor(init)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"init must be {what}, got {type(init).__name__} ({err})") from None
    if t.dtype == torch.bool or t.is_complex():
        raise ValueError(f"init must be {what}, got dtype {t.dtype}")
    if t.ndim != 2 or t.shape[0] < 1:
        raise ValueError(f"init must have shape (chains, dim), got {tuple(t.shape)}")
    bad = ~torch.isfinite(t).all(1)
    if bool(bad.any()):
        rows = torch.nonzero(bad).flatten().tolist()
        shown = ", ".join(map(str, rows[:20])) + (", ..." if len(rows) > 20 else "")
        raise ValueError(f"init has NaN or inf entries in {len(rows)} row(s), indices [{shown}]")
    return t


def default_chains(n: int) -> int:
    r"""Chains for n pooled draws when neither ``chains`` nor ``init`` is given:
    max(1, min(64, max(4, n // 1000), n // 100)), i.e. 4 chains (Stan's default) up to
    n = 4000, then one more per 1000 draws up to 64, never fewer than 100 draws per chain.

    Why not more chains: with M chains of D draws and ESS / N = r, the rank-normalised split
    R-hat sits near 1 + 1 / (r D) (B / N estimates var / ESS_per_chain), so R-hat <= 1.01
    needs D of several hundred draws whatever M (measured on a 2-d Gaussian, MALA, 6 seeds:
    max R-hat 1.050 with 10 chains x 100 draws, 1.018 with 4 x 250, 1.003 with 4 x 1000);
    n // 100 chains would pin D at 100 and warn at every n."""
    return max(1, min(64, max(4, n // 1000), n // MIN_DRAWS_PER_CHAIN))


def initial_positions(
    target: Any,
    chains: int | None,
    n: int,
    init: Tensor | None,
    dtype: torch.dtype | None,
    generator: torch.Generator,
) -> Tensor:
    """Walkers (chains, dim): ``init`` as given, else draws from ``target.base``."""
    dim = target.dim
    init = as_init(init)
    if init is not None:
        if init.ndim != 2 or init.shape[1] != dim or init.shape[0] < 1:
            raise ValueError(f"init must have shape (chains, {dim}), got {tuple(init.shape)}")
        if chains is not None and chains != init.shape[0]:
            raise ValueError(f"chains={chains} but init has {init.shape[0]} rows")
        if not init.is_floating_point():
            init = init.double() if dtype is None else init.to(dtype)
        return init.to(dtype) if dtype is not None else init.clone()
    chains = min(64, n) if chains is None else check_int("chains", chains)
    x = target.base.sample(chains, generator)
    return x.to(dtype) if dtype is not None else x


# --- MCMC ---------------------------------------------------------------------------------


def _run_mcmc(
    target: Any,
    n: int,
    seed: int,
    init: Tensor | None,
    method: str,
    build: Callable[[CountedDensity, float, GaussianMetric | None, float | None], Kernel],
    chains: int | None,
    warmup: int,
    thin: int,
    step_size: float | None,
    target_accept: float,
    mass_matrix: str | Tensor,
    dtype: torch.dtype | None,
    progress: bool,
    make_info: Callable[..., MCMCInfo],
    max_target_accept: float | None = None,
) -> SampleResult:
    n = check_int("n", n)
    warmup, thin = check_int("warmup", warmup, 0), check_int("thin", thin)
    target_accept = check_fraction("target_accept", target_accept)
    if max_target_accept is not None:  # a cap below target_accept: no raise
        max_target_accept = check_fraction("max_target_accept", max_target_accept)
    if step_size is not None and not (isinstance(step_size, (int, float)) and step_size > 0):
        raise ValueError(f"step_size must be a positive number or None, got {step_size!r}")
    density = CountedDensity(target)
    generator = make_generator(seed)
    if chains is None and init is None:
        chains = default_chains(n)
    x0 = initial_positions(target, chains, n, init, dtype, generator)
    mass_matrix = _check_mass_matrix(mass_matrix, target.dim, x0)
    chains = x0.shape[0]
    per_chain = math.ceil(n / chains)
    state = build(density, 1.0, None, None).init(x0)
    check_initial(state, density.name)

    bar = progress_bar(warmup + per_chain * thin, progress, method)
    adapted = window_adaptation(
        density,
        lambda eps, metric: build(density, eps, metric, None),
        state,
        generator,
        warmup,
        target_accept,
        mass_matrix,
        step_size,
        callback=lambda i: bar.update(1),
        max_target_accept=max_target_accept,
        build_raised=lambda first, eps, metric: build(density, eps, metric, first),
    )
    first = adapted.first_step_size if adapted.rounds else None
    kernel = build(density, adapted.step_size, adapted.metric, first)
    state, draws, trace, acc, step_acc, step_div = adapted.state, [], [], [], [], []
    for i in range(per_chain * thin):
        state, info = kernel.step(generator, state)
        trace.append(state.log_prob)
        acc.append(float(info.acceptance_rate.mean()))
        step_acc.append(info.acceptance_rate.detach())
        step_div.append(info.is_divergent.detach())
        if (i + 1) % thin == 0:
            draws.append(state.position)
        bar.update(1)
    bar.close()
    moves_acc = torch.stack(step_acc).reshape(per_chain, thin, chains)
    moves_div = torch.stack(step_div).reshape(per_chain, thin, chains)
    divergent = int(moves_div.sum())

    metric = adapted.metric
    chain_info = make_info(
        target=density.name,
        chains=chains,
        warmup=len(adapted.acceptance),
        thin=thin,
        draws_per_chain=per_chain,
        step_size=adapted.step_size,
        mass_matrix="identity" if metric is None else ("dense" if metric.dense else "diag"),
        inverse_mass_matrix=None if metric is None else metric.inverse_mass_matrix,
        divergences=divergent,
        warmup_acceptance=adapted.acceptance,
        warmup_step_size=adapted.step_size_trace,
        target_accept=adapted.target_accept,
        warmup_divergences=adapted.divergences,
        adaptation_rounds=adapted.rounds,
        draw_acceptance=moves_acc.double().mean(1),
        draw_divergent=moves_div.any(1),
    )
    log_prob_trace = torch.cat([adapted.log_prob_trace, torch.stack(trace)])
    result = chain_result(
        torch.stack(draws), n, method, density, sum(acc) / len(acc), log_prob_trace, chain_info
    )
    return warn_unconverged(result, density.name, per_chain, divergent,
                            names=getattr(density.target, "coordinate_names", None))  # fmt: skip


def warn_unconverged(
    result: SampleResult,
    name: str,
    draws_per_chain: int,
    divergences: int = 0,
    names: Sequence[str] | None = None,
) -> SampleResult:
    """Fill ``result.warnings`` with the failed convergence checks of an MCMC result
    (:func:`~.diagnostics.convergence_warnings`; ``names``: the coordinates') and emit each
    as a ConvergenceWarning."""
    result.warnings = convergence_warnings(
        result.rank_rhat, result.ess_bulk, result.ess_tail, draws_per_chain, divergences, names
    )
    for line in result.warnings:
        warnings.warn(f"{name} ({result.method}): {line}", ConvergenceWarning, stacklevel=4)
    return result


def chain_result(
    chain: Tensor,
    n: int,
    method: str,
    density: CountedDensity,
    acceptance_rate: float,
    log_prob_trace: Tensor,
    info: ChainInfo,
) -> SampleResult:
    """The :class:`SampleResult` of parallel chains (draws, chains, dim): the first n pooled
    draws, IAT and ESS per dimension (ESS/N of the worst one), split R-hat, and the
    rank-normalised R-hat, bulk and tail ESS of Vehtari et al. (arXiv:1903.08008);
    ``info`` (a :class:`~.info.ChainInfo`) gets ``ess_per_dim`` and ``rhat_max`` filled."""
    draws, chains, dim = chain.shape
    iat = integrated_autocorr_time(chain)
    ess_dim = draws * chains / iat
    rhat = split_rhat(chain)
    flat = chain.detach().cpu()
    info = dataclasses.replace(
        info, ess_per_dim=ess_dim, rhat_max=float(torch.nan_to_num(rhat, nan=math.inf).max())
    )
    return SampleResult(
        samples=chain.reshape(-1, dim)[:n],
        method=method,
        ess=float((ess_dim.min() / (draws * chains)).clamp(max=1.0)),
        evaluations=density.evaluations,
        acceptance_rate=acceptance_rate,
        iat=iat,
        rhat=rhat,
        rank_rhat=rank_rhat(flat),
        ess_bulk=ess_bulk(flat),
        ess_tail=ess_tail(flat),
        log_prob_trace=log_prob_trace,
        chain_samples=chain,
        info=info,
    )


def run_mala(
    target: Any,
    n: int = 1000,
    seed: int = 0,
    init: Tensor | None = None,
    *,
    chains: int | None = None,
    warmup: int = 500,
    thin: int = 1,
    step_size: float | None = None,
    target_accept: float = 0.574,
    mass_matrix: str | Tensor = "auto",
    dtype: torch.dtype | None = None,
    progress: bool = False,
) -> SampleResult:
    r"""MALA on ``chains`` parallel chains with Stan-style warm-up; ``n`` pooled draws.

    x' = x + (eps^2 / 2) Sigma grad log rho*(x) + eps Sigma^{1/2} xi with the MH test
    (:func:`~.mala.mala`); eps by dual averaging to ``target_accept``, Sigma estimated in
    Stan's windows from the pooled chains (:func:`~.adaptation.window_adaptation`).

    Arguments:
        target: a :class:`~interpolants.targets.Target`.
        n: pooled draws kept after warm-up: ceil(n / chains) per chain, the first n in
            draw-major order are ``samples``.
        seed: seeds the one torch.Generator of the run.
        init: (chains, dim) initial positions; default draws from ``target.base``.
        chains: parallel chains (default :func:`default_chains`: 4 up to n = 4000, then
            n // 1000 up to 64, and at least 100 draws per chain; or init's rows). Fewer
            than 100 draws per chain, when forced, is reported in ``warnings``.
        warmup: adaptation iterations (discarded).
        thin: keep every ``thin``-th iteration.
        step_size: initial eps (None: doubling heuristic), tuned during warm-up.
        target_accept: dual-averaging target (0.574, Roberts & Rosenthal 1998).
        mass_matrix: Sigma = M^{-1}: "auto" (default: "dense" when dim <= min(100,
            2.5 chains), else "diag"), "diag" or "dense" (estimated in the warm-up windows
            from the pooled chains), "identity", or a fixed tensor (dim,) or (dim, dim).
        dtype: walker dtype (default: init's, else the base's).
        progress: show a progress bar.

    Returns:
        :class:`~.result.SampleResult` with the rank-normalised R-hat, bulk and tail ESS per
        dimension; ``info`` is an :class:`~.info.MCMCInfo`; ``warnings`` lists the failed
        convergence checks (:func:`~.diagnostics.convergence_warnings`: R-hat > 1.01, bulk or
        tail ESS < 400, fewer than 100 draws per chain, divergences), each also emitted as a
        :class:`~.diagnostics.ConvergenceWarning`.

    References:
        G. O. Roberts and R. L. Tweedie, Bernoulli 2 (1996) 341-363;
        M. D. Hoffman and A. Gelman (2014), arXiv:1111.4246.
    """
    return _run_mcmc(
        target, n, seed, init, "mala",
        lambda d, eps, metric, first: mala(d, eps, metric),
        chains, warmup, thin, step_size, target_accept, mass_matrix, dtype, progress, MCMCInfo,
    )  # fmt: skip


def run_hmc(
    target: Any,
    n: int = 1000,
    seed: int = 0,
    init: Tensor | None = None,
    *,
    chains: int | None = None,
    warmup: int = 500,
    thin: int = 1,
    step_size: float | None = None,
    num_steps: int = 10,
    trajectory_length: float | None = None,
    jitter: float = 0.5,
    target_accept: float = 0.8,
    max_target_accept: float | None = 0.99,
    mass_matrix: str | Tensor = "auto",
    dtype: torch.dtype | None = None,
    progress: bool = False,
) -> SampleResult:
    r"""HMC (leapfrog, Neal 2011) on parallel chains with Stan-style warm-up.

    Same options as :func:`run_mala`, plus ``num_steps`` L leapfrog steps per move (default
    10) or a ``trajectory_length`` T (then L = ceil(T / eps), at most 1024), and ``jitter``
    j (default 0.5): every move draws its number of steps uniformly in [(1 - j) L,
    (1 + j) L], shared by the chains, which breaks the periodicity of fixed-length
    trajectories (Neal 2011, section 5.4.1; measured on a 30-dimensional logistic regression
    with a dense metric: integrated autocorrelation time 71 with j = 0, 1.1 with j = 0.5).
    ``target_accept`` defaults to 0.8.

    Divergences in warm-up: ``target_accept`` is where the step size's tuning starts. When
    the last slow window and terminal buffer of warm-up make a divergent transition (those
    of dual averaging's first and overshooting steps left out), the target is raised to the
    next of 0.9, 0.95, 0.99 up to ``max_target_accept`` (default 0.99) and that window and
    buffer run again from where the chains are, until a round has none or the cap is
    reached (:func:`~.adaptation.window_adaptation`). A raised target keeps the trajectory
    length eps_1 L of the first round (eps_1 its step size) with more, smaller steps (at
    most 4 L, so that a raise costs at most 4 times the evaluations per move): a smaller
    step at fixed L would only shorten the moves into a random walk.
    Cost: on targets without divergences (a Gaussian) nothing changes; on a funnel the
    extra rounds and longer trajectories cost several times the evaluations.
    ``max_target_accept=None`` (or a value <= target_accept) keeps ``target_accept`` fixed.
    ``info.target_accept``, ``info.warmup_divergences`` and ``info.adaptation_rounds``
    report what warm-up did; divergences left after warm-up are in ``warnings``.

    Convergence checks and ``warnings`` as in :func:`run_mala`, with divergent
    trajectories (energy error above 1000 or not finite) among them; ``info`` is an
    :class:`~.info.HMCInfo`.

    References:
        R. M. Neal, MCMC using Hamiltonian dynamics (2011), arXiv:1206.1901;
        M. D. Hoffman and A. Gelman (2014), arXiv:1111.4246.
    """
    num_steps = check_int("num_steps", num_steps)
    if trajectory_length is not None and not (
        isinstance(trajectory_length, (int, float)) and trajectory_length > 0
    ):
        raise ValueError(f"trajectory_length must be positive, got {trajectory_length!r}")

    def build(d: CountedDensity, eps: float, m: GaussianMetric | None, first: float | None):
        # after a raise of target_accept (first: the step size before it), keep the
        # trajectory length first * num_steps with more, smaller steps
        # (at most RAISED_STEPS x num_steps: the cost of a raise stays bounded)
        if first is None or trajectory_length:
            length, cap = trajectory_length, MAX_NUM_STEPS
        else:
            length, cap = first * num_steps, min(MAX_NUM_STEPS, RAISED_STEPS * num_steps)
        return hmc(d, eps, m, num_steps, length, max_num_steps=cap, jitter=jitter)

    make_info = functools.partial(
        HMCInfo, num_steps=num_steps, trajectory_length=trajectory_length, jitter=jitter
    )
    return _run_mcmc(
        target, n, seed, init, "hmc", build,
        chains, warmup, thin, step_size, target_accept, mass_matrix, dtype, progress, make_info,
        max_target_accept,
    )  # fmt: skip


# --- dispatch -----------------------------------------------------------------------------

METHODS: dict[str, Runner] = {
    "mala": run_mala,
    "hmc": run_hmc,
    "ais": run_ais,
    "smc": run_smc,
    "nets": run_nets,
}


POSTERIOR_SAMPLERS["hmc"] = run_hmc  # the reverse runs' draws of AIS and SMC (.evidence)


DISCRETE_METHODS: dict[str, Runner] = {}
"""The runners of discrete targets (those with ``values`` and ``log_prob_and_ratios``):
"ais", "smc", "metropolis", "leaps", ... (:mod:`.discrete`)."""


def register_method(name: str, runner: Runner, discrete: bool = False) -> None:
    """Make ``sample(target, method=name, ...)`` call ``runner(target, n, seed, init, **opts)``
    (for discrete targets when ``discrete``)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if not callable(runner):
        raise ValueError("runner must be callable as runner(target, n, seed, init, **options)")
    (DISCRETE_METHODS if discrete else METHODS)[name] = runner


def runner_for(target: Any, method: str) -> Runner:
    """The runner of ``method`` for ``target`` (its discrete one for a discrete target)."""
    discrete = hasattr(target, "log_prob_and_ratios") and hasattr(target, "values")
    table, kind = (DISCRETE_METHODS, "discrete") if discrete else (METHODS, "continuous")
    if method not in table:
        other = METHODS if discrete else DISCRETE_METHODS
        hint = f" (it is for {'continuous' if discrete else 'discrete'} targets)" * (
            method in other
        )
        raise ValueError(
            f"unknown method {method!r} for a {kind} target{hint}; methods: "
            f"{', '.join(sorted(table))}"
        )
    return table[method]


def sample(
    target: Any,
    method: str,
    n: int = 1000,
    seed: int = 0,
    init: Tensor | None = None,
    **options: Any,
) -> SampleResult:
    r"""Sample an unnormalised target rho* = exp(log_prob) / Z and estimate what it allows.

    Arguments:
        target: a :class:`~interpolants.targets.Target` (log_prob, dim, base).
        method: "mala", "hmc" (Markov chains), "ais" (annealed importance sampling),
            "smc" (sequential Monte Carlo), "nets" (the non-equilibrium transport sampler,
            :func:`~.nets.run_nets`), "flow-mcmc" and "is" (MCMC and importance sampling
            with a trained transport, :func:`~.flow_mcmc.run_flow_mcmc`,
            :func:`~.flow_mcmc.run_is`), the discrete targets' samplers (docs/discrete.md),
            or any name added with :func:`register_method`.
        n: the number of samples returned.
        seed: seeds the torch.Generator behind every random draw (reproducible).
        init: (chains, dim) starting positions for the MCMC methods (a tensor or nested
            list of finite numbers, else ``ValueError`` naming ``init``, for every method).
        options: the method's options (see :func:`run_mala`, :func:`run_hmc`,
            :func:`~.ais.run_ais`, :func:`~.ais.run_smc`, :func:`~.nets.run_nets`,
            :func:`~.flow_mcmc.run_flow_mcmc`, :func:`~.flow_mcmc.run_is`).

    Returns:
        :class:`~.result.SampleResult`.

    Example:
        >>> target = Target(lambda x: -0.5 * x.square().sum(1), dim=2)
        >>> result = sample(target, method="smc", n=1000, seed=0)
        >>> result.log_Z, result.log_Z_stderr
    """
    runner = runner_for(target, method)
    init = as_init(init)
    if options.get("dtype") is not None:
        float_dtype(options["dtype"])
    params = inspect.signature(runner).parameters
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    config_class = getattr(runner, "config_class", None)  # what its **options take
    if not open_ended or config_class is not None:
        allowed = [k for k, p in params.items() if k not in ("target", "n", "seed", "init")
                   and p.kind is not inspect.Parameter.VAR_KEYWORD]  # fmt: skip
        if open_ended:
            allowed = [*config_class.options(method), *allowed]
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise ValueError(
                f"unknown option(s) {', '.join(map(repr, unknown))} for method {method!r}; "
                f"options: {', '.join(allowed)}"
            )
    return runner(target, n=n, seed=seed, init=init, **options)
