r"""The forecasting SDE's drift and its diffusion changed after training (Chen, Goldstein,
Hua, Albergo, Boffi & Vanden-Eijnden, arXiv 2403.13724).

The interpolant x_t = alpha x0 + beta x1 + sigma(t) W_t starts at the point mass x0 (the
current state). Its drift b_F = E[alpha' x0 + beta' x1 + sigma' W_t | x_t] (learned by
regression, :func:`~interpolants.losses.drift_loss`) makes dX = b_F dt + sigma dW carry X_0 = x0
to the law of x1 given x0. Because the base is a point mass, the score follows from b_F: with

    A = alpha' x0 + (beta' / beta) (x - alpha x0),   C = t sigma (sigma' - beta' sigma / beta),

x = alpha x0 + beta E[x1 | x] + sigma E[W_t | x] and E[W_t | x] = -sigma t s give b_F = A - C s,
so s = (A - b_F) / C. Any diffusion g(t) then keeps the marginals with the drift

    b_g = b_F + (g^2 - sigma^2) / 2 s = (1 - lambda) b_F + lambda A,
    lambda = (g^2 - sigma^2) / (2 C),

the form used here (finite where C vanishes if g^2 - sigma^2 does). The Foellmer choice

    g_F^2 = -(sigma^2 + 2 C) = -beta^2 d/dt (t sigma^2 / beta^2)

minimises the effect of an error in b_F on the path-space KL divergence (Girsanov); for beta = t^2,
sigma = eps (1 - t) it is eps^2 (1 - t)(3 - t), for beta = t, eps^2 (1 - t^2). From a point mass
the law is reached only if g(0) >= sigma(0) (below, the variance equation near t = 0 has other
solutions and the sampler picks a wrong one): :func:`check_diffusion` refuses such a g.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..interpolant import Interpolant, broadcast_like

__all__ = [
    "DIFFUSIONS",
    "Diffusion",
    "check_diffusion",
    "diffusion_squared",
    "drift_for_diffusion",
    "follmer_squared",
    "score_from_drift",
]

Diffusion = float | str | Callable[[Tensor], Tensor] | None
DIFFUSIONS = ("interpolant", "follmer")


def _log_rate(I: Interpolant, t: Tensor) -> Tensor:
    """t beta'(t) / beta(t), finite at t = 0 for beta ~ t^k (its limit k there)."""
    tc = t.clamp_min(1e-6)
    return tc * I.dbeta(tc) / I.beta(tc)


def _c(I: Interpolant, t: Tensor) -> Tensor:
    """C = t sigma sigma' - (t beta' / beta) sigma^2."""
    sigma = I.sigma(t)
    return t * sigma * I.dsigma(t) - _log_rate(I, t) * sigma * sigma


def follmer_squared(I: Interpolant, t: Tensor) -> Tensor:
    """g_F(t)^2 = -(sigma^2 + 2 C) (module docstring; arXiv 2403.13724)."""
    sigma = I.sigma(t)
    return (-(sigma * sigma + 2 * _c(I, t))).clamp_min(0)


def diffusion_squared(I: Interpolant, diffusion: Diffusion, t: Tensor) -> Tensor:
    """g(t)^2 for ``diffusion``: None or "interpolant" (g = sigma, the SDE the drift was
    trained for), "follmer" (g_F), a number (a constant g) or a callable g(t)."""
    if diffusion is None or diffusion == "interpolant":
        return I.sigma(t) ** 2
    if diffusion == "follmer":
        return follmer_squared(I, t)
    if isinstance(diffusion, str):
        raise ValueError(
            f"diffusion must be one of {DIFFUSIONS}, a number or a callable g(t), got {diffusion!r}"
        )
    value = diffusion(t) if callable(diffusion) else torch.full_like(t, float(diffusion))
    return torch.as_tensor(value, dtype=t.dtype, device=t.device).expand_as(t) ** 2


def check_diffusion(I: Interpolant, diffusion: Diffusion) -> None:
    """ValueError naming ``diffusion`` unless g(0) >= sigma(0) and g >= 0 on a grid of t
    (from a point mass a smaller g(0) reaches a wrong law)."""
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    try:
        g2 = diffusion_squared(I, diffusion, t)
    except (TypeError, ValueError) as err:
        raise ValueError(f"diffusion: {err}") from err
    if callable(diffusion) and bool((torch.as_tensor(diffusion(t)) < 0).any()):
        raise ValueError("diffusion g(t) must be non-negative")
    if not bool(torch.isfinite(g2).all()):
        raise ValueError("diffusion g(t) must be finite on [0, 1]")
    floor = float(I.sigma(t[:1]) ** 2)
    if float(g2[0]) < floor * (1 - 1e-6):
        raise ValueError(
            f"diffusion g(0) = {float(g2[0]) ** 0.5:.4g} is below sigma(0) = {floor**0.5:.4g}: "
            "from a point mass the SDE then misses the forecast law; use a larger g, "
            "'interpolant' or 'follmer'"
        )


def score_from_drift(I: Interpolant, t: Tensor, x: Tensor, x0: Tensor, drift: Tensor) -> Tensor:
    """s = (A - b_F) / C, the score of x_t given the point mass x0 (module docstring)."""
    return (_a(I, t, x, x0) - drift) / broadcast_like(_c(I, t), x)


def _a(I: Interpolant, t: Tensor, x: Tensor, x0: Tensor) -> Tensor:
    """A = alpha' x0 + (beta' / beta)(x - alpha x0), with the second term 0 where beta = 0
    (t = 0, where x = x0)."""
    beta = broadcast_like(I.beta(t), x)
    rate = torch.where(beta > 0, broadcast_like(I.dbeta(t), x) / beta.clamp_min(1e-30), 0.0)
    alpha, dalpha = broadcast_like(I.alpha(t), x), broadcast_like(I.dalpha(t), x)
    return dalpha * x0 + rate * (x - alpha * x0)


def drift_for_diffusion(
    I: Interpolant, t: Tensor, x: Tensor, x0: Tensor, drift: Tensor, g2: Tensor
) -> Tensor:
    """b_g = (1 - lambda) b_F + lambda A, lambda = (g^2 - sigma^2) / (2 C): the drift that
    keeps the marginals with diffusion g (module docstring); b_F itself where g = sigma."""
    sigma2 = I.sigma(t) ** 2
    c = _c(I, t)
    lam = torch.where(c != 0, (g2 - sigma2) / (2 * c).where(c != 0, torch.ones_like(c)), 0.0)
    lam = broadcast_like(lam, x)
    return (1 - lam) * drift + lam * _a(I, t, x, x0)
