"""Transports q = T#rho_b for flow-MCMC: a RealNVP coupling flow fitted by maximum likelihood
(arXiv:2105.12603), a continuous flow fitted by the interpolant loss (arXiv:2209.15571), and
their defensive mixture with one Gaussian per mode."""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from ...generative import GenerativeModel
from ...interpolant import Interpolant
from ...losses import velocity_loss
from ...nn import CouplingFlow, MLPField
from ..distributed import shard, sum_across, sum_gradients, world

__all__ = ["TRANSPORTS", "CouplingTransport", "DefensiveMixture", "InterpolantTransport",
           "Transport", "make_transport"]  # fmt: skip

TRANSPORTS = ("coupling", "interpolant")


@runtime_checkable
class Transport(Protocol):
    """q = T#rho_b with a tractable density, fitted step by step to walker positions."""

    def sample_with_log_prob(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """n draws x = T(x_b), x_b ~ rho_b, and log q(x), detached."""
        ...

    def log_prob(self, x: Tensor) -> Tensor:
        """log q(x), detached: (n, dim) -> (n,)."""
        ...

    def fit_step(self, x: Tensor, generator: torch.Generator) -> float:
        """One fitting step on the positions x (n, dim); returns the step's loss."""
        ...


class CouplingTransport:
    r"""A :class:`~interpolants.nn.CouplingFlow` over rho_b fitted by maximum likelihood:
    one Adam step on -(1/B) sum_i log q(x_i) per :meth:`fit_step` (arXiv:2105.12603)."""

    def __init__(
        self,
        dim: int,
        base: Any,
        dtype: torch.dtype,
        layers: int = 8,
        width: int = 64,
        lr: float = 1e-3,
        seed: int = 0,
    ):
        with torch.random.fork_rng():  # seeded initial weights, global stream untouched
            torch.manual_seed(seed)
            self.flow = CouplingFlow(dim, base, layers=layers, width=width).to(dtype)
        self.optimizer = torch.optim.Adam(self.flow.parameters(), lr=lr)

    def sample_with_log_prob(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """n draws of q and their log q (see :class:`Transport`)."""
        with torch.no_grad():
            return self.flow.sample_with_log_prob(n, generator)

    def log_prob(self, x: Tensor) -> Tensor:
        """log q(x) (see :class:`Transport`)."""
        with torch.no_grad():
            return self.flow.log_prob(x)

    def fit_step(self, x: Tensor, generator: torch.Generator) -> float:
        """One fitting step on x; its loss (see :class:`Transport`). Under a process group
        each rank takes its rows of x and the gradients are summed
        (:func:`~..distributed.sum_gradients`)."""
        if world()[0] == 1:
            loss = -self.flow.log_prob(x).mean()
        else:
            loss = -self.flow.log_prob(x[shard(x.shape[0])]).sum() / x.shape[0]
        self.optimizer.zero_grad()
        loss.backward()
        sum_gradients(self.flow.parameters())
        torch.nn.utils.clip_grad_norm_(self.flow.parameters(), 10.0)
        self.optimizer.step()
        return float(sum_across(loss.detach()))


class InterpolantTransport:
    r"""A continuous flow: b_t fitted by the interpolant loss E|b_t(x_t)|^2 - 2 dx_t/dt . b_t
    with x_t = (1 - t) x_b + t x, x_b ~ rho_b, x the walkers (arXiv:2209.15571); q from the
    ODE likelihood with the exact divergence and ``ode_steps`` RK4 steps.

    The MH ratio takes q of a proposal from the forward solve and q of a walker from the
    backward one; these agree only up to the RK4 error (max |difference| about 1e-3 at 8 steps
    and 1e-5 at 20 on the test's 2D target), so the chain's invariant law is exact only as
    ``ode_steps`` grows; the coupling transport has no such error."""

    def __init__(
        self,
        dim: int,
        base: Any,
        dtype: torch.dtype,
        width: int = 128,
        depth: int = 3,
        lr: float = 1e-3,
        ode_steps: int = 20,
        seed: int = 0,
    ):
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.net = MLPField(dim, width=width, depth=depth).to(dtype)
        self.interpolant = Interpolant("linear")
        self.model = GenerativeModel(self.interpolant, self.net, base=base)
        self.base, self.dtype, self.ode_steps = base, dtype, ode_steps
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=lr)

    def sample_with_log_prob(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """n draws of q and their log q (see :class:`Transport`)."""
        x0 = self.base.sample(n, generator).to(self.dtype)
        from ...integrate import odeint_with_divergence

        sol = odeint_with_divergence(self.net, x0, 0.0, 1.0, steps=self.ode_steps, solver="rk4")
        return sol.x.detach(), (self.base.log_prob(x0).to(x0) - sol.divergence_integral).detach()

    def log_prob(self, x: Tensor) -> Tensor:
        """log q(x) (see :class:`Transport`)."""
        return self.model.log_prob(x, steps=self.ode_steps, solver="rk4").detach()

    def fit_step(self, x: Tensor, generator: torch.Generator) -> float:
        """One fitting step on x; its loss (see :class:`Transport`)."""
        x0 = self.base.sample(x.shape[0], generator).to(x)
        t = torch.rand(x.shape[0], generator=generator, dtype=x.dtype)
        if world()[0] == 1:
            s = self.interpolant.sample(x0, x, t)
            loss = velocity_loss(self.net(s.t, s.xt), s)
        else:  # the whole batch drawn from the shared stream, this rank's rows evaluated
            rows = shard(x.shape[0])  # (gamma = 0: the linear interpolant draws no noise)
            s = self.interpolant.sample(x0[rows], x[rows], t[rows])
            loss = velocity_loss(self.net(s.t, s.xt), s, "none").sum() / x.shape[0]
        self.optimizer.zero_grad()
        loss.backward()
        sum_gradients(self.net.parameters())
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), 10.0)
        self.optimizer.step()
        return float(sum_across(loss.detach()))


def make_transport(
    transport: str | Transport, dim: int, base: Any, dtype: torch.dtype, options: dict, seed: int
) -> Transport:
    """The transport named by ``transport`` ("coupling" or "interpolant"), its initial weights
    from ``seed``, or ``transport`` itself when it is already a :class:`Transport`."""
    if not isinstance(transport, str):
        if not isinstance(transport, Transport):
            raise ValueError(
                "transport must be 'coupling', 'interpolant' or an object with "
                "sample_with_log_prob, log_prob and fit_step"
            )
        return transport
    if transport == "coupling":
        return CouplingTransport(dim, base, dtype, seed=seed, **options)
    if transport == "interpolant":
        return InterpolantTransport(dim, base, dtype, seed=seed, **options)
    raise ValueError(f"transport must be one of {TRANSPORTS} or a Transport, got {transport!r}")


class DefensiveMixture:
    r"""q = (1 - lam) T#rho_b + lam (1/K) sum_k N(mu_k, Sigma_k): a transport mixed with one
    Gaussian per group of anchor walkers (defensive importance sampling, Hesterberg 1995).

    mu_k, Sigma_k are the mean and covariance of the anchors of group k over about the last
    half of the training rounds (shrunk towards the diagonal by s = 1 - n_k / 2d if n_k < 2d;
    shrinking a correlated field's covariance more inflates its stiff directions), Sigma_k
    then multiplied by ``scale``^2 (a scale > 1 reaches tails the anchors have not explored
    yet; radial_velocity's third mode needed 1.5), refitted every training round by
    :meth:`refit`; frozen with the transport. The density is
    evaluated as this mixture, so the independent MH move through q stays exact; since
    q >= lam N_k / K, every initial mode keeps proposal mass, and the importance weights
    rho*/q stay bounded where a Gaussian tail covers the target's.
    """

    def __init__(self, transport: Transport, lam: float, scale: float = 1.0):
        self.transport, self.lam, self.scale = transport, float(lam), float(scale)
        self.means: Tensor | None = None
        self.chol: Tensor | None = None
        self._sums: list | None = None

    def refit(self, groups: list[Tensor], memory: float = 0.0) -> None:
        """Add the anchors' positions of this round, one (n_k, dim) tensor per group, to
        moment sums that keep the fraction ``memory`` of the earlier sums, and refit the
        Gaussians from them."""
        if self._sums is None or len(self._sums) != len(groups):
            self._sums = [None] * len(groups)
        means, chols = [], []
        for k, x in enumerate(groups):
            new = (float(x.shape[0]), x.sum(0), x.T @ x)
            old = self._sums[k]
            if old is not None and memory > 0:
                new = tuple(memory * o + v for o, v in zip(old, new, strict=True))
            self._sums[k] = new
            n, s1, s2 = new
            d = x.shape[1]
            m = s1 / n
            c = (s2 - n * torch.outer(m, m)) / max(n - 1, 1)
            s = min(max(1 - n / (2 * d), 0.0), 1.0)  # towards the diagonal only if n < 2d
            c = (1 - s) * c + s * torch.diag(c.diagonal())
            c = c + 1e-8 * c.diagonal().mean().clamp(min=1e-12) * torch.eye(d, dtype=c.dtype)
            means.append(m)
            chols.append(self.scale * torch.linalg.cholesky(c))
        self.means, self.chol = torch.stack(means), torch.stack(chols)

    def component_log_prob(self, x: Tensor) -> Tensor:
        """log N(x; mu_k, Sigma_k), (K, n)."""
        assert self.means is not None and self.chol is not None
        d = x.shape[1]
        diff = (x[None] - self.means[:, None].to(x)).transpose(1, 2)  # (K, d, n)
        z = torch.linalg.solve_triangular(self.chol.to(x), diff, upper=False)
        log_det = self.chol.diagonal(dim1=1, dim2=2).log().sum(1).to(x)  # (K,)
        return -0.5 * z.square().sum(1) - log_det[:, None] - 0.5 * d * math.log(2 * math.pi)

    def _gauss_log_prob(self, x: Tensor) -> Tensor:
        lp = self.component_log_prob(x)
        return torch.logsumexp(lp, 0) - math.log(lp.shape[0])

    def log_prob(self, x: Tensor) -> Tensor:
        """log q(x) (see :class:`Transport`)."""
        if self.means is not None and self.lam == 1:
            return self._gauss_log_prob(x)
        lq = self.transport.log_prob(x).to(x)
        if self.means is None or self.lam == 0:
            return lq
        return torch.logaddexp(
            math.log1p(-self.lam) + lq, math.log(self.lam) + self._gauss_log_prob(x)
        )

    def sample_with_log_prob(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """n draws of q and their log q (see :class:`Transport`)."""
        if self.means is None or self.lam == 0:
            return self.transport.sample_with_log_prob(n, generator)
        chol, means = self.chol, self.means
        if self.lam < 1:  # lam = 1: the Gaussians alone, the transport is not run
            x, _ = self.transport.sample_with_log_prob(n, generator)
            x = x.detach()
            chol, means = chol.to(x), means.to(x)
        gauss = torch.rand(n, generator=generator, dtype=torch.float64) < self.lam
        k = torch.randint(means.shape[0], (n,), generator=generator)
        eps = torch.randn(n, means.shape[1], generator=generator, dtype=torch.float64).to(means)
        y = means[k] + (chol[k] @ eps[:, :, None])[:, :, 0]
        x = y if self.lam == 1 else torch.where(gauss[:, None], y, x)
        return x, self.log_prob(x)

    def fit_step(self, x: Tensor, generator: torch.Generator) -> float:
        """One fitting step on x; its loss (see :class:`Transport`)."""
        return self.transport.fit_step(x, generator)
