"""One trained NETS drift sampled again with fresh seeds: does the spread of log Z over the
repeats match the reported standard errors, and does their mean sit at the truth?

    OMP_NUM_THREADS=1 python benchmarks/nets_fixed_drift.py [--target gmm-d50-k10]
        [--seed 11] [--repeats 4] [--n 2000]

Prints one JSON line per run: the trained one (seed S, NETS's defaults), then the repeats
(seed 1000 S + k, ``model=`` the trained drift, no bias check). Seeds of the training
that differ in log Z only by the sampling stage's noise average out over repeats; a drift
that biases its own estimates does not.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from typing import Any

import torch

import interpolants as si


def report(seed: int, trained: bool, result: Any, target: Any, start: float) -> None:
    """One run's JSON line."""
    row = {"seed": seed, "trained": trained, "log_Z": result.log_Z,
           "stderr": result.log_Z_stderr, "evaluations": result.evaluations,
           "drift_gain": result.info.get("drift_gain"), "seconds": time.time() - start}  # fmt: skip
    if target.log_Z is not None:
        row["error"] = result.log_Z - target.log_Z
    print(json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="gmm-d50-k10")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    target = si.targets.get(args.target)
    start = time.time()
    trained = si.sample(target, "nets", n=args.n, seed=args.seed)
    report(args.seed, True, trained, target, start)
    for k in range(1, args.repeats + 1):
        start, seed = time.time(), 1000 * args.seed + k
        r = si.sample(target, "nets", n=args.n, seed=seed, model=trained.info["model"],
                      reverse=None)  # fmt: skip
        report(seed, False, r, target, start)


if __name__ == "__main__":
    main()
