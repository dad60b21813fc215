r"""Annealed importance sampling and sequential Monte Carlo between a base and the target.

Both move walkers through the path U_beta = (1 - beta) U_0 + beta U_1, i.e.
log pi_beta = (1 - beta) log p_0 + beta log rho*, from the base p_0 = exp(-U_0)
(``target.base`` by default) at beta = 0 to the unnormalised target rho* = exp(-U_1) at
beta = 1, over temperatures 0 = beta_0 < beta_1 < ... < beta_K = 1. At level k every walker
gets the Jarzynski / Neal weight increment

    log w += -(U_{beta_k} - U_{beta_{k-1}})(x) = (beta_k - beta_{k-1}) (log rho* - log p_0)(x)

at its current position x, then makes ``moves`` MALA or HMC steps that leave pi_{beta_k}
invariant. Then Z = E[w] and log Z_hat = log mean exp(log w). Step size and preconditioner
of the moves are re-tuned at every level from the acceptance rate and the walkers' spread;
the kernels stay exact for their level, so the weights, which use only the annealed
densities, stay unbiased.

AIS (:func:`run_ais`): a fixed schedule of K levels, no resampling. Its standard error is
the delta method over the independent walkers: se(log Z_hat) = sqrt(var(w) / n) / mean(w)
(:func:`~.diagnostics.log_Z_from_weights`).

SMC (:func:`run_smc`): the n walkers are split into R = ``batches`` independent runs of
m = n / R walkers, made one after the other. Within a run the walkers are resampled
(systematic resampling) whenever ESS / m falls below ``resample_threshold``, and
log Z_hat_r accumulates log mean exp(log w) at every resampling and at the end. With
adaptive tempering the next beta is found by bisection so that the conditional ESS (Zhou,
Johansen & Aston) of the incremental weights, CESS = (sum_i W_i v_i)^2 / sum_i W_i v_i^2
with v_i = exp((beta' - beta) ell_i), ell = log rho* - log p_0, equals ``cess``. By default
(``pilot=True``) the temperatures, step sizes and preconditioners are found by one extra
pilot run, discarded, and then followed as a fixed design by all R runs, so that each
Z_hat_r is unbiased and the runs are independent. The estimate is Z_hat = mean_r Z_hat_r
and its standard error the delta method over the R runs,
se(log Z_hat) = sd(Z_hat_r) / (sqrt(R) mean(Z_hat_r)), an estimate with R - 1 degrees of
freedom (z-scores made with it follow Student's t rather than the normal law). With adaptive
tempering it is at least what perfectly mixing moves would give, sqrt(sum_k (1/CESS_k - 1) / n)
(Del Moral, Doucet & Jasra), CESS_k = ``cess`` or as measured with a transport: the spread of
10 runs can fall far below that by chance.

References:
    R. M. Neal, Annealed importance sampling, Statistics and Computing 11 (2001) 125-139,
    arXiv:physics/9803008.
    C. Jarzynski, Nonequilibrium equality for free energy differences, PRL 78 (1997) 2690,
    arXiv:cond-mat/9610209.
    P. Del Moral, A. Doucet, A. Jasra, Sequential Monte Carlo samplers, J. R. Stat. Soc. B 68
    (2006) 411-436, arXiv:cond-mat/0212648.
    Y. Zhou, A. M. Johansen, J. A. D. Aston, Toward automatic model comparison: an adaptive
    sequential Monte Carlo approach, JCGS 25 (2016) 701-726, arXiv:1303.3123.
    R. Douc, O. Cappe, E. Moulines, Comparison of resampling schemes for particle filtering
    (2005), arXiv:cs/0507025 (systematic resampling).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor

from .annealing import (
    AdaptiveMoves,
    AdaptiveTempering,
    AnnealedDensity,
    Level,
    ReplayMoves,
    Resampler,
    TimeGrid,
    Transport,
    anneal,
    base_sample,
    next_temperature,
    resolve_base,
    systematic_resample,
)
from .base import (
    CountedDensity,
    GaussianMetric,
    Kernel,
    LogDensity,
    MethodConfig,
    State,
    check_fraction,
    check_initial,
    check_int,
    make_generator,
    progress_bar,
)
from .diagnostics import (
    ess_of_weights,
    log_mean_exp,
    log_Z_from_weights,
    log_Z_over_batches,
    transport_gain,
)
from .escalation import Attempt, heavier_configs, mixed_stderr, run_escalated, stderr_floor
from .evidence import (
    REVERSE_WALKERS,
    Draws,
    Sandwich,
    check_reverse,
    count_check,
    moves_warning,
    posterior_draws,
    record_sandwich,
    report,
    reverse_anneal,
    sandwich,
)
from .hmc import hmc
from .info import AnnealingInfo
from .mala import mala
from .result import SampleResult

__all__ = [
    "AISConfig",
    "AnnealedDensity",
    "SMCConfig",
    "bias_check",
    "kernel_builder",
    "next_temperature",
    "resolve_base",
    "run_ais",
    "run_smc",
    "systematic_resample",
    "temperature_schedule",
]

SCHEDULES = ("linear", "geometric", "sigmoid")
KERNELS = {"mala": 0.574, "hmc": 0.8}  # kernel -> default target acceptance


def temperature_schedule(steps: int, kind: str = "linear") -> Tensor:
    """beta_0 = 0 < ... < beta_K = 1 (float64, K = ``steps``).

    linear: k / K; geometric: 0 then 10^{-4 (1 - (k-1)/(K-1))}; sigmoid: sigma(4 (2k/K - 1))
    rescaled to [0, 1] (Grosse, Maddison & Salakhutdinov 2013, arXiv:1311.4239 use these)."""
    steps = check_int("steps", steps)
    k = torch.arange(steps + 1, dtype=torch.float64)
    if kind == "linear":
        return k / steps
    if kind == "geometric":
        tail = torch.logspace(-4, 0, steps, dtype=torch.float64) if steps > 1 else k[1:]
        return torch.cat([k[:1], tail])
    if kind == "sigmoid":
        s = torch.sigmoid(4.0 * (2 * k / steps - 1))
        return (s - s[0]) / (s[-1] - s[0])
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {kind!r}")


class _Run(NamedTuple):
    """One annealing run: final state, weights since the last resampling, log Z_hat, traces."""

    state: State
    log_w: Tensor  # (m,) float64
    log_z: float
    design: list[Level]
    ess: list[float]
    resamplings: int
    acceptance: list[float]
    correlation: list[float | None]
    moved: list[float | None]
    transport_cess: list[tuple[float, float]]  # per level, with a transport (else empty)


def _anneal_once(
    annealed: AnnealedDensity,
    x: Tensor,
    generator: torch.Generator,
    levels: Any,
    moves: Any,
    resample_threshold: float,
    on_level: Callable[[], None],
    transport: Transport | None = None,
) -> _Run:
    """Anneal one population of walkers x (m, dim) from beta = 0 to 1 with the one engine
    (:func:`~.annealing.anneal`): resampling below ``resample_threshold``, and the
    ``transport`` between temperatures where one is given (NETS's drift)."""
    state = mala(annealed.at(0.0), 1.0).init(x)
    check_initial(state, annealed.target.name, values=state.aux)
    run = anneal(
        annealed, state, levels, moves, generator, transport=transport,
        resample=Resampler(resample_threshold, 1),
        on_level=lambda t, s, w: on_level() if t > 0 else None,
    )  # fmt: skip
    log_z = float(run.log_z[0]) + float(log_mean_exp(run.log_w))
    acceptance = [a for _, a in run.acceptance]
    return _Run(run.state, run.log_w, log_z, run.levels, run.ess, run.resamplings, acceptance,
                run.correlation, run.moved, run.transport_cess)  # fmt: skip


@dataclass
class AISConfig(MethodConfig):
    r"""The options of annealed importance sampling (:func:`run_ais`), checked when built.

    Arguments:
        steps: K, the number of temperatures after beta = 0.
        schedule: "linear", "geometric" or "sigmoid" (:func:`temperature_schedule`).
        kernel: "mala" or "hmc" moves.
        moves: MCMC steps per level.
        num_steps: leapfrog steps per HMC move.
        step_size: initial eps (None: doubling heuristic at beta = 0); re-tuned after every
            move by eps <- eps exp(2 (acceptance - target_accept)).
        target_accept: default 0.574 (MALA) or 0.8 (HMC).
        mass_matrix: "diag" (the walkers' variance at each level), "dense", "identity", a
            fixed Sigma, or "flow": at every level a RealNVP is fitted to the walkers and the
            moves are made in its latent space, where a funnel or a curved posterior looks
            like N(0, I) (preconditioned Monte Carlo, pocoMC, arXiv:2207.05652;
            :mod:`.latent`). Costs wall time for the fits (SMC: the pilot's alone), no
            target evaluations.
        base: the base density p_0, the beta = 0 end of the path: anything with
            sample(n, generator) and log_prob(x) (e.g. a
            :class:`~interpolants.distributions.DiagonalNormal`), or a
            ``torch.distributions.Distribution`` with a vector event (log p_0 = -inf outside
            its support, e.g. ``Independent(Uniform(lo, hi), 1)`` for a target on a box);
            default ``target.base``. Its support must cover the target's.
        base_scale: instead of base, N(0, base_scale^2 I).
        decorrelation: None (``moves`` per level), or r in (0, 1): each level moves until the
            largest |correlation| over coordinates between the walkers' positions before and
            after its moves is below r, at most ``moves`` times (self-tuned moves per level,
            as in Buchholz, Chopin & Jacob, arXiv:1808.07730, and pocoMC; pass a larger
            ``moves`` as the cap). With SMC's pilot the pilot's counts are followed.
        reverse: the bias check of bidirectional Monte Carlo (:mod:`.evidence`, Grosse,
            Ghahramani & Adams, arXiv:1511.02543): after the forward run, draws of the target
            are annealed back to the base along the same levels, giving a stochastic upper
            bound on log Z beside the forward (lower) one, in ``info.log_Z_lower`` /
            ``info.log_Z_upper``. "auto" (default): with exact draws where ``target.sample``
            gives them, else with the library's HMC (4 chains of >= 500 draws started at
            forward walkers; its failed convergence checks are added to the warning when the
            bounds disagree); "exact": exact draws or a ValueError; "hmc"; a
            (draws, dim) tensor: the user's draws of the target (the bound is then as good as
            they are); None: off. When the bounds disagree beyond 3 combined
            standard errors the result warns and ``log_Z_stderr`` is widened to
            max(se, gap / 3 + se_upper); when they agree with the upper one above, or it
            lies below by more than 2 of its own standard errors, to max(se, |gap| / 3)
            (``info.log_Z_mc_stderr`` keeps the Monte Carlo error;
            :meth:`~.evidence.Sandwich.stderr`).
            Its evaluations are counted in ``evaluations``.
        reverse_walkers: walkers of the reverse run (default: n, at most 2000). SMC's reverse
            run resamples too, in min(10, walkers / 100) (at least 2) populations whose
            spread gives the upper bound's standard error; AIS's does not.
    """

    steps: int | None = 100
    schedule: str = "linear"
    kernel: str = "mala"
    moves: int = 1
    num_steps: int = 5
    step_size: float | None = None
    target_accept: float | None = None
    mass_matrix: str | Tensor = "diag"
    base: Any = None
    base_scale: float | None = None
    decorrelation: float | None = None
    reverse: Any = "auto"
    reverse_walkers: int | None = None

    method: ClassVar[str] = "ais"

    def __post_init__(self) -> None:
        if self.steps is not None:
            self.steps = check_int("steps", self.steps)
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        self.moves = check_int("moves", self.moves, 0)
        self.num_steps = check_int("num_steps", self.num_steps)
        if self.kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {tuple(KERNELS)}, got {self.kernel!r}")
        mm = self.mass_matrix
        if isinstance(mm, str) and mm not in ("diag", "dense", "identity", "flow"):
            raise ValueError("mass_matrix must be 'diag', 'dense', 'identity', 'flow' or a tensor")
        e = self.step_size
        if e is not None and not (isinstance(e, (int, float)) and e > 0):
            raise ValueError(f"step_size must be a positive number or None, got {e!r}")
        accept = self.target_accept
        check_fraction("target_accept", KERNELS[self.kernel] if accept is None else accept)
        if self.decorrelation is not None:
            self.decorrelation = check_fraction("decorrelation", self.decorrelation)
        self.reverse = check_reverse(self.reverse)
        if self.reverse_walkers is not None:
            self.reverse_walkers = check_int("reverse_walkers", self.reverse_walkers, 2)

    @property
    def accept(self) -> float:
        """The target acceptance of the moves (the kernel's default unless given)."""
        return KERNELS[self.kernel] if self.target_accept is None else float(self.target_accept)

    def temperatures(self) -> Tensor | None:
        """The fixed ladder, or None for adaptive tempering."""
        return None if self.steps is None else temperature_schedule(self.steps, self.schedule)


@dataclass
class SMCConfig(AISConfig):
    r"""The options of sequential Monte Carlo (:func:`run_smc`): those of :class:`AISConfig`
    (with ``steps=None``, adaptive tempering, and 5 moves per level by default) and

    Arguments:
        cess: the conditional ESS fraction kept between levels (default 0.99, about 3x the
            levels of 0.9: on the real-posterior suite, n = 4000, 0.9 left the non-centred
            item-response model's log Z 0.1-0.3 low on 6 of 10 seeds before any rerun, and
            one seed -0.32 +- 0.05 past the bias check; 0.99 put all six suite posteriors
            within 0.07 on 5 seeds, at about 3x the evaluations; benchmarks/RESULTS.md).
        resample_threshold: resample a batch when its ESS / m falls below this (0.5).
        batches: R independent SMC runs of n / R walkers each, made in turn (default 10);
            log Z_hat's standard error is the delta method over them (None when R = 1), at
            least the perfect-mixing one with adaptive tempering (module docstring).
        pilot: first make one more run of n / R walkers whose temperatures (adaptive
            tempering), step sizes and preconditioners become the fixed design of the R runs,
            and discard it (its evaluations are counted); with a fixed schedule too. The R
            runs then follow a design independent of their walkers, so Z_hat is unbiased and
            they are independent; with pilot=False each run adapts to its own walkers (the
            usual adaptive SMC, whose log Z_hat carries an O(1/m) bias: measured
            +0.018 +- 0.007 for m = 100 on a 4-d Gaussian, against -0.002 +- 0.007 with the
            pilot).
        max_levels: with adaptive tempering, jump to beta = 1 (with a warning) after this many.
        escalate: heavier reruns allowed when the walkers lagged behind their levels: the
            bias check (``reverse``) puts the upper bound more than 2 combined standard errors
            above the lower one, the moves collapsed, or (adaptive tempering, >= 100 walkers
            per run) the R runs spread more than 3 times what perfectly mixing moves give
            (:func:`.escalation.mixed_stderr`): first HMC moves in the latent space
            of a flow fitted per level (``kernel="hmc", mass_matrix="flow"``), then that with
            self-tuned moves (``decorrelation=0.1``, up to ``max(moves, 20)`` per level).
            Each rerun starts afresh (the same reverse draws check it); the first that
            passes, or the last, is returned, with the earlier attempts in
            ``info.escalations`` and all their evaluations counted. A rerun's
            ``log_Z_stderr`` is at least gap / 3 + se_upper, what its upper bound can vouch
            for (:meth:`.evidence.Sandwich.stderr` with ``strict``). Default 2; 0 returns
            the first run as it is.
    """

    steps: int | None = None
    moves: int = 5
    cess: float = 0.99
    resample_threshold: float = 0.5
    batches: int = 10
    pilot: bool = True
    max_levels: int = 1000
    escalate: int = 2

    method: ClassVar[str] = "smc"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.steps is None:
            self.cess = check_fraction("cess", self.cess)
        r = self.resample_threshold
        if not (isinstance(r, (int, float)) and 0 < r <= 1):
            raise ValueError(f"resample_threshold must be in (0, 1], got {r!r}")
        self.resample_threshold = float(r)
        self.batches = check_int("batches", self.batches)
        self.max_levels = check_int("max_levels", self.max_levels)
        self.escalate = check_int("escalate", self.escalate, 0)
        self.pilot = bool(self.pilot)


def _anneal(
    target: Any,
    n: int,
    seed: int,
    init: Any,
    c: AISConfig,
    dtype: torch.dtype | None,
    progress: bool,
    transport: Transport | None = None,
) -> SampleResult:
    """AIS (``c`` an :class:`AISConfig`) or SMC (an :class:`SMCConfig`) on the one engine,
    rerun with heavier moves while the bias check fails (SMC's ``escalate``); ``transport``
    (beta0, beta1, x) -> (T x, log |det grad T|) moves the walkers between temperatures
    (NETS's drift; :func:`run_smc`)."""
    batches = c.batches if isinstance(c, SMCConfig) else 1
    n = check_int("n", n, 2)
    if init is not None:
        raise ValueError(
            f"init: {c.method} cannot start from given walkers, it needs draws of a normalised "
            "base density p_0 (log Z is a ratio to it); pass base= a distribution on the "
            "target's support instead, e.g. interpolants.distributions.DiagonalNormal(mean, "
            "std) or torch.distributions.Independent(torch.distributions.Uniform(lo, hi), 1)"
        )
    if n % batches or n // batches < 2:
        raise ValueError(f"n={n} must be a multiple of batches={batches} with >= 2 per batch")
    generator = make_generator(seed)
    name = getattr(transport, "label", c.method)  # a transport may name the run (NETS)

    def attempt(config: AISConfig, draws: Draws | None) -> Attempt:
        label = name if config is c else f"{name}, heavier rerun"
        return _attempt(target, n, config, dtype, Bar(progress, label), generator, draws,
                        transport)  # fmt: skip

    heavier = heavier_configs(c, c.escalate) if isinstance(c, SMCConfig) else []
    return run_escalated(c, heavier, attempt)


class Bar(NamedTuple):
    """Whether to show a run's progress bar, and its label."""

    shown: bool
    label: str


def _attempt(
    target: Any,
    n: int,
    c: AISConfig,
    dtype: torch.dtype | None,
    progress: Bar,
    generator: torch.Generator,
    draws: Draws | None,
    transport: Transport | None = None,
) -> Attempt:
    """One forward run (R batches after SMC's pilot) and its bias check; the warnings it
    raises are recorded, not shown."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result, design, annealed, density, build = _forward(target, n, c, dtype, progress,
                                                            generator, transport)  # fmt: skip
        forward = result.evaluations
        check = _reverse_check(result, target, c, annealed, design, generator, build, draws)
        count_check(result, density.evaluations - forward + check.evaluations)
    spread = None
    if isinstance(c, SMCConfig) and c.steps is None and c.batches > 1 and n // c.batches >= 100:
        spread = mixed_stderr(float(result.info.levels), c.cess, n)  # asymptotic in m: m >= 100
    return Attempt(result, check.draws, check.bounds, list(caught), spread)


def _forward(
    target: Any,
    n: int,
    c: AISConfig,
    dtype: torch.dtype | None,
    progress: Bar,
    generator: torch.Generator,
    transport: Transport | None = None,
) -> tuple[SampleResult, list[Level], AnnealedDensity, CountedDensity, Any]:
    """The forward runs: the result, the design the reverse run replays, the annealed and
    counted densities and the kernel builder."""
    smc = isinstance(c, SMCConfig)
    batches = c.batches if smc else 1
    density = CountedDensity(target)
    annealed = AnnealedDensity(density, resolve_base(target, c.base, c.base_scale, dtype))
    temperatures = c.temperatures()

    build = kernel_builder(c)
    m = n // batches
    levels = batches * (len(temperatures) - 1) if temperatures is not None else None
    bar = progress_bar(levels, progress.shown, progress.label)

    def run(design: list[Level] | None = None) -> _Run:
        x = base_sample(annealed.base, m, generator, dtype)
        mm = c.mass_matrix
        mm = mm if isinstance(mm, str) else torch.as_tensor(mm).to(x)
        if design is not None:
            betas = torch.tensor([0.0] + [lv.beta for lv in design], dtype=torch.float64)
            levels, mover = TimeGrid(betas), ReplayMoves(design, build)
        elif temperatures is not None:
            levels = TimeGrid(temperatures)
            mover = AdaptiveMoves(c.moves, c.accept, mm, c.step_size, build, smc,
                                  decorrelation=c.decorrelation)  # fmt: skip
        else:
            levels = AdaptiveTempering(c.cess, c.max_levels)  # type: ignore[attr-defined]
            mover = AdaptiveMoves(c.moves, c.accept, mm, c.step_size, build, smc,
                                  decorrelation=c.decorrelation)  # fmt: skip
        threshold = c.resample_threshold if smc else 0.0  # type: ignore[attr-defined]
        return _anneal_once(annealed, x, generator, levels, mover, threshold,
                            lambda: bar.update(1), transport)  # fmt: skip

    design = run().design if smc and c.pilot else None  # type: ignore[attr-defined]
    runs = [run(design) for _ in range(batches)]
    bar.close()
    result = _annealing_result(runs, c, density, m, batches)
    return result, design or runs[0].design, annealed, density, build


class _Check(NamedTuple):
    """The bias check's target evaluations for draws (the reverse run's own are counted by
    the annealed density), the draws and the bounds (None where there are none)."""

    evaluations: int
    draws: Draws | None
    bounds: Sandwich | None


def _reverse_check(
    result: SampleResult, target: Any, c: AISConfig, annealed: AnnealedDensity,
    design: list[Level], generator: torch.Generator, build: Any, draws: Draws | None = None,
) -> _Check:  # fmt: skip
    """The bidirectional bounds (:mod:`.evidence`) into ``result``, per ``c.reverse``, from
    ``draws`` when given (a rerun's, already paid for) else new ones."""
    smc = isinstance(c, SMCConfig)
    start = result.samples[systematic_resample(result.log_weights[None], generator)[0, :4]]
    walkers = c.reverse_walkers or min(result.n, REVERSE_WALKERS)
    drawn = 0
    if draws is None:
        draws = posterior_draws(target, c.reverse, walkers, generator, start)
        drawn = 0 if draws is None else draws.evaluations
    if draws is None:
        return _Check(0, None, None)
    x = draws.x
    if x.shape[0] < 2:  # the HMC of reverse="auto" failed: say so, no bounds
        record_sandwich(result, None, draws.warnings)
        return _Check(drawn, draws, None)
    groups = max(2, min(10, x.shape[0] // 100))
    resample = Resampler(c.resample_threshold, groups) if smc else None  # type: ignore[attr-defined]
    if resample is not None:
        x = x[: x.shape[0] // groups * groups]
    terms = reverse_anneal(annealed, design, x, generator, build, resample)
    bounds = sandwich(result.log_Z, result.log_Z_stderr, terms, x.shape[0], draws.source)
    record_sandwich(result, bounds, draws.warnings)
    return _Check(drawn, draws, bounds)


def kernel_builder(c: AISConfig) -> Callable[[LogDensity, float, Any], Kernel]:
    """(log density, eps, metric) -> the MALA or HMC kernel of the moves of ``c``."""

    def build(log_density: LogDensity, eps: float, metric: GaussianMetric | None) -> Kernel:
        if c.kernel == "hmc":
            return hmc(log_density, eps, metric, num_steps=c.num_steps)
        return mala(log_density, eps, metric)

    return build


def bias_check(
    result: SampleResult,
    target: Any,
    seed: int,
    *,
    reverse: Any = "auto",
    base: Any = None,
    walkers: int | None = None,
    dtype: torch.dtype | None = None,
) -> None:
    r"""The bidirectional bounds of :mod:`.evidence` for a log Z made by any method (NETS):
    an adaptive SMC pilot of ``walkers`` walkers (default min(n, 2000)) from ``base`` finds
    levels, metrics and step sizes, and draws of the target (``reverse``, as for
    :class:`AISConfig`) are annealed back along them. ``result`` gets the bounds in its
    ``info``, the widened error bar and warning where they disagree, and their cost in
    ``evaluations``."""
    c = SMCConfig(reverse=reverse, base=base, reverse_walkers=walkers)
    if c.reverse is None or c.reverse is False or result.log_Z is None:
        return
    density = CountedDensity(target)
    generator = make_generator(seed + 104_729)  # a stream apart from the run's
    annealed = AnnealedDensity(density, resolve_base(target, base, None, dtype))
    build = kernel_builder(c)
    m = c.reverse_walkers or min(result.n, REVERSE_WALKERS)
    moves = AdaptiveMoves(c.moves, c.accept, c.mass_matrix, None, build, True)
    x = base_sample(annealed.base, m, generator, dtype or result.samples.dtype)
    levels = AdaptiveTempering(c.cess, c.max_levels)
    pilot = _anneal_once(annealed, x, generator, levels, moves, c.resample_threshold, lambda: None)
    check = _reverse_check(result, target, c, annealed, pilot.design, generator, build)
    count_check(result, density.evaluations + check.evaluations)


def _annealing_result(
    runs: list[_Run], c: AISConfig, density: CountedDensity, m: int, batches: int
) -> SampleResult:
    """The weighted walkers of R runs, log Z_hat and its error (over walkers for AIS, over
    runs for SMC), and what the runs did."""
    smc = isinstance(c, SMCConfig)
    log_z = torch.tensor([r.log_z for r in runs], dtype=torch.float64)
    log_w = torch.stack([r.log_w for r in runs])  # (R, m)
    log_weights = (log_z[:, None] + torch.log_softmax(log_w, -1) + math.log(m)).flatten()
    samples = torch.cat([r.state.position for r in runs])
    acc = [a for r in runs for a in r.acceptance]
    info = AnnealingInfo(
        target=density.name,
        kernel=c.kernel,
        moves=c.moves,
        levels=sum(len(r.design) for r in runs) / batches,
        pilot=bool(smc and c.pilot),  # type: ignore[attr-defined]
        temperatures=torch.tensor([0.0] + [lv.beta for lv in runs[0].design]),
        ess_per_level=torch.tensor(runs[0].ess, dtype=torch.float64),
        acceptance_per_move=torch.tensor(runs[0].acceptance, dtype=torch.float64),
        step_size_per_move=torch.tensor([e for lv in runs[0].design for e in lv.step_sizes]),
        correlation_per_level=torch.tensor(
            [math.nan if c is None else c for c in runs[0].correlation], dtype=torch.float64
        ),
        transport_gain=transport_gain([lv for r in runs for lv in r.transport_cess]),
    )
    groups = None
    if smc:
        log_Z, stderr = log_Z_over_batches(log_z)
        if c.steps is None:  # adaptive tempering: the levels' conditional ESS is known
            measured = [b for r in runs for _, b in r.transport_cess]
            floor = stderr_floor(info.levels, c.cess, m * batches, measured, batches)  # type: ignore[attr-defined]
            stderr = max(stderr, floor)
        groups = torch.arange(batches).repeat_interleave(m).to(samples.device)
        info = dataclasses.replace(
            info,
            batches=batches,
            walkers_per_batch=m,
            resampling_steps=sum(r.resamplings for r in runs),
            log_Z_batches=log_z,
        )
    else:
        log_Z, stderr = log_Z_from_weights(log_weights)
    result = SampleResult(
        samples=samples,
        method=c.method,
        log_weights=log_weights.to(samples.device),
        log_Z=log_Z,
        log_Z_stderr=stderr,
        ess=float(ess_of_weights(log_weights)),
        evaluations=density.evaluations,
        acceptance_rate=sum(acc) / len(acc) if acc else None,
        groups=groups,
        info=info,
    )
    betas = [lv.beta for lv in runs[0].design]
    stuck = moves_warning(density.name, betas, [r.moved for r in runs], c.moves)
    report(result, [] if stuck is None else [stuck])
    return result


def run_ais(
    target: Any,
    n: int = 1000,
    seed: int = 0,
    init: None = None,
    *,
    config: AISConfig | None = None,
    dtype: torch.dtype | None = None,
    progress: bool = False,
    **options: Any,
) -> SampleResult:
    r"""Annealed importance sampling (Neal 2001, arXiv:physics/9803008) with n walkers.

    log w = sum_k (beta_k - beta_{k-1}) (log rho* - log p_0)(x_{k-1}), x_k from ``moves``
    MALA/HMC steps at beta_k; log Z_hat = log mean exp(log w) with the delta-method standard
    error over walkers. See the module docstring for the path.

    Arguments:
        target: a :class:`~interpolants.targets.Target`.
        n: walkers (samples returned).
        seed: seeds the run's torch.Generator.
        init: must be None: a ValueError says to pass ``base`` instead. Walkers given as
            a tensor are no valid start, AIS needs draws of a normalised p_0 whose density
            enters every weight (and a Gaussian fitted to given rows would still put walkers
            outside a bounded support).
        config: the method's options as an :class:`AISConfig` (steps, schedule, kernel,
            moves, num_steps, step_size, target_accept, mass_matrix, decorrelation, base,
            base_scale, reverse, reverse_walkers: its docstring); ``options`` (any of its
            fields) replace its values.
        dtype: walker dtype (default the base's).
        progress: show a progress bar.

    Returns:
        :class:`~.result.SampleResult` with ``log_weights``, ``log_Z``, ``log_Z_stderr``;
        ``info`` is an :class:`~.info.AnnealingInfo`.
    """
    c = AISConfig.resolve(config, options)
    if c.steps is None:
        raise ValueError("steps must be an integer >= 1 for AIS (adaptive tempering is SMC's)")
    return _anneal(target, n, seed, init, c, dtype, progress)


def run_smc(
    target: Any,
    n: int = 1000,
    seed: int = 0,
    init: None = None,
    *,
    config: SMCConfig | None = None,
    dtype: torch.dtype | None = None,
    progress: bool = False,
    transport: Transport | None = None,
    **options: Any,
) -> SampleResult:
    r"""Sequential Monte Carlo sampler with adaptive tempering and systematic resampling
    (Del Moral, Doucet & Jasra 2006, arXiv:cond-mat/0212648; Zhou et al., arXiv:1303.3123).

    Arguments as :func:`run_ais`, with ``config`` an :class:`SMCConfig` (which adds cess,
    resample_threshold, batches, pilot, max_levels, escalate; ``steps=None``, the default,
    for adaptive tempering), and ``transport``: (beta0, beta1, x) -> (T x, log |det grad T|), a
    map applied after each reweighting, its weight increment log pi(T x) - log pi(x) +
    log |det grad T| (:mod:`.annealing`; NETS's drift, :func:`~.nets.run_nets`), or None.
    The ladder is found without it (from log rho* - log p_0 alone), and the reverse run of
    the bias check anneals back without it.

    Returns:
        :class:`~.result.SampleResult`; ``log_weights`` satisfy log mean exp = log Z_hat and
        ``groups`` labels the batches (used by ``expectation`` for standard errors);
        ``info`` is an :class:`~.info.AnnealingInfo` with the batch fields.
    """
    c = SMCConfig.resolve(config, options)
    return _anneal(target, n, seed, init, c, dtype, progress, transport)


run_ais.config_class = AISConfig  # type: ignore[attr-defined]  # its options, for the CLI
run_smc.config_class = SMCConfig  # type: ignore[attr-defined]
