"""The committed reference values of the named targets against short independent runs.

Each check compares a committed number with a fresh, cheap estimate and fails when they
differ by more than a few combined standard errors (or, for exact quadratures, more than the
stated error); the long runs that made the numbers are in benchmarks/references/.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

import interpolants as si

REFERENCES = Path(__file__).resolve().parents[1] / "benchmarks" / "references"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"reference_{name}", REFERENCES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_consistent(estimate: float, se: float, ref: float, ref_se: float, what: str) -> None:
    z = abs(estimate - ref) / math.sqrt(se**2 + ref_se**2)
    assert z < 4.5, f"{what}: {estimate:.6g} +- {se:.2g} vs reference {ref:.6g} +- {ref_se:.2g}"


def test_phi4_short_hmc_matches_reference():
    target = si.targets.get("phi4", L=8, dtype=torch.float64)
    refs = target.references
    init = 0.3 * torch.randn(
        32, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )
    r = si.sample(target, "hmc", n=32 * 150, seed=1, init=init, warmup=200)
    m = r.chain_samples.mean(2)  # (draws, chains)
    chain_means = m.abs().mean(0)
    mean, se = float(chain_means.mean()), float(chain_means.std() / math.sqrt(32))
    assert_consistent(mean, se, refs["abs_magnetization"], refs["abs_magnetization_stderr"], "|m|")
    chi2 = 64 * m.square().mean(0)
    assert_consistent(
        float(chi2.mean()), float(chi2.std() / math.sqrt(32)),
        refs["two_point_susceptibility"], refs["two_point_susceptibility_stderr"], "chi_2",
    )  # fmt: skip
    chi, chi_se = load_script("phi4").jackknife(
        m, lambda v: 64 * (v.square().mean() - v.abs().mean().square())
    )
    assert_consistent(chi, chi_se, refs["susceptibility"], refs["susceptibility_stderr"], "chi")
    # the larger lattice has the smaller <|m|> (symmetric phase, <|m|> ~ 1/L)
    assert si.targets.get("phi4", L=16).references["abs_magnetization"] < 0.6 * mean


def test_phi4_1d_positive_weight_by_coarse_transfer_operator():
    script = load_script("phi4_1d")
    for b in (0.001, 0.01):
        refs = si.targets.get("phi4_1d", b=b).references
        # a coarser grid and fewer nodes than the committed run: still within 1e-6
        p = script.positive_weight(b, eps=0.1, nodes=60, resolution=0.6)
        assert p == pytest.approx(refs["positive_mode_weight"], abs=1e-6)
        flipped = si.targets.get("phi4_1d", b=-b).references["positive_mode_weight"]
        assert flipped == pytest.approx(1 - refs["positive_mode_weight"], abs=1e-12)


def test_particles_short_tempering_run_in_the_drop_matches_reference():
    # A short parallel-tempering run over the drop side (kT = 0.075 ... 0.085, where the drop
    # has weight >= 0.988), all replicas started in a drop. Short single-temperature runs from
    # a compact drop are not used here: they under-sample the rare evaporation of a particle
    # and read the order parameter too high with a too-small error (HMC, 32 x 100 draws:
    # 0.971 +- 0.0005 at kT = 0.075 against 0.9652 +- 0.0003); the swaps with the hotter
    # replicas bring evaporated configurations in.
    script = load_script("particles")
    temperatures = [0.075, 0.0775, 0.08, 0.0825, 0.085]
    out = script.parallel_tempering(temperatures, 8, 100, 300, 5, "drop")
    for k, kT in enumerate(temperatures):
        refs = si.targets.get("particles", kT=kT).references
        for trace, key in (("u", "energy_per_particle"), ("op", "order_parameter")):
            mean, se = script.summarise(out[trace][:, :, k])[:2]
            assert_consistent(mean, se, refs[key], refs[f"{key}_stderr"], f"{key} at kT={kT}")
    # the default kT = 0.09 is a mixture: more ordered than the gas at 0.105, less than 0.075
    cold = si.targets.get("particles", kT=0.075).references
    mid = si.targets.get("particles").references
    hot = si.targets.get("particles", kT=0.105).references
    assert hot["order_parameter"] < mid["order_parameter"] < cold["order_parameter"]
    assert 0.05 < mid["drop_fraction"] < 0.95


def test_radial_velocity_evidence_and_modes_from_fresh_prior_draws():
    script = load_script("radial_velocity")
    target = si.targets.get("radial_velocity", dtype=torch.float64)
    refs = target.references
    # the closed-form marginal likelihood against the target's own likelihood by quadrature
    theta = torch.tensor([[2.67372, 1.25226, 0.29709, 9.03748]], dtype=torch.float64)
    ((closed, quad),) = script.quadrature_check(target, theta)
    assert closed == pytest.approx(quad, abs=1e-4)
    # 3e5 fresh prior draws (another seed): log Z and the weight of the 14.5-day mode
    gen = torch.Generator().manual_seed(7)
    th = script.draw_theta(300_000, gen)
    lm = script.log_marginal(th, target.data, target.t_ref)
    w = torch.softmax(lm, 0)
    log_Z = float(torch.logsumexp(lm, 0)) - math.log(lm.shape[0])
    ess = float(1 / w.square().sum())
    se = math.sqrt((lm.shape[0] / ess - 1) / (lm.shape[0] - 1))
    assert_consistent(log_Z, se, refs["log_Z"], refs["log_Z_stderr"], "log Z")
    P = th[:, 0].exp()
    inside = ((P > 13.0) & (P < 16.5)).double()
    p = float((w * inside).sum())
    p_se = float((w.square() * (inside - p).square()).sum().sqrt())
    key = "13 < P < 16.5"
    assert_consistent(p, p_se, refs["mode_weights"][key], refs["mode_weights_stderr"][key], "mode")


def test_logistic_regression_short_importance_run_matches_reference():
    """A fresh Student-t importance sampler (another seed, 2 x 10^4 draws) against the stored
    log Z, means and sds; the Laplace log Z is within 0.2 of it (0.12 low)."""
    script = load_script("logistic_regression")
    refs = si.targets.get("logistic_regression").references
    out = script.reference(draws=20_000, seed=3)
    assert_consistent(out["log_Z"], out["log_Z_stderr"], refs["log_Z"], refs["log_Z_stderr"],
                      "log Z")  # fmt: skip
    for key in ("mean", "sd"):
        for k in range(11):
            assert_consistent(float(out[key][k]), float(out[f"{key}_stderr"][k]),
                              refs[key][k], refs[f"{key}_stderr"][k], f"{key}[{k}]")  # fmt: skip
    _, _, laplace = script.laplace(script.target64())
    assert abs(laplace - refs["log_Z"]) < 0.2


def test_item_response_data_and_coarse_quadrature_match_reference():
    """The shipped responses are redrawn from their seed; a coarse quadrature over log sigma
    (method B of the script: 11 nodes, 2 x 1000 inner draws each) against the stored log Z
    and the moments of log sigma and the difficulties."""
    script = load_script("item_response")
    assert tuple("".join(map(str, row)) for row in script.simulate()) == script.ITEM_RESPONSES
    refs = si.targets.get("item_response").references
    out = script.quadrature_reference(lo=-1.5, hi=1.5, h=0.3, inner=2000, replicates=2, seed=5)
    assert out["edge_weights"][0] < 1e-6 and out["edge_weights"][1] < 1e-6
    # two replicates give a rough error: allow 0.01 beside it (the inner samplers' ESS ~ 80%)
    assert abs(out["log_Z"] - refs["log_Z"]) < 4 * out["log_Z_stderr"] + 0.01
    # a coarse check against gross errors (seen: at most 0.022 in the means and 0.016 in the
    # sds); the scripts compare the long runs within their standard errors
    for k in [0, *range(31, 41)]:  # log sigma, b: features 0 and 31..40 of both forms
        assert abs(float(out["mean"][k]) - refs["mean"][k]) < 0.15 * refs["sd"][k], k
        assert abs(float(out["sd"][k]) - refs["sd"][k]) < 0.15 * refs["sd"][k], k
