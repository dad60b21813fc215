"""Tests of interpolants.metrics.mmd2 against closed forms for Gaussian samples."""

from __future__ import annotations

import math

import torch

from interpolants.metrics import mmd2


def _gaussian_mmd2(shift: float, dim: int, h: float) -> float:
    """Population MMD^2 of N(0, I) and N(shift e_0, I) under k = exp(-|a - b|^2 / (2 h^2)):
    E k(x, x') = c, E k(x, y) = c exp(-shift^2 / (2 (h^2 + 2))), c = (h^2 / (h^2 + 2))^(d/2)."""
    c = (h**2 / (h**2 + 2)) ** (dim / 2)
    return 2 * c * (1 - math.exp(-(shift**2) / (2 * (h**2 + 2))))


def _normal(n, dim, seed, shift=0.0):
    x = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x[:, 0] += shift
    return x


def test_identical_samples_give_zero():
    x = _normal(500, 3, 0)
    assert mmd2(x, x) == 0.0
    assert mmd2(x, x.clone(), bandwidth=0.7) == 0.0


def test_shifted_gaussians_match_the_closed_form_and_exceed_the_floor():
    n, dim, h, shift = 1000, 2, 1.0, 1.5
    x, y = _normal(n, dim, 1), _normal(n, dim, 2, shift)
    truth = _gaussian_mmd2(shift, dim, h)  # 0.2085
    unbiased = mmd2(x, y, bandwidth=h, unbiased=True)
    biased = mmd2(x, y, bandwidth=h)
    assert abs(unbiased - truth) < 0.04  # its standard deviation is about 0.01 here
    # V - U = (1 - mean off-diagonal k(x, x')) / n + (same for y) / m, about 2 (1 - c) / n
    assert 0 < biased - unbiased < 2 / n
    floor = mmd2(x, _normal(n, dim, 3), bandwidth=h)
    assert biased > 20 * floor
    assert mmd2(x, y) > 0.05  # median-heuristic bandwidth: clearly positive too


def test_same_distribution_v_statistic_is_positive_floor_u_statistic_scatters_around_zero():
    n, dim, h = 300, 2, 1.0
    c = (h**2 / (h**2 + 2)) ** (dim / 2)
    expected_floor = (1 - c) * 2 / n
    biased, unbiased = [], []
    for seed in range(10):
        x, y = _normal(n, dim, 2 * seed), _normal(n, dim, 2 * seed + 1)
        biased.append(mmd2(x, y, bandwidth=h))
        unbiased.append(mmd2(x, y, bandwidth=h, unbiased=True))
    assert min(biased) > 0
    assert 0.5 * expected_floor < sum(biased) / len(biased) < 1.5 * expected_floor
    assert min(unbiased) < 0 < max(unbiased)
