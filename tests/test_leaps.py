"""Discrete samplers and LEAPS against exact enumeration of a 3 x 3 lattice (512 states)."""

import itertools
import json
import math

import pytest
import torch

import interpolants as si
from interpolants.samplers.annealing import TimeGrid
from interpolants.samplers.base import CountedDensity, State, make_generator
from interpolants.samplers.diagnostics import log_Z_from_weights
from interpolants.samplers.discrete import CTMCStep, SiteMoves, feynman_kac_rate, split_rates
from interpolants.samplers.discrete.runs import anneal_discrete
from interpolants.targets.discrete import DiscreteTarget, value_index

pytestmark = pytest.mark.usefixtures("one_thread")


def lattice(L=3, beta=0.4, h=0.1):
    """A periodic L x L Ising model as a user's DiscreteTarget, its states and exact log Z."""

    def log_prob(x):
        s = x.view(-1, L, L)
        return beta * ((s * (s.roll(1, 1) + s.roll(1, 2))).sum((1, 2)) + h * s.sum((1, 2)))

    states = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=L * L)))
    log_Z = float(torch.logsumexp(log_prob(states).double(), 0))
    colours = [torch.tensor([(i // L + i % L) % 3 == c for i in range(L * L)]) for c in range(3)]
    target = DiscreteTarget(log_prob, L * L, [-1.0, 1.0], colours=colours, log_Z=log_Z)
    return target, states


def exact_mean(target, states, f):
    lp = target.log_prob(states).double()
    return float((torch.softmax(lp, 0) * f(states).double()).sum())


class ExactRates:
    """Rates that solve the master equation d rho_t/dt = Q_t rho_t of the path exactly: the
    least-norm flux J = grad phi with graph Laplacian L phi = -d rho_t/dt over single-site
    moves, rates [J]_+ / rho_t, plus ``eps`` times Metropolis rates (detailed balance: they
    leave a_t unchanged and make every rate positive)."""

    def __init__(self, target, states, eps):
        n, d = states.shape
        self.q, self.d, self.eps = len(target.values), d, eps
        index = value_index(states, target.values)
        self.place = self.q ** torch.arange(d - 1, -1, -1)
        self.lp = target.log_prob(states).double()
        self.ell = self.lp + d * math.log(self.q)
        own = index * self.place
        code = own.sum(1)
        values = torch.arange(self.q)[None, None, :] * self.place[None, :, None]
        self.nb = code[:, None, None] - own[:, :, None] + values  # (n, d, q)
        adjacency = torch.zeros(n, n, dtype=torch.float64)
        adjacency[torch.arange(n)[:, None, None].expand_as(self.nb), self.nb] = 1
        adjacency.fill_diagonal_(0)
        self.pinv = torch.linalg.pinv(torch.diag(adjacency.sum(1)) - adjacency)
        self.tables = {}

    def rate(self, t):
        if t not in self.tables:
            rho = torch.softmax(t * self.lp, 0)
            drho = rho * (self.ell - (rho * self.ell).sum())
            phi = self.pinv @ drho
            flux = phi[self.nb] - phi[:, None, None]
            ratio = rho[self.nb] / rho[:, None, None]
            self.tables[t] = flux.clamp_min(0) / rho[:, None, None] + self.eps * ratio.clamp_max(1)
        return self.tables[t]

    def __call__(self, t, index, log_ratios=None):
        rate = self.rate(round(float(t[0]), 12))
        code = (index * self.place).sum(1)
        n = index.shape[0]
        at = index[:, :, None].expand(n, self.d, self.q)
        into = rate[self.nb[code], torch.arange(self.d)[None, :, None], at]
        table = torch.zeros(n, self.d, self.q, self.q, dtype=torch.float64)
        table.scatter_(2, at[:, :, None, :], rate[code][:, :, None, :])
        table.scatter_(3, at[..., None], into[..., None])
        return table


def ctmc_run(target, transport, steps, seed, n=2000, sweeps=0):
    density = CountedDensity(target)
    levels = TimeGrid(torch.linspace(0, 1, steps + 1, dtype=torch.float64))
    moves = SiteMoves(sweeps, target.colours, target.values)
    pops = anneal_discrete(target, density, n, 1, make_generator(seed), levels, moves, 0.0,
                           transport=transport)  # fmt: skip
    return pops.runs[0].log_w


def test_ratios_of_a_user_target_are_its_log_density_differences():
    target, states = lattice()
    x = states[torch.randperm(len(states), generator=torch.Generator().manual_seed(0))[:7]]
    lp, ratios = target.log_prob_and_ratios(x)
    for i in range(target.dim):
        for c, v in enumerate(target.values):
            y = x.clone()
            y[:, i] = v
            assert torch.allclose(target.log_prob(y) - lp, ratios[:, i, c], atol=1e-5)


def test_split_rates_reads_out_and_in_rates_from_one_table():
    table = torch.arange(2 * 3 * 3, dtype=torch.float64).view(1, 2, 3, 3) + 1
    index = torch.tensor([[2, 0]])
    out, into = split_rates(table, index)
    assert out[0, 0].tolist() == [table[0, 0, 2, 0], table[0, 0, 2, 1], 0.0]
    assert into[0, 1].tolist() == [0.0, table[0, 1, 1, 0], table[0, 1, 2, 0]]


def test_ctmc_kernel_is_a_probability_and_proposes_by_it():
    """exp(log K(y | x)) sums to 1 over every y (2 sites, 3 values) and matches draws."""
    values = torch.tensor([0.0, 1.0, 2.0])
    table = torch.rand(1, 2, 3, 3, generator=torch.Generator().manual_seed(1)).double() * 3
    step = CTMCStep(lambda t, index, r: table.expand(index.shape[0], -1, -1, -1), values)
    x = torch.tensor([[1.0, 2.0]])
    ys = torch.tensor(list(itertools.product([0.0, 1.0, 2.0], repeat=2)))
    from interpolants.samplers.discrete.ctmc import log_kernel

    out, _ = split_rates(table, value_index(x, values))
    log_k = torch.stack([log_kernel(out, value_index(x, values), value_index(y[None], values),
                                     0.3) for y in ys])  # fmt: skip
    assert float(log_k.exp().sum()) == pytest.approx(1.0, abs=1e-12)
    xs = x.expand(20000, -1)
    state = State(xs, torch.zeros(20000), torch.zeros(20000, 2, 3))
    y, _ = step.propose(0.0, 0.3, state, make_generator(0))
    freq = (value_index(y, values) * torch.tensor([3, 1])).sum(1).bincount(minlength=9) / 20000
    assert torch.allclose(freq.double(), log_k.exp().flatten(), atol=0.012)


def test_exact_rates_make_the_feynman_kac_rate_constant():
    """With rates that solve the master equation, a_t(x) = d log Z_t / dt for every x."""
    target, states = lattice()
    rates = ExactRates(target, states, eps=0.5)
    index = value_index(states, target.values)
    _, ratios = target.log_prob_and_ratios(states)
    for t in (0.2, 0.7):
        out, into = split_rates(rates(torch.full((512,), t), index), index)
        a = feynman_kac_rate(rates.ell, t * ratios.double(), out, into)
        rho = torch.softmax(t * rates.lp, 0)
        assert float(a.std()) < 1e-6
        assert float(a.mean()) == pytest.approx(float((rho * rates.ell).sum()), abs=1e-6)


def test_exact_rates_equalise_the_weights_as_the_steps_shrink():
    target, states = lattice()
    step = CTMCStep(ExactRates(target, states, eps=0.5), target.values)
    spread = [float(ctmc_run(target, step, steps, 0).std()) for steps in (20, 160)]
    assert spread[1] < 0.5 * spread[0]
    log_w = ctmc_run(target, step, 160, 1)
    log_z, se = log_Z_from_weights(log_w)
    assert abs(log_z - target.log_Z) < 4 * se
    ais = ctmc_run(target, CTMCStep(lambda t, i, r: torch.zeros(*i.shape, 2, 2), target.values),
                   160, 1)  # fmt: skip
    assert float(log_w.std()) < 0.3 * float(ais.std())


def test_zero_rates_are_ais():
    """No jumps: the weights are AIS's, bit for bit (no moves, the same walkers)."""
    target, _ = lattice()
    zero = CTMCStep(lambda t, index, r: torch.zeros(*index.shape, 2, 2), target.values)
    leaps = ctmc_run(target, zero, 10, 3, n=500)
    ais = si.sample(target, "ais", n=500, seed=3, steps=10, sweeps=0)
    assert torch.allclose(leaps - leaps.mean(), ais.log_weights - ais.log_weights.mean(), atol=1e-9)
    assert zero.record == [0.0] * 10


def test_any_rates_keep_log_Z_unbiased():
    """Untrained rates with Gibbs sweeps and resampling: log Z is right on average over
    seeds, and the runs' own standard errors match the spread of their estimates."""
    target, _ = lattice()
    model = si.sample(target, "leaps", n=8, seed=0, train_steps=0, batches=1).info.model
    runs = [si.sample(target, "leaps", n=1000, seed=seed, model=model, steps=20, sweeps=1,
                      batches=4) for seed in range(12)]  # fmt: skip
    z = torch.tensor([r.log_Z for r in runs], dtype=torch.float64)
    spread = float(z.std())
    assert abs(float(z.mean()) - target.log_Z) < 3 * spread / math.sqrt(len(runs))
    stderr = sum(r.log_Z_stderr for r in runs) / len(runs)
    assert 0.5 < stderr / spread < 2
    assert runs[0].info.jumps_per_level.mean() > 0.01  # the chain moves the walkers


def test_trained_leaps_beats_ais_at_the_same_levels():
    target, states = lattice()
    # the CTMC alone (sweeps=0) against AIS without sweeps
    r = si.sample(target, "leaps", n=2000, seed=0, train_steps=300, steps=40, sweeps=0,
                  resample_threshold=0.0, batches=1)  # fmt: skip
    ais = si.sample(target, "ais", n=2000, seed=0, steps=40, sweeps=0)
    assert abs(r.log_Z - target.log_Z) < 3 * r.log_Z_stderr
    assert r.ess > 0.5 > 5 * ais.ess
    assert r.info.loss_history[-20:].mean() < 0.2 * r.info.loss_history[:20].mean()
    m2, se = r.expectation(lambda x: x.mean(1) ** 2)
    assert abs(float(m2) - exact_mean(target, states, lambda s: s.mean(1) ** 2)) < 4 * float(se)
    again = si.sample(target, "leaps", n=2000, seed=5, model=r.info.model, steps=40, sweeps=0)
    assert again.info.training_steps == 0 and again.ess > 0.3


def test_discrete_ais_and_smc_recover_log_Z_and_moments():
    target, states = lattice()
    m2 = exact_mean(target, states, lambda s: s.mean(1) ** 2)
    for method, options in (("ais", {"steps": 30}), ("smc", {"sweeps": 2, "batches": 4})):
        r = si.sample(target, method, n=2000, seed=0, **options)
        assert abs(r.log_Z - target.log_Z) < 3.5 * r.log_Z_stderr, method
        est, se = r.expectation(lambda x: x.mean(1) ** 2)
        assert abs(float(est) - m2) < 4 * float(se), method


@pytest.mark.filterwarnings("ignore::interpolants.samplers.ConvergenceWarning")
@pytest.mark.parametrize("move", ["metropolis", "gibbs"])
def test_site_chains_leave_the_law_invariant(move):
    target, states = lattice()
    r = si.sample(target, "metropolis", n=4000, seed=0, move=move, warmup=50)
    for f in (lambda s: s.mean(1) ** 2, lambda s: s[:, 0] * s[:, 1]):
        est, se = r.expectation(f)
        assert abs(float(est) - exact_mean(target, states, f)) < 4 * float(se)
    assert r.info.sweep_evaluations == 3
    assert r.evaluations == 3 * (50 + r.info.draws_per_chain) * r.info.chains + r.info.chains


def test_leaps_checkpoints_resume_to_the_unbroken_run(tmp_path):
    target, _ = lattice()
    opts = {"n": 200, "steps": 10, "steps_per_run": 5, "train_walkers": 64, "batch_size": 64,
            "checkpoint_every": 1}  # fmt: skip
    whole = si.sample(target, "leaps", seed=2, train_steps=20, log_dir=tmp_path / "a", **opts)
    si.sample(target, "leaps", seed=2, train_steps=10, log_dir=tmp_path / "b", **opts)
    resumed = si.sample(target, "leaps", seed=2, train_steps=20, log_dir=tmp_path / "b",
                        resume=True, **opts)  # fmt: skip
    assert torch.equal(whole.log_weights, resumed.log_weights)
    assert torch.equal(whole.info.loss_history, resumed.info.loss_history)
    with pytest.raises(ValueError, match="resume refused"):
        si.sample(target, "leaps", seed=2, train_steps=20, log_dir=tmp_path / "b",
                  resume=True, **{**opts, "lr": 0.1})  # fmt: skip
    with pytest.raises(ValueError, match=r"resume and overwrite|holds"):
        si.sample(target, "leaps", seed=2, train_steps=20, log_dir=tmp_path / "b", **opts)


def test_bad_input_names_the_argument():
    target, _ = lattice()
    with pytest.raises(ValueError, match="for continuous targets"):
        si.sample(target, "hmc", n=10)
    with pytest.raises(ValueError, match="discrete target"):
        si.sample(si.targets.get("gmm40"), "leaps", n=10)
    with pytest.raises(ValueError, match="init"):
        si.sample(target, "ais", n=10, init=torch.ones(2, 9))
    with pytest.raises(ValueError, match="multiple of batches"):
        si.sample(target, "leaps", n=10, batches=4, train_steps=0)
    with pytest.raises(ValueError, match="move"):
        si.sample(target, "smc", n=10, move="swap")
    with pytest.raises(ValueError, match="unknown option"):
        si.sample(target, "leaps", n=10, step_size=0.1)
    with pytest.raises(ValueError, match="values"):
        si.sample(target, "metropolis", n=10, init=torch.zeros(2, 9))
    with pytest.raises(ValueError, match="values"):
        DiscreteTarget(lambda x: x.sum(1), 3, [1.0, 1.0])


def test_sample_target_command_on_ising(tmp_path):
    from interpolants.app.cli import main

    out = tmp_path / "run"
    code = main(["sample-target", "ising", "--method", "leaps", "-n", "200", "--quiet",
                 "--option", "target.L=4", "--option", "train_steps=20", "--option", "steps=10",
                 "--out", str(out)])  # fmt: skip
    assert code in (0, None)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["log_Z_true"] == pytest.approx(si.targets.get("ising", L=4).log_Z)
    assert {"abs_magnetisation", "energy_per_site", "susceptibility"} <= set(metrics)
    assert (out / "checkpoint.safetensors").exists() and (out / "summary.csv").exists()
    assert main(["sample-target", "ising", "--method", "hmc", "--out", str(tmp_path / "x")]) == 2


def test_bench_leaps_runs_every_method_at_matched_evaluations(tmp_path):
    from interpolants.app.discrete_bench import bench_leaps, format_leaps

    m = bench_leaps(tmp_path, L=4, betas=(0.4407,), seeds=2, n=200, steps=10, train_steps=10,
                    chains=16)  # fmt: skip
    leaps = [r for r in m["runs"] if r["method"] == "leaps"]
    assert leaps[0]["evaluations"] == leaps[1]["evaluations"]  # every seed gets the same options
    assert m["sweeps"] == 1 and m["chains"] == 16  # the defaults: one heat-bath sweep per level
    rows = {r["method"]: r for r in m["runs"] if r["seed"] == 0}
    assert set(rows) == {"leaps", "ais=sampling", "smc=sampling", "ais=total", "smc=total",
                         "swendsen-wang=total"}  # fmt: skip
    total = rows["leaps"]["evaluations"]
    assert abs(rows["ais=total"]["evaluations"] - total) <= 2 * 200
    assert "| leaps |" in format_leaps(m)


def test_leaps_on_a_potts_lattice_recovers_log_Z_and_the_order_parameter():
    """q = 3: the rate tables are 3 x 3 per site; log Z by the transfer matrix and the
    order parameter by enumeration (19 683 states) are covered by the run's error bars."""
    from interpolants.targets import Potts, enumerate_states

    target = Potts(3, 3, 1.0, dtype=torch.float64)
    states, log_p = enumerate_states(target)
    m_exact = float((log_p.exp() * target.magnetisation(states).double()).sum())
    r = si.sample(target, "leaps", n=2000, seed=1, train_steps=100, steps=20, sweeps=1,
                  batches=4, train_walkers=128)  # fmt: skip
    assert r.info.training_steps == 100 and r.ess > 0.3
    assert abs(r.log_Z - target.log_Z) < 3.5 * r.log_Z_stderr
    m, se = r.expectation(target.magnetisation)
    assert abs(float(m) - m_exact) < 4 * float(se)
