r"""Moves preconditioned by a learned transport: MCMC in the latent space of a flow fitted
to the walkers (the idea of preconditioned Monte Carlo, pocoMC: Karamanis et al.,
arXiv:2207.05652, and of neural-transport HMC, Hoffman et al., arXiv:1903.03704).

At a level with density pi_beta, fit a RealNVP T: z -> x (:class:`~interpolants.nn.
CouplingFlow` over N(0, I)) to the walkers by weighted maximum likelihood and move in z,
where the level's law is

    log pi_z(z) = log pi_beta(T z) + log |det dT/dz|,
    grad log pi_z(z) = J_T(z)^T grad log pi_beta(T z) + grad log |det dT/dz|.

Where T carries pi_beta close to N(0, I), a funnel or a curved ridge becomes a round
Gaussian in z, and MALA with one step size mixes there (a scale that changes along the funnel
is what no constant metric can follow). A kernel exact for pi_z gives moves exact for
pi_beta (x = T z is a bijection), so the annealing weights are untouched; the flow is fitted
to the walkers of the level it moves at (or, replayed, to a pilot's), like any
preconditioner. Each move costs one target evaluation per walker, as in x.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor

from ..distributions import DiagonalNormal
from ..nn import CouplingFlow
from .base import Evaluation, LogDensity, State

__all__ = ["LatentFlow"]


class LatentFlow:
    """x = T(z) for moves in z (see the module docstring): fitted level by level, each fit
    starting from the previous level's weights (:meth:`refit`), frozen once fitted."""

    def __init__(self, flow: CouplingFlow):
        self.flow = flow

    @classmethod
    def new(
        cls, dim: int, dtype: torch.dtype, seed: int, layers: int = 4, width: int = 32
    ) -> LatentFlow:
        """An identity flow over N(0, I) with seeded initial weights."""
        base = DiagonalNormal(torch.zeros(dim, dtype=dtype), 1.0)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            flow = CouplingFlow(dim, base, layers=layers, width=width).to(dtype)
        return cls(flow)

    def refit(
        self, x: Tensor, log_w: Tensor | None, steps: int, lr: float = 3e-3, patience: int = 10
    ) -> LatentFlow:
        r"""A copy of this flow fitted to the walkers x (n, dim) with weights W (softmax of
        ``log_w``, equal when None) by at most ``steps`` Adam steps on -sum_i W_i log q(x_i)
        over four walkers in five, keeping the weights that score best on the fifth
        (early stopping after ``patience`` steps without gain: a flow that learns the walkers
        by heart puts the next walkers in its crevices). The final affine layer starts at the
        walkers' weighted mean and standard deviation."""
        flow = copy.deepcopy(self.flow).requires_grad_(True)
        xd = x.detach().to(next(flow.parameters()))
        n = xd.shape[0]
        w = (
            torch.full((n,), 1.0 / n, dtype=xd.dtype)
            if log_w is None
            else torch.softmax(log_w.detach().double(), 0).to(xd)
        )
        mean = (w[:, None] * xd).sum(0)
        std = ((w[:, None] * (xd - mean).square()).sum(0)).sqrt().clamp_min(1e-8)
        with torch.no_grad():
            flow.shift.copy_(mean)
            flow.log_scale.copy_(std.log())
        held = torch.arange(n) % 5 == 0
        wt, wv = w * ~held, w * held
        wt, wv = wt / wt.sum(), wv / wv.sum().clamp_min(1e-300)
        optimizer = torch.optim.Adam(flow.parameters(), lr=lr)
        best, best_state, since = math.inf, copy.deepcopy(flow.state_dict()), 0
        with torch.enable_grad():
            for _ in range(steps):
                log_q = flow.log_prob(xd)
                loss = -(wt * log_q).sum()
                score = float(-(wv * log_q.detach()).sum())
                if score < best:
                    best, best_state, since = score, copy.deepcopy(flow.state_dict()), 0
                else:
                    since += 1
                if not torch.isfinite(loss) or since >= patience:
                    break
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(flow.parameters(), 10.0)
                optimizer.step()
        flow.load_state_dict(best_state)
        flow.requires_grad_(False)
        return LatentFlow(flow)

    def _forward(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(z with grad, x = T z, log|det dT/dz|), x and the log-det still on z's graph."""
        with torch.enable_grad():
            zg = z.detach().requires_grad_(True)
            x, log_det = self.flow(zg)
        return zg, x, log_det

    def density(self, log_density: LogDensity) -> LogDensity:
        """z -> Evaluation of log pi_z; its aux is (x, log pi_beta(x), its gradient, *the
        x-space aux). One pass of the flow per call."""

        def f(z: Tensor) -> Evaluation:
            zg, x, log_det = self._forward(z)
            return self._lift(zg, x, log_det, log_density(x.detach()))

        return f

    def _lift(self, zg: Tensor, x: Tensor, log_det: Tensor, ev: Evaluation | State) -> Evaluation:
        """log pi_z and its gradient J^T grad log pi_beta + grad log|det| at z, from the
        x-space evaluation ``ev`` at x = T z (zg, x, log_det from :meth:`_forward`)."""
        with torch.enable_grad():
            g = torch.autograd.grad((x * ev.grad.detach()).sum() + log_det.sum(), zg)[0]
        lp = ev.log_prob + log_det.detach().to(ev.log_prob)
        bad = ~torch.isfinite(lp)
        if bool(bad.any()):
            g = torch.where(bad[:, None], torch.zeros_like(g), g)
        return Evaluation(lp, g, (x.detach(), ev.log_prob, ev.grad, *ev.aux))

    def to_latent(self, state: State) -> State:
        """The walkers of ``state`` (x space) seen in z, with no target evaluation."""
        with torch.no_grad():
            z, _ = self.flow.inverse(state.position)
        ev = self._lift(*self._forward(z), state)
        return State(z, ev.log_prob, ev.grad, ev.aux)

    @staticmethod
    def to_data(state: State) -> State:
        """The walkers of a latent ``state`` back in x space."""
        x, log_prob, grad, *aux = state.aux
        return State(x, log_prob, grad, tuple(aux))
