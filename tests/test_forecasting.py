"""Forecasting with the drift of a point-mass interpolant (arXiv 2403.13724) on the closed form
of an Ornstein-Uhlenbeck process: the law of x_{t+tau} given x_t is N(m x_t, v) with m =
exp(-theta tau), v = s^2 (1 - exp(-2 theta tau)) / (2 theta)."""

import math

import pytest
import torch

import interpolants as si
from interpolants.couplings import Increment, Paired
from interpolants.forecasting import (
    ForecastModel,
    follmer_squared,
    score_from_drift,
)

D = torch.float64
THETA = torch.tensor([1.0, 0.3], dtype=D)
NOISE = torch.tensor([1.0, 0.5], dtype=D)
TAU = 0.5
M = torch.exp(-THETA * TAU)
V = NOISE**2 * (1 - torch.exp(-2 * THETA * TAU)) / (2 * THETA)
EPS = 1.0


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def interpolant():
    return si.Interpolant("quadratic", gamma="wiener", a=EPS)


def exact_drift(t, x, cond):
    r"""b_F = (alpha' + beta' m) x0 + k(t) (x - mu_t), mu_t = (alpha + beta m) x0, for alpha =
    1 - t, beta = t^2, sigma = eps (1 - t): x_t | x0 ~ N(mu_t, S_t) with S_t = beta^2 v +
    sigma^2 t, and k = (beta beta' v + sigma sigma' t) / S_t = (2 t^2 v - eps^2 (1 - t)) /
    (t^3 v + eps^2 (1 - t)^2) once t is cancelled (-1 at t = 0)."""
    t = t.to(D)[:, None]
    mu = (1 - t + t * t * M) * cond
    k = (2 * t * t * V - EPS**2 * (1 - t)) / (t**3 * V + EPS**2 * (1 - t) ** 2)
    return (-1 + 2 * t * M) * cond + k * (x - mu)


def exact_model():
    return ForecastModel(interpolant(), exact_drift, Paired(None))


def assert_forecast(x, x0, z=4.5, rel=0.03):
    """Mean within z standard errors; variance within z se plus ``rel`` (the solver's bias)."""
    n = len(x)
    mean, var = M * x0, V
    assert torch.all((x.mean(0) - mean).abs() < z * torch.sqrt(var / n)), (x.mean(0), mean)
    se_var = var * math.sqrt(2 / n)
    assert torch.all((x.var(0) - var).abs() < z * se_var + rel * var), (x.var(0), var)


@pytest.mark.parametrize(
    "diffusion",
    [None, "follmer", 1.5, lambda t: EPS * (1 - t) ** 4 + 0.0 * t],
    ids=["sigma", "follmer", "constant", "quartic"],
)
def test_the_exact_drift_forecasts_the_ou_law_for_any_diffusion(diffusion):
    x0 = torch.tensor([[1.5, -2.0]], dtype=D)
    x = exact_model().sample(20_000, steps=400, cond=x0, diffusion=diffusion, generator=gen(1))
    assert x.shape == (20_000, 2)
    assert_forecast(x, x0[0])


def test_a_diffusion_below_sigma_at_zero_is_refused_and_would_be_wrong():
    model = exact_model()
    with pytest.raises(ValueError, match="below sigma"):
        model.sample(10, cond=torch.zeros(1, 2, dtype=D), diffusion=0.3 * EPS)
    with pytest.raises(ValueError, match="diffusion must be one of"):
        model.sample(10, cond=torch.zeros(1, 2, dtype=D), diffusion="brownian")


def test_follmer_diffusion_and_score_on_closed_forms():
    I = interpolant()
    t = torch.linspace(0, 1, 11, dtype=D)
    assert torch.allclose(follmer_squared(I, t), EPS**2 * (1 - t) * (3 - t))
    linear = si.Interpolant("linear", gamma="wiener", a=EPS)
    assert torch.allclose(follmer_squared(linear, t), EPS**2 * (1 - t * t))
    # the score from the drift is the exact score -(x - mu_t) / S_t of x_t | x0
    tt = torch.full((5,), 0.4, dtype=D)
    x0 = torch.randn(5, 2, generator=gen(2), dtype=D)
    x = torch.randn(5, 2, generator=gen(3), dtype=D)
    mu = (1 - 0.4 + 0.16 * M) * x0
    S = 0.4**4 * V + EPS**2 * 0.6**2 * 0.4
    want = -(x - mu) / S
    assert torch.allclose(score_from_drift(I, tt, x, x0, exact_drift(tt, x, x0)), want)


def ou_pairs(n, seed=0):
    g = gen(seed)
    x_now = torch.randn(n, 2, generator=g, dtype=D) * torch.sqrt(NOISE**2 / (2 * THETA))
    x_next = M * x_now + torch.sqrt(V) * torch.randn(n, 2, generator=g, dtype=D)
    return x_now.float(), x_next.float()


def test_a_trained_drift_forecasts_the_ou_law():
    """A short training on 20 000 OU pairs: ensembles from three current states have the
    conditional mean within 0.1 sd and the variance within 20 %, for the default and the
    Foellmer diffusion."""
    x_now, x_next = ou_pairs(20_000)
    model = si.fit(x_next, base=Paired(x_now), interpolant=interpolant(), fields=("drift",),
                   steps=1500, batch_size=512, lr=2e-3, seed=0, progress=False,
                   net_options={"width": 64, "depth": 2})  # fmt: skip
    assert isinstance(model, ForecastModel)
    for row in torch.tensor([[1.0, -1.0], [0.0, 0.5], [-1.5, 1.5]]):
        for diffusion in (None, "follmer"):
            x = model.sample(4000, cond=row[None], diffusion=diffusion, generator=gen(4)).double()
            sd = torch.sqrt(V)
            assert torch.all((x.mean(0) - M * row.double()).abs() < 0.1 * sd + 0.02), x.mean(0)
            assert torch.all((x.var(0) / V - 1).abs() < 0.2), x.var(0) / V


def test_rollouts_save_and_load(tmp_path):
    x_now, x_next = ou_pairs(500)
    model = si.fit(x_next, base=Paired(x_now), interpolant=interpolant(), fields=("drift",),
                   steps=3, batch_size=32, progress=False)  # fmt: skip
    path = tmp_path / "forecast.safetensors"
    model.save(path)
    loaded = si.load(path)
    assert isinstance(loaded, ForecastModel)
    start = x_now[:3]
    a = model.rollout(start, lags=4, members=5, steps=10, generator=gen(5))
    b = loaded.rollout(start, lags=4, members=5, steps=10, generator=gen(5))
    assert a.shape == (4, 5, 3, 2) and torch.equal(a, b)
    with pytest.raises(ValueError, match="point mass"):
        ForecastModel(interpolant(), exact_drift, Paired(None, noise=0.1))
    with pytest.raises(ValueError, match="sigma"):
        ForecastModel(si.Interpolant("quadratic"), exact_drift, Paired(None))


class OU(si.data.StochasticDynamics):
    """The OU process of this file as a simulated system: the engine checked on a closed form."""

    dim, noise, dt, lag, burn_in = 2, 1.0, 1e-3, TAU, 5.0

    def drift(self, x):
        return -THETA * x * torch.tensor([1.0, 1.0], dtype=D)

    def initial(self, n, generator=None):
        return torch.zeros(n, 2, dtype=D)


def test_the_simulation_engine_reproduces_the_ou_law():
    system = OU()
    system.noise = 1.0  # isotropic: the law of OU with s = 1 on both coordinates
    x0 = torch.tensor([[1.5, -2.0]], dtype=D)
    ens = system.ensemble(x0, 20_000, gen(6))
    assert ens.shape == (20_000, 1, 2)
    v = (1 - torch.exp(-2 * THETA * TAU)) / (2 * THETA)
    mean = M * x0[0]
    x = ens[:, 0]
    assert torch.all((x.mean(0) - mean).abs() < 4.5 * torch.sqrt(v / 20_000))
    assert torch.all((x.var(0) / v - 1).abs() < 4.5 * math.sqrt(2 / 20_000) + 0.01)
    now, nxt = system.pairs(500, gen(7), chains=50)
    assert now.shape == nxt.shape == (500, 2)
    again = system.pairs(500, gen(7), chains=50)
    assert torch.equal(now, again[0]) and torch.equal(nxt, again[1])


def test_stochastic_lorenz63():
    system = si.data.StochasticLorenz63(noise=0.5)
    x = torch.tensor([[1.0, 2.0, 3.0]], dtype=D)
    assert torch.allclose(system.drift(x), torch.tensor([[10.0, 23.0, 2.0 - 8.0]], dtype=D))
    now, nxt = system.pairs(300, gen(8), chains=30)
    assert now.shape == (300, 3) and bool(torch.isfinite(nxt).all())
    assert 15 < float(now[:, 2].mean()) < 32  # on the attractor (mean z about 23.5)
    ens = system.ensemble(now[:2], 50, gen(9))
    assert ens.shape == (50, 2, 3) and float(ens.std(0).min()) > 0.05
    quiet = si.data.StochasticLorenz63(noise=0.0)
    paths = quiet.ensemble(now[:1], 3, gen(10))
    assert torch.equal(paths[0], paths[1])  # no noise: one path
    with pytest.raises(ValueError, match="lag and dt must be positive"):
        si.data.StochasticLorenz63(lag=0.0)


class LinearAllenCahn(si.data.StochasticAllenCahn):
    """The Allen-Cahn system without its cubic force: a Gaussian (OU) system per mode."""

    def nonlinear(self, u):
        return torch.zeros_like(u)


def test_allen_cahn_steps_are_exact_for_the_linear_part_at_any_dt():
    """Without the cubic force each mode of v = W^{1/2} u is an OU process: after tau its
    coefficient is N(e^{lambda tau} c0, T (e^{2 lambda tau} - 1) / lambda) whatever dt."""
    tau = 0.05
    for dt in (tau, tau / 10):
        system = LinearAllenCahn(d=16, lag=tau, dt=dt, temperature=0.5)
        u0 = torch.linspace(-1, 1, 16, dtype=D)[None]
        u = system.advance(u0.expand(20_000, -1), generator=gen(11))
        for k in (3, 10):
            lam, mode = system.eigenvalues[k], system.modes[:, k]
            mean = torch.exp(lam * tau) * ((u0 * system.root_w) @ mode)[0]
            var = 0.5 * torch.expm1(2 * lam * tau) / lam
            c = (u * system.root_w) @ mode
            assert abs(float(c.mean() - mean)) < 4.5 * math.sqrt(var / 20_000)
            assert abs(float(c.var() / var) - 1) < 4.5 * math.sqrt(2 / 20_000)


def test_allen_cahn_drift_and_lorenz96_field():
    ac = si.data.StochasticAllenCahn(d=8, temperature=0.0)
    u = torch.randn(3, 8, generator=gen(12), dtype=D)
    h = 1 / 7
    lap = torch.empty_like(u)
    lap[:, 1:-1] = (u[:, 2:] - 2 * u[:, 1:-1] + u[:, :-2]) / h**2
    lap[:, 0] = 2 * (u[:, 1] - u[:, 0]) / h**2  # ghost node u_{-1} = u_1 (free end)
    lap[:, -1] = 2 * (u[:, -2] - u[:, -1]) / h**2
    assert torch.allclose(ac.drift(u), lap + 2 * (u - u**3), atol=1e-8)
    step = ac.advance(u, time=1e-7)  # T = 0: a deterministic exponential step
    assert torch.allclose((step - u) / 1e-7, ac.drift(u), rtol=1e-3, atol=1e-3)
    l96 = si.data.TwoScaleLorenz96(K=4, J=3)
    x = torch.randn(2, 4 + 12, generator=gen(13), dtype=D)
    X, Y = x[:, :4], x[:, 4:]
    f = l96.drift(x)
    k = 1  # dX_1 = -X_0 (X_3 - X_2) - X_1 + F - (h c / b) sum_j Y_{j,1}
    want = -X[:, 0] * (X[:, 3] - X[:, 2]) - X[:, 1] + 20.0 - Y[:, 3:6].sum(1)
    assert torch.allclose(f[:, k], want)
    j = 4  # dY_4 = -c b Y_5 (Y_6 - Y_3) - c Y_4 + (h c / b) X_1 (Y_4 belongs to X_1)
    want_y = -100 * Y[:, 5] * (Y[:, 6] - Y[:, 3]) - 10 * Y[:, 4] + X[:, 1]
    assert torch.allclose(f[:, 4 + j], want_y)
    assert l96.dim == 16


SCALE = torch.tensor([0.5, 2.0], dtype=D)


def exact_increment_drift(t, x, cond):
    r"""The increment form: x_t = beta u + sigma W_t from 0, u = (x1 - x0) / c ~ N(mu_u, v_u),
    mu_u = (m - 1) x0 / c, v_u = v / c^2: b_F = beta' mu_u + k(t) (x - beta mu_u), k as in
    :func:`exact_drift` with v_u."""
    t = t.to(D)[:, None]
    mu_u, v_u = (M - 1) * cond / SCALE, V / SCALE**2
    k = (2 * t * t * v_u - EPS**2 * (1 - t)) / (t**3 * v_u + EPS**2 * (1 - t) ** 2)
    return 2 * t * mu_u + k * (x - t * t * mu_u)


@pytest.mark.parametrize("diffusion", [None, "follmer"], ids=["sigma", "follmer"])
def test_the_increment_form_with_its_exact_drift_forecasts_the_ou_law(diffusion):
    model = ForecastModel(interpolant(), exact_increment_drift, Increment(None, scale=SCALE))
    x0 = torch.tensor([[1.5, -2.0]], dtype=D)
    x = model.sample(20_000, steps=400, cond=x0, diffusion=diffusion, generator=gen(6))
    assert_forecast(x, x0[0])


def test_a_trained_increment_drift_forecasts_the_ou_law_and_saves(tmp_path):
    x_now, x_next = ou_pairs(20_000)
    scale = (x_next - x_now).std(0)
    model = si.fit(x_next, base=Increment(x_now, scale=scale), interpolant=interpolant(),
                   fields=("drift",), steps=1500, batch_size=512, lr=2e-3, seed=0,
                   progress=False, net_options={"width": 64, "depth": 2})  # fmt: skip
    assert isinstance(model, ForecastModel)
    for row in torch.tensor([[1.0, -1.0], [-1.5, 1.5]]):
        x = model.sample(4000, cond=row[None], diffusion="follmer", generator=gen(4)).double()
        sd = torch.sqrt(V)
        assert torch.all((x.mean(0) - M * row.double()).abs() < 0.1 * sd + 0.02), x.mean(0)
        assert torch.all((x.var(0) / V - 1).abs() < 0.2), x.var(0) / V
    model.save(tmp_path / "increment.safetensors")
    loaded = si.load(tmp_path / "increment.safetensors")
    assert isinstance(loaded.coupling, Increment)
    torch.testing.assert_close(loaded.coupling.scale, scale.double())
    a = model.rollout(x_now[:2], lags=2, members=3, steps=5, generator=gen(7))
    assert torch.equal(a, loaded.rollout(x_now[:2], lags=2, members=3, steps=5, generator=gen(7)))


def test_increment_checks_its_scale():
    with pytest.raises(ValueError, match="scale must be positive"):
        Increment(None, scale=torch.tensor([1.0, 0.0]))
    x = torch.zeros(10, 2)
    with pytest.raises(ValueError, match="scale has shape"):
        si.fit(x, base=Increment(x, scale=torch.ones(3)), fields=("drift",), steps=1,
               interpolant=interpolant(), progress=False)  # fmt: skip


def test_navier_stokes_linear_part_and_advection_on_closed_forms():
    """A single Fourier mode is steady for the advection and decays as exp(-(nu |k|^2 + alpha)
    t) at any dt; the advection of psi = sin x sin y + cos 2x is the analytic -u . grad omega."""
    ns = si.data.StochasticNavierStokes(size=16, noise=0.0, dt=0.5, viscosity=0.01, damping=0.1)
    grid = torch.arange(16, dtype=D) * 2 * math.pi / 16
    y, x = torch.meshgrid(grid, grid, indexing="ij")
    mode = torch.cos(2 * x + y)
    out = ns.advance(mode.reshape(1, -1), 3.0)
    torch.testing.assert_close(out, mode.reshape(1, -1) * math.exp(-(0.01 * 5 + 0.1) * 3.0))
    omega = 2 * torch.sin(x) * torch.sin(y) + 4 * torch.cos(2 * x)
    u, v = torch.sin(x) * torch.cos(y), -(torch.cos(x) * torch.sin(y) - 2 * torch.sin(2 * x))
    w_x, w_y = (
        2 * torch.cos(x) * torch.sin(y) - 8 * torch.sin(2 * x),
        2 * torch.sin(x) * torch.cos(y),
    )
    c = torch.fft.rfft2(omega[None], norm="forward")
    got = torch.fft.irfft2(ns.advection(c), s=(16, 16), norm="forward")[0]
    torch.testing.assert_close(got, -(u * w_x + v * w_y))


class LinearNavierStokes(si.data.StochasticNavierStokes):
    def advection(self, c):
        return torch.zeros_like(c)


def test_navier_stokes_noise_gives_the_stationary_variance_of_each_forced_mode():
    """Without advection every forced mode is an OU process with stationary E|c_k|^2 = eps^2 /
    (2 lambda_k): the grid variance is their sum over the 12 modes with 1 <= |k| <= 2."""
    ns = LinearNavierStokes(size=8, noise=0.7, dt=1.0, viscosity=0.05, damping=0.1)
    x = ns.advance(torch.zeros(4000, 64, dtype=D), 60.0, gen(8))
    want = 0.7**2 / 2 * sum(4 / (0.05 * k2 + 0.1) for k2 in (1, 2, 4))
    var = x.var(0)  # per grid point, one law at every point (homogeneous)
    assert abs(float(var.mean()) / want - 1) < 0.03, (float(var.mean()), want)
    assert torch.allclose(x.mean(0), torch.zeros(64, dtype=D), atol=4 * math.sqrt(want / 4000))


def test_navier_stokes_is_a_registered_system_with_pairs_and_ensembles():
    from interpolants.data.dynamics import SYSTEMS

    ns = SYSTEMS["navier_stokes"](size=8, noise=0.3, lag=0.2, dt=0.1)
    x_now, x_next = ns.pairs(12, gen(9), chains=4)
    assert x_now.shape == x_next.shape == (12, 64) and torch.isfinite(x_next).all()
    assert torch.equal(x_now[4:8], x_next[:4])  # consecutive states of each chain
    assert ns.field(x_now).shape == (12, 8, 8)
    assert ns.ensemble(x_now[:2], 3, gen(10)).shape == (3, 2, 64)
    with pytest.raises(ValueError, match="size must be at least 4"):
        SYSTEMS["navier_stokes"](size=2)
    with pytest.raises(ValueError, match="cannot both be 0"):
        SYSTEMS["navier_stokes"](viscosity=0.0, damping=0.0)


def test_a_graded_grid_cuts_the_few_step_error_of_the_follmer_sde():
    """10 Euler-Maruyama steps of the exact OU drift with the Foellmer diffusion: the uniform
    grid's bias (variance about 9 % low, mean 0.17 sd off) shrinks on the grid (j / 10)^0.5,
    finer near t = 1 where the drift contracts hardest (variance within 3 %, mean 0.13 sd)."""
    model, x0 = exact_model(), torch.tensor([[1.5, -2.0]], dtype=D)
    sd = torch.sqrt(V)

    def errors(times):
        x = model.sample(40_000, steps=10, cond=x0, diffusion="follmer", generator=gen(11),
                         times=times)  # fmt: skip
        return float(((x.mean(0) - M * x0[0]) / sd).abs().max()), (x.var(0) / V - 1).abs()

    mean_u, var_u = errors(None)
    mean_g, var_g = errors([(j / 10) ** 0.5 for j in range(11)])
    assert var_u[0] > 0.06 and var_g.max() < 0.03, (var_u, var_g)
    assert mean_g < mean_u - 0.02, (mean_g, mean_u)


def test_sde_times_replace_the_uniform_grid_and_are_checked():
    x = torch.ones(3, 1, dtype=D)
    sol = si.integrate.sdeint(lambda t, y: -y, 0.0, x, times=[0.0, 0.5, 0.75, 1.0],
                              method="euler")  # fmt: skip
    assert sol.steps == 3 and sol.nfe == 3
    torch.testing.assert_close(sol.x, x * 0.5 * 0.75 * 0.75)
    back = si.integrate.sdeint(lambda t, y: y, 0.0, x, 1.0, 0.0, times=[1.0, 0.2, 0.0],
                               method="euler")  # fmt: skip
    torch.testing.assert_close(back.x, x * (1 - 0.8) * (1 - 0.2))
    for bad, message in (([0.0, 0.5], "must run from 0 to 1"), ([0.0, 0.6, 0.4, 1.0],
                         "strictly increasing"), ([0.0], "must run from 0 to 1")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            exact_model().sample(4, cond=torch.zeros(1, 2, dtype=D), times=bad)
