r"""Bidirectional Monte Carlo: log Z sandwiched between forward and reverse annealing.

Forward annealing (AIS, SMC) from the base p_0 to the target gives an unbiased Z_hat, so
E[log Z_hat] <= log Z (Jensen): log Z_hat is a stochastic *lower* bound. Run the same path
backwards, from exact draws of the target pi_1 = rho* / Z down to p_0, with kernels that leave
each level invariant; the reverse weights

    log w_rev = sum_k (beta_{k-1} - beta_k) (log rho* - log p_0)(x_k)

have E[w_rev] = Z_0 / Z = 1 / Z, so -log mean exp(log w_rev) is a stochastic *upper* bound
(Grosse, Ghahramani & Adams, arXiv:1511.02543). When the walkers equilibrate at every level
the two meet; a gap wider than their Monte Carlo errors says that the forward walkers lagged
behind their levels and that log Z_hat, and any error bar made from its spread, is biased.

The reverse run replays the forward run's levels, metrics and step sizes (the pilot's design
for SMC) on the one engine (:func:`~.annealing.anneal` with ``start=1``). Draws of the
target come from ``target.sample`` where it is exact, else from the library's HMC
(registered in :data:`POSTERIOR_SAMPLERS` by :mod:`.api`), or from the user; with
approximate draws the upper bound is approximate too (ibid., section 4), and the HMC run's
failed convergence checks are reported with it.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import Tensor

from .annealing import AnnealedDensity, Level, ReplayMoves, Resampler, TimeGrid, anneal
from .base import State, check_initial
from .diagnostics import ConvergenceWarning, log_mean_exp, log_Z_from_weights

if TYPE_CHECKING:
    from .result import SampleResult

__all__ = [
    "ANNEALING_CAUSE",
    "IMPORTANCE_CAUSE",
    "POSTERIOR_SAMPLERS",
    "REVERSE_SOURCES",
    "Sandwich",
    "check_reverse",
    "count_check",
    "moves_warning",
    "posterior_draws",
    "record_sandwich",
    "report",
    "reverse_anneal",
    "sandwich",
]

REVERSE_SOURCES = ("auto", "exact", "hmc")
POSTERIOR_SAMPLERS: dict[str, Callable[..., Any]] = {}
"""MCMC runners ``(target, n=, seed=, dtype=) -> SampleResult`` for reverse draws ("hmc")."""
AGREE_SIGMAS = 3.0  # bounds farther apart than this many combined standard errors disagree
# an upper bound below the forward estimate by more than this many of its own standard errors
# is not its noise alone (about 2 % of checks): the forward error bar is widened to reach it.
# Measured on the 360 suite rows in benchmarks/results: 3 widened (at most 1.5x), none of the
# NETS rows whose se of 0.001 sits above an HMC-drawn bound with se 0.016
INVERTED_SIGMAS = 2.0
# walkers of the reverse run unless given (at most n): measured on the funnel, 2000 rather
# than 1000 halves the upper bound's variance, enough to catch lags of 0.2-0.3 nats
REVERSE_WALKERS = 2000
HMC_DRAWS_PER_CHAIN = 500  # at least, for the reverse run's HMC draws (R-hat needs several 100)
MIN_MOVED = 0.2  # a level whose moves moved fewer walkers than this share is stuck
STUCK_SHARE = 0.1  # warn when at least this share of the levels (and one) is stuck


ANNEALING_CAUSE = (
    "the walkers lagged behind their levels, so the estimate may be biased low by up to the "
    "gap; log_Z_stderr is widened to cover it. More moves per level (AIS/SMC: "
    "decorrelation=0.1, moves=50, kernel='hmc'), more walkers or a better-trained transport "
    "narrow it"
)
IMPORTANCE_CAUSE = (
    "the proposal q missed mass of the target that the weights cannot restore, so the "
    "estimate may be biased low by up to the gap; log_Z_stderr is widened to cover it. A "
    "longer-trained transport (min_rounds, max_rounds) or a defensive mixture (defensive=) "
    "narrows it"
)


@dataclass(frozen=True)
class Sandwich:
    """log Z between a forward (lower) and a reverse (upper) stochastic bound.

    Attributes:
        lower, lower_stderr: the forward estimate log Z_hat and its standard error.
        upper, upper_stderr: -log mean exp(log w_rev) and its delta-method standard error.
        walkers: reverse walkers.
        source: where their draws of the target came from, "exact", "hmc" or "given".
    """

    lower: float
    lower_stderr: float
    upper: float
    upper_stderr: float
    walkers: int
    source: str

    @property
    def gap(self) -> float:
        """upper - lower: about 0 when the walkers equilibrate, > 0 when they lag."""
        return self.upper - self.lower

    @property
    def noise(self) -> float:
        """The combined standard error of the two bounds."""
        return math.hypot(_finite(self.lower_stderr), _finite(self.upper_stderr))

    @property
    def agree(self) -> bool:
        """Whether |gap| <= 3 combined standard errors (a NaN bound never agrees)."""
        return math.isfinite(self.gap) and abs(self.gap) <= AGREE_SIGMAS * self.noise

    def stderr(self, mc_stderr: float, *, strict: bool = False) -> float:
        r"""The error bar to print with the forward estimate.

        - Bounds that agree (within 3 combined standard errors) with the upper one above:
          max(se, gap / 3), so that 3 error bars reach the upper bound. The truth lies
          (stochastically) between the bounds, and a gap the check's noise cannot flag is
          still a bias the Monte Carlo ``mc_stderr`` does not see: seen on
          item_response_noncentered, -0.33 +- 0.046 with the upper bound 0.34 above
          (+- 0.17), the check without the power to call it.
        - Bounds that disagree, the upper one above: max(se, gap / 3 + se_upper), since the
          truth lies (stochastically) below upper + 3 se_upper.
        - The upper bound below the lower one by more than 3 combined standard errors, or
          by more than 2 of its own (:data:`INVERTED_SIGMAS`): max(se, |gap| / 3), so that 3
          error bars reach it. With exact draws the truth lies (stochastically) below the
          upper bound, so the forward estimate overshot beyond its own error bar (seen on the
          d = 50 mixture: SMC +0.171 +- 0.046 with the upper bound 0.248 below it); with
          other draws the draws may not be the target's (:meth:`warning` names both). The
          second test catches a forward error bar that is itself too small (R = 10 runs
          estimate it with 9 degrees of freedom): the non-centred eight schools at n = 500
          gave +0.064 +- 0.018 (3.6 se) with the upper bound 0.12 below it, 2.8 combined
          but 3.1 of its own standard errors.
        - Otherwise (the upper bound below within both): ``mc_stderr``, its noise.

        ``strict`` takes the second form whatever the gap (and the fourth where it applies):
        for a rerun after a failed check (SMC's escalation), whose own error bar a first
        failure has shown not to be trusted on this target, and whose passing the same check
        may be luck (the first passing run is a selection); then only the upper bound's own
        reach, gap + 3 se_upper, bounds the error."""
        if not math.isfinite(self.gap):
            return mc_stderr
        reach, se = self.gap / AGREE_SIGMAS, _finite(mc_stderr)
        if strict or (self.gap > 0 and not self.agree):
            se = max(se, reach + _finite(self.upper_stderr))
        inverted = -self.gap > INVERTED_SIGMAS * _finite(self.upper_stderr)
        if self.gap > 0 or not self.agree or inverted:
            se = max(se, abs(reach))
        return se if se > 0 else mc_stderr

    def warning(self, name: str, cause: str = ANNEALING_CAUSE) -> str | None:
        """One line when the bounds disagree, else None; ``cause`` says why the forward
        estimate falls short and what narrows the gap (default: annealing's). An upper bound
        below the lower one says that the forward estimate overshot (with exact draws) or
        that the draws are not the target's (given ones)."""
        if self.agree:
            return None
        if not math.isfinite(self.gap):
            return f"{name}: the reverse (upper) bound on log Z is not finite: no bias check"
        if self.gap > 0:
            return (
                f"{name}: the forward and reverse runs disagree: log Z lies between "
                f"{self.lower:.3f} and {self.upper:.3f} (gap {self.gap:.3f} > "
                f"{AGREE_SIGMAS:.0f} x {self.noise:.3f}): {cause}"
            )
        why = (
            "the forward estimate overshot beyond its error bar (rare large weights)"
            if self.source == "exact"
            else "the draws given as the target's are not distributed as the target, or the "
            "forward estimate overshot"
        )
        return (
            f"{name}: the reverse bound lies below the forward estimate by {-self.gap:.3f} "
            f"(> {AGREE_SIGMAS:.0f} x {self.noise:.3f}): {why}; log_Z_stderr is widened to "
            "reach it"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "log_Z_lower": self.lower,
            "log_Z_upper": self.upper,
            "log_Z_upper_stderr": self.upper_stderr,
            "reverse_walkers": self.walkers,
            "reverse_source": self.source,
        }


def _finite(x: float | None) -> float:
    return x if x is not None and math.isfinite(x) else 0.0


class Draws(NamedTuple):
    """Draws of the target for the reverse run: where they came from, the target
    evaluations they cost and the failed convergence checks of the MCMC that made them."""

    x: Tensor
    source: str
    evaluations: int = 0
    warnings: tuple[str, ...] = ()


def check_reverse(reverse: Any) -> Any:
    """``reverse`` itself when it names a source of :data:`REVERSE_SOURCES` or is anything
    but a string (None, False or draws, checked where used), else a ValueError."""
    if isinstance(reverse, str) and reverse not in REVERSE_SOURCES:
        raise ValueError(
            f"reverse must be one of {REVERSE_SOURCES}, None or a (draws, dim) tensor of "
            f"the target's draws, got {reverse!r}"
        )
    return reverse


def posterior_draws(
    target: Any, reverse: Any, walkers: int, generator: torch.Generator, start: Tensor
) -> Draws | None:
    """Draws of the target to start the reverse run from, or None.

    ``reverse``: None or False (no reverse run); "auto" (exact draws when ``target.sample``
    gives them, else the library's HMC, n = ``walkers`` pooled over 4 chains started at the
    rows of ``start``, e.g. forward walkers drawn by weight; if HMC fails, a note and no
    bounds); "exact" (exact draws, or a ValueError); "hmc"; or a tensor (draws, dim) of the
    target given by the user (its last ``walkers`` rows are used)."""
    if reverse is None or reverse is False:
        return None
    if isinstance(reverse, str):
        check_reverse(reverse)
        if reverse != "hmc":
            try:
                return Draws(target.sample(walkers, generator).to(start), "exact")
            except NotImplementedError:
                if reverse == "exact":
                    raise ValueError(
                        f"reverse='exact': {getattr(target, 'name', 'the target')} has no "
                        "exact sampler; use reverse='hmc' or pass reverse= a (draws, dim) "
                        "tensor of its draws"
                    ) from None
        try:
            return mcmc_draws(target, walkers, generator, start)
        except (ValueError, RuntimeError) as err:
            if reverse == "hmc":
                raise
            return Draws(
                start[:0], "hmc", 0, (f"no bias check: the reverse run's HMC failed ({err})",)
            )
    x = torch.as_tensor(reverse)
    if x.ndim != 2 or x.shape[1] != start.shape[1] or x.shape[0] < 2:
        raise ValueError(
            f"reverse must be a (draws >= 2, {start.shape[1]}) tensor of the target's draws, "
            f"got shape {tuple(x.shape)}"
        )
    if not bool(torch.isfinite(x).all()):
        raise ValueError("reverse: the given draws have NaN or inf entries")
    return Draws(x[-walkers:].to(start), "given")


def mcmc_draws(target: Any, walkers: int, generator: torch.Generator, start: Tensor) -> Draws:
    """``walkers`` HMC draws of the target (4 chains of at least 500 draws started at the
    rows of ``start``, evenly thinned; defaults otherwise), seeded from ``generator``; its
    convergence warnings are returned, not emitted."""
    seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
    n = max(walkers, 4 * HMC_DRAWS_PER_CHAIN)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = POSTERIOR_SAMPLERS["hmc"](target, n=n, seed=seed, init=start[:4])
    lines = ()
    if r.warnings:  # one line: which checks failed, the upper bound is approximate
        failed = "; ".join(w.split(":")[0] for w in r.warnings)
        lines = (
            f"the reverse run's HMC draws failed {len(r.warnings)} convergence check(s) "
            f"({failed}): the upper bound is approximate",
        )
    keep = torch.linspace(0, n - 1, walkers).round().long()  # evenly thinned
    return Draws(r.samples[keep].to(start), "hmc", int(r.evaluations), lines)


def reverse_anneal(
    annealed: AnnealedDensity,
    design: list[Level],
    x: Tensor,
    generator: torch.Generator,
    build: Any,
    resample: Resampler | None = None,
) -> Tensor:
    r"""Independent log-estimates of 1 / Z from draws ``x`` of the target annealed from
    beta = 1 down to 0 through the temperatures of ``design`` (a forward run's levels),
    moving at each level beta_k > 0 with that level's metric and step sizes (kernel
    ``build``); see the module docstring.

    Without ``resample`` (reverse AIS): log w_rev (n,) of every walker. With it (reverse SMC,
    ``resample.groups`` populations of consecutive walkers resampled when their ESS falls
    below its threshold): log Z_hat_r (groups,) of every population. Each term's exp is
    unbiased for 1 / Z when the draws are exact."""
    betas = [0.0] + [lv.beta for lv in design]
    grid = torch.tensor(betas[::-1], dtype=torch.float64)
    # reverse level j goes to beta_{K-1-j}; it moves as forward level K-2-j did (none at 0)
    rest = Level(0.0, 0.0, None, [])
    moves = [design[k - 1] if k > 0 else rest for k in range(len(design) - 1, -1, -1)]
    state: State = annealed.state(x, 1.0)
    check_initial(state, annealed.target.name, values=state.aux)
    run = anneal(
        annealed, state, TimeGrid(grid), ReplayMoves(moves, build), generator,
        resample=resample, start=1.0,
    )  # fmt: skip
    if resample is None:
        return run.log_w
    return run.log_z + log_mean_exp(run.log_w.view(resample.groups, -1), -1)


def sandwich(
    lower: float, lower_stderr: float | None, terms: Tensor, walkers: int, source: str
) -> Sandwich:
    """The :class:`Sandwich` of a forward estimate and the reverse run's independent
    log-estimates of 1 / Z (:func:`reverse_anneal`): upper = -log mean exp(terms), with the
    delta-method error over them."""
    neg, se = log_Z_from_weights(terms)
    return Sandwich(lower, _finite(lower_stderr), -neg, se, walkers, source)


def moves_warning(
    name: str, betas: list[float], moved: list[list[float | None]], moves: int
) -> str | None:
    """One line when the walkers' moves failed: no moves at all (SMC then only reweights and
    copies walkers), or at least 10 % of the levels (and one) where the moves of some run
    moved fewer than 20 % of the walkers (acceptance collapse; a single level of a long
    ladder with one move per level is noise), else None. ``moved[r][k]`` is the share
    of run r's walkers that moved at level k (None: no moves there)."""
    if moves == 0:
        return (
            f"{name}: moves=0: the walkers never move, so resampling only copies them and the "
            "estimates rest on the base's draws alone"
        )
    stuck = sorted(
        {k for run in moved for k, m in enumerate(run) if m is not None and m < MIN_MOVED}
    )
    levels = max(len(run) for run in moved)
    if len(stuck) < max(1.0, STUCK_SHARE * levels):
        return None
    worst = min(m for run in moved for m in run if m is not None)
    shown = [f"{betas[k]:.3g}" if k < len(betas) else f"level {k}" for k in stuck[:5]]
    where = ", ".join(shown) + (", ..." if len(stuck) > 5 else "")
    return (
        f"{name}: the moves collapsed at {len(stuck)} level(s) (beta = {where}): as few as "
        f"{worst:.0%} of the walkers moved there, so they did not decorrelate and log Z may be "
        "biased; use more moves per level (decorrelation=0.1, moves=50) or kernel='hmc'"
    )


def record_sandwich(
    result: SampleResult, s: Sandwich | None, notes: tuple[str, ...] = (),
    cause: str = ANNEALING_CAUSE,
) -> None:  # fmt: skip
    """Put the bounds into ``result.info``, widen the error bar, and warn if they disagree
    (with ``cause``, :meth:`Sandwich.warning`), then also with ``notes`` (the reverse draws'
    failed convergence checks, which may explain it; alone when there are no bounds)."""
    name = result.info.target
    line = None
    if s is not None:
        mc = result.log_Z_stderr
        result.info = dataclasses.replace(result.info, log_Z_mc_stderr=mc, **s.as_dict())
        if mc is not None:
            result.log_Z_stderr = s.stderr(mc)
        line = s.warning(name, cause)
    # the draws' own failed checks matter where they may explain a disagreement
    shown = notes if s is None or line is not None else ()
    report(result, ([] if line is None else [line]) + [f"{name}: {n}" for n in shown])


def report(result: SampleResult, lines: list[str]) -> None:
    """Add ``lines`` to ``result.warnings`` and emit each as a ConvergenceWarning."""
    for text in lines:
        result.warnings.append(text)
        warnings.warn(text, ConvergenceWarning, stacklevel=5)


def count_check(result: SampleResult, extra: int) -> None:
    """Add the bias check's ``extra`` target evaluations to ``result.evaluations`` and name
    them in ``info.reverse_evaluations``."""
    if extra > 0:
        result.evaluations += int(extra)
        result.info = dataclasses.replace(result.info, reverse_evaluations=int(extra))
