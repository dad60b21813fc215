"""Sample and density metrics: sliced W2, RBF MMD^2, Frechet distance, NLL in nats or bits/dim;
and the scores of ensemble forecasts: CRPS, energy score, variogram score, spread-skill ratio,
rank histogram, energy distance between two ensembles.

Definitions and protocol: ``docs/benchmarks.md``. Ensembles are tensors (m, *shape): m members
first, then the shape of the truth they forecast (a batch of cases included, e.g. (m, n, d)
against a truth (n, d)); the event dimensions of the multivariate scores are the last ``dims``.

Sample metrics are always reported beside the same metric between two independent reference
sets (the noise floor), which says how small the number can be at this sample size.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "bits_per_dim",
    "crps",
    "energy_distance",
    "energy_score",
    "frechet_distance",
    "gaussian_frechet_distance",
    "mmd2",
    "rank_histogram",
    "sliced_w2",
    "spread_skill",
    "variogram_score",
]


def sliced_w2(x: Tensor, y: Tensor, projections: int = 500, seed: int = 0) -> float:
    """Sliced 2-Wasserstein distance (POT's ``ot.sliced_wasserstein_distance``), flattened."""
    import ot

    a = x.detach().flatten(1).double().cpu().numpy()
    b = y.detach().flatten(1).double().cpu().numpy()
    return float(ot.sliced_wasserstein_distance(a, b, n_projections=projections, seed=seed))


def mmd2(
    x: Tensor,
    y: Tensor,
    max_points: int = 2000,
    *,
    bandwidth: float | None = None,
    unbiased: bool = False,
) -> float:
    r"""Squared maximum mean discrepancy MMD^2 between the samples x and y, RBF kernel.

    k(a, b) = exp(-|a - b|^2 / (2 h^2)), with h^2 = (median of the pairwise squared distances
    of the pooled samples) / 2 unless ``bandwidth`` gives h (Gretton et al., JMLR 2012).

    By default this is the biased V-statistic, the squared RKHS distance between the two
    empirical kernel mean embeddings:

        MMD_b^2 = mean_{i,i'} k(x_i, x_i') + mean_{j,j'} k(y_j, y_j') - 2 mean_{i,j} k(x_i, y_j)

    (diagonal terms k(x_i, x_i) = 1 included). It is never negative, and 0 only when the two
    sample sets are the same set of points. For two independent sets from one distribution it
    is about (1 - E k(x, x')) (1/n + 1/m) > 0: the noise floor that ``mmd2(reference, test)``
    measures at the same sample sizes. A model whose value is near that floor cannot be told
    from the data at this sample size; the V-statistic's bias is the same for both numbers.

    ``unbiased=True`` gives the U-statistic instead (diagonal terms left out): an unbiased
    estimate of the population MMD^2 which, for two samples of one distribution, scatters
    around 0 and is negative about half the time; use it for two-sample tests, not for
    reporting beside a floor. The two differ by exactly
    (1 - mean_{i != i'} k(x_i, x_i')) / n + (1 - mean_{j != j'} k(y_j, y_j')) / m.

    Arguments:
        x, y: (n, ...) and (m, ...) samples, flattened per sample; at most ``max_points`` of
            each (the first ones) are used.
        max_points: the subsample size (the cost is quadratic).
        bandwidth: the kernel width h; None for the median heuristic.
        unbiased: return the U-statistic (can be negative) instead of the V-statistic.
    """
    x = x.detach().flatten(1).double()[:max_points]
    y = y.detach().flatten(1).double()[:max_points]
    z = torch.cat([x, y])
    d2 = torch.cdist(z, z).square()
    h2 = d2[d2 > 0].median() / 2 if bandwidth is None else torch.tensor(float(bandwidth) ** 2)
    k = torch.exp(-d2 / (2 * h2))
    n, m = len(x), len(y)
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    if unbiased:
        xx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
        yy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
        return float(xx + yy - 2 * kxy.mean())
    return max(float(kxx.mean() + kyy.mean() - 2 * kxy.mean()), 0.0)


def bits_per_dim(nll_nats: Tensor | float, dims: int, levels: int = 256) -> float:
    """Mean NLL of dequantised data in [0, 1] as bits per dimension of the discrete data.

    For data (v + u) / levels, the density of v + u is rho / levels^d, so the discrete NLL in
    bits per dimension is (NLL_nats / d + log(levels)) / log 2.
    """
    nll = float(torch.as_tensor(nll_nats).double().mean())
    return (nll / dims + math.log(levels)) / math.log(2)


def gaussian_frechet_distance(mean1: Tensor, cov1: Tensor, mean2: Tensor, cov2: Tensor) -> float:
    r"""The Frechet (2-Wasserstein squared) distance between N(m1, S1) and N(m2, S2),

        FD = |m1 - m2|^2 + tr(S1 + S2 - 2 (S1^{1/2} S2 S1^{1/2})^{1/2})

    (Dowson & Landau 1982; the FID of Heusel et al., arXiv 1706.08500), in float64. The matrix
    square roots are taken by symmetric eigendecompositions, negative rounding-error
    eigenvalues set to 0, so singular covariances are fine.

    Example:
        >>> eye = torch.eye(2)
        >>> round(gaussian_frechet_distance(torch.zeros(2), eye, torch.ones(2), 4 * eye), 6)
        4.0
    """
    m1, m2 = mean1.detach().double().flatten(), mean2.detach().double().flatten()
    s1, s2 = cov1.detach().double(), cov2.detach().double()
    if m1.shape != m2.shape or s1.shape != (len(m1), len(m1)) or s2.shape != s1.shape:
        raise ValueError(
            f"means (d,) and covariances (d, d) of one d expected, got {tuple(m1.shape)}, "
            f"{tuple(s1.shape)}, {tuple(m2.shape)}, {tuple(s2.shape)}"
        )
    root1 = _psd_sqrt(s1)
    cross = torch.linalg.eigvalsh((root1 @ s2 @ root1 + (root1 @ s2 @ root1).T) / 2)
    trace_root = cross.clamp_min(0).sqrt().sum()
    return float((m1 - m2).square().sum() + s1.trace() + s2.trace() - 2 * trace_root)


def _psd_sqrt(s: Tensor) -> Tensor:
    """The symmetric square root of a positive semi-definite matrix."""
    values, vectors = torch.linalg.eigh((s + s.T) / 2)
    return vectors @ torch.diag(values.clamp_min(0).sqrt()) @ vectors.T


def frechet_distance(x: Tensor, y: Tensor) -> float:
    """The Frechet distance between Gaussians fitted to the samples x (n, ...) and y (m, ...),
    flattened per sample: :func:`gaussian_frechet_distance` of their means and (unbiased)
    covariances. Applied to a network's features it is the FID recipe (arXiv 1706.08500); the
    estimate is biased upwards at finite n, so report it beside its floor (the same distance
    between two independent reference sets of the same sizes).

    Example:
        >>> x = torch.randn(1000, 3, generator=torch.Generator().manual_seed(0))
        >>> frechet_distance(x, x) < 1e-9
        True
    """
    a, b = x.detach().flatten(1).double(), y.detach().flatten(1).double()
    if len(a) < 2 or len(b) < 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"two sample sets (n >= 2, d) of one d expected, got {tuple(a.shape)}, {tuple(b.shape)}"
        )
    return gaussian_frechet_distance(a.mean(0), torch.cov(a.T).reshape(a.shape[1], -1),
                                     b.mean(0), torch.cov(b.T).reshape(b.shape[1], -1))  # fmt: skip


# --- ensemble forecasts ---------------------------------------------------------------------
def _ensemble(ensemble: Tensor, truth: Tensor) -> tuple[Tensor, Tensor]:
    ensemble, truth = torch.as_tensor(ensemble), torch.as_tensor(truth)
    if ensemble.ndim < 1 or tuple(ensemble.shape[1:]) != tuple(truth.shape):
        raise ValueError(
            f"ensemble must have shape (members, *truth.shape) = (m, {tuple(truth.shape)}), got "
            f"{tuple(ensemble.shape)}"
        )
    if len(ensemble) < 2:
        raise ValueError(f"ensemble needs at least 2 members, got {len(ensemble)}")
    dtype = torch.promote_types(ensemble.dtype, torch.float32)
    return ensemble.to(dtype), truth.to(dtype)


def _mean_abs_pairs(x: Tensor, fair: bool) -> Tensor:
    """(1 / m^2) sum_{i,j} |x_i - x_j| (or / m (m - 1) with ``fair``), entrywise, x (m, ...)."""
    m = len(x)
    srt, _ = torch.sort(x, dim=0)
    # sum_{i<j} (x_(j) - x_(i)) = sum_k (2k - m + 1) x_(k) over the sorted members (k from 0)
    k = torch.arange(m, dtype=x.dtype, device=x.device).reshape(-1, *[1] * (x.ndim - 1))
    pairs = 2 * ((2 * k - m + 1) * srt).sum(0)  # sum over ordered pairs i != j
    return pairs / (m * (m - 1) if fair else m * m)


def crps(ensemble: Tensor, truth: Tensor, *, fair: bool = True, reduction: str = "mean") -> Tensor:
    r"""The continuous ranked probability score of an ensemble, entry by entry (lower is
    better; Gneiting & Raftery 2007, JASA 102:359):

        CRPS = (1/m) sum_i |x_i - y| - 1/(2 m (m - 1)) sum_{i != j} |x_i - x_j|,

    the fair estimator (Ferro 2014, QJRMS 140:1917: unbiased for the CRPS of the law the m
    members are drawn from); ``fair=False`` divides the second sum by 2 m^2 (the CRPS of the
    ensemble's empirical law). ``reduction``: "mean" (over every entry) or "none" (truth's
    shape).
    """
    x, y = _ensemble(ensemble, truth)
    score = (x - y).abs().mean(0) - 0.5 * _mean_abs_pairs(x, fair)
    return _reduced(score, reduction)


def _reduced(score: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return score.mean()
    if reduction == "none":
        return score
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def _pair_norms(a: Tensor, b: Tensor, dims: int) -> Tensor:
    """|a_i - b_j| over the last ``dims`` dimensions, (m_a, m_b, *batch)."""
    diff = a[:, None] - b[None, :]
    return diff.flatten(diff.ndim - dims).norm(dim=-1) if dims else diff.abs()


def energy_score(
    ensemble: Tensor, truth: Tensor, *, dims: int = 1, fair: bool = True, reduction: str = "mean"
) -> Tensor:
    r"""The energy score of an ensemble over the last ``dims`` dimensions (Gneiting & Raftery
    2007; its d = 1 case is the CRPS):

        ES = (1/m) sum_i |x_i - y| - 1/(2 m (m - 1)) sum_{i != j} |x_i - x_j|

    with Euclidean norms (``fair=False``: 2 m^2 in the second term). ``reduction`` "mean" (over
    the cases) or "none" (one score per case, the truth's shape without its last ``dims``).
    """
    x, y = _ensemble(ensemble, truth)
    _check_dims(dims, y)
    m = len(x)
    to_truth = _pair_norms(x, y[None], dims)[:, 0].mean(0)
    spread = _pair_norms(x, x, dims).sum((0, 1)) / (m * (m - 1) if fair else m * m)
    return _reduced(to_truth - 0.5 * spread, reduction)


def _check_dims(dims: int, truth: Tensor) -> None:
    if not isinstance(dims, int) or not 1 <= dims <= truth.ndim:
        raise ValueError(f"dims must be an integer in [1, {truth.ndim}], got {dims!r}")


def variogram_score(
    ensemble: Tensor, truth: Tensor, *, dims: int = 1, p: float = 0.5, reduction: str = "mean"
) -> Tensor:
    r"""The variogram score of order p (Scheuerer & Hamill 2015, MWR 143:1321), over the d
    entries of the last ``dims`` dimensions, unit weights:

        VS_p = sum_{i,j} ( |y_i - y_j|^p - (1/m) sum_k |x_{k,i} - x_{k,j}|^p )^2.

    It is sensitive to the correlations between entries that the CRPS of each entry misses.
    """
    x, y = _ensemble(ensemble, truth)
    _check_dims(dims, y)
    xf = x.flatten(x.ndim - dims)
    yf = y.flatten(y.ndim - dims)
    observed = (yf[..., :, None] - yf[..., None, :]).abs() ** p
    forecast = ((xf[..., :, None] - xf[..., None, :]).abs() ** p).mean(0)
    return _reduced(((observed - forecast) ** 2).sum((-1, -2)), reduction)


def spread_skill(ensemble: Tensor, truth: Tensor) -> float:
    r"""The spread-skill ratio sqrt((m + 1) / m) * spread / RMSE (Fortin et al. 2014, JHM
    15:1708): spread = sqrt(mean of the members' unbiased variance), RMSE of the ensemble mean,
    both over every entry. 1 for an ensemble drawn from the truth's law; below 1 is
    over-confident (too little spread), above 1 under-confident."""
    x, y = _ensemble(ensemble, truth)
    m = len(x)
    spread = x.var(0, unbiased=True).mean().sqrt()
    rmse = (x.mean(0) - y).pow(2).mean().sqrt()
    return float(math.sqrt((m + 1) / m) * spread / rmse)


def rank_histogram(
    ensemble: Tensor, truth: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """The rank histogram (Talagrand diagram; Hamill 2001, MWR 129:550): the frequency of each
    rank 0..m of the truth among the m members, over every entry, ties broken at random (from
    ``generator``). Flat (1 / (m + 1) each) for an ensemble drawn from the truth's law."""
    x, y = _ensemble(ensemble, truth)
    m = len(x)
    below = (x < y).sum(0)
    ties = (x == y).sum(0)
    extra = torch.floor(torch.rand(ties.shape, generator=generator) * (ties + 1).cpu()).long()
    rank = (below + extra.to(below.device)).flatten()
    return torch.bincount(rank, minlength=m + 1).to(x.dtype) / rank.numel()


def energy_distance(x: Tensor, y: Tensor, unbiased: bool = True) -> float:
    r"""The energy distance between two samples x (n, ...) and y (m, ...) (Szekely & Rizzo
    2013, JSPI 143:1249), flattened, unbiased within-sample terms:

        D^2 = 2 E|X - Y| - E|X - X'| - E|Y - Y'|,

    zero in expectation when both come from one law and positive otherwise; its value between
    two samples of the reference law is the floor to compare with. ``unbiased=False`` divides
    the within-sample sums by n^2 and m^2 (the V-statistic, never negative): between two
    samples of one law its expectation is E|X - X'| (1/n + 1/m), a positive floor that a
    ratio can be taken to.
    """
    a = torch.as_tensor(x).flatten(1).double()
    b = torch.as_tensor(y).flatten(1).double()
    if len(a) < 2 or len(b) < 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"x and y need at least 2 rows each and the same event size, got {tuple(a.shape)}, "
            f"{tuple(b.shape)}"
        )
    n, m = len(a), len(b)
    cross = torch.cdist(a, b).mean()
    within_a = torch.cdist(a, a).sum() / (n * (n - 1) if unbiased else n * n)
    within_b = torch.cdist(b, b).sum() / (m * (m - 1) if unbiased else m * m)
    return float(2 * cross - within_a - within_b)
