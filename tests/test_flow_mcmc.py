"""Tests of flow-MCMC and importance sampling through a learned transport (samplers.flow_mcmc).

Stochastic checks are z-tests against the method's own standard error (moments, mode
weights, log Z) with |z| < 4; the seeds are fixed for reproducibility only.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from interpolants.app.sample_target import run_sample_target
from interpolants.distributions import DiagonalNormal, MixtureOfGaussians
from interpolants.nn import CouplingFlow
from interpolants.samplers import ConvergenceWarning, sample
from interpolants.samplers.flow_mcmc import (
    DefensiveMixture,
    FlowMCMCConfig,
    independent_mh_log_ratio,
    mode_switches,
    mode_weights,
    train_transport,
)
from interpolants.targets import Target

F64 = torch.float64
SMALL_FLOW = {"layers": 4, "width": 32}


pytestmark = pytest.mark.usefixtures("one_thread")


def two_modes(weight: float = 0.8, offset: float = 1.5, exact: bool = False):
    """exp(offset) times the mixture weight N((-3, 0), 0.5^2 I) + (1 - weight) N((3, 0), 0.5^2 I):
    log Z = offset; modes far beyond MALA's reach from each other. ``exact``: the target
    has its exact sampler (for the bias check of importance sampling)."""
    means = torch.tensor([[-3.0, 0.0], [3.0, 0.0]], dtype=F64)
    mix = MixtureOfGaussians(
        means, torch.tensor([0.5, 0.5], dtype=F64), torch.tensor([weight, 1 - weight], dtype=F64)
    )
    target = Target(
        lambda x: mix.log_prob(x) + offset,
        dim=2,
        log_Z=offset,
        sample=mix.sample if exact else None,
        base=DiagonalNormal(torch.zeros(2, dtype=F64), 3.0),
        name="two_modes",
    )
    return target, mix, means


class FixedTransport:
    """A frozen transport q given by a distribution (``sample``, ``log_prob``): for
    importance sampling with ``max_rounds=0``."""

    def __init__(self, q):
        self.q = q

    def sample_with_log_prob(self, n, generator):
        x = self.q.sample(n, generator)
        return x, self.q.log_prob(x)

    def log_prob(self, x):
        return self.q.log_prob(x)

    def fit_step(self, x, generator):
        raise AssertionError("a fixed transport is not trained")


def test_mh_ratio_and_mode_diagnostics():
    a = independent_mh_log_ratio(
        torch.tensor([1.0]), torch.tensor([2.0]), torch.tensor([0.5]), torch.tensor([3.0])
    )
    assert float(a) == pytest.approx((1 - 2) - (0.5 - 3))
    labels = torch.tensor([[0, 1], [1, 1], [1, 0], [0, 0]])
    assert mode_switches(labels).tolist() == [2, 1]
    w, se = mode_weights(labels, 2)
    assert w.tolist() == [0.5, 0.5] and se.shape == (2,)


def test_frozen_chain_leaves_a_known_2d_target_invariant():
    """Walkers started at exact draws of the target, moved by a frozen, deliberately rough
    transport (20 training rounds): the moments after production stay those of the target."""
    target, mix, means = two_modes()
    trained = train_transport(
        target, means, seed=1, chains=32, warmup=50, max_rounds=20, transport_options=SMALL_FLOW
    )
    start = mix.sample(400, torch.Generator().manual_seed(2))
    result = sample(
        target,
        "flow-mcmc",
        n=400 * 60,
        seed=3,
        init=start,
        transport=trained.transport,
        max_rounds=0,
        warmup=0,
        step_size=0.4,
        local_steps=1,
    )
    assert result.acceptance_rate > 0.1  # the global moves do happen
    assert result.info["global_accepted"].double().mean() > 0.1

    def moments(x):
        return torch.stack([x[:, 0], x[:, 1], x[:, 0] ** 2, x[:, 1] ** 2, x[:, 0] * x[:, 1]], 1)

    truth = torch.tensor([0.8 * -3 + 0.2 * 3, 0.0, 9.25, 0.25, 0.0], dtype=F64)
    mean, se = result.expectation(moments)
    z = (mean - truth) / se
    assert bool((z.abs() < 4).all()), z


def test_flow_mcmc_recovers_unequal_mode_weights_where_mala_cannot():
    """Half the walkers in each mode, true weights 0.8 / 0.2: the global moves move walkers
    between the modes until the weights are right; MALA's walkers keep the 1/2 - 1/2 start."""
    target, _, means = two_modes(weight=0.8)
    result = sample(
        target,
        "flow-mcmc",
        n=32 * 150,
        seed=0,
        init=means,
        chains=32,
        warmup=100,
        max_rounds=80,
        local_steps=2,
        train_steps=3,
        transport_options=SMALL_FLOW,
    )
    w, se = result.expectation(lambda x: (x[:, 0] < 0).double())
    assert float(se) < 0.04 and abs(float(w) - 0.8) < 4 * float(se), (float(w), float(se))
    labels = (result.chain_samples[..., 0] < 0).long()
    assert int(mode_switches(labels).sum()) > 100  # walkers cross between the modes
    mala = sample(target, "mala", n=32 * 250, seed=0, init=means.repeat(16, 1), warmup=100)
    w_mala, _ = mala.expectation(lambda x: (x[:, 0] < 0).double())
    assert abs(float(w_mala) - 0.5) < 0.02 and abs(float(w_mala) - 0.8) > 0.25


def test_anchor_walkers_keep_a_light_mode_in_the_transport():
    """Weights 0.95 / 0.05 from an equal split of 32 walkers: the global
    moves empty the light mode of walkers, but the transport is trained on anchors that stay
    in both modes (the default), so walkers keep coming back and the light weight is right;
    with the defensive Gaussian mixture too, and its density is that of its draws."""
    target, _, means = two_modes(weight=0.95)
    for defensive in (0.0, 0.3):
        result = sample(
            target,
            "flow-mcmc",
            n=32 * 120,
            seed=1,
            init=means,
            chains=32,
            warmup=60,
            max_rounds=40,
            min_rounds=40,
            local_steps=2,
            train_steps=3,
            defensive=defensive,
            transport_options=SMALL_FLOW,
        )
        w, se = result.expectation(lambda x: (x[:, 0] > 0).double())
        assert float(se) < 0.03 and abs(float(w) - 0.05) < 4 * float(se), (defensive, float(w))
        labels = (result.chain_samples[..., 0] > 0).long()
        assert int(mode_switches(labels).sum()) > 50  # walkers visit the light mode and leave
    mixture = result.info["transport"]
    assert isinstance(mixture, DefensiveMixture) and mixture.means.shape == (2, 2)
    x, lq = mixture.sample_with_log_prob(200, torch.Generator().manual_seed(0))
    assert torch.allclose(mixture.log_prob(x), lq, atol=1e-10)
    assert float((x[:, 0] > 0).double().mean()) > 0.2  # the light mode keeps proposal mass


def test_defensive_scale_widens_each_gaussian_and_keeps_the_density_exact():
    """scale s multiplies the fitted Cholesky factors: draws of the pure Gaussian mixture
    (lam = 1) have s^2 times the anchors' covariance, and log_prob is that of the draws."""
    g = torch.Generator().manual_seed(0)
    groups = [torch.randn(4000, 2, generator=g, dtype=torch.float64) * torch.tensor([1.0, 0.1])]
    plain = DefensiveMixture(None, 1.0)
    wide = DefensiveMixture(None, 1.0, scale=1.5)
    plain.refit(groups), wide.refit(groups)
    assert torch.allclose(wide.chol, 1.5 * plain.chol)
    x, lq = wide.sample_with_log_prob(20000, torch.Generator().manual_seed(1))
    ratio = torch.cov(x.T).diagonal() / torch.cov(groups[0].T).diagonal()
    assert torch.allclose(ratio, torch.full((2,), 2.25, dtype=torch.float64), rtol=0.05), ratio
    assert torch.allclose(wide._gauss_log_prob(x), lq)


def test_importance_sampling_through_the_trained_transport_estimates_log_Z():
    target, _, means = two_modes(weight=0.7, offset=1.5, exact=True)
    result = sample(
        target,
        "is",
        n=4000,
        seed=0,
        init=means,
        chains=32,
        warmup=100,
        max_rounds=80,
        local_steps=2,
        transport_options=SMALL_FLOW,
    )
    assert result.log_weights.shape == (4000,) and 0.1 < result.ess <= 1.0
    assert abs(result.log_Z - 1.5) < 4 * result.log_Z_stderr and result.log_Z_stderr < 0.05
    w, se = result.expectation(lambda x: (x[:, 0] < 0).double())
    assert abs(float(w) - 0.7) < 4 * float(se)
    # the bias check (exact draws here): the bounds agree, so no warning, and the error bar
    # is widened at most to reach the upper bound in 3 of it
    info = result.info
    assert info["reverse_source"] == "exact" and info["reverse_walkers"] == 2000
    gap = info["log_Z_upper"] - info["log_Z_lower"]
    assert not result.warnings and result.log_Z_stderr == max(info["log_Z_mc_stderr"], gap / 3)
    assert abs(gap) < 3 * math.hypot(result.log_Z_stderr, info["log_Z_upper_stderr"]), gap
    assert result.evaluations == info["training_evaluations"] + 4000 + 2000
    assert info["reverse_evaluations"] == 2000


def test_importance_sampling_bias_check_catches_a_transport_that_misses_a_mode():
    """q covers only the heavier of two separated modes (weight 0.7): log Z_hat misses
    log 0.7 = -0.357 with a tiny Monte Carlo error bar. The reverse estimate from exact draws
    of the target is an upper bound that lands on log Z (q is exact within its mode), so the
    run warns and its widened error bar covers the truth; without the check it does not."""
    target, _, means = two_modes(weight=0.7, offset=1.5, exact=True)
    q = FixedTransport(DiagonalNormal(means[0], 0.6))
    run = {"n": 4000, "seed": 0, "init": means, "transport": q, "max_rounds": 0, "warmup": 0}
    blind = sample(target, "is", **run, reverse=None)
    assert abs(blind.log_Z - 1.5 - math.log(0.7)) < 0.05
    assert abs(blind.log_Z - 1.5) > 10 * blind.log_Z_stderr  # wrong, with a small error bar
    assert "log_Z_upper" not in blind.info
    assert blind.evaluations == blind.info["training_evaluations"] + 4000
    with pytest.warns(ConvergenceWarning, match="disagree"):
        checked = sample(target, "is", **run, reverse_walkers=1000)
    info = checked.info
    assert checked.log_Z == blind.log_Z and info["log_Z_mc_stderr"] == blind.log_Z_stderr
    assert abs(info["log_Z_upper"] - 1.5) < 4 * info["log_Z_upper_stderr"] + 0.02
    assert abs(checked.log_Z - 1.5) <= 3 * checked.log_Z_stderr
    assert checked.evaluations == blind.evaluations + 1000 and len(checked.warnings) == 1


def test_continuous_flow_by_the_interpolant_loss_recovers_weights():
    """The same 1D-separated two modes with the transport trained by the interpolant loss
    (q from the ODE likelihood)."""
    target, _, means = two_modes(weight=0.25)
    result = sample(
        target,
        "flow-mcmc",
        n=16 * 60,
        seed=0,
        init=means,
        chains=16,
        warmup=50,
        max_rounds=30,
        min_rounds=30,
        local_steps=2,
        train_steps=10,
        transport="interpolant",
        transport_options={"width": 32, "depth": 2, "ode_steps": 4},
    )
    w, se = result.expectation(lambda x: (x[:, 0] < 0).double())
    assert abs(float(w) - 0.25) < 4 * float(se) + 0.02 and float(se) < 0.08, (float(w), float(se))
    assert result.info["transport_kind"] == "interpolant" and result.acceptance_rate > 0.05
    # q of a proposal comes from the forward ODE, q of a walker from the backward one: they
    # agree up to the RK4 error, which falls at least 8-fold from 4 to 8 steps
    transport, gaps = result.info["transport"], []
    for steps in (4, 8):
        transport.ode_steps = steps
        x, log_q = transport.sample_with_log_prob(500, torch.Generator().manual_seed(0))
        gaps.append(float((log_q - transport.log_prob(x)).abs().max()))
    assert gaps[0] < 0.05 and gaps[1] < gaps[0] / 8, gaps


def test_bad_options_name_the_argument():
    target, _, means = two_modes()
    for options, name in (
        ({"transport": "glow"}, "transport"),
        ({"plateau_tol": -1.0}, "plateau_tol"),
        ({"local_steps": -1}, "local_steps"),
        ({"base": object()}, "base"),
        ({"mass_matrix": "full"}, "mass_matrix"),
        ({"transport_options": 3}, "transport_options"),
        ({"anchors": -1}, "anchors"),
        ({"defensive": 1.5}, "defensive"),
        ({"defensive_scale": 0.0}, "defensive_scale"),
    ):
        with pytest.raises(ValueError, match=name):
            sample(target, "flow-mcmc", n=10, init=means, **options)
    with pytest.raises(ValueError, match="batches"):
        sample(target, "is", n=10, init=means, batches=0)
    with pytest.raises(ValueError, match="layers"):
        CouplingFlow(2, target.base, layers=0)


def test_unknown_options_and_bad_values_are_refused_by_name():
    """The config checks every option once: an unknown name (or one of the other entry
    point's) is refused with the known names listed; a bad value names its option."""
    target, _, means = two_modes()
    for method, options, name in (
        ("flow-mcmc", {"layers": 4}, "layers"),
        ("flow-mcmc", {"batches": 2}, "batches"),  # an option of "is" only
        ("is", {"thin": 2}, "thin"),  # an option of "flow-mcmc" only
        ("flow-mcmc", {"plateau_window": 0}, "plateau_window"),
        ("is", {"target_accept": 1.5}, "target_accept"),
        ("flow-mcmc", {"reverse": None}, "reverse"),  # importance sampling's check only
        ("is", {"reverse": "bogus"}, "reverse"),
        ("is", {"reverse_walkers": 1}, "reverse_walkers"),
    ):
        with pytest.raises(ValueError, match=name) as error:
            sample(target, method, n=10, init=means, **options)
        if name in ("layers", "batches", "thin") or (method, name) == ("flow-mcmc", "reverse"):
            assert "options: transport, transport_options" in str(error.value)
    with pytest.raises(ValueError, match=r"'glow'.*options: transport"):
        FlowMCMCConfig.from_options({"glow": 1})
    with pytest.raises(ValueError, match="thin"):
        train_transport(target, means, thin=2)
    with pytest.raises(ValueError, match="step_size"):
        FlowMCMCConfig(step_size=-0.1)
    with pytest.raises(ValueError, match="buffer"):
        FlowMCMCConfig().with_options({"buffer": 0})
    with pytest.raises(ValueError, match="config"):
        sample(target, "flow-mcmc", n=10, init=means, config={"warmup": 5})
    assert "batches" not in FlowMCMCConfig.options("flow-mcmc")
    assert "thin" not in FlowMCMCConfig.options("is")


def test_config_object_gives_the_result_of_the_same_keyword_options():
    """config=FlowMCMCConfig(...) and the same options as keywords make the same run, bit for
    bit; keywords given with a config replace its values."""
    target, _, means = two_modes()
    options = {"warmup": 10, "max_rounds": 4, "local_steps": 1, "train_steps": 2,
               "defensive": 0.3, "transport_options": {"layers": 2, "width": 8}}  # fmt: skip
    run = {"n": 48, "seed": 5, "init": means, "chains": 8}
    for method, extra in (("flow-mcmc", {"thin": 2}), ("is", {"batches": 3})):
        by_keywords = sample(target, method, **run, **options, **extra)
        config = FlowMCMCConfig(**options, **extra)
        by_config = sample(target, method, **run, config=config)
        assert torch.equal(by_config.samples, by_keywords.samples)
        assert by_config.evaluations == by_keywords.evaluations
        assert by_config.log_Z == by_keywords.log_Z
        rest = {k: v for k, v in options.items() if k != "warmup"}
        start = FlowMCMCConfig(warmup=3, **extra)
        replaced = sample(target, method, **run, config=start, **rest, warmup=10)
        assert torch.equal(replaced.samples, by_keywords.samples)


def test_command_line_run_on_phi4_1d(tmp_path):
    options = {
        "target.N": 8,
        "init": [[1.0], [-1.0]],
        "chains": 8,
        "warmup": 20,
        "max_rounds": 10,
        "transport_options": SMALL_FLOW,
    }
    m = run_sample_target(
        "phi4_1d", "flow-mcmc", n=80, out=tmp_path, options=options, progress=False
    )
    # 10 draws per chain: flow-MCMC's chains are checked like MALA's, and this run says so
    assert m["status"] == "warning" and any("draws per chain" in w for w in m["warnings"])
    assert m["method"] == "flow-mcmc" and m["training_rounds"] == 10
    assert "positive_mode_weight" in m and "flow_mcmc.png" in m["plots"]
    assert json.loads((tmp_path / "metrics.json").read_text())["method"] == "flow-mcmc"
