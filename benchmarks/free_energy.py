r"""Free-energy differences (issue 24): BAR, Jarzynski (forward, reverse) and the escorted
estimator (FEAT, arXiv:2504.11516) at (about) equal target evaluations, on four pairs:

- ``gmm2``, ``gmm10``: Gaussian mixtures in 2 and 10 dimensions (k = 4, means in [-4, 4]^d,
  std 1) against the mixture with means 1.15 m + 0.5, std 1.25, times e: exact Delta F = -1;
- ``phi4``: the L = 8 phi^4 lattice at lam = 8 against lam = 5 (M2 = -4), 64 dimensions;
- ``particles``: the N = 16 particles at kT = 0.12 against kT = 0.15 (gas), 32 dimensions;

The last two have no exact Delta F: the reference is pymbar's MBAR on long HMC runs at
``REF_STATES`` intermediate couplings / temperatures (``REF_DRAWS`` draws each, thinned 4).

Equal evaluations: BAR and escorted use n draws of each target, Jarzynski 2 n of one. With
exact draws (mixtures) a work costs 2 evaluations per walker (BAR) or 4 (escorted, which
spends half of its draws on training, a quarter of those on its held-out check of two
escorts); with HMC draws (phi4, particles) the draws dominate, and the escorted estimate
cross-fits (a second escort fitted on the work half makes the works of the training half).
Every row gives the evaluations, and
``se_equal`` = stderr * sqrt(evaluations / BAR's evaluations), the error bar at BAR's
budget (variance ~ 1 / cost).

    OMP_NUM_THREADS=1 python benchmarks/free_energy.py [--pairs gmm2 gmm10 phi4 particles]
        [--seeds 5]

writes benchmarks/results/free_energy.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

import interpolants as si
from interpolants import targets
from interpolants.targets import GaussianMixture, Target

REF_STATES = 5
REF_DRAWS = 8000
OUT = Path(__file__).parent / "results" / "free_energy.json"


def shifted(t: Target, c: float, name: str) -> Target:
    """t times e^c: log Z + c."""
    return Target(lambda x: t.log_prob(x) + c, t.dim, log_Z=(t.log_Z or 0.0) + c,
                  sample=t.sample, name=name)  # fmt: skip


def gmm_pair(d: int, k: int = 4, box: float = 4.0) -> tuple[Target, Target]:
    g = torch.Generator().manual_seed(0)
    m = (torch.rand(k, d, generator=g, dtype=torch.float64) - 0.5) * 2 * box
    a = GaussianMixture(m, 1.0, name=f"gmm{d}-a")
    b = GaussianMixture(1.15 * m + 0.5, 1.25, name=f"gmm{d}-b")
    return a, shifted(b, 1.0, f"gmm{d}-b")


def family(pair: str, value: float) -> Target:
    if pair == "phi4":
        return targets.get("phi4", L=8, M2=-4.0, lam=value, dtype=torch.float64)
    return targets.get("particles", kT=value, dtype=torch.float64)


PAIRS = {
    "gmm2": {"n": 2000},
    "gmm10": {"n": 2000},
    "phi4": {"n": 1000, "ends": (8.0, 5.0)},
    "particles": {"n": 1000, "ends": (0.12, 0.15)},
}
RUNS = [  # (label, method, options, n factor)
    ("bar", "bar", {}, 1),
    ("jarzynski fwd", "jarzynski", {"direction": "forward"}, 2),
    ("jarzynski rev", "jarzynski", {"direction": "reverse"}, 2),
    ("escorted", "escorted", {}, 1),
]


def mbar_reference(pair: str) -> dict:
    """Delta F between the pair's ends by pymbar's MBAR over REF_STATES states of the family
    (HMC, REF_DRAWS draws each, thinned 4)."""
    import pymbar

    lo, hi = PAIRS[pair]["ends"]
    values = torch.linspace(lo, hi, REF_STATES, dtype=torch.float64).tolist()
    states = [family(pair, v) for v in values]
    start = time.perf_counter()
    draws, evaluations = [], 0
    for k, t in enumerate(states):
        r = si.sample(t, "hmc", n=REF_DRAWS, seed=1000 + k, chains=16, warmup=500, thin=4)
        draws.append(r.samples.double())
        evaluations += r.evaluations
    x = torch.cat(draws)
    with torch.no_grad():
        u = torch.stack([-t.log_prob(x) for t in states]).numpy()
    mbar = pymbar.MBAR(u, [REF_DRAWS] * REF_STATES)
    out = mbar.compute_free_energy_differences()
    return {
        "delta_F": float(out["Delta_f"][0, -1]),
        "stderr": float(out["dDelta_f"][0, -1]),
        "states": values,
        "draws_per_state": REF_DRAWS,
        "evaluations": int(evaluations),
        "seconds": time.perf_counter() - start,
        "how": f"pymbar {pymbar.__version__} MBAR, {REF_STATES} states, HMC 16 chains, "
        "500 warm-up, thin 4",
    }


def ends(pair: str) -> tuple[Target, Target]:
    if pair.startswith("gmm"):
        return gmm_pair(int(pair[3:]))
    lo, hi = PAIRS[pair]["ends"]
    return family(pair, lo), family(pair, hi)


def run_pair(pair: str, seeds: int) -> dict:
    a, b = ends(pair)
    if a.log_Z is not None and b.log_Z is not None:
        ref = {"delta_F": a.log_Z - b.log_Z, "stderr": 0.0, "how": "exact"}
    else:
        ref = mbar_reference(pair)
    print(f"{pair}: reference {ref['delta_F']:.4f} +- {ref['stderr']:.4f} ({ref['how']})",
          flush=True)  # fmt: skip
    n = PAIRS[pair]["n"]
    rows = []
    for seed in range(seeds):
        bar_evals = None
        for label, method, options, factor in RUNS:
            est = si.free_energy(a, b, method=method, n=factor * n, seed=seed, **options)
            if method == "bar":
                bar_evals = est.evaluations
            row = est.to_dict() | {"label": label, "seed": seed, "pair": pair}
            row["error"] = est.delta_F - ref["delta_F"]
            row["se_equal"] = est.stderr * math.sqrt(est.evaluations / bar_evals)
            rows.append(row)
            print(f"  seed {seed} {label:14s} {est.delta_F:9.4f} +- {est.stderr:.4f} "
                  f"err {row['error']:+.4f} evals {est.evaluations} "
                  f"{est.info.get('escort', '')} {est.seconds:.1f}s", flush=True)  # fmt: skip
    return {"reference": ref, "n": n, "rows": rows}


def summary(results: dict) -> str:
    lines = [
        "| pair | method | n | evaluations | RMSE over seeds | mean stderr | stderr at BAR's "
        "evaluations | escort (per fit) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for pair, res in results.items():
        for label, _, _, factor in RUNS:
            rows = [r for r in res["rows"] if r["label"] == label]
            rmse = math.sqrt(sum(r["error"] ** 2 for r in rows) / len(rows))
            se = sum(r["stderr"] for r in rows) / len(rows)
            se_eq = sum(r["se_equal"] for r in rows) / len(rows)
            ev = sum(r["evaluations"] for r in rows) / len(rows)
            folds = [f for r in rows for f in r["info"].get("escort", "").split(",") if f]
            used_s = ", ".join(f"{k} {folds.count(k)}/{len(folds)}" for k in sorted(set(folds)))
            lines.append(f"| {pair} | {label} | {factor * res['n']} | {ev:.0f} | {rmse:.4f} | "
                         f"{se:.4f} | {se_eq:.4f} | {used_s} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    p.add_argument("--seeds", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    results = {}
    previous = json.loads(OUT.read_text()) if OUT.exists() else {}
    for pair in args.pairs:
        results[pair] = run_pair(pair, args.seeds)
        previous.setdefault("pairs", {})[pair] = results[pair]
        OUT.parent.mkdir(parents=True, exist_ok=True)
        previous["command"] = "OMP_NUM_THREADS=1 python benchmarks/free_energy.py"
        OUT.write_text(json.dumps(previous, indent=1))
    print(summary(results))
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
