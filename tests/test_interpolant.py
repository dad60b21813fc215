import math

import pytest
import torch

import interpolants as si
from interpolants.interpolant import GAMMAS, PATHS

FAMILIES = [(p, g) for p in PATHS for g in GAMMAS]


def make(path, gamma):
    return si.Interpolant(path, gamma=gamma, a=2.0)


@pytest.mark.parametrize("path,gamma", FAMILIES)
def test_endpoints(path, gamma):
    I = make(path, gamma)
    ends = torch.tensor([0.0, 1.0], dtype=torch.float64)
    # the VP diffusion schedule meets the t = 0 conditions only up to exp(-5.025)
    tol = 7e-3 if path == "vp" else 1e-12
    torch.testing.assert_close(
        I.alpha(ends), torch.tensor([1.0, 0.0], dtype=torch.float64), atol=tol, rtol=0
    )
    torch.testing.assert_close(
        I.beta(ends), torch.tensor([0.0, 1.0], dtype=torch.float64), atol=tol, rtol=0
    )
    torch.testing.assert_close(
        I.gamma(ends), torch.zeros(2, dtype=torch.float64), atol=1e-12, rtol=0
    )
    x0, x1 = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    torch.testing.assert_close(I.sample(x0, x1, 0.0).xt, x0, atol=tol * 5, rtol=0)
    torch.testing.assert_close(I.sample(x0, x1, 1.0).xt, x1, atol=tol * 5, rtol=0)


@pytest.mark.parametrize("path,gamma", FAMILIES)
def test_dxt_matches_finite_differences(path, gamma):
    I = make(path, gamma)
    g = torch.Generator().manual_seed(0)
    n = 64
    x0, x1, z = (torch.randn(n, 3, dtype=torch.float64, generator=g) for _ in range(3))
    t = 0.02 + 0.96 * torch.rand(n, dtype=torch.float64, generator=g)
    if path == "encdec":  # alpha, beta are C^1 but piecewise: keep away from the kink at 1/2
        t = torch.where((t - 0.5).abs() < 0.01, t + 0.02, t)
    h = 1e-6
    fd = (I.sample(x0, x1, t + h, z).xt - I.sample(x0, x1, t - h, z).xt) / (2 * h)
    torch.testing.assert_close(I.sample(x0, x1, t, z).dxt, fd, atol=1e-6, rtol=1e-6)
    # the products alpha alpha', gamma gamma' agree with the derivatives away from the ends
    torch.testing.assert_close(I.alpha_dalpha(t), I.alpha(t) * I.dalpha(t))
    torch.testing.assert_close(I.gamma_dgamma(t), I.gamma(t) * I.dgamma(t))


def test_named_formulas():
    t = torch.tensor([0.3], dtype=torch.float64)
    I = si.Interpolant("trig", gamma="brownian")
    torch.testing.assert_close(I.alpha(t), torch.cos(math.pi * t / 2))
    torch.testing.assert_close(I.gamma(t), torch.sqrt(t * (1 - t)))
    I = si.Interpolant("linear", gamma="a-brownian", a=3.0)
    torch.testing.assert_close(I.gamma(t), torch.sqrt(3 * t * (1 - t)))
    torch.testing.assert_close(I.beta(t), t)
    assert si.Interpolant("encdec").gamma_name == "sinesquared"
    assert si.Interpolant("linear").is_deterministic


def test_custom_callables_autograd_derivatives():
    I = si.Interpolant(alpha=lambda t: 1 - t**2, beta=lambda t: t**2, gamma=lambda t: t * (1 - t))
    t = torch.tensor([0.25, 0.5], dtype=torch.float64)
    torch.testing.assert_close(I.dalpha(t), -2 * t)
    torch.testing.assert_close(I.dbeta(t), 2 * t)
    torch.testing.assert_close(I.dgamma(t), 1 - 2 * t)
    assert I.path == "custom" and I.gamma_name == "custom"
    with torch.inference_mode():  # derivatives by autograd still work there
        torch.testing.assert_close(I.dalpha(t), -2 * t)
        s = I.sample(torch.zeros(2, 1), torch.ones(2, 1), 0.5, z=torch.zeros(2, 1))
        torch.testing.assert_close(s.dxt, torch.ones(2, 1))


def test_custom_callables_must_meet_boundary_conditions():
    with pytest.raises(ValueError, match="alpha"):
        si.Interpolant(alpha=lambda t: 2 - t, beta=lambda t: t)
    with pytest.raises(ValueError, match="gamma"):
        si.Interpolant("linear", gamma=lambda t: 0.1 + t)
    with pytest.raises(ValueError, match="alpha and beta"):
        si.Interpolant(alpha=lambda t: 1 - t)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="path"):
        si.Interpolant("cubic")
    with pytest.raises(ValueError, match="gamma"):
        si.Interpolant("linear", gamma="pink")
    I = si.Interpolant("linear", gamma="brownian")
    x = torch.randn(4, 2)
    with pytest.raises(ValueError, match="x0 and x1"):
        I.sample(x, torch.randn(4, 3), 0.5)
    with pytest.raises(ValueError, match="t must lie in"):
        I.sample(x, x, 1.5)
    with pytest.raises(ValueError, match="t must lie in"):
        I.sample(x, x, torch.tensor([0.1, 0.2, -0.1, 0.3]))
    with pytest.raises(ValueError, match="t must be"):
        I.sample(x, x, torch.rand(3))
    with pytest.raises(ValueError, match="z must"):
        I.sample(x, x, 0.5, z=torch.randn(4, 3))
    with pytest.raises(ValueError, match="trim"):
        si.sample_times(4, trim=0.7)
    with pytest.raises(ValueError, match="t must lie in"):
        I.alpha(1.5)


def test_antithetic_pairs_and_time_sampling():
    I = si.Interpolant("linear", gamma="brownian")
    x0, x1 = torch.randn(5, 2), torch.randn(5, 2)
    s = I.sample(x0, x1, 0.5, antithetic=True)
    assert s.xt.shape == (10, 2)
    torch.testing.assert_close(s.z[:5], -s.z[5:])
    torch.testing.assert_close(s.xt[:5] + s.xt[5:], 2 * (0.5 * x0 + 0.5 * x1))
    t = si.sample_times(10_000, trim=0.01, generator=torch.Generator().manual_seed(0))
    assert 0.01 <= float(t.min()) and float(t.max()) <= 0.99
    assert abs(float(t.mean()) - 0.5) < 4 * 0.98 / math.sqrt(12 * 10_000)


def test_float32_default_and_float64_kept():
    I = si.Interpolant("trig", gamma="brownian")
    s32 = I.sample(torch.randn(3, 2), torch.randn(3, 2), torch.rand(3))
    assert s32.xt.dtype == torch.float32
    s64 = I.sample(
        torch.randn(3, 2, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64), 0.3
    )
    assert s64.xt.dtype == torch.float64 and s64.t.dtype == torch.float64


@pytest.mark.parametrize(
    "distribution,mean,var",
    [("uniform", 1 / 2, 1 / 12), ("late", 2 / 3, 1 / 18), ("early", 1 / 3, 1 / 18)],
)
def test_time_distributions_have_their_moments(distribution, mean, var):
    n = 40_000
    g = torch.Generator().manual_seed(3)
    t = si.sample_times(n, generator=g, dtype=torch.float64, distribution=distribution)
    assert 0 <= t.min() and t.max() <= 1
    assert abs(float(t.mean()) - mean) < 4 * math.sqrt(var / n)
    assert abs(float(t.var()) - var) < 0.05 * var


def test_logit_normal_times_are_symmetric_and_mid_weighted():
    t = si.sample_times(
        40_000, generator=torch.Generator().manual_seed(4), distribution="logit-normal"
    )
    assert abs(float(t.mean()) - 0.5) < 0.005
    assert float(((t > 0.25) & (t < 0.75)).float().mean()) > 0.6  # uniform: 0.5
    with pytest.raises(ValueError, match="time distribution"):
        si.sample_times(4, distribution="normal")
