"""Tests of interpolants.metrics.mmd2 against closed forms for Gaussian samples."""

from __future__ import annotations

import math
import statistics

import pytest
import torch

import interpolants as si
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


def test_frechet_distance_of_a_gaussian_with_itself_is_zero():
    from interpolants.metrics import frechet_distance, gaussian_frechet_distance

    x = _normal(2000, 4, 5)
    assert abs(frechet_distance(x, x)) < 1e-9
    cov = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    assert abs(gaussian_frechet_distance(torch.ones(2), cov, torch.ones(2), cov)) < 1e-9


def test_frechet_distance_matches_the_closed_form_of_two_gaussians():
    from interpolants.metrics import frechet_distance, gaussian_frechet_distance

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 3, generator=g, dtype=torch.float64), torch.randn(3, 3, generator=g)
    s1, s2 = a @ a.T + 0.1 * torch.eye(3), (b @ b.T).double() + 0.2 * torch.eye(3)
    m1, m2 = torch.tensor([0.0, 1.0, -2.0]), torch.tensor([1.0, 1.0, 0.5])
    # |m1 - m2|^2 + tr(S1 + S2 - 2 (S1 S2)^{1/2}): the eigenvalues of S1 S2 are real and
    # positive (it is similar to S1^{1/2} S2 S1^{1/2}), and tr (S1 S2)^{1/2} is the sum of
    # their square roots
    roots = torch.linalg.eigvals(s1 @ s2).real.sqrt().sum()
    truth = float((m1 - m2).square().sum() + s1.trace() + s2.trace() - 2 * roots)
    assert abs(gaussian_frechet_distance(m1, s1, m2, s2) - truth) < 1e-9 * max(1.0, truth)
    # commuting (diagonal) covariances: sum_i (sqrt s1_i - sqrt s2_i)^2 for the covariance part
    d1, d2 = torch.tensor([1.0, 4.0]), torch.tensor([9.0, 1.0])
    diag = gaussian_frechet_distance(torch.zeros(2), torch.diag(d1), torch.ones(2), torch.diag(d2))
    assert abs(diag - (2 + 4 + 1)) < 1e-12
    # from samples: the fitted Gaussians' distance converges to the population one
    n = 200_000
    x = torch.randn(n, 3, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(s1).T + m1
    y = torch.randn(n, 3, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(s2).T + m2
    assert abs(frechet_distance(x, y) - truth) < 0.05 * truth


def test_frechet_distance_refuses_mismatched_shapes():
    import pytest

    from interpolants.metrics import frechet_distance

    with pytest.raises(ValueError, match="one d"):
        frechet_distance(torch.zeros(5, 2), torch.zeros(5, 3))


def test_docstring_examples_of_the_metrics_run():
    import doctest

    import interpolants.metrics as module

    result = doctest.testmod(module, extraglobs={"torch": torch})
    assert result.failed == 0 and result.attempted >= 2


# --- ensemble forecast scores ------------------------------------------------------------------
def _normal_cdf(z):
    return 0.5 * (1 + torch.erf(z / math.sqrt(2)))


def _gaussian_crps(mu, sigma, y):
    """CRPS of N(mu, sigma^2) at y (Gneiting & Raftery 2007, eq. 21)."""
    z = (y - mu) / sigma
    pdf = torch.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    return sigma * (z * (2 * _normal_cdf(z) - 1) + 2 * pdf - 1 / math.sqrt(math.pi))


def _abs_gaussian_mean(mu, s):
    """E|N(mu, s^2)|."""
    return s * math.sqrt(2 / math.pi) * math.exp(-(mu**2) / (2 * s**2)) + mu * (
        1 - 2 * float(_normal_cdf(torch.tensor(-mu / s)))
    )


def test_crps_of_gaussian_ensembles_matches_the_closed_form():
    g = torch.Generator().manual_seed(0)
    n, m = 400, 50
    mu, sigma = torch.randn(n, generator=g, dtype=torch.float64), 0.7
    truth = torch.randn(n, generator=g, dtype=torch.float64) * 1.3
    members = mu + sigma * torch.randn(m, n, generator=g, dtype=torch.float64)
    per = si.metrics.crps(members, truth, reduction="none")
    want = _gaussian_crps(mu, sigma, truth)
    diff = per - want  # the fair estimator is unbiased for each case
    assert abs(float(diff.mean())) < 4 * float(diff.std()) / math.sqrt(n)
    unfair = si.metrics.crps(members, truth, fair=False, reduction="none")
    assert torch.all(unfair >= per - 1e-12)  # the empirical law's CRPS counts less spread
    point = si.metrics.crps(torch.full((3, 2), 1.5), torch.tensor([1.0, 3.0]), reduction="none")
    assert torch.allclose(point, torch.tensor([0.5, 1.5]))  # a point mass: |x - y|
    # the energy score of one-dimensional events is the CRPS
    es = si.metrics.energy_score(members[..., None], truth[:, None], reduction="none")
    assert torch.allclose(es, per)
    with pytest.raises(ValueError, match="ensemble must have shape"):
        si.metrics.crps(members, truth[:-1])
    with pytest.raises(ValueError, match="at least 2 members"):
        si.metrics.crps(members[:1], truth)


def test_energy_score_and_variogram_score_on_known_cases():
    y = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    same = y[None].repeat(4, 1, 1)
    assert torch.allclose(si.metrics.energy_score(same, y, reduction="none"), torch.zeros(2))
    assert float(si.metrics.variogram_score(same, y)) == pytest.approx(0.0)
    x = torch.tensor([[0.0, 0.0], [0.0, 0.0]])  # every member at the origin, one case
    vs = si.metrics.variogram_score(x[:, None].expand(2, 1, 2), torch.tensor([[0.0, 4.0]]))
    assert float(vs) == pytest.approx(2 * (4.0**0.5) ** 2)  # the (1, 2) and (2, 1) terms
    g = torch.Generator().manual_seed(1)
    truth = torch.randn(300, 3, generator=g)
    good = torch.randn(20, 300, 3, generator=g)
    shifted = good + 1.0
    assert si.metrics.energy_score(shifted, truth) > si.metrics.energy_score(good, truth)
    with pytest.raises(ValueError, match="dims must be"):
        si.metrics.energy_score(good, truth, dims=3)


def test_spread_skill_and_rank_histogram_tell_calibration():
    g = torch.Generator().manual_seed(2)
    n, m = 20_000, 9
    truth = torch.randn(n, generator=g)
    calibrated = torch.randn(m, n, generator=g)
    narrow = 0.4 * torch.randn(m, n, generator=g)
    assert si.metrics.spread_skill(calibrated, truth) == pytest.approx(1.0, abs=0.03)
    assert si.metrics.spread_skill(narrow, truth) < 0.5
    flat = si.metrics.rank_histogram(calibrated, truth, generator=g)
    assert flat.shape == (m + 1,) and float(flat.sum()) == pytest.approx(1.0)
    se = math.sqrt((1 / (m + 1)) * (1 - 1 / (m + 1)) / n)
    assert torch.all((flat - 1 / (m + 1)).abs() < 4.5 * se), flat
    u = si.metrics.rank_histogram(narrow, truth, generator=g)
    assert float(u[0] + u[-1]) > 0.5  # over-confident: the truth falls outside
    ties = si.metrics.rank_histogram(torch.zeros(3, 4000), torch.zeros(4000), generator=g)
    assert torch.all((ties - 0.25).abs() < 0.04)  # ties spread over the ranks at random


def test_energy_distance_is_unbiased_and_matches_the_gaussian_shift():
    g = torch.Generator().manual_seed(3)
    draws = [
        si.metrics.energy_distance(
            torch.randn(300, 2, generator=g), torch.randn(300, 2, generator=g)
        )
        for _ in range(40)
    ]
    mean, se = statistics.mean(draws), statistics.stdev(draws) / math.sqrt(len(draws))
    assert abs(mean) < 4 * se
    delta = 1.0
    x = torch.randn(4000, 1, generator=g, dtype=torch.float64)
    y = delta + torch.randn(4000, 1, generator=g, dtype=torch.float64)
    want = 2 * _abs_gaussian_mean(delta, math.sqrt(2)) - 2 * _abs_gaussian_mean(0.0, math.sqrt(2))
    assert si.metrics.energy_distance(x, y) == pytest.approx(want, abs=0.03)
    with pytest.raises(ValueError, match="same event size"):
        si.metrics.energy_distance(torch.randn(5, 2), torch.randn(5, 3))


def test_the_v_statistic_energy_distance_has_the_stated_positive_floor():
    """Between two samples of N(0, 1) (n = 20, m = 30) the V-statistic's mean is
    E|X - X'| (1/n + 1/m) = (2 / sqrt(pi)) (1/20 + 1/30); the unbiased one's is 0."""
    g = torch.Generator().manual_seed(4)
    pairs = [(torch.randn(20, 1, generator=g), torch.randn(30, 1, generator=g)) for _ in range(400)]
    v = [si.metrics.energy_distance(a, b, unbiased=False) for a, b in pairs]
    u = [si.metrics.energy_distance(a, b) for a, b in pairs]
    se = statistics.stdev(v) / math.sqrt(len(v))
    want = 2 / math.sqrt(math.pi) * (1 / 20 + 1 / 30)
    assert abs(statistics.mean(v) - want) < 4 * se and min(v) >= 0
    assert abs(statistics.mean(u)) < 4 * statistics.stdev(u) / math.sqrt(len(u))
