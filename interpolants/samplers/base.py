r"""What every kernel and sampler shares: the state of a batch of walkers, the evaluation
of a log density, the kernel protocol (BlackJAX's ``init`` / ``step``), Gaussian metrics, the
Metropolis accept step, the counted target, the run's generator and argument checks."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor

from ..checks import finite_initial as check_initial
from ..checks import fraction as check_fraction
from ..checks import int_at_least as check_int
from ..divergence import log_prob_and_grad
from ..progress import progress_bar
from .distributed import evaluate_sharded

__all__ = [
    "DIVERGENCE_THRESHOLD",
    "CountedDensity",
    "Evaluation",
    "GaussianMetric",
    "Info",
    "Kernel",
    "LogDensity",
    "MethodConfig",
    "State",
    "as_metric",
    "check_fraction",
    "check_initial",
    "check_int",
    "check_step_size",
    "initializer",
    "make_generator",
    "metropolis",
    "progress_bar",
    "select",
    "standard_normal",
    "uniform",
]

DIVERGENCE_THRESHOLD = 1000.0  # an energy error above this marks a divergent trajectory (Stan)


class Evaluation(NamedTuple):
    """log pi(x) (n,), its gradient (n, dim), and per-walker extras kept with the state."""

    log_prob: Tensor
    grad: Tensor
    aux: tuple[Tensor, ...] = ()


LogDensity = Callable[[Tensor], Evaluation]


class State(NamedTuple):
    """Walkers (n, dim) with their log density (n,), gradient (n, dim) and extras."""

    position: Tensor
    log_prob: Tensor
    grad: Tensor
    aux: tuple[Tensor, ...] = ()


class Info(NamedTuple):
    """What one move did, per walker.

    acceptance_rate: min{1, exp(log alpha)} (0 where the proposal was not finite);
    is_accepted, is_divergent: booleans (n,); energy_error: -log alpha (n,);
    num_evaluations: log-density evaluations spent per walker.
    """

    acceptance_rate: Tensor
    is_accepted: Tensor
    is_divergent: Tensor
    energy_error: Tensor
    num_evaluations: int


class Kernel(NamedTuple):
    """``init(position) -> State`` and ``step(generator, state) -> (State, Info)``."""

    init: Callable[[Tensor], State]
    step: Callable[[torch.Generator, State], tuple[State, Info]]


def standard_normal(generator: torch.Generator, like: Tensor) -> Tensor:
    z = torch.randn(like.shape, generator=generator, dtype=like.dtype, device=generator.device)
    return z.to(like.device)


def uniform(generator: torch.Generator, n: int, like: Tensor) -> Tensor:
    u = torch.rand(n, generator=generator, dtype=like.dtype, device=generator.device)
    return u.to(like.device)


@dataclass(frozen=True)
class GaussianMetric:
    r"""The kinetic energy K(p) = p^T M^{-1} p / 2 of a diagonal or dense mass matrix M.

    ``inverse_mass_matrix`` (dim,) or (dim, dim) is Sigma = M^{-1}, the covariance that the
    adaptation estimates; ``factor`` is its square root (diagonal) or Cholesky factor L with
    Sigma = L L^T. Every method acts on rows of a batch (n, dim).
    """

    inverse_mass_matrix: Tensor
    factor: Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        im = self.inverse_mass_matrix
        if im.ndim == 1:
            if not torch.all(im > 0):
                raise ValueError("inverse_mass_matrix must be positive")
            factor = im.sqrt()
        elif im.ndim == 2 and im.shape[0] == im.shape[1]:
            factor, err = torch.linalg.cholesky_ex(im)
            if int(err) != 0:
                raise ValueError("inverse_mass_matrix must be symmetric positive definite")
        else:
            raise ValueError(
                f"inverse_mass_matrix must have shape (dim,) or (dim, dim), got {tuple(im.shape)}"
            )
        object.__setattr__(self, "factor", factor)

    def copied_into(self, inverse_mass_matrix: Tensor, factor: Tensor) -> GaussianMetric:
        """The same metric held in the given tensors (views of a larger block, say): their
        values are overwritten with this metric's, and nothing is recomputed."""
        inverse_mass_matrix.copy_(self.inverse_mass_matrix)
        factor.copy_(self.factor)
        out = object.__new__(GaussianMetric)
        object.__setattr__(out, "inverse_mass_matrix", inverse_mass_matrix)
        object.__setattr__(out, "factor", factor)
        return out

    @classmethod
    def identity(cls, like: Tensor) -> GaussianMetric:
        """M = I for walkers shaped like ``like`` (n, dim)."""
        return cls(torch.ones(like.shape[-1], dtype=like.dtype, device=like.device))

    @property
    def dense(self) -> bool:
        return self.inverse_mass_matrix.ndim == 2

    def velocity(self, p: Tensor) -> Tensor:
        """M^{-1} p."""
        im = self.inverse_mass_matrix
        return p @ im if self.dense else p * im

    def kinetic_energy(self, p: Tensor) -> Tensor:
        """p^T M^{-1} p / 2, shape (n,)."""
        return 0.5 * (p * self.velocity(p)).sum(-1)

    def sample_momentum(self, generator: torch.Generator, like: Tensor) -> Tensor:
        """p ~ N(0, M) = L^{-T} z."""
        z = standard_normal(generator, like)
        if self.dense:
            return torch.linalg.solve_triangular(self.factor, z, upper=False, left=False)
        return z / self.factor

    def scale(self, z: Tensor) -> Tensor:
        """Sigma^{1/2} z = L z: turns N(0, I) noise into N(0, Sigma)."""
        return z @ self.factor.T if self.dense else z * self.factor

    def whiten(self, v: Tensor) -> Tensor:
        """L^{-1} v, so that |L^{-1} v|^2 = v^T Sigma^{-1} v."""
        if self.dense:
            return torch.linalg.solve_triangular(self.factor.T, v, upper=True, left=False)
        return v / self.factor


def as_metric(inverse_mass_matrix: Tensor | GaussianMetric | None) -> GaussianMetric | None:
    """A :class:`GaussianMetric` from a tensor (or None: the identity, built per batch)."""
    if inverse_mass_matrix is None or isinstance(inverse_mass_matrix, GaussianMetric):
        return inverse_mass_matrix
    return GaussianMetric(torch.as_tensor(inverse_mass_matrix))


def check_step_size(step_size: float) -> float:
    step_size = float(step_size)
    if not (math.isfinite(step_size) and step_size > 0):
        raise ValueError(f"step_size must be a positive number, got {step_size!r}")
    return step_size


def select(mask: Tensor, new: State, old: State) -> State:
    """Per walker: ``new`` where ``mask`` is True, else ``old``."""

    def pick(a: Tensor, b: Tensor) -> Tensor:
        return torch.where(mask.view(-1, *([1] * (a.ndim - 1))), a, b)

    return State(
        pick(new.position, old.position),
        pick(new.log_prob, old.log_prob),
        pick(new.grad, old.grad),
        tuple(pick(a, b) for a, b in zip(new.aux, old.aux, strict=True)),
    )


def metropolis(
    generator: torch.Generator,
    log_alpha: Tensor,
    proposal: State,
    state: State,
    num_evaluations: int,
) -> tuple[State, Info]:
    """Accept each proposal with probability min{1, exp(log_alpha)}.

    A proposal whose log density, gradient or log_alpha is not finite is rejected and
    flagged divergent, as is one with energy error -log_alpha above 1000.
    """
    finite = torch.isfinite(log_alpha) & torch.isfinite(proposal.grad).all(-1)
    finite &= torch.isfinite(proposal.log_prob)
    log_alpha = torch.where(finite, log_alpha, torch.full_like(log_alpha, -math.inf))
    u = uniform(generator, log_alpha.shape[0], log_alpha)
    accepted = u.log() < log_alpha
    rate = log_alpha.clamp(max=0.0).exp()
    divergent = ~finite | (-log_alpha > DIVERGENCE_THRESHOLD)
    info = Info(rate, accepted, divergent, -log_alpha, num_evaluations)
    return select(accepted, proposal, state), info


def initializer(log_density: LogDensity) -> Callable[[Tensor], State]:
    """position -> State: the walkers evaluated by ``log_density``."""

    def init(position: Tensor) -> State:
        ev = log_density(position)
        return State(position, ev.log_prob, ev.grad, tuple(ev.aux))

    return init


class CountedDensity:
    """x -> :class:`Evaluation` of a target's log_prob and gradient, counting the cost.

    ``evaluations`` counts walker-evaluations: one per walker (row of x) per call of
    log_prob with its gradient. Wrong output shapes raise ``ValueError`` naming the target.
    """

    def __init__(self, target: Any):
        if not (callable(getattr(target, "log_prob", None)) and hasattr(target, "dim")):
            raise ValueError(
                "target must be an interpolants.targets.Target (or have log_prob and dim), "
                f"got {type(target).__name__}"
            )
        self.target = target
        self.name = getattr(target, "name", None) or type(target).__name__
        self.evaluations = 0

    def __call__(self, x: Tensor) -> Evaluation:
        """The walkers' log densities and gradients; under a process group each rank
        evaluates its block of rows and the results are all-gathered
        (:func:`~.distributed.evaluate_sharded`); ``evaluations`` counts all rows."""
        lp, g = evaluate_sharded(self._evaluate, x)
        self.evaluations += x.shape[0]
        return Evaluation(lp, g)

    def _evaluate(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if hasattr(self.target, "log_prob_and_ratios"):  # a discrete target: its ratios
            lp, g = self.target.log_prob_and_ratios(x)
            return self._checked(x, lp, g, (*x.shape, len(self.target.values)))
        if hasattr(self.target, "log_prob_and_grad"):
            lp, g = self.target.log_prob_and_grad(x)
        else:
            lp, g = log_prob_and_grad(self.target.log_prob, x, self.name)
        return self._checked(x, lp, g, tuple(x.shape))

    def _checked(self, x: Tensor, lp: Any, g: Any, shape: tuple[int, ...]) -> tuple[Tensor, Tensor]:
        if not isinstance(lp, Tensor) or lp.shape != x.shape[:1]:
            shape = tuple(lp.shape) if isinstance(lp, Tensor) else f"a {type(lp).__name__}"
            raise ValueError(
                f"{self.name}: log_prob returned {shape}, not a torch tensor of shape "
                f"({x.shape[0]},), for x of shape {tuple(x.shape)}"
            )
        if not isinstance(g, Tensor) or g.shape != shape:
            got = tuple(g.shape) if isinstance(g, Tensor) else type(g).__name__
            raise ValueError(f"{self.name}: grad_log_prob returned shape {got}; expected {shape}")
        return lp.detach().to(x.dtype), g.detach().to(x.dtype)


def make_generator(seed: int) -> torch.Generator:
    """The one torch.Generator every random draw of a run comes from."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    return torch.Generator().manual_seed(seed)


class MethodConfig:
    """Base of the samplers' method configurations (dataclasses checked in ``__post_init__``):
    their option names, construction from keyword options with unknown names refused, and
    copies with options replaced (numpyro's kernel objects against the run's own settings)."""

    method: ClassVar[str] = "method"

    @classmethod
    def reads(cls, name: str, method: str | None) -> bool:
        """Whether ``method`` (None: any) takes option ``name``; all of them by default."""
        return True

    @classmethod
    def options(cls, method: str | None = None) -> list[str]:
        """The option names, in order (those ``method`` takes, when given)."""
        return [f.name for f in dataclasses.fields(cls) if cls.reads(f.name, method)]  # type: ignore[arg-type]

    @classmethod
    def check_names(cls, options: dict[str, Any], method: str | None = None) -> None:
        """A ValueError naming the unknown options and listing the known ones."""
        known = cls.options(method)
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ValueError(
                f"unknown option(s) {', '.join(map(repr, unknown))} for method "
                f"{method or cls.method!r}; options: {', '.join(known)}"
            )

    @classmethod
    def from_options(cls, options: dict[str, Any], method: str | None = None) -> Any:
        """A config from keyword options (checked by the config's ``__post_init__``)."""
        cls.check_names(options, method)
        return cls(**options)

    @classmethod
    def resolve(cls, config: Any, options: dict[str, Any], method: str | None = None) -> Any:
        """A runner's configuration: ``config`` (an instance of this class, or None for the
        defaults) with ``options`` replacing its values (ValueError for another type)."""
        if config is None:
            return cls.from_options(options, method)
        if not isinstance(config, cls):
            raise ValueError(f"config must be a {cls.__name__}, got {type(config).__name__}")
        return config.with_options(options, method) if options else config

    def with_options(self, options: dict[str, Any], method: str | None = None) -> Any:
        """A copy with ``options`` replacing its values, checked as by :meth:`from_options`."""
        self.check_names(options, method)
        return dataclasses.replace(self, **options)  # type: ignore[type-var]
