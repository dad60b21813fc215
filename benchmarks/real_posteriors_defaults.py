"""The samplers' defaults on the real-posterior targets with exact references (eight_schools
centred and non-centred, local_level): log Z error against its standard error, and the
largest posterior-mean error in posterior sds. One seed, n = 4000: a first look, not the
five-seed protocol of docs/benchmarks.md.

    OMP_NUM_THREADS=1 python benchmarks/real_posteriors_defaults.py
"""

import time
import warnings

import torch

import interpolants as si

warnings.simplefilter("ignore")
torch.set_num_threads(1)

RUNS = [
    ("eight_schools", {"centered": True}, ("hmc", "smc")),
    ("eight_schools", {"centered": False}, ("hmc", "smc")),
    ("local_level", {}, ("hmc", "smc", "ais")),
]

for name, options, methods in RUNS:
    target = si.targets.get(name, **options)
    mean, sd = torch.tensor(target.references["mean"]), torch.tensor(target.references["sd"])
    for method in methods:
        start = time.time()
        r = si.sample(target, method, n=4000, seed=0)
        m, _ = r.expectation(lambda x: x.double())
        z = (m.cpu() - mean) / sd
        log_z = "" if r.log_Z is None else f"{r.log_Z - target.log_Z:+.3f} +- {r.log_Z_stderr:.3f}"
        print(
            f"| {target.name} | {method} | {log_z} | {float(z.abs().max()):.2f} "
            f"({target.coordinate_names[int(z.abs().argmax())]}) | {len(r.warnings)} | "
            f"{r.evaluations} | {time.time() - start:.0f} |"
        )
