r"""Diagnostics: importance weights, log Z, autocorrelation, split R-hat, Monte Carlo errors.

Weights. For log weights log w_i, the normalised effective sample size is
ESS / N = (sum w)^2 / (N sum w^2) (Kong 1992), and log Z_hat = log mean exp(log w) has the
delta-method standard error se(Z_hat) / Z_hat = sqrt(var(w) / N) / mean(w)
= sqrt((N / ESS - 1) / (N - 1)), computed from log weights without overflow. A step that
multiplies the weights by v_i keeps the share CESS = (sum W_i v_i)^2 / sum W_i v_i^2 of the
ESS (the conditional ESS of Zhou, Johansen & Aston, arXiv:1303.3123); summed as logs over
an annealing run's levels, with and without a transport, it measures what the transport
did for the weights (:func:`transport_gain`).

Chains. For draws x (draws N, chains M, k), the multi-chain autocorrelation of Stan and of
Vehtari et al. is rho_t = 1 - (W - mean_m acov_m(t)) / var_plus with W the mean within-chain
variance and var_plus = (N - 1) / N W + B / N; the integrated autocorrelation time is
tau = -1 + 2 sum_k P_k over Geyer's initial positive, monotone sequence of pair sums
P_k = rho_{2k} + rho_{2k+1}, ESS = N M / tau, and the Monte Carlo standard error of a mean
is sqrt(var / ESS). Split R-hat = sqrt(var_plus / W) over chains cut in halves.

Rank-normalised diagnostics (Vehtari et al. 2021, arXiv:1903.08008; the definitions of ArviZ
0.23 and of Stan's ``posterior``): the split chains' draws are replaced, per coordinate, by
the normal scores z = Phi^{-1}((r - 3/8) / (S + 1/4)) of their pooled ranks r (eq. 14);
bulk R-hat and bulk ESS are split R-hat and ESS of z, tail (folded) R-hat is split R-hat of
the ranks of |x - median x|, and R-hat = max(bulk, tail); tail ESS is the smaller ESS of
the indicators I(x <= q_0.05) and I(x <= q_0.95). :func:`convergence_warnings` turns them
into one-line warnings (R-hat > 1.01, ESS < 400, divergences, < 100 draws per chain).

Monte Carlo standard errors (Vehtari et al. 2021, section 4.4) and intervals, as ArviZ 0.23
computes them (tests/test_arviz.py checks agreement to 1e-6): :func:`mcse_mean` = sd /
sqrt(ESS) with the ESS of the raw split chains (:func:`ess_mean`); :func:`mcse_sd` by the
delta method from the ESS of (x - mean)^2; :func:`mcse_quantile` from the ESS of
I(x <= q_p) through the Phi(+-1) quantiles of Beta(ESS p + 1, ESS (1 - p) + 1) mapped to
order statistics; :func:`hdi` the shortest interval holding floor(prob S) + 1 sorted draws.

References:
    A. Kong, A note on importance sampling using standardized weights, U. Chicago TR 348 (1992).
    C. J. Geyer, Practical Markov chain Monte Carlo, Statistical Science 7 (1992) 473-483.
    A. Gelman et al., Bayesian Data Analysis, 3rd ed. (2013), section 11.4-11.5.
    A. Vehtari, A. Gelman, D. Simpson, B. Carpenter, P.-C. Buerkner, Rank-normalization,
    folding, and localization: an improved R-hat, Bayesian Analysis (2021), arXiv:1903.08008.
    M.-H. Chen, Q.-M. Shao, Monte Carlo estimation of Bayesian credible and HPD intervals,
    J. Comput. Graph. Stat. 8 (1999) 69-92.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = [
    "ConvergenceWarning",
    "autocorrelation",
    "beta_quantile",
    "convergence_warnings",
    "effective_sample_size",
    "ess_bulk",
    "ess_mean",
    "ess_of_weights",
    "ess_quantile",
    "ess_sd",
    "ess_tail",
    "hdi",
    "integrated_autocorr_time",
    "log_Z_from_weights",
    "log_Z_over_batches",
    "log_conditional_ess",
    "log_mean_exp",
    "mcse_mean",
    "mcse_quantile",
    "mcse_sd",
    "rank_normalize",
    "rank_rhat",
    "rhat_bulk",
    "rhat_tail",
    "split_chains",
    "split_rhat",
    "start_end_correlation",
    "transport_gain",
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


def log_conditional_ess(log_weights: Tensor, increment: Tensor) -> Tensor:
    """log CESS = 2 log sum_i W_i v_i - log sum_i W_i v_i^2 (<= 0) per row, with v_i =
    exp(increment_i) the weight increments of a step and W the normalised weights before it
    (Zhou, Johansen & Aston, arXiv:1303.3123): the share of the ESS the step keeps."""
    a = torch.log_softmax(log_weights.double(), -1) + increment.double()
    return 2 * torch.logsumexp(a, -1) - torch.logsumexp(a + increment.double(), -1)


NOTHING_LOST = 1e-9  # a sum of log CESS above -this is 0 to rounding


def transport_gain(levels: Sequence[tuple[float, float]]) -> float | None:
    r"""How much a transport cut the weights' loss of ESS along a run: sum_k log CESS_k of
    the reweighting alone over sum_k log CESS_k with the transport (levels of
    :attr:`.annealing.Annealed.transport_cess`). 1: the transport did nothing for the weights (the
    run is SMC with extra noise); 30: each level lost 1/30 of what reweighting alone would;
    < 1: the transport made them worse; inf: it lost nothing (to rounding). None without
    levels, or where reweighting alone loses nothing (a target proportional to the base)."""
    lost = sum(a for a, _ in levels), sum(b for _, b in levels)
    if not levels or not all(math.isfinite(v) for v in lost) or lost[0] > -NOTHING_LOST:
        return None
    return math.inf if lost[1] > -NOTHING_LOST else lost[0] / lost[1]


def start_end_correlation(start: Tensor, now: Tensor) -> float:
    r"""The largest |Pearson correlation| over coordinates between the walkers' positions
    ``start`` and ``now`` (n, dim): 1 when the moves left them where they were, near 0 once
    they have forgotten it."""
    a = start.double() - start.double().mean(0)
    b = now.double() - now.double().mean(0)
    corr = (a * b).sum(0) / (a.norm(dim=0) * b.norm(dim=0)).clamp_min(1e-300)
    return float(corr.abs().max())


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


def log_Z_over_batches(log_z: Tensor) -> tuple[float, float | None]:
    """log Z_hat = log mean exp of R independent runs' log Z_hat_r, and its delta-method
    standard error sd(Z_r) / (sqrt(R) mean Z_r) (None for one run)."""
    log_z = log_z.double().flatten()
    if log_z.numel() < 2:
        return float(log_z.sum()), None
    z = (log_z - log_z.max()).exp()
    return float(log_mean_exp(log_z, 0)), float(z.std() / (math.sqrt(log_z.numel()) * z.mean()))


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


# --- rank-normalised R-hat and ESS (Vehtari et al. 2021, arXiv:1903.08008) -----------------

RHAT_THRESHOLD = 1.01  # Vehtari et al. 2021, section 4.3
ESS_THRESHOLD = 400  # bulk and tail ESS, in draws (their "100 per chain" with 4 chains)
MIN_DRAWS_PER_CHAIN = 100


class ConvergenceWarning(RuntimeWarning):
    """Markov chains that fail a convergence check (:func:`convergence_warnings`)."""


def split_chains(x: Tensor) -> Tensor:
    """Draws (N, M[, k]) -> (N // 2, 2 M, k): each chain's first and last N // 2 draws as two
    chains (the middle draw of an odd N is dropped), as in arXiv:1903.08008, section 3.1."""
    x = _as_chains(x)
    half = x.shape[0] // 2
    return torch.cat([x[:half], x[x.shape[0] - half :]], dim=1)


def _quantile(x: Tensor, q: float) -> Tensor:
    """Type-7 (linear) quantile over all draws, per coordinate: (N, M, k) -> (k,)."""
    s = x.reshape(-1, x.shape[2]).sort(0).values
    h = (s.shape[0] - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, s.shape[0] - 1)
    return s[lo] + (h - lo) * (s[hi] - s[lo])


def _median(x: Tensor) -> Tensor:
    """Median over all draws, per coordinate (the mean of the two middle ones for even S)."""
    s = x.reshape(-1, x.shape[2]).sort(0).values
    return 0.5 * (s[(s.shape[0] - 1) // 2] + s[s.shape[0] // 2])


def rank_normalize(x: Tensor) -> Tensor:
    """z = Phi^{-1}((r - 3/8) / (S + 1/4)) per coordinate, r the rank of a draw among all S
    draws of all chains (ties get their average rank); arXiv:1903.08008, eq. 14.
    Draws (N, M[, k]) -> (N, M, k) float64."""
    x = _as_chains(x)
    n, m, k = x.shape
    flat = x.reshape(n * m, k).T.contiguous()  # (k, S)
    s = flat.sort(-1).values
    lo = torch.searchsorted(s, flat, right=False)
    hi = torch.searchsorted(s, flat, right=True)
    rank = 0.5 * (lo + hi + 1).double()
    z = torch.special.ndtri((rank - 0.375) / (n * m + 0.25))
    return z.T.reshape(n, m, k)


def _rhat_of_chains(x: Tensor) -> Tensor:
    """R-hat = sqrt(((N - 1) / N W + B / N) / W) of the chains as given (no split), per
    coordinate: W the mean within-chain variance, B / N the variance of the chain means
    (arXiv:1903.08008, eqs. 1-4). (N, M, k) -> (k,)."""
    n = x.shape[0]
    w = x.var(0, unbiased=True).mean(0)
    b_over_n = x.mean(0).var(0, unbiased=True) if x.shape[1] > 1 else torch.zeros_like(w)
    return (((n - 1) / n * w + b_over_n) / w).sqrt()


def _valid(x: Tensor) -> Tensor:
    """Coordinates (k,) with no NaN and at least 4 draws."""
    ok = ~torch.isnan(x).any(0).any(0)
    return ok & (x.shape[0] >= 4)


def _per_coordinate(x: Tensor, statistic: Callable[[Tensor], Tensor]) -> Tensor:
    """statistic(draws (N, M, k)) -> (k,), NaN where a coordinate has a NaN or N < 4."""
    x = _as_chains(x)
    if x.shape[0] < 4:
        return torch.full((x.shape[2],), math.nan, dtype=torch.float64)
    return torch.where(_valid(x), statistic(x), math.nan)


def rhat_bulk(x: Tensor) -> Tensor:
    """Bulk R-hat: split R-hat of the rank-normalised split chains (arXiv:1903.08008,
    section 3.2). Draws (N, M[, k]) -> (k,); NaN where a coordinate has a NaN or N < 4."""
    return _per_coordinate(x, lambda c: _rhat_of_chains(rank_normalize(split_chains(c))))


def rhat_tail(x: Tensor) -> Tensor:
    """Folded (tail) R-hat: split R-hat of the rank-normalised |x - median x| of the split
    chains, the median over all their draws (arXiv:1903.08008, section 3.2, eq. 15).
    Draws (N, M[, k]) -> (k,)."""

    def folded(c: Tensor) -> Tensor:
        s = split_chains(c)
        return _rhat_of_chains(rank_normalize((s - _median(s)).abs()))

    return _per_coordinate(x, folded)


def rank_rhat(x: Tensor) -> Tensor:
    """R-hat = max(bulk R-hat, folded R-hat) per coordinate (arXiv:1903.08008, section 3.2;
    ArviZ's default ``rhat``; unlike ArviZ one chain is allowed, cut in two). Values above
    1.01 flag chains that have not mixed. Draws (N, M[, k]) -> (k,). Where the folded
    draws are all equal (a two-valued coordinate, such as a spin, with its median between
    the values) the folded R-hat is 0 / 0 and the bulk one stands alone."""
    return torch.fmax(rhat_bulk(x), rhat_tail(x))


def _ess_of_chains(x: Tensor) -> Tensor:
    r"""ESS = N M / tau of the chains as given, per coordinate, exactly as ArviZ's ``_ess``:
    rho_t = 1 - (W - mean_m acov_m(t)) / var_plus (eq. 10) with rho_0 = 1; Geyer's initial
    positive sequence of pair sums P_j = rho_2j + rho_2j+1 (j from 1 while 2j - 1 < N - 3
    and P_{j-1} > 0), made monotone by P_j <- min(P_j, P_{j-1}), and
    tau = -1 + 2 sum_{j < c} P_j + rho_2c (the even half of the first pair left out, when
    it is positive or its pair is not negative), floored at 1 / log10(N M)
    (arXiv:1903.08008, eqs. 10-13). Constant draws: ESS = N M. (N, M, k) -> (k,)."""
    n, m, _ = x.shape
    size = n * m
    d = x - x.mean(0)
    fft_len = 1 << (2 * n - 1).bit_length()
    spec = torch.fft.rfft(d, n=fft_len, dim=0)
    acov = torch.fft.irfft(spec.real.square() + spec.imag.square(), n=fft_len, dim=0)[:n] / n
    w = acov[0].mean(0) * n / (n - 1)
    var_plus = w * (n - 1) / n
    if m > 1:
        var_plus = var_plus + x.mean(0).var(0, unbiased=True)
    rho = 1.0 - (w - acov.mean(1)) / var_plus  # (n, k)
    rho[0] = 1.0
    last = max(0, (n - 3) // 2)  # the last pair the positive sequence may reach
    pairs = rho[0 : 2 * last + 2 : 2] + rho[1 : 2 * last + 2 : 2]  # P_0..P_last
    c = torch.cumprod((pairs[:last] > 0).long(), 0).sum(0)  # pairs kept, (k,)
    monotone = torch.cummin(pairs, 0).values
    kept = torch.arange(last + 1)[:, None] < c[None, :]
    even = rho.gather(0, 2 * c[None, :])[0]
    p_c = pairs.gather(0, c[None, :])[0]
    extra = torch.where((even > 0) | (p_c >= 0), even, torch.zeros_like(even))
    extra = torch.where(c == 0, torch.ones_like(even), extra)
    tau = -1.0 + 2.0 * torch.where(kept, monotone, 0.0).sum(0) + extra
    tau = torch.clamp(tau, min=1.0 / math.log10(size))
    ess = size / tau
    constant = (x.amax((0, 1)) - x.amin((0, 1))) < 1e-15
    return torch.where(constant, float(size), ess)


def ess_bulk(x: Tensor) -> Tensor:
    """Bulk ESS: the ESS of the rank-normalised split chains, in draws (arXiv:1903.08008,
    section 3.2). Draws (N, M[, k]) -> (k,); NaN where a coordinate has a NaN or N < 4."""
    return _per_coordinate(x, lambda c: _ess_of_chains(rank_normalize(split_chains(c))))


def ess_tail(x: Tensor) -> Tensor:
    """Tail ESS: min of the ESS of the split chains of I(x <= q_0.05) and I(x <= q_0.95),
    q the type-7 quantiles over all draws (arXiv:1903.08008, section 4.3), in draws.
    Draws (N, M[, k]) -> (k,)."""

    return torch.minimum(ess_quantile(x, 0.05), ess_quantile(x, 0.95))


# --- Monte Carlo standard errors and intervals (arXiv:1903.08008, section 4.4) ------------


def ess_mean(x: Tensor) -> Tensor:
    """ESS for the mean: the ESS of the split chains of the raw draws (no rank
    normalisation; arXiv:1903.08008, eqs. 10-13; ArviZ's ``ess(method="mean")``), in draws.
    Draws (N, M[, k]) -> (k,); NaN where a coordinate has a NaN or N < 4."""
    return _per_coordinate(x, lambda c: _ess_of_chains(split_chains(c)))


def ess_sd(x: Tensor) -> Tensor:
    """ESS for the standard deviation: the ESS of the split chains of (x - mean x)^2, the
    mean over all draws (ArviZ's ``ess(method="sd")``). Draws (N, M[, k]) -> (k,)."""
    return _per_coordinate(x, lambda c: _ess_of_chains(split_chains((c - c.mean((0, 1))) ** 2)))


def ess_quantile(x: Tensor, prob: float) -> Tensor:
    """ESS for the quantile q_prob: the ESS of the split chains of the indicator
    I(x <= q_prob), q_prob the type-7 quantile over all draws (arXiv:1903.08008, section
    4.3). Draws (N, M[, k]) -> (k,)."""
    _check_prob(prob)
    return _per_coordinate(
        x, lambda c: _ess_of_chains(split_chains((c <= _quantile(c, prob)).double()))
    )


def mcse_mean(x: Tensor) -> tuple[Tensor, Tensor]:
    """Mean over all draws (N, M[, k]) and its Monte Carlo standard error sd / sqrt(ESS),
    sd with ddof 1 over all draws and ESS = :func:`ess_mean` (split chains), as ArviZ's
    ``mcse(method="mean")``. Returns ((k,), (k,)); the error is NaN for N < 4 or NaN draws."""
    x = _as_chains(x)
    flat = x.reshape(-1, x.shape[2])
    return flat.mean(0), (flat.var(0, unbiased=True) / ess_mean(x)).sqrt()


def mcse_sd(x: Tensor) -> tuple[Tensor, Tensor]:
    r"""Standard deviation over all draws (N, M[, k]) (ddof 1) and its Monte Carlo standard
    error by the delta method: with d = (x - mean x)^2, v = mean d and
    Var(v_hat) = (mean d^2 - v^2) / ESS(d) (ESS of the split chains of d),
    se(sd) = sqrt(Var(v_hat) / (4 v)) (Vehtari et al., arXiv:1903.08008; ArviZ's
    ``mcse(method="sd")``). Returns ((k,), (k,))."""
    x = _as_chains(x)
    d = (x - x.mean((0, 1))) ** 2
    v = d.mean((0, 1))
    var_v = (d.square().mean((0, 1)) - v.square()) / ess_mean(d)
    return x.reshape(-1, x.shape[2]).std(0, unbiased=True), (var_v / v / 4).sqrt()


PHI_MINUS_ONE = 0.5 * math.erfc(1 / math.sqrt(2))  # Phi(-1): +-1 sd of a normal


def mcse_quantile(x: Tensor, prob: float) -> tuple[Tensor, Tensor]:
    r"""The type-7 quantile q_prob over all draws (N, M[, k]) and its Monte Carlo standard
    error (arXiv:1903.08008, section 4.4): with S draws and E = :func:`ess_quantile`, a, b
    the Phi(-1) and Phi(1) quantiles of Beta(E prob + 1, E (1 - prob) + 1), and x_(i) the
    sorted draws (0-based), se = (x_(ceil(min(b S - 1, S - 1))) - x_(floor(max(a S - 1, 0))))
    / 2, the index convention of ArviZ's ``mcse(method="quantile")``.
    Returns ((k,), (k,))."""
    _check_prob(prob)
    x = _as_chains(x)
    ess = ess_quantile(x, prob)
    s = x.reshape(-1, x.shape[2]).sort(0).values
    size = s.shape[0]
    se = torch.full_like(ess, math.nan)
    for j, e in enumerate(ess.tolist()):
        if not math.isfinite(e):
            continue
        alpha, beta = e * prob + 1, e * (1 - prob) + 1
        lo = beta_quantile(PHI_MINUS_ONE, alpha, beta) * size - 1
        hi = beta_quantile(1 - PHI_MINUS_ONE, alpha, beta) * size - 1
        i, k = math.floor(max(lo, 0)), math.ceil(min(hi, size - 1))
        se[j] = (s[k, j] - s[i, j]) / 2
    return _quantile(x, prob), se


def hdi(x: Tensor, prob: float = 0.94) -> Tensor:
    r"""Highest-density interval: the shortest interval [x_(i), x_(i + h)] of sorted draws
    that holds h + 1 of the S draws, h = floor(prob S) (Chen & Shao 1999; the first one on
    ties), per coordinate over all chains, as ArviZ's ``hdi`` (its default prob is 0.94).
    Draws (N, M[, k]) or (S,) -> (k, 2) with columns lower, upper; NaN rows where a
    coordinate has a NaN."""
    _check_prob(prob)
    x = _as_chains(x[:, None] if x.ndim == 1 else x)
    s = x.reshape(-1, x.shape[2]).sort(0).values
    h = min(math.floor(prob * s.shape[0]), s.shape[0] - 1)
    width = s[h:] - s[: s.shape[0] - h]
    i = width.argmin(0)
    out = torch.stack([s.gather(0, i[None])[0], s.gather(0, (i + h)[None])[0]], 1)
    return torch.where(torch.isnan(x).any(0).any(0)[:, None], math.nan, out)


def _check_prob(prob: float) -> None:
    if not 0 < prob <= 1:
        raise ValueError(f"prob must be in (0, 1], got {prob!r}")


def beta_quantile(p: float, a: float, b: float) -> float:
    r"""The p-quantile of Beta(a, b): x with I_x(a, b) = p, I the regularised incomplete beta
    function (:func:`_betainc`), by Newton's method safeguarded by bisection to ~1e-15."""
    if not (0 < p < 1 and a > 0 and b > 0):
        raise ValueError(f"beta_quantile needs 0 < p < 1 and a, b > 0, got {p}, {a}, {b}")
    log_beta = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    m = a / (a + b)
    z = math.sqrt(2) * _erfinv(2 * p - 1)
    x = min(max(m + z * math.sqrt(m * (1 - m) / (a + b + 1)), 1e-12), 1 - 1e-12)
    lo, hi = 0.0, 1.0
    for _ in range(200):
        f = _betainc(x, a, b) - p
        if f > 0:
            hi = x
        else:
            lo = x
        log_pdf = (a - 1) * math.log(x) + (b - 1) * math.log1p(-x) - log_beta
        step = f / math.exp(log_pdf) if log_pdf > -700 else math.inf
        new = x - step
        if not lo < new < hi:
            new = 0.5 * (lo + hi)
        if abs(new - x) <= 1e-15 * max(x, 1e-300) or hi - lo <= 1e-16:
            return new
        x = new
    return x


def _erfinv(y: float) -> float:
    """erf^{-1}(y) for |y| < 1 through the normal quantile: ndtri((y + 1) / 2) / sqrt(2)."""
    q = torch.special.ndtri(torch.tensor((y + 1) / 2, dtype=torch.float64))
    return float(q) / math.sqrt(2)


def _betainc(x: float, a: float, b: float) -> float:
    """Regularised incomplete beta I_x(a, b) by its continued fraction (DLMF 8.17.22),
    evaluated with Lentz's method, on the side x < (a + 1) / (a + b + 2) where it converges
    fast (I_x(a, b) = 1 - I_{1-x}(b, a) otherwise)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _betainc(1.0 - x, b, a)
    log_front = (a * math.log(x) + b * math.log1p(-x) - math.lgamma(a) - math.lgamma(b)
                 + math.lgamma(a + b) - math.log(a))  # fmt: skip
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    frac = d
    for m in range(1, 100_000):
        for num in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            frac *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return math.exp(log_front) * frac


def _worst(
    values: Tensor, bad: Tensor, largest: bool, threshold: float, names: Sequence[str] | None
) -> str:
    """'v > t (x[i]; j of k coordinates)' for the worst flagged coordinate i (its name in
    ``names`` where given, e.g. 'tau = x[1]')."""
    key = torch.nan_to_num(values, nan=math.inf if largest else -math.inf)
    key = torch.where(bad, key, -math.inf if largest else math.inf)
    i = int(key.argmax() if largest else key.argmin())
    count = f"; {int(bad.sum())} of {values.numel()} coordinates" if values.numel() > 1 else ""
    sign = ">" if largest else "<"
    which = f"x[{i}]" if names is None or len(names) != values.numel() else f"{names[i]} = x[{i}]"
    return f"{float(values[i]):.4g} {sign} {threshold:g} ({which}{count})"


def convergence_warnings(
    rhat: Tensor,
    ess_bulk: Tensor,
    ess_tail: Tensor,
    draws_per_chain: int | None = None,
    divergences: int = 0,
    names: Sequence[str] | None = None,
) -> list[str]:
    """One line per failed check of a multi-chain MCMC run, [] when all pass.

    Checks (Vehtari et al. 2021, arXiv:1903.08008, section 4.3): rank-normalised split
    R-hat (:func:`rank_rhat`) <= 1.01 in every coordinate; bulk and tail ESS >= 400 draws in
    every coordinate (the paper's 100 per chain for its four chains, kept as a total: with
    chains growing with n, 100 per chain would ask for ESS = n); at least 100 draws per
    chain (below, R-hat and ESS are themselves unreliable); no divergent transitions (HMC).
    A NaN statistic fails its check.

    Arguments:
        rhat, ess_bulk, ess_tail: (dim,) per coordinate.
        draws_per_chain: post-warm-up draws per chain (None: not checked).
        divergences: divergent transitions after warm-up.
        names: (dim,) the coordinates' names (``target.coordinate_names``), for the lines.
    """
    rhat, ess_bulk, ess_tail = (torch.as_tensor(t).double().flatten().cpu()
                                for t in (rhat, ess_bulk, ess_tail))  # fmt: skip
    out = []
    bad = ~(rhat <= RHAT_THRESHOLD)
    if bad.any():
        out.append(
            f"rank-normalised split R-hat {_worst(rhat, bad, True, RHAT_THRESHOLD, names)}: "
            "the chains have not mixed"
        )
    for name, ess, what in (("bulk", ess_bulk, "means"), ("tail", ess_tail, "tail quantiles")):
        bad = ~(ess >= ESS_THRESHOLD)
        if bad.any():
            out.append(
                f"{name} ESS {_worst(ess, bad, False, ESS_THRESHOLD, names)}: "
                f"too few effective draws for reliable {what}"
            )
    if draws_per_chain is not None and draws_per_chain < MIN_DRAWS_PER_CHAIN:
        out.append(
            f"{draws_per_chain} draws per chain < {MIN_DRAWS_PER_CHAIN}: R-hat and ESS are "
            "unreliable (raise n or lower chains)"
        )
    if divergences > 0:
        out.append(
            f"{divergences} divergent transition(s) after warm-up: the draws may be biased "
            "(lower the step size with a higher target_accept, or reparametrise)"
        )
    return out
