r"""Velocity, score and denoiser of an interpolant, conversions and closed forms.

For x_t = alpha x0 + beta x1 + gamma z (arXiv 2303.08797):

- velocity  b(t, x)   = E[dx_t/dt | x_t = x]
- denoiser  eta(t, x) = E[z | x_t = x], and the score s = -eta / gamma.
  When gamma = 0 and x0 ~ N(0, I) (the one-sided interpolant) the noise is x0 itself:
  eta = E[x0 | x_t = x] and s = -eta / alpha.

For x0 ~ N(0, I) the noise alpha x0 + gamma z is N(0, sigma^2 I) with sigma^2 = alpha^2 + gamma^2,
and with E[x1 | x] = (x + sigma^2 s) / beta one gets

    b = (beta' / beta) x + (beta' sigma^2 / beta - sigma sigma') s,

the conversion implemented by :func:`velocity_from_score` and :func:`score_from_velocity`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .distributions import MixtureOfGaussians
from .interpolant import Interpolant, as_time, broadcast_like

__all__ = [
    "GaussianMixtureFields",
    "denoiser_from_score",
    "score_from_denoiser",
    "score_from_velocity",
    "score_from_velocity_unchecked",
    "velocity_from_score",
]

Field = Callable[[Tensor, Tensor], Tensor]


def _coefficients(interpolant: Interpolant, t: Tensor, x: Tensor) -> tuple[Tensor, ...]:
    """beta, beta', sigma^2 = alpha^2 + gamma^2 and sigma sigma', broadcast against x."""
    I = interpolant
    beta, dbeta = I._beta.value(t), I._beta.deriv(t)
    sigma2 = I._alpha.value(t).square() + I._gamma.value(t).square()
    sigma_dsigma = I._alpha.fdf(t) + I._gamma.fdf(t)
    return tuple(broadcast_like(c, x) for c in (beta, dbeta, sigma2, sigma_dsigma))


def velocity_from_score(
    interpolant: Interpolant, t: Tensor | float, x: Tensor, score: Tensor
) -> Tensor:
    r"""b = (beta'/beta) x + (beta' sigma^2/beta - sigma sigma') s for x0 ~ N(0, I) (2303.08797).

    Singular at t = 0 (beta = 0), where the velocity is not determined by the score.
    """
    beta, dbeta, sigma2, sds = _coefficients(interpolant, as_time(t, x), x)
    return (dbeta * x + (dbeta * sigma2 - beta * sds) * score) / beta


def score_from_velocity(
    interpolant: Interpolant, t: Tensor | float, x: Tensor, velocity: Tensor
) -> Tensor:
    r"""s = (beta b - beta' x) / (beta' sigma^2 - beta sigma sigma') for x0 ~ N(0, I) (2303.08797).

    Singular at t = 1 where sigma = 0 (the data's score); finite at t = 0, where s = -x / sigma^2.
    """
    return score_from_velocity_unchecked(interpolant, as_time(t, x), x, velocity)


def score_from_velocity_unchecked(
    interpolant: Interpolant, t: Tensor, x: Tensor, velocity: Tensor
) -> Tensor:
    """:func:`score_from_velocity` for a checked (batch,) tensor t: the sampling hot path."""
    beta, dbeta, sigma2, sds = _coefficients(interpolant, t, x)
    return (beta * velocity - dbeta * x) / (dbeta * sigma2 - beta * sds)


def _noise_scale(interpolant: Interpolant, t: Tensor, x: Tensor) -> Tensor:
    return broadcast_like(interpolant.noise_scale(t), x)


def score_from_denoiser(
    interpolant: Interpolant, t: Tensor | float, x: Tensor, denoiser: Tensor
) -> Tensor:
    """s = -eta / gamma, or -eta / alpha when gamma = 0 and x0 ~ N(0, I) (2303.08797)."""
    return -denoiser / _noise_scale(interpolant, as_time(t, x), x)


def denoiser_from_score(
    interpolant: Interpolant, t: Tensor | float, x: Tensor, score: Tensor
) -> Tensor:
    """eta = -gamma s, or -alpha s when gamma = 0 and x0 ~ N(0, I)."""
    return -_noise_scale(interpolant, as_time(t, x), x) * score


class GaussianMixtureFields:
    r"""Exact velocity, score, denoiser and density of x_t between two diagonal Gaussian mixtures.

    With x0 ~ sum_j u_j N(m_j, S_j), x1 ~ sum_k w_k N(n_k, R_k), independent, x_t is a mixture
    over pairs (j, k) of N(mu_t, C_t), mu_t = alpha m_j + beta n_k,
    C_t = alpha^2 S_j + beta^2 R_k + gamma^2 I. Within a pair (x_t, dx_t) is jointly Gaussian, so

        E[dx_t | x_t = x, jk] = alpha' m_j + beta' n_k + K_t C_t^{-1} (x - mu_t),
        K_t = alpha alpha' S_j + beta beta' R_k + gamma gamma' I,

    and every field is the posterior-weighted sum over pairs. A single Gaussian is a mixture of
    one. Used as ground truth in tests and the demo (arXiv 2303.08797, Gaussian examples).

    Arguments:
        interpolant: the interpolant.
        base: the law of x0 (a :class:`MixtureOfGaussians`).
        target: the law of x1.
    """

    def __init__(
        self, interpolant: Interpolant, base: MixtureOfGaussians, target: MixtureOfGaussians
    ):
        if base.event_shape != target.event_shape:
            raise ValueError(
                f"base and target must have the same event shape, got {tuple(base.event_shape)} "
                f"and {tuple(target.event_shape)}"
            )
        self.interpolant, self.base, self.target = interpolant, base, target

    def _pairs(self, t: Tensor, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Per pair: log posterior weight (n, P), residual x - mu_t, C_t and K_t ((n, P, d))."""
        I, b0, b1 = self.interpolant, self.base, self.target
        t = as_time(t, x)[:, None, None]
        m0, s0 = b0.means.to(x)[:, None, :], b0.stds.to(x)[:, None, :]  # (J, 1, d)
        m1, s1 = b1.means.to(x)[None], b1.stds.to(x)[None]  # (1, K, d)
        a, b, g = I._alpha.value(t), I._beta.value(t), I._gamma.value(t)
        mean = (a[..., None] * m0 + b[..., None] * m1).flatten(1, 2)  # (n, P, d)
        var = a.square()[..., None] * s0**2 + b.square()[..., None] * s1**2 + g.square()[..., None]
        cov = I._alpha.fdf(t)[..., None] * s0**2 + I._beta.fdf(t)[..., None] * s1**2
        cov = (cov + I._gamma.fdf(t)[..., None]).flatten(1, 2)
        var = var.flatten(1, 2)
        var, cov = var.expand_as(mean), cov.expand_as(mean)
        resid = x[:, None, :] - mean
        log_w = (b0.weights.to(x).log()[:, None] + b1.weights.to(x).log()[None]).flatten()
        log_n = -0.5 * (resid.square() / var + torch.log(2 * torch.pi * var)).sum(-1)
        return log_w + log_n, resid, var, cov

    def log_prob(self, t: Tensor | float, x: Tensor) -> Tensor:
        """log rho_t(x), shape (n,)."""
        return torch.logsumexp(self._pairs(as_time(t, x), x)[0], dim=1)

    def velocity(self, t: Tensor | float, x: Tensor) -> Tensor:
        """b(t, x) = E[dx_t/dt | x_t = x]."""
        t = as_time(t, x)
        logp, resid, var, cov = self._pairs(t, x)
        I = self.interpolant
        da, db = I._alpha.deriv(t)[:, None, None], I._beta.deriv(t)[:, None, None]
        m0 = self.base.means.to(x)[:, None, :]
        m1 = self.target.means.to(x)[None]
        drift = (da[..., None] * m0 + db[..., None] * m1).flatten(1, 2)
        pair_b = drift + cov / var * resid
        return (torch.softmax(logp, 1)[..., None] * pair_b).sum(1)

    def score(self, t: Tensor | float, x: Tensor) -> Tensor:
        """s(t, x) = grad log rho_t(x)."""
        logp, resid, var, _ = self._pairs(as_time(t, x), x)
        return -(torch.softmax(logp, 1)[..., None] * resid / var).sum(1)

    def denoiser(self, t: Tensor | float, x: Tensor) -> Tensor:
        """eta(t, x) = E[z | x_t = x] = -gamma s (for gamma = 0: E[x0 | x_t = x])."""
        t = as_time(t, x)
        if not self.interpolant.is_deterministic:
            return -broadcast_like(self.interpolant._gamma.value(t), x) * self.score(t, x)
        logp, resid, var, _ = self._pairs(t, x)
        a = self.interpolant._alpha.value(t)[:, None, None]
        s0 = self.base.stds.to(x)[:, None, :]
        m0 = self.base.means.to(x)[:, None, :]
        k = len(self.target.weights)
        m0 = m0.expand(-1, k, -1).flatten(0, 1)[None]
        gain = (a[..., None] * s0**2).expand(-1, -1, k, -1).flatten(1, 2)
        pair = m0 + gain / var * resid
        return (torch.softmax(logp, 1)[..., None] * pair).sum(1)
