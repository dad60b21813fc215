"""Reference observables of the ``ising`` (L = 16, h = 0, J = 1) and ``potts`` (L = 16, q = 3)
targets from long Swendsen-Wang runs.

Run: ``OMP_NUM_THREADS=1 python benchmarks/references/ising.py`` (about 7 minutes on one
core; ``--quick`` for a short smoke run). For each setting it prints E|m|, E m^2, the
susceptibility chi = N (E m^2 - (E|m|)^2) and the energy per site e, with Monte Carlo
standard errors, the diagnostics, and a dict entry to paste into
``interpolants/targets/spins.py``.

Settings: Ising at beta = 0.3 (disordered), 0.4407 (near beta_c = 0.440687) and 0.6
(ordered); Potts q = 3 at beta_c = log(1 + sqrt 3) and beta = 0.8 (disordered).

Method: ``CHAINS`` independent chains of
:func:`interpolants.samplers.discrete.cluster.swendsen_wang`
in float64 from uniform states, ``WARMUP`` discarded sweeps, then ``SWEEPS`` sweeps per
chain, every one kept (only m and e are stored, not the states).

Errors: batch means over chains (sd of the chain means / sqrt(chains); each chain mean
averages thousands of sweeps, far more than the integrated autocorrelation time) for E|m|,
E m^2 and e, cross-checked with the library's IAT-corrected MCSE (``mcse_mean``); chi gets
a jackknife error over chains. Diagnostics: split R-hat and IAT of |m| and e. Check: the
Ising energy against the exact -(1/N) d log Z / d beta of Kaufman's formula
(``kaufman_energy_per_site``), printed as a z-score.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from interpolants.samplers.diagnostics import integrated_autocorr_time, mcse_mean, split_rhat
from interpolants.samplers.discrete.cluster import swendsen_wang
from interpolants.targets import Ising, Potts, kaufman_energy_per_site

SEED = 20261205
CHAINS = 256
WARMUP = 500
SWEEPS = 5000
SETTINGS = [
    ("ising", 0.3),
    ("ising", 0.4407),
    ("ising", 0.6),
    ("potts", math.log1p(math.sqrt(3))),
    ("potts", 0.8),
]


def jackknife(values: list[torch.Tensor], statistic) -> tuple[float, float]:
    """statistic over all chains and its jackknife error, leaving one chain out; values are
    tensors (draws, chains)."""
    c = values[0].shape[1]
    full = float(statistic(*values))
    keep = torch.ones(c, dtype=torch.bool)
    loo = []
    for j in range(c):
        keep[j] = False
        loo.append(float(statistic(*(v[:, keep] for v in values))))
        keep[j] = True
    loo_t = torch.tensor(loo, dtype=torch.float64)
    return full, math.sqrt((c - 1) / c * float((loo_t - loo_t.mean()).square().sum()))


def batch_mean(v: torch.Tensor) -> tuple[float, float]:
    """The mean of v (draws, chains) and the batch-means error over chains."""
    return float(v.mean()), float(v.mean(0).std() / math.sqrt(v.shape[1]))


def measure(kind: str, beta: float, chains: int, warmup: int, sweeps: int, seed: int) -> dict:
    """Run the chains and return the observables with errors and diagnostics."""
    target = (Ising if kind == "ising" else Potts)(L=16, beta=beta, dtype=torch.float64)
    N = target.dim
    gen = torch.Generator().manual_seed(seed)
    x = target.base.sample(chains, gen)
    t0 = time.time()
    for _ in range(warmup):
        x = swendsen_wang(x, target, gen)
    ms, es = [], []
    for _ in range(sweeps):
        x = swendsen_wang(x, target, gen)
        ms.append(target.magnetisation(x))
        es.append(target.energy_per_site(x))
    seconds = time.time() - t0
    m, e = torch.stack(ms), torch.stack(es)  # (draws, chains)
    absm, m2 = m.abs(), m.square()

    def chi(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return N * (b.mean() - a.mean().square())

    out = {
        "kind": kind,
        "beta": beta,
        "chains": chains,
        "sweeps": sweeps,
        "warmup": warmup,
        "abs_magnetisation": batch_mean(absm),
        "magnetisation_sq": batch_mean(m2),
        "susceptibility": jackknife([absm, m2], chi),
        "energy_per_site": batch_mean(e),
        "mcse_iat_abs_m": float(mcse_mean(absm)[1][0]),
        "mcse_iat_e": float(mcse_mean(e)[1][0]),
        "rhat_abs_m": float(split_rhat(absm)[0]),
        "rhat_e": float(split_rhat(e)[0]),
        "iat_abs_m": float(integrated_autocorr_time(absm)[0]),
        "iat_e": float(integrated_autocorr_time(e)[0]),
        "seconds": seconds,
    }
    if kind == "ising":
        exact = kaufman_energy_per_site(16, beta)
        mean, se = out["energy_per_site"]
        out["energy_per_site_exact"] = exact
        out["energy_z"] = (mean - exact) / se
    return out


def entry(out: dict, date: str) -> str:
    """The dict entry for spins.py."""
    key = f"(16, {out['beta']!r})" if out["kind"] == "ising" else f"(16, 3, {out['beta']!r})"
    lines = [f"    {key}: {{"]
    for name in ("abs_magnetisation", "magnetisation_sq", "susceptibility", "energy_per_site"):
        value, se = out[name]
        lines.append(f'        "{name}": {value:.6g},')
        lines.append(f'        "{name}_stderr": {se:.2g},')
    lines.append(
        f'        "observables_source": "Swendsen-Wang, {out["chains"]} chains x '
        f'{out["sweeps"]} sweeps; benchmarks/references/ising.py",'
    )
    lines.append(f'        "date": "{date}",')
    lines.append("    },")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    torch.set_num_threads(1)
    date = time.strftime("%Y-%m-%d", time.gmtime())
    entries = []
    for k, (kind, beta) in enumerate(SETTINGS):
        chains = 32 if args.quick else CHAINS
        sweeps = 200 if args.quick else SWEEPS
        warmup = 50 if args.quick else WARMUP
        out = measure(kind, beta, chains, warmup, sweeps, args.seed + k)
        print(f"{kind} L=16 beta={beta}: {chains} chains x {sweeps} sweeps", flush=True)
        for key, value in out.items():
            if isinstance(value, tuple):
                print(f"  {key:24s} {value[0]:.6f} +- {value[1]:.6f}")
            elif isinstance(value, float):
                print(f"  {key:24s} {value:.6g}")
            else:
                print(f"  {key:24s} {value}")
        entries.append(entry(out, date))
    print("\n".join(entries))


if __name__ == "__main__":
    main()
