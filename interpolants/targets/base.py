"""The unnormalised target density rho*(x) = exp(log_prob(x)) / Z that samplers work on."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..checks import positive_float, positive_int
from ..distributions import DiagonalNormal, Distribution
from ..divergence import log_prob_and_grad

__all__ = [
    "BASES",
    "Target",
    "choose_base",
    "gaussian_base",
    "log_half_cauchy_draws",
    "log_half_cauchy_quantile",
]

BASES = ("prior", "gaussian")
"""The bases a Bayesian posterior target offers (its ``base=`` option): its prior, so that
annealing tempers the likelihood, or a diagonal Gaussian over the posterior's range."""


class Target:
    r"""An unnormalised density on R^dim, known through ``log_prob`` = log rho* + log Z.

    Arguments:
        log_prob: callable of x (n, dim) returning (n,) unnormalised log densities.
        dim: the event size.
        log_Z: the log normalising constant where known, else None.
        sample: callable (n, generator) -> (n, dim) of exact samples where the target allows it.
        grad_log_prob: callable x -> (n, dim); autograd through ``log_prob`` when None.
        base: the recommended base density for AIS, SMC and learned samplers (anything with
            ``sample(n, generator)`` and ``log_prob(x)``); N(0, base_scale^2 I) when None.
        base_scale: the scale of that default Gaussian base.
        name: a label for plots and metrics.
        references: reference values (observables, how they were obtained) for benchmarks.

    Subclasses may set ``block_size`` = k when the density is a product of independent
    factors over consecutive blocks of k coordinates (many_well: k = 2); learned samplers use
    it to pick a network with that structure (NETS: ``net="blocks"``). None: no such claim.

    Subclasses whose coordinates are named parameters set ``coordinate_names`` (a list of
    ``dim`` distinct names, ``"mu"`` or ``"theta[0]"`` for the entries of a vector ``theta``;
    eight schools, logistic regression, item response, local level); ``SampleResult.summary``
    and ``to_arviz`` name rows and variables by them. None: unnamed (``x[0]``, ``x[1]``, ...).

    Example:
        >>> t = Target(lambda x: -0.5 * x.square().sum(1), dim=2, log_Z=math.log(2 * math.pi))
        >>> t.log_prob(torch.zeros(3, 2)).shape
        torch.Size([3])
    """

    block_size: int | None = None
    coordinate_names: list[str] | None = None

    def __init__(
        self,
        log_prob: Callable[[Tensor], Tensor],
        dim: int,
        log_Z: float | None = None,
        sample: Callable[..., Tensor] | None = None,
        grad_log_prob: Callable[[Tensor], Tensor] | None = None,
        base: Distribution | None = None,
        base_scale: float = 1.0,
        name: str | None = None,
        references: dict[str, Any] | None = None,
    ):
        if not callable(log_prob):
            raise TypeError("log_prob must be a callable of x (n, dim) returning (n,)")
        positive_int("dim", dim)
        positive_float("base_scale", base_scale)
        self._log_prob = log_prob
        self._sample = sample
        self._grad = grad_log_prob
        self.dim = dim
        self.log_Z = None if log_Z is None else float(log_Z)
        self.name = name or "target"
        self.references = dict(references or {})
        self._base = base
        self.base_scale = float(base_scale)

    @property
    def base(self) -> Distribution:
        """The recommended base density (a Gaussian of scale ``base_scale`` by default)."""
        if self._base is None:
            self._base = DiagonalNormal(torch.zeros(self.dim), self.base_scale)
        return self._base

    @property
    def transport_base(self) -> Distribution:
        """The base of learned transports (NETS's drift, flow-MCMC's flow): ``base``, unless
        a subclass sets ``_transport_base`` because its ``base`` does not suit a network
        (a Bayesian prior with a half-Cauchy scale: its draws reach 1e10, and NETS's loss
        overflowed on them, eight schools, training round 46): the Gaussian, or a prior with
        its heavy tail tamed (the centred eight schools)."""
        return getattr(self, "_transport_base", None) or self.base

    def _check_x(self, x: Tensor) -> None:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}), got {tuple(x.shape)}")

    def log_prob(self, x: Tensor) -> Tensor:
        """Unnormalised log density, shape (n,)."""
        self._check_x(x)
        out = self._log_prob(x)
        if not isinstance(out, Tensor) or out.shape != x.shape[:1]:
            shape = tuple(out.shape) if isinstance(out, Tensor) else f"a {type(out).__name__}"
            raise ValueError(
                f"{self.name}: log_prob returned {shape}, not a torch tensor of shape "
                f"({x.shape[0]},), for x of shape {tuple(x.shape)}"
            )
        return out

    def log_prob_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """log rho*(x) and its gradient in one pass: ((n,), (n, dim))."""
        if self._grad is not None:
            return self.log_prob(x), self._grad(x)
        lp, g = log_prob_and_grad(self.log_prob, x, self.name)
        return lp.detach(), g

    def grad_log_prob(self, x: Tensor) -> Tensor:
        """grad_x log rho*(x), shape (n, dim)."""
        self._check_x(x)
        if self._grad is not None:
            return self._grad(x)
        return self.log_prob_and_grad(x)[1]

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Exact samples, where the target allows it."""
        if self._sample is None:
            raise NotImplementedError(f"{self.name} has no exact sampler")
        return self._sample(n, generator)

    def __repr__(self) -> str:
        return f"Target(name={self.name!r}, dim={self.dim}, log_Z={self.log_Z})"


def gaussian_base(dim: int, scale: float, dtype: torch.dtype) -> DiagonalNormal:
    """N(0, scale^2 I) on R^dim in ``dtype``: the usual recommended base of a target."""
    return DiagonalNormal(torch.zeros(dim, dtype=dtype), scale)


def choose_base(base: str, prior: Any, gaussian: Any) -> Any:
    """The base a Bayesian posterior target was asked for by its ``base`` option
    (:data:`BASES`): ``prior`` or ``gaussian``, or a ValueError naming the option."""
    if base not in BASES:
        raise ValueError(f"base must be one of {BASES}, got {base!r}")
    return prior if base == "prior" else gaussian


def log_half_cauchy_quantile(u: Tensor, scale: float) -> Tensor:
    r"""log tau at probability u in (0, 1) for tau ~ half-Cauchy(0, ``scale``): the inverse
    of F(tau) = (2 / pi) atan(tau / scale), tau = scale tan(pi u / 2)."""
    return math.log(scale) + torch.log(torch.tan(0.5 * math.pi * u))


def log_half_cauchy_draws(n: int, scale: float, generator: torch.Generator | None) -> Tensor:
    r"""(n,) float64 draws of log tau for tau ~ half-Cauchy(0, ``scale``), by inversion
    (:func:`log_half_cauchy_quantile`), with U ~ U(0, 1) kept off 0 (log tau finite)."""
    u = torch.rand(n, generator=generator, dtype=torch.float64).clamp(min=1e-300)
    return log_half_cauchy_quantile(u, scale)
