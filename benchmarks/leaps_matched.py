"""LEAPS on the L = 16 Ising model at beta_c with given training steps, against AIS and SMC at
LEAPS's sampling and total evaluations, one seed per call (``interpolants bench leaps`` without
Swendsen-Wang, so that seeds can run as parallel processes; RESULTS.md "Discrete targets and
LEAPS").

    OMP_NUM_THREADS=1 python benchmarks/leaps_matched.py SEED [TRAIN_STEPS] [OUT.json] [K=V ...]

K=V pairs are more LEAPS options (e.g. ``steps_per_run=100``), read as Python literals.
"""

import ast
import json
import sys

import torch

import interpolants as si
from interpolants.app.discrete_bench import matched_baselines, timed_run


def main() -> None:
    seed = int(sys.argv[1])
    train_steps = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    out = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] != "-" else None
    options = {k: ast.literal_eval(v) for k, v in (a.split("=", 1) for a in sys.argv[4:])}
    torch.set_num_threads(1)
    target = si.targets.get("ising", L=16, beta=0.4407)
    n = 2000
    leaps = timed_run(target, "leaps", n, seed, steps=100, train_steps=train_steps, batches=10,
                   sweeps=1, **options)  # fmt: skip
    rows = {"leaps": leaps, **matched_baselines(target, leaps, n, seed, batches=10)}
    for name, r in rows.items():
        print(
            f"{name}: log Z error {r['log_Z_error']:+.3f} +- {r['log_Z_stderr']:.3f}, "
            f"ESS/N {r['ess']:.3f}, evaluations {r['evaluations']}, {r['seconds']:.0f} s"
        )
    if out:
        with open(out, "w") as f:
            record = {"seed": seed, "train_steps": train_steps, "options": options, "rows": rows}
            json.dump(record, f, indent=1)


if __name__ == "__main__":
    main()
