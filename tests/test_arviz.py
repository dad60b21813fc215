"""Tests of SampleResult.to_arviz and .summary, and of the diagnostics against ArviZ (the
reference: R-hat, ESS, MCSE of the mean, sd and quantiles, HDI agree to 1e-6 on fixed chains).
The ArviZ tests are skipped without ArviZ; CI installs it (the ``dev`` extra)."""

from __future__ import annotations

import csv
import math
import sys
import warnings

import pytest
import scipy.special
import torch

from interpolants.app.sample_target import run_sample_target
from interpolants.distributions import DiagonalNormal
from interpolants.samplers import SampleResult, diagnostics, sample
from interpolants.samplers.arviz import variables_of
from interpolants.samplers.summary import coordinate_names, weighted_hdi
from interpolants.targets import EightSchools, RadialVelocity, Target

F64 = torch.float64
COLUMNS = ["mean", "sd", "hdi_3%", "hdi_97%", "mcse_mean", "mcse_sd", "ess_bulk", "ess_tail",
           "r_hat"]  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def az():
    return pytest.importorskip("arviz")


def ar1(draws: int, chains: int, phi: float, g: torch.Generator) -> torch.Tensor:
    z = torch.randn(draws, chains, generator=g, dtype=F64)
    x = torch.empty_like(z)
    x[0] = z[0]
    for t in range(1, draws):
        x[t] = phi * x[t - 1] + math.sqrt(1 - phi**2) * z[t]
    return x


def fixed_chains() -> dict[str, torch.Tensor]:
    """(draws, chains) chains: iid, AR(1) with phi = 0.9, heavy tails (Cauchy, odd draws),
    Student-t(3) rounded to halves (ties), a shifted chain, one chain."""
    g = torch.Generator().manual_seed(20261205)
    cauchy = torch.tan(math.pi * (torch.rand(301, 3, generator=g, dtype=F64) - 0.5))
    z = torch.randn(4, 200, 4, generator=g, dtype=F64)
    t3 = z[0] / (z[1:].square().sum(0) / 3).sqrt()  # Student-t with 3 degrees of freedom
    iid = torch.randn(500, 4, generator=g, dtype=F64)
    return {
        "iid": iid,
        "ar1_0.9": ar1(400, 4, 0.9, g),
        "cauchy_odd": cauchy,
        "t3_ties": torch.round(t3 * 2) / 2,
        "shifted": iid + torch.tensor([0.0, 0.0, 0.0, 0.4], dtype=F64),
        "one_chain": ar1(400, 1, 0.5, g),
    }


def close(ours: float, ref: float) -> bool:
    return ours == ref or abs(ours - ref) <= 1e-6 * abs(ref)


@pytest.mark.parametrize("name", list(fixed_chains()))
def test_diagnostics_agree_with_arviz(az, name):
    x = fixed_chains()[name]
    a = x.numpy().T.copy()  # ArviZ's (chain, draw)
    ours = {
        "ess_bulk": diagnostics.ess_bulk(x),
        "ess_tail": diagnostics.ess_tail(x),
        "ess_mean": diagnostics.ess_mean(x),
        "ess_sd": diagnostics.ess_sd(x),
        "mcse_mean": diagnostics.mcse_mean(x)[1],
        "mcse_sd": diagnostics.mcse_sd(x)[1],
    }
    ref = {
        "ess_bulk": az.ess(a, method="bulk"),
        "ess_tail": az.ess(a, method="tail"),
        "ess_mean": az.ess(a, method="mean"),
        "ess_sd": az.ess(a, method="sd"),
        "mcse_mean": az.mcse(a, method="mean"),
        "mcse_sd": az.mcse(a, method="sd"),
    }
    for prob in (0.025, 0.05, 0.25, 0.5, 0.95):
        ours[f"mcse_q{prob}"] = diagnostics.mcse_quantile(x, prob)[1]
        ref[f"mcse_q{prob}"] = az.mcse(a, method="quantile", prob=prob)
        ours[f"ess_q{prob}"] = diagnostics.ess_quantile(x, prob)
        ref[f"ess_q{prob}"] = az.ess(a, method="quantile", prob=prob)
    if x.shape[1] > 1:  # ArviZ leaves R-hat of one chain undefined
        ours["rhat"] = diagnostics.rank_rhat(x)
        ref["rhat"] = az.rhat(a, method="rank")
    flat = x.reshape(-1).numpy()
    for prob in (0.94, 0.5, 0.1):
        lo, hi = diagnostics.hdi(x, prob)[0].tolist()
        ours[f"hdi{prob}_lo"], ours[f"hdi{prob}_hi"] = lo, hi
        ref[f"hdi{prob}_lo"], ref[f"hdi{prob}_hi"] = az.hdi(flat, hdi_prob=prob).tolist()
    pairs = {k: (float(ours[k]), float(ref[k])) for k in ref}
    bad = {k: v for k, v in pairs.items() if not close(*v)}
    assert not bad, bad


def test_diagnostics_work_per_coordinate():
    chains = fixed_chains()
    x = torch.stack([chains["ar1_0.9"], chains["iid"][:400]], -1)
    for k in range(2):
        assert close(float(diagnostics.mcse_sd(x)[1][k]), float(diagnostics.mcse_sd(x[..., k])[1]))
        q = diagnostics.mcse_quantile(x, 0.1)[1][k]
        assert close(float(q), float(diagnostics.mcse_quantile(x[..., k], 0.1)[1]))
        assert diagnostics.hdi(x)[k].tolist() == diagnostics.hdi(x[..., k])[0].tolist()


def test_mcse_of_quantiles_shrinks_with_more_draws_and_nan_input():
    g = torch.Generator().manual_seed(0)
    small = diagnostics.mcse_quantile(torch.randn(200, 4, generator=g, dtype=F64), 0.5)[1]
    large = diagnostics.mcse_quantile(torch.randn(5000, 4, generator=g, dtype=F64), 0.5)[1]
    # iid N(0, 1): se(median) = sqrt(pi / 2 / S); 5x the draws, 1/5 the variance
    assert float(large) == pytest.approx(math.sqrt(math.pi / 2 / 20000), rel=0.25)
    assert float(small) > 2 * float(large)
    x = torch.randn(100, 4, 2, generator=g, dtype=F64)
    x[3, 1, 0] = math.nan
    _, se = diagnostics.mcse_quantile(x, 0.5)
    assert math.isnan(float(se[0])) and math.isfinite(float(se[1]))
    h = diagnostics.hdi(x)
    assert math.isnan(float(h[0, 0])) and math.isfinite(float(h[1, 0]))


def test_beta_quantile_matches_scipy():
    for a, b in ((1.05, 2.3), (40.5, 360.5), (3999.9, 1.5), (20001.0, 20001.0)):
        for p in (diagnostics.PHI_MINUS_ONE, 0.5, 1 - diagnostics.PHI_MINUS_ONE, 0.999):
            ref = float(scipy.special.betaincinv(a, b, p))
            assert diagnostics.beta_quantile(p, a, b) == pytest.approx(ref, rel=1e-9)


# --- to_arviz and summary on sampler results ----------------------------------------------


def named_gaussian() -> tuple[Target, torch.Tensor, torch.Tensor]:
    """N(m, diag(s^2)) in 3-d with coordinates mu, theta[0], theta[1]."""
    m = torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    s = torch.tensor([0.5, 2.0, 1.0], dtype=F64)
    target = Target(lambda x: -0.5 * ((x - m) / s).square().sum(1), dim=3,
                    base=DiagonalNormal(torch.zeros(3, dtype=F64), 2.0), name="gauss3")  # fmt: skip
    target.coordinate_names = ["mu", "theta[0]", "theta[1]"]
    return target, m, s


@pytest.fixture(scope="module")
def hmc_run() -> tuple[Target, torch.Tensor, torch.Tensor, SampleResult]:
    target, m, s = named_gaussian()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = sample(target, "hmc", n=2000, seed=0, warmup=200, chains=4)
    return target, m, s, result


def test_mcmc_to_arviz_round_trip(az, hmc_run):
    target, m, s, result = hmc_run
    idata = result.to_arviz(target=target)
    draws, chains, _ = result.chain_samples.shape
    post = idata.posterior
    assert post["mu"].dims == ("chain", "draw")
    assert post["theta"].dims == ("chain", "draw", "theta_dim_0")
    assert post["theta"].shape == (chains, draws, 2)
    x = torch.cat([torch.as_tensor(post["mu"].values)[..., None],
                   torch.as_tensor(post["theta"].values)], -1)  # fmt: skip
    assert torch.equal(x, result.chain_samples.double().transpose(0, 1))
    # lp is the target's log density at every draw (the trace and the draws line up)
    lp = torch.as_tensor(idata.sample_stats["lp"].values)
    assert torch.allclose(lp, target.log_prob(x.reshape(-1, 3)).reshape(chains, draws))
    assert float(idata.sample_stats["step_size"][0, 0]) == result.info["step_size"]
    assert idata.sample_stats.attrs["acceptance_rate"] == result.acceptance_rate
    assert idata.sample_stats.attrs["divergences"] == result.info["divergences"]
    assert idata.warmup_sample_stats["lp"].shape == (chains, result.info["warmup"])
    acc = torch.as_tensor(idata.sample_stats["acceptance_rate"].values)
    assert acc.shape == (chains, draws) and ((acc >= 0) & (acc <= 1)).all()
    assert float(acc.mean()) == pytest.approx(result.acceptance_rate, rel=1e-9)
    diverging = idata.sample_stats["diverging"].values
    assert diverging.dtype == bool and int(diverging.sum()) == result.info["divergences"]
    assert idata.posterior.attrs["method"] == "hmc" and idata.posterior.attrs["target"] == "gauss3"

    table = az.summary(idata, round_to="none")
    assert list(table.index) == ["mu", "theta[0]", "theta[1]"]
    for i, name in enumerate(table.index):
        row = table.loc[name]
        assert abs(row["mean"] - float(m[i])) <= 4 * row["mcse_mean"], (name, row)
        assert abs(row["sd"] - float(s[i])) <= 4 * row["mcse_sd"], (name, row)


def test_thinned_mala_lp_lines_up_with_the_draws(az):
    target, _, _ = named_gaussian()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = sample(target, "mala", n=120, seed=1, warmup=30, chains=3, thin=3)
    idata = result.to_arviz()
    x = torch.as_tensor(idata.posterior["x"].values)  # no names given: one variable x
    assert x.shape == (3, 40, 3) and idata.posterior["x"].dims[2] == "x_dim_0"
    lp = torch.as_tensor(idata.sample_stats["lp"].values)
    assert torch.allclose(lp, target.log_prob(x.reshape(-1, 3)).reshape(3, 40))
    assert idata.warmup_sample_stats["lp"].shape == (3, result.info["warmup"])
    steps = idata.warmup_sample_stats["step_size"].values
    assert (steps[1] == result.info["warmup_step_size"].numpy()).all()
    # per draw: the mean acceptance of the 3 moves since the last kept draw
    acc = torch.as_tensor(idata.sample_stats["acceptance_rate"].values)
    assert acc.shape == (3, 40)
    assert float(acc.mean()) == pytest.approx(result.acceptance_rate, rel=1e-9)


def test_mcmc_summary_agrees_with_arviz_summary(az, hmc_run):
    target, _, _, result = hmc_run
    ours = result.summary(target=target, show=False)
    ref = az.summary(result.to_arviz(target=target), round_to="none")
    assert list(ours.columns) == list(ref.columns) == COLUMNS
    assert list(ours.index) == list(ref.index)
    for name in ours.index:
        for col in COLUMNS:
            assert close(ours.row(name)[col], float(ref.loc[name, col])), (name, col)


def test_weighted_to_arviz(az):
    target, _, _ = named_gaussian()
    result = sample(target, "smc", n=200, seed=0, steps=8, moves=3, batches=4, reverse=None)
    idata = result.to_arviz(target=target, seed=3)
    stats = idata.sample_stats
    assert float(stats["log_marginal_likelihood"][0]) == result.log_Z
    assert float(stats["log_marginal_likelihood_stderr"][0]) == result.log_Z_stderr
    raw = idata.weighted_posterior
    walkers = torch.cat([torch.as_tensor(raw["mu"].values)[..., None],
                         torch.as_tensor(raw["theta"].values)], -1)[0]  # fmt: skip
    assert torch.equal(walkers, result.samples.double())
    weighted = idata.weighted_sample_stats
    assert torch.equal(
        torch.as_tensor(weighted["log_weight"].values[0]), result.log_weights.double()
    )
    assert torch.equal(torch.as_tensor(weighted["batch"].values[0]), result.groups.long())
    # the posterior is a resample of the walkers: every draw copies the walker it names
    walker = torch.as_tensor(stats["walker"].values[0])
    assert torch.equal(torch.as_tensor(idata.posterior["mu"].values[0]), walkers[walker, 0])
    again = result.to_arviz(target=target, seed=3).sample_stats["walker"].values
    other = result.to_arviz(target=target, seed=4).sample_stats["walker"].values
    assert (again == stats["walker"].values).all() and not (other == again).all()
    # resampled by weight: a walker with (nearly) no weight is (nearly) never drawn
    w = torch.softmax(result.log_weights.double(), 0)
    counts = torch.bincount(walker, minlength=result.n).double()
    assert counts[w < 1e-6 / result.n].sum() == 0
    mean, _ = result.expectation(lambda x: x)
    resampled_mean = torch.tensor(az.summary(idata, round_to="none")["mean"].to_numpy())
    assert torch.allclose(resampled_mean, mean, atol=0.5)


def test_summary_of_a_known_weighted_result():
    x = torch.tensor([[0.0, 10.0], [1.0, 10.0], [2.0, 10.0], [3.0, 11.0]], dtype=F64)
    w = torch.tensor([1.0, 1.0, 1.0, 5.0], dtype=F64)
    result = SampleResult(samples=x, method="ais", log_weights=w.log())
    table = result.summary(hdi_prob=0.6, show=False)
    assert table.columns[2:4] == ("hdi_20%", "hdi_80%")
    assert table.index == ("x[0]", "x[1]")
    mean = (w @ x) / 8
    sd = ((w[:, None] * (x - mean) ** 2).sum(0) / 8).sqrt()
    assert torch.allclose(table["mean"], mean) and torch.allclose(table["sd"], sd)
    # 5/8 of the weight sits on the last walker: the shortest interval of mass 0.6 is a point
    assert table.row("x[0]")["hdi_20%"] == table.row("x[0]")["hdi_80%"] == 3.0
    assert torch.allclose(table["ess_bulk"], torch.full((2,), 64.0 / 28, dtype=F64))
    assert torch.isnan(table["r_hat"]).all()
    _, se = result.expectation(lambda x: x)
    assert torch.allclose(table["mcse_mean"], se)
    assert "weighted ais walkers" in str(table)


def test_weighted_hdi_of_equal_weights_covers_prob():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1000, 1, generator=g, dtype=F64)
    lo, hi = weighted_hdi(x, torch.zeros(1000, dtype=F64), 0.9)[0].tolist()
    inside = ((x >= lo) & (x <= hi)).double().mean()
    assert 0.9 <= float(inside) <= 0.902
    assert -1.8 < lo < -1.5 and 1.5 < hi < 1.8


def test_summary_of_known_chains_prints_and_writes_csv(tmp_path, capsys):
    g = torch.Generator().manual_seed(2)
    chains = torch.randn(1000, 4, 2, generator=g, dtype=F64) * torch.tensor([1.0, 3.0]) + 5.0
    result = SampleResult(samples=chains.reshape(-1, 2), method="mala", chain_samples=chains)
    table = result.summary(names=["a", "b"])
    printed = capsys.readouterr().out
    assert printed == str(table) + "\n" and printed.splitlines()[1].startswith("a ")
    flat = chains.reshape(-1, 2)
    assert torch.allclose(table["mean"], flat.mean(0)) and torch.allclose(table["sd"], flat.std(0))
    assert torch.allclose(table["mean"], torch.tensor([5.0, 5.0], dtype=F64), atol=0.1)
    expected_se = flat.std(0) / diagnostics.ess_mean(chains).sqrt()
    assert torch.allclose(table["mcse_mean"], expected_se)
    assert (table["r_hat"] < 1.01).all() and (table["ess_bulk"] > 3000).all()
    table.to_csv(tmp_path / "s.csv")
    rows = list(csv.DictReader(open(tmp_path / "s.csv")))
    assert [r["name"] for r in rows] == ["a", "b"] and list(rows[0])[1:] == COLUMNS
    assert float(rows[1]["sd"]) == float(table.row("b")["sd"])


def test_names_variables_and_errors():
    assert variables_of(["mu", "theta[0]", "theta[1]", "beta[radius]"]) == {
        "mu": ([0], None), "theta": ([1, 2], [0, 1]), "beta": ([3], ["radius"])}  # fmt: skip
    with pytest.raises(ValueError, match="clashes"):
        variables_of(["mu", "mu[0]"])
    assert coordinate_names(2) == ["x[0]", "x[1]"]
    assert coordinate_names(10, target=EightSchools())[:3] == ["mu", "log_tau", "theta[0]"]
    assert Target(lambda x: x.sum(1), dim=2).coordinate_names is None
    for jitter in (False, True):
        rv = RadialVelocity(jitter=jitter)
        assert len(coordinate_names(rv.dim, target=rv)) == rv.dim
    with pytest.raises(ValueError, match="3 coordinate names for 2"):
        coordinate_names(2, ["a", "b", "c"])
    with pytest.raises(ValueError, match="distinct"):
        coordinate_names(2, ["a", "a"])


def test_eight_schools_variables_and_unnamed_targets(az):
    g = torch.Generator().manual_seed(0)
    chains = torch.randn(50, 2, 10, generator=g, dtype=F64)
    result = SampleResult(samples=chains.reshape(-1, 10), method="hmc", chain_samples=chains)
    idata = result.to_arviz(target=EightSchools(centered=False))
    assert set(idata.posterior.data_vars) == {"mu", "log_tau", "eta"}
    assert list(idata.posterior["eta"].coords["eta_dim_0"].values) == list(range(8))
    plain = result.to_arviz()
    assert set(plain.posterior.data_vars) == {"x"} and plain.posterior["x"].dims[2] == "x_dim_0"
    assert "sample_stats" not in plain.groups()  # nothing recorded for hand-made chains


def test_to_arviz_without_arviz_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "arviz", None)  # import arviz now raises ImportError
    result = SampleResult(samples=torch.zeros(4, 1), method="mala")
    with pytest.raises(ImportError, match=r'pip install "interpolants\[arviz\]"'):
        result.to_arviz()


def test_sample_target_writes_summary_csv(tmp_path):
    options = {"chains": 4, "warmup": 20}
    run_sample_target("eight_schools", "mala", n=80, out=tmp_path / "mcmc", options=options,
                      progress=False)  # fmt: skip
    rows = list(csv.DictReader(open(tmp_path / "mcmc" / "summary.csv")))
    assert [r["name"] for r in rows][:3] == ["mu", "log_tau", "theta[0]"] and len(rows) == 10
    assert list(rows[0])[1:] == COLUMNS
    assert all(math.isfinite(float(r[c])) for r in rows for c in ("mean", "sd", "hdi_3%"))
    assert all(float(r["r_hat"]) >= 1 for r in rows)  # 20 draws per chain: not mixed
    options = {"steps": 5, "moves": 3, "batches": 2, "reverse": None}
    run_sample_target("gmm40", "smc", n=40, seed=0, out=tmp_path / "smc", options=options)
    rows = list(csv.DictReader(open(tmp_path / "smc" / "summary.csv")))
    assert [r["name"] for r in rows] == ["x[0]", "x[1]"]
    assert math.isnan(float(rows[0]["r_hat"])) and float(rows[0]["ess_bulk"]) > 0
