"""NETS (arXiv:2410.02711): b = 0 is AIS, the exact drift gives equal weights, training helps."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch
from torch import Tensor, nn

import interpolants as si
import interpolants.samplers.nets.training as nets_training
from interpolants import checkpoints
from interpolants.app.sample_target import format_metrics, run_sample_target
from interpolants.distributions import DiagonalNormal
from interpolants.divergence import jacobian
from interpolants.nn import BlockDrift, LatticeDrift, build_drift, lattice_coloring
from interpolants.samplers import NETSModel, run_ais, run_nets, run_smc, sample
from interpolants.samplers.ais import AnnealedDensity
from interpolants.samplers.base import CountedDensity, make_generator
from interpolants.samplers.nets import NETSPath, schedule, schedule_time, simulate, time_grid
from interpolants.targets import GaussianMixture, Target
from interpolants.targets.funnel import Funnel
from interpolants.targets.many_well import ManyWell

torch.set_num_threads(1)


def _mixture() -> GaussianMixture:
    """Two modes in 2D, normalised (log Z = 0); the base N(0, 2^2 I) covers both."""
    means = torch.tensor([[-2.0, 0.0], [2.0, 1.0]])
    return GaussianMixture(means, torch.tensor([0.6, 0.6]), base_scale=2.0, name="two")


MU, A, C = torch.tensor([3.0, -1.0], dtype=torch.float64), 2.0, 0.5  # the Gaussian path's


def _gaussian_path() -> tuple[Target, DiagonalNormal]:
    """The Gaussian path of the exact-drift tests, in float64: target exp(-|x - MU|^2 /
    (2 C^2)) with its exact log Z, base N(0, A^2 I)."""
    log_Z = math.log(2 * math.pi * C * C)
    target = Target(lambda x: -0.5 * (x - MU).square().sum(1) / C**2, dim=2, log_Z=log_Z)
    return target, DiagonalNormal(torch.zeros(2, dtype=torch.float64), A)


# --- b = 0 is annealed importance sampling --------------------------------------------------


def test_b_zero_without_moves_equals_ais_without_moves():
    """Same seed, no moves: both weigh the same base draws by log rho* - log p_0."""
    target = _mixture()
    nets = run_nets(target, n=300, seed=3, drift=None, eps=0.0, steps=7, reverse=None)
    ais = run_ais(target, n=300, seed=3, steps=7, moves=0, reverse=None)
    torch.testing.assert_close(nets.samples, ais.samples)
    torch.testing.assert_close(nets.log_weights, ais.log_weights, rtol=0, atol=1e-5)
    assert nets.log_Z == pytest.approx(ais.log_Z, abs=1e-5)


@pytest.mark.parametrize("mass_matrix", ["diag", "identity"])
def test_b_zero_with_adapted_moves_is_the_ais_run(mass_matrix):
    """eps="adapt" makes the moves of run_ais (step found at t = 0, retuned after every move,
    the same preconditioner): with b = 0 and beta = t the two runs draw and weigh alike."""
    target = si.targets.get("funnel")
    ais = run_ais(target, n=200, seed=3, steps=20, mass_matrix=mass_matrix, reverse=None)
    nets = run_nets(target, n=200, seed=3, steps=20, drift=None, eps="adapt",
                    mass_matrix=mass_matrix, schedule="linear", reverse=None)  # fmt: skip
    torch.testing.assert_close(nets.samples, ais.samples)
    torch.testing.assert_close(nets.log_weights, ais.log_weights, rtol=0, atol=1e-5)
    assert nets.evaluations == ais.evaluations
    assert nets.acceptance_rate == pytest.approx(ais.acceptance_rate)
    steps = nets.info["step_size_per_move"]
    torch.testing.assert_close(steps, ais.info["step_size_per_move"].double())
    assert float(steps.max() / steps.min()) > 1.5  # followed the acceptance (1.9 diag)


def test_b_zero_weights_are_the_ais_sum_along_the_path():
    """log w = sum_k (beta_{k+1} - beta_k) (log rho* - log p_0)(x_k) over the recorded walkers
    (Neal's AIS weight), with MALA moves in between."""
    target = _mixture()
    path = NETSPath(AnnealedDensity(CountedDensity(target), target.base), "power", 2.0)
    gen = make_generator(0)
    grid = time_grid(12)
    traj = simulate(path, None, target.base.sample(64, gen), grid, lambda t: 0.5, gen, record=True)
    beta, _ = schedule(grid, "power", 2.0)
    expected = sum(
        (beta[k + 1] - beta[k]) * traj.records[k][2].double() for k in range(len(grid) - 1)
    )
    # the engine subtracts in float64, the records hold the float32 difference
    torch.testing.assert_close(traj.log_w, expected, rtol=1e-6, atol=1e-5)
    assert traj.acceptance and all(0 < a <= 1 for _, a in traj.acceptance)


@pytest.mark.parametrize("kind", ["linear", "power", "geometric", "reverse_power"])
def test_schedules_run_from_0_to_1_with_their_derivative(kind):
    t = torch.linspace(0.01, 0.99, 50, dtype=torch.float64)
    beta, dbeta = schedule(t, kind, 2.5)
    h = 1e-6
    numeric = (schedule(t + h, kind, 2.5)[0] - schedule(t - h, kind, 2.5)[0]) / (2 * h)
    torch.testing.assert_close(dbeta, numeric, rtol=1e-6, atol=1e-8)
    ends = schedule(torch.tensor([0.0, 1.0], dtype=torch.float64), kind, 2.5)[0]
    torch.testing.assert_close(ends, torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert bool((beta.diff() > 0).all())


def test_b_zero_estimates_log_Z_like_ais():
    """With moves, b = 0 agrees with the library's AIS and with the truth within 4 se."""
    target = _mixture()
    nets = run_nets(target, n=1000, seed=1, drift=None, eps=3.0, steps=30)
    ais = run_ais(target, n=1000, seed=1, steps=30)
    se = math.hypot(nets.log_Z_stderr, ais.log_Z_stderr)
    assert abs(nets.log_Z - ais.log_Z) < 4 * se
    assert abs(nets.log_Z) < 4 * nets.log_Z_stderr
    # the start, then one MALA proposal per step; the bias check's are counted on top
    assert nets.info["sampling_evaluations"] == 1000 * 31
    assert nets.evaluations == 1000 * 31 + nets.info["reverse_evaluations"]


def test_resampling_every_step_keeps_Z_hat_unbiased():
    """SMC's product of mean incremental weights: with r = 1 the walkers are resampled at every
    step (no moves, so the copies stay copies); the mean of Z_hat / Z over 400 seeds of 20
    walkers is 1 within 4 standard errors (a log Z summed wrongly, e.g. log sum instead of log
    mean, is off by a factor 20 per resampling)."""
    mu, c = 1.5, 0.5
    target = Target(
        lambda x: -0.5 * (x - mu).square().sum(1) / c**2,
        dim=1,
        log_Z=math.log(2 * math.pi) / 2 + math.log(c),
    )
    base = DiagonalNormal(torch.zeros(1), 1.5)
    ratios, resamplings = [], 0
    for seed in range(400):
        r = run_nets(target, n=20, seed=seed, drift=None, eps=0.0, steps=4, base=base,
                     resample_threshold=1.0, batches=1, reverse=None)  # fmt: skip
        ratios.append(math.exp(r.log_Z - target.log_Z))
        resamplings += r.info["resampling_steps"]
    ratios = torch.tensor(ratios)
    se = float(ratios.std()) / math.sqrt(len(ratios))
    assert abs(float(ratios.mean()) - 1) < 4 * se, (float(ratios.mean()), se)
    assert resamplings >= 400 * 3  # every step but the ones with equal weights
    assert r.log_Z_stderr is None  # one batch: no error from the spread of batches


def test_resampling_moves_mass_between_modes_the_walkers_do_not_cross():
    """Modes at -3 and 3 with weights 0.85 / 0.15; short MALA steps never cross between them,
    so without resampling the walkers split as the path's early stages left them and only the
    weights carry the 0.85; with resampling (10 batches) the walkers themselves follow it, ESS/N
    rises, and log Z and the mode weight stay within 4 standard errors of the truth."""
    target = GaussianMixture(torch.tensor([[-3.0], [3.0]]), torch.tensor([0.5, 0.5]),
                             torch.tensor([0.85, 0.15]), base_scale=3.0, name="asym")  # fmt: skip
    options = {"n": 2000, "seed": 0, "drift": None, "eps": 0.05, "steps": 40}
    plain = run_nets(target, **options)
    smc = run_nets(target, **options, resample_threshold=0.9)
    assert smc.info["batches"] == 10 and smc.info["resampling_steps"] >= 30
    assert smc.groups is not None and smc.groups.max() == 9
    assert smc.ess > plain.ess + 0.5, (smc.ess, plain.ess)  # measured 0.96 against 0.19
    assert abs(smc.log_Z) < 4 * smc.log_Z_stderr, (smc.log_Z, smc.log_Z_stderr)
    left = (smc.samples[:, 0] < 0).double()
    w = torch.softmax(smc.log_weights.double(), 0)
    weight = float((w * left).sum())
    assert abs(weight - 0.85) < 4 * math.sqrt(0.85 * 0.15 / (smc.ess * 2000)), weight
    assert float(left.mean()) > 0.75  # the walkers themselves (0.79), not only their weights
    assert float((plain.samples[:, 0] < 0).double().mean()) < 0.6  # 0.50


# --- the exact drift: all weights equal -----------------------------------------------------


class GaussianDrift(nn.Module):
    r"""The velocity of rho_t = N(m_t, s_t^2 I) on U_t = (1 - t) |x|^2 / (2 a^2)
    + t |x - mu|^2 / (2 c^2): precision p_t = (1 - t) / a^2 + t / c^2, m_t = t mu / (c^2 p_t),
    b_t(x) = m_t' + (s_t' / s_t)(x - m_t) with m_t' = mu / (a^2 c^2 p_t^2) and
    s_t' / s_t = -(1 / c^2 - 1 / a^2) / (2 p_t)."""

    def __init__(self, mu: Tensor, a: float, c: float):
        super().__init__()
        self.mu, self.a2, self.c2 = mu, a * a, c * c

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        t = t.to(x.dtype).reshape(-1, 1)
        p = (1 - t) / self.a2 + t / self.c2
        m = t * self.mu / (self.c2 * p)
        dm = self.mu / (self.a2 * self.c2 * p**2)
        rate = -(1 / self.c2 - 1 / self.a2) / (2 * p)
        return dm + rate * (x - m)


class _LinearDrift(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2)

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        return self.lin(torch.cat([t.to(x.dtype).reshape(-1, 1), x], 1))


def test_pinn_loss_leaves_out_residuals_beyond_the_cap():
    """A walker deep in a funnel's neck (gradients ~1e18, the centred eight schools at
    log tau = -13) overflows the float32 square of its residual: the loss leaves residuals
    beyond RESIDUAL_CAP sds out (finite, the other points' loss and gradient unchanged),
    and a NaN still shows, so that the training stops on it."""
    from interpolants.samplers.nets.training import RESIDUAL_CAP, Batch, pinn_loss

    target = _mixture()
    path = NETSPath(AnnealedDensity(CountedDensity(target), target.base), "power", 2.0)
    config = {"schedule": "power", "schedule_power": 2.0, "objective": "pinn", "dim": 2}
    torch.manual_seed(0)
    model = NETSModel(_LinearDrift(), config)
    gen = make_generator(0)
    x = target.base.sample(64, gen)
    t = torch.rand(64, generator=gen)
    g0 = -x / 4
    g1 = torch.randn(64, 2, generator=gen)
    ell = torch.randn(64, generator=gen)
    batch = Batch(t, x, ell, g0, g1, torch.full((64,), 1 / 64))

    def loss_and_grad(b: Batch) -> tuple[Tensor, Tensor, list[Tensor]]:
        model.zero_grad()
        loss, scaled, _ = pinn_loss(model, path, b, True, 1, make_generator(1))
        loss.backward()
        return loss.detach(), scaled, [p.grad.clone() for p in model.parameters()]

    loss, scaled, _ = loss_and_grad(batch)
    assert bool(scaled.abs().max() < 100)  # an ordinary batch: nothing near the cap
    neck = Batch(t, x, ell, g0.clone(), g1.clone(), batch.w)
    neck.g0[5], neck.g1[5] = 8.7e17, 8.7e17  # in float32 its square would be inf
    loss_neck, scaled_neck, grads_neck = loss_and_grad(neck)
    assert bool(torch.isfinite(loss_neck)) and float(scaled_neck[5].abs()) > RESIDUAL_CAP
    keep = torch.arange(64) != 5
    torch.testing.assert_close(scaled_neck[keep], scaled[keep])
    # the loss and gradient of the other 63 points, as a sum over 64
    loss_63, _, grads_63 = loss_and_grad(batch.take(torch.nonzero(keep).flatten()))
    assert float(loss_neck) == pytest.approx(float(loss_63) * 63 / 64, rel=1e-5)
    assert float(loss) > float(loss_neck)
    for g, g63 in zip(grads_neck, grads_63, strict=True):
        torch.testing.assert_close(g, g63 * 63 / 64, rtol=1e-4, atol=1e-6)
    nan = Batch(t, x, ell, g0.clone(), g1.clone(), batch.w)
    nan.g1[7] = math.nan
    assert bool(torch.isnan(pinn_loss(model, path, nan, True, 1, make_generator(1))[0]))


@pytest.mark.parametrize("log_det", ["exact", "hutchinson"])
@pytest.mark.parametrize("eps", [0.0, 1.0])
def test_exact_drift_gives_equal_weights_and_exact_log_Z(log_det, eps):
    target, base = _gaussian_path()
    log_Z = target.log_Z
    config = {"schedule": "linear", "schedule_power": 1.0, "objective": "pinn", "dim": 2}
    model = NETSModel(GaussianDrift(MU, A, C), config)
    result = run_nets(target, n=400, seed=0, model=model, base=base, steps=200, eps=eps,
                      log_det=log_det, reverse=None)  # fmt: skip
    spread = float(result.log_weights.std())
    assert spread < 2e-3, spread
    assert result.ess > 0.9999
    assert abs(result.log_Z - log_Z) < 2e-3
    # the same walkers without the drift are AIS: unequal weights
    ais = run_nets(
        target,
        n=400,
        seed=0,
        base=base,
        steps=200,
        eps=max(eps, 0.1),
        drift=None,
        schedule="linear",
        reverse=None,
    )
    assert float(ais.log_weights.std()) > 20 * spread


class FoldingDrift(nn.Module):
    """b(x) = -4 x exp(-x^2): one Heun step of h = 1 folds the line near x = 0."""

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        return -4.0 * x * torch.exp(-x.square())


def test_a_folding_transport_step_overcounts_as_the_docstring_says():
    """Target = base = N(0, 1), one transport step T that folds: walkers with T' <= 0 get
    weight 0, and E exp(A) = int pi(T x) T'(x) 1[T' > 0] dx (quadrature) is well above
    Z = 1, the fold's image being counted twice; the run warns."""
    gauss = DiagonalNormal(torch.zeros(1, dtype=torch.float64), 1.0)
    target = Target(gauss.log_prob, dim=1, log_Z=0.0, base=gauss)
    config = {"schedule": "linear", "schedule_power": 1.0, "objective": "pinn", "dim": 1}
    model = NETSModel(FoldingDrift(), config)
    with pytest.warns(UserWarning, match="biased upwards"):
        result = run_nets(target, n=100_000, seed=0, model=model, steps=1, eps=0.0, reverse=None)
    assert result.info["non_invertible_steps"] > 10_000
    w = result.log_weights.exp()
    x = torch.linspace(-8, 8, 400_001, dtype=torch.float64)
    b = FoldingDrift()(torch.tensor(0.0), x)
    tx = x + 0.5 * (b + FoldingDrift()(torch.tensor(1.0), x + b))
    slope = torch.gradient(tx, spacing=(x,))[0].clamp(min=0)
    expected = float(torch.trapezoid(gauss.log_prob(tx[:, None]).exp() * slope, x))
    assert expected > 1.5
    assert abs(float(w.mean()) - expected) < 4 * float(w.std()) / math.sqrt(len(w))
    # refine: pilots halve the folding steps until none folds; then E exp(A) = Z = 1
    refined = run_nets(target, n=100_000, seed=0, model=model, steps=1, eps=0.0, refine=8,
                       reverse=None)  # fmt: skip
    assert refined.info["non_invertible_steps"] == 0 and refined.info["refinements"] >= 2
    assert 2 <= refined.info["grid_steps"] <= 2 ** refined.info["refinements"]
    w = refined.log_weights.exp()
    assert abs(float(w.mean()) - 1.0) < 4 * float(w.std()) / math.sqrt(len(w))
    assert refined.evaluations > result.evaluations  # the pilots are counted


class RotatedDrift(nn.Module):
    """GaussianDrift per axis (vector c) in the basis Q: b(x) = Q b~(Q^T x), a Jacobian with
    off-diagonal entries, on which Hutchinson's estimate of the divergence is noisy."""

    def __init__(self, q: Tensor, mu: Tensor, a: float, c: Tensor):
        super().__init__()
        self.q, self.inner = q, GaussianDrift(mu, a, 1.0)
        self.inner.c2 = c * c

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        return self.inner(t, x @ self.q) @ self.q.T


def test_exact_log_det_keeps_weights_equal_above_the_hutchinson_threshold():
    """d = 40 > exact_max_dim, an anisotropic Gaussian in a rotated basis with its exact drift:
    the exact log-determinant (the default up to d = 50) gives equal weights and the exact
    log Z; the Hutchinson trapezoid spreads the weights (and biased log Z by +0.10, 5 se, when
    this was written)."""
    d = 40
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    c = torch.linspace(0.3, 2.0, d, dtype=torch.float64)
    mu = torch.linspace(-1.0, 1.0, d, dtype=torch.float64)
    # the target N(q mu, q diag(c^2) q^T), unnormalised as exp(-|c^-1 q^T x - c^-1 mu|^2 / 2)
    log_Z = 0.5 * d * math.log(2 * math.pi) + float(c.log().sum())
    target = Target(lambda x: -0.5 * ((x @ q - mu) / c).square().sum(1), dim=d, log_Z=log_Z)
    base = DiagonalNormal(torch.zeros(d, dtype=torch.float64), 1.0)
    config = {"schedule": "linear", "schedule_power": 1.0, "objective": "pinn", "dim": d}
    model = NETSModel(RotatedDrift(q, mu, 1.0, c), config)
    options = {"n": 300, "seed": 0, "model": model, "base": base, "steps": 100, "eps": 0.0,
               "reverse": None}  # fmt: skip
    runs = {m: run_nets(target, log_det=m, **options) for m in ("exact", "hutchinson")}
    exact, hutch = runs["exact"], runs["hutchinson"]
    assert exact.info["log_det"] == "exact" and float(exact.log_weights.std()) < 5e-3
    assert abs(exact.log_Z - log_Z) < 5e-3
    assert float(hutch.log_weights.std()) > 20 * float(exact.log_weights.std())


# --- training ---------------------------------------------------------------------------------


def test_a_seed_reproduces_the_run_whatever_the_global_random_state():
    """The drift's initial weights come from the seed, not from torch's global stream (runs
    in a pool of processes once differed by the order of their jobs)."""
    options = {"n": 64, "seed": 5, "steps": 4, "train_steps": 4, "iterations": 2,
               "train_walkers": 8, "updates": 2}  # fmt: skip
    torch.manual_seed(0)
    first = run_nets(_mixture(), **options)
    torch.manual_seed(1)
    torch.randn(100)
    second = run_nets(_mixture(), **options)
    assert torch.equal(first.log_weights, second.log_weights)


_DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", _DEVICES)
@pytest.mark.parametrize("objective", ["pinn", "action"])
def test_device_runs_match_the_default_run(device, objective):
    """device= moves walkers, drift and base; the random numbers come from the same CPU
    generator, so the weights agree with the default run (to float32 round-off on CUDA)."""
    options = {"n": 64, "seed": 2, "steps": 4, "train_steps": 4, "iterations": 3,
               "train_walkers": 8, "updates": 2, "objective": objective}  # fmt: skip
    reference = run_nets(_mixture(), **options)
    moved = run_nets(_mixture(), device=device, **options)
    assert moved.samples.device.type == device
    if device == "cpu":
        assert torch.equal(reference.log_weights, moved.log_weights)
    else:
        torch.testing.assert_close(
            moved.log_weights.cpu(), reference.log_weights, atol=1e-3, rtol=0
        )
    again = run_nets(_mixture(), device=device, model=moved.info["model"], n=16, steps=3)
    assert math.isfinite(again.log_Z)


class _NaNDrift(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(math.nan))

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        return self.w * x


def test_a_non_finite_training_loss_stops_with_the_round_named(tmp_path):
    options = {"n": 16, "steps": 3, "train_steps": 3, "iterations": 2, "train_walkers": 8,
               "updates": 1, "net": _NaNDrift(), "log_dir": tmp_path}  # fmt: skip
    with pytest.raises(FloatingPointError, match="loss is nan in training round 1"):
        run_nets(_mixture(), **options)


def test_short_training_beats_ais_at_equal_steps():
    """A few seconds of PINN training on a 2D mixture lift ESS/N well above b = 0 with the
    same steps and eps_t; log Z stays within 4 standard errors of the truth."""
    target = _mixture()
    trained = run_nets(
        target,
        n=1000,
        seed=0,
        steps=20,
        train_steps=20,
        iterations=12,
        train_walkers=64,
        updates=8,
        batch_size=256,
    )
    model = trained.info["model"]
    ais = run_nets(
        target,
        n=1000,
        seed=0,
        steps=20,
        drift=None,
        eps=model.eps,
        schedule=model.config["schedule"],
    )
    assert trained.ess > ais.ess + 0.2, (trained.ess, ais.ess)  # measured 0.95 against 0.56
    assert abs(trained.log_Z) < 4 * trained.log_Z_stderr + 1e-3
    assert trained.info["training_evaluations"] > 0
    assert trained.evaluations == (
        trained.info["training_evaluations"]
        + trained.info["sampling_evaluations"]
        + trained.info["reverse_evaluations"]
    )
    history = trained.info["history"]
    assert history and {"loss", "ess", "log_Z", "evaluations"} <= set(history[-1])


def test_action_matching_runs_and_stays_unbiased():
    target = _mixture()
    result = run_nets(
        target,
        n=500,
        seed=0,
        steps=15,
        train_steps=15,
        iterations=5,
        train_walkers=32,
        updates=4,
        objective="action",
    )
    assert math.isfinite(result.log_Z)
    assert abs(result.log_Z) < 4 * result.log_Z_stderr + 1e-3


def test_lattice_network_and_hutchinson_on_phi4():
    target = si.targets.get("phi4", L=6)  # dim 36 > 32: Hutchinson
    result = run_nets(target, n=64, seed=0, steps=5, train_steps=5, iterations=2,
                      train_walkers=8, updates=2, reverse=None)  # fmt: skip
    assert result.info["divergence"] == "hutchinson" and result.info["log_det"] == "exact"
    assert run_nets(target, n=8, steps=2, iterations=1, train_walkers=8, updates=1,
                    log_det="hutchinson", reverse=None).info["log_det"] == "hutchinson"  # fmt: skip
    assert type(result.info["model"].drift).__name__ == "LatticeDrift"
    assert result.samples.shape == (64, 36) and math.isfinite(result.log_Z)


def test_block_network_couples_no_two_blocks():
    """net="blocks": the drift's Jacobian is block diagonal (trained, not only at its zero
    initialisation), and the run trains and samples a product target."""
    target = ManyWell(n_wells=3)
    result = run_nets(target, n=64, seed=0, steps=5, train_steps=5, iterations=3,
                      train_walkers=8, updates=4, net="blocks")  # fmt: skip
    drift = result.info["model"].drift
    assert isinstance(drift, BlockDrift) and math.isfinite(result.log_Z)
    x = target.base.sample(4, make_generator(1))
    jac = torch.autograd.functional.jacobian(lambda y: drift(torch.tensor(0.5), y).sum(0), x)
    jac = jac.abs().sum(1)  # (6, 6): |d b_i / d x_j| summed over walkers
    mask = torch.block_diag(*[torch.ones(2, 2)] * 3).bool()
    assert float(jac[mask].min()) > 0 and float(jac[~mask].max()) == 0
    # the Jacobian from 2 VJPs (block rows) is the full one
    fast = jacobian(result.info["model"], torch.tensor(0.5), x)[1]
    full = torch.stack(
        [
            torch.autograd.functional.jacobian(lambda y: drift(torch.tensor(0.5), y[None])[0], xi)
            for xi in x
        ]
    )
    torch.testing.assert_close(fast, full)
    with pytest.raises(ValueError, match="block"):
        run_nets(target, n=8, steps=2, iterations=1, train_walkers=4, updates=1, net="blocks",
                 block=4)  # fmt: skip


@pytest.mark.parametrize(
    ("L", "depth", "hop", "colours"),
    [(8, 1, False, 16), (6, 1, False, 9), (8, 2, True, 64), (12, 2, False, 36), (12, 1, True, 36)],
)
def test_lattice_jacobian_from_one_vjp_per_colour(L, depth, hop, colours):
    """The conv drift is local (grad b vanishes beyond R = depth + hop; without the hop
    channel it vanishes nowhere within), and the Jacobian from one VJP per colour equals the
    full one."""
    torch.manual_seed(0)
    drift = LatticeDrift(L, scale=0.7, width=6, depth=depth, hop=hop)
    torch.nn.init.normal_(drift.out.weight)  # the zero last layer would make J = 0
    model = NETSModel(drift, {"objective": "pinn"})
    colour, pattern = model.jacobian_sparsity()
    assert int(colour.max()) + 1 == colours
    same = (colour[:, None] == colour[None]) & ~torch.eye(L * L, dtype=torch.bool)
    assert not (pattern.double() @ pattern.double())[same].any()  # no shared column
    x = torch.randn(3, L * L, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    drift.double()
    t = torch.tensor(0.3, dtype=torch.float64)
    full = torch.stack(
        [torch.autograd.functional.jacobian(lambda y: drift(t, y[None])[0], xi) for xi in x]
    )
    support = full.abs().sum(0) > 0
    assert not support[~pattern].any()
    if not hop:  # the hop channel's cross leaves the corners of the square at 0
        assert torch.equal(support, pattern)
    torch.testing.assert_close(jacobian(model, t, x)[1], full)
    with pytest.raises(ValueError, match="radius"):
        lattice_coloring(L, -1)


def test_default_network_follows_the_target_structure():
    """net=None: blocks of the target's block_size (many_well: pairs), else the MLP; an
    explicit net or block wins."""
    scale = torch.ones(6)

    def build(target, net=None, block=None):
        return build_drift(target, net, scale, 16, 2, 0, 8.0, block)

    wells = ManyWell(n_wells=3)
    assert isinstance(build(wells), BlockDrift) and build(wells).k == 2
    assert build(wells, block=6).k == 6
    assert type(build(wells, net="mlp")).__name__ == "DriftMLP"
    assert type(build(Funnel(dim=6))).__name__ == "DriftMLP"
    assert Funnel(dim=6).block_size is None
    lattice = build_drift(si.targets.get("phi4", L=4), None, scale, 8, 2, 0, 8.0, None,
                          {"hop": False})  # fmt: skip
    assert isinstance(lattice, LatticeDrift) and lattice.radius == 2
    with pytest.raises(TypeError, match="hop"):
        build_drift(wells, "mlp", scale, 8, 2, 0, 8.0, None, {"hop": False})
    with pytest.raises(ValueError, match="net_options"):
        build_drift(wells, lattice, scale, 8, 2, 0, 8.0, None, {"hop": False})


def test_eps_sweep_and_resample():
    target = _mixture()
    r = run_nets(
        target,
        n=200,
        seed=0,
        steps=10,
        train_steps=10,
        iterations=3,
        train_walkers=16,
        updates=2,
        eps="sweep",
        eps_sweep=(0.0, 1.0),
        sweep_walkers=50,
        resample=True,
    )
    assert [s["eps_scale"] for s in r.info["eps_sweep"]] == [0.0, 1.0]
    assert r.info["eps_scale"] in (0.0, 1.0)
    assert torch.allclose(r.log_weights, torch.full_like(r.log_weights, r.log_Z))


# --- entry points, files, resume, bad input ----------------------------------------------------


def test_sample_entry_point_and_cli_files(tmp_path):
    target = _mixture()
    r = sample(
        target,
        method="nets",
        n=50,
        seed=0,
        steps=5,
        train_steps=5,
        iterations=2,
        train_walkers=8,
        updates=1,
    )
    assert r.method == "nets" and r.log_weights.shape == (50,)
    opts = {
        "steps": 5,
        "train_steps": 5,
        "iterations": 4,
        "train_walkers": 8,
        "updates": 1,
        "log_every": 2,
        "checkpoint_every": 2,
    }
    m = run_sample_target("gmm-d2-k3", "nets", n=40, out=tmp_path, options=opts, progress=False)
    assert m["status"] == "ok" and m["training_evaluations"] > 0
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [x["iteration"] for x in lines] == [2, 4]
    assert (tmp_path / "checkpoint.safetensors").exists()
    # resume to 6 rounds: two more lines, the evaluations keep counting
    opts |= {"iterations": 6, "resume": True}
    m2 = run_sample_target("gmm-d2-k3", "nets", n=40, out=tmp_path, options=opts, progress=False)
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [x["iteration"] for x in lines] == [2, 4, 6]
    assert lines[-1]["evaluations"] > lines[1]["evaluations"]
    assert m2["training_evaluations"] == lines[-1]["evaluations"]
    # the CLI's options reach the resampling (4 populations of 10)
    # ... and the self-tuned preconditioned moves
    opts |= {"resample_threshold": 0.9, "batches": 4, "eps": "adapt", "mass_matrix": "diag"}
    m3 = run_sample_target("gmm-d2-k3", "nets", n=40, out=tmp_path, options=opts, progress=False)
    assert m3["batches"] == 4 and m3["resampling_steps"] > 0
    assert m3["mass_matrix"] == "diag" and 0.3 < m3["acceptance_rate"] < 0.8


SHORT_RESUMABLE = {"n": 40, "seed": 3, "steps": 5, "train_steps": 5, "iterations": 6,
                   "train_walkers": 8, "updates": 2, "buffer": 3, "checkpoint_every": 3,
                   "log_every": 2, "features": 0}  # fmt: skip


def test_a_training_cut_short_resumes_to_the_unbroken_run(tmp_path, monkeypatch):
    """A crash after the round-3 checkpoint, then resume=True: the same drift, eps table,
    log Z and evaluations as 6 rounds without a break (the walker buffer is checkpointed)."""
    target, opts = _mixture(), SHORT_RESUMABLE
    unbroken = run_nets(target, **opts, log_dir=tmp_path / "a")
    adapt, calls = nets_training.adapt_eps, []

    def crash_in_round_5(*args):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        adapt(*args)

    monkeypatch.setattr(nets_training, "adapt_eps", crash_in_round_5)
    with pytest.raises(KeyboardInterrupt):
        run_nets(target, **opts, log_dir=tmp_path / "b")
    monkeypatch.setattr(nets_training, "adapt_eps", adapt)
    with open(tmp_path / "b" / "metrics.jsonl", "a") as f:
        f.write('{"iteration": 6, "lo')  # a line cut by the crash
    state = checkpoints.load(tmp_path / "b" / "checkpoint.safetensors")
    assert state["iteration"] == 3
    state["seconds"] = 1000.0  # training time before the crash: counted on after the resume
    checkpoints.save(tmp_path / "b" / "checkpoint.safetensors", state, kind="nets")
    with pytest.raises(ValueError, match="resume"):  # another drift: refused, log untouched
        run_nets(target, **opts | {"width": 16}, log_dir=tmp_path / "b", resume=True)
    resumed = run_nets(target, **opts, log_dir=tmp_path / "b", resume=True)
    assert resumed.log_Z == unbroken.log_Z and resumed.evaluations == unbroken.evaluations
    a, b = unbroken.info["model"].state_dict(), resumed.info["model"].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    logs = [(tmp_path / d / "metrics.jsonl").read_text().splitlines() for d in "ab"]
    rows = [[json.loads(x) for x in lines] for lines in logs]
    assert [r["iteration"] for r in rows[1]] == [2, 4, 6]
    assert [r["loss"] for r in rows[1]] == [r["loss"] for r in rows[0]]  # accumulators too
    assert (
        resumed.info["training_seconds"] >= rows[1][-1]["seconds"] >= 1000 > rows[1][0]["seconds"]
    )


def test_an_action_matching_drift_resumes_only_with_its_own_options(tmp_path):
    """objective="action" wraps the MLP in a Potential, which hands on the MLP's options:
    a resume with another feature_scale (the same weights' shapes) is refused, the same
    options resume, and a checkpoint saved without drift options still loads."""
    target = _mixture()
    opts = SHORT_RESUMABLE | {"objective": "action", "features": 4, "iterations": 3}
    first = run_nets(target, **opts, log_dir=tmp_path / "a")
    assert first.info.model.drift.config["feature_scale"] == 8.0
    with pytest.raises(ValueError, match="resume: the checkpoint"):
        run_nets(target, **opts | {"feature_scale": 2.0}, log_dir=tmp_path / "a", resume=True)
    again = run_nets(target, **opts, log_dir=tmp_path / "a", resume=True)
    assert again.log_Z == first.log_Z
    state = checkpoints.load(tmp_path / "a" / "checkpoint.safetensors")
    state["drift_config"] = None  # as saved before a Potential had a config
    checkpoints.save(tmp_path / "a" / "checkpoint.safetensors", state, kind="nets")
    assert run_nets(target, **opts, log_dir=tmp_path / "a", resume=True).log_Z == first.log_Z


def test_ctrl_c_in_training_checkpoints_the_round_and_resumes_exactly(tmp_path, monkeypatch):
    """SIGINT during round 4 (checkpoints every 3): the round ends, a checkpoint of it is
    written, the message says how to resume, and the resumed run equals the unbroken one."""
    import os
    import signal

    target, opts = _mixture(), SHORT_RESUMABLE
    unbroken = run_nets(target, **opts, log_dir=tmp_path / "a")
    adapt, calls = nets_training.adapt_eps, []

    def interrupt_in_round_4(*args):
        calls.append(1)
        if len(calls) == 4:
            os.kill(os.getpid(), signal.SIGINT)
        adapt(*args)

    monkeypatch.setattr(nets_training, "adapt_eps", interrupt_in_round_4)
    with pytest.raises(KeyboardInterrupt, match=r"round 4 of 6.*resume=True"):
        run_nets(target, **opts, log_dir=tmp_path / "b")
    monkeypatch.setattr(nets_training, "adapt_eps", adapt)
    assert checkpoints.load(tmp_path / "b" / "checkpoint.safetensors")["iteration"] == 4
    resumed = run_nets(target, **opts, log_dir=tmp_path / "b", resume=True)
    assert resumed.log_Z == unbroken.log_Z and resumed.evaluations == unbroken.evaluations


@pytest.mark.parametrize(
    "options, word",
    [
        ({"steps": 0}, "steps"),
        ({"eps": -1.0}, "eps"),
        ({"eps": "big"}, "eps"),
        ({"schedule": "cubic"}, "schedule"),
        ({"objective": "ml"}, "objective"),
        ({"divergence": "fast"}, "divergence"),
        ({"drift": None}, "eps"),  # on a grid, b = 0 needs eps
        ({"net": "conv"}, "conv"),
        ({"lr": 0}, "lr"),
        ({"resume": True}, "log_dir"),
        ({"init": torch.zeros(3, 2)}, "init"),
        ({"resample_threshold": 1.5}, "resample_threshold"),
        ({"resample_threshold": 0.5, "batches": 7}, "batches"),
        ({"mass_matrix": "dense"}, "mass_matrix"),
        ({"mass_matrix": "diag"}, "mass_matrix"),
        ({"eps": "adapt", "eps_scale": 2.0}, "eps_scale"),
    ],
)
def test_bad_input_names_the_argument(options, word):
    with pytest.raises(ValueError, match=word):
        run_nets(
            _mixture(), n=10, iterations=1, train_walkers=4, train_steps=4, updates=1,
            **{"steps": 4} | options,
        )  # fmt: skip


@pytest.mark.parametrize(
    ("options", "word"),
    [
        ({"eps": 0.3}, "eps"),
        ({"mass_matrix": "diag"}, "mass_matrix"),
        ({"refine": 2}, "refine"),
        ({"resample_threshold": 0.5}, "resample_threshold"),
        ({"smc": {"cess": 1.5}}, "cess"),
        ({"smc": {"walkers": 3}}, "walkers"),
        ({"smc": {"batches": 2}}, "batches"),
        ({"smc": {"reverse": None}}, "reverse"),
        ({"smc": [1]}, "smc"),
        ({"steps": 10, "smc": {"cess": 0.9}}, "steps=None"),
    ],
)
def test_the_smc_run_refuses_the_grid_options_by_name(options, word):
    """steps=None (the SMC run) takes its moves from smc={...}: the grid's options and
    unknown or NETS-owned SMC options are refused before any training."""
    with pytest.raises(ValueError, match=word):
        run_nets(_mixture(), n=20, iterations=1, train_walkers=4, train_steps=4, updates=1,
                 **options)  # fmt: skip


# --- steps=None: the SMC run with the drift's Heun map between its temperatures -------------


@pytest.mark.parametrize("kind", ["linear", "power", "geometric", "reverse_power"])
def test_schedule_time_inverts_the_schedule(kind):
    t = torch.linspace(0.0, 1.0, 41, dtype=torch.float64)
    beta = schedule(t, kind, 2.5)[0]
    back = torch.tensor([schedule_time(float(b), kind, 2.5) for b in beta], dtype=torch.float64)
    torch.testing.assert_close(back, t, rtol=0, atol=1e-9)


def test_without_drift_the_smc_run_is_run_smc_on_the_transport_base():
    """drift=None, steps=None: exactly SMC (seed + 1) from the target's transport base."""
    target = _mixture()
    nets = run_nets(target, n=200, seed=4, drift=None, reverse=None)
    smc = run_smc(target, n=200, seed=5, base=target.transport_base, reverse=None)
    torch.testing.assert_close(nets.samples, smc.samples)
    torch.testing.assert_close(nets.log_weights, smc.log_weights)
    assert nets.log_Z == smc.log_Z and nets.evaluations == smc.evaluations
    assert nets.info.steps is None and nets.info.annealing.levels == smc.info.levels


def test_progress_bars_name_training_and_sampling(capfd):
    """progress=True: the drift's training and the SMC run under NETS's own labels."""
    run_nets(_mixture(), n=40, seed=0, iterations=2, train_walkers=16, reverse=None,
             batches=2, progress=True)  # fmt: skip
    err = capfd.readouterr().err
    assert "nets: training" in err and "nets: sampling" in err
    run_smc(_mixture(), n=40, seed=0, batches=2, reverse=None, progress=True)
    err = capfd.readouterr().err
    assert "smc" in err and "nets" not in err


def test_the_exact_drift_keeps_the_smc_run_from_resampling():
    """With the exact drift of a Gaussian path every level's weight increment is the same
    constant for all walkers (up to the Heun error): ESS/N stays ~1, no population is
    resampled, log Z is exact; without the drift the same ladder resamples."""
    target, base = _gaussian_path()
    log_Z = target.log_Z
    config = {"schedule": "linear", "schedule_power": 1.0, "objective": "pinn", "dim": 2}
    model = NETSModel(GaussianDrift(MU, A, C), config)
    result = run_nets(target, n=1000, seed=0, model=model, base=base, reverse=None,
                      smc={"cess": 0.9})  # fmt: skip
    info = result.info.annealing
    assert info.resampling_steps == 0
    assert float(info.ess_per_level.min()) > 0.999, info.ess_per_level  # 0.9997
    assert abs(result.log_Z - log_Z) < 1e-3  # 4e-5
    assert result.ess > 0.999
    plain = run_nets(target, n=1000, seed=0, drift=None, base=base, reverse=None,
                     schedule="linear", smc={"cess": 0.9})  # fmt: skip
    assert plain.info.annealing.resampling_steps > 0  # 10
    assert float(plain.info.annealing.ess_per_level.min()) < 0.6  # 0.49
    assert abs(plain.log_Z - log_Z) < 4 * plain.log_Z_stderr


class ScaledDrift(nn.Module):
    """k times the exact drift of the Gaussian path (k = 0: no transport, k = -1: against)."""

    def __init__(self, k: float, mu: Tensor, a: float, c: float):
        super().__init__()
        self.k, self.inner = k, GaussianDrift(mu, a, c)

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        return self.k * self.inner(t, x)


@pytest.mark.parametrize("steps", [None, 40])
def test_drift_gain_says_what_the_transport_did_for_the_weights(steps):
    """info.drift_gain = sum_k log CESS_k of the reweighting alone / with the transport: the
    exact drift of a Gaussian path leaves almost nothing to lose (gain >> 1), b = 0 is the
    reweighting itself (gain 1 to rounding), the drift reversed loses more (gain < 1)."""
    target, base = _gaussian_path()
    config = {"schedule": "linear", "schedule_power": 1.0, "objective": "pinn", "dim": 2}
    run = {"steps": steps, "batches": 2, "reverse": None, "base": base}
    if steps is None:
        run["smc"] = {"cess": 0.9, "escalate": 0}
    else:
        run["eps"] = 0.5
    gains = {}
    for k in (1.0, 0.0, -1.0):
        model = NETSModel(ScaledDrift(k, MU, A, C), config)
        r = run_nets(target, n=200, seed=0, model=model, **run)
        gains[k] = r.info.drift_gain
        hurt = [w for w in r.warnings if "drift made the weights worse" in w]
        assert len(hurt) == (k == -1.0), r.warnings
        if steps is None:
            assert r.info.annealing.transport_gain == gains[k]
    assert gains[1.0] > 100, gains
    assert gains[0.0] == pytest.approx(1.0, abs=1e-9), gains
    assert gains[-1.0] < 0.5, gains
    plain = run_nets(target, n=200, seed=0, drift=None, schedule="linear", **run)
    assert plain.info.drift_gain is None
    text = format_metrics({**r.to_dict(), "target": "gauss", "method": "nets", "status": "ok"})
    assert f"drift gain = {gains[-1.0]:.3g}" in text, text
    assert "drift gain" not in format_metrics({**plain.to_dict(), "status": "ok"})


def test_a_hurting_drift_warns_with_the_other_choice_of_fourier_features():
    """The warning of a drift that made the weights worse (drift_gain < 0.5) names the other
    choice of random Fourier features: which trains the better drift depends on the target.
    The drift: an untrained MLP whose output layer is random (no training), which hurts."""
    target, base = _gaussian_path()
    run = {"steps": None, "batches": 2, "reverse": None, "smc": {"cess": 0.9, "escalate": 0},
           "base": base}  # fmt: skip
    for features, other in ((None, "without random Fourier features (features=0)"),
                            (0, "with random Fourier features (features=64)")):  # fmt: skip
        model = run_nets(target, n=200, seed=0, iterations=0, features=features, **run).info.model
        torch.manual_seed(1)
        with torch.no_grad():
            for p in model.drift.net[-1].parameters():
                p.copy_(3.0 * torch.randn_like(p))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = run_nets(target, n=200, seed=0, model=model, **run)
        assert r.info.drift_gain < 0.5, r.info.drift_gain
        hurt = [w for w in r.warnings if "drift made the weights worse" in w]
        assert len(hurt) == 1 and f"train the drift {other}" in hurt[0], r.warnings


def test_the_drift_has_fourier_features_up_to_d_32_and_none_above():
    """features=None: 64 random Fourier features of x / s up to d = 32, none above (in
    d = 50 they stalled the training); a given number is kept."""
    from interpolants.samplers.nets.config import default_features

    assert [default_features(d) for d in (1, 2, 32, 33, 50)] == [64, 64, 64, 0, 0]
    for d, given, built in ((2, None, 64), (33, None, 0), (33, 8, 8), (2, 0, 0)):
        target = Target(lambda x: -0.5 * x.square().sum(1), dim=d, log_Z=0.0,
                        base=DiagonalNormal(torch.zeros(d), 1.0))  # fmt: skip
        r = run_nets(target, n=4, seed=0, iterations=0, steps=1, eps=0.0, reverse=None,
                     features=given)  # fmt: skip
        assert r.info.model.drift.config["features"] == built, (d, given)


@pytest.mark.parametrize("objective", ["pinn", "action"])
def test_a_float64_base_trains_the_float32_drift(objective):
    """Walkers in float64 (the base's dtype) go through the float32 network and back:
    training and sampling run, samples stay float64, log Z covers log(2 pi)."""
    base = DiagonalNormal(torch.zeros(2, dtype=torch.float64), 1.0)
    target = Target(lambda x: -0.5 * ((x - 0.5) / 0.7).square().sum(1), dim=2,
                    log_Z=math.log(2 * math.pi * 0.49), base=base)  # fmt: skip
    r = run_nets(target, n=400, seed=0, iterations=4, train_walkers=16, train_steps=5,
                 updates=2, objective=objective, reverse=None)  # fmt: skip
    assert r.samples.dtype == torch.float64
    assert next(r.info.model.parameters()).dtype == torch.float32
    assert abs(r.log_Z - target.log_Z) < 3 * r.log_Z_stderr
    assert math.isfinite(r.info.drift_gain)
    # a target proportional to the base: reweighting alone loses nothing, no gain to report
    same = Target(lambda x: -0.5 * x.square().sum(1), dim=2, base=base)
    assert run_nets(same, n=20, seed=0, iterations=0, reverse=None).info.drift_gain is None


def test_trained_drift_in_the_smc_run_covers_log_Z_and_reports_both_parts():
    """A short training, then the default sampling run: log Z within 3 se (the bias
    check's bounds in info), evaluations = training + SMC run."""
    target = _mixture()
    result = run_nets(target, n=400, seed=1, iterations=10, train_walkers=32, train_steps=10,
                      updates=4, smc={"escalate": 0})  # fmt: skip
    info = result.info
    assert abs(result.log_Z - 0.0) < 3 * result.log_Z_stderr
    assert info.steps is None and info.grid_steps == round(info.annealing.levels) > 0
    assert result.evaluations == info.training_evaluations + info.sampling_evaluations
    assert info.training_evaluations > 0 and "log_Z_upper" in info
    assert info.log_Z_lower == pytest.approx(info.annealing.log_Z_lower)
    assert result.groups is not None and len(set(result.groups.tolist())) == 10
