"""How often SMC's error bar from R runs covers the truth, for one design (benchmarks/RESULTS.md,
"Two error bars a new user found too small").

SMC's runs follow one design (the pilot's ladder, step sizes and preconditioners), so one run
with many more runs of the same size shows the spread that R = 10 runs estimate. This draws
``--subsets`` sets of R of the runs and reports how often |log Z_hat - log Z| > 3 se, where
se is the delta method over the R runs alone (before the perfect-mixing floor), and how
often their spread is at most ``--tight``.

Run: ``OMP_NUM_THREADS=1 python benchmarks/smc_error_bars.py --target logistic_regression
--seeds 0 1 --walkers 50 --runs 200`` (about a minute per seed on one core).
"""

from __future__ import annotations

import argparse
import warnings

import torch

import interpolants as si
from interpolants.samplers.ais import SMCConfig
from interpolants.samplers.diagnostics import log_Z_over_batches
from interpolants.samplers.escalation import mixed_stderr


def study(
    target: si.targets.Target, seed: int, walkers: int, runs: int, r: int, subsets: int,
    tight: float,
) -> dict[str, float]:  # fmt: skip
    """One design's ``runs`` runs of ``walkers`` walkers; the coverage of R-run error bars."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = si.sample(target, "smc", n=walkers * runs, seed=seed, batches=runs,
                           reverse=None, escalate=0)  # fmt: skip
    log_z = result.info.log_Z_batches.double()
    generator = torch.Generator().manual_seed(seed)
    missed = small = 0
    for _ in range(subsets):
        pick = log_z[torch.randperm(runs, generator=generator)[:r]]
        estimate, se = log_Z_over_batches(pick)
        missed += abs(estimate - target.log_Z) > 3 * se
        small += float(pick.std()) <= tight
    return {
        "seed": seed,
        "per_run_sd": float(log_z.std()),
        "perfect_mixing_per_run_sd": mixed_stderr(result.info.levels, SMCConfig.cess, walkers),
        "missed_3se": missed / subsets,
        "spread_at_most_tight": small / subsets,
        "levels": result.info.levels,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", default="logistic_regression")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--walkers", type=int, default=50, help="walkers per run (n / R)")
    p.add_argument("--runs", type=int, default=200, help="runs of the one design")
    p.add_argument("-R", type=int, default=10, help="runs per error bar (SMC's batches)")
    p.add_argument("--subsets", type=int, default=4000)
    p.add_argument("--tight", type=float, default=0.070, help="a per-run sd to count below")
    args = p.parse_args()
    target = si.targets.get(args.target)
    for seed in args.seeds:
        row = study(target, seed, args.walkers, args.runs, args.R, args.subsets, args.tight)
        print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in row.items()), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
