r"""Stochastic dynamical systems simulated by the package, for forecasting (arXiv 2403.13724):
pairs (state, state one lag later) to train on, and for any current state an ensemble of the
true SDE, the reference a forecast ensemble is scored against.

- :class:`StochasticLorenz63`: dX = f(X) dt + s dB with the Lorenz (1963) field f (sigma = 10,
  rho = 28, beta = 8/3) and isotropic additive noise s.

Every system integrates dX = f(X) dt + s dB by Euler-Maruyama (:func:`~interpolants.integrate.
sdeint`, strong order 1 for additive noise) with ``dt`` no larger than given, draws every random
number from the ``generator`` passed, and runs in float64.
"""

from __future__ import annotations

import abc
import math

import torch
from torch import Tensor

from ..checks import positive_int
from ..integrate import sdeint

__all__ = ["StochasticDynamics", "StochasticLorenz63"]


class StochasticDynamics(abc.ABC):
    """An SDE dX = f(X) dt + noise dB on R^dim, observed every ``lag`` time units.

    Subclasses define :meth:`drift` and :meth:`initial` and set ``dim``, ``noise``, ``dt``,
    ``lag`` and ``burn_in`` (the time after which a state from :meth:`initial` is on the
    attractor).
    """

    dim: int
    noise: float
    dt: float
    lag: float
    burn_in: float

    @abc.abstractmethod
    def drift(self, x: Tensor) -> Tensor:
        """f(x) for states x (n, dim)."""

    @abc.abstractmethod
    def initial(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n starting states (before the burn-in)."""

    def advance(
        self, x: Tensor, time: float | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """The states ``time`` (default: one lag) after x, one independent path per row."""
        time = self.lag if time is None else float(time)
        steps = max(1, math.ceil(time / self.dt - 1e-9))
        eps = 0.5 * self.noise**2
        x = torch.as_tensor(x, dtype=torch.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"states must have shape (n, {self.dim}), got {tuple(x.shape)}")
        sol = sdeint(lambda t, y: self.drift(y), eps, x, 0.0, time, steps=steps,
                     method="euler", generator=generator)  # fmt: skip
        return sol.x

    def trajectory(self, x: Tensor, lags: int, generator: torch.Generator | None = None) -> Tensor:
        """States at lags 0..lags from x: (lags + 1, n, dim)."""
        positive_int("lags", lags)
        out = [torch.as_tensor(x, dtype=torch.float64)]
        for _ in range(lags):
            out.append(self.advance(out[-1], generator=generator))
        return torch.stack(out)

    def pairs(
        self, n: int, generator: torch.Generator | None = None, *, chains: int = 100
    ) -> tuple[Tensor, Tensor]:
        """n pairs (x_now, x_next) one lag apart: consecutive states of ``chains`` paths
        started on the attractor (after the burn-in)."""
        positive_int("n", n)
        positive_int("chains", chains)
        chains = min(chains, n)
        start = self.advance(self.initial(chains, generator), self.burn_in, generator)
        path = self.trajectory(start, math.ceil(n / chains), generator)
        x_now = path[:-1].reshape(-1, self.dim)[:n]
        x_next = path[1:].reshape(-1, self.dim)[:n]
        return x_now, x_next

    def ensemble(
        self, x_now: Tensor, members: int, generator: torch.Generator | None = None
    ) -> Tensor:
        """The true SDE's forecasts one lag after each row of x_now: (members, rows, dim)."""
        positive_int("members", members)
        x_now = torch.as_tensor(x_now, dtype=torch.float64)
        if x_now.ndim != 2:
            raise ValueError(f"x_now must have shape (rows, {self.dim}), got {tuple(x_now.shape)}")
        repeated = x_now.repeat(members, 1)
        return self.advance(repeated, generator=generator).reshape(members, *x_now.shape)


class StochasticLorenz63(StochasticDynamics):
    r"""The Lorenz (1963) system with additive noise:

        dx = sigma (y - x) dt + s dB_1,  dy = (x (rho - z) - y) dt + s dB_2,
        dz = (x y - beta z) dt + s dB_3,

    sigma = 10, rho = 28, beta = 8/3. Observed every ``lag`` = 0.25 time units by default
    (about a quarter of the Lyapunov time 1 / 0.9), long enough for the forecasts to spread
    and bend along the attractor.

    Arguments:
        noise: s (default 1).
        lag: time between the current and the forecast state.
        dt: Euler-Maruyama step (default 1e-3).
    """

    dim = 3
    burn_in = 20.0

    def __init__(
        self,
        noise: float = 1.0,
        lag: float = 0.25,
        dt: float = 1e-3,
        *,
        sigma: float = 10.0,
        rho: float = 28.0,
        beta: float = 8.0 / 3.0,
    ):
        for name, value in (("noise", noise), ("lag", lag), ("dt", dt)):
            if not isinstance(value, (int, float)) or not value >= 0 or not math.isfinite(value):
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        if not lag > 0 or not dt > 0:
            raise ValueError(f"lag and dt must be positive, got lag={lag!r}, dt={dt!r}")
        self.noise, self.lag, self.dt = float(noise), float(lag), float(dt)
        self.sigma, self.rho, self.beta = sigma, rho, beta

    def drift(self, x: Tensor) -> Tensor:
        a, b, c = x.unbind(-1)
        return torch.stack(
            [self.sigma * (b - a), a * (self.rho - c) - b, a * b - self.beta * c], dim=-1
        )

    def initial(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Points near the attractor: (0, 1, 25) plus unit Gaussian noise."""
        centre = torch.tensor([0.0, 1.0, 25.0], dtype=torch.float64)
        return centre + torch.randn(n, 3, generator=generator, dtype=torch.float64)

    def __repr__(self) -> str:
        return f"StochasticLorenz63(noise={self.noise}, lag={self.lag}, dt={self.dt})"


SYSTEMS = {"lorenz63": StochasticLorenz63}
"""The simulated systems by name (the command line's ``data: {system: NAME}``)."""
