"""Few-step forecasts on a graded time grid: the drift of a finished ``interpolants bench
forecast`` run sampled by Euler-Maruyama at 10 steps on the uniform grid and on t_j = (j /
10)^p (finer near t = 1), beside the run's conditional-flow baseline by Euler's method at 10
steps on the same kind of grids (``--flow-powers``; the flow from noise contracts fastest
near t = 1 when the conditional law is narrow).

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/forecast_grid.py runs/bench/forecast

prints lag-1 CRPS and spread-skill per system (fresh test states, seed 2)."""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import torch

from interpolants.app.forecast_bench import FlowBaseline
from interpolants.app.forecast_eval import fresh_states
from interpolants.app.forecast_runs import load_forecast_run
from interpolants.generative import load
from interpolants.metrics import crps, spread_skill


def score(name: str, paths: torch.Tensor, truth: torch.Tensor, label: str) -> None:
    """Print the lag-1 CRPS and spread-skill of the ensemble ``paths`` (lags, members, ...)."""
    ens = paths[0].double()
    value = float(crps(ens, truth, reduction="none").flatten(1).mean())
    print(f"{name:11s} {label:34s} CRPS {value:.4f}  spread-skill "
          f"{spread_skill(ens, truth):.3f}", flush=True)  # fmt: skip


def graded(k: int, p: float) -> list[float]:
    """The grid t_j = (j / k)^p, j = 0..k (finer near t = 1 for p < 1)."""
    return [(j / k) ** p for j in range(k + 1)]


def flow_on_grid(
    flow: FlowBaseline, x0: torch.Tensor, members: int, times: list[float], gen: torch.Generator
) -> torch.Tensor:
    """(1, members, rows, *event) one-lag forecasts of the conditional flow by Euler's method
    on the grid ``times`` (one velocity evaluation a step)."""
    cond = flow.normaliser.to_model(x0.float()).repeat_interleave(members, 0)  # state-major
    x = torch.randn(cond.shape, generator=gen)
    for a, b in itertools.pairwise(times):
        x = flow.model.transport(x, a, b, steps=1, solver="euler", cond=cond)
    x = flow.normaliser.from_model(x).view(x0.shape[0], members, *x0.shape[1:])
    return x.transpose(0, 1)[None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a bench forecast folder (DIR/forecast)")
    parser.add_argument("--systems", nargs="+", default=["lorenz63", "allen_cahn"])
    parser.add_argument("--states", type=int, default=300)
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--flow-powers", type=float, nargs="+", default=[0.5, 0.3, 0.2])
    args = parser.parse_args()
    k = args.steps
    for name in args.systems:
        run = load_forecast_run(args.folder / name)
        flow = FlowBaseline(load(args.folder / f"{name}-flow"), run.normaliser)
        gen = torch.Generator().manual_seed(2)
        x0 = fresh_states(run.system, args.states, gen)
        truth = run.system.advance(x0, generator=gen)
        score(name, run.system.ensemble(x0, args.members, gen)[None], truth, "true SDE")
        score(name, flow.rollout(x0, 1, args.members, steps=k, solver="euler", generator=gen),
              truth, f"flow, Euler {k}")  # fmt: skip
        for p in args.flow_powers:
            score(name, flow_on_grid(flow, x0, args.members, graded(k, p), gen), truth,
                  f"flow, Euler {k}, p = {p}")  # fmt: skip
        for diffusion in ("interpolant", "follmer"):
            for p in (1.0, 0.7, 0.5):
                times = None if p == 1.0 else graded(k, p)
                paths = run.rollout(x0, 1, args.members, diffusion=diffusion, steps=k,
                                    generator=gen, times=times)  # fmt: skip
                score(name, paths, truth, f"{diffusion}, Euler {k}, p = {p}")


if __name__ == "__main__":
    main()
