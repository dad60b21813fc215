"""NETS's drift with and without random Fourier features of x, on the same seed.

    OMP_NUM_THREADS=1 python benchmarks/nets_features.py --targets gmm40 funnel \
        [--features 64 0] [--n 2000] [--seed 0] [--json rows.json]

One call per (target, features): ``si.sample(t, "nets", n=n, seed=seed, reverse=None,
features=f)``. Without the bias check there are no reruns, so both drifts are judged on the
same kind of run: SMC's ladder with MALA moves. Each row has ``drift_gain`` (the conditional
ESS lost per level by reweighting alone over that lost with the drift, as logs summed over
levels), the PINN loss of training's last logged round, log Z's error against the target's
exact or reference value and its standard error (that of the forward run alone, which on
the funnel and local_level is known to be too small: benchmarks/RESULTS.md), evaluations
and seconds. Targets: the suite's names of ``real_posteriors.py`` (``eight_schools`` is the
centred model, ``eight_schools_noncentered`` the other), else any registry name.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

from real_posteriors import TARGETS  # the suite's names (this folder is on sys.path)

import interpolants as si


def run(name: str, features: int, n: int, seed: int) -> dict:
    """One NETS run's figures."""
    base, options = TARGETS.get(name, (name, {}))  # else a registry name
    target = si.targets.get(base, **options)
    start = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = si.sample(target, "nets", n=n, seed=seed, reverse=None, features=features)
    history = r.info.get("history") or [{}]
    error = None if target.log_Z is None else r.log_Z - target.log_Z
    return {"target": name, "dim": target.dim, "features": features, "seed": seed, "n": n,
            "drift_gain": r.info["drift_gain"], "loss": history[-1].get("loss"),
            "error": error, "stderr": r.log_Z_stderr, "levels": r.info["grid_steps"],
            "evaluations": r.evaluations, "seconds": time.time() - start}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", nargs="+", required=True)
    parser.add_argument("--features", nargs="+", type=int, default=[64, 0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="write the rows here")
    args = parser.parse_args()
    rows = []
    for name in args.targets:
        for features in args.features:
            rows.append(run(name, features, args.n, args.seed))
            print(json.dumps(rows[-1]), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
