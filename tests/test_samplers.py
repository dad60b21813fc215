"""Tests of interpolants.samplers: MALA, HMC, warm-up adaptation, AIS, SMC, diagnostics.

Stochastic checks are z-tests against each method's own standard error (log Z, moments,
mode weights). Seeds are fixed for reproducibility only: every seed in a range is used.
"""

from __future__ import annotations

import json
import math
import warnings

import pytest
import scipy.stats
import torch

from interpolants import targets
from interpolants.distributions import DiagonalNormal, MixtureOfGaussians
from interpolants.samplers import (
    METHODS,
    ConvergenceWarning,
    GaussianMetric,
    SampleResult,
    diagnostics,
    dual_averaging_init,
    dual_averaging_update,
    next_temperature,
    sample,
    systematic_resample,
    temperature_schedule,
    warmup_schedule,
)

F64 = torch.float64
SEEDS = range(4)


pytestmark = pytest.mark.usefixtures("one_thread")


# --- targets built here (the named targets live elsewhere) ----------------------------------


def gaussian_target(d: int = 4, sigma: float = 0.5, shift: float = 1.0):
    """Unnormalised N(shift, sigma^2 I): log Z = (d / 2) log(2 pi sigma^2)."""
    from interpolants.targets import Target

    def log_prob(x):
        return -0.5 * ((x - shift) / sigma).square().sum(1)

    log_z = 0.5 * d * math.log(2 * math.pi * sigma**2)
    base = DiagonalNormal(torch.zeros(d, dtype=F64), 2.0)
    return Target(log_prob, dim=d, log_Z=log_z, base=base, name="gauss")


def mixture_target(means, stds, weights, offset: float, base_scale: float):
    """A Gaussian mixture times exp(offset): log Z = offset."""
    from interpolants.targets import Target

    mix = MixtureOfGaussians(torch.tensor(means, dtype=F64), torch.tensor(stds, dtype=F64),
                          torch.tensor(weights, dtype=F64))  # fmt: skip
    d = len(means[0])
    base = DiagonalNormal(torch.zeros(d, dtype=F64), base_scale)
    return Target(lambda x: mix.log_prob(x) + offset, dim=d, log_Z=offset, base=base, name="mix")


def correlated_gaussian():
    """N(mu, C) in 4-d with correlations 0.8 / -0.5 and scales 0.5..2."""
    from interpolants.targets import Target

    mu = torch.tensor([1.0, -1.0, 0.5, 2.0], dtype=F64)
    scale = torch.tensor([1.0, 2.0, 0.5, 1.0], dtype=F64)
    corr = torch.eye(4, dtype=F64)
    corr[0, 1] = corr[1, 0] = 0.8
    corr[2, 3] = corr[3, 2] = -0.5
    cov = scale[:, None] * corr * scale[None, :]
    prec = torch.linalg.inv(cov)

    def log_prob(x):
        d = x - mu
        return -0.5 * ((d @ prec) * d).sum(1)

    base = DiagonalNormal(torch.zeros(4, dtype=F64), 1.0)
    return Target(log_prob, dim=4, base=base, name="corr4"), mu, cov


def logistic_regression(d: int = 30, n_data: int = 200, rho: float = 0.9, seed: int = 0):
    """Bayesian logistic regression, N(0, I) prior, standardised AR(1)-correlated features."""
    from interpolants.targets import Target

    g = torch.Generator().manual_seed(seed)
    idx = torch.arange(d, dtype=F64)
    chol = torch.linalg.cholesky(rho ** (idx[:, None] - idx[None, :]).abs())
    x = torch.randn(n_data, d, generator=g, dtype=F64) @ chol.T
    x = (x - x.mean(0)) / x.std(0)
    beta = 0.5 * torch.randn(d, generator=g, dtype=F64)
    y = (torch.rand(n_data, generator=g, dtype=F64) < torch.sigmoid(x @ beta)).to(F64)

    def log_prob(b):
        logits = b @ x.T
        lik = y * logits - torch.nn.functional.softplus(logits)
        return lik.sum(1) - 0.5 * b.square().sum(1)

    base = DiagonalNormal(torch.zeros(d, dtype=F64), 1.0)
    return Target(log_prob, dim=d, base=base, name="logistic")


def z_scores_over_seeds(target, method, **options):
    """z = (log Z_hat - log Z) / se for every seed, and the |z| bound at the 3-sigma level.

    AIS's se is the delta method over 1000 walkers (z ~ N(0, 1), bound 3). SMC's comes from
    R = 10 independent runs, so it has R - 1 degrees of freedom and z follows Student's t:
    the bound is the t quantile with the two-sided 3-sigma tail probability 0.0027. The
    forward estimate's own error (reverse=None; the bounds are tests/test_evidence.py's)."""
    z = []
    for seed in SEEDS:
        r = sample(target, method, seed=seed, **{"reverse": None, **options})
        z.append((r.log_Z - target.log_Z) / r.log_Z_stderr)
    batches = r.info.get("batches")
    bound = 3.0 if batches is None else float(scipy.stats.t.ppf(1 - 0.00135, batches - 1))
    return torch.tensor(z), bound


# --- AIS and SMC -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, options",
    [("ais", {"n": 1000, "steps": 50}), ("smc", {"n": 1000})],
)
def test_log_Z_of_unnormalised_gaussian(method, options):
    target = gaussian_target()
    z, bound = z_scores_over_seeds(target, method, **options)
    assert z.abs().max() < bound, z
    assert abs(z.sum() / math.sqrt(len(z))) < bound, z  # no bias shared across seeds


@pytest.mark.parametrize(
    "method, options",
    [("ais", {"n": 1000, "steps": 50}), ("smc", {"n": 1000})],
)
def test_log_Z_of_2d_mixture(method, options):
    target = mixture_target([[-2.0, 0.0], [2.0, 1.0]], [0.5, 0.8], [0.3, 0.7], 1.3, 3.0)
    z, bound = z_scores_over_seeds(target, method, **options)
    assert z.abs().max() < bound, z
    assert abs(z.sum() / math.sqrt(len(z))) < bound, z


def test_smc_recovers_unequal_mode_weights():
    target = mixture_target([[-3.0, 0.0], [3.0, 0.0]], [0.7, 0.7], [0.8, 0.2], 0.0, 4.0)
    for seed in SEEDS:
        r = sample(target, "smc", n=1000, seed=seed, reverse=None)
        mean, se = r.expectation(lambda x: (x[:, 0] < 0).to(F64))
        assert 0 < se < 0.05
        assert abs(mean - 0.8) < 3 * se, (seed, mean, se)


def test_smc_from_a_constant_base_density_matches_plain_importance_sampling():
    """particles' base, the uniform density on the torus, has log p_0 = 0 and no gradient
    graph (this crashed SMC once); at a high temperature uniform draws estimate log Z well."""
    target = targets.get("particles", N=3, kT=1.0, dtype=F64)
    smc = sample(target, "smc", n=400, seed=0, steps=20)
    x = target.base.sample(100_000, torch.Generator().manual_seed(1))
    log_Z, se = diagnostics.log_Z_from_weights(target.log_prob(x))
    assert abs(smc.log_Z - log_Z) < 4 * math.hypot(smc.log_Z_stderr, se), (smc.log_Z, log_Z)


def test_ais_and_smc_moments_and_result_fields():
    target = gaussian_target(d=3, sigma=0.7, shift=-0.5)
    for method, extra in (("ais", {}), ("smc", {"batches": 6, "moves": 2})):
        r = sample(target, method, n=600, seed=0, steps=30, kernel="hmc", **extra)
        assert r.samples.shape == (600, 3) and r.log_weights.shape == (600,)
        assert r.samples.dtype == F64
        assert 0 < r.ess <= 1
        assert abs(float(diagnostics.log_mean_exp(r.log_weights, 0)) - r.log_Z) < 1e-9
        mean, se = r.expectation(lambda x: x)
        assert torch.all((mean + 0.5).abs() < 3.5 * se), (method, mean, se)
        assert r.evaluations > 600 * 30
        json.dumps(r.to_dict())


def test_smc_fixed_schedule_and_options():
    target = gaussian_target(d=2)
    r = sample(target, "smc", n=400, seed=1, steps=20, schedule="geometric", batches=4)
    assert r.info["levels"] == 20 and r.info["batches"] == 4
    r = sample(target, "smc", n=400, seed=1, cess=0.5, batches=4, mass_matrix="dense")
    assert r.info["temperatures"][-1] == 1.0
    assert torch.all(r.info["temperatures"].diff() > 0)
    r = sample(target, "ais", n=200, seed=1, steps=10, schedule="sigmoid", base_scale=3.0,
               dtype=F64, mass_matrix="identity")  # fmt: skip
    assert r.info["levels"] == 10 and r.samples.dtype == F64


def test_register_method():
    from interpolants.samplers import METHODS, register_method

    def exact(target, n, seed, init, *, scale=1.0):
        x = scale * torch.randn(n, target.dim, generator=torch.Generator().manual_seed(seed))
        return SampleResult(samples=x, method="exact", ess=1.0)

    register_method("exact-test", exact)
    try:
        target, _, _ = correlated_gaussian()
        assert sample(target, "exact-test", n=5, scale=2.0).samples.shape == (5, 4)
        with pytest.raises(ValueError, match=r"'shift'.*options: scale"):
            sample(target, "exact-test", shift=1.0)
    finally:
        del METHODS["exact-test"]


# --- MCMC ------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["mala", "hmc"])
def test_mcmc_recovers_correlated_gaussian_moments(method):
    target, mu, cov = correlated_gaussian()
    r = sample(target, method, n=64 * 150, seed=0, chains=64, warmup=300)
    assert r.samples.shape == (64 * 150, 4) and r.log_weights is None and r.log_Z is None
    mean, se = r.expectation(lambda x: x)
    assert torch.all((mean - mu).abs() < 3.5 * se), (mean - mu) / se
    pairs = [(0, 0), (1, 1), (2, 2), (3, 3), (0, 1), (2, 3)]
    second, se2 = r.expectation(lambda x: torch.stack([(x[:, i] - mu[i]) * (x[:, j] - mu[j])
                                                       for i, j in pairs], 1))  # fmt: skip
    truth = torch.stack([cov[i, j] for i, j in pairs])
    assert torch.all((second - truth).abs() < 3.5 * se2), (second - truth) / se2
    assert r.rhat.max() < 1.05
    assert r.log_prob_trace.shape == (300 + 150, 64)
    json.dumps(r.to_dict())


@pytest.mark.parametrize("method, target_accept", [("mala", 0.574), ("hmc", 0.8)])
def test_adapted_step_size_reaches_target_acceptance(method, target_accept):
    target, _, _ = correlated_gaussian()
    r = sample(target, method, n=64 * 50, seed=0, chains=64, warmup=300, mass_matrix="diag")
    assert abs(r.acceptance_rate - target_accept) < 0.06, r.acceptance_rate
    assert abs(r.info["warmup_acceptance"][-50:].mean() - target_accept) < 0.06


def test_hmc_defaults_mix_on_correlated_30d_logistic_regression():
    target = logistic_regression()
    r = sample(target, "hmc", n=32 * 100, seed=0, chains=32, warmup=300)
    assert r.info["mass_matrix"] == "dense"
    assert r.rhat.max() < 1.05, r.rhat.max()
    assert r.iat.max() < 5, r.iat.max()


def test_mcmc_is_reproducible_and_counts_evaluations():
    target, _, _ = correlated_gaussian()
    a = sample(target, "mala", n=100, seed=3, chains=10, warmup=0, step_size=0.3)
    b = sample(target, "mala", n=100, seed=3, chains=10, warmup=0, step_size=0.3)
    c = sample(target, "mala", n=100, seed=4, chains=10, warmup=0, step_size=0.3)
    assert torch.equal(a.samples, b.samples) and not torch.equal(a.samples, c.samples)
    assert a.evaluations == 10 * (1 + 10)
    h = sample(target, "hmc", n=100, seed=3, chains=10, warmup=0, step_size=0.3, jitter=0.0)
    assert h.evaluations == 10 * (1 + 10 * 10)


def test_init_and_thin():
    target, _, _ = correlated_gaussian()
    init = torch.zeros(8, 4, dtype=F64)
    r = sample(target, "hmc", n=40, seed=0, init=init, warmup=30, thin=2)
    assert r.chain_samples.shape == (5, 8, 4) and r.info["chains"] == 8
    assert r.log_prob_trace.shape == (30 + 10, 8)


def test_non_finite_proposals_are_rejected():
    from interpolants.targets import Target

    def log_prob(x):  # N(1, 1) restricted to x_0 > 0
        lp = -0.5 * (x - 1).square().sum(1)
        return torch.where(x[:, 0] > 0, lp, torch.full_like(lp, -math.inf))

    target = Target(log_prob, dim=2, name="halfspace")
    init = torch.full((16, 2), 1.0, dtype=F64)
    for method in ("mala", "hmc"):
        r = sample(target, method, n=320, seed=0, init=init, warmup=50, step_size=2.0)
        assert torch.isfinite(r.samples).all() and (r.samples[:, 0] > 0).all()


def test_mcmc_warns_when_chains_have_not_converged():
    funnel = targets.get("funnel")
    with pytest.warns(
        ConvergenceWarning, match=r"funnel \(mala\): rank-normalised split R-hat"
    ) as record:
        r = sample(funnel, "mala", n=1000, seed=0)
    assert r.info["chains"] == 4 and r.info["draws_per_chain"] == 250  # default chains
    assert r.warnings and r.warnings[0].startswith("rank-normalised split R-hat")
    assert len(record) == len(r.warnings)
    d = json.loads(json.dumps(r.to_dict()))
    assert d["warnings"] == r.warnings and d["rank_rhat_max"] > 1.01
    assert d["ess_bulk_min"] < 400 and d["ess_tail_min"] < 400


@pytest.mark.parametrize("method", ["mala", "hmc"])
def test_mcmc_on_a_gaussian_gives_no_convergence_warning(method):
    """Defaults with n = 4000 (4 chains x 1000 draws) on a 2-d Gaussian. Measured over seeds
    0..19 and both methods (also in 5-d): no warning, max R-hat 1.0072, min bulk / tail ESS
    1860 / 1493 against the thresholds 1.01 and 400."""
    target = gaussian_target(d=2, sigma=1.0, shift=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        r = sample(target, method, n=4000, seed=0)
    assert r.warnings == [] and "warnings" not in r.to_dict()
    assert r.rank_rhat.max() < 1.01 and r.ess_bulk.min() >= 400 and r.ess_tail.min() >= 400


def test_default_chains_keep_100_draws_per_chain():
    from interpolants.samplers.api import default_chains

    for n in (100, 399, 400, 1000, 4000, 10_000, 64_000, 10**6):
        chains = default_chains(n)
        assert 1 <= chains <= 64 and math.ceil(n / chains) >= 100, (n, chains)
    assert [default_chains(n) for n in (1000, 4000, 10_000, 10**6)] == [4, 4, 10, 64]
    target, _, _ = correlated_gaussian()
    with pytest.warns(ConvergenceWarning, match="20 draws per chain < 100"):
        sample(target, "mala", n=200, seed=0, chains=10, warmup=50)


def bounded_target():
    """Beta(2, 2) x Beta(2, 2) on the unit square times e^1.5 (log Z = 1.5), -inf outside."""
    from interpolants.targets import Target

    def log_prob(x):
        inside = ((x > 0) & (x < 1)).all(1)
        y = x.clamp(1e-12, 1 - 1e-12)
        lp = (math.log(6.0) + y.log() + (1 - y).log()).sum(1) + 1.5
        return torch.where(inside, lp, torch.full_like(lp, -math.inf))

    return Target(log_prob, dim=2, log_Z=1.5, name="beta22")


@pytest.mark.parametrize(
    "method, options", [("ais", {"n": 1000, "steps": 20}), ("smc", {"n": 1000})]
)
def test_annealing_from_a_base_on_a_bounded_support(method, options):
    target = bounded_target()
    with pytest.raises(ValueError, match=r"not finite at \d+ initial walker"):
        sample(target, method, **options)  # the default base N(0, I) leaves the square
    with pytest.raises(ValueError, match=r"init: .*pass base="):
        sample(target, method, init=torch.full((4, 2), 0.5), **options)
    lo, hi = torch.zeros(2, dtype=F64), torch.ones(2, dtype=F64)
    box = torch.distributions.Independent(torch.distributions.Uniform(lo, hi), 1)
    z, bound = z_scores_over_seeds(target, method, base=box, **options)
    assert torch.all(z.abs() < max(4.0, bound)), z
    r = sample(target, method, seed=0, base=box, **options)
    assert torch.all((r.samples > 0) & (r.samples < 1))
    with pytest.raises(ValueError, match="base must be a distribution"):
        sample(target, method, base=torch.rand(10, 2), **options)


def test_malformed_init_raises_value_error_naming_init_for_every_method():
    target, _, _ = correlated_gaussian()
    bad = {
        "a string": "abc",
        "an unparsed option": "[[1,2]",
        "ragged rows": [[1.0, 2.0, 3.0, 4.0], [1.0]],
        "NaN rows": torch.tensor([[0.0] * 4, [math.nan] * 4]),
        "3-d": torch.zeros(2, 3, 4),
        "wrong width": torch.zeros(4, 3),
        "no rows": torch.zeros(0, 4),
    }
    for method in sorted(METHODS):
        for what, init in bad.items():
            with pytest.raises(ValueError, match="init") as err:
                sample(target, method, n=20, init=init)
            assert "init" in str(err.value), (method, what)
    with pytest.raises(ValueError, match=r"NaN or inf entries in 1 row\(s\), indices \[1\]"):
        sample(target, "mala", init=bad["NaN rows"])
    with pytest.warns(ConvergenceWarning):  # 10 draws per chain
        r = sample(target, "mala", n=20, seed=0, init=[[0.0, 0.0, 0.0, 0.0]] * 2, warmup=10)
    assert r.info["chains"] == 2  # a nested list is fine


# --- bad input -------------------------------------------------------------------------------


def test_bad_input_raises_value_error_naming_the_argument():
    target, _, _ = correlated_gaussian()
    with pytest.raises(ValueError, match=r"unknown method 'nuts'.*ais.*hmc.*mala.*smc"):
        sample(target, "nuts")
    with pytest.raises(ValueError, match="'warmpu'"):
        sample(target, "mala", warmpu=10)
    # a method of options (SMC) lists its config's and its run's (dtype, progress, ...)
    with pytest.raises(ValueError, match=r"'cesss'.*options: steps, .*cess, .*dtype, progress"):
        sample(target, "smc", cesss=0.9)
    with pytest.raises(ValueError, match="n must"):
        sample(target, "mala", n=0)
    with pytest.raises(ValueError, match="init must have shape"):
        sample(target, "hmc", init=torch.zeros(4, 3))
    with pytest.raises(ValueError, match="target_accept"):
        sample(target, "mala", target_accept=1.5)
    with pytest.raises(ValueError, match="mass_matrix"):
        sample(target, "mala", mass_matrix="full")
    with pytest.raises(ValueError, match="jitter"):
        sample(target, "hmc", jitter=2.0)
    with pytest.raises(ValueError, match="steps"):
        sample(target, "ais", steps=0)
    with pytest.raises(ValueError, match="batches"):
        sample(target, "smc", n=1001)
    with pytest.raises(ValueError, match="init"):
        sample(target, "ais", init=torch.zeros(4, 4))
    with pytest.raises(ValueError, match="kernel"):
        sample(target, "smc", kernel="nuts")
    with pytest.raises(ValueError, match="seed"):
        sample(target, "mala", seed=1.5)


def test_non_finite_initial_walkers_and_wrong_shapes():
    from interpolants.targets import Target

    def log_prob(x):
        return torch.where(x[:, 0] > 0, -x.square().sum(1), torch.nan)

    target = Target(log_prob, dim=2, name="positive")
    init = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [2.0, 0.0], [-3.0, 1.0]], dtype=F64)
    with pytest.raises(ValueError, match=r"positive.*indices \[1, 3\]"):
        sample(target, "mala", init=init)
    bad = Target(lambda x: x.sum(1, keepdim=True), dim=2, name="badshape")
    with pytest.raises(ValueError, match=r"badshape.*shape"):
        sample(bad, "hmc", n=10)
    with pytest.raises(ValueError, match="target"):
        sample(object(), "mala")
    # a log density autograd cannot differentiate, or not a tensor: named, for every method
    flat = Target(lambda x: torch.full((x.shape[0],), math.nan), dim=2, name="flat")
    numpy = Target(lambda x: x.sum(1).detach().numpy(), dim=2, name="numpy")
    for method in ("mala", "hmc", "ais", "smc"):
        with pytest.raises(ValueError, match="flat: log_prob is not differentiable in x"):
            sample(flat, method, n=20)
        with pytest.raises(ValueError, match="numpy: log_prob returned a ndarray, not a torch"):
            sample(numpy, method, n=20)
    with pytest.raises(ValueError, match=r"dtype must be torch\.float32 or torch\.float64"):
        sample(target, "smc", n=10, dtype="float16")


# --- building blocks -------------------------------------------------------------------------


def test_diagnostics_of_weights():
    lw = torch.zeros(100, dtype=F64)
    assert float(diagnostics.ess_of_weights(lw)) == pytest.approx(1.0)
    log_z, se = diagnostics.log_Z_from_weights(lw + 2.0)
    assert log_z == pytest.approx(2.0) and se == pytest.approx(0.0)
    lw = torch.tensor([0.0, math.log(3.0)], dtype=F64)  # w = 1, 3
    assert float(diagnostics.ess_of_weights(lw)) == pytest.approx(16 / 20)
    log_z, se = diagnostics.log_Z_from_weights(lw)
    assert log_z == pytest.approx(math.log(2.0))
    assert se == pytest.approx(math.sqrt(2.0 / 2) / 2.0)  # sd(w) / (sqrt(n) mean(w))
    mean, se = diagnostics.weighted_mean_and_stderr(torch.tensor([1.0, 2.0], dtype=F64), lw)
    assert float(mean) == pytest.approx(1.75)


def test_iat_rhat_and_mcse_of_ar1_chains():
    g = torch.Generator().manual_seed(0)
    phi, n, m = 0.8, 4000, 8
    noise = torch.randn(n, m, generator=g, dtype=F64) * math.sqrt(1 - phi**2)
    x = torch.empty(n, m, dtype=F64)
    x[0] = torch.randn(m, generator=g, dtype=F64)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + noise[t]
    tau = float(diagnostics.integrated_autocorr_time(x))
    assert tau == pytest.approx((1 + phi) / (1 - phi), rel=0.15)
    assert float(diagnostics.split_rhat(x)) < 1.01
    shifted = x + torch.arange(m, dtype=F64)
    assert float(diagnostics.split_rhat(shifted)) > 1.5
    _, se = diagnostics.mcse_mean(x)
    assert float(se) == pytest.approx(math.sqrt(tau / (n * m)), rel=0.2)


def test_warmup_schedule_matches_stan():
    def windows(num):
        stages = warmup_schedule(num)
        ends = [i + 1 for i, s in enumerate(stages) if s.window_end]
        first = next(i for i, s in enumerate(stages) if s.slow)
        return first, ends, sum(1 for s in stages[ends[-1] :] if not s.slow)

    assert windows(1000) == (75, [100, 150, 250, 450, 950], 50)
    assert windows(500) == (75, [100, 150, 450], 50)
    assert windows(100) == (15, [90], 10)
    assert all(not s.slow for s in warmup_schedule(10))


def test_dual_averaging_converges_on_a_known_acceptance_curve():
    def acceptance(eps):  # mean acceptance falling steeply from 1 to 0 around eps = 0.3
        return 1.0 / (1.0 + (eps / 0.3) ** 4)

    da = dual_averaging_init(1.0)
    for _ in range(500):
        da = dual_averaging_update(da, acceptance(math.exp(da.log_step_size)), 0.8)
    assert acceptance(math.exp(da.log_step_size_avg)) == pytest.approx(0.8, abs=0.01)


def test_gaussian_metric_dense_and_diagonal():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 3, generator=g, dtype=F64)
    sigma = a @ a.T + torch.eye(3, dtype=F64)
    for im in (sigma, sigma.diagonal().clone()):
        metric = GaussianMetric(im)
        z = torch.randn(5, 3, generator=g, dtype=F64)
        assert torch.allclose(metric.whiten(metric.scale(z)), z)
        p = metric.sample_momentum(g, torch.zeros(20000, 3, dtype=F64))
        mass = torch.linalg.inv(sigma) if im.ndim == 2 else torch.diag(1 / im)
        assert torch.allclose(p.T @ p / 20000, mass, atol=0.05)
    with pytest.raises(ValueError, match="inverse_mass_matrix"):
        GaussianMetric(-torch.ones(3))


def test_the_levels_metrics_are_kept_in_a_few_blocks():
    """MetricStore: the metrics every level keeps share a few blocks of doubling size, with
    the values they had, so that no small tensor a level pins the C heap (AIS at 10 000
    levels, n = 2000, d = 50 grew to 7 GB before); the engine keeps its levels' metrics there."""
    from interpolants.samplers.annealing import (
        AdaptiveMoves,
        AnnealedDensity,
        MetricStore,
        TimeGrid,
        anneal,
    )
    from interpolants.samplers.base import CountedDensity

    g = torch.Generator().manual_seed(0)
    store = MetricStore()
    metrics = [GaussianMetric(torch.rand(4, generator=g, dtype=F64) + 0.5) for _ in range(100)]
    kept = [store.keep(m) for m in metrics]
    for m, k in zip(metrics, kept, strict=True):
        assert torch.equal(k.inverse_mass_matrix, m.inverse_mass_matrix)
        assert torch.equal(k.factor, m.factor) and not k.dense
    blocks = {k.inverse_mass_matrix.untyped_storage().data_ptr() for k in kept}
    assert len(blocks) == 3  # 16 + 32 + 64 rows
    assert store.keep(None) is None
    dense = store.keep(GaussianMetric(torch.eye(4, dtype=F64)))  # another shape: a new block
    assert dense.dense and torch.equal(dense.factor, torch.eye(4, dtype=F64))
    assert dense.inverse_mass_matrix.untyped_storage().data_ptr() not in blocks
    store = MetricStore()
    store.MAX_BYTES = 2 * 16 * 8 * 3  # three dense 4 x 4 metrics (and factors) a block
    for _ in range(4):
        store.keep(GaussianMetric(torch.eye(4, dtype=F64)))
    assert store.block.shape[:2] == (3, 2) and store.used == 1

    target = targets.get("gmm-d2-k3")
    density = AnnealedDensity(
        CountedDensity(target), DiagonalNormal(torch.zeros(2), 3 * torch.ones(2))
    )
    x = 3 * torch.randn(300, 2, generator=g)
    grid = torch.linspace(0, 1, 201, dtype=F64)
    out = anneal(density, density.state(x, 0.0), TimeGrid(grid), AdaptiveMoves(1, 0.6), g)
    assert len(out.levels) == 200
    assert (
        len({lv.metric.inverse_mass_matrix.untyped_storage().data_ptr() for lv in out.levels}) <= 4
    )
    log_z = float(torch.logsumexp(out.log_w, 0) - math.log(300))
    assert abs(log_z - target.log_Z) < 0.3


def test_systematic_resampling_and_tempering():
    g = torch.Generator().manual_seed(0)
    w = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.7, 0.1, 0.1, 0.1]], dtype=F64)
    idx = systematic_resample(w.log(), g)
    counts = torch.stack([torch.bincount(row, minlength=4) for row in idx])
    expected = 4 * w
    assert torch.all(counts >= expected.floor()) and torch.all(counts <= expected.ceil())
    lw = torch.zeros(2, 50, dtype=F64)
    ell = torch.randn(2, 50, generator=g, dtype=F64) * 5
    beta = next_temperature(lw, ell, 0.0, 0.9)
    a = (beta * ell).double()
    cess = (2 * torch.logsumexp(a, -1) - torch.logsumexp(2 * a, -1) - math.log(50)).exp()
    assert float(cess.min()) == pytest.approx(0.9, abs=1e-6)
    assert next_temperature(lw, 1e-6 * ell, 0.5, 0.9) == 1.0
    for kind in ("linear", "geometric", "sigmoid"):
        t = temperature_schedule(10, kind)
        assert t[0] == 0 and t[-1] == 1 and torch.all(t.diff() > 0)


def test_transport_gain_sums_the_log_cess_of_the_levels():
    from interpolants.samplers.diagnostics import log_conditional_ess, transport_gain

    assert transport_gain([(-0.01, -0.001), (-0.03, -0.003)]) == pytest.approx(10.0)
    assert transport_gain([(-0.01, -0.02)]) == pytest.approx(0.5)  # the transport hurt
    assert transport_gain([(-0.01, -1e-13)]) == math.inf  # nothing lost with it
    assert transport_gain([(0.0, -1e-13)]) is None  # nothing to lose without it
    assert transport_gain([]) is None and transport_gain([(-0.1, -math.inf)]) is None
    lw = torch.tensor([0.0, -1.0, -2.0], dtype=F64)
    inc = torch.tensor([0.5, 0.0, -3.0], dtype=F64)
    w = torch.softmax(lw, 0)
    cess = (w * inc.exp()).sum() ** 2 / (w * (2 * inc).exp()).sum()
    assert float(log_conditional_ess(lw, inc)) == pytest.approx(float(cess.log()), abs=1e-12)


def test_sample_result_iid_expectation_and_dict():
    x = torch.randn(400, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    r = SampleResult(samples=x, method="exact", ess=1.0, evaluations=0)
    _, se = r.expectation(lambda v: v)
    assert torch.allclose(se, x.std(0) / 20)
    assert json.loads(json.dumps(r.to_dict()))["n"] == 400


def test_annealing_configs_are_the_keyword_options_checked_once():
    """AISConfig / SMCConfig hold the method's options: a config object gives the run of the
    same keywords, keywords replace its fields, and bad names or values are refused by name."""
    from interpolants.samplers.ais import AISConfig, SMCConfig

    target = targets.get("gmm-d2-k3")
    a = sample(target, "smc", n=100, seed=1, steps=5, moves=2, pilot=False, reverse=None)
    b = sample(target, "smc", n=100, seed=1, reverse=None,
               config=SMCConfig(steps=5, moves=2, pilot=False))  # fmt: skip
    c = sample(target, "smc", n=100, seed=1, config=SMCConfig(steps=5, moves=9), moves=2,
               pilot=False, reverse=None)  # fmt: skip
    for r in (b, c):
        assert torch.equal(r.samples, a.samples) and r.log_Z == a.log_Z
    with pytest.raises(ValueError, match=r"unknown option\(s\) 'cess' for method 'ais'"):
        sample(target, "ais", n=10, cess=0.5)
    with pytest.raises(ValueError, match="kernel must be one of"):
        AISConfig(kernel="gibbs")
    with pytest.raises(ValueError, match="resample_threshold must be in"):
        SMCConfig(resample_threshold=0.0)
    with pytest.raises(ValueError, match="steps must be an integer >= 1 for AIS"):
        sample(target, "ais", n=10, steps=None)


@pytest.mark.parametrize("method", ["ais", "smc", "nets", "flow-mcmc", "is", "leaps"])
def test_a_config_of_another_method_is_refused_by_name(method):
    """Every runner resolves ``config=`` the same way: another method's config object is an
    error that names the class it needs, before any work."""
    from interpolants.samplers.free_energy import FreeEnergyConfig

    target = targets.get("ising", L=4) if method == "leaps" else targets.get("gmm-d2-k3")
    with pytest.raises(ValueError, match=r"config must be a \w+Config, got FreeEnergyConfig"):
        sample(target, method, n=10, config=FreeEnergyConfig())


def test_self_tuned_moves_stop_once_the_walkers_decorrelate():
    """decorrelated(r): the largest |correlation| between start and end positions below r;
    SMC with decorrelation moves a level until then (at most ``moves``), log Z still right."""
    from interpolants.samplers.annealing import decorrelated

    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 3, generator=g)
    assert not decorrelated(0.1)(x, x + 0.01 * torch.randn(500, 3, generator=g))
    assert decorrelated(0.2)(x, torch.randn(500, 3, generator=g))
    target = targets.get("gmm-d2-k3")
    r = sample(target, "smc", n=200, seed=0, decorrelation=0.2, moves=30, batches=4)
    per_level = r.info["step_size_per_move"].numel() / r.info["levels"]
    assert 1 <= per_level < 30
    assert abs(r.log_Z - target.log_Z) < 4 * r.log_Z_stderr
    with pytest.raises(ValueError, match="decorrelation must be a number in"):
        sample(target, "smc", n=10, decorrelation=2.0)
