"""SMC's answer to a failed bias check: rerun with heavier moves (``SMCConfig.escalate``).

A forward run whose reverse (upper) bound on log Z lies well above it, whose moves
collapsed, or whose R independent runs spread far more than perfectly mixing moves would
make them (:func:`mixed_stderr`), has walkers that lagged behind their levels
(:mod:`.evidence`). Rather than only warn, SMC reruns afresh with the next configuration of
:data:`ESCALATION` (HMC in the latent space of a flow refitted per level, pocoMC's
preconditioning, arXiv:2207.05652; then that with self-tuned moves, Buchholz, Chopin & Jacob,
arXiv:1808.07730), checked by the same draws of the target, and returns the first run that
passes, or the last. Since passing the same check may be luck, the chosen rerun's error bar
is at least what its upper bound vouches for, gap / 3 + se_upper
(:meth:`.evidence.Sandwich.stderr` with ``strict``). Perfect mixing also bounds every SMC
error bar from below (:func:`stderr_floor`).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from .evidence import Draws, Sandwich
from .result import SampleResult

__all__ = [
    "ESCALATE_SIGMAS",
    "ESCALATION",
    "SPREAD_RATIO",
    "Attempt",
    "heavier_configs",
    "mixed_stderr",
    "reason",
    "run_escalated",
    "stderr_floor",
]

# the reruns, in order (each with the kernel's own target acceptance and initial step size:
# those given were tuned for the first run's kernel)
_HMC_FLOW = {"kernel": "hmc", "mass_matrix": "flow", "target_accept": None, "step_size": None}
ESCALATION: tuple[dict[str, Any], ...] = (
    _HMC_FLOW,
    {**_HMC_FLOW, "decorrelation": 0.1, "moves": 20},  # moves: at least this many
)
# rerun when the upper bound lies this many combined se above the lower one: stricter than
# the warning's 3, since a rerun costs only time (a run that equilibrated is rerun with
# probability about 2.3 %, the normal tail), and a lag of 2-3 se is a bias to be rid of
ESCALATE_SIGMAS = 2.0
# rerun when the R runs' spread (log Z's standard error) exceeds this many times what perfectly
# mixing moves would give: measured over 18 well-mixed default runs (gmm40, logistic regression,
# item response, eight schools non-centred) the ratio was 1.0-2.4; on the funnel-shaped
# posteriors whose estimates were biased it was 3.8-11
SPREAD_RATIO = 3.0


class Attempt(NamedTuple):
    """One forward run with its bias check: the result, the draws of the target used (kept
    for a rerun), the bounds and the warnings the run recorded (emitted once chosen)."""

    result: SampleResult
    draws: Draws | None
    bounds: Sandwich | None
    caught: list[warnings.WarningMessage]
    mixed_stderr: float | None = None  # log Z's se were the moves perfect (mixed_stderr)


def heavier_configs(c: Any, rungs: int) -> list[Any]:
    """The configurations (dataclass copies of the method config ``c``, with escalate=0)
    of the first ``rungs`` of :data:`ESCALATION`, skipping any that would change nothing."""
    out: list[Any] = []
    keys = sorted({k for rung in ESCALATION for k in rung})
    seen = {_key(c, keys)}
    for rung in ESCALATION[:rungs]:
        options = dict(rung, escalate=0)
        if "moves" in rung:
            options["moves"] = max(c.moves, rung["moves"])
        heavier = dataclasses.replace(c, **options)
        if _key(heavier, keys) not in seen:
            seen.add(_key(heavier, keys))
            out.append(heavier)
    return out


def _key(c: Any, keys: list[str]) -> tuple[str, ...]:
    return tuple(repr(getattr(c, k)) for k in keys)  # repr: tensors compare too


def mixed_stderr(levels: float, cess: float, n: int) -> float:
    r"""log Z_hat's standard error if the moves mixed perfectly (the walkers at every level
    independent draws of it before reweighting): Var log Z_hat ~ sum_k chi^2_k / n with
    1 + chi^2_k = 1 / cess_k, the conditional ESS fraction of level k (Del Moral, Doucet &
    Jasra, arXiv:cond-mat/0212648; adaptive tempering holds cess_k = ``cess``), so
    sqrt(levels (1 / cess - 1) / n). Moves that do not mix make the runs' spread larger."""
    return math.sqrt(levels * (1.0 / cess - 1.0) / n)


def stderr_floor(
    levels: float, cess: float, n: int, measured: Sequence[float] = (), runs: int = 1
) -> float:
    """The least error bar of SMC's log Z_hat: its standard error had the moves mixed
    perfectly, with the conditional ESS each level had: ``cess`` (:func:`mixed_stderr`), or
    with a transport (NETS's drift) as ``measured``, log CESS_k of every level of all ``runs``
    runs: sqrt(sum (1 / CESS_k - 1) / runs / n). The spread of R = 10 runs estimates the
    error with 9 degrees of freedom and can come out far below it: logistic regression,
    n = 500, seed 0, 0.021 against 0.042, the estimate 4.4 of it off (over 200 runs of the
    same design the spread was 1.6 times perfect mixing; benchmarks/smc_error_bars.py)."""
    if not measured:
        return mixed_stderr(levels, cess, n)
    excess = sum(math.expm1(-b) for b in measured) / runs
    return math.sqrt(excess / n) if math.isfinite(excess) else 0.0


def reason(attempt: Attempt) -> str | None:
    """Why the walkers lagged, or None: the upper bound above the lower one by more than
    :data:`ESCALATE_SIGMAS` combined standard errors, moves that collapsed, or runs spread
    more than :data:`SPREAD_RATIO` times what perfectly mixing moves would give."""
    b, r = attempt.bounds, attempt.result
    if b is not None and math.isfinite(b.gap) and b.gap > ESCALATE_SIGMAS * b.noise:
        return f"bounds {b.gap / b.noise:.1f} combined se apart"
    if any("moves collapsed" in w for w in r.warnings):
        return "moves collapsed"
    mc = getattr(r.info, "log_Z_mc_stderr", None) or r.log_Z_stderr
    if attempt.mixed_stderr and mc is not None and mc > SPREAD_RATIO * attempt.mixed_stderr:
        return f"runs spread {mc / attempt.mixed_stderr:.1f} times perfect mixing"
    return None


def summary(attempt: Attempt, c: Any, why: str) -> dict[str, Any]:
    """What a discarded attempt made with config ``c`` found, and ``why`` it was discarded
    (its :func:`reason`), for ``info.escalations``."""
    b = attempt.bounds
    return {
        "kernel": c.kernel,
        "mass_matrix": c.mass_matrix if isinstance(c.mass_matrix, str) else "given",
        "moves": c.moves,
        "decorrelation": c.decorrelation,
        "log_Z": attempt.result.log_Z,
        "log_Z_upper": None if b is None else b.upper,
        "evaluations": attempt.result.evaluations,
        "reason": why,
    }


def run_escalated(
    c: Any, heavier: list[Any], attempt: Callable[[Any, Draws | None], Attempt]
) -> SampleResult:
    """Run ``attempt(c, None)``, then ``attempt(h, draws)`` for each config h of ``heavier``
    while the last one lagged (:func:`reason`); the chosen result with every attempt's
    evaluations, the discarded ones in ``info.escalations``, the strict error bar after a
    rerun, and its own warnings emitted (the discarded ones' are not)."""
    used, last = c, attempt(c, None)
    spent, earlier = last.result.evaluations, []
    for h in heavier:
        why = reason(last)
        if why is None:
            break
        earlier.append(summary(last, used, why))
        used, last = h, attempt(h, last.draws)
        spent += last.result.evaluations
    result = last.result
    if earlier:
        result.evaluations = spent
        result.info = dataclasses.replace(result.info, escalations=tuple(earlier))
        mc = getattr(result.info, "log_Z_mc_stderr", None)
        if last.bounds is not None and mc is not None:
            result.log_Z_stderr = last.bounds.stderr(mc, strict=True)
    for w in last.caught:  # the chosen run's warnings, emitted now
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return result
