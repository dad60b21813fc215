r"""Reference observables of the ``particles`` target (N = 16, a = 4) across the transition.

Run: ``OMP_NUM_THREADS=1 python benchmarks/references/particles.py`` (about 6 minutes on one
core; ``--quick`` for a smoke run). It prints, for kT = 0.075, 0.0775, ..., 0.105, the energy
per particle U/N and the order parameter (:meth:`Particles.order_parameter`) with standard
errors, the fraction of time in the liquid drop (order parameter > 0.5), and diagnostics.

Why parallel tempering: at kT = 0.09 (the default) both the gas and the drop persist for
thousands of sweeps from either start (see the class docstring), so a single-temperature
chain (HMC, MALA or Metropolis) reports whichever phase it started in. Here ``LADDERS``
independent parallel-tempering ladders, each with one replica at every temperature of the
grid, run single-particle Metropolis sweeps (each particle in turn: a Gaussian step, wrapped
into the box, accepted with min(1, exp(-dU / kT))); after each sweep neighbouring
temperatures propose to swap configurations (even pairs after even sweeps, odd pairs after
odd ones), accepted with min(1, exp((1/kT_i - 1/kT_j)(U_i - U_j))). Configurations melt at
the hot end and condense at the cold end, and swaps carry both phases across the
transition, so the phase weights at each kT equilibrate. The step size of each temperature
is tuned during the burn-in only (to about 40 % acceptance) and then frozen.

Equilibration: half of the ladders start with every replica in the gas (uniform positions),
half with every replica in a compact drop; the phase weights P(drop) found from the two
starts must agree at every kT (printed side by side). A first attempt with 4 ladders and
only 600 sweeps (all from the gas) still showed the gas start: its P(drop) at kT = 0.09 was
0.17 against 0.79 here, which is why the burn-in is long (1500 sweeps, about five times the
largest integrated autocorrelation time, about 280 sweeps at kT = 0.0925).

Errors: each ladder's time average is one independent estimate; the standard error is the
sd over the ladders / sqrt(ladders) (each ladder made many round trips: printed). Also
printed: the multi-chain IAT-corrected MCSE over ladders (``mcse_mean``), for comparison.

Check: at kT = 0.075 (drop) and kT = 0.105 (gas), single-temperature HMC chains of the library
(``si.sample(..., "hmc")``, started in a drop at 0.075 and uniformly at 0.105; positions
are not wrapped: the density is periodic) must agree with
the parallel-tempering values within the errors (printed).
"""

from __future__ import annotations

import argparse
import math
import time

import torch

import interpolants as si
from interpolants.samplers.diagnostics import integrated_autocorr_time, mcse_mean
from interpolants.targets import get

SEED = 20240604
TEMPERATURES = [round(0.075 + 0.0025 * k, 4) for k in range(13)]  # 0.075 ... 0.105
LADDERS = 16
BURN_IN = 1500
SWEEPS = 8000


def sweep(
    x: torch.Tensor, kT: torch.Tensor, step: torch.Tensor, a: float, gen: torch.Generator
) -> torch.Tensor:
    """One single-particle Metropolis sweep of every configuration in place; x (B, N, 2) in
    [0, 1), kT and step (B,); returns the acceptance rate per configuration (B,)."""
    B, N, _ = x.shape
    accepted = torch.zeros(B, dtype=torch.float64)
    others = torch.ones(N, dtype=torch.bool)
    for i in range(N):
        others[i] = False
        rest = x[:, others]  # (B, N - 1, 2)
        old = x[:, i : i + 1]
        noise = torch.randn(B, 1, 2, generator=gen, dtype=x.dtype)
        new = torch.remainder(old + step[:, None, None] * noise, 1.0)
        w_old = torch.exp(a * (torch.cos(2 * math.pi * (old - rest)).sum(-1) - 2)).sum(1)
        w_new = torch.exp(a * (torch.cos(2 * math.pi * (new - rest)).sum(-1) - 2)).sum(1)
        dU = -(w_new - w_old) / N  # W = -exp(...), U = (1/N) sum_{i<j} W - 1/2
        ok = torch.rand(B, generator=gen, dtype=x.dtype).log() < -dU / kT
        x[:, i] = torch.where(ok[:, None], new[:, 0], old[:, 0])
        accepted += ok.double()
        others[i] = True
    return accepted / N


def parallel_tempering(
    temperatures: list[float], ladders: int, burn_in: int, sweeps: int, seed: int, start: str
) -> dict:
    """``ladders`` independent ladders started in the gas (uniform positions) or in a drop
    (positions 0.5 + 0.02 N(0, 1)); traces of U/N and the order parameter per slot."""
    target = get("particles", kT=temperatures[0], dtype=torch.float64)
    N, a = target.N, target.a
    T = len(temperatures)
    gen = torch.Generator().manual_seed(seed)
    B = ladders * T
    kT = torch.tensor(temperatures, dtype=torch.float64).repeat(ladders)  # slot r * T + k
    step = torch.full((T,), 0.1, dtype=torch.float64)
    if start == "gas":
        x = torch.rand(B, N, 2, generator=gen, dtype=torch.float64)
    else:
        x = torch.remainder(0.5 + 0.02 * torch.randn(B, N, 2, generator=gen), 1.0).double()
    replica = torch.arange(T).repeat(ladders, 1)  # which replica sits at each temperature
    last_end = torch.zeros(ladders, T, dtype=torch.long)  # 0 none, 1 cold end, 2 hot end
    trips = torch.zeros(ladders, T, dtype=torch.long)
    swap_acc = torch.zeros(T - 1, dtype=torch.float64)
    u_trace, op_trace, move_acc = [], [], torch.zeros(T, dtype=torch.float64)
    t0 = time.time()
    for s in range(burn_in + sweeps):
        acc = sweep(x, kT, step.repeat(ladders), a, gen).reshape(ladders, T).mean(0)
        if s < burn_in:
            step = (step * torch.exp(0.5 * (acc - 0.4))).clamp(1e-3, 0.5)
        else:
            move_acc += acc
        flat = x.reshape(B, 2 * N)
        U = target.energy(flat).reshape(ladders, T)
        # replica-exchange between neighbouring temperatures
        first = s % 2
        lo = torch.arange(first, T - 1, 2)
        beta = 1 / torch.tensor(temperatures, dtype=torch.float64)
        log_r = (beta[lo] - beta[lo + 1]) * (U[:, lo] - U[:, lo + 1])
        ok = torch.rand(ladders, len(lo), generator=gen, dtype=torch.float64).log() < log_r
        xs = x.reshape(ladders, T, N, 2)
        for j, k in enumerate(lo.tolist()):
            sel = ok[:, j]
            if bool(sel.any()):
                xs[sel, k], xs[sel, k + 1] = xs[sel, k + 1].clone(), xs[sel, k].clone()
                U[sel, k], U[sel, k + 1] = U[sel, k + 1].clone(), U[sel, k].clone()
                replica[sel, k], replica[sel, k + 1] = replica[sel, k + 1], replica[sel, k]
        if s >= burn_in:
            swap_acc[lo] += ok.double().mean(0)
            # round trips: a replica that reaches the hot end after the cold end, or back
            cold, hot = replica[:, 0], replica[:, -1]
            rows = torch.arange(ladders)
            trips[rows, hot] += (last_end[rows, hot] == 1).long()
            last_end[rows, hot] = 2
            trips[rows, cold] += (last_end[rows, cold] == 2).long()
            last_end[rows, cold] = 1
            u_trace.append(U / N)
            op_trace.append(target.order_parameter(x.reshape(B, 2 * N)).reshape(ladders, T))
    seconds = time.time() - t0
    u = torch.stack(u_trace)  # (sweeps, ladders, T)
    op = torch.stack(op_trace)
    return {
        "u": u,
        "op": op,
        "step": step,
        "move_acceptance": move_acc / sweeps,
        "swap_acceptance": swap_acc / (sweeps / 2),
        "round_trips_per_ladder": trips.sum(1).double() / 2,
        "seconds": seconds,
    }


def summarise(values: torch.Tensor) -> tuple[float, float, float, float]:
    """values (sweeps, ladders): mean, sd over ladder means / sqrt(ladders), IAT MCSE, IAT."""
    ladder_means = values.mean(0)
    se = float(ladder_means.std() / math.sqrt(values.shape[1]))
    mean, mcse = mcse_mean(values)
    return float(mean[0]), se, float(mcse[0]), float(integrated_autocorr_time(values)[0])


def hmc_check(kT: float, seed: int, draws: int, drop: bool) -> tuple[tuple, tuple]:
    """U/N and the order parameter by the library's HMC at one temperature, 64 chains started
    in a compact drop (``drop``) or uniformly in the box."""
    target = get("particles", kT=kT, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    if drop:
        init = 0.5 + 0.02 * torch.randn(64, target.dim, generator=gen, dtype=torch.float64)
    else:
        init = torch.rand(64, target.dim, generator=gen, dtype=torch.float64)
    r = si.sample(target, "hmc", n=64 * draws, seed=seed, init=init, warmup=500)
    u = r.expectation(target.energy_per_particle)
    op = r.expectation(target.order_parameter)
    return (float(u[0]), float(u[1])), (float(op[0]), float(op[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ladders = 2 if args.quick else LADDERS // 2
    burn_in = 200 if args.quick else BURN_IN
    sweeps = 400 if args.quick else SWEEPS
    runs = {
        start: parallel_tempering(TEMPERATURES, ladders, burn_in, sweeps, SEED + k, start)
        for k, start in enumerate(("gas", "drop"))
    }
    print(
        f"particles N=16 a=4: parallel tempering, 2 x {ladders} ladders (started in the gas and "
        f"in a drop) x {len(TEMPERATURES)} temperatures, {burn_in} burn-in + {sweeps} sweeps "
        f"({sum(r['seconds'] for r in runs.values()):.0f} s)"
    )
    for start, r in runs.items():
        trips = r["round_trips_per_ladder"]
        print(f"  {start} start: round trips per ladder min {float(trips.min()):.1f}, "
              f"mean {float(trips.mean()):.1f}")  # fmt: skip
    u_all = torch.cat([r["u"] for r in runs.values()], 1)
    op_all = torch.cat([r["op"] for r in runs.values()], 1)
    print("  kT      U/N                    order parameter        P(drop)          "
          "IAT(U, op)  move acc  swap acc  P(drop) gas start / drop start")  # fmt: skip
    gas, drop = runs["gas"], runs["drop"]
    swap = torch.cat([(gas["swap_acceptance"] + drop["swap_acceptance"]) / 2,
                      torch.tensor([math.nan])])  # fmt: skip
    for k, kT in enumerate(TEMPERATURES):
        u = summarise(u_all[:, :, k])
        op = summarise(op_all[:, :, k])
        frac = summarise((op_all[:, :, k] > 0.5).double())
        by_start = [summarise((r["op"][:, :, k] > 0.5).double()) for r in (gas, drop)]
        acc = float(gas["move_acceptance"][k] + drop["move_acceptance"][k]) / 2
        print(
            f"  {kT:.4f}  {u[0]:+.5f} +- {u[1]:.5f} ({u[2]:.5f})  "
            f"{op[0]:.5f} +- {op[1]:.5f} ({op[2]:.5f})  {frac[0]:.3f} +- {frac[1]:.3f}  "
            f"{u[3]:6.1f} {op[3]:6.1f}  {acc:.2f}  {float(swap[k]):.2f}  "
            f"{by_start[0][0]:.3f} +- {by_start[0][1]:.3f} / {by_start[1][0]:.3f} +- "
            f"{by_start[1][1]:.3f}"
        )
    if not args.quick:
        for kT in (0.075, 0.105):
            u, op = hmc_check(kT, SEED + 2, 500, drop=kT < 0.09)
            print(
                f"  HMC check kT={kT}: U/N {u[0]:+.5f} +- {u[1]:.5f}, op {op[0]:.5f} +- {op[1]:.5f}"
            )


if __name__ == "__main__":
    main()
