r"""A latent time series with two unknown noise scales: a local-level (random-walk) model whose
posterior over the scales and 30 latent states (d = 32) has exact log Z and moments, since
the model is linear-Gaussian given the scales.

Model (T = 30 observations y_t, shipped below; simulated once with sigma_w = 0.3,
sigma_v = 0.5 and seed 20261205):

    u_w = log sigma_w ~ N(-1, 1),  u_v = log sigma_v ~ N(-1, 1),
    x_1 ~ N(0, 1),  x_t | x_{t-1} ~ N(x_{t-1}, sigma_w^2)  (t = 2..T),
    y_t | x_t ~ N(x_t, sigma_v^2).

The sampler sees x = (u_w, u_v, x_1..x_T) (the centred form: the states' spread follows
sigma_w, a funnel). Given the scales, y ~ N(0, S), S = C + sigma_v^2 I with the states'
covariance C_ij = 1 + sigma_w^2 (min(i, j) - 1), so

    Z = int int N(y; 0, S(u_w, u_v)) N(u_w; -1, 1) N(u_v; -1, 1) du_w du_v,

a smooth two-dimensional integral (trapezoid rule on a grid in (u_w, u_v), float64), and
E[x | y, scales] = C S^{-1} y, Cov = C - C S^{-1} C give the states' posterior moments by the
same quadrature (:func:`local_level_reference`).

References:
    J. Durbin, S. J. Koopman, Time Series Analysis by State Space Methods (2012), ch. 2 (the
    local level model).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor

from ..checks import float_dtype, positive_int
from ..distributions import DiagonalNormal
from .base import Target, choose_base

__all__ = ["LOCAL_LEVEL_Y", "LocalLevel", "LocalLevelPrior", "local_level_reference"]

LOCAL_LEVEL_Y = (
    0.6785, 0.2656, -0.3732, -0.5309, 1.4206, 0.9595, -0.0708, 0.5233, 1.5984, 1.4283,
    1.8556, 1.5906, 1.0789, 1.0032, 1.0743, 1.8111, 2.4019, 2.7598, 2.0823, 3.0135,
    2.4999, 1.7548, 2.2259, 2.2972, 2.4149, 2.0219, 2.5485, 1.3522, 2.1945, 1.3594,
)  # fmt: skip
PRIOR_MEAN, PRIOR_SD = -1.0, 1.0  # of log sigma_w and log sigma_v
LOG_2PI = math.log(2 * math.pi)


def _log_normal(x: Tensor, mean: Tensor | float, sd: Tensor | float) -> Tensor:
    sd_t = torch.as_tensor(sd, dtype=x.dtype, device=x.device)
    return -0.5 * ((x - mean) / sd_t).square() - torch.log(sd_t) - 0.5 * LOG_2PI


@lru_cache(maxsize=2)
def local_level_reference(points: int = 241, half_width: float = 6.0) -> dict[str, object]:
    r"""log Z and the posterior mean and sd of (u_w, u_v, x_1..x_T), by the trapezoid rule on
    a ``points`` x ``points`` grid of (u_w, u_v) over the prior mean +- ``half_width`` prior
    sds (module docstring); float64, one row of the grid at a time."""
    y = torch.tensor(LOCAL_LEVEL_Y, dtype=torch.float64)
    n = len(y)
    idx = torch.arange(1, n + 1, dtype=torch.float64)
    steps = torch.minimum(idx[:, None], idx[None]) - 1  # min(i, j) - 1
    u = torch.linspace(PRIOR_MEAN - half_width * PRIOR_SD, PRIOR_MEAN + half_width * PRIOR_SD,
                       points, dtype=torch.float64)  # fmt: skip
    du = float(u[1] - u[0])
    trap = torch.full((points,), du, dtype=torch.float64)
    trap[[0, -1]] = du / 2
    log_prior = _log_normal(u, PRIOR_MEAN, PRIOR_SD) + trap.log()
    logs, m1, m2 = [], [], []
    for i in range(points):  # u_w = u[i]; all u_v at once
        c = 1.0 + math.exp(2 * float(u[i])) * steps  # (T, T)
        s = c[None] + torch.exp(2 * u)[:, None, None] * torch.eye(n, dtype=torch.float64)
        chol = torch.linalg.cholesky(s)
        alpha = torch.cholesky_solve(y[None, :, None].expand(points, n, 1), chol)[..., 0]
        log_py = (-0.5 * (y * alpha).sum(1) - chol.diagonal(dim1=1, dim2=2).log().sum(1)
                  - 0.5 * n * LOG_2PI)  # fmt: skip
        logs.append(log_py + log_prior[i] + log_prior)
        mean = alpha @ c  # C S^{-1} y (C symmetric)
        var = c.diagonal() - (c[None] * torch.cholesky_solve(c[None].expand(points, n, n),
                                                              chol)).sum(1)  # fmt: skip
        m1.append(mean)
        m2.append(var + mean.square())
    log_w = torch.stack(logs)  # (points_w, points_v)
    log_z = float(torch.logsumexp(log_w.flatten(), 0))
    w = torch.softmax(log_w.flatten(), 0).view(points, points)
    uw, uv = u[:, None].expand(points, points), u[None].expand(points, points)
    first = torch.stack([(w * uw).sum(), (w * uv).sum()])
    second = torch.stack([(w * uw.square()).sum(), (w * uv.square()).sum()])
    states1 = (w[..., None] * torch.stack(m1)).sum((0, 1))
    states2 = (w[..., None] * torch.stack(m2)).sum((0, 1))
    mean = torch.cat([first, states1])
    sd = (torch.cat([second, states2]) - mean.square()).clamp(min=0).sqrt()
    return {"log_Z": log_z, "mean": mean, "sd": sd}


class LocalLevelPrior:
    r"""The local-level prior as a normalised density on the sampler's coordinates:
    u_w, u_v ~ N(-1, 1), x_1 ~ N(0, 1), x_t | x_{t-1} ~ N(x_{t-1}, e^{2 u_w}); exact draws by
    ancestral sampling. As an annealing base: likelihood tempering (see
    :class:`~.hierarchical.EightSchoolsPrior`)."""

    def __init__(self, steps: int = len(LOCAL_LEVEL_Y), dtype: torch.dtype = torch.float32):
        self.steps = steps
        self.dtype = float_dtype(dtype)
        self.event_shape = torch.Size((steps + 2,))

    def log_prob(self, x: Tensor) -> Tensor:
        if x.ndim != 2 or x.shape[1:] != self.event_shape:
            raise ValueError(f"x must have shape (n, {self.event_shape[0]}), got {tuple(x.shape)}")
        uw, uv, states = x[:, 0], x[:, 1], x[:, 2:]
        scales = _log_normal(uw, PRIOR_MEAN, PRIOR_SD) + _log_normal(uv, PRIOR_MEAN, PRIOR_SD)
        first = _log_normal(states[:, 0], 0.0, 1.0)
        walk = _log_normal(states[:, 1:], states[:, :-1], uw.exp()[:, None]).sum(1)
        return scales + first + walk

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        n = positive_int("n", n)
        z = torch.randn(n, self.steps + 2, generator=generator, dtype=torch.float64)
        u = PRIOR_MEAN + PRIOR_SD * z[:, :2]
        steps = torch.cat([z[:, 2:3], u[:, :1].exp() * z[:, 3:]], 1)
        return torch.cat([u, steps.cumsum(1)], 1).to(self.dtype)


class LocalLevel(Target):
    r"""The local-level posterior (module docstring) in d = 32 coordinates
    (log sigma_w, log sigma_v, x_1..x_30).

    ``log_Z`` and ``references`` (posterior mean and sd of every coordinate) are exact up to
    the quadrature's error (grid spacing 0.05 prior sds).

    Arguments:
        base: the recommended base: "gaussian" (the default: N(-1, 1) for both log scales,
            N(mean(y), sd(y)^2 + 1) for every state) or "prior" (:class:`LocalLevelPrior`:
            annealing then tempers the likelihood). The default SMC ran faster from the
            Gaussian at equal accuracy: the states' prior random walk is far wider than their
            posterior (benchmarks/RESULTS.md, "A prior as base").
        dtype: float32 or float64.
    """

    def __init__(self, base: str = "gaussian", dtype: torch.dtype = torch.float32):
        self.dtype = float_dtype(dtype)
        self.y = torch.tensor(LOCAL_LEVEL_Y, dtype=self.dtype)
        ref = local_level_reference()
        n = len(LOCAL_LEVEL_Y)
        level, spread = float(self.y.mean()), math.sqrt(float(self.y.var()) + 1.0)
        self.prior = LocalLevelPrior(n, self.dtype)
        gaussian = DiagonalNormal(
            torch.tensor([PRIOR_MEAN] * 2 + [level] * n, dtype=self.dtype),
            torch.tensor([PRIOR_SD] * 2 + [spread] * n, dtype=self.dtype),
        )
        base = choose_base(base, self.prior, gaussian)
        self._transport_base = gaussian
        super().__init__(
            self._log_density,
            dim=n + 2,
            log_Z=ref["log_Z"],  # type: ignore[arg-type]
            base=base,
            name="local_level",
            references={
                "log_Z": ref["log_Z"],
                "mean": ref["mean"].tolist(),  # type: ignore[union-attr]
                "sd": ref["sd"].tolist(),  # type: ignore[union-attr]
                "coordinates": self.coordinate_names,
                "source": "exact: Gaussian marginal given the scales, 2-D quadrature "
                "(local_level_reference)",
            },
        )

    @property
    def coordinate_names(self) -> list[str]:
        return ["log_sigma_w", "log_sigma_v"] + [f"x[{t}]" for t in range(len(LOCAL_LEVEL_Y))]

    def _log_density(self, x: Tensor) -> Tensor:
        uv, states = x[:, 1], x[:, 2:]
        obs = _log_normal(self.y.to(x)[None], states, uv.exp()[:, None]).sum(1)
        return self.prior.log_prob(x) + obs
