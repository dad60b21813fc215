"""The samplers' defaults on the real-posterior targets (eight_schools centred and
non-centred, local_level: exact references; logistic_regression, item_response centred and
non-centred: long-run references): log Z error against its standard error, and the largest
posterior-mean error in posterior sds. One seed, n = 4000: a first look, not the five-seed
protocol of docs/benchmarks.md.

    OMP_NUM_THREADS=1 python benchmarks/real_posteriors_defaults.py [NAME ...]

With names, only those targets run.
"""

import sys
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
    ("logistic_regression", {}, ("hmc", "smc")),
    ("item_response", {"centered": True}, ("hmc", "smc")),
    ("item_response", {"centered": False}, ("hmc", "smc")),
]

for name, options, methods in RUNS:
    if sys.argv[1:] and name not in sys.argv[1:]:
        continue
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
