r"""Flow maps: the two-time maps of an interpolant's probability-flow ODE (pure functions).

The ODE dX/dt = b_t(X) has the flow map X_{s,t}, X_{s,t}(x_s) = x_t along every solution, for
any s, t in [0, 1] (t < s runs the ODE backward). It is parameterised by a two-time velocity,

    X_{s,t}(x) = x + (t - s) v_{s,t}(x),    v_{t,t} = b_t,

and it obeys X_{t,t} = id, the semigroup property X_{u,t} o X_{s,u} = X_{s,t}, the Lagrangian
equation d/dt X_{s,t}(x) = b_t(X_{s,t}(x)) and the Eulerian equation
d/ds X_{s,t}(x) + grad X_{s,t}(x) b_s(x) = 0 (Boffi, Albergo & Vanden-Eijnden, "Flow map
matching", arXiv 2406.07507; "How to build a consistency model: learning flow maps via
self-distillation", arXiv 2505.18825).

A network here is called ``net(s, t, x)`` (or with ``cond=``) and returns v_{s,t}(x) shaped
like x; :func:`flow_map` turns it into the map.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from ..integrate import checked_times
from ..interpolant import Interpolant, broadcast_like

__all__ = [
    "GaussianFlowMap",
    "TwoTimeField",
    "call_map",
    "compose",
    "flow_map",
    "jump_log_det",
    "jump_times",
    "jvp",
]

TwoTimeField = Callable[..., Tensor]
"""v(s, t, x) or v(s, t, x, cond=c): a two-time velocity, s and t of shape (batch,)."""


def call_map(net: TwoTimeField, s: Tensor, t: Tensor, x: Tensor, cond: Tensor | None) -> Tensor:
    """``net(s, t, x)``, or ``net(s, t, x, cond=cond)`` for a conditioned batch."""
    return net(s, t, x) if cond is None else net(s, t, x, cond=cond)


def flow_map(
    net: TwoTimeField, s: Tensor, t: Tensor, x: Tensor, cond: Tensor | None = None
) -> Tensor:
    r"""X_{s,t}(x) = x + (t - s) v_{s,t}(x) (arXiv 2406.07507, eq. for the flow map).

    Arguments:
        net: the two-time velocity v.
        s, t: (batch,) start and end times (any order: t < s is a backward jump).
        x: (batch, *event) points at time s.
        cond: the conditioning, or None.

    Example:
        >>> still = lambda s, t, x: torch.zeros_like(x)
        >>> flow_map(still, torch.zeros(3), torch.ones(3), torch.ones(3, 2))
        tensor([[1., 1.],
                [1., 1.],
                [1., 1.]])
    """
    return x + broadcast_like(t - s, x) * call_map(net, s, t, x, cond)


def jvp(
    fn: Callable[..., tuple[Tensor, Tensor]],
    primals: tuple[Tensor, ...],
    tangents: tuple[Tensor, ...],
) -> tuple[Tensor, Tensor, Tensor]:
    """(y, dy, aux) for ``(y, aux) = fn(*primals)``, dy = the directional derivative of y along
    ``tangents``, by forward-mode AD (``torch.autograd.forward_ad``, one pass with dual numbers).

    y, dy and aux keep their graphs: a loss of dy back-propagates to the parameters. Dual numbers
    rather than ``torch.func.jvp``: a ``DistributedDataParallel`` module broadcasts its buffers
    in place inside its forward, which ``torch.func`` refuses; with dual numbers the module is
    called as usual and its gradients are synchronised as in any other step.
    """
    import torch.autograd.forward_ad as fwad

    with fwad.dual_level():
        out, aux = fn(*(fwad.make_dual(p, d) for p, d in zip(primals, tangents, strict=True)))
        y, dy = fwad.unpack_dual(out)
        plain = fwad.unpack_dual(aux).primal
    if dy is None:  # y does not depend on the primals
        dy = torch.zeros_like(y)
    return y, dy, plain


def jump_times(
    steps: int | None = None, times: Sequence[float] | Tensor | None = None
) -> list[float]:
    """The times of a k-jump sampler from 0 to 1: the uniform grid j / k, or ``times`` (strictly
    increasing, from 0 to 1); ValueError naming ``steps`` or ``times`` otherwise.

    Example:
        >>> jump_times(4)
        [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    if times is None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        return [j / steps for j in range(steps + 1)]
    return checked_times(times, 0.0, 1.0)


def compose(
    net: TwoTimeField, x: Tensor, times: Sequence[float], cond: Tensor | None = None
) -> Tensor:
    """X_{t_{k-1},t_k} o ... o X_{t_0,t_1}(x): one jump between each pair of consecutive
    ``times`` (increasing for sampling, decreasing for the backward map)."""
    for a, b in itertools.pairwise(times):
        s = torch.full(x.shape[:1], a, dtype=x.dtype, device=x.device)
        x = flow_map(net, s, torch.full_like(s, b), x, cond)
    return x


def jump_log_det(
    net: TwoTimeField, s: float, t: float, x: Tensor, cond: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    r"""(X_{s,t}(x), log |det grad_x X_{s,t}(x)|) per row, the Jacobian exact (d x d per row, by
    ``torch.func.jacrev`` under ``vmap``): for small events only, cost O(d) backward passes.

    The network must act on each row independently (no batch statistics).
    """
    if cond is not None:
        raise ValueError("log densities of conditioned flow maps are not supported: cond=None")
    shape = x.shape[1:]

    def one(row: Tensor) -> Tensor:
        point = row.reshape(1, *shape)
        ss = torch.full((1,), s, dtype=row.dtype, device=row.device)
        return flow_map(net, ss, torch.full_like(ss, t), point).reshape(-1)

    flat = x.reshape(x.shape[0], -1)
    jac = torch.func.vmap(torch.func.jacrev(one))(flat)
    y = compose(net, x, [s, t])
    return y, torch.linalg.slogdet(jac)[1]


class GaussianFlowMap(nn.Module):
    r"""The exact flow map between x0 ~ N(0, I) and x1 ~ N(m, diag(S)), independent: a network
    ``net(s, t, x)`` for tests and references.

    x_t = alpha x0 + beta x1 + gamma z is N(mu_t, diag(sigma_t^2)) with mu_t = beta m,
    sigma_t^2 = alpha^2 + beta^2 S + gamma^2, and its ODE velocity is
    b_t(x) = mu_t' + (sigma_t' / sigma_t)(x - mu_t) per coordinate, whose flow is affine:

        X_{s,t}(x) = mu_t + (sigma_t / sigma_s)(x - mu_s),

    so v_{s,t}(x) = (X_{s,t}(x) - x) / (t - s) for s != t and v_{t,t} = b_t.

    Arguments:
        interpolant: the interpolant.
        mean: m, (d,).
        std: sqrt(S), (d,) or a float.
    """

    def __init__(self, interpolant: Interpolant, mean: Tensor, std: Tensor | float):
        super().__init__()
        self.interpolant = interpolant
        self.register_buffer("mean", torch.as_tensor(mean))
        self.register_buffer("var", torch.as_tensor(std) ** 2 * torch.ones_like(self.mean))

    def moments(self, t: Tensor, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """mu_t, sigma_t and sigma_t sigma_t', broadcast against x."""
        I, S = self.interpolant, self.var.to(x)
        alpha, beta, gamma = (broadcast_like(f.value(t), x) for f in (I._alpha, I._beta, I._gamma))
        var = alpha**2 + beta**2 * S + gamma**2
        half = (broadcast_like(f.fdf(t), x) for f in (I._alpha, I._beta, I._gamma))
        sds = next(half) + next(half) * S + next(half)
        return beta * self.mean.to(x), var.sqrt(), sds

    def velocity(self, t: Tensor, x: Tensor) -> Tensor:
        """b_t(x) = mu_t' + (sigma_t sigma_t' / sigma_t^2)(x - mu_t)."""
        mu, sigma, sds = self.moments(t, x)
        dmu = broadcast_like(self.interpolant._beta.deriv(t), x) * self.mean.to(x)
        return dmu + sds / sigma**2 * (x - mu)

    def jump(self, s: Tensor, t: Tensor, x: Tensor) -> Tensor:
        """X_{s,t}(x) = mu_t + (sigma_t / sigma_s)(x - mu_s)."""
        mu_s, sigma_s, _ = self.moments(s, x)
        mu_t, sigma_t, _ = self.moments(t, x)
        return mu_t + sigma_t / sigma_s * (x - mu_s)

    def forward(self, s: Tensor, t: Tensor, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """v_{s,t}(x); the velocity b_t where s = t."""
        gap = broadcast_like(t - s, x)
        same = gap.abs() < 1e-12
        ratio = (self.jump(s, t, x) - x) / torch.where(same, torch.ones_like(gap), gap)
        return torch.where(same, self.velocity(t, x), ratio)
