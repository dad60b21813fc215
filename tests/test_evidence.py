"""Honest evidence: the bidirectional bounds on log Z (forward and reverse annealing) and
error bars that cover the truth over seeds."""

import math
import warnings

import pytest
import torch

import interpolants as si
from interpolants.app.sample_target import format_metrics
from interpolants.samplers.evidence import Sandwich

DIM = 5
SHIFT, SCALE = 3.0, 0.4  # target N(SHIFT 1, SCALE^2 I) times Z, far from the base N(0, I)
LOG_Z = 1.7


def shifted_gaussian() -> si.targets.Target:
    """exp(LOG_Z) N(x; SHIFT 1, SCALE^2 I): exact draws and log Z known."""

    def log_prob(x):
        z = (x - SHIFT) / SCALE
        return LOG_Z - 0.5 * (z**2).sum(-1) - DIM * (math.log(SCALE) + 0.5 * math.log(2 * math.pi))

    def sample(n, generator=None):
        e = torch.randn(n, DIM, generator=generator, dtype=torch.float64)
        return SHIFT + SCALE * e

    return si.targets.Target(log_prob=log_prob, dim=DIM, log_Z=LOG_Z, sample=sample)


def test_bounds_bracket_log_z_and_agree_when_the_walkers_equilibrate():
    target = shifted_gaussian()
    for method in ("ais", "smc"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no disagreement warning
            # escalate=0: the bounds of one run, not SMC's rerun after its check (a rerun's
            # error bar is the strict one, tested below)
            options = {"escalate": 0} if method == "smc" else {}
            r = si.sample(target, method, n=1000, seed=1, reverse="exact", **options)
        info = r.info
        lo, up = info.log_Z_lower, info.log_Z_upper
        se = math.hypot(info.log_Z_mc_stderr, info.log_Z_upper_stderr)
        assert lo == r.log_Z
        assert abs(lo - LOG_Z) < 4 * info.log_Z_mc_stderr + 0.02, method
        assert abs(up - LOG_Z) < 4 * info.log_Z_upper_stderr + 0.02, method
        assert up - lo > -3 * se, method
        # not widened beyond the agreeing bounds' reach (3 error bars reach the upper one)
        assert r.log_Z_stderr == max(info.log_Z_mc_stderr, (up - lo) / 3)
        assert info.reverse_source == "exact" and info.reverse_walkers == 1000
        assert not r.warnings


def starved_ais(seed: int, reverse="exact") -> si.samplers.SampleResult:
    """AIS with 3 levels and no moves: importance sampling through a path far too short,
    whose log Z is biased low with an error bar that is too small."""
    return si.sample(shifted_gaussian(), "ais", n=400, seed=seed, steps=3, moves=0,
                     reverse=reverse)  # fmt: skip


def test_a_starved_run_warns_and_its_widened_error_bar_covers_the_truth():
    misses, covered, warned = 0, 0, 0
    seeds = range(20)
    for seed in seeds:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            r = starved_ais(seed)
        mc = r.info.log_Z_mc_stderr
        misses += abs(r.log_Z - LOG_Z) > 3 * mc
        covered += abs(r.log_Z - LOG_Z) <= 3 * r.log_Z_stderr
        assert r.info.log_Z_lower < LOG_Z < r.info.log_Z_upper + 3 * r.info.log_Z_upper_stderr
        if len(r.warnings) > 1:
            warned += 1
            assert any("forward and reverse runs disagree" in w for w in r.warnings)
            assert "moves=0: the walkers never move" in r.warnings[0]
            assert any("disagree" in str(w.message) for w in caught)
    assert misses >= 15  # the Monte Carlo error alone does not cover: the case is hard
    assert warned >= 15
    assert covered >= 19  # >= 95 % with the widened error bar


def test_reverse_from_given_draws_and_bad_reverse_options():
    target = shifted_gaussian()
    draws = target.sample(300, torch.Generator().manual_seed(3))
    r = si.sample(target, "smc", n=400, seed=0, reverse=draws, escalate=0)
    assert r.info.reverse_source == "given" and r.info.reverse_walkers == 300
    assert abs(r.info.log_Z_upper - LOG_Z) < 4 * r.info.log_Z_upper_stderr + 0.05
    plain = si.targets.Target(log_prob=lambda x: -0.5 * (x**2).sum(-1), dim=2)
    with pytest.raises(ValueError, match=r"reverse='exact'.*no exact sampler"):
        si.sample(plain, "ais", n=100, seed=0, steps=5, reverse="exact")
    assert "log_Z_upper" not in si.sample(plain, "ais", n=100, seed=0, steps=5, reverse=None).info
    auto = si.sample(plain, "smc", n=400, seed=0)  # no exact sampler: HMC draws
    assert auto.info.reverse_source == "hmc" and auto.info.reverse_walkers == 400
    log_z = math.log(2 * math.pi)
    assert abs(auto.info.log_Z_upper - log_z) < 4 * auto.info.log_Z_upper_stderr + 0.02
    off = si.sample(plain, "smc", n=400, seed=0, reverse=None)
    assert auto.evaluations == off.evaluations + auto.info.reverse_evaluations
    assert "reverse_evaluations" not in off.info
    with pytest.raises(ValueError, match="reverse must be one of"):
        si.sample(target, "smc", n=100, seed=0, reverse="hmcc")
    with pytest.raises(ValueError, match=r"reverse must be a \(draws >= 2, 5\) tensor"):
        si.sample(target, "smc", n=100, seed=0, reverse=torch.zeros(10, 3))
    with pytest.raises(ValueError, match="reverse_walkers"):
        si.sample(target, "smc", n=100, seed=0, reverse_walkers=1)


def test_sandwich_arithmetic():
    agree = Sandwich(1.0, 0.1, 1.2, 0.1, 100, "exact")
    assert agree.agree and agree.stderr(0.1) == 0.1 and agree.warning("t") is None
    # agreeing bounds: 3 error bars reach the upper one (a gap too small to flag is still
    # a bias the Monte Carlo se does not see)
    assert agree.stderr(0.01) == pytest.approx(0.2 / 3)
    quiet = Sandwich(-0.33, 0.046, 0.007, 0.172, 2000, "hmc")  # item_response_noncentered
    assert quiet.agree and 3 * quiet.stderr(0.046) >= 0.33
    apart = Sandwich(1.0, 0.1, 3.0, 0.1, 100, "exact")
    assert not apart.agree
    assert apart.stderr(0.1) == pytest.approx(2.0 / 3 + 0.1)
    assert "lies between 1.000 and 3.000" in apart.warning("t")
    # strict (a rerun after a failed check): the upper bound's reach, gap / 3 + se_upper,
    # also when the upper bound lies below, unless the Monte Carlo se is wider
    assert agree.stderr(0.01, strict=True) == pytest.approx(0.2 / 3 + 0.1)
    below = Sandwich(1.0, 0.1, 0.7, 0.2, 100, "hmc")
    assert below.stderr(0.02) == 0.02 and below.stderr(0.02, strict=True) == pytest.approx(0.1)
    # the upper bound below the lower one within 3 combined se but by more than 2 of its own
    # se: 3 error bars reach it (the non-centred eight schools, SMC n = 500 seed 0, a rerun:
    # -31.2468 +- 0.0182 against the truth -31.3113, the upper bound -31.3673 +- 0.0391)
    below_own = Sandwich(1.0, 0.1, 0.7, 0.1, 100, "hmc")  # 3 of its own se, 2.1 combined
    assert below_own.agree and below_own.stderr(0.02) == pytest.approx(0.1)
    assert below_own.warning("t") is None
    inverted = Sandwich(-31.2468, 0.0182, -31.3673, 0.0391, 500, "hmc")
    assert inverted.agree and inverted.warning("t") is None
    for strict in (False, True):
        assert abs(-31.2468 + 31.3113) <= 3 * inverted.stderr(0.0182, strict=strict)
    # far below (exact draws: the forward estimate overshot, d = 50 mixture SMC +0.171 +-
    # 0.046 with the upper bound 0.248 below): the same, and a warning says so
    far = Sandwich(0.171, 0.046, -0.077, 0.051, 2000, "exact")
    assert not far.agree and far.stderr(0.046) == pytest.approx(0.248 / 3)
    assert far.stderr(0.046, strict=True) == pytest.approx(0.248 / 3)
    wide = Sandwich(1.0, 0.1, 0.4, 0.1, 100, "exact")
    assert wide.stderr(0.05, strict=True) == pytest.approx(0.2) and wide.stderr(0.5) == 0.5
    assert "overshot" in far.warning("t") and "widened" in far.warning("t")
    assert Sandwich(1.0, 0.1, 0.8, 0.1, 100, "exact").warning("t") is None
    assert "not distributed" in Sandwich(1.0, 0.01, 0.5, 0.01, 100, "given").warning("t")
    assert "not finite" in Sandwich(1.0, 0.1, math.inf, math.nan, 100, "exact").warning("t")


def test_collapsed_moves_warn():
    target = shifted_gaussian()
    # a step size far too large, never adapted below: almost every proposal is rejected
    with pytest.warns(si.samplers.ConvergenceWarning, match="the moves collapsed at"):
        r = si.sample(target, "smc", n=400, seed=0, step_size=50.0, target_accept=0.001,
                      reverse=None, escalate=0)  # fmt: skip
    assert any("collapsed" in w for w in r.warnings)
    assert r.info.correlation_per_level.shape == (len(r.info.temperatures) - 1,)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fine = si.sample(target, "smc", n=400, seed=0, reverse=None)
    assert not fine.warnings and float(fine.info.correlation_per_level.max()) < 0.9


def test_smc_escalates_when_the_bias_check_fails(monkeypatch):
    """SMC reruns with the next configuration of ESCALATION while the walkers lag (moves
    collapsed, or bounds apart): the rerun's estimate is returned, the discarded attempt is
    in info.escalations, every evaluation is counted, and only the chosen run warns. (The
    ladder is replaced by one cheap rung, the kernel's own tuning, to keep this fast.)"""
    from interpolants.samplers import escalation

    monkeypatch.setattr(escalation, "ESCALATION", ({"target_accept": None, "step_size": None},))
    target = shifted_gaussian()
    bad = {"step_size": 50.0, "target_accept": 0.001, "reverse": "exact"}
    first = si.sample(target, "smc", n=400, seed=0, escalate=0, **bad)
    assert any("collapsed" in w or "disagree" in w for w in first.warnings)
    assert abs(first.log_Z - LOG_Z) > 10  # the walkers never left the base
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the discarded attempt's warnings are not shown
        r = si.sample(target, "smc", n=400, seed=0, **bad)
    (attempt,) = r.info.escalations
    assert attempt["log_Z"] == first.log_Z and attempt["kernel"] == "mala"
    assert attempt["log_Z_upper"] > attempt["log_Z"] + 10
    assert not r.warnings and abs(r.log_Z - LOG_Z) < 3 * r.log_Z_stderr
    assert r.evaluations > first.evaluations + attempt["evaluations"] / 2
    metrics = r.to_dict()  # metrics.json and the command line's lines show it
    assert metrics["escalations"][0]["log_Z"] == first.log_Z
    assert "discarded after its bias check failed: kernel=mala" in format_metrics(metrics)
    # NETS's default sampling run is this SMC run (here with b = 0): its reruns are listed too
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its rerun too may warn: only the record matters here
        nets = si.sample(target, "nets", n=400, seed=0, drift=None, reverse="exact",
                         smc={"step_size": 50.0, "target_accept": 0.001})  # fmt: skip
    assert nets.info.escalations == nets.info.annealing.escalations
    assert nets.to_dict()["escalations"][0]["kernel"] == "mala"
    # a run whose bounds agree is not rerun
    fine = si.sample(target, "smc", n=400, seed=0, reverse="exact")
    assert "escalations" not in fine.info
    with pytest.raises(ValueError, match="escalate"):
        si.sample(target, "smc", n=400, escalate=-1)


def test_escalation_reasons():
    """Each trigger of a rerun, alone: bounds apart by > 2 combined se, collapsed moves, and
    runs spread > 3x the perfect-mixing standard error sqrt(levels (1/cess - 1) / n)."""
    from types import SimpleNamespace

    from interpolants.samplers.escalation import Attempt, mixed_stderr, reason

    assert mixed_stderr(40, 0.9, 4000) == pytest.approx(math.sqrt(40 * (1 / 0.9 - 1) / 4000))

    def attempt(bounds=None, warnings=(), se=0.01, mixed=0.01):
        info = SimpleNamespace(log_Z_mc_stderr=se)
        result = SimpleNamespace(warnings=list(warnings), info=info, log_Z_stderr=se)
        return Attempt(result, None, bounds, [], mixed)

    assert reason(attempt()) is None
    assert reason(attempt(se=0.029)) is None  # within 3x perfect mixing
    assert "spread 5.0 times" in reason(attempt(se=0.05))
    assert reason(attempt(se=0.05, mixed=None)) is None  # fixed schedules: no prediction
    assert "collapsed" in reason(attempt(warnings=["t: the moves collapsed at 3 level(s)"]))
    near, apart = Sandwich(0.0, 0.1, 0.25, 0.1, 100, "exact"), Sandwich(0, 0.1, 0.3, 0.1, 9, "hmc")
    assert reason(attempt(near)) is None and "2.1 combined se" in reason(attempt(apart))


def test_latent_flow_moves_are_exact_in_x():
    """The latent density's value and gradient (float64, finite differences), the round trip,
    and SMC with moves in the latent space of the fitted flows recovers log Z."""
    from interpolants.samplers.annealing import AnnealedDensity
    from interpolants.samplers.base import CountedDensity
    from interpolants.samplers.latent import LatentFlow

    target = si.targets.get("funnel", dim=4, dtype=torch.float64)
    density = AnnealedDensity(CountedDensity(target), target.base)
    x = target.sample(300, torch.Generator().manual_seed(0))
    flow = LatentFlow.new(4, torch.float64, seed=0).refit(x, None, steps=50)
    state = density.state(x, 0.7)
    latent = flow.to_latent(state)
    f = flow.density(density.at(0.7))
    ev = f(latent.position)
    torch.testing.assert_close(ev.log_prob, latent.log_prob)
    torch.testing.assert_close(LatentFlow.to_data(latent).position, x)
    z, h = latent.position[:4], 1e-6
    eye = torch.eye(4, dtype=torch.float64)
    fd = torch.stack([(f(z + h * eye[j]).log_prob - f(z - h * eye[j]).log_prob) / (2 * h)
                      for j in range(4)], 1)  # fmt: skip
    torch.testing.assert_close(f(z).grad, fd, rtol=1e-5, atol=1e-5)
    r = si.sample(
        shifted_gaussian(), "smc", n=1000, seed=0, mass_matrix="flow", batches=2, reverse=None
    )
    assert abs(r.log_Z - LOG_Z) < 4 * r.log_Z_stderr + 0.02
    with pytest.raises(ValueError, match="mass_matrix must be"):
        si.sample(shifted_gaussian(), "smc", n=400, seed=0, mass_matrix="flows")


def test_nets_log_z_gets_the_same_bounds():
    """NETS with b = 0 and no moves over 3 steps is importance sampling through a path far
    too short: its bounds disagree, it warns, and the widened error bar covers log Z."""
    r = si.sample(shifted_gaussian(), "nets", n=400, seed=0, drift=None, eps=0.0, steps=3,
                  reverse_walkers=400)  # fmt: skip
    info = r.info
    assert info.reverse_source == "exact" and info.log_Z_lower == r.log_Z
    assert info.log_Z_upper > LOG_Z - 3 * info.log_Z_upper_stderr
    assert abs(r.log_Z - LOG_Z) > 3 * info.log_Z_mc_stderr  # the own error bar misses
    assert abs(r.log_Z - LOG_Z) <= 3 * r.log_Z_stderr  # the widened one covers
    assert any("forward and reverse runs disagree" in w for w in r.warnings)
    off = si.sample(shifted_gaussian(), "nets", n=400, seed=0, drift=None, eps=0.0, steps=3,
                    reverse=None)  # fmt: skip
    assert "log_Z_upper" not in off.info and off.evaluations < r.evaluations


def test_smc_error_bar_is_at_least_that_of_perfectly_mixing_moves():
    """The spread of R runs estimates SMC's error with R - 1 degrees of freedom and can come
    out far below the truth's; the error bar is at least the perfect-mixing one,
    sqrt(levels (1/cess - 1) / n) (R = 2 here: one degree of freedom, the floor often binds).
    With a fixed ladder (steps=K) there is no floor."""
    from interpolants.samplers.diagnostics import log_Z_over_batches
    from interpolants.samplers.escalation import mixed_stderr, stderr_floor

    assert stderr_floor(40, 0.9, 4000) == mixed_stderr(40, 0.9, 4000)
    measured = [math.log(0.5)] * 6  # 3 levels of 2 runs, CESS 1/2 each with the transport
    assert stderr_floor(40, 0.9, 100, measured, runs=2) == pytest.approx(math.sqrt(3 / 100))
    target, bound = shifted_gaussian(), 0
    for seed in range(6):
        r = si.sample(target, "smc", n=200, seed=seed, batches=2, reverse=None, escalate=0)
        floor = mixed_stderr(r.info.levels, 0.99, 200)
        spread = log_Z_over_batches(r.info.log_Z_batches)[1]
        assert r.log_Z_stderr == pytest.approx(max(spread, floor))
        bound += spread < floor
    assert bound >= 1  # the floor decided at least one error bar
    grid = si.sample(target, "smc", n=200, seed=0, batches=2, steps=20, reverse=None, escalate=0)
    assert grid.log_Z_stderr == log_Z_over_batches(grid.info.log_Z_batches)[1]
