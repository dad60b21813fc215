import math

import pytest
import torch

import interpolants as si

D = torch.float64
M = torch.tensor([1.0, -2.0, 0.5], dtype=D)
S = torch.tensor([0.5, 1.5, 1.0], dtype=D)


def gaussian_model(path="linear", gamma="zero", with_score=False):
    I = si.Interpolant(path, gamma=gamma)
    base = si.StandardNormal(3, dtype=D)
    target = si.MixtureOfGaussians(M[None], S[None])
    F = si.GaussianMixtureFields(
        I, si.MixtureOfGaussians(torch.zeros(1, 3, dtype=D), torch.ones(1, 3, dtype=D)), target
    )
    model = si.GenerativeModel(I, F.velocity, score=F.score if with_score else None, base=base)
    return model, target


def assert_moments(x, mean, std, z=4.0):
    n = x.shape[0]
    assert torch.all((x.mean(0) - mean).abs() < z * std / math.sqrt(n)), x.mean(0)
    # the sample variance has standard error ~ sigma^2 sqrt(2 / n) for Gaussian samples
    assert torch.all((x.var(0) - std**2).abs() < z * std**2 * math.sqrt(2 / n)), x.var(0)


@pytest.mark.parametrize("solver", ["euler", "heun", "rk4", "dopri5"])
def test_exact_velocity_transports_to_the_target_moments(solver):
    model, _ = gaussian_model("trig")
    steps = 400 if solver == "euler" else 50
    x = model.sample(20_000, steps=steps, solver=solver, generator=torch.Generator().manual_seed(0))
    assert x.dtype == D
    assert_moments(x, M, S)


@pytest.mark.parametrize("path,gamma", [("linear", "zero"), ("trig", "brownian"), ("gvp", "zero")])
def test_log_prob_matches_the_gaussian_density(path, gamma):
    model, target = gaussian_model(path, gamma)
    x = target.sample(200, torch.Generator().manual_seed(1))
    err = (model.log_prob(x, divergence="exact", steps=200) - target.log_prob(x)).abs().max()
    assert float(err) < 1e-3
    err = (model.log_prob(x, solver="dopri5") - target.log_prob(x)).abs().max()
    assert float(err) < 1e-4


def test_hutchinson_log_prob_is_unbiased():
    # a mixture target makes the Jacobian non-diagonal, so the probes really vary the estimate
    I = si.Interpolant("linear")
    base = si.MixtureOfGaussians(torch.zeros(1, 2, dtype=D), torch.ones(1, 2, dtype=D))
    target = si.MixtureOfGaussians(
        torch.tensor([[2.0, 0.0], [-1.0, 1.5]], dtype=D), torch.tensor([0.6, 0.8], dtype=D)
    )
    F = si.GaussianMixtureFields(I, base, target)
    model = si.GenerativeModel(I, F.velocity, base=base)
    x = torch.tensor([[1.0, 0.5]], dtype=D).expand(4000, 2)
    est = model.log_prob(x, "hutchinson", steps=40, generator=torch.Generator().manual_seed(2))
    exact = model.log_prob(x[:1], "exact", steps=40)
    z = abs(float(est.mean() - exact)) / float(est.std() / math.sqrt(len(est)))
    assert z < 4 and float(est.std()) > 1e-3
    assert abs(float(exact) - float(target.log_prob(x[:1]))) < 1e-3


@pytest.mark.parametrize("with_score", [True, False])
def test_sde_with_eps_one_keeps_the_law(with_score):
    model, _ = gaussian_model("linear", with_score=with_score)
    g = torch.Generator().manual_seed(3)
    x = model.sample(20_000, steps=200, solver="heun", diffusion=1.0, generator=g)
    assert_moments(x, M, S, z=4.5)
    x = model.sample(
        20_000, steps=200, solver="euler", diffusion=lambda t: 2 * (1 - t), generator=g
    )
    assert_moments(x, M, S, z=4.5)


def test_transport_forward_then_backward_and_backward_sde():
    model, target = gaussian_model("trig", with_score=True)
    x0 = torch.randn(100, 3, dtype=D)
    x1 = model.transport(x0, 0.0, 1.0, steps=50, solver="rk4")
    torch.testing.assert_close(
        model.transport(x1, 1.0, 0.0, steps=50, solver="rk4"), x0, atol=1e-6, rtol=0
    )
    # the backward SDE from target samples lands on the base N(0, I)
    g = torch.Generator().manual_seed(4)
    back = model.transport(
        target.sample(20_000, g), 1.0, 0.0, steps=200, solver="heun", diffusion=0.5, generator=g
    )
    assert_moments(back, torch.zeros(3, dtype=D), torch.ones(3, dtype=D), z=4.5)


def test_sample_with_log_prob_agrees_with_the_density():
    model, target = gaussian_model("linear")
    x, lp = model.sample_with_log_prob(500, steps=100, generator=torch.Generator().manual_seed(5))
    assert float((lp - target.log_prob(x)).abs().max()) < 1e-3


def test_info_and_reproducibility():
    model, _ = gaussian_model()
    a = model.sample(
        10, steps=7, solver="rk4", generator=torch.Generator().manual_seed(0), return_info=True
    )
    b = model.sample(10, steps=7, solver="rk4", generator=torch.Generator().manual_seed(0))
    assert a.nfe == 28 and torch.equal(a.x, b)


def test_bad_input_names_the_argument():
    model, _ = gaussian_model()
    with pytest.raises(ValueError, match="solver"):
        model.sample(5, solver="leapfrog")
    with pytest.raises(ValueError, match="solver"):
        model.sample(5, solver="rk4", diffusion=1.0)
    with pytest.raises(ValueError, match="x has shape"):
        model.log_prob(torch.zeros(4, 2, dtype=D))
    with pytest.raises(ValueError, match="t1"):
        model.transport(torch.zeros(4, 3, dtype=D), 0.0, 1.5)
    with pytest.raises(ValueError, match="n must"):
        model.sample(0)
    with pytest.raises(ValueError, match="divergence"):
        model.log_prob(torch.zeros(4, 3, dtype=D), divergence="trace")
    no_shape = si.GenerativeModel(si.Interpolant(), velocity=lambda t, x: x)
    with pytest.raises(ValueError, match="event_shape"):
        no_shape.sample(3)
    two_sided = si.GenerativeModel(
        si.Interpolant(), velocity=lambda t, x: x, base=torch.randn(10, 2)
    )
    with pytest.raises(ValueError, match="needs a score"):
        two_sided.sample(3, diffusion=1.0)
    with pytest.raises(ValueError, match="no density"):
        two_sided.log_prob(torch.zeros(3, 2))


def test_torch_distribution_base_with_generator():
    base = torch.distributions.Independent(
        torch.distributions.Normal(torch.zeros(2), torch.ones(2)), 1
    )
    model = si.GenerativeModel(
        si.Interpolant(), velocity=lambda t, x: torch.zeros_like(x), base=base
    )
    a = model.sample(4, generator=torch.Generator().manual_seed(0))
    b = model.sample(4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    torch.testing.assert_close(model.log_prob(a), base.log_prob(a))
    # a standard normal torch base still lets the score follow from the velocity
    assert model.sample(4, diffusion=0.5).shape == (4, 2)


def test_backward_sde_with_a_score_derived_from_the_velocity():
    model, target = gaussian_model("linear")  # no score: it follows from the velocity
    g = torch.Generator().manual_seed(6)
    x1 = target.sample(10_000, g)
    back = model.transport(x1, 1.0, 0.0, steps=200, diffusion=0.5, generator=g)
    assert torch.isfinite(back).all()
    assert_moments(back, torch.zeros(3, dtype=D), torch.ones(3, dtype=D), z=4.5)


def test_denoiser_score_needs_a_standard_base_when_gamma_is_zero():
    I = si.Interpolant("linear")
    base = si.MixtureOfGaussians(
        torch.tensor([[2.0, 0.0], [-2.0, 0.0]], dtype=D), torch.ones(2, dtype=D)
    )
    target = si.MixtureOfGaussians(torch.zeros(1, 2, dtype=D), torch.ones(1, 2, dtype=D))
    F = si.GaussianMixtureFields(I, base, target)
    model = si.GenerativeModel(I, F.velocity, base=base, denoiser=F.denoiser)
    with pytest.raises(ValueError, match="standard Gaussian"):
        model.sample(4, diffusion=1.0)


def test_log_prob_gradient_flows_only_with_create_graph():
    model, target = gaussian_model("linear")
    x = target.sample(4, torch.Generator().manual_seed(7)).requires_grad_(True)
    assert not model.log_prob(x, steps=20).requires_grad
    lp = model.log_prob(x, steps=100, solver="rk4", create_graph=True)
    (grad,) = torch.autograd.grad(lp.sum(), x)
    torch.testing.assert_close(grad, -(x.detach() - M) / S**2, atol=1e-4, rtol=0)


def test_float32_default_model_path():
    I = si.Interpolant("linear")
    F = si.GaussianMixtureFields(
        I,
        si.MixtureOfGaussians(torch.zeros(1, 2), torch.ones(1, 2)),
        si.MixtureOfGaussians(torch.tensor([[1.0, -1.0]]), torch.tensor([[0.5, 2.0]])),
    )
    model = si.GenerativeModel(I, F.velocity, event_shape=(2,))
    x = model.sample(20_000, steps=50, generator=torch.Generator().manual_seed(8))
    assert x.dtype == torch.float32
    assert_moments(
        x.double(), torch.tensor([1.0, -1.0], dtype=D), torch.tensor([0.5, 2.0], dtype=D)
    )
    lp = model.log_prob(x[:100])
    want = F.target.log_prob(x[:100])
    assert lp.dtype == torch.float32 and float((lp - want).abs().max()) < 1e-2


def test_the_mixture_distribution_and_the_mixture_target_are_named_apart():
    assert si.GaussianMixture is si.MixtureOfGaussians is si.distributions.GaussianMixture
    assert si.targets.GaussianMixture is not si.MixtureOfGaussians
    target = si.targets.GaussianMixture(torch.tensor([[-1.0], [1.0]]), torch.tensor([0.5, 0.5]))
    assert isinstance(target.mixture, si.MixtureOfGaussians)
