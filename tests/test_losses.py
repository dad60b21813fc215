import numpy as np
import pytest
import torch

import interpolants as si

D = torch.float64
M = torch.tensor([1.0, -2.0], dtype=D)
S = torch.tensor([0.5, 1.5], dtype=D)


def problem(path, gamma):
    I = si.Interpolant(path, gamma=gamma)
    base = si.MixtureOfGaussians(torch.zeros(1, 2, dtype=D), torch.ones(1, 2, dtype=D))
    target = si.MixtureOfGaussians(M[None], S[None])
    return I, si.GaussianMixtureFields(I, base, target), base, target


def draw(I, base, target, n, seed, trim=0.0):
    g = torch.Generator().manual_seed(seed)
    t = si.sample_times(n, trim=trim, generator=g, dtype=D)
    return I.sample(base.sample(n, g), target.sample(n, g), t, generator=g)


def quad(f, a=0.0, b=1.0, k=64):
    """Gauss-Legendre quadrature of f(t) on [a, b]."""
    x, w = np.polynomial.legendre.leggauss(k)
    t = torch.tensor(0.5 * (b - a) * x + 0.5 * (a + b), dtype=D)
    return float((torch.tensor(w, dtype=D) * f(t)).sum() * 0.5 * (b - a))


def moments(I, t):
    """Per-dimension mean, variance and Cov(dx_t, x_t) of x_t for N(0, 1) -> N(M, S^2)."""
    a, b, g = I.alpha(t)[:, None], I.beta(t)[:, None], I.gamma(t)[:, None]
    var = a**2 + b**2 * S**2 + g**2
    cov = I.alpha_dalpha(t)[:, None] + I.beta_dbeta(t)[:, None] * S**2 + I.gamma_dgamma(t)[:, None]
    return I.dbeta(t)[:, None] * M, var, cov


def mc(values):
    return float(values.mean()), float(values.std() / values.numel() ** 0.5)


@pytest.mark.parametrize("path,gamma", [("linear", "zero"), ("trig", "bsquared"), ("gvp", "zero")])
def test_velocity_loss_minimum_matches_closed_form(path, gamma):
    I, F, base, target = problem(path, gamma)
    s = draw(I, base, target, 200_000, seed=0)
    value, err = mc(si.velocity_loss(F.velocity(s.t, s.xt), s, reduction="none"))

    def expected_sq_norm(t):  # E|b|^2 = |c|^2 + sum_i K_i^2 / C_i for b = c + K / C (x - mu)
        c, var, cov = moments(I, t)
        return (c**2 + cov**2 / var).sum(1)

    assert abs(value - (-quad(expected_sq_norm))) < 4 * err


@pytest.mark.parametrize("delta", [0.3, -0.2, 0.05])
def test_velocity_loss_is_larger_at_perturbed_fields(delta):
    I, F, base, target = problem("trig", "bsquared")
    s = draw(I, base, target, 100_000, seed=1)
    b = F.velocity(s.t, s.xt)
    h = torch.sin(s.xt) * s.t[:, None]
    diff = si.velocity_loss(b + delta * h, s, "none") - si.velocity_loss(b, s, "none")
    value, err = mc(diff)
    assert value > 0
    # L(b + delta h) - L(b) = delta^2 E|h|^2 at the minimiser: the cross term has mean zero
    assert abs(value - delta**2 * float(h.square().sum(1).mean())) < 4 * err + 1e-12


def test_denoiser_loss_minimum_matches_closed_form():
    I, F, base, target = problem("linear", "bsquared")
    s = draw(I, base, target, 200_000, seed=2)
    value, err = mc(si.denoiser_loss(F.denoiser(s.t, s.xt), s, I, reduction="none"))
    want = -quad(lambda t: (I.gamma(t)[:, None] ** 2 / moments(I, t)[1]).sum(1))
    assert abs(value - want) < 4 * err
    worse = si.denoiser_loss(F.denoiser(s.t, s.xt) + 0.1, s, I)
    assert float(worse) > value


def test_score_loss_minimum_matches_closed_form():
    I, F, base, target = problem("linear", "brownian")
    a, b = 0.1, 0.9
    s = draw(I, base, target, 200_000, seed=3, trim=a)
    value, err = mc(si.score_loss(F.score(s.t, s.xt), s, I, reduction="none"))
    want = -quad(lambda t: (1 / moments(I, t)[1]).sum(1), a, b) / (b - a)
    assert abs(value - want) < 4 * err


def test_one_sided_denoiser_targets_x0():
    I, F, base, target = problem("trig", "zero")
    s = draw(I, base, target, 100_000, seed=4, trim=0.05)
    value, err = mc(si.denoiser_loss(F.denoiser(s.t, s.xt), s, I, reduction="none"))
    want = -quad(lambda t: (I.alpha(t)[:, None] ** 2 / moments(I, t)[1]).sum(1), 0.05, 0.95) / 0.9
    assert abs(value - want) < 4 * err


def test_loss_shape_errors():
    I, _, base, target = problem("linear", "zero")
    s = draw(I, base, target, 8, seed=0)
    with pytest.raises(ValueError, match="velocity"):
        si.velocity_loss(torch.zeros(8, 3, dtype=D), s)
    with pytest.raises(ValueError, match="reduction"):
        si.velocity_loss(s.xt, s, reduction="sum")
