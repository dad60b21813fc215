"""Sample and density metrics: sliced W2, RBF MMD^2, Frechet distance, NLL in nats or bits/dim.

Definitions and protocol: ``docs/benchmarks.md``.

Sample metrics are always reported beside the same metric between two independent reference
sets (the noise floor), which says how small the number can be at this sample size.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["bits_per_dim", "frechet_distance", "gaussian_frechet_distance", "mmd2", "sliced_w2"]


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
