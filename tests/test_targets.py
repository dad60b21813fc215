"""Tests of the named targets (docs/benchmarks.md): formulas re-implemented independently here,
closed-form gradients against autograd, log Z by quadrature, exact samplers against log_prob
by z-tests with Monte-Carlo standard errors."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, optimize, stats

import interpolants as si
from interpolants.targets import (
    BridgeNormal,
    GaussianMixture,
    OrbitParameters,
    chain_reference,
    double_well_log_Z,
    solve_kepler,
)
from interpolants.targets.phi4 import chain_quadrature

D = torch.float64
Z_MAX = 5.0  # |z| bound of every Monte-Carlo check


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def assert_mean(values: torch.Tensor, expected: float, what: str = "mean") -> None:
    """|mean - expected| < Z_MAX standard errors of the mean."""
    values = values.double()
    mean, se = float(values.mean()), float(values.std() / math.sqrt(values.numel()))
    assert abs(mean - expected) < Z_MAX * se + 1e-12, f"{what}: {mean} vs {expected} (se {se})"


def assert_grad(target, x: torch.Tensor) -> None:
    """The target's gradient (closed form where given) against autograd of log_prob."""
    xg = x.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(target.log_prob(xg).sum(), xg)
    torch.testing.assert_close(target.grad_log_prob(x), auto, rtol=1e-9, atol=1e-9)
    lp, g = target.log_prob_and_grad(x)
    torch.testing.assert_close(g, auto, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(lp, target.log_prob(x))


def assert_stein(target, x: torch.Tensor) -> None:
    """Stein's identity with f(x) = x: E_p[x . grad log p(x)] = -dim for exact samples x."""
    assert_mean((x * target.grad_log_prob(x)).sum(1), -target.dim, f"{target.name} Stein")


# --- registry and input checks -------------------------------------------------------


def test_names_and_get_build_every_target():
    expected = {"eight_schools", "funnel", "gmm40", "ising", "item_response", "local_level",
                "logistic_regression", "many_well", "particles", "phi4", "phi4_1d", "potts",
                "radial_velocity"}  # fmt: skip
    assert set(si.targets.names()) == expected
    for name in [*si.targets.names(), "gmm-d3-k4"]:
        target = si.targets.get(name)
        assert isinstance(target, si.targets.Target)
        x = target.base.sample(3, gen())
        assert x.shape == (3, target.dim) and target.log_prob(x).shape == (3,)
        assert target.references and target.name


def test_get_rejects_unknown_names_and_options():
    with pytest.raises(ValueError, match=r"'nope'.*funnel.*gmm40.*gmm-d\{d\}-k\{k\}"):
        si.targets.get("nope")
    with pytest.raises(ValueError, match=r"'size'.*phi4"):
        si.targets.get("phi4", size=4)
    with pytest.raises(ValueError, match="L must be"):
        si.targets.get("phi4", L=0)
    with pytest.raises(ValueError, match="kT must be"):
        si.targets.get("particles", kT=-1.0)
    with pytest.raises(ValueError, match="dtype"):
        si.targets.get("funnel", dtype=torch.int64)
    with pytest.raises(ValueError, match="already sets d and k"):
        si.targets.get("gmm-d3-k4", d=5)
    with pytest.raises(ValueError, match="jitter"):
        si.targets.get("radial_velocity", jitter="yes")
    with pytest.raises(ValueError, match="prior"):
        si.targets.get("radial_velocity", prior={"P_low": 1.0})


@pytest.mark.parametrize(
    "name",
    ["gmm40", "funnel", "many_well", "phi4", "phi4_1d", "particles", "logistic_regression",
     "item_response"],
)  # fmt: skip
def test_bad_shapes_raise_naming_x(name):
    target = si.targets.get(name)
    with pytest.raises(ValueError, match="x must have shape"):
        target.log_prob(torch.zeros(3, target.dim + 1))
    with pytest.raises(ValueError, match="x must have shape"):
        target.log_prob(torch.zeros(target.dim))


@pytest.mark.parametrize("name", ["gmm40", "funnel", "many_well"])
def test_samplers_reject_bad_n(name):
    with pytest.raises(ValueError, match="n must be"):
        si.targets.get(name).sample(0)


@pytest.mark.parametrize("name", [*si.targets.names(), "gmm-d5-k3"])
def test_log_prob_follows_input_dtype(name):
    target = si.targets.get(name, dtype=torch.float64)
    x = target.base.sample(4, gen())
    assert x.dtype == D
    out64, out32 = target.log_prob(x), target.log_prob(x.float())
    assert out64.dtype == D and out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), out64, rtol=1e-4, atol=1e-3)


# --- Gaussian mixtures -----------------------------------------------------------------


def mixture_log_prob_np(x, means, stds, weights):
    comp = [
        np.log(w) + stats.multivariate_normal(m, np.diag(s**2)).logpdf(x)
        for m, s, w in zip(means, stds, weights, strict=True)
    ]
    return np.logaddexp.reduce(np.stack(comp, 1), axis=1)


def test_gmm40_matches_its_definition():
    target = si.targets.get("gmm40", dtype=D)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        means = (torch.rand(40, 2, dtype=torch.float32) - 0.5) * 2 * 40
    torch.testing.assert_close(target.means, means.double(), rtol=0, atol=0)
    assert target.log_Z == 0 and target.base.std[0] == 40
    std = math.log1p(math.e)
    assert abs(std - 1.3133) < 1e-4
    x = torch.randn(50, 2, generator=gen(), dtype=D) * 30
    expected = mixture_log_prob_np(
        x.numpy(), means.double().numpy(), np.full((40, 2), std), [1 / 40] * 40
    )
    np.testing.assert_allclose(target.log_prob(x).numpy(), expected, rtol=1e-10)
    assert_grad(target, x)


def test_gmm40_log_Z_by_grid_quadrature():
    target = si.targets.get("gmm40", dtype=D)
    h = 0.25
    g = torch.arange(-48, 48 + h / 2, h, dtype=D)
    grid = torch.cartesian_prod(g, g)
    log_Z = torch.logsumexp(target.log_prob(grid), 0) + 2 * math.log(h)
    assert abs(float(log_Z) - target.log_Z) < 1e-8


def test_gaussian_mixture_sampler_moments_and_stein():
    means = torch.tensor([[-3.0, 0.0, 1.0], [2.0, 1.0, -1.0]], dtype=D)
    stds = torch.tensor([[0.5, 1.0, 2.0], [1.5, 0.3, 1.0]], dtype=D)
    weights = torch.tensor([0.3, 0.7], dtype=D)
    target = GaussianMixture(means, stds, weights)
    x = target.sample(20000, gen(1))
    w = weights[:, None]
    mean = (w * means).sum(0)
    second = (w * (means.square() + stds.square())).sum(0)
    for i in range(3):
        assert_mean(x[:, i], float(mean[i]), f"mean {i}")
        assert_mean(x[:, i].square(), float(second[i]), f"second moment {i}")
    assert_stein(target, x)
    assert_grad(target, x[:200])
    expected = mixture_log_prob_np(x[:100].numpy(), means.numpy(), stds.numpy(), weights.numpy())
    np.testing.assert_allclose(target.log_prob(x[:100]).numpy(), expected, rtol=1e-10)


def test_mode_coverage():
    target = si.targets.get("gmm40", dtype=D)
    assert torch.equal(target.assign(target.means), torch.arange(40))
    x = target.sample(2000, gen(2))
    assert target.modes_covered(x) == 40
    assert int(target.mode_counts(x).sum()) == 2000
    one_mode = target.means[:1] + torch.randn(500, 2, generator=gen(3), dtype=D)
    assert target.modes_covered(one_mode) == 1
    # 5 samples on each of 3 means: each count 5 >= max(1, 0.1 * 15 / 40)
    three = target.means[:3].repeat_interleave(5, 0)
    assert target.modes_covered(three) == 3
    with pytest.raises(ValueError, match="min_fraction"):
        target.modes_covered(x, min_fraction=0.0)


def test_gmm_family_is_reproducible_and_seeded():
    a, b = si.targets.get("gmm-d50-k10"), si.targets.get("gmm-d50-k10")
    c = si.targets.get("gmm-d50-k10", seed=1)
    assert a.dim == 50 and a.means.shape == (10, 50) and a.log_Z == 0
    assert torch.equal(a.means, b.means) and not torch.equal(a.means, c.means)
    expected = (torch.rand(10, 50, generator=gen(0)) - 0.5) * 2 * 10
    torch.testing.assert_close(a.means, expected, rtol=0, atol=0)
    assert a.stds.eq(1).all() and a.base.std.eq(10).all()


def test_gaussian_mixture_rejects_bad_parameters():
    with pytest.raises(ValueError, match="means"):
        GaussianMixture(torch.zeros(3), 1.0)
    with pytest.raises(ValueError, match="stds"):
        GaussianMixture(torch.zeros(2, 3), torch.ones(3))
    with pytest.raises(ValueError, match="weights"):
        GaussianMixture(torch.zeros(2, 3), 1.0, torch.tensor([1.0, -1.0]))


# --- funnel ------------------------------------------------------------------------------


def test_funnel_formula_gradient_and_sampler():
    target = si.targets.get("funnel", dtype=D)
    x = target.sample(20000, gen(4))
    x0 = x[:, 0].numpy()
    expected = stats.norm(0, 3).logpdf(x0) + stats.norm(0, np.exp(x0 / 2)[:, None]).logpdf(
        x[:, 1:].numpy()
    ).sum(1)
    np.testing.assert_allclose(target.log_prob(x).numpy(), expected, rtol=1e-10, atol=1e-8)
    assert_grad(target, x[:500])
    assert_mean(x[:, 0], 0.0, "x0 mean")
    assert_mean(x[:, 0].square(), 9.0, "x0 variance")
    scaled = x[:, 1:] * torch.exp(-x[:, :1] / 2)
    assert_mean(scaled.flatten(), 0.0, "scaled mean")
    assert_mean(scaled.square().mean(1), 1.0, "scaled variance")
    assert_stein(target, x)


def test_funnel_log_Z_by_importance_sampling():
    # proposal: x0 ~ N(0, 3^2), x_i | x0 ~ N(0, 2 e^{x0}); the weights have finite variance
    target = si.targets.get("funnel", dtype=D)
    g = gen(5)
    x0 = 3 * torch.randn(40000, 1, generator=g, dtype=D)
    rest = torch.exp(x0 / 2) * math.sqrt(2) * torch.randn(40000, 9, generator=g, dtype=D)
    log_q = torch.distributions.Normal(0.0, 3.0).log_prob(x0[:, 0]) + torch.distributions.Normal(
        0.0, torch.exp(x0 / 2) * math.sqrt(2)
    ).log_prob(rest).sum(1)
    w = torch.exp(target.log_prob(torch.cat([x0, rest], 1)) - log_q)
    assert_mean(w, math.exp(target.log_Z), "funnel Z")


# --- many well ---------------------------------------------------------------------------


def test_many_well_log_Z_by_quadrature():
    value, _ = integrate.quad(
        lambda a: np.exp(-(a**4) + 6 * a**2 + 0.5 * a),
        -10,
        10,
        epsabs=0,
        epsrel=1e-13,
        points=[-1.7, 0.0, 1.7],
    )
    log_Z = 16 * (math.log(value) + 0.5 * math.log(2 * math.pi))
    target = si.targets.get("many_well")
    assert abs(log_Z - 164.6957) < 5e-5
    assert abs(target.log_Z - log_Z) < 1e-8
    assert abs(double_well_log_Z() - math.log(value)) < 1e-10


def test_many_well_formula_gradient_and_sampler():
    target = si.targets.get("many_well", dtype=D)
    x = target.sample(4000, gen(6))
    a, b = x[:, 0::2].numpy(), x[:, 1::2].numpy()
    expected = (-(a**4) + 6 * a**2 + 0.5 * a - 0.5 * b**2).sum(1)
    np.testing.assert_allclose(target.log_prob(x).numpy(), expected, rtol=1e-12)
    assert_grad(target, x[:500])
    # moments of the double-well coordinate by quadrature
    Z = math.exp(double_well_log_Z())

    def moment(k):
        f = lambda s: s**k * np.exp(-(s**4) + 6 * s**2 + 0.5 * s) / Z  # noqa: E731
        return integrate.quad(f, -10, 10, points=[-1.7, 0.0, 1.7], epsabs=1e-13)[0]

    a_all = x[:, 0::2].flatten()
    assert_mean(a_all, moment(1), "E a")
    assert_mean(a_all.square(), moment(2), "E a^2")
    assert_mean(
        (a_all > 0).double(),
        integrate.quad(lambda s: np.exp(-(s**4) + 6 * s**2 + 0.5 * s) / Z, 0, 10)[0],
        "P(a > 0)",
    )
    assert_mean(x[:, 1::2].flatten().square(), 1.0, "E b^2")
    assert_stein(target, x)


# --- phi4 --------------------------------------------------------------------------------


def phi4_action_np(phi, M2, lam):
    L = phi.shape[0]
    S = 0.0
    for i in range(L):
        for j in range(L):
            p = phi[i, j]
            S += M2 * p**2 + lam * p**4
            for q in (
                phi[(i + 1) % L, j],
                phi[(i - 1) % L, j],
                phi[i, (j + 1) % L],
                phi[i, (j - 1) % L],
            ):
                S += p**2 - p * q
    return S


@pytest.mark.parametrize("L", [2, 3, 5])
def test_phi4_matches_its_action_and_gradient(L):
    target = si.targets.get("phi4", L=L, M2=-1.3, lam=0.7)
    x = torch.randn(6, L * L, generator=gen(7), dtype=D)
    expected = [-phi4_action_np(v.reshape(L, L).numpy(), -1.3, 0.7) for v in x]
    np.testing.assert_allclose(target.log_prob(x).numpy(), expected, rtol=1e-12)
    assert_grad(target, x)


def test_phi4_defaults_and_observables():
    target = si.targets.get("phi4")
    assert (target.dim, target.L, target.M2, target.lam, target.log_Z) == (64, 8, -4.0, 8.0, None)
    x = torch.randn(1000, 64, generator=gen(8), dtype=D) + torch.tensor(
        [[-0.5], [0.5]], dtype=D
    ).repeat(500, 1)
    m = x.mean(1)
    torch.testing.assert_close(target.magnetization(x), m)
    chi = 64 * (m.square().mean() - m.abs().mean().square())
    torch.testing.assert_close(target.susceptibility(x), chi)
    torch.testing.assert_close(target.abs_magnetization(x), m.abs().mean())
    # uniform log weights give the plain averages; weights on a subset give its averages
    torch.testing.assert_close(target.susceptibility(x, torch.zeros(1000, dtype=D)), chi)
    lw = torch.full((1000,), -math.inf, dtype=D)
    lw[:10] = 0.0
    torch.testing.assert_close(target.abs_magnetization(x, lw), m[:10].abs().mean())


# --- phi4_1d -----------------------------------------------------------------------------


def chain_energy_np(phi, a, b):
    N = len(phi)
    padded = np.concatenate([[0.0], phi, [0.0]])
    kinetic = sum((padded[i + 1] - padded[i]) ** 2 for i in range(N + 1))
    local = sum((1 - p**2) ** 2 / 4 + b * p for p in phi)
    return a * N / 2 * kinetic + local / (a * N)


def test_phi4_1d_matches_its_energy_and_gradient():
    target = si.targets.get("phi4_1d", N=7, a=0.3, b=0.2, beta=2.5)
    x = torch.randn(5, 7, generator=gen(9), dtype=D)
    expected = [-2.5 * chain_energy_np(v.numpy(), 0.3, 0.2) for v in x]
    np.testing.assert_allclose(target.log_prob(x).numpy(), expected, rtol=1e-12)
    assert_grad(target, x)
    default = si.targets.get("phi4_1d")
    assert (default.N, default.a, default.b, default.beta, default.dim) == (
        100,
        0.1,
        0.0,
        20.0,
        100,
    )
    assert_grad(default, torch.randn(4, 100, generator=gen(10), dtype=D))


def test_bridge_normal_density_covariance_and_samples():
    bridge = BridgeNormal(12, 3.0, dtype=D)
    torch.testing.assert_close(bridge.covariance(), torch.linalg.inv(bridge.precision()))
    mvn = torch.distributions.MultivariateNormal(
        torch.zeros(12, dtype=D), precision_matrix=bridge.precision()
    )
    x = bridge.sample(20000, gen(11))
    torch.testing.assert_close(bridge.log_prob(x[:100]), mvn.log_prob(x[:100]))
    cov = bridge.covariance()
    for i, j in [(0, 0), (5, 5), (11, 11), (2, 7), (0, 11)]:
        assert_mean(x[:, i] * x[:, j], float(cov[i, j]), f"cov[{i}, {j}]")
    assert_mean(x.flatten(), 0.0, "bridge mean")
    target = si.targets.get("phi4_1d")
    assert target.base is target.bridge and target.bridge.stiffness == pytest.approx(200.0)


def test_chain_reference_against_direct_quadrature():
    # N = 2: a 2D integral done by scipy
    a, b, beta = 0.5, 0.3, 3.0
    f = lambda p2, p1: np.exp(-beta * chain_energy_np(np.array([p1, p2]), a, b))  # noqa: E731
    Z, _ = integrate.dblquad(f, -6, 6, -6, 6, epsabs=1e-12, epsrel=1e-10)
    assert abs(chain_reference(2, a, b, beta).log_Z - math.log(Z)) < 1e-7
    # converged in the grid step and the range
    ref = chain_reference(100, 0.1, 0.05, 20.0)
    coarse = chain_reference(100, 0.1, 0.05, 20.0, resolution=0.5)
    assert abs(ref.log_Z - coarse.log_Z) < 1e-8
    N, coupling = 100, 20.0 * 0.1 * 100 / 2

    def site(p):
        return -20.0 / (0.1 * N) * ((1 - p**2) ** 2 / 4 + 0.05 * p)

    wide = chain_quadrature(N, coupling, site, ref.grid_step, 1.5 * ref.grid_range)
    assert abs(wide.log_Z - ref.log_Z) < 1e-8
    torch.testing.assert_close(wide.mean_profile, ref.mean_profile, rtol=0, atol=1e-8)


def test_chain_log_Z_by_importance_sampling_from_the_bridge():
    target = si.targets.get("phi4_1d", N=6, a=0.2, b=0.1, beta=4.0, dtype=D)
    x = target.base.sample(40000, gen(12))
    w = torch.exp(target.log_prob(x) - target.base.log_prob(x) - target.log_Z)
    assert_mean(w, 1.0, "phi4_1d Z / Z_transfer")
    # and the exact mean profile: E[phi_i] = E_q[w phi_i] / E_q[w]
    mean_field = chain_reference(6, 0.2, 0.1, 4.0).mean_profile.mean()
    assert_mean(w * (target.mean_field(x) - mean_field), 0.0, "mean field")


def test_phi4_1d_references():
    target = si.targets.get("phi4_1d")
    assert target.log_Z == pytest.approx(-196.912220805, abs=1e-7)
    assert target.references["positive_mode_weight"] == 0.5
    assert abs(target.references["mean_field"]) < 1e-10
    x = torch.tensor([[0.5] * 100, [-0.5] * 100])
    torch.testing.assert_close(target.positive_mode(x), torch.tensor([1.0, 0.0]))
    tilted = si.targets.get("phi4_1d", b=0.05)
    assert tilted.references["positive_mode_weight"] is None
    assert tilted.references["mean_field"] < -0.5


# --- particles ---------------------------------------------------------------------------


def particles_energy_np(x, N, a):
    pos = x.reshape(N, 2)
    U = 0.0
    for i in range(N):
        for j in range(N):
            r = pos[i] - pos[j]
            U += -np.exp(a * np.cos(2 * np.pi * r[0]) + a * np.cos(2 * np.pi * r[1]) - 2 * a)
    return U / (2 * N)


def test_particles_energy_gradient_and_symmetries():
    target = si.targets.get("particles", N=5, a=4.0, kT=0.3, dtype=D)
    x = target.base.sample(6, gen(13))
    expected = [-particles_energy_np(v.numpy(), 5, 4.0) / 0.3 for v in x]
    np.testing.assert_allclose(target.log_prob(x).numpy(), expected, rtol=1e-12)
    assert_grad(target, x)
    shifts = torch.randint(-3, 4, x.shape, generator=gen(14)).to(D)
    torch.testing.assert_close(target.log_prob(x + shifts), target.log_prob(x))
    torch.testing.assert_close(target.wrap(x + shifts), x)
    moved = (x.view(6, 5, 2) + torch.tensor([0.3, -0.7], dtype=D)).flatten(1)
    torch.testing.assert_close(target.log_prob(moved), target.log_prob(x))
    swapped = x.view(6, 5, 2)[:, [2, 0, 4, 1, 3]].flatten(1)
    torch.testing.assert_close(target.log_prob(swapped), target.log_prob(x))


def test_particles_observables_and_base():
    target = si.targets.get("particles")
    assert (target.N, target.a, target.kT, target.dim) == (16, 4.0, 0.09, 32)
    drop = torch.full((1, 32), 0.25, dtype=D)
    torch.testing.assert_close(target.energy_per_particle(drop), torch.tensor([-0.5], dtype=D))
    torch.testing.assert_close(target.order_parameter(drop), torch.tensor([1.0], dtype=D))
    gas = target.base.sample(4000, gen(15)).double()
    assert gas.min() >= 0 and gas.max() < 1 and target.base.log_prob(gas).eq(0).all()
    # uniform positions: E |rho_k|^2 = 1/N exactly
    assert_mean(target.order_parameter(gas), 1 / 16, "order parameter of the gas")


# --- radial velocity ---------------------------------------------------------------------


def test_kepler_solver_converges_and_differentiates():
    M = torch.linspace(-3 * math.pi, 3 * math.pi, 241, dtype=D)[:, None].expand(241, 10)
    e = torch.linspace(0.0, 0.9, 10, dtype=D).expand(241, 10)
    M, e = M.clone().requires_grad_(True), e.clone().requires_grad_(True)
    E = solve_kepler(M, e)
    M_red = torch.remainder(M + math.pi, 2 * math.pi) - math.pi
    assert float((E - e * torch.sin(E) - M_red).detach().abs().max()) < 1e-12
    dM, de = torch.autograd.grad(E.sum(), (M, e))
    denom = 1 - e * torch.cos(E)
    torch.testing.assert_close(dM, (1 / denom).detach())
    torch.testing.assert_close(de, (torch.sin(E) / denom).detach())


def kepler_rv_np(t, P, K, e, omega, phase, gamma, t_ref):
    out = []
    for tj in t:
        M = (2 * np.pi * (tj - t_ref) / P + phase - omega) % (2 * np.pi)
        E = optimize.brentq(lambda E, M=M: E - e * np.sin(E) - M, 0.0, 2 * np.pi, xtol=1e-15)
        nu = 2 * np.arctan2(np.sqrt(1 + e) * np.sin(E / 2), np.sqrt(1 - e) * np.cos(E / 2))
        out.append(gamma + K * (np.cos(nu + omega) + e * np.cos(omega)))
    return np.array(out)


def rv_log_prob_np(x, t, v, s, t_ref, jitter):
    prior = si.targets.radial_velocity.PRIOR
    sig = 1 / (1 + np.exp(-x[0]))
    P = np.exp(np.log(prior["P_min"]) + np.log(prior["P_max"] / prior["P_min"]) * sig)
    K, phase = np.hypot(x[1], x[2]), np.arctan2(x[2], x[1])
    r, omega = np.hypot(x[3], x[4]), np.arctan2(x[4], x[3])
    e = prior["e_max"] * np.tanh(r) ** 2
    s_jit = np.exp(x[6]) if jitter else 0.0
    model = kepler_rv_np(t, P, K, e, omega, phase, x[5], t_ref)
    var = s**2 + s_jit**2
    log_lik = -0.5 * np.sum((v - model) ** 2 / var + np.log(2 * np.pi * var))
    # densities of the unconstrained coordinates: logistic, Gaussian, uniform disk pushed
    # through the radial map tanh, Gaussians
    log_prior = np.log(sig * (1 - sig))
    log_prior += stats.multivariate_normal(np.zeros(2), prior["K_scale"] ** 2).logpdf(x[1:3])
    log_prior += -np.log(np.pi * prior["e_max"]) + np.log(
        prior["e_max"] * np.tanh(r) / r / np.cosh(r) ** 2
    )
    log_prior += stats.norm(0, prior["gamma_scale"]).logpdf(x[5])
    if jitter:
        log_prior += stats.norm(prior["log_jitter_mean"], prior["log_jitter_std"]).logpdf(x[6])
    return log_lik + log_prior


@pytest.mark.parametrize("jitter", [False, True])
def test_radial_velocity_matches_independent_model(jitter):
    target = si.targets.get("radial_velocity", jitter=jitter, dtype=D)
    assert target.dim == (7 if jitter else 6)
    t, v, s = (a.numpy() for a in target.data)
    x = target.base.sample(4, gen(16))
    expected = [rv_log_prob_np(xi.numpy(), t, v, s, target.t_ref, jitter) for xi in x]
    np.testing.assert_allclose(target.log_prob(x).numpy(), expected, rtol=1e-9)
    assert_grad(target, x)
    back = target.from_physical(target.to_physical(x))
    torch.testing.assert_close(back, x)


def test_radial_velocity_data_and_truth():
    target = si.targets.get("radial_velocity", dtype=D)
    t, v, s = target.data
    assert len(t) == 16 and target.t_ref == pytest.approx(0.5 * float(t.min() + t.max()))
    truth = OrbitParameters(
        *(
            torch.tensor([float(si.targets.radial_velocity.TRUE_PARAMETERS[k])], dtype=D)
            for k in OrbitParameters._fields
        )
    )
    x = target.from_physical(truth)
    model = kepler_rv_np(
        t.numpy(),
        *(float(getattr(truth, k)) for k in ("P", "K", "e", "omega", "phase", "gamma")),
        target.t_ref,
    )
    chi2 = float(np.sum(((v.numpy() - model) / s.numpy()) ** 2))
    assert abs(chi2 - 16) < Z_MAX * math.sqrt(2 * 16)  # the noise is what the errors say
    assert torch.isfinite(target.log_prob(x)).all()
    zero = torch.zeros(2, 6, dtype=D)  # K = 0 and e = 0: finite values and gradients
    assert torch.isfinite(target.log_prob_and_grad(zero)[1]).all()


def test_orbit_prior_is_normalised_and_sampled_exactly():
    prior = si.targets.get("radial_velocity", dtype=D).base
    # with the other coordinates at 0, log_prob = block(x) + the other blocks' log densities
    # at 0; the (u_1, u_2) block must integrate to 1 on a 2D grid, the logistic block on 1D
    others = math.log(0.25) - math.log(2 * math.pi * 400) + stats.norm(0, 20).logpdf(0)
    h = 0.02
    g = torch.arange(-12, 12 + h / 2, h, dtype=D)
    x = torch.zeros(len(g) ** 2, 6, dtype=D)
    x[:, 3:5] = torch.cartesian_prod(g, g)
    disk = torch.logsumexp(prior.log_prob(x) - others, 0) + 2 * math.log(h)
    assert abs(float(disk)) < 1e-6
    x = torch.zeros(20001, 6, dtype=D)
    x[:, 0] = torch.linspace(-50, 50, 20001, dtype=D)
    others = -math.log(2 * math.pi * 400) - math.log(math.pi) + stats.norm(0, 20).logpdf(0)
    logistic = torch.logsumexp(prior.log_prob(x) - others, 0) + math.log(100 / 20000)
    assert abs(float(logistic)) < 1e-9
    n = 20000
    samples = prior.sample(n, gen(17))
    p = prior.to_physical(samples)
    lo, hi = math.log(1.0), math.log(1000.0)
    assert_mean(p.P.log(), (lo + hi) / 2, "E ln P")
    assert_mean(p.e, 0.45, "E e")
    assert_mean(p.K, 20.0 * math.sqrt(math.pi / 2), "E K")
    assert_mean(torch.cos(p.omega), 0.0, "E cos omega")
    assert_mean(torch.sin(p.phase), 0.0, "E sin phase")
    assert_mean(p.gamma.square(), 400.0, "E gamma^2")
    lp_grad = torch.func.vmap(torch.func.grad(lambda y: prior.log_prob(y[None])[0]))(samples)
    assert_mean((samples * lp_grad).sum(1), -6.0, "prior Stein")


# --- the eight schools, centred and non-centred (exact references by quadrature) ----------


def test_eight_schools_forms_differ_by_their_jacobian():
    """theta = mu + tau eta: log rho_nc(mu, u, eta) = log rho_c(mu, u, theta) + J u."""
    c, nc = (si.targets.get("eight_schools", centered=k, dtype=torch.float64) for k in (1, 0))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 10, generator=g, dtype=torch.float64) * torch.tensor([5, 1] + [3] * 8)
    tau = x[:, 1:2].exp()
    theta = x[:, :1] + tau * x[:, 2:]
    xc = torch.cat([x[:, :2], theta], 1)
    torch.testing.assert_close(nc.log_prob(x), c.log_prob(xc) + 8 * x[:, 1], rtol=1e-12, atol=1e-9)
    assert c.log_Z == nc.log_Z


def test_eight_schools_reference_agrees_with_monte_carlo_over_the_prior():
    """Z = E_prior[p(y | mu, tau)] (theta integrated in closed form), by 400k prior draws: the
    quadrature's log Z and posterior means of mu and log tau within 4 Monte-Carlo errors."""
    ref = si.targets.eight_schools_reference(True)
    y = torch.tensor(si.targets.hierarchical.EIGHT_SCHOOLS_Y, dtype=torch.float64)
    s2 = torch.tensor(si.targets.hierarchical.EIGHT_SCHOOLS_SIGMA, dtype=torch.float64) ** 2
    g = torch.Generator().manual_seed(1)
    n = 400_000
    tau = 5 * torch.tan(math.pi / 2 * torch.rand(n, generator=g, dtype=torch.float64))
    mu = 5 * torch.randn(n, generator=g, dtype=torch.float64)
    v = s2 + tau[:, None] ** 2
    lw = (-0.5 * ((y - mu[:, None]) ** 2 / v + v.log() + math.log(2 * math.pi))).sum(1)
    w = torch.exp(lw - lw.max())
    log_z = float(w.mean().log() + lw.max())
    se_log_z = float(w.std() / (w.mean() * math.sqrt(n)))
    assert abs(log_z - ref["log_Z"]) < 4 * se_log_z + 1e-6, (log_z, ref["log_Z"], se_log_z)
    for values, k in ((mu, 0), (tau.log(), 1)):
        mean = float((w * values).sum() / w.sum())
        se = float(((w * (values - mean)) ** 2).sum().sqrt() / w.sum())  # delta method
        assert abs(mean - float(ref["mean"][k])) < 4 * se, (k, mean, float(ref["mean"][k]), se)


# --- the local-level time series (exact references: Gaussian given the scales) ---------------


def test_local_level_density_is_the_gaussian_model_given_the_scales():
    """For fixed scales, log rho(u, x) - log N(x; E[x | y, u], Cov[x | y, u]) is the constant
    log p(y | u) + log p(u): the density and the reference's Gaussian formulas agree."""
    from interpolants.targets.state_space import LOCAL_LEVEL_Y

    target = si.targets.get("local_level", dtype=torch.float64)
    y = torch.tensor(LOCAL_LEVEL_Y, dtype=torch.float64)
    n = len(y)
    idx = torch.arange(1, n + 1, dtype=torch.float64)
    for uw, uv in ((-1.2, -0.7), (0.3, -2.0)):
        c = 1 + math.exp(2 * uw) * (torch.minimum(idx[:, None], idx[None]) - 1)
        s = c + math.exp(2 * uv) * torch.eye(n, dtype=torch.float64)
        mean = c @ torch.linalg.solve(s, y)
        cov = c - c @ torch.linalg.solve(s, c)
        post = torch.distributions.MultivariateNormal(mean, cov)
        xs = post.sample((5,))
        x = torch.cat([torch.tensor([[uw, uv]], dtype=torch.float64).expand(5, 2), xs], 1)
        gap = target.log_prob(x) - post.log_prob(xs)
        marginal = torch.distributions.MultivariateNormal(torch.zeros(n, dtype=torch.float64), s)
        prior = sum(-0.5 * (u + 1) ** 2 - 0.5 * math.log(2 * math.pi) for u in (uw, uv))
        torch.testing.assert_close(gap, (marginal.log_prob(y) + prior).expand(5), atol=1e-8,
                                   rtol=1e-10)  # fmt: skip


def test_local_level_log_Z_agrees_with_monte_carlo_over_the_scales():
    ref = si.targets.local_level_reference()
    from interpolants.targets.state_space import LOCAL_LEVEL_Y

    y = torch.tensor(LOCAL_LEVEL_Y, dtype=torch.float64)
    n = len(y)
    idx = torch.arange(1, n + 1, dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    u = -1 + torch.randn(4000, 2, generator=g, dtype=torch.float64)
    c = 1 + torch.exp(2 * u[:, :1, None]) * (torch.minimum(idx[:, None], idx[None]) - 1)
    s = c + torch.exp(2 * u[:, 1:, None]) * torch.eye(n, dtype=torch.float64)
    lw = torch.distributions.MultivariateNormal(torch.zeros(n, dtype=torch.float64), s).log_prob(y)
    w = torch.exp(lw - lw.max())
    log_z = float(w.mean().log() + lw.max())
    se = float(w.std() / (w.mean() * math.sqrt(len(w))))
    assert abs(log_z - ref["log_Z"]) < 4 * se, (log_z, ref["log_Z"], se)


# --- real posteriors with long-run references: logistic regression, item response ----------


def finite_difference_grad(target, x: torch.Tensor, h: float = 1e-5) -> torch.Tensor:
    """Central differences of log_prob, coordinate by coordinate (float64)."""
    eye = torch.eye(target.dim, dtype=D)
    cols = [(target.log_prob(x + h * e) - target.log_prob(x - h * e)) / (2 * h) for e in eye]
    return torch.stack(cols, 1)


def assert_reference_shapes(target) -> None:
    refs = target.references
    assert refs["coordinates"] == target.coordinate_names and len(refs["coordinates"]) == target.dim
    for key in ("mean", "sd", "mean_stderr", "sd_stderr"):
        assert len(refs[key]) == target.dim, key
    assert all(s > 0 for s in refs["sd"]) and 0 < refs["log_Z_stderr"] < 0.01
    assert target.log_Z == refs["log_Z"] and "source" in refs
    # the errors are small against the posterior sds: the references resolve 1% of an sd
    assert max(e / s for e, s in zip(refs["mean_stderr"], refs["sd"], strict=True)) < 0.01


def test_logistic_regression_data_and_density_against_scipy():
    from scipy.special import log_expit

    target = si.targets.get("logistic_regression", dtype=D)
    design, labels = si.targets.load_breast_cancer_data()
    assert design.shape == (569, 11) and int(labels.sum()) == 357
    assert torch.all(design[:, 0] == 1)
    # standardised features, up to the 4-decimal rounding
    np.testing.assert_allclose(design[:, 1:].mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(design[:, 1:].std(0, unbiased=False), 1, atol=1e-4)
    x = 0.7 * torch.randn(20, 11, generator=gen(2), dtype=D)
    a, y, beta = design.numpy(), labels.numpy(), x.numpy()
    eta = beta @ a.T
    like = (y * log_expit(eta) + (1 - y) * log_expit(-eta)).sum(1)
    expected = like + stats.norm.logpdf(beta, 0, 1).sum(1)
    np.testing.assert_allclose(target.log_prob(x).numpy(), expected, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(target.grad_log_prob(x), finite_difference_grad(target, x),
                               rtol=1e-6, atol=1e-6)  # fmt: skip
    # the base is the prior N(0, I), a normalised density
    np.testing.assert_allclose(
        target.base.log_prob(x).numpy(), stats.norm.logpdf(beta).sum(1), rtol=1e-12
    )
    assert_reference_shapes(target)
    assert target.coordinate_names[:2] == ["intercept", "beta[radius]"]


def item_response_np(x: np.ndarray, y: np.ndarray, centered: bool) -> np.ndarray:
    from scipy.special import expit

    u, local, b = x[:, 0], x[:, 1:31], x[:, 31:]
    sigma = np.exp(u)
    out = stats.halfcauchy.logpdf(sigma, scale=1.0) + u + stats.norm.logpdf(b, 0, 2).sum(1)
    if centered:
        theta = local
        out = out + stats.norm.logpdf(theta, 0, sigma[:, None]).sum(1)
    else:
        theta = sigma[:, None] * local
        out = out + stats.norm.logpdf(local).sum(1)
    p = expit(theta[:, :, None] - b[:, None, :])
    return out + stats.bernoulli.logpmf(y[None], p).sum((1, 2))


@pytest.mark.parametrize("centered", [True, False])
def test_item_response_density_against_scipy(centered):
    target = si.targets.get("item_response", centered=centered, dtype=D)
    y = si.targets.item_response_matrix()
    assert y.shape == (30, 10) and float(y.mean()) == pytest.approx(157 / 300)
    x = target.base.sample(10, gen(3))
    expected = item_response_np(x.numpy(), y.numpy(), centered)
    np.testing.assert_allclose(target.log_prob(x).numpy(), expected, rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(target.grad_log_prob(x), finite_difference_grad(target, x),
                               rtol=1e-6, atol=1e-6)  # fmt: skip
    # the base: a normalised diagonal Gaussian (log sigma, local, difficulties)
    scale = np.array([1.0] + [1.5 if centered else 1.0] * 30 + [1.5] * 10)
    expected = stats.norm.logpdf(x.numpy(), 0, scale).sum(1)
    np.testing.assert_allclose(target.base.log_prob(x).numpy(), expected, rtol=1e-12)
    assert_reference_shapes(target)
    assert target.coordinate_names[1] == ("theta[0]" if centered else "z[0]")


def test_item_response_forms_differ_by_their_jacobian():
    """theta = sigma z: log rho_nc(u, z, b) = log rho_c(u, e^u z, b) + 30 u; the references
    of u and b are shared, and theta's mean is about E[e^u z] (within the errors)."""
    c, nc = (si.targets.get("item_response", centered=k, dtype=D) for k in (True, False))
    x = nc.base.sample(20, gen(4))
    xc = torch.cat([x[:, :1], x[:, :1].exp() * x[:, 1:31], x[:, 31:]], 1)
    torch.testing.assert_close(nc.log_prob(x), c.log_prob(xc) + 30 * x[:, 0], rtol=1e-12,
                               atol=1e-9)  # fmt: skip
    assert c.log_Z == nc.log_Z
    for k in [0, *range(31, 41)]:
        assert c.references["mean"][k] == nc.references["mean"][k]
        assert c.references["sd"][k] == nc.references["sd"][k]


def test_new_targets_reject_bad_options():
    with pytest.raises(ValueError, match="centered"):
        si.targets.get("item_response", centered="yes")
    for name in ("eight_schools", "item_response"):  # not bool("no"), which is True
        with pytest.raises(ValueError, match="centered must be True or False, got 'no'"):
            si.targets.get(name, centered="no")
    with pytest.raises(ValueError, match="dtype"):
        si.targets.get("item_response", dtype=torch.int64)
    with pytest.raises(ValueError, match="dtype"):
        si.targets.get("logistic_regression", dtype="float16")
    with pytest.raises(ValueError, match=r"'prior_scale'.*logistic_regression"):
        si.targets.get("logistic_regression", prior_scale=2.0)


# --- the priors of the Bayesian posteriors (their default bases) ----------------------

BAYES = [("eight_schools", True), ("eight_schools", False), ("item_response", True),
         ("item_response", False), ("local_level", None)]  # fmt: skip


def bayes_target(name: str, centered: bool | None, **options) -> si.targets.Target:
    form = {} if centered is None else {"centered": centered}
    return si.targets.get(name, dtype=D, **form, **options)


def prior_np(name: str, centered: bool | None, x: np.ndarray) -> np.ndarray:
    """The prior's log density in the sampler's coordinates, written again with scipy."""
    if name == "local_level":
        uw, uv, s = x[:, 0], x[:, 1], x[:, 2:]
        return (stats.norm.logpdf(uw, -1, 1) + stats.norm.logpdf(uv, -1, 1)
                + stats.norm.logpdf(s[:, 0], 0, 1)
                + stats.norm.logpdf(s[:, 1:], s[:, :-1], np.exp(uw)[:, None]).sum(1))  # fmt: skip
    if name == "eight_schools":
        mu, u, local = x[:, 0], x[:, 1], x[:, 2:]
        lp = stats.norm.logpdf(mu, 0, 5) + stats.halfcauchy.logpdf(np.exp(u), scale=5) + u
        loc, sd = (mu[:, None], np.exp(u)[:, None]) if centered else (0.0, 1.0)
        return lp + stats.norm.logpdf(local, loc, sd).sum(1)
    u, local, b = x[:, 0], x[:, 1:31], x[:, 31:]
    lp = stats.halfcauchy.logpdf(np.exp(u), scale=1) + u + stats.norm.logpdf(b, 0, 2).sum(1)
    return lp + stats.norm.logpdf(local, 0, np.exp(u)[:, None] if centered else 1.0).sum(1)


def prior_standardised(name: str, centered: bool | None, x: np.ndarray) -> dict:
    """The prior's independent pieces of exact draws, each with the cdf it must follow."""
    if name == "local_level":
        steps = np.diff(x[:, 2:], axis=1) / np.exp(x[:, :1])
        return {
            "scales": (x[:, :2].ravel(), stats.norm(-1, 1).cdf),
            "x_1": (x[:, 2], stats.norm.cdf),
            "steps": (steps.ravel(), stats.norm.cdf),
        }
    if name == "eight_schools":
        mu, u, local = x[:, 0], x[:, 1], x[:, 2:]
        z = (local - mu[:, None]) / np.exp(u)[:, None] if centered else local
        return {"mu": (mu, stats.norm(0, 5).cdf), "tau": (np.exp(u), stats.halfcauchy(0, 5).cdf),
                "local": (z.ravel(), stats.norm.cdf)}  # fmt: skip
    u, local, b = x[:, 0], x[:, 1:31], x[:, 31:]
    z = local / np.exp(u)[:, None] if centered else local
    return {"sigma": (np.exp(u), stats.halfcauchy(0, 1).cdf), "local": (z.ravel(), stats.norm.cdf),
            "b": (b.ravel(), stats.norm(0, 2).cdf)}  # fmt: skip


@pytest.mark.parametrize("name,centered", BAYES)
def test_bayesian_posteriors_offer_their_prior_as_base(name, centered):
    """base="prior" is the model's prior: a normalised density (scipy's, written again)
    with exact ancestral draws (Kolmogorov-Smirnov on every independent piece), and the
    posterior is prior x likelihood whatever the base; base="gaussian" is the Gaussian.
    The default is the prior for the centred eight schools, the Gaussian for the others."""
    t = bayes_target(name, centered, base="prior")
    assert t.base is t.prior
    default = "prior" if (name, centered) == ("eight_schools", True) else "gaussian"  # measured
    assert isinstance(bayes_target(name, centered).base, type(t.prior)) == (default == "prior")
    x = t.prior.sample(4000, gen(3))
    assert x.dtype == D and x.shape == (4000, t.dim) and bool(torch.isfinite(x).all())
    expected = prior_np(name, centered, x[:500].numpy())
    torch.testing.assert_close(t.prior.log_prob(x[:500]).numpy(), expected, rtol=1e-9, atol=1e-9)
    for piece, (values, cdf) in prior_standardised(name, centered, x.numpy()).items():
        assert stats.kstest(values, cdf).pvalue > 1e-3, (name, centered, piece)
    gaussian = bayes_target(name, centered, base="gaussian")
    assert isinstance(gaussian.base, si.distributions.DiagonalNormal)
    # learned transports (NETS, flow-MCMC) start from the Gaussian whatever the base, but
    # for the centred eight schools (its tamed prior, the test below)
    if (name, centered) == ("eight_schools", True):
        assert t.transport_base.log_tau_normal == (1.0, 1.5)
    else:
        assert isinstance(t.transport_base, si.distributions.DiagonalNormal)
        torch.testing.assert_close(t.transport_base.std, gaussian.base.std)
    torch.testing.assert_close(gaussian.log_prob(x), t.log_prob(x))
    with pytest.raises(ValueError, match="base must be one of"):
        bayes_target(name, centered, base="uniform")


@pytest.mark.parametrize("centered", [True, False])
def test_eight_schools_tamed_prior_puts_a_normal_on_log_tau(centered):
    """log_tau_normal=(m, s): u = log tau ~ N(m, s^2) in the half-Cauchy's place, the rest of
    the prior unchanged: its density is scipy's, its draws pass Kolmogorov-Smirnov piece by
    piece, and it is the centred form's transport_base, in the target's dtype."""
    prior = si.targets.hierarchical.EightSchoolsPrior(centered, D, log_tau_normal=(1.0, 1.5))
    x = prior.sample(4000, gen(11))
    assert x.dtype == D and bool(torch.isfinite(x).all())
    mu, u, local = (v.numpy() for v in (x[:, 0], x[:, 1], x[:, 2:]))
    loc, sd = (mu[:, None], np.exp(u)[:, None]) if centered else (0.0, 1.0)
    expected = (stats.norm.logpdf(mu, 0, 5) + stats.norm.logpdf(u, 1, 1.5)
                + stats.norm.logpdf(local, loc, sd).sum(1))  # fmt: skip
    torch.testing.assert_close(prior.log_prob(x).numpy(), expected, rtol=1e-9, atol=1e-9)
    z = (local - loc) / sd
    for values, cdf in ((mu, stats.norm(0, 5).cdf), (u, stats.norm(1, 1.5).cdf),
                        (z.ravel(), stats.norm.cdf)):  # fmt: skip
        assert stats.kstest(values, cdf).pvalue > 1e-3
    assert float(x[:, 2:].abs().max()) < 1e5  # no half-Cauchy tail (which reaches 1e10)
    if centered:
        base = bayes_target("eight_schools", True).transport_base
        assert base.dtype == D and base.log_tau_normal == (1.0, 1.5)
    # a run's record of its base (a checkpoint's identity) tells the priors apart
    from interpolants.data.checks import fingerprint

    other = si.targets.hierarchical.EightSchoolsPrior(centered, D, log_tau_normal=(1.0, 1.0))
    untamed = si.targets.hierarchical.EightSchoolsPrior(centered, D)
    assert len({str(fingerprint(p)) for p in (prior, other, untamed)}) == 3
    for bad in [(1.0, 0.0), (1.0, -1.0), (math.nan, 1.0), (1.0,)]:
        with pytest.raises(ValueError, match="log_tau_normal"):
            si.targets.hierarchical.EightSchoolsPrior(centered, D, log_tau_normal=bad)


def test_transport_base_is_the_base_unless_a_target_sets_another():
    funnel = si.targets.get("funnel")
    assert funnel.transport_base is funnel.base
    centred = si.targets.get("eight_schools")
    assert isinstance(centred.base, si.targets.hierarchical.EightSchoolsPrior)
    assert centred.transport_base is not centred.base
