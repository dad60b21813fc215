"""Tests of the cluster moves (interpolants/samplers/cluster.py): the cluster labels against a
breadth-first search, invariance of the exact law under one Swendsen-Wang or Wolff move
(exact draws by enumeration, then a chi-square test on every state or z-tests of moments),
the power of that test against a wrong move, the runner's bookkeeping, the L = 16 references,
and the argument checks."""

import importlib.util
import math
import warnings
from pathlib import Path

import pytest
import torch
from scipy import stats

from interpolants.samplers.discrete.cluster import cluster_labels, run_cluster, swendsen_wang, wolff
from interpolants.targets import Ising, Phi4, Potts, enumerate_states, kaufman_energy_per_site

pytestmark = pytest.mark.usefixtures("one_thread")
D = torch.float64
Z_MAX = 5.0
N_EXACT = 200_000  # exact draws per invariance check


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def bfs_labels(right: torch.Tensor, down: torch.Tensor) -> list[int]:
    """Smallest site index of every site's cluster, by breadth-first search (one walker)."""
    L = right.shape[0]
    adj: dict[int, list[int]] = {i: [] for i in range(L * L)}
    for r in range(L):
        for c in range(L):
            i = r * L + c
            if right[r, c]:
                j = r * L + (c + 1) % L
                adj[i].append(j), adj[j].append(i)
            if down[r, c]:
                j = ((r + 1) % L) * L + c
                adj[i].append(j), adj[j].append(i)
    label = [-1] * (L * L)
    for start in range(L * L):
        if label[start] < 0:
            label[start], queue = start, [start]
            while queue:
                for j in adj[queue.pop()]:
                    if label[j] < 0:
                        label[j] = start
                        queue.append(j)
    return label


@pytest.mark.parametrize("L", [2, 3, 5, 8])
def test_cluster_labels_match_breadth_first_search(L):
    g = gen(L)
    for p in (0.3, 0.5, 0.7):
        right = torch.rand(20, L, L, generator=g) < p
        down = torch.rand(20, L, L, generator=g) < p
        a, b = cluster_labels(right, down, "torch"), cluster_labels(right, down, "scipy")
        assert torch.equal(a, b)
        for k in range(20):
            assert a[k].tolist() == bfs_labels(right[k], down[k])


def exact_draws(target, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    states, log_p = enumerate_states(target)
    idx = torch.multinomial(log_p.exp(), n, replacement=True, generator=gen(seed))
    return states, log_p.exp(), states[idx]


def state_index(x: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """The row of enumerate_states holding each state (last site fastest)."""
    q, dim = len(values), x.shape[1]
    digits = (x.unsqueeze(-1) == values.to(x)).to(torch.int64).argmax(-1)
    return (digits * q ** torch.arange(dim - 1, -1, -1)).sum(1)


def chi_square_pvalue(x: torch.Tensor, values: torch.Tensor, p: torch.Tensor) -> float:
    """p-value of the counts of every state against n p (states with n p < 5 pooled)."""
    counts = torch.bincount(state_index(x, values), minlength=len(p)).double()
    expected = len(x) * p
    big = expected >= 5
    obs = torch.cat([counts[big], counts[~big].sum(0, keepdim=True)])
    exp = torch.cat([expected[big], expected[~big].sum(0, keepdim=True)])
    keep = exp > 0
    stat = float(((obs - exp).square() / exp)[keep].sum())
    return float(stats.chi2.sf(stat, int(keep.sum()) - 1))


ISING_CASES = [(3, 0.5, 1.0), (3, 0.3, -1.0), (2, 0.6, 1.0), (4, 0.3, -1.0)]


@pytest.mark.parametrize("move", [swendsen_wang, wolff])
@pytest.mark.parametrize("L,beta,J", ISING_CASES)
def test_ising_moves_leave_the_exact_law_invariant(move, L, beta, J):
    target = Ising(L, beta, J=J, dtype=D)
    _, p, x = exact_draws(target, N_EXACT, seed=L)
    y = move(x, target, gen(1))
    assert y.shape == x.shape and not torch.equal(x, y)
    assert chi_square_pvalue(y, target.values, p) > 1e-4


def moment_z(target, y: torch.Tensor, states: torch.Tensor, p: torch.Tensor) -> list[float]:
    out = []
    for f in (lambda z: target.magnetisation(z).abs(), target.energy_per_site):
        v, exact = f(y), float((p * f(states)).sum())
        out.append(abs(float(v.mean()) - exact) / float(v.std() / math.sqrt(len(v))))
    return out


@pytest.mark.parametrize("move", [swendsen_wang, wolff])
@pytest.mark.parametrize("q,beta", [(3, 1.2), (3, 0.7)])
def test_potts_moves_leave_the_exact_law_invariant(move, q, beta):
    target = Potts(3, q, beta, dtype=D)
    states, p, x = exact_draws(target, N_EXACT, seed=q)
    y = x
    for k in range(3):
        y = move(y, target, gen(k))
    assert max(moment_z(target, y, states, p)) < Z_MAX
    if q == 3:  # 19683 states: the chi-square on states has enough draws per cell
        assert chi_square_pvalue(y, target.values, p) > 1e-4


def test_the_invariance_checks_detect_a_wrong_move():
    target = Ising(3, 0.5, dtype=D)
    states, p, x = exact_draws(target, N_EXACT, seed=3)
    wrong = swendsen_wang(x, Ising(3, 0.4, dtype=D), gen(1))  # bonds of the wrong beta
    assert chi_square_pvalue(wrong, target.values, p) < 1e-8
    potts = Potts(3, 3, 1.2, dtype=D)
    states, p, x = exact_draws(potts, N_EXACT, seed=4)
    wrong = wolff(x, Potts(3, 3, 1.0, dtype=D), gen(2))
    assert max(moment_z(potts, wrong, states, p)) > 10


def test_run_cluster_bookkeeping_and_reproducibility():
    target = Potts(4, 3, 1.0, dtype=D)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = run_cluster(target, n=250, chains=8, warmup=5, thin=2, seed=3)
        again = run_cluster(target, n=250, chains=8, warmup=5, thin=2, seed=3)
        w = run_cluster(target, n=40, chains=4, warmup=2, move="wolff")
    assert r.samples.shape == (250, 16) and r.chain_samples.shape == (32, 8, 16)
    assert r.evaluations == 8 * (5 + 32 * 2) and r.log_prob_trace.shape == (69, 8)
    assert r.method == "swendsen-wang" and w.method == "wolff"
    assert r.info["move"] == "swendsen-wang" and r.info["warmup"] == 5 and r.info["thin"] == 2
    assert 0 < r.info["mean_cluster_fraction"] <= 1 and r.acceptance_rate == 1.0
    assert torch.equal(r.samples, again.samples)
    assert bool(torch.isin(r.samples, target.values).all())
    torch.testing.assert_close(r.log_prob_trace[-1], target.log_prob(r.chain_samples[-1]))
    x32 = Ising(4, 0.5, dtype=torch.float32).base.sample(3, gen())
    for move in (swendsen_wang, wolff):
        y = move(x32, Ising(4, 0.5), gen())
        assert y.dtype == torch.float32 and bool(y.abs().eq(1).all())


@pytest.mark.parametrize(
    "target", [Ising(16, 0.6), Potts(16, 3, 0.8)], ids=["ising-0.6", "potts-0.8"]
)
def test_run_cluster_recovers_the_l16_references(target):
    refs = target.references
    assert "abs_magnetisation" in refs, "reference not filled"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = run_cluster(target, n=64 * 100, chains=64, warmup=20, seed=1)
    for name, f in [
        ("abs_magnetisation", lambda x: target.magnetisation(x).abs()),
        ("energy_per_site", target.energy_per_site),
    ]:
        mean, se = r.expectation(f)
        err = math.hypot(float(se), refs[f"{name}_stderr"])
        assert abs(float(mean) - refs[name]) < Z_MAX * err, (name, float(mean), refs[name])
    chi = float(target.susceptibility(r.samples))
    assert abs(chi - refs["susceptibility"]) < 0.25 * refs["susceptibility"]


@pytest.mark.parametrize("move", ["swendsen-wang", "wolff"])
def test_potts_q2_energy_at_l16_matches_kaufman(move):
    # [s_i = s_j] = (1 + s_i s_j) / 2: Potts q = 2 at beta is Ising at beta / 2, and
    # e_Potts = -1 + e_Ising / 2 per site (2 bonds per site)
    target = Potts(16, 2, 2 * 0.4)
    warmup = 20 if move == "swendsen-wang" else 300  # a Wolff move flips one small cluster
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = run_cluster(target, n=32 * 100, chains=32, warmup=warmup, seed=2, move=move)
    mean, se = r.expectation(target.energy_per_site)
    exact = -1 + kaufman_energy_per_site(16, 0.4) / 2
    assert abs(float(mean) - exact) < Z_MAX * float(se), (float(mean), float(se), exact)


def test_reference_script_near_beta_c_matches_the_stored_values():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "references" / "ising.py"
    spec = importlib.util.spec_from_file_location("reference_ising", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = script.measure("ising", 0.4407, chains=32, warmup=20, sweeps=100, seed=5)
    refs = Ising(16, 0.4407).references
    for name in ("abs_magnetisation", "energy_per_site"):
        mean, se = out[name]
        err = math.hypot(se, refs[f"{name}_stderr"])
        assert abs(mean - refs[name]) < Z_MAX * err, (name, mean, se, refs[name])
    assert abs(out["energy_per_site_exact"] - refs["energy_per_site_exact"]) < 1e-12
    assert "(16, 0.4407)" in script.entry(out, "today")


def test_bad_arguments_raise():
    x = Ising(3, 0.5, h=0.1).base.sample(2, gen())
    with pytest.raises(ValueError, match=r"^h must be 0"):
        swendsen_wang(x, Ising(3, 0.5, h=0.1))
    with pytest.raises(ValueError, match=r"^h must be 0"):
        run_cluster(Ising(3, 0.5, h=0.1), n=10)
    with pytest.raises(ValueError, match=r"^target must be"):
        swendsen_wang(torch.zeros(2, 16), Phi4(4))
    with pytest.raises(ValueError, match=r"^target must be"):
        run_cluster(Phi4(4), n=10)
    with pytest.raises(ValueError, match=r"^move must be"):
        run_cluster(Ising(3), n=10, move="metropolis")
    with pytest.raises(ValueError, match=r"^x must have shape"):
        wolff(torch.ones(2, 8), Ising(3))
    with pytest.raises(ValueError, match="not among the values"):
        swendsen_wang(torch.zeros(2, 9), Ising(3))
    with pytest.raises(ValueError, match=r"^warmup must be"):
        run_cluster(Ising(3), n=10, warmup=-1)
    with pytest.raises(ValueError, match=r"^init"):
        run_cluster(Ising(3), n=10, init=[[1.0] * 8])
    with pytest.raises(ValueError, match=r"^backend must be"):
        cluster_labels(torch.zeros(1, 2, 2, dtype=torch.bool), torch.zeros(1, 2, 2).bool(), "x")
