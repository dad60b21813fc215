r"""Stochastic dynamical systems simulated by the package, for forecasting (arXiv 2403.13724):
pairs (state, state one lag later) to train on, and for any current state an ensemble of the
true SDE, the reference a forecast ensemble is scored against.

- :class:`StochasticLorenz63`: dX = f(X) dt + s dB with the Lorenz (1963) field f (sigma = 10,
  rho = 28, beta = 8/3) and isotropic additive noise s.
- :class:`TwoScaleLorenz96`: Lorenz's (1996) K slow and K J fast variables (K = 8, J = 32,
  F = 20, h = 1, b = c = 10, as Arnold, Moroz & Palmer 2013), with additive noise.
- :class:`~.navier_stokes.StochasticNavierStokes` (its own module): the 2-D stochastic
  vorticity equation on a periodic s x s grid, pseudo-spectral (the paper's test case).
- :class:`StochasticAllenCahn`: the 1-D stochastic Allen-Cahn equation du = (u_xx + 2(u - u^3))
  dt + sqrt(2) dW on [0, 1] with free (Neumann) ends, whose invariant law is the Gibbs measure
  exp(-int u_x^2 / 2 + (1 - u^2)^2 / 2 dx), on d nodes.

Every system draws every random number from the ``generator`` passed and runs in float64. The
ODE-like ones integrate dX = f(X) dt + s dB by Euler-Maruyama (:func:`~interpolants.integrate.
sdeint`, strong order 1 for additive noise) with steps no longer than ``dt``; Allen-Cahn takes
exponential steps that are exact for its linear part, noise included.
"""

from __future__ import annotations

import abc
import math
from typing import Any

import torch
from torch import Tensor

from ..checks import positive_int
from ..integrate import sdeint

__all__ = [
    "SYSTEMS",
    "StochasticAllenCahn",
    "StochasticDynamics",
    "StochasticLorenz63",
    "TwoScaleLorenz96",
    "check_timing",
]


class StochasticDynamics(abc.ABC):
    """An SDE dX = f(X) dt + noise dB on R^dim, observed every ``lag`` time units.

    Subclasses define :meth:`drift` and :meth:`initial` and set ``dim``, ``noise``, ``dt``,
    ``lag`` and ``burn_in`` (the time after which a state from :meth:`initial` is on the
    attractor). A spatially extended system also says how its state lies on a ring of sites
    (:attr:`ring_layout`, the layout options of :class:`~interpolants.nn.RingField`).
    """

    dim: int
    noise: float
    dt: float
    lag: float
    burn_in: float

    @property
    def ring_layout(self) -> dict[str, Any] | None:
        """The state's layout on a ring (``sites``, ``coarse``, ``boundary``), None for a
        system that is not spatially extended."""
        return None

    @abc.abstractmethod
    def drift(self, x: Tensor) -> Tensor:
        """f(x) for states x (n, dim)."""

    @abc.abstractmethod
    def initial(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n starting states (before the burn-in)."""

    def stepping(self, x: Tensor, time: float | None) -> tuple[Tensor, float, int]:
        """(x as float64 checked to be (n, dim) states, the duration ``time`` (default: one
        lag), the number of steps no longer than ``dt`` that cover it): what every
        :meth:`advance` starts from."""
        time = self.lag if time is None else float(time)
        x = torch.as_tensor(x, dtype=torch.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"states must have shape (n, {self.dim}), got {tuple(x.shape)}")
        return x, time, max(1, math.ceil(time / self.dt - 1e-9))

    def advance(
        self, x: Tensor, time: float | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """The states ``time`` (default: one lag) after x, one independent path per row."""
        x, time, steps = self.stepping(x, time)
        eps = 0.5 * self.noise**2
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

    def ensemble_paths(
        self, x_now: Tensor, members: int, lags: int, generator: torch.Generator | None = None
    ) -> Tensor:
        """The true SDE's paths over lags 1..lags from each row of x_now, ``members`` per row:
        (lags, members, rows, dim), the reference of a rollout ensemble."""
        positive_int("members", members)
        x_now = torch.as_tensor(x_now, dtype=torch.float64)
        paths = self.trajectory(x_now.repeat(members, 1), lags, generator)[1:]
        return paths.reshape(lags, members, *x_now.shape)


def check_timing(noise: float, lag: float, dt: float) -> tuple[float, float, float]:
    """(noise, lag, dt) checked: noise >= 0, lag and dt > 0, all finite."""
    for name, value in (("noise", noise), ("lag", lag), ("dt", dt)):
        if not isinstance(value, (int, float)) or not value >= 0 or not math.isfinite(value):
            raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    if not lag > 0 or not dt > 0:
        raise ValueError(f"lag and dt must be positive, got lag={lag!r}, dt={dt!r}")
    return float(noise), float(lag), float(dt)


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
        self.noise, self.lag, self.dt = check_timing(noise, lag, dt)
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


class TwoScaleLorenz96(StochasticDynamics):
    r"""Lorenz's (1996) two-scale model with additive noise on all variables,

        dX_k = (-X_{k-1} (X_{k-2} - X_{k+1}) - X_k + F - (h c / b) sum_j Y_{j,k}) dt + s dB,
        dY_{j,k} = (-c b Y_{j+1,k} (Y_{j+2,k} - Y_{j-1,k}) - c Y_{j,k} + (h c / b) X_k) dt + s dB,

    k = 1..K cyclic, the fast Y a single ring of K J variables (Y_{J+1,k} = Y_{1,k+1}). The state
    is (X, Y) flattened, dim = K + K J; the forecast of the slow variables is its first K
    entries. Defaults K = 8, J = 32, F = 20, h = 1, b = c = 10 (Arnold, Moroz & Palmer 2013,
    Phil. Trans. R. Soc. A 371:20110479), noise 0.1, lag 0.05, dt = 1e-4 (the fast scale moves
    at c b = 100).
    """

    burn_in = 5.0

    def __init__(
        self,
        noise: float = 0.1,
        lag: float = 0.05,
        dt: float = 1e-4,
        *,
        K: int = 8,
        J: int = 32,
        F: float = 20.0,
        h: float = 1.0,
        b: float = 10.0,
        c: float = 10.0,
    ):
        self.noise, self.lag, self.dt = check_timing(noise, lag, dt)
        self.K, self.J = positive_int("K", K), positive_int("J", J)
        self.F, self.h, self.b, self.c = F, h, b, c
        self.dim = K + K * J

    @property
    def ring_layout(self) -> dict[str, Any]:
        """The fast Y on a ring of K J sites, the slow X the coarse field (one per J sites)."""
        return {"sites": self.K * self.J, "coarse": self.K, "boundary": "periodic"}

    def drift(self, x: Tensor) -> Tensor:
        K = self.K
        X, Y = x[:, :K], x[:, K:]
        coupling = self.h * self.c / self.b
        sums = Y.reshape(len(x), K, self.J).sum(-1)
        dX = -X.roll(1, 1) * (X.roll(2, 1) - X.roll(-1, 1)) - X + self.F - coupling * sums
        dY = (
            -self.c * self.b * Y.roll(-1, 1) * (Y.roll(-2, 1) - Y.roll(1, 1))
            - self.c * Y
            + coupling * X.repeat_interleave(self.J, dim=1)
        )
        return torch.cat([dX, dY], dim=1)

    def initial(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """X ~ F / 4 + N(0, 1), Y ~ 0.1 N(0, 1)."""
        X = self.F / 4 + torch.randn(n, self.K, generator=generator, dtype=torch.float64)
        Y = 0.1 * torch.randn(n, self.K * self.J, generator=generator, dtype=torch.float64)
        return torch.cat([X, Y], dim=1)

    def __repr__(self) -> str:
        return (
            f"TwoScaleLorenz96(K={self.K}, J={self.J}, F={self.F}, noise={self.noise}, "
            f"lag={self.lag}, dt={self.dt})"
        )


class StochasticAllenCahn(StochasticDynamics):
    r"""The stochastic Allen-Cahn equation on [0, 1] with free ends (u_x = 0),

        du = (u_xx + 2 (u - u^3)) dt + sqrt(2 T) dW(x, t),

    on d nodes x_j = j h, h = 1 / (d - 1): the Langevin dynamics of the discrete energy E(u) =
    sum_j (u_{j+1} - u_j)^2 / (2 h) + sum_j w_j (1 - u_j^2)^2 / 2 with the trapezoid weights w_j
    (h inside, h / 2 at the ends), du = -W^{-1} grad E dt + sqrt(2 T) W^{-1/2} dB, whose
    invariant law is exp(-E / T) (T = 1: the Gibbs measure the Allen-Cahn samples of arXiv
    2403.13724's companion code are drawn from).

    Steps: in v = W^{1/2} u the linear part L = -W^{-1/2} K W^{-1/2} (K the stiffness matrix)
    is symmetric; in its eigenbasis (lambda_k <= 0) each step is exponential Euler (ETD1),

        c' = e^{lambda dt} c + phi(lambda dt) dt N_c + sqrt(T (e^{2 lambda dt} - 1) / lambda) xi,

    exact for the linear part and its noise (the stationary variance of every mode is right at
    any dt), with the cubic term N explicit.
    """

    burn_in = 2.0

    def __init__(
        self, d: int = 64, lag: float = 0.1, dt: float = 1e-3, *, temperature: float = 1.0
    ):
        self.noise, self.lag, self.dt = check_timing(math.sqrt(2 * temperature), lag, dt)
        if positive_int("d", d) < 3:
            raise ValueError(f"d must be at least 3 nodes, got {d}")
        self.d = self.dim = d
        self.temperature = float(temperature)
        h = 1.0 / (d - 1)
        w = torch.full((d,), h, dtype=torch.float64)
        w[0] = w[-1] = h / 2
        stiffness = torch.zeros(d, d, dtype=torch.float64)
        idx = torch.arange(d - 1)
        stiffness[idx, idx] += 1 / h
        stiffness[idx + 1, idx + 1] += 1 / h
        stiffness[idx, idx + 1] -= 1 / h
        stiffness[idx + 1, idx] -= 1 / h
        self.root_w = w.sqrt()
        linear = -stiffness / (self.root_w[:, None] * self.root_w[None, :])
        self.eigenvalues, self.modes = torch.linalg.eigh(linear)
        self.eigenvalues = self.eigenvalues.clamp(max=0.0)  # the constant mode: 0

    @property
    def ring_layout(self) -> dict[str, Any]:
        """One value per node on a segment with free ends (mirrored at the ends)."""
        return {"sites": self.d, "coarse": 0, "boundary": "reflect"}

    def drift(self, x: Tensor) -> Tensor:
        """u_xx + 2 (u - u^3) (the discrete operator of the class docstring)."""
        v = x * self.root_w
        linear = (v @ (self.modes * self.eigenvalues) @ self.modes.T) / self.root_w
        return linear + self.nonlinear(x)

    def nonlinear(self, u: Tensor) -> Tensor:
        """2 (u - u^3), the double-well force."""
        return 2 * (u - u**3)

    def initial(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Small random fields: 0.1 N(0, I)."""
        return 0.1 * torch.randn(n, self.dim, generator=generator, dtype=torch.float64)

    def advance(
        self, x: Tensor, time: float | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        u, time, steps = self.stepping(x, time)
        dt = time / steps
        lam = self.eigenvalues * dt
        decay = torch.exp(lam)
        phi = torch.where(lam < 0, torch.expm1(lam) / lam.where(lam < 0, -1.0), 1.0) * dt
        var = torch.where(
            lam < 0, torch.expm1(2 * lam) / self.eigenvalues.where(lam < 0, -1.0), 2 * dt
        ) * self.temperature  # fmt: skip
        std = var.sqrt()
        c = (u * self.root_w) @ self.modes
        for _ in range(steps):
            forcing = (self.nonlinear((c @ self.modes.T) / self.root_w) * self.root_w) @ self.modes
            noise = torch.randn(c.shape, generator=generator, dtype=torch.float64)
            c = decay * c + phi * forcing + std * noise
        return (c @ self.modes.T) / self.root_w

    def __repr__(self) -> str:
        return f"StochasticAllenCahn(d={self.dim}, lag={self.lag}, dt={self.dt})"


SYSTEMS: dict[str, type[StochasticDynamics]] = {
    "lorenz63": StochasticLorenz63,
    "lorenz96": TwoScaleLorenz96,
    "allen_cahn": StochasticAllenCahn,
}
"""The simulated systems by name (the command line's ``data: {system: NAME}``)."""
