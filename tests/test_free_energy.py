"""Free-energy differences: the estimators against closed forms and pymbar, every method on
Gaussians of known Delta F, honest error bars, the escort's exact inverse, bad input."""

from __future__ import annotations

import math

import pytest
import torch

import interpolants as si
from interpolants.samplers.free_energy import (
    Affine,
    EscortField,
    FreeEnergyConfig,
    HeunTransport,
    Quantile,
    bar,
    bar_equation,
    fit_escort,
    free_energy,
    jarzynski,
)
from interpolants.targets import Target

pytestmark = pytest.mark.usefixtures("one_thread")


def gaussian(mu: float, s: float, d: int, log_c: float = 0.0, exact: bool = True) -> Target:
    """N(mu 1, s^2 I) times exp(log_c): log Z = log_c + d (log(2 pi) / 2 + log s)."""
    mean = torch.full((d,), float(mu), dtype=torch.float64)

    def log_prob(x: torch.Tensor) -> torch.Tensor:
        return -0.5 * ((x - mean) / s).square().sum(1) + log_c

    def draw(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return mean + s * torch.randn(n, d, generator=generator, dtype=torch.float64)

    log_z = log_c + d * (0.5 * math.log(2 * math.pi) + math.log(s))
    return Target(log_prob, d, log_Z=log_z, sample=draw if exact else None, name=f"N({mu},{s})")


def truth(a: Target, b: Target) -> float:
    return -(b.log_Z - a.log_Z)


PAIRS = {
    "1d": (gaussian(0.0, 1.0, 1), gaussian(1.0, 1.5, 1, log_c=0.3)),
    "5d": (gaussian(0.0, 1.0, 5), gaussian(0.5, 0.8, 5, log_c=-1.0)),
}
FAST_ESCORT = {"train_steps": 400, "steps": 8}


# --- estimators -------------------------------------------------------------------------------


def test_jarzynski_of_constant_work_is_exact_with_zero_error():
    df, se = jarzynski(torch.full((10,), 2.5))
    assert df == pytest.approx(2.5) and se == pytest.approx(0.0, abs=1e-12)


def test_jarzynski_of_gaussian_work_is_its_closed_form():
    # W ~ N(m, s^2): -log E exp(-W) = m - s^2 / 2
    g = torch.Generator().manual_seed(0)
    w = 1.0 + 0.5 * torch.randn(200_000, generator=g, dtype=torch.float64)
    df, se = jarzynski(w)
    assert abs(df - (1.0 - 0.125)) < 4 * se and se < 0.003


def test_bar_solves_bennetts_equation_and_recovers_a_gaussian_work_pair():
    # Crooks-consistent Gaussian works: W_F ~ N(dF + s^2/2, s^2), W_R ~ N(-dF + s^2/2, s^2)
    g = torch.Generator().manual_seed(1)
    df_true, s = 1.3, 1.5
    wf = df_true + s * s / 2 + s * torch.randn(3000, generator=g, dtype=torch.float64)
    wr = -df_true + s * s / 2 + s * torch.randn(2000, generator=g, dtype=torch.float64)
    df, se = bar(wf, wr)
    assert abs(bar_equation(df, wf, wr)) < 1e-6
    assert abs(df - df_true) < 3 * se and 0 < se < 0.1


def test_bar_matches_pymbar_bar_and_mbar():
    pymbar = pytest.importorskip("pymbar")
    from pymbar import other_estimators

    a, b = PAIRS["5d"]
    g = torch.Generator().manual_seed(2)
    x, y = a.sample(400, g), b.sample(300, g)
    u_a = lambda z: -a.log_prob(z)  # noqa: E731
    u_b = lambda z: -b.log_prob(z)  # noqa: E731
    wf, wr = u_b(x) - u_a(x), u_a(y) - u_b(y)
    df, se = bar(wf, wr)
    ref = other_estimators.bar(wf.numpy(), wr.numpy())
    assert df == pytest.approx(float(ref["Delta_f"]), abs=1e-8)
    assert se == pytest.approx(float(ref["dDelta_f"]), rel=1e-6)
    z = torch.cat([x, y])
    mbar = pymbar.MBAR(torch.stack([u_a(z), u_b(z)]).numpy(), [400, 300])
    out = mbar.compute_free_energy_differences()
    assert df == pytest.approx(float(out["Delta_f"][0, 1]), abs=1e-6)


def test_estimators_refuse_too_few_or_nan_works():
    with pytest.raises(ValueError, match="w_reverse"):
        bar(torch.zeros(5), torch.zeros(1))
    with pytest.raises(ValueError, match="NaN"):
        jarzynski(torch.tensor([0.0, math.nan]))


# --- every method on Gaussians of known Delta F ---------------------------------------------------

CASES = [
    ("bar", {}),
    ("jarzynski", {}),
    ("jarzynski", {"direction": "reverse"}),
    ("jarzynski", {"steps": 8, "moves": 2}),
    ("escorted", FAST_ESCORT),
]


@pytest.mark.parametrize("pair", sorted(PAIRS))
@pytest.mark.parametrize(("method", "options"), CASES)
def test_every_method_is_within_three_stderr_of_the_truth(pair, method, options):
    a, b = PAIRS[pair]
    for seed in range(3):
        est = free_energy(a, b, method=method, n=1000, seed=seed, **options)
        assert est.stderr > 0 and math.isfinite(est.delta_F)
        assert abs(est.delta_F - truth(a, b)) < 3 * est.stderr, (seed, est)
        assert est.evaluations == est.evaluations_a + est.evaluations_b > 0


def test_the_escort_beats_bar_at_equal_evaluations_on_a_10d_pair():
    a, b = gaussian(0.0, 1.0, 10), gaussian(1.0, 1.5, 10, log_c=0.3)
    plain = free_energy(a, b, method="bar", n=1000, seed=0)
    escorted = free_energy(a, b, method="escorted", n=1000, seed=0, **FAST_ESCORT)
    # 4 evaluations per work walker on half the draws (as BAR's 2 on all) and the held-out check
    # of two escorts (the premap alone, the premap and the flow) on an eighth of the draws each
    assert escorted.evaluations == 1.5 * plain.evaluations
    assert not escorted.info["crossfit"]  # exact draws: no cross-fitting by default
    assert escorted.info["escort_used"]
    assert abs(escorted.delta_F - truth(a, b)) < 3 * escorted.stderr
    efficiency = escorted.stderr**2 * escorted.evaluations
    assert efficiency < 0.25 * plain.stderr**2 * plain.evaluations, (escorted, plain)


def test_an_escort_that_does_not_help_is_dropped_on_held_out_draws():
    a = gaussian(0.0, 1.0, 3)
    b = gaussian(0.0, 1.0, 3, log_c=0.4)  # the same shape: the instantaneous works are exact
    est = free_energy(a, b, method="escorted", n=200, seed=0, train_steps=100)
    assert not est.info["escort_used"]
    assert est.delta_F == pytest.approx(-0.4, abs=1e-12) and est.stderr < 1e-10


def test_cross_fitting_gives_every_draw_a_work_and_honest_error_bars_over_seeds():
    # two escorts, each fitted on one half and making the works of the other; pooled by BAR.
    # No premap, few Adam steps: imperfect maps, so that the works keep some variance
    a, b = PAIRS["5d"]
    options = {"affine": "none", "train_steps": 100, "steps": 4, "crossfit": True}
    runs = [free_energy(a, b, method="escorted", n=400, seed=s, **options) for s in range(30)]
    first = runs[0]
    assert first.info["crossfit"] and first.info["escort"].count(",") == 1
    assert first.w_forward.shape == (400,) and bool(first.w_forward.isfinite().all())
    assert first.w_reverse.shape == (400,) and bool(first.w_reverse.isfinite().all())
    spread = torch.tensor([r.delta_F for r in runs]).std().item()
    mean_se = sum(r.stderr for r in runs) / len(runs)
    assert 0.6 < spread / mean_se < 1.6, (spread, mean_se)
    bias = sum(r.delta_F for r in runs) / len(runs) - truth(a, b)
    assert abs(bias) < 3 * spread / math.sqrt(len(runs)) + 0.005, bias
    plain = free_energy(a, b, method="escorted", n=400, seed=0, **(options | {"crossfit": False}))
    assert plain.w_forward.shape == (200,) and not plain.info["crossfit"]


def test_the_held_out_check_keeps_the_premap_when_the_flow_is_spoiled():
    # lr = 5 ruins the flow; the dense affine premap is exact for Gaussians
    a, b = gaussian(0.0, 1.0, 3), gaussian(2.0, 0.5, 3, log_c=0.7)
    est = free_energy(a, b, method="escorted", n=400, seed=0, lr=5.0, train_steps=50, steps=2)
    assert est.info["escort"] == "dense", est.info
    assert est.info["held_out_stderr_dense"] < est.info["held_out_stderr_flow"]  # inf: NaN works
    assert est.info["held_out_stderr_dense"] < est.info["held_out_stderr_none"]
    assert est.delta_F == pytest.approx(truth(a, b), abs=5 * est.stderr + 1e-6)


@pytest.mark.parametrize(
    ("method", "direction"), [("bar", None), ("jarzynski", "forward"), ("jarzynski", "reverse")]
)
def test_the_stderr_is_honest_over_seeds(method, direction):
    # a shift of the mean: exp(-W) is log-normal, all its moments finite (one-sided
    # estimates from the narrower to a wider Gaussian, s_b > sqrt(2) s_a, have infinite
    # variance and no honest error bar: docs/free_energy.md)
    a, b = gaussian(0.0, 1.0, 1), gaussian(0.8, 1.0, 1, log_c=0.3)
    options = {} if direction is None else {"direction": direction}
    runs = [free_energy(a, b, method=method, n=400, seed=s, **options) for s in range(40)]
    spread = torch.tensor([r.delta_F for r in runs]).std().item()
    mean_se = sum(r.stderr for r in runs) / len(runs)
    assert 0.6 < spread / mean_se < 1.6, (spread, mean_se)
    bias = sum(r.delta_F for r in runs) / len(runs) - truth(a, b)
    assert abs(bias) < 3 * spread / math.sqrt(len(runs)) + 0.01


def test_an_exact_affine_escort_gives_zero_variance_works():
    a, b = gaussian(0.0, 1.0, 3), gaussian(2.0, 0.5, 3, log_c=0.7)

    def affine(t0: float, t1: float, x: torch.Tensor):
        logdet = torch.full(x.shape[:1], 3 * math.log(0.5), dtype=torch.float64)
        if t1 > t0:
            return 2.0 + 0.5 * x, logdet
        return (x - 2.0) / 0.5, -logdet

    est = free_energy(a, b, method="escorted", n=200, seed=0, transport=affine)
    assert est.w_forward.std() < 1e-10 and est.w_reverse.std() < 1e-10
    assert est.delta_F == pytest.approx(truth(a, b), abs=1e-10)
    assert est.stderr < 1e-8
    assert est.ess_forward == pytest.approx(1.0)


def test_draws_by_hmc_when_a_target_has_no_sampler_are_counted():
    a, b = gaussian(0.0, 1.0, 2, exact=False), gaussian(0.5, 1.2, 2, log_c=0.2)
    est = free_energy(a, b, method="bar", n=400, seed=0, chains=4, warmup=100)
    assert est.draws == {"a": "hmc", "b": "exact"}
    assert est.evaluations_a > 10 * 400 and est.evaluations_b == 2 * 400
    assert abs(est.delta_F - truth(a, b)) < 4 * est.stderr


# --- the escort --------------------------------------------------------------------------------


def test_the_heun_transport_inverse_undoes_the_map_and_its_log_det():
    torch.manual_seed(0)
    mean, scale = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    field = EscortField(3, 16, 2, False, mean, scale).double()
    with torch.no_grad():
        field.net[-1].weight.normal_(0, 0.3)
    field.requires_grad_(False)
    t = HeunTransport(field, 6)
    x = torch.randn(50, 3, dtype=torch.float64)
    y, ld = t(0.0, 1.0, x)
    back, ld_back = t(1.0, 0.0, y)
    assert (back - x).abs().max() < 1e-7 and (ld + ld_back).abs().max() < 1e-7
    assert ld.abs().max() > 1e-3 and t.failed == 0


@pytest.mark.parametrize("kind", ["dense", "diag", "scalar", "quantile"])
def test_the_premaps_are_inverted_exactly_with_their_log_dets(kind):
    g = torch.Generator().manual_seed(3)
    x0 = torch.randn(400, 4, generator=g, dtype=torch.float64)
    x1 = 1.5 * torch.randn(400, 4, generator=g, dtype=torch.float64).pow(3) + 0.3
    m = Quantile.matching(x0, x1) if kind == "quantile" else Affine.matching(x0, x1, kind)
    x = 3 * torch.randn(50, 4, generator=g, dtype=torch.float64)  # tails too
    y, ld = m.forward(x)
    back, ld_back = m.inverse(y)
    assert (back - x).abs().max() < 1e-8 and (ld + ld_back).abs().max() < 1e-8
    # the log-det is that of the Jacobian (finite differences, one row)
    h, row = 1e-6, x[:1]
    jac = torch.stack([(m.forward(row + h * e)[0] - m.forward(row - h * e)[0])[0] / (2 * h)
                       for e in torch.eye(4, dtype=torch.float64)], 1)  # fmt: skip
    assert float(torch.linalg.slogdet(jac)[1]) == pytest.approx(float(ld[0]), abs=1e-4)


def lattice_gaussian(s: float, L: int, log_c: float = 0.0) -> Target:
    """A field on an L x L lattice: N(0, s^2 I) with the ``L`` attribute of lattice targets."""
    t = gaussian(0.0, s, L * L, log_c)
    t.L = L
    return t


def test_a_lattice_escort_commutes_with_translations_and_is_exact_in_its_works():
    a, b = lattice_gaussian(1.0, 4), lattice_gaussian(1.3, 4, log_c=0.2)
    est = free_energy(a, b, method="escorted", n=600, seed=0, train_steps=200, affine="none")
    assert est.info["field"] == "lattice" and est.info["heun_steps"] == 4
    assert abs(est.delta_F - truth(a, b)) < 3 * est.stderr
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(300, 16, generator=g, dtype=torch.float64)
    x1 = 1.3 * torch.randn(300, 16, generator=g, dtype=torch.float64)
    field, _ = fit_escort(x0, x1, steps=100, batch_size=64, lr=2e-3, width=8, depth=1,
                          periodic=False, generator=g, lattice=4)  # fmt: skip
    transport = HeunTransport(field, 3)
    x = torch.randn(20, 16, generator=g, dtype=torch.float64)
    y, ld = transport(0.0, 1.0, x)
    shifted = x.view(20, 4, 4).roll((1, 2), (1, 2)).reshape(20, 16)
    y_shifted, ld_shifted = transport(0.0, 1.0, shifted)
    assert torch.allclose(y_shifted, y.view(20, 4, 4).roll((1, 2), (1, 2)).reshape(20, 16))
    assert torch.allclose(ld_shifted, ld) and ld.abs().max() > 1e-3  # a map that moved
    back, ld_back = transport(1.0, 0.0, y)
    assert (back - x).abs().max() < 1e-7 and (ld + ld_back).abs().max() < 1e-7
    with pytest.raises(ValueError, match="field"):
        free_energy(*PAIRS["5d"], method="escorted", n=100, field="lattice")
    with pytest.raises(ValueError, match="field"):
        free_energy(a, b, method="escorted", n=100, field="conv")


def test_a_periodic_escort_commutes_with_integer_shifts():
    field = EscortField(4, 16, 2, True, torch.zeros(4), torch.ones(4)).double()
    with torch.no_grad():
        field.net[-1].weight.normal_(0, 0.3)
    field.requires_grad_(False)
    t = HeunTransport(field, 4)
    x = torch.rand(20, 4, dtype=torch.float64)
    y, ld = t(0.0, 1.0, x)
    y2, ld2 = t(0.0, 1.0, x + torch.tensor([1.0, -2.0, 0.0, 3.0], dtype=torch.float64))
    assert (y2 - y - torch.tensor([1.0, -2.0, 0.0, 3.0])).abs().max() < 1e-9
    assert (ld2 - ld).abs().max() < 1e-9


# --- the call and bad input -----------------------------------------------------------------


def test_the_public_call_and_result():
    a, b = PAIRS["1d"]
    est = si.free_energy(a, b, method="bar", n=100, seed=0)
    assert "delta_F" in repr(est) and "bar" in repr(est)
    d = est.to_dict()
    assert d["method"] == "bar" and d["n"] == 100 and d["evaluations"] == 400
    again = si.free_energy(a, b, method="bar", n=100, seed=0)
    assert again.delta_F == est.delta_F  # seeded


def test_bad_input_is_refused_by_name():
    a, b = PAIRS["1d"]
    with pytest.raises(ValueError, match="target_b has dim"):
        free_energy(a, PAIRS["5d"][1])
    with pytest.raises(ValueError, match="unknown method 'mbar'"):
        free_energy(a, b, method="mbar")
    with pytest.raises(ValueError, match="n must be"):
        free_energy(a, b, n=1)
    with pytest.raises(ValueError, match="'steps'"):
        free_energy(a, b, method="bar", steps=3)
    with pytest.raises(ValueError, match="'nonsense'"):
        free_energy(a, b, method="escorted", nonsense=1)
    with pytest.raises(ValueError, match="direction"):
        free_energy(a, b, method="jarzynski", direction="both")
    with pytest.raises(ValueError, match="target_a"):
        free_energy(object(), b)
    with pytest.raises(ValueError, match="train_fraction"):
        FreeEnergyConfig(train_fraction=1.5)
