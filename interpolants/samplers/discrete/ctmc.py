r"""The math of LEAPS (Holderrieth, Albergo & Jaakkola, arXiv:2502.10843): a learned
continuous-time Markov chain between the uniform law and a discrete target, and its weights.

Walkers follow a CTMC with rates Q_t(x -> y) on the annealed path
rho_t = p_0^{1-t} rho*^t / Z_t (states one single-site change apart). By Feynman-Kac, with

    a_t(x) = d/dt log rho_t(x) + sum_y [ Q_t(x -> y) - Q_t(y -> x) rho_t(y) / rho_t(x) ],

the weights A_t = int_0^t a_s(X_s) ds give E[e^{A_t} f(X_t)] / E[e^{A_t}] = E_{rho_t}[f] and
E[e^{A_1}] = Z_1 / Z_0 for any rates (Q = 0 is AIS). Rates with a_t(x) = dF_t/dt for all x
solve the path's master equation: every weight is then equal. LEAPS learns such rates by
the PINN loss E_{t, x} |a_t(x) - dF_t/dt|^2 over detached walkers, here with dF_t/dt at its
optimum E_t[a_t], i.e. the variance of a_t at each level (:func:`leaps_loss`).

In discrete time the chain's step is a Markov kernel K (every site jumps with probability
1 - exp(-h lambda_i), to c with probability proportional to its rate), and the weight is
that of an SMC sampler with the backward kernel L of the reversed rates
Q(y -> tau_{i,c} y) rho(tau_{i,c} y) / rho(y) (:class:`CTMCStep`): unbiased at any step size,
and a_t h + O(h^2) per step, so that it tends to the Feynman-Kac weight as h -> 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from ...targets.discrete import value_index
from ..base import State

__all__ = ["CTMCStep", "balance", "feynman_kac_rate", "leaps_loss", "log_kernel", "split_rates"]

MAX_LOG_RATIO = 50.0  # exp of larger single-site log ratios is clipped in the loss


def split_rates(table: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    r"""(rates out of x, rates into x), each (n, dim, q), from a rate table (n, dim, q, q)
    T[i, a, c] = rate of site i from v_a to v_c given the other sites:
    out[i, c] = T[i, x_i, c], in[i, c] = T[i, c, x_i], both 0 at c = x_i."""
    n, dim, q, _ = table.shape
    at = index[..., None, None]
    out = table.gather(2, at.expand(n, dim, 1, q)).squeeze(2)
    into = table.gather(3, at.expand(n, dim, q, 1)).squeeze(3)
    keep = 1 - F.one_hot(index, q).to(table.dtype)
    return out * keep, into * keep


def feynman_kac_rate(ell: Tensor, log_ratios: Tensor, out: Tensor, into: Tensor) -> Tensor:
    r"""a_t(x) = ell(x) + sum_{i,c} [out_{i,c} - in_{i,c} exp(R_t(x)[i, c])], (n,).

    ``ell`` = d/dt log rho_t = log rho* - log p_0 on the path of the module docstring;
    ``log_ratios`` R_t(x)[i, c] = log rho_t(tau_{i,c} x) - log rho_t(x), (n, dim, q)."""
    ratio = log_ratios.clamp_max(MAX_LOG_RATIO).exp()
    return ell + (out - into * ratio).sum((1, 2))


def balance(log_ratios: Tensor) -> Tensor:
    r"""exp((R[i, c] - R[i, a]) / 2), (n, dim, q, q), from single-site log ratios R (n, dim, q)
    of rho_t: the rates T[i, a, c] = s[i, a, c] balance(R)[i, a, c] with s symmetric in
    (a, c) satisfy detailed balance for rho_t and add nothing to a_t, so that a learned table
    times this factor starts from a chain that leaves rho_t invariant and learns only the
    flux that carries it along the path. The factor depends on x_{-i} only (R[i, c] - R[i, a]
    is log rho_t(x_i = c | x_{-i}) - log rho_t(x_i = a | x_{-i})): the table stays locally
    equivariant."""
    half = 0.5 * log_ratios.clamp(-2 * MAX_LOG_RATIO, 2 * MAX_LOG_RATIO)
    return (half[..., None, :] - half[..., :, None]).exp()


def leaps_loss(
    rates: Callable[[Tensor, Tensor, Tensor], Tensor],
    t: Tensor,
    index: Tensor,
    ell: Tensor,
    target_ratios: Tensor,
) -> Tensor:
    r"""LEAPS's PINN loss with the free-energy rate at its optimum: the mean over levels of
    the variance over walkers of a_t(x).

    min over dF_t/dt of E |a_t(x) - dF_t/dt|^2 is reached at dF_t/dt = E_t[a_t], which
    leaves Var_t(a_t): the loss of arXiv:2502.10843 with F solved for in closed form, so
    that no network has to learn the (large) mean of a_t before the rates learn anything.

    Arguments:
        rates: (t, index, log_ratios) -> the rate table (n, dim, q, q), log_ratios those of
            rho_t at the walkers.
        t: (k,) the times (= temperatures on the path rho_t = p_0^{1-t} rho*^t) of k levels.
        index: (k, b, dim) the value indices of b walkers at each level.
        ell: (k, b) log rho* - log p_0 at the walkers.
        target_ratios: (k, b, dim, q) the target's single-site log ratios at the walkers
            (the uniform base's are 0, so rho_t's are t times these).
    """
    k, b, dim = index.shape
    times = t.repeat_interleave(b)
    flat = index.reshape(k * b, dim)
    log_ratios = times[:, None, None] * target_ratios.reshape(k * b, dim, -1).float()
    out, into = split_rates(rates(times, flat, log_ratios), flat)
    a = feynman_kac_rate(ell.reshape(-1).float(), log_ratios, out, into).view(k, b)
    return a.var(1).mean()


def log_kernel(rates: Tensor, start: Tensor, end: Tensor, h: float) -> Tensor:
    """log of the kernel that jumps site i with probability 1 - exp(-h lambda_i), lambda_i
    = sum_c rates[i, c], to c with probability rates[i, c] / lambda_i: (n,) for the move
    start -> end (value indices)."""
    lam = rates.sum(-1)
    jumped = end != start
    to = rates.gather(-1, end[..., None]).squeeze(-1)
    log_jump = torch.log(-torch.expm1(-h * lam)) + torch.log(to) - torch.log(lam)
    stay = -h * lam
    return torch.where(jumped, log_jump, stay).sum(1)


@dataclass
class CTMCStep:
    r"""One step of the learned CTMC as the engine's Markov transport
    (:class:`~..annealing.MarkovTransport`), with rates taken at the step's end time t1.

    K: from x, each site jumps independently with probability 1 - exp(-h lambda_i(x)),
    lambda_i = sum_c out[i, c], to v_c with probability out[i, c] / lambda_i.
    L: the same kernel from y with the reversed rates in_y[i, c] rho(tau_{i,c} y) / rho(y)
    (one more evaluation of the rates, at y; the target's ratios at y come with y's state).
    """

    rates: Callable[[Tensor, Tensor, Tensor], Tensor]
    values: Tensor
    record: list[float] = field(default_factory=list)  # mean sites changed, per step

    def _rates(self, t: float, index: Tensor, log_ratios: Tensor) -> Tensor:
        return self.rates(torch.full(index.shape[:1], t), index, log_ratios).double()

    def propose(
        self, t0: float, t1: float, old: State, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """(y ~ K(. | x), log K(y | x)), x the walkers of ``old`` (whose ``grad`` holds the
        path's single-site log ratios)."""
        x = old.position
        h, start = t1 - t0, value_index(x, self.values)
        out, _ = split_rates(self._rates(t1, start, old.grad), start)
        lam = out.sum(-1)
        u = torch.rand(lam.shape, generator=generator, dtype=torch.float64)
        jump = u < -torch.expm1(-h * lam)
        v = torch.rand(lam.shape, generator=generator, dtype=torch.float64)
        cum = out.cumsum(-1) / lam.clamp_min(1e-300)[..., None]
        dest = (cum < v[..., None]).sum(-1).clamp_max(out.shape[-1] - 1)
        end = torch.where(jump, dest, start)
        self.record.append(float(jump.sum(1).double().mean()))
        return self.values.to(x.dtype)[end], log_kernel(out, start, end, h)

    def log_backward(self, t0: float, t1: float, x: Tensor, y: Tensor, new: State) -> Tensor:
        """log L(x | y), with ``new.grad`` the path's single-site log ratios at y."""
        end, start = value_index(y, self.values), value_index(x, self.values)
        _, into = split_rates(self._rates(t1, end, new.grad), end)
        back = into * new.grad.double().clamp_max(MAX_LOG_RATIO).exp()
        return log_kernel(back, end, start, t1 - t0)
