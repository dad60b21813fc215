"""phi4 L = 8: observables of NETS with the Hutchinson log-det against the number of probes
and of sampling steps, all from one trained drift (benchmarks/RESULTS_nets.md, eighth session).

    OMP_NUM_THREADS=1 python benchmarks/nets_phi4_probes.py --probes 4 --seeds 1 2 3 4 5

The drift is trained once (seed 0, 100 rounds, Hutchinson, no hop channel; about 12 minutes
on one core) into ``--log-dir`` and reloaded from its checkpoint on later calls; each
sampling seed prints one JSON line (log Z, ESS/N, <|m|>, chi).
"""

from __future__ import annotations

import argparse
import json
import time

import interpolants as si
from interpolants.app.sample_target import target_metrics

KEYS = ("log_Z", "log_Z_stderr", "ess", "abs_magnetization", "abs_magnetization_stderr",
        "susceptibility")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--probes", type=int, default=1)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--resampled", type=float, default=0.5, help="resample_threshold")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--log-dir", default="runs/hop/h0")
    args = p.parse_args()
    target = si.targets.get("phi4")
    trained = si.sample(target, "nets", n=8, seed=0, iterations=100, log_det="hutchinson",
                        net_options={"hop": False}, log_dir=args.log_dir, resume=True)  # fmt: skip
    model = trained.info["model"]
    for seed in args.seeds:
        start = time.perf_counter()
        r = si.sample(target, "nets", n=2000, seed=seed, model=model, probes=args.probes,
                      log_det="hutchinson", steps=args.steps,
                      resample_threshold=args.resampled)  # fmt: skip
        m = {**r.to_dict(), **target_metrics(target, r)}
        row = {k: m.get(k) for k in KEYS} | {"seed": seed, "wall": time.perf_counter() - start}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
