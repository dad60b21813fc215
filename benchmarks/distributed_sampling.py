"""Sampling across processes (issue 23): the wall time of one process against
``torchrun --nproc_per_node=K`` on a target whose evaluation dominates.

The target: Bayesian logistic regression, N(0, I) prior, ``--rows`` synthetic data rows of
``--dim`` features (seeded), float64; one evaluation of a walker costs O(rows * dim).

    # one run (under torchrun: the walkers' evaluations split over the ranks)
    OMP_NUM_THREADS=1 python benchmarks/distributed_sampling.py --method smc
    # the comparison: 1 process and torchrun with 2, alternated, --repeats times each
    OMP_NUM_THREADS=1 python benchmarks/distributed_sampling.py --compare 2 --repeats 3

A run prints one JSON line (rank 0): every rank's CPU seconds in sampling, the sampling
wall time (after the imports and the process group's start), log Z and its standard error.
``--compare`` reports the medians and their ratio (speed-up = median of one process / median
of K), the whole command's wall time (interpreter and torchrun start included) likewise, and
the ratio of CPU seconds (one process / the busiest rank): the work's split, which is the
speed-up to expect on K cores that nothing else uses.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

import torch

RUNS = {
    "smc": {"method": "smc", "n": 200, "reverse": None},
    "hmc": {"method": "hmc", "n": 1024, "chains": 32, "warmup": 100, "num_steps": 5},
    "hmc128": {"method": "hmc", "n": 4096, "chains": 128, "warmup": 100, "num_steps": 5},
}


def logistic_target(rows: int, dim: int, seed: int = 0):
    """The posterior of a logistic regression on seeded synthetic data (labels drawn from a
    true coefficient vector of norm ~1)."""
    from interpolants.distributions import DiagonalNormal
    from interpolants.targets import Target

    g = torch.Generator().manual_seed(seed)
    features = torch.randn(rows, dim, generator=g, dtype=torch.float64)
    truth = torch.randn(dim, generator=g, dtype=torch.float64) / math.sqrt(dim)
    labels = torch.rand(rows, generator=g, dtype=torch.float64) < torch.sigmoid(features @ truth)
    signs = labels.double() * 2 - 1  # y in {-1, 1}: log p(y | x, w) = log sigmoid(y x.w)

    def log_prob(w: torch.Tensor) -> torch.Tensor:
        margins = (w @ features.T) * signs
        return torch.nn.functional.logsigmoid(margins).sum(1) - 0.5 * w.square().sum(1)

    base = DiagonalNormal(torch.zeros(dim, dtype=torch.float64), 1.0)  # the prior
    return Target(log_prob, dim=dim, base=base, name=f"logistic-{rows}x{dim}")


def run(args: argparse.Namespace) -> None:
    import interpolants as si
    from interpolants.samplers.distributed import all_gather_rows
    from interpolants.train import init_distributed

    size, rank = init_distributed()
    torch.set_num_threads(1)
    target = logistic_target(args.rows, args.dim)
    options = dict(RUNS[args.method])
    method = options.pop("method")
    start, cpu = time.perf_counter(), time.process_time()
    result = si.sample(target, method, seed=args.seed, **options)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    # every rank's CPU seconds (one row each): the split of the work
    cpus = all_gather_rows(torch.tensor([cpu], dtype=torch.float64), size).tolist()
    if rank == 0:
        print(json.dumps({"processes": size, "method": args.method, "sampling_seconds": wall,
                          "cpu_seconds": cpus, "log_Z": result.log_Z,
                          "log_Z_stderr": result.log_Z_stderr, "evaluations": result.evaluations,
                          "mean": result.samples.mean(0)[:3].tolist()}))  # fmt: skip


def compare(args: argparse.Namespace) -> None:
    me = [os.path.abspath(__file__), "--method", args.method, "--rows", str(args.rows),
          "--dim", str(args.dim), "--seed", str(args.seed)]  # fmt: skip
    commands = {
        1: [sys.executable, *me],
        args.compare: [sys.executable, "-m", "torch.distributed.run", "--standalone",
                       f"--nproc_per_node={args.compare}", *me],
    }  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    times: dict[int, list[tuple[float, float]]] = {k: [] for k in commands}
    outputs: dict[int, dict] = {}
    for _ in range(args.repeats):  # alternated: a change of the machine's load hits both
        for k, command in commands.items():
            start = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
            total = time.perf_counter() - start
            line = json.loads(done.stdout.strip().splitlines()[-1])
            cpu = max(line["cpu_seconds"])  # the busiest rank's CPU seconds
            times[k].append((line["sampling_seconds"], total, cpu))
            outputs[k] = line
    med = {k: [statistics.median(t[i] for t in v) for i in range(3)] for k, v in times.items()}
    print(json.dumps({
        "method": args.method, "rows": args.rows, "dim": args.dim, "repeats": args.repeats,
        "sampling_seconds": {k: [round(t[0], 2) for t in v] for k, v in times.items()},
        "command_seconds": {k: [round(t[1], 2) for t in v] for k, v in times.items()},
        "speedup_sampling": med[1][0] / med[args.compare][0],
        "speedup_command": med[1][1] / med[args.compare][1],
        "busiest_rank_cpu_seconds": {k: [round(t[2], 2) for t in v] for k, v in times.items()},
        "cpu_ratio": med[1][2] / med[args.compare][2],  # the speed-up on K free cores, at most
        "log_Z": {k: v["log_Z"] for k, v in outputs.items()},
        "log_Z_stderr": {k: v["log_Z_stderr"] for k, v in outputs.items()},
        "mean": {k: v["mean"] for k, v in outputs.items()},
        "load_average": os.getloadavg(),
    }, indent=1))  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", choices=sorted(RUNS), default="smc")
    p.add_argument("--rows", type=int, default=20000)
    p.add_argument("--dim", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compare", type=int, default=0, help="K: time 1 process against K")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    compare(args) if args.compare else run(args)


if __name__ == "__main__":
    main()
