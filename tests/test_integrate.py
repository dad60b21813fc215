import math

import numpy as np
import pytest
import torch

from interpolants import integrate as ig

D = torch.float64


def field(t, x):
    """dx/dt = x cos(t) + sin(2 t) x^2 / 10: smooth, non-autonomous, nonlinear."""
    return x * torch.cos(t)[:, None] + 0.1 * torch.sin(2 * t)[:, None] * x**2


def reference(x0, t1):
    sol = ig.odeint(field, x0, 0.0, t1, solver="dopri5", atol=1e-13, rtol=1e-13)
    return sol.x


def test_exact_solution_problem_used_for_orders():
    # x' = x cos t has x(t) = x0 exp(sin t): the reference solver reproduces it
    x0 = torch.tensor([[0.5], [1.0]], dtype=D)
    sol = ig.odeint(
        lambda t, x: x * torch.cos(t)[:, None],
        x0,
        0.0,
        2.0,
        solver="dopri5",
        atol=1e-12,
        rtol=1e-12,
    )
    torch.testing.assert_close(sol.x, x0 * math.exp(math.sin(2.0)), atol=1e-10, rtol=0)


@pytest.mark.parametrize("solver,order", [("euler", 1), ("heun", 2), ("rk4", 4)])
@pytest.mark.parametrize("direction", [1.0, -1.0])
def test_measured_convergence_order(solver, order, direction):
    x0 = torch.tensor([[0.5], [-0.8], [1.2]], dtype=D)
    t1 = 1.5 * direction
    exact = reference(x0, t1)
    steps = [16, 32, 64, 128] if order < 4 else [8, 16, 32, 64]
    errs = [
        float((ig.odeint(field, x0, 0.0, t1, steps=n, solver=solver).x - exact).abs().max())
        for n in steps
    ]
    slope = np.polyfit(np.log(1.5 / np.array(steps)), np.log(errs), 1)[0]
    assert abs(slope - order) < 0.15, (solver, slope, errs)
    assert ig.SOLVERS[solver].order == order


@pytest.mark.parametrize("tol", [1e-4, 1e-6, 1e-8])
def test_dopri5_meets_its_tolerance(tol):
    x0 = torch.tensor([[0.5], [-0.8], [1.2]], dtype=D)
    exact = reference(x0, 1.5)
    sol = ig.odeint(field, x0, 0.0, 1.5, solver="dopri5", atol=tol, rtol=tol)
    err = float((sol.x - exact).abs().max())
    assert err < 10 * tol * (1 + float(exact.abs().max()))
    assert sol.nfe == 2 + 6 * (sol.steps + sol.rejected)


def test_dopri5_rejects_steps_on_a_sharp_transient():
    # dx/dt = -50 (x - cos t): fast relaxation, then slow following
    sol = ig.odeint(
        lambda t, x: -50 * (x - torch.cos(t)[:, None]),
        torch.full((2, 1), 5.0, dtype=D),
        0.0,
        1.0,
        solver="dopri5",
        atol=1e-6,
        rtol=1e-6,
    )
    exact = (50 * (50 * math.cos(1) + math.sin(1)) / 2501) + (5 - 2500 / 2501) * math.exp(-50)
    assert abs(float(sol.x[0, 0]) - exact) < 1e-4
    assert sol.rejected > 0


def test_nfe_counts_and_backward_round_trip():
    x0 = torch.randn(5, 3, dtype=D)
    sol = ig.odeint(field, x0, 0.0, 1.0, steps=20, solver="rk4")
    assert sol.nfe == 80 and sol.steps == 20
    back = ig.odeint(field, sol.x, 1.0, 0.0, steps=20, solver="rk4")
    torch.testing.assert_close(back.x, x0, atol=1e-6, rtol=0)


def test_unknown_solver_and_bad_steps():
    with pytest.raises(ValueError, match="solver"):
        ig.odeint(field, torch.zeros(1, 1), solver="rk45")
    with pytest.raises(ValueError, match="steps"):
        ig.odeint(field, torch.zeros(1, 1), steps=0)
    with pytest.raises(ValueError, match="method"):
        ig.sdeint(field, 1.0, torch.zeros(1, 1), method="milstein")
    with pytest.raises(ValueError, match="diffusion"):
        ig.sdeint(field, -1.0, torch.zeros(1, 1))


@pytest.mark.parametrize("method", ["euler", "heun"])
def test_sde_ornstein_uhlenbeck_keeps_its_law(method):
    # dX = -X dt + sqrt(2) dW keeps N(0, 1); the time-varying eps(t) = t version keeps N(0, 1) too
    # when the drift is -eps(t) X.
    g = torch.Generator().manual_seed(0)
    n = 40_000
    x0 = torch.randn(n, 1, dtype=D, generator=g)
    sol = ig.sdeint(
        lambda t, x: -t[:, None] * x,
        lambda t: t,
        x0,
        0.0,
        2.0,
        steps=200,
        method=method,
        generator=g,
    )
    x = sol.x[:, 0]
    assert abs(float(x.mean())) < 4 / math.sqrt(n)
    assert abs(float(x.var()) - 1) < 4 * math.sqrt(2 / n) + 0.01  # + O(h) bias of the scheme
    assert sol.nfe == (200 if method == "euler" else 399)


def test_sde_schemes_have_their_discrete_means():
    # dX = -X dt + dW from x0 = 2: the scheme means are exactly x0 (1-h)^N (Euler-Maruyama) and
    # x0 (1-h+h^2/2)^(N-1) (1-h) (stochastic Heun, whose last step is Euler-Maruyama); the
    # sample means must agree with those within error bars, and Heun's is closer to x0 e^-1.
    n, steps, h, x0 = 20_000, 10, 0.1, 2.0
    want = {
        "euler": x0 * (1 - h) ** steps,
        "heun": x0 * (1 - h + h * h / 2) ** (steps - 1) * (1 - h),
    }
    assert abs(want["heun"] - x0 * math.exp(-1)) < abs(want["euler"] - x0 * math.exp(-1)) / 5
    g = torch.Generator().manual_seed(1)
    for method, mean in want.items():
        start = torch.full((n, 1), x0, dtype=D)
        x = ig.sdeint(lambda t, x: -x, 0.5, start, steps=steps, method=method, generator=g).x
        assert abs(float(x.mean()) - mean) < 4 * float(x.std()) / math.sqrt(n)


def test_dopri5_backward_and_wrong_field_shape():
    x0 = torch.tensor([[0.5], [-0.8]], dtype=D)
    fwd = ig.odeint(field, x0, 0.0, 1.0, solver="dopri5", atol=1e-9, rtol=1e-9)
    back = ig.odeint(field, fwd.x, 1.0, 0.0, solver="dopri5", atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(back.x, x0, atol=1e-7, rtol=0)
    for solver in ("heun", "dopri5"):
        with pytest.raises(ValueError, match="field returned shape"):
            ig.odeint(lambda t, x: x[:, :1], torch.zeros(3, 2), solver=solver)


def test_divergence_under_inference_mode():
    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 4).double()
    x, t = torch.randn(3, 4, dtype=D), torch.zeros(3, dtype=D)
    want = torch.trace(lin.weight).expand(3)
    with torch.inference_mode():
        _, div = ig.divergence(lambda t, x: lin(x), t, x)
    torch.testing.assert_close(div, want)


def mlp(d):
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(d + 1, 32), torch.nn.Tanh(), torch.nn.Linear(32, d)
    ).double()
    return lambda t, x: net(torch.cat([x, t[:, None]], 1))


def test_exact_divergence_is_the_jacobian_trace():
    f = mlp(4)
    x, t = torch.randn(6, 4, dtype=D), torch.rand(6, dtype=D)
    _, div = ig.divergence(f, t, x, "exact", chunk=3)
    for i in range(6):
        ti = t[i : i + 1]
        jac = torch.autograd.functional.jacobian(lambda y, ti=ti: f(ti, y[None])[0], x[i])
        torch.testing.assert_close(div[i], torch.trace(jac))


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_is_unbiased(probe):
    f = mlp(5)
    x, t = torch.randn(1, 5, dtype=D).expand(20_000, 5), torch.full((20_000,), 0.3, dtype=D)
    _, exact = ig.divergence(f, t, x, "exact")
    noise = ig.hutchinson_probe(x, probe, torch.Generator().manual_seed(0))
    _, est = ig.divergence(f, t, x, "hutchinson", noise=noise)
    z = abs(float(est.mean()) - float(exact[0])) / float(est.std() / math.sqrt(len(est)))
    assert z < 4
    assert float(est.std()) > 0  # a real estimator, not the exact trace in disguise


def test_likelihood_of_a_linear_flow():
    # dx/dt = A x: X_1 = exp(A) X_0, int div = tr A
    A = torch.tensor([[0.3, -1.0], [0.7, -0.2]], dtype=D)
    x = torch.randn(10, 2, dtype=D)
    sol = ig.odeint_with_divergence(lambda t, y: y @ A.T, x, 0.0, 1.0, steps=50, solver="rk4")
    torch.testing.assert_close(sol.x, x @ torch.linalg.matrix_exp(A).T, atol=1e-7, rtol=0)
    torch.testing.assert_close(
        sol.divergence_integral, torch.full((10,), float(torch.trace(A)), dtype=D)
    )
