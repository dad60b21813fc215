"""Tests of the rank-normalised R-hat and ESS (Vehtari et al. 2021, arXiv:1903.08008) and of
the convergence warnings: reference values from ArviZ, iid and shifted chains."""

from __future__ import annotations

import math

import pytest
import torch

from interpolants.samplers import ConvergenceWarning, convergence_warnings, diagnostics

F64 = torch.float64


def lcg_uniforms(count: int, seed: int) -> torch.Tensor:
    """Uniforms in (0, 1) from the LCG s <- (1664525 s + 1013904223) mod 2^32 (Numerical
    Recipes): exact integer arithmetic, so the chains below are the same on every machine."""
    out, s = [], seed
    for _ in range(count):
        s = (1664525 * s + 1013904223) % 2**32
        out.append((s + 0.5) / 2**32)
    return torch.tensor(out, dtype=F64)


def reference_chains() -> dict[str, torch.Tensor]:
    """Fixed draws (draws, chains[, k]) covering autocorrelation, a shifted chain, heavy tails
    with ties, an odd number of draws and a single chain."""
    z = torch.special.ndtri(lcg_uniforms(4 * 200, 1)).reshape(200, 4)
    ar = torch.empty(200, 4, dtype=F64)
    ar[0] = z[0]
    for t in range(1, 200):
        ar[t] = 0.9 * ar[t - 1] + math.sqrt(1 - 0.81) * z[t]
    iid = torch.special.ndtri(lcg_uniforms(4 * 200, 2)).reshape(200, 4)
    shifted = iid + torch.tensor([0.0, 0.0, 0.0, 0.5], dtype=F64)
    cauchy = torch.tan(math.pi * (lcg_uniforms(101 * 3, 3) - 0.5)).reshape(101, 3)
    ties = torch.round(cauchy * 2) / 2
    return {
        "ar": ar,
        "shifted": shifted,
        "ties_odd": ties,
        "two_dims": torch.stack([ar, shifted], -1),
        "one_chain": ar[:, :1],
    }


# ArviZ 0.23.4 on the chains above, transposed to its (chain, draw) layout, one coordinate at
# a time, as (R-hat, bulk R-hat, tail R-hat, bulk ESS, tail ESS). Not a dependency: computed
# once by hand in a separate environment with
#   a = x.numpy().T
#   az.rhat(a, method="rank"), az.rhat(a, method="z_scale"), az.rhat(a, method="folded"),
#   az.ess(a, method="bulk"), az.ess(a, method="tail").
# ArviZ leaves R-hat of one chain undefined (NaN, None below) where this module cuts the chain
# in two like any other; its bulk and tail R-hat are then ArviZ's own internals on the split
# chain: s = _split_chains(a); _rhat(_z_scale(s)), _rhat(_z_scale(abs(s - np.median(s)))).
REFERENCE = {
    "ar": (1.170685223302697, 1.170685223302697, 1.0828207233825653,
           18.64888358685754, 22.226049681693503),
    "shifted": (1.0391500823751179, 1.0391500823751179, 1.0013649662041777,
                88.57370494137004, 605.1962572751604),
    "ties_odd": (1.0071239714095654, 0.9956125767633222, 1.0071239714095654,
                 310.3565547418241, 269.06062871367243),
    "one_chain": (None, 1.2941835927601635, 1.0021501705636406,
                  2.9418443747964464, 27.120315581854047),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_rank_rhat_and_ess_match_arviz(name):
    x = reference_chains()[name]
    rhat, bulk, tail, ess_b, ess_t = REFERENCE[name]
    got = [diagnostics.rhat_bulk(x), diagnostics.rhat_tail(x)]
    got += [diagnostics.ess_bulk(x), diagnostics.ess_tail(x)]
    for value, ref in zip(got, (bulk, tail, ess_b, ess_t), strict=True):
        assert float(value) == pytest.approx(ref, rel=1e-6, abs=0)
    assert float(diagnostics.rank_rhat(x)) == pytest.approx(max(bulk, tail), rel=1e-6)
    if rhat is not None:
        assert max(bulk, tail) == rhat


def test_statistics_work_per_coordinate():
    chains = reference_chains()
    x = chains["two_dims"]
    for f in (diagnostics.rank_rhat, diagnostics.ess_bulk, diagnostics.ess_tail):
        both = f(x)
        assert both.shape == (2,)
        alone = torch.cat([f(chains["ar"]), f(chains["shifted"])])
        assert torch.allclose(both, alone, rtol=1e-12, atol=0)


def test_rhat_near_one_for_iid_chains_and_large_for_shifted_means():
    g = torch.Generator().manual_seed(0)
    iid = torch.randn(1000, 8, 3, generator=g, dtype=F64)
    assert diagnostics.rank_rhat(iid).max() < 1.005
    ess = torch.cat([diagnostics.ess_bulk(iid), diagnostics.ess_tail(iid)])
    assert torch.all((ess > 0.8 * 8000) & (ess < 1.2 * 8000)), ess
    shifted = iid + torch.tensor([0.0] * 7 + [0.5], dtype=F64)[:, None]
    assert torch.all(diagnostics.rank_rhat(shifted) > 1.01)
    # the folded R-hat sees chains with equal means but unequal scales
    scaled = iid * torch.tensor([1.0] * 7 + [3.0], dtype=F64)[:, None]
    assert torch.all(diagnostics.rhat_tail(scaled) > 1.05)
    assert torch.all(diagnostics.rhat_bulk(scaled) < 1.01)


def test_degenerate_draws():
    assert torch.isnan(diagnostics.rank_rhat(torch.zeros(3, 4))).all()  # fewer than 4 draws
    x = torch.randn(100, 4, 2, dtype=F64)
    x[5, 1, 0] = math.nan
    assert torch.isnan(diagnostics.ess_bulk(x)[0]) and torch.isfinite(diagnostics.ess_bulk(x)[1])
    assert float(diagnostics.ess_bulk(torch.ones(100, 4))) == 400  # constant: ESS = size


def test_convergence_warnings():
    one = torch.ones(3, dtype=F64)
    assert convergence_warnings(one, 1000 * one, 1000 * one, 500, 0) == []
    rhat = torch.tensor([1.0, 2.93, 1.2], dtype=F64)
    lines = convergence_warnings(rhat, torch.tensor([50.0, 900, 300]), 1000 * one, 20, 3)
    assert len(lines) == 4
    assert lines[0].startswith("rank-normalised split R-hat 2.93 > 1.01 (x[1]; 2 of 3 coordinates)")
    assert lines[1].startswith("bulk ESS 50 < 400 (x[0]; 2 of 3 coordinates)")
    assert "20 draws per chain" in lines[2] and "3 divergent" in lines[3]
    named = convergence_warnings(rhat, 1000 * one, 1000 * one, names=["mu", "tau", "theta[0]"])
    assert named[0].startswith("rank-normalised split R-hat 2.93 > 1.01 (tau = x[1]; 2 of 3")
    nan = convergence_warnings(
        torch.tensor([math.nan]), torch.tensor([500.0]), torch.tensor([500.0])
    )
    assert nan == ["rank-normalised split R-hat nan > 1.01 (x[0]): the chains have not mixed"]
    assert issubclass(ConvergenceWarning, RuntimeWarning)


def test_rank_rhat_of_spins_with_a_median_between_the_values_is_the_bulk_one():
    """+-1 draws, half of each: every folded draw is 1 (folded R-hat 0 / 0); the bulk R-hat
    stands, and a coordinate with a NaN draw stays NaN."""
    from interpolants.samplers.diagnostics import rank_rhat, rhat_bulk

    g = torch.Generator().manual_seed(0)
    x = torch.randint(2, (400, 4, 2), generator=g).double() * 2 - 1
    x[:, :, 0] = torch.tensor([-1.0, 1.0]).repeat(200)[:, None]  # exactly half of each
    x[0, 0, 1] = math.nan
    r = rank_rhat(x)
    assert torch.isfinite(r[0]) and r[0] == rhat_bulk(x)[0]
    assert torch.isnan(r[1])
