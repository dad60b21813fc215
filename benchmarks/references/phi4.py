"""Reference observables of the 2D lattice ``phi4`` target (L = 8 and 16, M2 = -4, lam = 8).

Run: ``OMP_NUM_THREADS=1 python benchmarks/references/phi4.py`` (about 4 minutes on one core;
``--quick`` for a short smoke run). It prints, for each L, <|m|>, the susceptibility
chi = V (<m^2> - <|m|>^2) of :meth:`Phi4.susceptibility` and the two-point susceptibility
chi_2 = V <m^2>, with Monte Carlo standard errors, and the diagnostics.

Method: HMC (``si.sample(..., "hmc")``, Stan-style warm-up: dual averaging of the step size,
windowed mass-matrix adaptation) on ``CHAINS`` independent chains in float64. The chains start
from 0.3 N(0, I), not from the N(0, I) base: from the base, a site drawn at |phi| ~ 4 has a
quartic force so large that every trajectory of that chain diverged and it never moved (seen
once in 128 chains at L = 16; it made R-hat 1.4). After the warm-up, the adapted step size and
mass matrix are frozen and the chains run on in segments (only m = mean(phi) is kept per
draw, so memory stays small).

Errors: the observables are functions of the per-draw magnetisation m; the standard error
of <|m|> is the batch-means error over chains (sd of the chain means / sqrt(chains), each
chain mean averaging thousands of draws, far more than the integrated autocorrelation time),
cross-checked with the multi-chain IAT-corrected MCSE of the library (``mcse_mean``); chi
and chi_2 get jackknife errors over chains (leave one chain out). Diagnostics: split R-hat
and IAT of |m| and m^2, divergences, and the fraction of chains whose m changed sign.

Phase: M2 + 4 = 0 cancels the quadratic term (the kinetic part contributes 4 phi_x^2), so
with lam = 8 these parameters are on the symmetric side: <|m|> falls roughly like 1/L and
every chain flips the sign of m many times. Z2 symmetry is therefore restored by the
sampler itself; |m| and m^2 are even in phi in any case, so a chain held in one sign would
give the same expectations.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

import interpolants as si
from interpolants.samplers.diagnostics import integrated_autocorr_time, mcse_mean, split_rhat
from interpolants.targets import get

SEED = 20240601
CHAINS = 128
WARMUP = 1000
SEGMENT = 500
SEGMENTS = {8: 8, 16: 6}  # draws per chain = SEGMENT * SEGMENTS[L]


def jackknife(values: torch.Tensor, statistic) -> tuple[float, float]:
    """statistic over all chains and its jackknife error, leaving one chain out;
    values (draws, chains)."""
    c = values.shape[1]
    full = float(statistic(values))
    keep = torch.ones(c, dtype=torch.bool)
    loo = []
    for j in range(c):
        keep[j] = False
        loo.append(float(statistic(values[:, keep])))
        keep[j] = True
    loo_t = torch.tensor(loo, dtype=torch.float64)
    se = math.sqrt((c - 1) / c * float((loo_t - loo_t.mean()).square().sum()))
    return full, se


def measure(L: int, chains: int, warmup: int, segments: int, segment: int, seed: int) -> dict:
    """Run the chains and return the observables with errors and diagnostics."""
    target = get("phi4", L=L, dtype=torch.float64)
    V = L * L
    gen = torch.Generator().manual_seed(seed)
    init = 0.3 * torch.randn(chains, V, generator=gen, dtype=torch.float64)
    t0 = time.time()
    first = si.sample(target, "hmc", n=chains * segment, seed=seed, init=init, warmup=warmup)
    eps, inv_mass = first.info["step_size"], first.info["inverse_mass_matrix"]
    ms = [first.chain_samples.mean(2)]
    divergences, evaluations = first.info["divergences"], first.evaluations
    acceptance = [first.acceptance_rate]
    state = first.chain_samples[-1]
    for k in range(1, segments):
        r = si.sample(
            target, "hmc", n=chains * segment, seed=seed + k, init=state, warmup=0,
            step_size=eps, mass_matrix=inv_mass,
        )  # fmt: skip
        ms.append(r.chain_samples.mean(2))
        state = r.chain_samples[-1]
        divergences += r.info["divergences"]
        evaluations += r.evaluations
        acceptance.append(r.acceptance_rate)
    m = torch.cat(ms).double()  # (draws, chains)
    seconds = time.time() - t0

    absm = m.abs()
    chain_means = absm.mean(0)
    mean_absm = float(absm.mean())
    se_batch = float(chain_means.std() / math.sqrt(chains))
    se_iat = float(mcse_mean(absm)[1][0])

    def chi(v: torch.Tensor) -> torch.Tensor:
        return V * (v.square().mean() - v.abs().mean().square())

    def chi2(v: torch.Tensor) -> torch.Tensor:
        return V * v.square().mean()

    return {
        "L": L,
        "chains": chains,
        "draws_per_chain": m.shape[0],
        "warmup": warmup,
        "abs_magnetization": (mean_absm, se_batch),
        "abs_magnetization_mcse_iat": se_iat,
        "susceptibility": jackknife(m, chi),
        "two_point_susceptibility": jackknife(m, chi2),
        "rhat_abs_m": float(split_rhat(absm)[0]),
        "rhat_m2": float(split_rhat(m.square())[0]),
        "iat_abs_m": float(integrated_autocorr_time(absm)[0]),
        "iat_m2": float(integrated_autocorr_time(m.square())[0]),
        "iat_m": float(integrated_autocorr_time(m)[0]),
        "sign_flipping_chains": int(((m > 0).any(0) & (m < 0).any(0)).sum()),
        "divergences": divergences,
        "step_size": eps,
        "acceptance": sum(acceptance) / len(acceptance),
        "evaluations": evaluations,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for L in (8, 16):
        segments = 2 if args.quick else SEGMENTS[L]
        segment = 100 if args.quick else SEGMENT
        chains = 32 if args.quick else CHAINS
        warmup = 300 if args.quick else WARMUP
        out = measure(L, chains, warmup, segments, segment, args.seed + L)
        print(f"phi4 L={L} M2=-4 lam=8: {chains} chains x {out['draws_per_chain']} draws")
        for key, value in out.items():
            if isinstance(value, tuple):
                print(f"  {key:28s} {value[0]:.6f} +- {value[1]:.6f}")
            elif isinstance(value, float):
                print(f"  {key:28s} {value:.6g}")
            else:
                print(f"  {key:28s} {value}")


if __name__ == "__main__":
    main()
