"""Diagnostic: is NETS on the funnel limited by where its training walkers go?

The PINN objective is off-policy: any points with full support at each t define the drift.
NETS trains on its own walkers, which on Neal's funnel never leave |x_0| < 3.3 (RESULTS_nets.md).
Here the same network and loss are trained on *exact* samples of the path's pi_t instead (an
oracle no real target offers), then sampled as usual; the gap between this and the ordinary
run is what the training walkers cost, the rest is the drift's own error.

Exact samples of pi_beta for the funnel (x_0 = v ~ N(0, s^2), x_i | v ~ N(0, e^v), i < d) and
the base N(0, I), U_beta = (1 - beta) U_0 + beta U_1: given v the x_i are N(0, 1 / lam) with
lam = (1 - beta) + beta e^{-v}, and integrating them out,

    log p_beta(v) = -(1 - beta) v^2 / 2 - beta v^2 / (2 s^2) - beta (d - 1) v / 2
                    - (d - 1) / 2 log lam + const,

sampled by inverse CDF on a grid of v. ``--temperature T`` draws v from p_beta(v)^(1 / T)
(normalised) and the x_i given v as before: the neck and the mouth of the funnel more often
than pi_beta has them, so that the loss also sees its tails. (Tempering the whole density
would not do: pi_1^(1 / T) has x_i | v ~ N(0, T e^v) and a v-marginal growing like
e^{(d - 1)(1 - 1 / T) v / 2}, whose mass sits far out in the mouth.)

Run: ``OMP_NUM_THREADS=1 python benchmarks/nets_funnel_oracle.py --schedule reverse_power``
(about 4 minutes on one core; ``--schedule power`` for the default path).
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import Tensor

import interpolants as si
from interpolants.nn import build_drift
from interpolants.samplers import nets
from interpolants.samplers.ais import AnnealedDensity, resolve_base
from interpolants.samplers.base import CountedDensity, make_generator
from interpolants.samplers.nets import sampling, training  # noqa: F401 (nets.sampling, nets.training)


def funnel_path_sample(
    beta: float,
    m: int,
    dim: int,
    scale: float,
    generator: torch.Generator,
    temperature: float = 1.0,
) -> Tensor:
    """m exact samples of pi_beta, v tempered by T (module docstring), float64, (m, dim)."""
    v = torch.linspace(-8 * scale, 8 * scale, 40001, dtype=torch.float64)
    lam = (1 - beta) + beta * torch.exp(-v)
    energy = (1 - beta) * v**2 / 2 + beta * v**2 / (2 * scale**2) + beta * (dim - 1) * v / 2
    log_p = (-energy - (dim - 1) / 2 * lam.log()) / temperature
    cdf = torch.softmax(log_p, 0).cumsum(0)
    u = torch.rand(m, generator=generator, dtype=torch.float64)
    v0 = v[torch.searchsorted(cdf, u).clamp(max=len(v) - 1)]
    lam0 = (1 - beta) + beta * torch.exp(-v0)
    x = torch.randn(m, dim - 1, generator=generator, dtype=torch.float64) / lam0.sqrt()[:, None]
    return torch.cat([v0[:, None], x], 1)


def train_on_exact_samples(
    schedule: str, rounds: int, features: int, seed: int = 0, temperature: float = 1.0
) -> nets.NETSModel:
    """run_nets's training loop (rounds of 50 random times x 128 points, 48 Adam steps on
    minibatches of 256, exact divergence), with the points drawn from pi_t itself."""
    target = si.targets.get("funnel")
    base = resolve_base(target, None, None, None)
    path = nets.NETSPath(AnnealedDensity(CountedDensity(target), base), schedule, 3.0)
    generator = make_generator(seed)
    scale = base.sample(256, make_generator(seed + 7919)).float().std(0)
    torch.manual_seed(seed)
    raw = build_drift(target, None, scale, None, None, features, 8.0)
    config = {"schedule": schedule, "schedule_power": 3.0, "objective": "pinn", "dim": target.dim}
    model = nets.NETSModel(raw, config)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    lr = torch.optim.lr_scheduler.CosineAnnealingLR(opt, rounds, 3e-4)
    start = time.perf_counter()
    for it in range(rounds):
        records = []
        for t in nets.time_grid(50, generator):
            beta, _ = path.beta(float(t))
            x = funnel_path_sample(beta, 128, target.dim, target.scale, generator,
                                   temperature).float()  # fmt: skip
            zero = torch.zeros(128, dtype=torch.float64)
            records.append(nets.sampling.record_walkers(float(t), path.state(x, beta), zero))
        data = nets.training.Batch.from_records(records)
        if it == 0:
            nets.training.init_scales(model, path, data)
        for _ in range(48):
            batch = data.take(torch.randint(0, data.t.shape[0], (256,), generator=generator))
            loss, _, dldt = nets.training.pinn_loss(model, path, batch, True, 1, generator)
            nets.training.update_var(model, batch.t, dldt)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
        lr.step()
        if (it + 1) % 50 == 0:
            print(f"round {it + 1}: loss {float(loss.detach()):.3f}, log Z from F "
                  f"{model.log_Z_from_F():.3f}, {time.perf_counter() - start:.0f} s",
                  flush=True)  # fmt: skip
    return model


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--schedule", default="reverse_power", choices=nets.SCHEDULES)
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--features", type=int, default=0)
    p.add_argument("--steps", type=int, nargs="+", default=[200, 400])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperature", type=float, default=1.0,
                   help="v of the training points from p_t(v)^(1/T): more tails")  # fmt: skip
    args = p.parse_args()
    torch.set_num_threads(1)
    model = train_on_exact_samples(args.schedule, args.rounds, args.features, args.seed,
                                   args.temperature)  # fmt: skip
    target = si.targets.get("funnel")
    print("| schedule | K | log Z (± se) | ESS/N | walkers' x_0, 0.1 % to 99.9 % |")
    print("|---|---|---|---|---|")
    for k in args.steps:
        r = si.sample(target, "nets", n=2000, seed=args.seed + 1, model=model, steps=k,
                      eps="adapt")  # fmt: skip
        q = torch.quantile(r.samples[:, 0].double(), torch.tensor([1e-3, 1 - 1e-3]).double())
        print(f"| {args.schedule} | {k} | {r.log_Z:.3f} ± {r.log_Z_stderr:.3f} | {r.ess:.3f} | "
              f"{float(q[0]):.2f} to {float(q[1]):.2f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
