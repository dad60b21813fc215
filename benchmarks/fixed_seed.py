"""Fixed-seed fingerprints of AIS, SMC, MALA, HMC, NETS, flow-MCMC and fit: log Z and hashes of
samples and weights, to check that a refactor changes no result.

    OMP_NUM_THREADS=1 python benchmarks/fixed_seed.py > after.json
    diff benchmarks/results/fixed_seed_before_architecture.json after.json

The stored file was made at commit f029e5a (after the safe-runs work, before the architecture
rework); see benchmarks/RESULTS.md for what changed since and why.
"""

import hashlib
import json
import sys

import torch

import interpolants as si

torch.set_num_threads(1)


def h(t):
    return hashlib.sha256(t.detach().double().cpu().numpy().tobytes()).hexdigest()[:16]


out = {}
g = si.targets.get("gmm-d2-k3")
for method, opts in [
    ("ais", {"steps": 20}),
    ("smc", {}),
    ("mala", {"chains": 8, "warmup": 50}),
    ("hmc", {"chains": 8, "warmup": 50}),
    ("nets", {"steps": 5, "train_steps": 5, "iterations": 4, "train_walkers": 8, "updates": 2}),
    ("flow-mcmc", {"chains": 8, "warmup": 20, "max_rounds": 20, "min_rounds": 5}),
]:
    r = si.sample(g, method, n=200, seed=0, **opts)
    out[method] = {"log_Z": r.log_Z, "samples": h(r.samples), "evaluations": r.evaluations}
x = si.data.load("moons", n=500)
m = si.fit(
    x, steps=20, batch_size=32, seed=0, net_options={"width": 16, "depth": 2}, progress=False
)
out["fit"] = {
    "sample": h(m.sample(10, steps=4, generator=torch.Generator().manual_seed(0))),
    "params": h(torch.cat([p.flatten() for p in m.velocity.parameters()])),
}
m2 = si.fit(
    x,
    steps=10,
    batch_size=32,
    seed=1,
    fields=("velocity", "score"),
    interpolant=si.Interpolant("trig", gamma="brownian"),
    net_options={"width": 16, "depth": 2},
    progress=False,
)
out["fit2"] = {
    "params": h(
        torch.cat(
            [p.flatten() for p in m2.velocity.parameters()]
            + [p.flatten() for p in m2._score.parameters()]
        )
    )
}
json.dump(out, sys.stdout, indent=1)
