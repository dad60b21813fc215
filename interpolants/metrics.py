"""Sample and density metrics of BENCHMARKS.md: sliced W2, RBF MMD^2, NLL in nats or bits/dim.

Sample metrics are always reported beside the same metric between two independent reference
sets (the noise floor), which says how small the number can be at this sample size.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["bits_per_dim", "mmd2", "sliced_w2"]


def sliced_w2(x: Tensor, y: Tensor, projections: int = 500, seed: int = 0) -> float:
    """Sliced 2-Wasserstein distance (POT's ``ot.sliced_wasserstein_distance``), flattened."""
    import ot

    a = x.detach().flatten(1).double().cpu().numpy()
    b = y.detach().flatten(1).double().cpu().numpy()
    return float(ot.sliced_wasserstein_distance(a, b, n_projections=projections, seed=seed))


def mmd2(x: Tensor, y: Tensor, max_points: int = 2000) -> float:
    r"""Unbiased RBF-kernel MMD^2 with the median-heuristic bandwidth (Gretton et al. 2012).

    k(a, b) = exp(-|a - b|^2 / (2 h^2)), h^2 = median of pairwise squared distances / 2.
    """
    x = x.detach().flatten(1).double()[:max_points]
    y = y.detach().flatten(1).double()[:max_points]
    z = torch.cat([x, y])
    d2 = torch.cdist(z, z).square()
    h2 = d2[d2 > 0].median() / 2
    k = torch.exp(-d2 / (2 * h2))
    n, m = len(x), len(y)
    kxx = (k[:n, :n].sum() - k[:n, :n].diagonal().sum()) / (n * (n - 1))
    kyy = (k[n:, n:].sum() - k[n:, n:].diagonal().sum()) / (m * (m - 1))
    return float(kxx + kyy - 2 * k[:n, n:].mean())


def bits_per_dim(nll_nats: Tensor | float, dims: int, levels: int = 256) -> float:
    """Mean NLL of dequantised data in [0, 1] as bits per dimension of the discrete data.

    For data (v + u) / levels, the density of v + u is rho / levels^d, so the discrete NLL in
    bits per dimension is (NLL_nats / d + log(levels)) / log 2.
    """
    nll = float(torch.as_tensor(nll_nats).double().mean())
    return (nll / dims + math.log(levels)) / math.log(2)
