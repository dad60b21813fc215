import numpy as np
import pytest
import torch

import interpolants as si
from interpolants.couplings import CouplingSample, Independent
from interpolants.losses import InterpolantObjective, MaxLikelihood

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


# --- the objective objects that fit's loop calls -------------------------------------------


def velocity_minimum(I, a=0.0, b=1.0):
    """min L_b = -E|b(t, x_t)|^2 averaged over t ~ U(a, b), for N(0, I) -> N(M, S^2)."""

    def expected_sq_norm(t):  # E|b|^2 = |c|^2 + sum_i K_i^2 / C_i for b = c + K / C (x - mu)
        c, var, cov = moments(I, t)
        return (c**2 + cov**2 / var).sum(1)

    return -quad(expected_sq_norm, a, b) / (b - a)


def objective_value(objective, nets, I, base, target, n=6_250, batches=32, seed=0):
    """The objective's mean over independent batches and its standard error."""
    g = torch.Generator().manual_seed(seed)
    values = torch.stack([
        objective.loss(nets, I, CouplingSample(base.sample(n, g), target.sample(n, g)), g)
        for _ in range(batches)
    ])  # fmt: skip
    return float(values.mean()), float(values.std() / batches**0.5)


@pytest.mark.parametrize("path,gamma", [("linear", "zero"), ("trig", "bsquared")])
def test_the_objective_at_the_exact_velocity_is_the_closed_form_minimum(path, gamma):
    I, F, base, target = problem(path, gamma)
    objective = InterpolantObjective(fields=("velocity",))  # antithetic pairs when gamma > 0
    value, err = objective_value(objective, {"velocity": F.velocity}, I, base, target)
    assert abs(value - velocity_minimum(I)) < 4 * err  # the gap is zero within its error
    # off by a constant h, it is larger by E|h|^2 (the cross term has mean zero at the minimum)
    worse = {"velocity": lambda t, x: F.velocity(t, x) + 0.5}
    value_worse, err_worse = objective_value(objective, worse, I, base, target, seed=1)
    assert abs(value_worse - velocity_minimum(I) - 0.5) < 4 * err_worse


def test_rows_split_the_batch_as_processes_do():
    I, F, base, target = problem("trig", "bsquared")
    nets = {"velocity": F.velocity, "denoiser": F.denoiser}
    objective = InterpolantObjective(fields=("velocity", "denoiser"), trim=0.01)
    g = torch.Generator().manual_seed(0)
    pair = CouplingSample(base.sample(64, g), target.sample(64, g))
    loss = lambda rows: objective.loss(nets, I, pair, torch.Generator().manual_seed(1), rows)  # noqa: E731
    whole = loss(slice(None))
    torch.testing.assert_close(whole, (loss(slice(0, None, 2)) + loss(slice(1, None, 2))) / 2)


def test_max_likelihood_at_the_exact_velocity_is_the_exact_nll():
    I, F, base, target = problem("linear", "zero")
    x1 = target.sample(400, torch.Generator().manual_seed(0))
    pair = CouplingSample(base.sample(400, torch.Generator().manual_seed(1)), x1)
    objective = MaxLikelihood(ode_steps=40, divergence="exact").bind(I, Independent(base))
    nll = objective.loss({"velocity": F.velocity}, I, pair)
    assert abs(float(nll.detach()) - float(-target.log_prob(x1).mean())) < 1e-3
    with pytest.raises(ValueError, match="density of x0"):
        MaxLikelihood().bind(I, Independent())  # unbound: the base is not known yet


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: InterpolantObjective(fields=("flow",)), "fields must be a non-empty subset"),
        (lambda: InterpolantObjective(fields=()), "fields must be a non-empty subset"),
        (lambda: InterpolantObjective(time_distribution="flat"), "time_distribution must"),
        (lambda: InterpolantObjective(trim=0.5), r"trim must lie in \[0, 0.5\)"),
        (lambda: InterpolantObjective(trim="small"), "trim must be a number"),
        (lambda: MaxLikelihood(ode_steps=0), "ml_ode_steps must be a positive integer"),
        (lambda: MaxLikelihood(divergence="trace"), "ml_divergence must be"),
    ],
)
def test_objectives_check_their_options(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bind_fills_the_defaults_of_the_interpolant():
    deterministic = InterpolantObjective().bind(si.Interpolant("linear"), None)
    assert (deterministic.trim, deterministic.antithetic) == (0.0, False)
    noisy = InterpolantObjective(fields=("velocity", "score")).bind(
        si.Interpolant("linear", gamma="brownian"), None
    )
    assert (noisy.trim, noisy.antithetic) == (1e-3, True)
