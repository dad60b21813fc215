"""Do LEAPS's error bars hold on the L = 16 Ising model at beta_c? One model is trained (seed 0),
then R independent sampling runs of n walkers with it are scored against Kaufman's exact
log Z: the mean error (with the standard error of that mean), the spread of the estimates
against the mean reported error bar, the mean |z| (0.80 for honest normal errors) and how
many runs fall beyond 3 error bars (RESULTS.md "Discrete targets and LEAPS").

    OMP_NUM_THREADS=1 python benchmarks/leaps_error_bars.py [RUNS] [N] [OUT.json] [K=V ...]

K=V pairs are more LEAPS options for the training run (e.g. ``train_steps=1000``), read as
Python literals; the sampling runs take ``steps``, ``sweeps`` and ``batches`` from them too.
"""

import ast
import json
import statistics
import sys
import time

import torch

import interpolants as si


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 12
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    out = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] != "-" else None
    options = {"steps": 100, "sweeps": 1, "batches": 10, "train_steps": 1000}
    options.update({k: ast.literal_eval(v) for k, v in (a.split("=", 1) for a in sys.argv[4:])})
    torch.set_num_threads(1)
    target = si.targets.get("ising", L=16, beta=0.4407)
    start = time.perf_counter()
    model = si.sample(target, "leaps", n=n, seed=0, **options).info.model
    trained = time.perf_counter() - start
    keep = {k: options[k] for k in ("steps", "sweeps", "batches")}
    errors, stderrs = [], []
    for seed in range(1, runs + 1):
        r = si.sample(target, "leaps", n=n, seed=seed, model=model, **keep)
        errors.append(r.log_Z - target.log_Z)
        stderrs.append(r.log_Z_stderr)
        print(f"run {seed}: error {errors[-1]:+.3f} +- {stderrs[-1]:.3f}, ESS/N {r.ess:.3f}",
              flush=True)  # fmt: skip
    z = [e / s for e, s in zip(errors, stderrs, strict=True)]
    summary = {
        "mean_error": statistics.fmean(errors),
        "stderr_of_mean": statistics.stdev(errors) / len(errors) ** 0.5,
        "sd": statistics.stdev(errors),
        "mean_stderr": statistics.fmean(stderrs),
        "mean_abs_z": statistics.fmean(abs(v) for v in z),
        "beyond_3": sum(abs(v) > 3 for v in z),
        "training_seconds": trained,
    }
    print({k: round(v, 4) for k, v in summary.items()})
    if out:
        record = {"runs": runs, "n": n, "options": options, "errors": errors,
                  "stderrs": stderrs, **summary}  # fmt: skip
        with open(out, "w") as f:
            json.dump(record, f, indent=1)


if __name__ == "__main__":
    main()
