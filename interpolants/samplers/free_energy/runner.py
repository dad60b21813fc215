r"""``free_energy(target_a, target_b, method)``: Delta F = -log(Z_b / Z_a) from equilibrium
draws of both targets, by Bennett's acceptance ratio, Jarzynski's equality (forward or
reverse, instantaneous or annealed) or escorted by a learned transport (FEAT,
arXiv:2504.11516). Conventions and estimators: :mod:`.estimators`.

Every work comes from the one annealing engine (:func:`~..annealing.anneal`) on the path
log pi_beta = (1 - beta) log rho_a + beta log rho_b, with target a as the path's base p_0
(unnormalised: the engine's log Z is then log(Z_b / Z_a)):

- forward: walkers x ~ a at beta = 0 annealed to beta = 1; their log weight is -W_F;
- reverse: walkers y ~ b at beta = 1 annealed back to beta = 0 (``start=1``); log w = -W_R;
- "bar": one level and no moves each way, W_F = u_b(x) - u_a(x), W_R = u_a(y) - u_b(y), and
  Bennett's estimate from both;
- "jarzynski": ``steps`` levels with ``moves`` MALA moves each (steps=1, moves=0: the
  instantaneous switch, free-energy perturbation), one direction;
- "escorted": one level whose transport is the learned map T of :mod:`.escort` (its inverse
  in reverse); W_F = u_b(T x) - u_a(x) - log |det grad T(x)|; both directions combined by BAR
  (default), or one by Jarzynski.

Draws: ``target.sample`` where it exists (exact, free), else the library's HMC
(``sample(target, "hmc")``; its evaluations counted). Evaluations of both targets are
counted walker by walker (:class:`~..base.CountedDensity` for b, the same count for a as the
path's base) and reported with the draws' cost in ``evaluations``.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor

from ..annealing import (
    AdaptiveMoves,
    AnnealedDensity,
    LangevinMoves,
    TimeGrid,
    anneal,
    mala_kernel,
)
from ..api import sample
from ..base import CountedDensity, MethodConfig, check_fraction, check_int, make_generator
from ..diagnostics import integrated_autocorr_time
from .escort import PATHS, Affine, HeunTransport, Quantile, fit_escort
from .estimators import bar, jarzynski

__all__ = ["METHODS", "FreeEnergyConfig", "FreeEnergyResult", "free_energy"]

METHODS = ("bar", "jarzynski", "escorted")
AFFINE = ("auto", "dense", "diag", "scalar", "quantile", "none")
FIELDS = ("auto", "mlp", "lattice")
DIRECTIONS = {"bar": ("both",), "jarzynski": ("forward", "reverse"),
              "escorted": ("both", "forward", "reverse")}  # fmt: skip
_DRAWS = ("chains", "warmup", "thin")
_READS = {
    "bar": {*_DRAWS},
    "jarzynski": {*_DRAWS, "direction", "steps", "moves"},
    "escorted": {*_DRAWS, "direction", "steps", "train_fraction", "train_steps", "batch_size",
                 "lr", "width", "depth", "periodic", "transport", "path", "fallback", "affine",
                 "crossfit", "field"},
}  # fmt: skip


@dataclass
class FreeEnergyConfig(MethodConfig):
    r"""The options of :func:`free_energy`, checked when built; each method reads its own
    (others are refused by name).

    Arguments:
        direction: "forward" (draws of a), "reverse" (draws of b) or "both" (BAR of the two).
            Default: "forward" for jarzynski, "both" for escorted; bar is always "both".
        steps: jarzynski: annealing levels (1: the instantaneous switch); escorted: Heun steps
            of the learned transport (default 1; escorted 16, or 4 with the lattice field).
        moves: jarzynski: MALA moves per level, step size tuned as AIS's (default 0).
        chains, warmup, thin: the HMC run that makes equilibrium draws of a target without an
            exact sampler (``sample(target, "hmc", chains=, warmup=, thin=)``; default 16
            chains, 300 warm-up iterations, every 2nd draw).
        train_fraction: escorted: the share of each target's n draws that train the escort
            (the first ones of its sampler call; the rest give the works).
        train_steps, batch_size, lr, width, depth: the escort's Adam steps, batch, learning
            rate and network (default 1000, 256, 2e-3; width and depth 64, 2 for the MLP,
            16, 1 for the lattice field).
        field: escorted: the escort's velocity network, "mlp", "lattice" (a circular
            convolutional network, for two fields on one L x L lattice, ``L`` attributes:
            phi^4) or "auto" (lattice where it applies and the space is not a torus, else mlp).
        periodic: the escort sees x on the torus [0, 1)^d (None: when both targets' base is
            the uniform density on the torus, ``UniformTorus``).
        path: escorted: the interpolant the escort is fitted on, "trig" (about the pooled
            mean, variance-preserving: near the identity for nearby targets) or "linear"
            (:mod:`.escort`).
        affine: escorted: start the escort with the affine map that matches the training
            draws' means and covariances (:class:`~.escort.Affine`; never on a torus):
            "dense", "diag" (means and variances), "scalar" (one scale), "quantile" (one
            monotone map of every coordinate matching the pooled coordinates' quantiles,
            :class:`~.escort.Quantile`), "none", or "auto" (quantile on a lattice, else dense
            with at least 10 d training draws, else diag).
        fallback: escorted: hold out a quarter of the training draws and estimate on them
            with the fitted escort, with its premap alone and without transport; the works are
            made with the one of smallest standard error (``info["escort"]``: "flow", the
            premap's name or "none"; ``info["escort_used"]`` False when none). The choice sees
            none of the draws that give the works; its evaluations count.
        crossfit: escorted: fit a second escort on the work draws and make the works of the
            training draws with it, so that all n draws give works (two-fold cross-fitting;
            :func:`_escorted`). None (default): when a target's draws come from HMC, whose
            cost then dwarfs the works' (with exact draws, drawing more is the cheaper way).
        transport: escorted: a given map (t0, t1, x) -> (T x, log |det grad T|) from a to b
            (called with t0=0, t1=1) and its inverse (t0=1, t1=0) instead of a learned one;
            then all n draws give works.
    """

    direction: str | None = None
    steps: int | None = None
    moves: int = 0
    chains: int = 16
    warmup: int = 300
    thin: int = 2
    train_fraction: float = 0.5
    train_steps: int = 1000
    batch_size: int = 256
    lr: float = 2e-3
    width: int | None = None
    depth: int | None = None
    periodic: bool | None = None
    transport: Any = None
    path: str = "trig"
    fallback: bool = True
    affine: str = "auto"
    crossfit: bool | None = None
    field: str = "auto"

    method: ClassVar[str] = "free_energy"

    @classmethod
    def reads(cls, name: str, method: str | None) -> bool:
        return method is None or name in _READS.get(method, set())

    def __post_init__(self) -> None:
        if self.direction is not None and self.direction not in ("forward", "reverse", "both"):
            raise ValueError(
                f"direction must be 'forward', 'reverse' or 'both', got {self.direction!r}"
            )
        if self.steps is not None:
            self.steps = check_int("steps", self.steps)
        self.moves = check_int("moves", self.moves, 0)
        self.chains = check_int("chains", self.chains)
        self.warmup = check_int("warmup", self.warmup, 0)
        self.thin = check_int("thin", self.thin)
        self.train_fraction = check_fraction("train_fraction", self.train_fraction)
        self.train_steps = check_int("train_steps", self.train_steps)
        self.batch_size = check_int("batch_size", self.batch_size)
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if self.width is not None:
            self.width = check_int("width", self.width)
        if self.depth is not None:
            self.depth = check_int("depth", self.depth)
        if self.field not in FIELDS:
            raise ValueError(f"field must be one of {FIELDS}, got {self.field!r}")
        if self.periodic is not None and not isinstance(self.periodic, bool):
            raise ValueError(f"periodic must be True, False or None, got {self.periodic!r}")
        if self.path not in PATHS:
            raise ValueError(f"path must be one of {PATHS}, got {self.path!r}")
        if self.affine not in AFFINE:
            raise ValueError(f"affine must be one of {AFFINE}, got {self.affine!r}")
        if not isinstance(self.fallback, bool):
            raise ValueError(f"fallback must be True or False, got {self.fallback!r}")
        if self.crossfit is not None and not isinstance(self.crossfit, bool):
            raise ValueError(f"crossfit must be True, False or None, got {self.crossfit!r}")
        if self.transport is not None and not callable(self.transport):
            raise ValueError("transport must be a callable (t0, t1, x) -> (T x, log |det|)")

    def resolved(self, method: str, field: str = "mlp") -> tuple[str, int]:
        """(direction, steps) of ``method`` (with the escort's ``field``), defaults filled in."""
        direction = self.direction or DIRECTIONS[method][0]
        if direction not in DIRECTIONS[method]:
            raise ValueError(
                f"direction={direction!r} is not one of {DIRECTIONS[method]} for method {method!r}"
            )
        default = 1 if method != "escorted" else 4 if field == "lattice" else 16
        return direction, self.steps or default


@dataclass
class FreeEnergyResult:
    r"""Delta F = -log(Z_b / Z_a) and how it was made.

    Attributes:
        delta_F, stderr: the estimate and its asymptotic standard error.
        method, direction: what made it.
        n: equilibrium draws of each target the method used (train and work draws).
        evaluations: target evaluations of both targets (draws, works, escort) together;
            ``evaluations_a`` and ``evaluations_b`` apart.
        w_forward, w_reverse: the works (float64), None for a direction not run.
        ess_forward, ess_reverse: ESS/N of the weights exp(-W) of each direction.
        seconds: wall time.
        draws: "exact" or "hmc" per target.
        info: method details (escort losses, failed inversions, levels).
        warnings: the draws' failed convergence checks.
    """

    delta_F: float
    stderr: float
    method: str
    direction: str
    n: int
    evaluations: int
    evaluations_a: int
    evaluations_b: int
    w_forward: Tensor | None = None
    w_reverse: Tensor | None = None
    ess_forward: float | None = None
    ess_reverse: float | None = None
    seconds: float = 0.0
    draws: dict[str, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        ess = ", ".join(
            f"ESS/N {k} {v:.3g}"
            for k, v in (("fwd", self.ess_forward), ("rev", self.ess_reverse))
            if v is not None
        )
        return (
            f"FreeEnergyResult({self.method}, {self.direction}: delta_F = {self.delta_F:.5g} "
            f"+- {self.stderr:.2g}, n={self.n}, evaluations={self.evaluations}"
            + (f", {ess}" if ess else "")
            + f", {self.seconds:.1f} s)"
        )

    def to_dict(self) -> dict[str, Any]:
        """The numbers (no work tensors), JSON-ready."""

        def num(v: float | None) -> float | None:
            return None if v is None or not math.isfinite(v) else float(v)

        return {
            "delta_F": num(self.delta_F),
            "stderr": num(self.stderr),
            "method": self.method,
            "direction": self.direction,
            "n": self.n,
            "evaluations": self.evaluations,
            "evaluations_a": self.evaluations_a,
            "evaluations_b": self.evaluations_b,
            "ess_forward": num(self.ess_forward),
            "ess_reverse": num(self.ess_reverse),
            "seconds": self.seconds,
            "draws": dict(self.draws),
            "info": {k: v for k, v in self.info.items() if isinstance(v, (int, float, str))},
            "warnings": list(self.warnings),
        }


class CountedBase:
    """Target a as the path's base p_0: log_prob counted walker by walker."""

    def __init__(self, target: Any):
        self.target, self.evaluations = target, 0

    def log_prob(self, x: Tensor) -> Tensor:
        self.evaluations += x.shape[0]
        return self.target.log_prob(x)


class _Counts:
    def __init__(self) -> None:
        self.a = self.b = 0


def _check_target(name: str, target: Any) -> None:
    if not (callable(getattr(target, "log_prob", None)) and hasattr(target, "dim")):
        raise ValueError(
            f"{name} must be an interpolants.targets.Target (log_prob and dim), "
            f"got {type(target).__name__}"
        )


class Draws(NamedTuple):
    """Equilibrium draws of a target: rows, their cost in evaluations, "exact" or "hmc", the
    HMC's chains (rows run draw by draw across them; 0 for exact draws), failed checks."""

    x: Tensor
    evaluations: int
    source: str
    chains: int
    warnings: list[str]


def equilibrium_draws(
    target: Any, n: int, generator: torch.Generator, c: FreeEnergyConfig
) -> Draws:
    """n draws of ``target``: exact (``target.sample``) or HMC (``chains``, ``warmup``,
    ``thin`` of ``c``)."""
    try:
        return Draws(target.sample(n, generator), 0, "exact", 0, [])
    except NotImplementedError:
        pass
    seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
    chains = min(c.chains, n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = sample(target, "hmc", n=n, seed=seed, chains=chains, warmup=c.warmup, thin=c.thin)
    name = getattr(target, "name", "target")
    lines = [f"{name}: {w}" for w in r.warnings]
    return Draws(r.samples[:n].detach(), int(r.evaluations), "hmc", chains, lines)


def inefficiency(work: Tensor, offset: int, chains: int) -> float:
    """The statistical inefficiency g = tau >= 1 of works of HMC draws: rows ``offset``, ...
    of the draws, which run draw by draw across ``chains`` chains (1 for exact draws): the
    integrated autocorrelation time of the full draws among them (Geyer's initial monotone
    sequence, :func:`~..diagnostics.integrated_autocorr_time`)."""
    if chains < 1:
        return 1.0
    first = (-offset) % chains
    k = (work.numel() - first) // chains
    if k < 4:
        return 1.0
    w = work[first : first + k * chains].double().view(k, chains)
    w = torch.where(
        torch.isfinite(w), w, w[torch.isfinite(w)].max() if bool(torch.isfinite(w).any()) else 0.0
    )
    tau = float(integrated_autocorr_time(w)[0])
    return max(tau, 1.0) if math.isfinite(tau) else 1.0


def _works(
    target_a: Any, target_b: Any, x: Tensor, reverse: bool, levels: int, moves: int,
    transport: Any, generator: torch.Generator, counts: _Counts,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """The works of walkers x (draws of a, or of b when ``reverse``) through the annealing
    engine, -log w of the run (module docstring), and their instantaneous works (free: the
    engine evaluates both targets at the start)."""
    b = CountedDensity(target_b)
    a = CountedBase(target_a)
    path = AnnealedDensity(b, a)
    grid = torch.linspace(0.0, 1.0, levels + 1, dtype=torch.float64)
    start = 1.0 if reverse else 0.0
    grid = grid.flip(0) if reverse else grid
    mover: Any = LangevinMoves(lambda t: 0.0, 0)  # no moves
    if moves > 0:
        mover = AdaptiveMoves(moves, 0.574, "diag", None, mala_kernel)
    first: list[Tensor] = []

    def instantaneous(t: float, state: Any, log_w: Tensor) -> None:
        if not first:  # at the start: u_b - u_a (forward) or u_a - u_b (reverse)
            lp0, lp1 = state.aux[0].double(), state.aux[1].double()
            first.append(lp1 - lp0 if reverse else lp0 - lp1)

    run = anneal(path, path.state(x, start), TimeGrid(grid), mover, generator,
                 transport=transport, start=start, on_level=instantaneous)  # fmt: skip
    counts.a += a.evaluations
    counts.b += b.evaluations
    return -run.log_w, first[0]


def estimate(
    w_f: Tensor | None, w_r: Tensor | None, g: tuple[float, float] = (1.0, 1.0)
) -> tuple[float, float]:
    """(Delta F, stderr): BAR of both directions, else Jarzynski of the one given; g the
    statistical inefficiencies of the forward and reverse works."""
    if w_f is not None and w_r is not None:
        return bar(w_f, w_r, g)
    if w_f is not None:
        return jarzynski(w_f, g[0])
    if w_r is None:
        raise ValueError("no works")
    neg, se = jarzynski(w_r, g[1])
    return -neg, se


def _ess(w: Tensor | None) -> float | None:
    if w is None:
        return None
    lw = -w
    return float((2 * torch.logsumexp(lw, 0) - torch.logsumexp(2 * lw, 0)).exp() / lw.numel())


def lattice_side(target_a: Any, target_b: Any) -> int | None:
    """L when both targets are fields on one L x L lattice (``L`` with L * L = dim, phi^4)."""
    side = getattr(target_a, "L", None)
    if not isinstance(side, int) or side * side != target_a.dim:
        return None
    return side if getattr(target_b, "L", None) == side else None


def escort_field(c: FreeEnergyConfig, target_a: Any, target_b: Any) -> str:
    """The escort's network, "mlp" or "lattice" (``c.field``; "auto": lattice for two fields on
    one L x L lattice off the torus)."""
    on_lattice = lattice_side(target_a, target_b) is not None and not _periodic(
        c, target_a, target_b
    )
    if c.field == "lattice" and not on_lattice:
        raise ValueError(
            "field='lattice' needs two fields on one L x L lattice (targets with L, dim = L * L)"
        )
    return "lattice" if c.field == "lattice" or (c.field == "auto" and on_lattice) else "mlp"


def _periodic(c: FreeEnergyConfig, target_a: Any, target_b: Any) -> bool:
    if c.periodic is not None:
        return c.periodic
    names = {type(getattr(t, "base", None)).__name__ for t in (target_a, target_b)}
    return names == {"UniformTorus"}


def free_energy(
    target_a: Any,
    target_b: Any,
    method: str = "bar",
    n: int = 2000,
    seed: int = 0,
    *,
    config: FreeEnergyConfig | None = None,
    **options: Any,
) -> FreeEnergyResult:
    r"""Delta F = -log(Z_b / Z_a) between two unnormalised densities, with its standard error.

    Arguments:
        target_a, target_b: :class:`~interpolants.targets.Target` objects of the same dim.
        method: "bar" (Bennett's acceptance ratio of the instantaneous works of n draws of
            each), "jarzynski" (one direction, optionally annealed: ``steps``, ``moves``) or
            "escorted" (a transport learned from the draws, FEAT's escorted BAR by default).
        n: equilibrium draws of each target (of one for one-direction jarzynski), >= 2.
        seed: seeds the one torch.Generator of the run.
        config: a :class:`FreeEnergyConfig`; ``options`` (its fields that ``method`` reads)
            replace its values.

    Returns:
        :class:`FreeEnergyResult` (``delta_F``, ``stderr``, ``evaluations``, works, ESS).

    Raises:
        ValueError: an unknown method or option, n < 2, targets of different dims.

    Example:
        >>> est = si.free_energy(target_a, target_b, method="escorted", n=2000, seed=0)
        >>> est.delta_F, est.stderr
    """
    c = _checked(target_a, target_b, method, n, config, options)
    field_ = escort_field(c, target_a, target_b)
    direction, steps = c.resolved(method, field_)
    start = time.perf_counter()
    run = _Run(target_a, target_b, c, make_generator(seed))
    fwd, rev = direction in ("forward", "both"), direction in ("reverse", "both")
    levels, moves = (steps, c.moves) if method == "jarzynski" else (1, 0)
    if method == "escorted" and c.transport is None:
        w_f, w_r, offset = _escorted(run, n, fwd, rev, steps, field_)
    else:
        transport = c.transport if method == "escorted" else None
        if method == "escorted":
            run.info["escort_used"] = True
        w_f = w_r = None
        if fwd:
            w_f = _works(target_a, target_b, run.draw("a", n), False, levels, moves, transport,
                         run.generator, run.counts)[0]  # fmt: skip
        if rev:
            w_r = _works(target_a, target_b, run.draw("b", n), True, levels, moves, transport,
                         run.generator, run.counts)[0]  # fmt: skip
        offset = 0
    g = (
        1.0 if w_f is None else inefficiency(w_f, offset, run.chains["a"]),
        1.0 if w_r is None else inefficiency(w_r, offset, run.chains["b"]),
    )
    run.info |= {"inefficiency_forward": g[0], "inefficiency_reverse": g[1],
                 "levels": levels, "moves": moves}  # fmt: skip
    delta_f, se = estimate(w_f, w_r, g)
    return FreeEnergyResult(
        delta_F=delta_f,
        stderr=se,
        method=method,
        direction=direction,
        n=n,
        evaluations=run.counts.a + run.counts.b,
        evaluations_a=run.counts.a,
        evaluations_b=run.counts.b,
        w_forward=w_f,
        w_reverse=w_r,
        ess_forward=_ess(w_f),
        ess_reverse=_ess(w_r),
        seconds=time.perf_counter() - start,
        draws=run.draws,
        info=run.info,
        warnings=run.notes,
    )


def _checked(
    target_a: Any, target_b: Any, method: str, n: Any, config: Any, options: dict[str, Any]
) -> FreeEnergyConfig:
    """The run's configuration, after the checks of the arguments (ValueErrors naming them)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; methods: {', '.join(METHODS)}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    _check_target("target_a", target_a)
    _check_target("target_b", target_b)
    if target_a.dim != target_b.dim:
        raise ValueError(
            f"target_b has dim {target_b.dim} but target_a has dim {target_a.dim}; they must agree"
        )
    return FreeEnergyConfig.resolve(config, options, method)


@dataclass
class _Run:
    """The run's targets, configuration, generator, and what it has counted and noted."""

    target_a: Any
    target_b: Any
    c: FreeEnergyConfig
    generator: torch.Generator
    counts: _Counts = field(default_factory=lambda: _Counts())
    info: dict[str, Any] = field(default_factory=dict)
    draws: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    chains: dict[str, int] = field(default_factory=lambda: {"a": 0, "b": 0})

    def draw(self, which: str, m: int) -> Tensor:
        """m equilibrium draws of target ``which`` ("a" or "b"), their cost counted."""
        target = self.target_a if which == "a" else self.target_b
        d = equilibrium_draws(target, m, self.generator, self.c)
        if which == "a":
            self.counts.a += d.evaluations
        else:
            self.counts.b += d.evaluations
        self.draws[which], self.chains[which] = d.source, d.chains
        self.notes.extend(d.warnings)
        return d.x


def _escort(
    run: _Run, x0: Tensor, x1: Tensor, steps: int, field: str, fwd: bool, rev: bool
) -> tuple[HeunTransport | None, str]:
    """The escort fitted on draws x0 of a and x1 of b, and its name: the premap followed by the
    learned flow ("flow"), the premap alone ("quantile", "dense", ...), or None ("none"),
    whichever gives the smallest standard error on a held-out quarter of the draws (with
    ``fallback``; else the flow)."""
    c, a, b = run.c, run.target_a, run.target_b
    periodic = _periodic(c, a, b)
    held = max(2, len(x0) // 4) if c.fallback and len(x0) >= 8 else 0
    fit0, fit1 = x0[: len(x0) - held], x1[: len(x1) - held]
    kind, side = c.affine, lattice_side(a, b)
    if kind == "auto":
        dense = len(fit0) >= 10 * a.dim
        kind = "quantile" if side is not None else "dense" if dense else "diag"
    premap: Affine | Quantile | None = None
    if kind == "quantile" and not periodic:
        premap = Quantile.matching(fit0, fit1)
    elif kind != "none" and not periodic:
        premap = Affine.matching(fit0, fit1, kind)
    run.info["affine"] = "none" if premap is None else kind
    if premap is not None:
        fit0 = premap.forward(fit0.double())[0]
    lattice = side if field == "lattice" else None
    width = c.width or (64 if lattice is None else 16)
    depth = c.depth or (2 if lattice is None else 1)
    field_, losses = fit_escort(
        fit0, fit1, steps=c.train_steps, batch_size=c.batch_size, lr=c.lr, width=width,
        depth=depth, periodic=periodic, generator=run.generator, path=c.path, lattice=lattice,
    )  # fmt: skip
    flow = HeunTransport(field_, steps, premap)
    run.info |= {"train_draws": len(x0), "heun_steps": steps, "periodic": periodic,
                 "field": field,
                 "escort_loss": losses[-1] if losses else math.nan}  # fmt: skip
    if not held:
        return flow, "flow"
    candidates: dict[str, HeunTransport] = {}
    if premap is not None:
        candidates[kind] = HeunTransport(field_, 0, premap)  # no Heun steps: the premap alone
    candidates["flow"] = flow
    errors: dict[str, float] = {}
    for name, transport in candidates.items():
        runs = [
            _works(a, b, x[-held:], reverse, 1, 0, transport, run.generator, run.counts)
            if go else (None, None)
            for x, reverse, go in ((x0, False, fwd), (x1, True, rev))
        ]  # fmt: skip
        if not errors:  # no map: the instantaneous works at the start, free
            errors["none"] = _finite(estimate(runs[0][1], runs[1][1])[1])
        errors[name] = _finite(estimate(runs[0][0], runs[1][0])[1])
    best = min(errors, key=lambda name: (errors[name], name != "none"))
    run.info |= {f"held_out_stderr_{name}": se for name, se in errors.items()}
    run.info["held_out"] = held
    return candidates.get(best), best


def _finite(se: float) -> float:
    """A standard error, or inf where the works failed (NaN: failed inversions, overflow)."""
    return se if math.isfinite(se) else math.inf


def _escorted(
    run: _Run, n: int, fwd: bool, rev: bool, steps: int, field: str
) -> tuple[Tensor | None, Tensor | None, int]:
    """The works of the learned escort and the row where they begin among the sampler's rows.

    One sampler call per target gives n draws; the first k = ``train_fraction`` n fit an
    escort (:func:`_escort`) whose works are those of the last n - k. With ``crossfit`` a
    second escort is fitted on the last n - k and gives the works of the first k, so that
    every draw gives a work from a map fitted without it (two-fold cross-fitting). Pooling
    the works of the two maps keeps Crooks' theorem, and so BAR: each map's forward and
    reverse works come in the same proportions (its fold's size), and Crooks' relation
    P_F(W) exp(-W) = P_R(-W) exp(-Delta F), linear in the pair (P_F, P_R), holds for their
    mixture."""
    c = run.c
    k = max(1, round(c.train_fraction * n))
    if n - k < 2:
        raise ValueError(f"n={n} leaves fewer than 2 draws for the works; raise n")
    xa = run.draw("a", n if fwd or c.crossfit is not False else k)
    xb = run.draw("b", n if rev or c.crossfit is not False else k)
    crossfit = c.crossfit if c.crossfit is not None else "hmc" in run.draws.values()
    folds = [(slice(0, k), slice(k, n))]
    if crossfit:
        folds.append((slice(k, n), slice(0, k)))
    w_f = torch.full((n,), math.nan, dtype=torch.float64) if fwd else None
    w_r = torch.full((n,), math.nan, dtype=torch.float64) if rev else None
    used, failed = [], 0
    for train, work in folds:
        transport, name = _escort(run, xa[train], xb[train], steps, field, fwd, rev)
        used.append(name)
        for w, x, reverse in ((w_f, xa, False), (w_r, xb, True)):
            if w is not None:
                w[work] = _works(run.target_a, run.target_b, x[work], reverse, 1, 0, transport,
                                 run.generator, run.counts)[0]  # fmt: skip
        failed += transport.failed if transport is not None else 0
    run.info |= {"escort_used": any(u != "none" for u in used), "escort": ",".join(used),
                 "failed_inversions": failed, "crossfit": crossfit}  # fmt: skip
    offset = 0 if crossfit else k
    if not crossfit:  # the works of the last n - k draws only
        w_f, w_r = (None if w is None else w[k:] for w in (w_f, w_r))
    return w_f, w_r, offset
