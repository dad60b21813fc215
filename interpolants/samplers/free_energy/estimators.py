r"""Free-energy differences from work values: Jarzynski's exponential average and Bennett's
acceptance ratio, with their asymptotic standard errors.

Conventions (stated once; every function of this package follows them). States a and b have
unnormalised densities exp(-u_a), exp(-u_b) with Z_a, Z_b; the free-energy difference is

    Delta F = F_b - F_a = -log(Z_b / Z_a).

A forward work W_F is made from x ~ a, a reverse work W_R from y ~ b; for the instantaneous
switch W_F(x) = u_b(x) - u_a(x), W_R(y) = u_a(y) - u_b(y), for an annealing or an escorted
(transported) process the accumulated work (:mod:`.runner`). Jarzynski's equality

    E_F[exp(-W_F)] = exp(-Delta F),   E_R[exp(-W_R)] = exp(+Delta F),

and Crooks' fluctuation theorem p_F(W) / p_R(-W) = exp(W - Delta F) hold for them
(Jarzynski, PRL 78 (1997) 2690, arXiv:cond-mat/9610209; Crooks, PRE 60 (1999) 2721,
arXiv:cond-mat/9901352). These are pymbar's conventions (``pymbar.other_estimators.bar``,
``exp``): w_F from state 0 = a to state 1 = b, Delta F = f_1 - f_0, all in units of kT.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["bar", "bar_equation", "jarzynski"]


def _works(name: str, w: Tensor, at_least: int = 2) -> Tensor:
    w = torch.as_tensor(w).detach().double().flatten().cpu()
    if w.numel() < at_least:
        raise ValueError(f"{name} must hold at least {at_least} work values, got {w.numel()}")
    if bool(torch.isnan(w).any()) or bool((w == -math.inf).any()):
        raise ValueError(f"{name} has NaN or -inf work values")
    return w


def jarzynski(work: Tensor, inefficiency: float = 1.0) -> tuple[float, float]:
    r"""Delta F = -log mean_i exp(-W_i) from n works W_i of one direction (forward works give
    Delta F; reverse works give -Delta F, negate it), with the delta-method standard error

        se = sd(exp(-W)) / (sqrt(n) mean(exp(-W))) = sqrt((1 / ESS_norm - 1) / (n - 1)),

    ESS_norm = (sum e^{-W})^2 / (n sum e^{-2W}) (Jarzynski 1997; the error as in
    Gore, Ritort & Bustamante, PNAS 100 (2003) 12564). Works of +inf (a zero weight) are kept.
    The error is itself an estimate and too small when the exponential average is dominated by
    rare works that were not drawn (the usual failure of one-sided estimates).

    ``inefficiency`` g >= 1: the works come from correlated draws (MCMC), g of them worth one
    independent draw (the statistical inefficiency 1 + 2 sum_t rho_t, Chodera et al.,
    JCTC 3 (2007) 26; pymbar.timeseries); the variance is multiplied by g.

    Returns:
        (Delta F, stderr).
    """
    w = _works("work", work)
    n = w.numel()
    lw = -w
    log_mean = torch.logsumexp(lw, 0) - math.log(n)
    if not math.isfinite(float(log_mean)):
        return math.inf, math.nan
    ess = float((2 * torch.logsumexp(lw, 0) - torch.logsumexp(2 * lw, 0)).exp() / n)
    g = max(float(inefficiency), 1.0)
    return -float(log_mean), math.sqrt(g * max(1.0 / ess - 1.0, 0.0) / (n - 1))


def bar_equation(delta_f: float, w_forward: Tensor, w_reverse: Tensor) -> float:
    r"""Bennett's self-consistent equation, zero at the BAR estimate (Bennett, J. Comput. Phys.
    22 (1976) 245; Shirts, Bair, Hooker & Pande, PRL 91 (2003) 140601, eq. 6):

        g(Delta F) = sum_i f(M + W_F,i - Delta F) - sum_j f(-M + W_R,j + Delta F),

    f(x) = 1 / (1 + e^x) the Fermi function and M = log(n_F / n_R); g increases with Delta F."""
    m = math.log(w_forward.numel() / w_reverse.numel())
    fwd = torch.sigmoid(-(m + w_forward - delta_f)).sum()
    rev = torch.sigmoid(-(-m + w_reverse + delta_f)).sum()
    return float(fwd - rev)


def bar(
    w_forward: Tensor, w_reverse: Tensor, inefficiency: tuple[float, float] = (1.0, 1.0)
) -> tuple[float, float]:
    r"""Bennett's acceptance ratio: Delta F solving :func:`bar_equation` (bisection in float64
    to 1e-12), the minimum-variance estimate from forward and reverse works (Shirts et al.
    2003 show it is the maximum-likelihood estimate given the works), with the asymptotic
    standard error of Shirts et al. (2003, eq. 10; pymbar's ``uncertainty_method="BAR"``)

        se^2 = (<f_F^2> / <f_F>^2 - 1) / n_F + (<f_R^2> / <f_R>^2 - 1) / n_R,

    f_F = f(M + W_F - Delta F), f_R = f(-M + W_R + Delta F), averages over the works.

    Arguments:
        w_forward: W_F of x ~ a (n_F >= 2 values).
        w_reverse: W_R of y ~ b (n_R >= 2 values).
        inefficiency: (g_F, g_R) >= 1, the statistical inefficiencies of correlated forward
            and reverse works (as in :func:`jarzynski`): each direction's term of se^2 is
            multiplied by its g.

    Returns:
        (Delta F, stderr).
    """
    wf, wr = _works("w_forward", w_forward), _works("w_reverse", w_reverse)
    # a bracket: the one-sided estimates and the works' range
    finite = torch.cat([wf[torch.isfinite(wf)], -wr[torch.isfinite(wr)]])
    if finite.numel() == 0:
        raise ValueError("w_forward and w_reverse have no finite work values")
    lo, hi = float(finite.min()) - 1.0, float(finite.max()) + 1.0
    while bar_equation(lo, wf, wr) > 0:
        lo -= 2 * (hi - lo)
    while bar_equation(hi, wf, wr) < 0:
        hi += 2 * (hi - lo)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if bar_equation(mid, wf, wr) < 0:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    delta_f = 0.5 * (lo + hi)
    m = math.log(wf.numel() / wr.numel())
    ff = torch.sigmoid(-(m + wf - delta_f))
    fr = torch.sigmoid(-(-m + wr + delta_f))
    g_f, g_r = (max(float(g), 1.0) for g in inefficiency)
    var = g_f * ff.var(correction=0) / ff.mean() ** 2 / wf.numel()
    var = var + g_r * fr.var(correction=0) / fr.mean() ** 2 / wr.numel()
    return delta_f, math.sqrt(max(float(var), 0.0))
