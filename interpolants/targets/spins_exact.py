r"""Exact partition functions and moments of the 2D Ising and Potts models on the torus.

* :func:`kaufman_log_Z`: Kaufman's closed form for the Ising model at h = 0 on an L x L
  periodic lattice (B. Kaufman, Phys. Rev. 76, 1232 (1949); the form of P. D. Beale,
  Phys. Rev. Lett. 76, 78 (1996)), any L >= 2.
* :func:`transfer_matrix_log_Z`: the row-to-row transfer matrix (q^L x q^L, float64) for
  Ising with a field or Potts, small L.
* :func:`enumerate_moments`: log Z, E|m|, E m^2, the susceptibility and the energy per
  site by summing over every state (q^dim <= 2^20).

Bonds are counted as the periodic formula gives, sum over sites i of (bond to the right) +
(bond below): on L = 2 each pair of neighbours is joined by two bonds (both directions wrap
to the same site), and every formula here counts both.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..checks import finite_float, int_at_least, positive_number

__all__ = [
    "enumerate_moments",
    "enumerate_states",
    "kaufman_energy_per_site",
    "kaufman_log_Z",
    "transfer_matrix_log_Z",
]

MAX_ENUMERATED = 2**20


def _signed_log_sum(logs: list[float], signs: list[float]) -> float:
    """log(sum_k sign_k exp(logs_k)) for a positive sum (signed log-sum-exp)."""
    top = max(v for v in logs if v > -math.inf)
    total = sum(s * math.exp(v - top) for v, s in zip(logs, signs, strict=True))
    if not total > 0:
        raise ArithmeticError("Kaufman's sum is not positive (loss of precision)")
    return top + math.log(total)


def _log_2cosh(x: float) -> float:
    a = abs(x)
    return a + math.log1p(math.exp(-2 * a))


def _log_abs_2sinh(x: float) -> float:
    a = abs(x)
    return -math.inf if a == 0 else a + math.log(-math.expm1(-2 * a))


def _gamma(K: float, cos_k: float) -> float:
    """acosh(cosh 2K coth 2K - cos_k) without overflow at large K (acosh y = log y +
    log(1 + sqrt(1 - 1 / y^2)), log y from e^{2K} / 2 when cosh 2K would overflow)."""
    if K < 150:
        y = math.cosh(2 * K) / math.tanh(2 * K) - cos_k
        return math.acosh(y)
    log_y = 2 * K - math.log(2.0) + math.log1p(-2 * cos_k * math.exp(-2 * K))
    return log_y + math.log1p(math.sqrt(-math.expm1(-2 * log_y)))


def kaufman_log_Z(L: int, beta: float, J: float = 1.0) -> float:
    r"""log Z of the zero-field Ising model on the L x L torus, exactly (Kaufman 1949).

    With K = beta J > 0 and N = L^2,

        Z = (1/2) (2 sinh 2K)^{N/2} [ prod_{r=0}^{L-1} 2 cosh(L g_{2r+1} / 2)
                                     + prod_{r=0}^{L-1} 2 sinh(L g_{2r+1} / 2)
                                     + prod_{r=0}^{L-1} 2 cosh(L g_{2r} / 2)
                                     + prod_{r=0}^{L-1} 2 sinh(L g_{2r} / 2) ],

    cosh g_k = cosh 2K coth 2K - cos(pi k / L) with g_k > 0 for k >= 1, and the signed
    g_0 = 2K + log tanh K, negative below K_c = log(1 + sqrt 2) / 2 (where |g_0| from the
    cosh relation would give the wrong sign to the fourth product; Beale 1996). K = 0 gives
    N log 2; K < 0 (antiferromagnet) equals K > 0 on an even lattice (flip one sublattice)
    and is refused on an odd one (frustrated: use :func:`transfer_matrix_log_Z`).
    Evaluated as a signed log-sum-exp in float64.
    """
    L = int_at_least("L", L, 2)
    beta = positive_number("beta", beta, allow_zero=True)
    J = finite_float("J", J)
    K = beta * J
    N = L * L
    if K == 0:
        return N * math.log(2.0)
    if K < 0:
        if L % 2:
            raise ValueError(f"J < 0 on an odd lattice (L = {L}) is frustrated: no Kaufman form")
        K = -K
    gamma = [2 * K + math.log(math.tanh(K))]
    gamma += [_gamma(K, math.cos(math.pi * k / L)) for k in range(1, 2 * L)]
    odd = [gamma[2 * r + 1] * L / 2 for r in range(L)]
    even = [gamma[2 * r] * L / 2 for r in range(L)]
    logs, signs = [], []
    for half in (odd, even):
        logs.append(sum(_log_2cosh(g) for g in half))
        signs.append(1.0)
        logs.append(sum(_log_abs_2sinh(g) for g in half))
        signs.append(math.prod(math.copysign(1.0, g) for g in half))
    prefactor = (N / 2) * (2 * K + math.log(-math.expm1(-4 * K))) - math.log(2.0)
    return prefactor + _signed_log_sum(logs, signs)


def kaufman_energy_per_site(L: int, beta: float, J: float = 1.0, step: float = 1e-4) -> float:
    r"""The exact mean energy per site of the zero-field Ising model on the L x L torus,

        E[e] = -(1/N) d log Z / d beta,  e = -(J sum_<ij> s_i s_j) / N,

    by the five-point central difference of :func:`kaufman_log_Z` in beta (truncation error
    O(step^4), rounding about 1e-16 log Z / (N step): below 1e-9 here). beta >= 2 step.
    """
    beta = positive_number("beta", beta, allow_zero=True)
    if beta < 2 * step:
        raise ValueError(f"beta must be >= 2 step = {2 * step} for the difference, got {beta}")
    f = [kaufman_log_Z(L, beta + k * step, J) for k in (-2, -1, 1, 2)]
    derivative = (f[0] - 8 * f[1] + 8 * f[2] - f[3]) / (12 * step)
    return -derivative / (L * L)


def _rows(L: int, q: int) -> Tensor:
    """Every row configuration as value indices (q^L, L), first site most significant."""
    idx = torch.arange(q**L)
    powers = q ** torch.arange(L - 1, -1, -1)
    return (idx[:, None] // powers) % q


def transfer_matrix_log_Z(
    L: int, beta: float, J: float = 1.0, h: float = 0.0, q: int | None = None
) -> float:
    r"""log Z on the L x L torus by the row-to-row transfer matrix, in float64.

    Ising (q None): log rho(s) = beta (J sum_<ij> s_i s_j + h sum_i s_i), s_i = +-1.
    Potts (q >= 2 given): log rho(s) = beta J sum_<ij> [s_i = s_j], h must be 0. With a row
    a (L sites),

        T[a, b] = exp(w(a)/2 + beta J (a . b) + w(b)/2),
        w(a) = beta (J sum_j a_j a_{j+1} + h sum_j a_j)

    (a . b and a_j a_{j+1} replaced by [a_j = b_j], [a_j = a_{j+1}] for Potts), and
    Z = tr T^L = sum_k lambda_k^L over the eigenvalues of the symmetric T. The matrix has
    q^L rows: refused above 4096 (L <= 12 for Ising, L <= 7 for q = 3).
    """
    L = int_at_least("L", L, 2)
    beta = positive_number("beta", beta, allow_zero=True)
    J, h = finite_float("J", J), finite_float("h", h)
    potts = q is not None
    q = int_at_least("q", q, 2) if potts else 2
    if potts and h != 0:
        raise ValueError(f"h must be 0 for the Potts model, got {h}")
    if q**L > 4096:
        raise ValueError(f"the transfer matrix has q^L = {q}^{L} > 4096 rows: L is too large")
    rows = _rows(L, q)
    if potts:
        horizontal = (rows == rows.roll(-1, 1)).sum(1).to(torch.float64)
        onehot = torch.nn.functional.one_hot(rows, q).reshape(len(rows), -1).to(torch.float64)
        vertical = onehot @ onehot.T
        field = torch.zeros(len(rows), dtype=torch.float64)
    else:
        s = (2 * rows - 1).to(torch.float64)
        horizontal = (s * s.roll(-1, 1)).sum(1)
        vertical = s @ s.T
        field = s.sum(1)
    w = beta * (J * horizontal + h * field)
    log_T = w[:, None] / 2 + beta * J * vertical + w[None, :] / 2
    shift = float(log_T.max())
    lam = torch.linalg.eigvalsh((log_T - shift).exp())
    top = float(lam.abs().max())
    return L * (shift + math.log(top)) + math.log(float((lam / top).pow(L).sum()))


def enumerate_states(target: Any) -> tuple[Tensor, Tensor]:
    r"""Every state of a small discrete target with its normalised log probability (float64).

    Returns (x (q^dim, dim), log p (q^dim,)), log p = log rho(x) - log Z with
    Z = sum_x rho(x); the states in lexicographic order of their value indices (the last
    site fastest). Refused above 2^20 states.
    """
    q, dim = len(target.values), target.dim
    if q**dim > MAX_ENUMERATED:
        raise ValueError(f"enumeration needs q^dim = {q}^{dim} > 2^20 states: dim too large")
    idx = torch.arange(q**dim)
    powers = q ** torch.arange(dim - 1, -1, -1)
    x = target.values.to(torch.float64)[(idx[:, None] // powers) % q]
    log_rho = torch.cat([target.log_prob(part).to(torch.float64) for part in x.split(2**16)])
    return x, log_rho - torch.logsumexp(log_rho, 0)


def enumerate_moments(target: Any) -> dict[str, float]:
    r"""Exact moments of a small lattice target by summing over all q^dim states (float64).

    ``target`` is an :class:`~.spins.Ising` or :class:`~.spins.Potts` (anything with
    ``dim``, ``values``, ``log_prob``, ``magnetisation`` and ``energy_per_site``). Returns
    log Z, E|m|, E m^2, chi = N (E m^2 - (E|m|)^2) (the convention of
    :meth:`~.spins.Ising.susceptibility`) and E e, e the energy per site, with
    Z = sum_x rho(x) (:func:`enumerate_states`). Refused above 2^20 states.
    """
    x, log_p = enumerate_states(target)
    p = log_p.exp()
    log_Z = float(target.log_prob(x[:1]).to(torch.float64)[0] - log_p[0])
    m = target.magnetisation(x).to(torch.float64)
    e = target.energy_per_site(x).to(torch.float64)
    abs_m, m2 = float((p * m.abs()).sum()), float((p * m * m).sum())
    return {
        "log_Z": log_Z,
        "abs_magnetisation": abs_m,
        "magnetisation_sq": m2,
        "susceptibility": target.dim * (m2 - abs_m**2),
        "energy_per_site": float((p * e).sum()),
    }
