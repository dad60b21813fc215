import pytest
import torch

import interpolants as si

D = torch.float64
CASES = [
    ("linear", "zero"),
    ("trig", "zero"),
    ("gvp", "zero"),
    ("vp", "zero"),
    ("linear", "brownian"),
    ("trig", "a-brownian"),
    ("encdec", "sinesquared"),
]


def standard_base(d=2):
    return si.MixtureOfGaussians(torch.zeros(1, d, dtype=D), torch.ones(1, d, dtype=D))


def mixture_target():
    means = torch.tensor([[1.5, -1.0], [-1.0, 1.0], [0.0, 2.0]], dtype=D)
    stds = torch.tensor([[0.5, 0.8], [0.3, 0.4], [1.0, 0.6]], dtype=D)
    return si.MixtureOfGaussians(means, stds, torch.tensor([0.2, 0.5, 0.3], dtype=D))


def points(n=50, seed=0):
    return torch.randn(n, 2, dtype=D, generator=torch.Generator().manual_seed(seed)) * 2


def test_linear_one_sided_gaussian_velocity_closed_form():
    # N(0, 1) -> N(m, s^2), x_t = (1-t) x0 + t x1:
    # b = m + (t s^2 - (1-t)) (x - t m) / ((1-t)^2 + t^2 s^2)
    m, s = 1.3, 0.7
    I = si.Interpolant("linear")
    F = si.GaussianMixtureFields(
        I,
        standard_base(1),
        si.MixtureOfGaussians(torch.tensor([[m]], dtype=D), torch.tensor([[s]], dtype=D)),
    )
    t = torch.linspace(0, 1, 11, dtype=D)
    x = torch.linspace(-2, 3, 11, dtype=D)[:, None]
    want = m + (t * s**2 - (1 - t)) / ((1 - t) ** 2 + t**2 * s**2) * (x[:, 0] - t * m)
    torch.testing.assert_close(F.velocity(t, x)[:, 0], want)
    torch.testing.assert_close(
        F.score(t, x)[:, 0], -(x[:, 0] - t * m) / ((1 - t) ** 2 + t**2 * s**2)
    )


@pytest.mark.parametrize("path,gamma", CASES)
def test_score_is_gradient_of_log_density(path, gamma):
    F = si.GaussianMixtureFields(
        si.Interpolant(path, gamma=gamma), standard_base(), mixture_target()
    )
    x = points().requires_grad_(True)
    t = torch.rand(50, dtype=D, generator=torch.Generator().manual_seed(1))
    (grad,) = torch.autograd.grad(F.log_prob(t, x).sum(), x)
    torch.testing.assert_close(F.score(t, x), grad)


@pytest.mark.parametrize("path,gamma", CASES)
def test_velocity_solves_the_continuity_equation(path, gamma):
    # d/dt log rho + div b + b . grad log rho = 0, with an independent finite difference in t
    base = si.MixtureOfGaussians(
        torch.tensor([[0.5, -0.5], [-1.0, 0.0]], dtype=D), torch.ones(2, 2, dtype=D)
    )
    F = si.GaussianMixtureFields(si.Interpolant(path, gamma=gamma), base, mixture_target())
    x = points(40).requires_grad_(True)
    t = 0.05 + 0.9 * torch.rand(40, dtype=D, generator=torch.Generator().manual_seed(2))
    if path == "encdec":
        t = torch.where((t - 0.5).abs() < 0.02, t + 0.05, t)
    h = 1e-5
    dlogp = (F.log_prob(t + h, x) - F.log_prob(t - h, x)) / (2 * h)
    b = F.velocity(t, x)
    div = sum(torch.autograd.grad(b[:, i].sum(), x, retain_graph=True)[0][:, i] for i in range(2))
    residual = dlogp + div + (b * F.score(t, x)).sum(1)
    torch.testing.assert_close(residual, torch.zeros_like(residual), atol=1e-6, rtol=0)


@pytest.mark.parametrize("path,gamma", [c for c in CASES if c[0] != "encdec"])
def test_conversions_for_a_gaussian_base(path, gamma):
    I = si.Interpolant(path, gamma=gamma)
    F = si.GaussianMixtureFields(I, standard_base(), mixture_target())
    x = points()
    t = 0.05 + 0.9 * torch.rand(50, dtype=D, generator=torch.Generator().manual_seed(3))
    b, s, eta = F.velocity(t, x), F.score(t, x), F.denoiser(t, x)
    torch.testing.assert_close(si.score_from_velocity(I, t, x, b), s)
    torch.testing.assert_close(si.velocity_from_score(I, t, x, s), b)
    torch.testing.assert_close(si.score_from_denoiser(I, t, x, eta), s)
    torch.testing.assert_close(si.denoiser_from_score(I, t, x, s), eta)


def test_one_sided_denoiser_is_posterior_mean_of_x0():
    # x_t = alpha x0 + beta x1 with x0 ~ N(0, 1): E[x0 | x_t] by Bayes in 1D, Gaussian target
    I = si.Interpolant("trig")
    m, s = 0.4, 1.7
    F = si.GaussianMixtureFields(
        I,
        standard_base(1),
        si.MixtureOfGaussians(torch.tensor([[m]], dtype=D), torch.tensor([[s]], dtype=D)),
    )
    t = torch.tensor([0.2, 0.5, 0.8], dtype=D)
    x = torch.tensor([[0.3], [-1.0], [2.0]], dtype=D)
    a, b = I.alpha(t), I.beta(t)
    want = a / (a**2 + b**2 * s**2) * (x[:, 0] - b * m)
    torch.testing.assert_close(F.denoiser(t, x)[:, 0], want)


def test_mismatched_endpoints_rejected():
    with pytest.raises(ValueError, match="event shape"):
        si.GaussianMixtureFields(si.Interpolant(), standard_base(3), mixture_target())
