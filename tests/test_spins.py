"""Tests of the lattice spin targets (interpolants/targets/spins.py, spins_exact.py): the
single-site ratios against brute-force differences of log_prob, the density against a
loop-by-loop re-implementation, log Z by Kaufman's formula, the transfer matrix and brute
enumeration (three independent routes), Onsager's infinite-lattice free energy, the exact
energy d log Z / d beta, the colourings, and the argument checks."""

import math

import numpy as np
import pytest
import torch

import interpolants as si
from interpolants.targets import (
    Ising,
    Potts,
    enumerate_moments,
    enumerate_states,
    kaufman_energy_per_site,
    kaufman_log_Z,
    lattice_colours,
    transfer_matrix_log_Z,
)
from interpolants.targets.discrete import DiscreteTarget

pytestmark = pytest.mark.usefixtures("one_thread")
D = torch.float64
BETAS = [0.1, 0.3, 0.4407, 0.6, 1.0]  # below and above beta_c = 0.4407
Z_MAX = 5.0


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def loop_log_prob(s: np.ndarray, L: int, beta: float, J=1.0, h=0.0, potts=False) -> float:
    """log rho of one state by explicit loops over sites and their right / lower bonds."""
    grid = s.reshape(L, L)
    total = 0.0
    for r in range(L):
        for c in range(L):
            for nb in (grid[r, (c + 1) % L], grid[(r + 1) % L, c]):
                total += float(grid[r, c] == nb) if potts else J * grid[r, c] * nb
            total += 0.0 if potts else h * grid[r, c]
    return beta * total


TARGETS = [
    Ising(2, 0.5, h=0.3, dtype=D),
    Ising(3, 0.7, h=-0.2, J=0.8, dtype=D),
    Ising(4, 0.3, J=-1.0, dtype=D),
    Ising(5, 0.44, dtype=D),
    Potts(2, 3, 0.9, dtype=D),
    Potts(3, 4, 1.1, dtype=D),
    Potts(4, 2, 0.7, dtype=D),
    Potts(5, 3, 1.0, dtype=D),
]


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: f"{t.name}-L{t.L}")
def test_density_and_ratios_match_brute_force(target):
    x = target.base.sample(6, gen())
    potts = isinstance(target, Potts)
    J, h = (1.0, 0.0) if potts else (target.J, target.h)
    loops = [loop_log_prob(s, target.L, target.beta, J, h, potts) for s in x.numpy()]
    torch.testing.assert_close(target.log_prob(x), torch.tensor(loops, dtype=D))
    lp, R = target.log_prob_and_ratios(x)
    lp_brute, R_brute = DiscreteTarget.log_prob_and_ratios(target, x)  # every change evaluated
    assert R.shape == (6, target.dim, target.q)
    torch.testing.assert_close(lp, lp_brute)
    torch.testing.assert_close(R, R_brute, rtol=1e-12, atol=1e-12)
    own = (x.unsqueeze(-1) == target.values).to(D)
    assert float((R * own).abs().max()) == 0.0  # zero at the current value


@pytest.mark.parametrize("L", [2, 3, 4])
def test_kaufman_equals_transfer_matrix_equals_enumeration(L):
    for beta in BETAS:
        k, t = kaufman_log_Z(L, beta), transfer_matrix_log_Z(L, beta)
        e = enumerate_moments(Ising(L, beta, dtype=D))["log_Z"]
        assert abs(k - t) < 1e-10 and abs(k - e) < 1e-10, (L, beta, k, t, e)
    assert kaufman_log_Z(L, 0.0) == L * L * math.log(2)
    for beta in (100.0, 400.0):  # the two ground states, no overflow
        assert abs(kaufman_log_Z(L, beta) - (2 * L * L * beta + math.log(2))) < 1e-9
    if L % 2 == 0:  # antiferromagnet on a bipartite torus: flip a sublattice
        assert abs(kaufman_log_Z(L, 0.5, J=-1.0) - transfer_matrix_log_Z(L, 0.5, J=-1.0)) < 1e-10


def test_kaufman_on_larger_lattices_and_onsager_limit():
    for L, beta in [(7, 0.4407), (8, 0.3), (10, 0.6)]:
        assert abs(kaufman_log_Z(L, beta) - transfer_matrix_log_Z(L, beta)) < 1e-9
    # Onsager: log Z / N -> log 2 + (1 / 8 pi^2) int int log(cosh^2 2K - sinh 2K (cos a +
    # cos b)) da db; away from beta_c the finite-size correction is exponentially small,
    # except for the two ordered states below T_c: log Z = N f + log 2.
    k = 400
    theta = (torch.arange(k, dtype=D) + 0.5) * 2 * math.pi / k
    for beta in (0.3, 0.6):
        K = torch.tensor(2 * beta, dtype=D)
        inner = K.cosh() ** 2 - K.sinh() * (theta.cos()[:, None] + theta.cos()[None, :])
        onsager = math.log(2) + 0.5 * float(inner.log().mean())
        degeneracy = math.log(2) if beta > 0.4407 else 0.0
        assert abs(kaufman_log_Z(64, beta) - 64**2 * onsager - degeneracy) < 1e-8, beta


def test_transfer_matrix_with_a_field_and_frustration_equal_enumeration():
    for L, beta, h, J in [(3, 0.5, 0.3, 1.0), (4, 0.7, -0.2, 1.0), (3, 0.6, 0.0, -1.0)]:
        target = Ising(L, beta, h=h, J=J, dtype=D)
        exact = enumerate_moments(target)
        assert abs(transfer_matrix_log_Z(L, beta, J, h) - exact["log_Z"]) < 1e-10
        assert abs(target.log_Z - exact["log_Z"]) < 1e-10
    assert Ising(12, 0.4, h=0.1).log_Z is None  # 2^12 > 2187: not built on construction


def test_potts_transfer_matrix_equals_enumeration_and_ising_at_q2():
    for q, beta in [(3, 0.5), (3, 1.005), (3, 1.5), (4, 1.0)]:
        exact = enumerate_moments(Potts(3, q, beta, dtype=D))["log_Z"]
        assert abs(transfer_matrix_log_Z(3, beta, q=q) - exact) < 1e-10, (q, beta)
        assert abs(Potts(3, q, beta).log_Z - exact) < 1e-10
    # [s_i = s_j] = (1 + s_i s_j) / 2: Potts q = 2 at beta is Ising at beta / 2, 2 N bonds
    for L in (3, 4):
        potts = transfer_matrix_log_Z(L, 0.9, q=2)
        assert abs(potts - (kaufman_log_Z(L, 0.45) + 0.45 * 2 * L * L)) < 1e-10
    assert Potts(8, 3).log_Z is None


def test_energy_is_minus_d_log_Z_d_beta():
    for L in (2, 3, 4):
        for beta in BETAS:
            exact = enumerate_moments(Ising(L, beta, dtype=D))["energy_per_site"]
            assert abs(kaufman_energy_per_site(L, beta) - exact) < 1e-8, (L, beta)
    # Potts by finite differences of the transfer matrix against enumeration
    step, beta = 1e-4, 1.1
    f = [transfer_matrix_log_Z(3, beta + k * step, q=3) for k in (-1, 1)]
    exact = enumerate_moments(Potts(3, 3, beta, dtype=D))["energy_per_site"]
    assert abs(-(f[1] - f[0]) / (2 * step) / 9 - exact) < 1e-6


@pytest.mark.parametrize("beta", [0.3, 0.4407, 0.6])
def test_ising_references_agree_with_the_exact_energy(beta):
    refs = Ising(16, beta).references
    assert "energy_per_site" in refs, "reference not filled"
    exact = kaufman_energy_per_site(16, beta)
    assert abs(refs["energy_per_site_exact"] - exact) < 1e-12
    z = abs(refs["energy_per_site"] - exact) / refs["energy_per_site_stderr"]
    assert z < Z_MAX, (beta, refs["energy_per_site"], exact)
    chi = 256 * (refs["magnetisation_sq"] - refs["abs_magnetisation"] ** 2)
    assert abs(chi - refs["susceptibility"]) < 1e-3 * (1 + refs["susceptibility"])  # rounding


def test_moments_and_susceptibility_convention():
    target = Potts(3, 3, 1.2, dtype=D)
    x, log_p = enumerate_states(target)
    assert x.shape == (3**9, 9) and abs(float(log_p.exp().sum()) - 1) < 1e-12
    exact = enumerate_moments(target)
    chi = float(target.susceptibility(x, log_p))  # self-normalised weights = exact law
    assert abs(chi - exact["susceptibility"]) < 1e-10
    assert abs(float(target.abs_magnetisation(x, log_p)) - exact["abs_magnetisation"]) < 1e-12
    m = target.magnetisation(torch.tensor([[2.0] * 9, [0, 1, 2] * 3]))
    torch.testing.assert_close(m, torch.tensor([1.0, 0.0]))
    ising = Ising(2, 0.5)
    x = torch.tensor([[1.0, 1, 1, 1], [1, -1, 1, 1]])
    torch.testing.assert_close(ising.magnetisation(x), torch.tensor([1.0, 0.5]))
    # L = 2 double bonds: all aligned gives 2 N = 8 bonds, e = -2
    torch.testing.assert_close(ising.energy_per_site(x[:1]), torch.tensor([-2.0]))
    with pytest.raises(ValueError, match="dim too large"):
        enumerate_moments(Ising(5, 0.3))


@pytest.mark.parametrize("L", [2, 3, 4, 5, 6, 7])
def test_colours_are_proper_and_minimal(L):
    colours = lattice_colours(L)
    assert len(colours) == (2 if L % 2 == 0 else 3)
    label = torch.stack(colours).to(torch.int64).argmax(0).reshape(L, L)
    assert int(torch.stack(colours).sum(0).min()) == 1
    for axis in (0, 1):
        assert not bool((label == label.roll(1, axis)).any())
    assert all(torch.equal(a, b) for a, b in zip(Ising(L).colours, colours, strict=True))


def test_registry_and_bad_arguments():
    assert isinstance(si.targets.get("ising", L=4), Ising)
    assert si.targets.get("potts", L=3, q=4).q == 4
    assert abs(Ising(16).beta_c - 0.5 * math.log(1 + math.sqrt(2))) < 1e-15
    assert abs(Potts(16, q=3).beta_c - math.log(1 + math.sqrt(3))) < 1e-15
    bad = [
        (Ising, {"L": 1}, "L"), (Ising, {"L": 2.5}, "L"), (Ising, {"beta": -0.1}, "beta"),
        (Ising, {"beta": math.inf}, "beta"), (Ising, {"h": math.nan}, "h"),
        (Ising, {"J": math.inf}, "J"), (Potts, {"q": 1}, "q"), (Potts, {"q": 2.0}, "q"),
        (Potts, {"L": 0}, "L"), (Potts, {"beta": math.nan}, "beta"),
    ]  # fmt: skip
    for cls, options, name in bad:
        with pytest.raises(ValueError, match=f"^{name} must be"):
            cls(**options)
    with pytest.raises(ValueError, match=r"^L must be"):
        si.targets.get("ising", L=1)
    with pytest.raises(ValueError, match="frustrated"):
        kaufman_log_Z(3, 0.5, J=-1.0)
    with pytest.raises(ValueError, match=r"^h must be 0"):
        transfer_matrix_log_Z(3, 0.5, h=0.1, q=3)
    with pytest.raises(ValueError, match="too large"):
        transfer_matrix_log_Z(13, 0.5)
    with pytest.raises(ValueError, match="x must have shape"):
        Ising(3).log_prob_and_ratios(torch.zeros(2, 8))
