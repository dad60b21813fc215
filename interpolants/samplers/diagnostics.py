r"""Diagnostics: importance weights, log Z, autocorrelation, split R-hat, Monte Carlo errors.

Weights. For log weights log w_i, the normalised effective sample size is
ESS / N = (sum w)^2 / (N sum w^2) (Kong 1992), and log Z_hat = log mean exp(log w) has the
delta-method standard error se(Z_hat) / Z_hat = sqrt(var(w) / N) / mean(w)
= sqrt((N / ESS - 1) / (N - 1)), computed from log weights without overflow.

Chains. For draws x (draws N, chains M, k), the multi-chain autocorrelation of Stan and of
Vehtari et al. is rho_t = 1 - (W - mean_m acov_m(t)) / var_plus with W the mean within-chain
variance and var_plus = (N - 1) / N W + B / N; the integrated autocorrelation time is
tau = -1 + 2 sum_k P_k over Geyer's initial positive, monotone sequence of pair sums
P_k = rho_{2k} + rho_{2k+1}, ESS = N M / tau, and the Monte Carlo standard error of a mean
is sqrt(var / ESS). Split R-hat = sqrt(var_plus / W) over chains cut in halves.

References:
    A. Kong, A note on importance sampling using standardized weights, U. Chicago TR 348 (1992).
    C. J. Geyer, Practical Markov chain Monte Carlo, Statistical Science 7 (1992) 473-483.
    A. Gelman et al., Bayesian Data Analysis, 3rd ed. (2013), section 11.4-11.5.
    A. Vehtari, A. Gelman, D. Simpson, B. Carpenter, P.-C. Buerkner, Rank-normalization,
    folding, and localization: an improved R-hat, Bayesian Analysis (2021), arXiv:1903.08008.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "autocorrelation",
    "effective_sample_size",
    "ess_of_weights",
    "integrated_autocorr_time",
    "log_Z_from_weights",
    "log_mean_exp",
    "mcse_mean",
    "split_rhat",
    "weighted_mean_and_stderr",
]


# --- importance weights ------------------------------------------------------------------


def log_mean_exp(x: Tensor, dim: int = -1) -> Tensor:
    """log (1/n) sum_i exp(x_i) along ``dim``, stably."""
    return torch.logsumexp(x, dim=dim) - math.log(x.shape[dim])


def ess_of_weights(log_weights: Tensor, dim: int = -1) -> Tensor:
    """Normalised effective sample size (sum w)^2 / (n sum w^2) in [1/n, 1]."""
    lw = log_weights.double()
    log_ess = 2 * torch.logsumexp(lw, dim=dim) - torch.logsumexp(2 * lw, dim=dim)
    return (log_ess - math.log(lw.shape[dim])).exp()


def log_Z_from_weights(log_weights: Tensor) -> tuple[float, float]:
    """log Z_hat = log mean exp(log w) and its delta-method standard error
    sqrt((1 / ESS_norm - 1) / (n - 1)) (the relative standard error of Z_hat); log weights (n,)."""
    lw = log_weights.double().flatten()
    n = lw.shape[0]
    log_z = float(log_mean_exp(lw, 0))
    if n < 2 or not math.isfinite(log_z):
        return log_z, math.nan
    ess = float(ess_of_weights(lw, 0))
    return log_z, math.sqrt(max(1.0 / ess - 1.0, 0.0) / (n - 1))


def weighted_mean_and_stderr(
    values: Tensor, log_weights: Tensor, groups: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    r"""Self-normalised importance sampling mean mu = sum_i W_i f_i and its delta-method error.

    Without ``groups`` (independent weighted samples): se^2 = sum_i W_i^2 (f_i - mu)^2.
    With ``groups`` (n,) integer labels of R independent batches (e.g. SMC runs):
    se^2 = R / (R - 1) sum_r (A_r - mu B_r)^2 with A_r = sum_{i in r} W_i f_i,
    B_r = sum_{i in r} W_i, the ratio-estimator variance over batches.

    Arguments:
        values: f(x_i), shape (n,) or (n, k).
        log_weights: (n,) unnormalised.
        groups: optional (n,) batch labels 0..R-1.

    Returns:
        (mean, stderr), each of shape () or (k,).
    """
    f = values.double()
    squeeze = f.ndim == 1
    f = f.reshape(f.shape[0], -1)
    w = torch.softmax(log_weights.double().flatten(), 0)[:, None]
    mu = (w * f).sum(0)
    if groups is None:
        se = (w.square() * (f - mu).square()).sum(0).sqrt()
    else:
        r = int(groups.max()) + 1
        dev = torch.zeros(r, f.shape[1], dtype=f.dtype, device=f.device)
        dev.index_add_(0, groups.to(f.device).long(), w * (f - mu))
        se = (dev.square().sum(0) * r / max(r - 1, 1)).sqrt()
        if r < 2:
            se = torch.full_like(se, math.nan)
    return (mu[0], se[0]) if squeeze else (mu, se)


# --- Markov chains -----------------------------------------------------------------------


def _as_chains(x: Tensor) -> Tensor:
    """(draws, chains) or (draws, chains, k) -> float64 (draws, chains, k)."""
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3:
        raise ValueError(f"draws must have shape (draws, chains[, k]), got {tuple(x.shape)}")
    return x.double()


def autocorrelation(x: Tensor) -> Tensor:
    """Multi-chain autocorrelation rho_t, t = 0..N-1, of draws (N, M[, k]) -> (N, k),
    with within-chain autocovariances by FFT (Vehtari et al., arXiv:1903.08008, eq. 10)."""
    x = _as_chains(x)
    n, m, _ = x.shape
    d = x - x.mean(0)
    size = 1 << (2 * n - 1).bit_length()
    spec = torch.fft.rfft(d, n=size, dim=0)
    acov = torch.fft.irfft(spec.real.square() + spec.imag.square(), n=size, dim=0)[:n] / n
    w = x.var(0, unbiased=True).mean(0)  # (k,)
    b_over_n = x.mean(0).var(0, unbiased=True) if m > 1 else torch.zeros_like(w)
    var_plus = (n - 1) / n * w + b_over_n
    return 1.0 - (w - acov.mean(1)) / var_plus


def integrated_autocorr_time(x: Tensor) -> Tensor:
    """tau = -1 + 2 sum_k P_k over Geyer's initial monotone sequence, per component (k,).

    tau = N M / ESS; it is floored at 1 / log10(N M) as in Stan (antithetic chains)."""
    x = _as_chains(x)
    n, m, _ = x.shape
    rho = autocorrelation(x)
    if n < 4:
        return torch.full((x.shape[2],), math.nan, dtype=torch.float64)
    half = n // 2
    pairs = rho[: 2 * half].reshape(half, 2, -1).sum(1)  # P_k, (half, k)
    positive = torch.cumprod((pairs > 0).double(), 0)
    monotone = torch.cummin(pairs, 0).values
    tau = -1.0 + 2.0 * (monotone * positive).sum(0)
    tau = torch.clamp(tau, min=1.0 / math.log10(max(n * m, 11)))
    return torch.where(torch.isfinite(rho[0]), tau, torch.full_like(tau, math.nan))


def effective_sample_size(x: Tensor) -> Tensor:
    """ESS = N M / tau of draws (N, M[, k]) per component (k,)."""
    x = _as_chains(x)
    return x.shape[0] * x.shape[1] / integrated_autocorr_time(x)


def split_rhat(x: Tensor) -> Tensor:
    """Split R-hat = sqrt(var_plus / W) after cutting each chain in two halves (BDA3 11.4);
    draws (N, M[, k]) -> (k,). Values near 1 (below 1.01) indicate mixed chains."""
    x = _as_chains(x)
    half = x.shape[0] // 2
    if half < 2:
        return torch.full((x.shape[2],), math.nan, dtype=torch.float64)
    x = torch.cat([x[:half], x[-half:]], dim=1)
    w = x.var(0, unbiased=True).mean(0)
    var_plus = (half - 1) / half * w + x.mean(0).var(0, unbiased=True)
    return (var_plus / w).sqrt()


def mcse_mean(x: Tensor) -> tuple[Tensor, Tensor]:
    """Mean over all draws (N, M[, k]) and its Monte Carlo standard error sqrt(var / ESS)."""
    x = _as_chains(x)
    flat = x.reshape(-1, x.shape[2])
    se = (flat.var(0, unbiased=True) / effective_sample_size(x)).sqrt()
    return flat.mean(0), se
