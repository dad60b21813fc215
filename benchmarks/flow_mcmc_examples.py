r"""The talk's three flow-MCMC examples against MALA (and SMC for the evidence), at equal cost.

    OMP_NUM_THREADS=1 python benchmarks/flow_mcmc_examples.py phi4_1d [--b 0.001] [--seed 0]
    OMP_NUM_THREADS=1 python benchmarks/flow_mcmc_examples.py particles [--kT 0.09]
    OMP_NUM_THREADS=1 python benchmarks/flow_mcmc_examples.py radial_velocity

    OMP_NUM_THREADS=1 python benchmarks/flow_mcmc_examples.py phi4_1d --b 0.001 --warmup 1000 \
        --rounds 300 --min-rounds 200 --defensive 0.8     (the tuned run of RESULTS_flow_mcmc.md)
    OMP_NUM_THREADS=1 python benchmarks/flow_mcmc_examples.py radial_velocity --warmup 1000 \
        --rounds 300 --min-rounds 300 --train-steps 10 --draws 200 --defensive 0.5 \
        --defensive-scale 1.5                              (likewise)

Options: ``--anchors`` (anchor walkers, default as many as ``--chains``; 0 trains on the
walkers), ``--defensive`` (weight of the per-mode Gaussians in the proposal),
``--defensive-scale`` (their standard-deviation multiplier), ``--warmup``, ``--transport``
(coupling or interpolant), ``--layers``, ``--width``, ``--depth``, ``--lr``, ``--ode-steps``,
``--rounds``, ``--min-rounds``, ``--train-steps``.

Each run prints a markdown row per method and writes ``metrics.json`` and PNGs under
``--out`` (default ``runs/flow_mcmc/NAME``). Cost is counted in target evaluations (one per
walker per log density with its gradient); MALA gets the evaluations flow-MCMC spent,
training included, as extra draws per chain, from the same starting walkers.

- phi4_1d (N = 100, a = 0.1, beta = 20, Brownian-bridge base): the weight of the positive
  mode P(mean phi > 0) against the exact reference (0.5 at b = 0, the transfer-operator
  value at b = 0.001), its integrated autocorrelation time, and the mode switches.
- particles (N = 16, a = 4): drop fraction P(order parameter > 0.5) and U/N against the
  parallel-tempering references; log Z(kT) (the free energy -kT log Z) by importance
  sampling through the trained transport. The transport acts in the frame of particle 1:
  x_1 ~ U[0, 1)^2 and the other particles' offsets r_i = x_i - x_1 + 1/2 (mod 1) through a
  coupling flow in logit coordinates over the logistic base (the uniform density on the
  torus pushed to R^{2N-2}); the shear x -> (x_1, r) has unit Jacobian on the torus, so
  q(x) = q_r(r) exactly.
- radial_velocity: posterior weights of the period modes and the evidence log Z against
  The Joker's reference; flow IS and SMC at about equal evaluations for log Z.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from interpolants import targets
from interpolants.app.plots import pyplot
from interpolants.app.sampler_plots import plot_flow_mcmc
from interpolants.nn import CouplingFlow
from interpolants.samplers import sample
from interpolants.samplers.diagnostics import integrated_autocorr_time, mcse_mean
from interpolants.samplers.flow_mcmc import mode_switches

F64 = torch.float64


def _chain_stats(result: Any, observable, labels_fn) -> dict[str, Any]:
    """Mean of the observable with its MCSE, its IAT per iteration and per evaluation, mode
    switches per chain (labels_fn on the chain)."""
    chain = result.chain_samples
    draws, chains, dim = chain.shape
    v = observable(chain.reshape(-1, dim)).reshape(draws, chains).double()
    mean, se = mcse_mean(v)
    iat = float(integrated_autocorr_time(v)[0])
    evals_per_iter = (result.info.get("local_steps", 0) + 1) if result.method == "flow-mcmc" else 1
    labels = labels_fn(chain.reshape(-1, dim)).reshape(draws, chains)
    return {
        "mean": float(mean[0]),
        "stderr": float(se[0]),
        "iat_iterations": iat,
        "iat_evaluations": iat * evals_per_iter,
        "switches_per_chain": float(mode_switches(labels).double().mean()),
        "evaluations": result.evaluations,
        "acceptance": result.acceptance_rate,
    }


def _mala_equal_cost(target, init_rows, chains, flow_result, warmup, seed, mass_matrix="diag"):
    """MALA from the same walkers with the evaluations flow-MCMC spent."""
    per_chain = max(10, (flow_result.evaluations - warmup * chains) // chains)
    init = init_rows[torch.arange(chains) % init_rows.shape[0]]
    return sample(
        target,
        "mala",
        n=per_chain * chains,
        seed=seed,
        init=init,
        warmup=warmup,
        mass_matrix=mass_matrix,
    )


def _flow_mcmc(
    target: Any, args: argparse.Namespace, init: Tensor, chains: int, warmup: int, **options: Any
) -> tuple[Any, float]:
    """The flow-MCMC run of every example, set from the command line; (result, wall seconds).
    ``options`` adds to the settings (e.g. a ready ``transport`` for particles; otherwise the
    transport of ``--transport`` gets ``--layers --width --lr`` or ``--width --depth --lr
    --ode-steps``)."""
    if "transport" not in options and args.transport == "interpolant":
        options["transport"] = "interpolant"
        options["transport_options"] = {"width": args.width, "depth": args.depth, "lr": args.lr,
                                        "ode_steps": args.ode_steps}  # fmt: skip
    elif "transport" not in options:
        options["transport_options"] = {"layers": args.layers, "width": args.width, "lr": args.lr}
    t0 = time.perf_counter()
    fm = sample(
        target,
        "flow-mcmc",
        n=chains * args.draws,
        seed=args.seed,
        init=init,
        chains=chains,
        warmup=warmup,
        local_steps=5,
        max_rounds=args.rounds,
        min_rounds=args.min_rounds,
        plateau_window=50,
        train_steps=args.train_steps,
        anchors=args.anchors,
        defensive=args.defensive,
        defensive_scale=args.defensive_scale,
        batch_size=512,
        progress=args.progress,
        **options,
    )
    return fm, time.perf_counter() - t0


def _frozen_is(target: Any, args: argparse.Namespace, fm: Any, init: Tensor, chains: int, n: int):
    """Importance sampling with n draws through flow-MCMC's frozen proposal (no training)."""
    return sample(target, "is", n=n, seed=args.seed + 1, init=init, chains=chains, warmup=0,
                  step_size=fm.info["step_size"], max_rounds=0,
                  transport=fm.info["transport"])  # fmt: skip


def _smc_row(
    target: Any, args: argparse.Namespace, observable=None, key: str = "observable"
) -> dict[str, Any]:
    """Adaptive SMC from the target's base (``--smc-n`` walkers in 8 runs, ``--smc-moves``
    MALA moves per level): log Z, its error, ESS/N, evaluations and the observable's mean
    (as ``key`` and ``key_stderr``)."""
    smc = sample(target, "smc", n=args.smc_n, seed=args.seed, batches=8, moves=args.smc_moves,
                 progress=args.progress)  # fmt: skip
    row = {"log_Z": smc.log_Z, "log_Z_stderr": smc.log_Z_stderr, "evaluations": smc.evaluations,
           "ess": smc.ess}  # fmt: skip
    if observable is not None:
        w, se = smc.expectation(observable)
        row[key], row[f"{key}_stderr"] = float(w), float(se)
    return row


def _row(cmd: str, name: str, stats: dict[str, Any], ref: float | None) -> str:
    z = (
        ""
        if ref is None or not stats["stderr"]
        else f"{(stats['mean'] - ref) / stats['stderr']:+.1f}"
    )
    return (
        f"| {name} | {stats['mean']:.4f} ± {stats['stderr']:.4f} | {z} | "
        f"{stats['iat_iterations']:.1f} | {stats['iat_evaluations']:.1f} | "
        f"{stats['switches_per_chain']:.2f} | {stats['evaluations']} | `{cmd}` |"
    )


# --- phi4_1d ----------------------------------------------------------------------------------


def phi4_1d(args: argparse.Namespace, out: Path, cmd: str) -> dict[str, Any]:
    target = targets.get("phi4_1d", b=args.b, dtype=F64)
    ref = target.references["positive_mode_weight"]
    init = torch.stack([torch.ones(100, dtype=F64), -torch.ones(100, dtype=F64)])
    chains, warmup = args.chains, args.warmup or 200
    fm, t_fm = _flow_mcmc(target, args, init, chains, warmup)
    mala = _mala_equal_cost(target, init, chains, fm, warmup, args.seed)
    obs = target.positive_mode
    rows = {"flow-mcmc": _chain_stats(fm, obs, obs), "mala": _chain_stats(mala, obs, obs)}
    rows["flow-mcmc"]["wall_seconds"] = t_fm
    rows["flow-mcmc"]["training_rounds"] = fm.info["training_rounds"]
    rows["flow-mcmc"]["stopped_by"] = fm.info["stopped_by"]
    rows["flow-mcmc"]["final_training_acceptance"] = fm.info["final_training_acceptance"]
    # importance sampling through the same frozen map: log Z against the quadrature
    is_ = _frozen_is(target, args, fm, init, chains, 4000)
    w, se = is_.expectation(obs)
    rows["is"] = {
        "log_Z": is_.log_Z,
        "log_Z_stderr": is_.log_Z_stderr,
        "log_Z_true": target.log_Z,
        "ess": is_.ess,
        "weight": float(w),
        "weight_stderr": float(se),
    }
    plot_flow_mcmc(fm, out / "flow_mcmc.png")
    _phi4_plot(target, fm, mala, out / "fields.png")
    return {"reference_weight": ref, "b": args.b, "rows": rows}


def _phi4_plot(target, fm, mala, path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.4))
    for ax, res, name in ((axes[0], fm, "flow-MCMC"), (axes[1], mala, "MALA")):
        x = res.chain_samples[-1]
        ax.plot(x[:32].T.numpy(), lw=0.5)
        ax.set(title=f"{name}: last fields of 32 chains", xlabel="site i", ylabel="phi_i")
    for res, name in ((fm, "flow-MCMC"), (mala, "MALA")):
        m = res.chain_samples.mean(-1)  # (draws, chains)
        axes[2].plot(m[:, 0].numpy(), lw=0.6, label=f"{name}, chain 0")
    axes[2].set(xlabel="draw", ylabel="mean field", title="mode switching")
    axes[2].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- particles --------------------------------------------------------------------------------


class Logistic:
    """The standard logistic density on R^d: log p(y) = log sigmoid(y) + log sigmoid(-y),
    the uniform density on (0, 1)^d pushed forward by logit."""

    def __init__(self, dim: int, dtype: torch.dtype = F64):
        self.event_shape, self.dtype = torch.Size((dim,)), dtype

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        u = torch.rand(n, *self.event_shape, generator=generator, dtype=self.dtype)
        return torch.logit(u.clamp(1e-12, 1 - 1e-12))

    def log_prob(self, y: Tensor) -> Tensor:
        f = torch.nn.functional.logsigmoid
        return (f(y) + f(-y)).sum(1)


class ParticleFrameTransport:
    """q(x) = U(x_1) q_r(r), r_i = x_i - x_1 + 1/2 mod 1 (i >= 2), q_r a coupling flow in
    logit(r) over the logistic base (see the module docstring)."""

    def __init__(self, N: int, layers: int = 8, width: int = 128, lr: float = 1e-3, seed: int = 0):
        d = 2 * (N - 1)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.flow = CouplingFlow(d, Logistic(d), layers=layers, width=width).double()
        self.optimizer = torch.optim.Adam(self.flow.parameters(), lr=lr)

    @staticmethod
    def _frame(x: Tensor) -> tuple[Tensor, Tensor]:
        pos = x.reshape(x.shape[0], -1, 2)
        r = torch.remainder(pos[:, 1:] - pos[:, :1] + 0.5, 1.0).flatten(1)
        r = r.clamp(1e-12, 1 - 1e-12)
        return torch.logit(r), -(torch.log(r) + torch.log1p(-r)).sum(1)  # y, log|dy/dr|

    def _log_q(self, x: Tensor) -> Tensor:
        y, log_jac = self._frame(x)
        return self.flow.log_prob(y) + log_jac

    def log_prob(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return self._log_q(x)

    def sample_with_log_prob(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            y, log_q_y = self.flow.sample_with_log_prob(n, generator)
            r = torch.sigmoid(y)
            anchor = torch.rand(n, 1, 2, generator=generator, dtype=F64)
            pos = torch.remainder(anchor + r.reshape(n, -1, 2) - 0.5, 1.0)
            x = torch.cat([anchor, pos], 1).flatten(1)
            log_jac = -(torch.log(r) + torch.log1p(-r)).sum(1)
            return x, log_q_y + log_jac

    def fit_step(self, x: Tensor, generator: torch.Generator) -> float:
        y, _ = self._frame(x)
        loss = -self.flow.log_prob(y).mean()
        self.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.flow.parameters(), 10.0)
        self.optimizer.step()
        return float(loss.detach())


def particles(args: argparse.Namespace, out: Path, cmd: str) -> dict[str, Any]:
    target = targets.get("particles", kT=args.kT, dtype=F64)
    refs = target.references
    g = torch.Generator().manual_seed(args.seed)
    chains, warmup = args.chains, args.warmup or 200
    gas = torch.rand(chains // 2, target.dim, generator=g, dtype=F64)
    drop = 0.5 + 0.02 * torch.randn(chains - chains // 2, target.dim, generator=g, dtype=F64)
    init = torch.cat([gas, drop])
    drop_of = lambda x: (target.order_parameter(x) > 0.5).double()  # noqa: E731
    transport = ParticleFrameTransport(target.N, seed=args.seed)
    fm, t_fm = _flow_mcmc(target, args, init, chains, warmup, transport=transport)
    per_chain = max(10, (fm.evaluations - warmup * chains) // chains)
    mala = sample(
        target,
        "mala",
        n=per_chain * chains,
        seed=args.seed,
        init=init,
        warmup=warmup,
        mass_matrix="diag",
    )
    rows = {
        "flow-mcmc": _chain_stats(fm, drop_of, drop_of),
        "mala": _chain_stats(mala, drop_of, drop_of),
    }
    for key, res in (("flow-mcmc", fm), ("mala", mala)):
        u, su = res.expectation(target.energy_per_particle)
        rows[key]["energy_per_particle"], rows[key]["energy_per_particle_stderr"] = (
            float(u),
            float(su),
        )
    rows["flow-mcmc"] |= {
        "wall_seconds": t_fm,
        "training_rounds": fm.info["training_rounds"],
        "stopped_by": fm.info["stopped_by"],
        "final_training_acceptance": fm.info["final_training_acceptance"],
    }
    is_ = _frozen_is(target, args, fm, init, chains, 4000)
    w, se = is_.expectation(drop_of)
    rows["is"] = {
        "log_Z": is_.log_Z,
        "log_Z_stderr": is_.log_Z_stderr,
        "ess": is_.ess,
        "free_energy": -args.kT * is_.log_Z,
        "drop_fraction": float(w),
        "drop_fraction_stderr": float(se),
    }
    rows["smc"] = _smc_row(target, args, drop_of, "drop_fraction")
    rows["smc"]["free_energy"] = -args.kT * rows["smc"]["log_Z"]
    plot_flow_mcmc(fm, out / "flow_mcmc.png")
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for res, name in ((fm, "flow-MCMC"), (mala, "MALA")):
        op = target.order_parameter(res.chain_samples[:, :4].reshape(-1, target.dim))
        axes[0].plot(op.reshape(-1, 4)[:, 0].numpy(), lw=0.6, label=f"{name}, chain 0")
        axes[1].hist(
            target.order_parameter(res.samples).numpy(),
            bins=40,
            alpha=0.5,
            density=True,
            label=name,
        )
    axes[0].set(xlabel="draw", ylabel="order parameter", title=f"kT = {args.kT}")
    axes[1].set(xlabel="order parameter (gas ~ 1/N, drop ~ 1)")
    axes[0].legend()
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(out / "order_parameter.png", dpi=110)
    plt.close(fig)
    return {
        "kT": args.kT,
        "reference_drop_fraction": refs.get("drop_fraction"),
        "reference_drop_fraction_stderr": refs.get("drop_fraction_stderr"),
        "reference_energy_per_particle": refs.get("energy_per_particle"),
        "rows": rows,
    }


# --- radial_velocity ---------------------------------------------------------------------------

PERIOD_MODES = {
    "13 < P < 16.5": (13.0, 16.5),
    "1.05 < P < 1.1": (1.05, 1.1),
    "3.6 < P < 4.2": (3.6, 4.2),
}


def _rv_modes(target, seed: int) -> Tensor:
    """Rough mode locations: for each period guess, the best of 20000 prior draws with P held
    there, then 300 Adam steps on log rho (all coordinates)."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for P in (14.49, 1.0755, 3.87):
        x = target.prior.sample(20000, g).double()
        p = target.prior.to_physical(x)
        x = target.prior.from_physical(p._replace(P=torch.full_like(p.P, P)))
        best = x[target.log_prob(x).argmax()].clone().requires_grad_(True)
        opt = torch.optim.Adam([best], lr=1e-3)
        for _ in range(300):
            loss = -target.log_prob(best[None]).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        rows.append(best.detach())
    return torch.stack(rows)


def radial_velocity(args: argparse.Namespace, out: Path, cmd: str) -> dict[str, Any]:
    target = targets.get("radial_velocity", dtype=F64)
    refs = target.references
    init = _rv_modes(target, args.seed)
    periods = target.to_physical(init).P.tolist()
    chains, warmup = args.chains, args.warmup or 300
    mode_of = lambda x: _period_label(target, x)  # noqa: E731
    fm, t_fm = _flow_mcmc(target, args, init, chains, warmup)
    mala = _mala_equal_cost(target, init, chains, fm, warmup, args.seed)
    rows: dict[str, Any] = {}
    for key, res in (("flow-mcmc", fm), ("mala", mala)):
        labels = mode_of(res.chain_samples.reshape(-1, target.dim)).reshape(
            res.chain_samples.shape[:2]
        )
        onehot = torch.nn.functional.one_hot(labels, 4).double()
        w, se = mcse_mean(onehot)
        logP = torch.log(target.to_physical(res.chain_samples.reshape(-1, target.dim)).P)
        iat = float(integrated_autocorr_time(logP.reshape(res.chain_samples.shape[:2]))[0])
        epi = 6 if key == "flow-mcmc" else 1
        rows[key] = {
            "weights": w[:3].tolist(),
            "weights_stderr": se[:3].tolist(),
            "other": float(w[3]),
            "iat_logP_iterations": iat,
            "iat_logP_evaluations": iat * epi,
            "switches_per_chain": float(mode_switches(labels).double().mean()),
            "evaluations": res.evaluations,
            "acceptance": res.acceptance_rate,
        }
    rows["flow-mcmc"] |= {
        "wall_seconds": t_fm,
        "training_rounds": fm.info["training_rounds"],
        "stopped_by": fm.info["stopped_by"],
        "final_training_acceptance": fm.info["final_training_acceptance"],
    }
    is_ = _frozen_is(target, args, fm, init, chains, args.is_n)
    total_is = fm.info["training_evaluations"] + args.is_n
    rows["is"] = {
        "log_Z": is_.log_Z,
        "log_Z_stderr": is_.log_Z_stderr,
        "ess": is_.ess,
        "evaluations_incl_training": total_is,
    }
    rows["smc"] = _smc_row(target, args)
    plot_flow_mcmc(fm, out / "flow_mcmc.png")
    plt = pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.4))
    bins = torch.linspace(0, math.log10(30), 300).numpy()
    for res, name in ((fm, "flow-MCMC"), (mala, "MALA")):
        logP = torch.log10(target.to_physical(res.samples).P).numpy()
        ax.hist(logP, bins=bins, alpha=0.5, label=name, weights=[1 / len(logP)] * len(logP))
    ax.set(yscale="log", xlabel="log10 period (days)", ylabel="fraction of draws",
           title="posterior over the period")  # fmt: skip
    ax.legend()
    names = list(PERIOD_MODES)
    pos = torch.arange(len(names)).numpy()
    ref_w = [refs["mode_weights"][k] for k in names]
    ref_se = [refs["mode_weights_stderr"][k] for k in names]
    bx.bar(pos - 0.27, ref_w, 0.27, yerr=ref_se, label="reference")
    for shift, key in ((0.0, "flow-mcmc"), (0.27, "mala")):
        bx.bar(pos + shift, rows[key]["weights"], 0.27, yerr=rows[key]["weights_stderr"],
               label=key)  # fmt: skip
    bx.set(yscale="log", xticks=pos, xticklabels=names, ylabel="mode weight",
           title="mode weights (± MCSE)")  # fmt: skip
    bx.legend()
    fig.tight_layout()
    fig.savefig(out / "period.png", dpi=110)
    plt.close(fig)
    return {
        "reference": {
            k: refs[k] for k in ("log_Z", "log_Z_stderr", "mode_weights", "mode_weights_stderr")
        },
        "init_periods": periods,
        "rows": rows,
    }


def _period_label(target, x: Tensor) -> Tensor:
    P = target.to_physical(x).P
    label = torch.full_like(P, 3, dtype=torch.long)
    for k, (lo, hi) in enumerate(PERIOD_MODES.values()):
        label[(P > lo) & (P < hi)] = k
    return label


EXAMPLES = {"phi4_1d": phi4_1d, "particles": particles, "radial_velocity": radial_velocity}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("example", choices=sorted(EXAMPLES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--b", type=float, default=0.0, help="phi4_1d symmetry breaking")
    p.add_argument("--kT", type=float, default=0.09, help="particles temperature")
    p.add_argument("--chains", type=int, default=64)
    p.add_argument("--draws", type=int, default=300, help="production draws per chain")
    p.add_argument("--rounds", type=int, default=600, help="max training rounds")
    p.add_argument("--min-rounds", type=int, default=100, help="rounds before the plateau test")
    p.add_argument("--train-steps", type=int, default=5, help="fitting steps per round")
    p.add_argument("--anchors", type=int, default=None, help="anchor walkers (default chains)")
    p.add_argument("--defensive", type=float, default=0.0, help="Gaussian mixture weight lam")
    p.add_argument("--defensive-scale", type=float, default=1.0, help="their std multiplier")
    p.add_argument("--transport", choices=("coupling", "interpolant"), default="coupling")
    p.add_argument("--depth", type=int, default=3, help="interpolant velocity MLP depth")
    p.add_argument("--ode-steps", type=int, default=20, help="RK4 steps of the interpolant q")
    p.add_argument("--layers", type=int, default=8, help="coupling layers")
    p.add_argument("--width", type=int, default=128, help="conditioner width")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=None, help="MALA warm-up iterations")
    p.add_argument("--is-n", type=int, default=20000)
    p.add_argument("--smc-n", type=int, default=2048)
    p.add_argument("--smc-moves", type=int, default=5)
    p.add_argument("--out")
    p.add_argument("--progress", action="store_true")
    args = p.parse_args(argv)
    out = Path(args.out or f"runs/flow_mcmc/{args.example}")
    out.mkdir(parents=True, exist_ok=True)
    cmd = "OMP_NUM_THREADS=1 python benchmarks/flow_mcmc_examples.py " + " ".join(
        argv or sys.argv[1:]
    )
    start = time.perf_counter()
    metrics = EXAMPLES[args.example](args, out, cmd)
    metrics |= {"command": cmd, "wall_seconds": time.perf_counter() - start}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    print(json.dumps(metrics, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
