"""NETS's learned parts and the math they obey: the schedule beta_t, the Jarzynski rate and
the PINN residual (arXiv:2410.02711, eqs. 9 and 21), the drift network and the free energy."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from ...nn import FreeEnergyRate, Sparsity, build_drift

__all__ = [
    "BINS",
    "OBJECTIVES",
    "SCHEDULES",
    "TARGET_ACCEPT",
    "NETSModel",
    "Potential",
    "build_drift",
    "grad_phi",
    "jarzynski_rate",
    "pinn_residual",
    "schedule",
    "schedule_time",
    "time_bin",
]

SCHEDULES = ("linear", "power", "geometric", "reverse_power")
OBJECTIVES = ("pinn", "action")
TARGET_ACCEPT = 0.574  # MALA (Roberts & Rosenthal 1998)
BINS = 64  # time bins of the tuned eps_t and of the loss weights

# --- the math ------------------------------------------------------------------------------


def schedule(t: Tensor, kind: str = "power", power: float = 3.0) -> tuple[Tensor, Tensor]:
    r"""beta_t and d beta_t / dt of U_t = (1 - beta_t) U_0 + beta_t U_1, beta_0 = 0, beta_1 = 1.

    linear: beta = t; power: beta = t^p; geometric: beta = (e^{p t} - 1) / (e^p - 1), whose
    precision (1 - beta) / s_0^2 + beta / s_1^2 grows like e^{p t} when e^p ~ s_0^2 / s_1^2.
    A broad base (s_0 >> s_1) makes the linear path stiff near t = 0 (the walkers contract at
    a rate ~ s_0^2 / s_1^2 there); t^p spreads that over a time ~ (s_1 / s_0)^{2 / p}.

    reverse_power: beta = 1 - (1 - t)^p, the mirror image, slow near t = 1, for targets whose
    tails are broader than the base's: there pi_beta keeps a cut-off at the scale where
    (1 - beta) / s_0^2 ~ 1 / s_1^2, which moves to the tails only as beta -> 1 (Neal's funnel:
    at x_0 ~ log(1 / (1 - beta))); 1 - beta = (1 - t)^p opens it at a pace ~ p / (1 - t)
    instead of the ~ 1 / (1 - t) of t^p, whose last step of a uniform grid jumps from
    x_0 ~ log(1 / (p h)) to the whole tail.
    """
    if kind == "linear":
        return t, torch.ones_like(t)
    if kind == "power":
        return t.pow(power), power * t.pow(power - 1)
    if kind == "geometric":
        e = math.expm1(power)
        return torch.expm1(power * t) / e, power * torch.exp(power * t) / e
    if kind == "reverse_power":
        return -torch.expm1(power * torch.log1p(-t)), power * (1 - t).pow(power - 1)
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {kind!r}")


def schedule_time(beta: float, kind: str = "power", power: float = 3.0) -> float:
    r"""The time t in [0, 1] of temperature beta: the inverse of :func:`schedule`'s beta_t
    (t = beta^{1/p} for "power"), so that a ladder of temperatures found by adaptive
    tempering becomes the times at which NETS's drift b_t moves the walkers."""
    b = min(max(float(beta), 0.0), 1.0)
    if kind == "linear":
        return b
    if kind == "power":
        return b ** (1.0 / power)
    if kind == "geometric":
        return math.log1p(b * math.expm1(power)) / power
    if kind == "reverse_power":
        return 1.0 - (1.0 - b) ** (1.0 / power)
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {kind!r}")


def jarzynski_rate(div_b: Tensor, grad_log_pi: Tensor, b: Tensor, dlog_pi_dt: Tensor) -> Tensor:
    r"""dA/dt = div b_t - grad U_t . b_t - dU_t/dt with log pi_t = -U_t (arXiv:2410.02711, eq. 9).

    Shapes: div_b (n,), grad_log_pi and b (n, d), dlog_pi_dt (n,)."""
    return div_b + (grad_log_pi * b).flatten(1).sum(1) + dlog_pi_dt


def pinn_residual(
    div_b: Tensor, grad_log_pi: Tensor, b: Tensor, dlog_pi_dt: Tensor, dF_dt: Tensor
) -> Tensor:
    r"""div b_t - grad U_t . b_t - dU_t/dt + dF_t/dt, zero everywhere exactly when b_t solves
    the continuity equation for rho_t = exp(-U_t + F_t) (arXiv:2410.02711, eq. 21)."""
    return jarzynski_rate(div_b, grad_log_pi, b, dlog_pi_dt) + dF_dt


# --- drift and free energy -----------------------------------------------------------------


class NETSModel(nn.Module):
    r"""The learned parts of NETS: the drift b_t(x), the free-energy rate dF_t/dt, and the
    tables of the MALA diffusion eps_t and of the loss weights over ``BINS`` bins of t.

    ``config`` holds the path (schedule, power) the model was trained for; sampling uses it.
    """

    def __init__(self, drift: nn.Module, config: dict[str, Any], eps0: float = 1.0):
        super().__init__()
        self.drift, self.free_energy, self.config = drift, FreeEnergyRate(), dict(config)
        self.register_buffer("log_eps", torch.full((BINS,), math.log(eps0), dtype=torch.float64))
        self.register_buffer("loss_var", torch.ones(BINS, dtype=torch.float64))

    def jacobian_sparsity(self) -> Sparsity | None:
        """The drift's colouring and Jacobian pattern (block or lattice drifts), else None."""
        sparsity = getattr(self.drift, "jacobian_sparsity", None)
        if sparsity is None or self.config.get("objective") == "action":
            return None
        return sparsity()

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        """b_t(x), computed in the drift's parameter dtype (float64 walkers through a float32
        network) and returned in x's."""
        y = self.as_input(x)
        if self.config.get("objective") == "action":
            b = grad_phi(self.drift, t, y, create_graph=torch.is_grad_enabled())
        else:
            b = self.drift(t, y)
        return b.to(x.dtype)

    def as_input(self, x: Tensor) -> Tensor:
        """x in the drift's parameter dtype (unchanged for a drift without parameters)."""
        weight = next(self.drift.parameters(), None)
        return x if weight is None or weight.dtype == x.dtype else x.to(weight.dtype)

    def eps(self, t: float) -> float:
        """The tuned diffusion eps_t (MALA step size sqrt(2 eps_t h) at acceptance ~0.574)."""
        return float(self.log_eps[int(time_bin(torch.tensor([t])))].exp())

    def log_Z_from_F(self, points: int = 1001) -> float:
        """-int_0^1 dF_t/dt dt (trapezoid rule): the free energy's log Z estimate."""
        t = torch.linspace(0, 1, points, device=self.free_energy.c.device)
        with torch.no_grad():
            return -float(torch.trapezoid(self.free_energy(t).double(), t.double()))


def grad_phi(phi: nn.Module, t: Tensor, x: Tensor, create_graph: bool) -> Tensor:
    """b = grad_x phi_t(x) for a scalar potential network (action matching)."""
    with torch.enable_grad():
        if not x.requires_grad:
            x = x.detach().requires_grad_(True)
        out = phi(t, x)
        (g,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return g if create_graph else g.detach()


class Potential(nn.Module):
    """phi_t(x) = sum_i x_i f_i(t, x) / s_i: a scalar from a vector network (action matching)."""

    def __init__(self, net: nn.Module, scale: Tensor):
        super().__init__()
        self.net = net
        self.register_buffer("s", scale)

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        return (self.net(t, x) * x / self.s.to(x.dtype)).flatten(1).sum(1)

    @property
    def config(self) -> dict | None:
        """The wrapped network's options (the resume check and the features hint read them)."""
        return getattr(self.net, "config", None)


def time_bin(t: Tensor) -> Tensor:
    return (t * BINS).long().clamp(0, BINS - 1)
