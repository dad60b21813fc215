"""Learning NETS's drift and free energy off-policy (arXiv:2410.02711, section 3): short
simulations on random grids, the PINN (or action-matching) loss on their detached walkers,
Adam, the eps_t table tuned to the MALA acceptance, checkpoints that resume exactly."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ...divergence import field_and_divergence, hutchinson, rademacher
from ...run_folder import CHECKPOINT, RunFolder, TrainingInterrupted, deferred_interrupt
from ..base import progress_bar
from ..diagnostics import ess_of_weights, log_Z_from_weights
from ..distributed import shard, sum_across, sum_gradients, world
from .model import BINS, TARGET_ACCEPT, NETSModel, pinn_residual, schedule, time_bin
from .sampling import NETSPath, simulate, time_grid

__all__ = [
    "RESIDUAL_CAP",
    "Batch",
    "TrainOptions",
    "TrainingLog",
    "action_loss",
    "adapt_eps",
    "init_scales",
    "pinn_loss",
    "train_drift",
    "update_var",
]

CHECKPOINT_KIND = "nets"  # a NETS training checkpoint, not a generative model
# a PINN residual beyond this many sds of its time bin's dlog pi/dt leaves the loss: a walker
# deep in a funnel's neck (the centred eight schools: log tau -13, gradients 1e18) would
# otherwise overflow the float32 square and stop the training, or steer every step
RESIDUAL_CAP = 1e4


@dataclass
class Batch:
    t: Tensor
    x: Tensor
    ell: Tensor
    g0: Tensor
    g1: Tensor
    w: Tensor  # self-normalised weight of the walker among those at its time (action matching)
    n_times: int = 0

    @classmethod
    def from_records(cls, records: list) -> Batch:
        ts, xs, ells, g0s, g1s, ws = [], [], [], [], [], []
        for t, x, ell, g0, g1, lw in records:
            ts.append(torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device))
            xs.append(x), ells.append(ell), g0s.append(g0), g1s.append(g1)
            ws.append(torch.softmax(lw, 0).to(x.dtype))
        return cls(*(torch.cat(v) for v in (ts, xs, ells, g0s, g1s, ws)), n_times=len(records))

    @classmethod
    def cat(cls, batches: list[Batch]) -> Batch:
        if len(batches) == 1:
            return batches[0]
        keys = ("t", "x", "ell", "g0", "g1", "w")
        return cls(*(torch.cat([getattr(b, k) for b in batches]) for k in keys), n_times=0)

    def take(self, idx: Tensor) -> Batch:
        return Batch(self.t[idx], self.x[idx], self.ell[idx], self.g0[idx], self.g1[idx],
                      self.w[idx], self.n_times)  # fmt: skip


def pinn_loss(
    model: NETSModel,
    path: NETSPath,
    batch: Batch,
    exact: bool,
    probes: int,
    gen: torch.Generator,
    weighted: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """The PINN objective on a batch, each residual divided by the running sd of
    dlog pi_t/dt in its time bin (``weighted``) or by its mean over the bins, squared;
    residuals beyond :data:`RESIDUAL_CAP` sds count 0 (and give no gradient). Returns
    (loss, the scaled residuals detached, dlog pi/dt of the whole batch).

    Under a process group each rank evaluates its rows (:func:`~..distributed.shard`) of the
    batch, Hutchinson's probes drawn for the whole batch from the shared stream, and its loss
    is its share sum_{own rows} / B of the batch mean (the residuals are its rows'), so
    that the gradients summed over the ranks are one process's."""
    beta, dbeta = schedule(batch.t, path.kind, path.power)
    grad_log_pi = (1 - beta)[:, None] * batch.g0 + beta[:, None] * batch.g1
    dlog_pi_dt = dbeta * batch.ell
    alone = world()[0] == 1
    rows = slice(None) if alone else shard(batch.t.shape[0])
    t, x = batch.t[rows], batch.x[rows].detach().requires_grad_(True)
    if alone or exact:
        b, div = field_and_divergence(model, t, x, exact, probes, gen, create_graph=True)
    else:
        probe = rademacher(gen, probes, batch.x)[:, rows]
        b, div = hutchinson(model, t, x, probe, create_graph=True)
    r = pinn_residual(div, grad_log_pi[rows], b, dlog_pi_dt[rows],
                      model.free_energy(t).to(x.dtype))  # fmt: skip
    var = model.loss_var[time_bin(t)] if weighted else model.loss_var.mean()
    scaled = r * var.to(r.dtype).rsqrt()
    terms = scaled.masked_fill(scaled.abs() > RESIDUAL_CAP, 0.0).square()  # NaN stays NaN
    loss = terms.mean() if alone else terms.sum() / batch.t.shape[0]
    return loss, scaled.detach(), dlog_pi_dt.detach()


def action_loss(model: NETSModel, path: NETSPath, batch: Batch, base_x: Tensor, final: Batch):
    r"""Action matching with weighted walkers: E_0[phi_0] - E_1[phi_1] + mean over the time
    points of sum_i W_i (|grad phi|^2 / 2 + dphi/dt)(t_i, x_i) (one Monte Carlo estimate
    of the time integral with t uniform over the records)."""
    phi = model.drift
    with torch.enable_grad():
        t = batch.t.detach().requires_grad_(True)
        x = model.as_input(batch.x).detach().requires_grad_(True)
        out = phi(t, x)
        gx, gt = torch.autograd.grad(out.sum(), (x, t), create_graph=True)
    inner = (0.5 * gx.square().flatten(1).sum(1) + gt) * batch.w
    n_per_time = batch.w.sum().clamp(min=1e-12)  # the batch's share of times
    zero = base_x.new_zeros(base_x.shape[0])
    one = final.x.new_ones(final.x.shape[0])
    e0 = phi(zero, model.as_input(base_x)).mean()
    e1 = (phi(one, model.as_input(final.x)) * final.w).sum()
    return e0 - e1 + inner.sum() / n_per_time


class TrainingLog:
    """metrics.jsonl lines and the checkpoint in a :class:`~..run_folder.RunFolder`; a
    progress bar. ``log_dir`` may be a folder the caller opened (the command line's)."""

    def __init__(
        self, log_dir: str | Path | RunFolder | None, total: int, progress: bool, resume: bool
    ):
        self.folder = (  # under a process group rank 0 writes, the others read
            log_dir
            if isinstance(log_dir, RunFolder)
            else RunFolder(log_dir, resume=resume, writer=world()[1] == 0)
        )
        self.bar = progress_bar(total, progress, "nets: training")

    @property
    def dir(self) -> Path | None:
        return self.folder.path

    def log(self, row: dict[str, Any]) -> None:
        self.bar.set_postfix(
            loss=f"{row['loss']:.3g}", ess=f"{row['ess']:.3f}", logZ=f"{row['log_Z']:.3f}"
        )
        self.folder.log(row)

    def save(self, state: dict[str, Any]) -> None:
        self.folder.save_checkpoint(state, kind=CHECKPOINT_KIND)

    def load(self) -> dict[str, Any] | None:
        return self.folder.checkpoint(kind=CHECKPOINT_KIND)

    def accept(self, iteration: int | None) -> None:
        """Start writing; drop the metrics.jsonl lines logged after round ``iteration`` (a
        crash between checkpoints; all of them when None): the resumed rounds write them
        again."""
        self.folder.accept()
        self.folder.rewind("iteration", iteration)


@dataclass
class TrainOptions:
    iterations: int
    walkers: int
    steps: int
    updates: int
    batch_size: int
    lr: float
    objective: str
    exact: bool
    probes: int
    moves: int
    log_every: int
    checkpoint_every: int
    buffer: int
    time_weighted: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    identity: dict[str, Any] = field(default_factory=dict)  # the target's name, the base's print

    def settings(self) -> dict[str, Any]:
        """What shapes the trained drift besides the number of rounds: compared on resume."""
        skip = {"iterations", "log_every", "checkpoint_every", "history", "identity"}
        own = {k: v for k, v in vars(self).items() if k not in skip}
        return own | self.identity


def train_drift(
    model: NETSModel,
    path: NETSPath,
    base: Any,
    dtype: torch.dtype | None,
    generator: torch.Generator,
    o: TrainOptions,
    logger: TrainingLog,
    resume_state: dict[str, Any] | None,
) -> list[dict[str, Any]]:
    """Alternate short simulations (detached walkers on a random grid, eps_t adapted to the
    MALA acceptance per time bin) with ``updates`` Adam steps of the objective."""
    opt = torch.optim.Adam(model.parameters(), lr=o.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(o.iterations, 1), o.lr * 0.1)
    start, history = 0, list(o.history)
    if resume_state is not None:
        opt.load_state_dict(resume_state["optimizer"])
        sched.load_state_dict(resume_state["scheduler"])
        start = resume_state["iteration"]
        logger.bar.update(start)
    counter = path.annealed.target
    earlier = 0.0 if resume_state is None else resume_state.get("seconds", 0.0)
    clock, acc_loss, acc_n, buffer = time.perf_counter() - earlier, 0.0, 0, []
    left_out = 0
    if resume_state is not None and "buffer" in resume_state:  # the same rounds as unbroken
        device = model.log_eps.device
        buffer = [Batch(**{k: v.to(device) if isinstance(v, Tensor) else v
                            for k, v in b.items()}) for b in resume_state["buffer"]]  # fmt: skip
        acc_loss, acc_n = resume_state["accumulated"]

    def save(done: int) -> None:
        logger.save({
            "model": model.state_dict(),
            "config": model.config,
            "drift_config": getattr(model.drift, "config", None),
            "seconds": time.perf_counter() - clock,
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "iteration": done,
            "generator": generator.get_state(),
            "evaluations": counter.evaluations,
            "history": history,
            "buffer": [dict(vars(b)) for b in buffer],
            "accumulated": (acc_loss, acc_n),
            "settings": o.settings(),
        })  # fmt: skip

    with deferred_interrupt() as interrupt:
        for it in range(start, o.iterations):
            x0 = base.sample(o.walkers, generator)
            x0 = x0.to(dtype) if dtype is not None else x0
            traj = simulate(path, model, x0, time_grid(o.steps, generator), model.eps, generator,
                            exact=o.exact, probes=o.probes, moves=o.moves, record=True)  # fmt: skip
            adapt_eps(model, traj.acceptance)
            buffer = (
                [*buffer[-(o.buffer - 1) :], Batch.from_records(traj.records)]
                if o.buffer > 1
                else [Batch.from_records(traj.records)]
            )
            data = Batch.cat(buffer)
            if it == start and resume_state is None:
                init_scales(model, path, data)
            for _ in range(o.updates):
                idx = torch.randint(0, data.t.shape[0], (o.batch_size,), generator=generator)
                batch = data.take(idx.to(data.t.device))
                if o.objective == "pinn":
                    loss, scaled, dldt = pinn_loss(model, path, batch, o.exact, o.probes,
                                                   generator, o.time_weighted)  # fmt: skip
                    update_var(model, batch.t, dldt)
                    left_out += int((scaled.abs() > RESIDUAL_CAP).sum())
                else:
                    final = Batch.from_records(traj.records[-1:])
                    loss = action_loss(model, path, batch, x0, final)
                # the batch's loss (pinn: the sum of the ranks' shares, the same on all)
                shared = sum_across(loss.detach()) if o.objective == "pinn" else loss.detach()
                _check_finite(shared, o.objective, it + 1, logger)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if o.objective == "pinn":  # each rank's share of the batch (pinn_loss)
                    sum_gradients(model.parameters())
                torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
                opt.step()
                acc_loss, acc_n = acc_loss + float(shared), acc_n + 1
            sched.step()
            logger.bar.update(1)
            if (it + 1) % o.log_every == 0 or it + 1 == o.iterations:
                log_z, se = log_Z_from_weights(traj.log_w)
                row = {
                    "iteration": it + 1,
                    "loss": acc_loss / max(acc_n, 1),
                    "ess": float(ess_of_weights(traj.log_w)),
                    "log_Z": log_z,
                    "log_Z_stderr": se,
                    "log_Z_F": model.log_Z_from_F(),
                    "evaluations": counter.evaluations,
                    "seconds": time.perf_counter() - clock,
                    "lr": sched.get_last_lr()[0],
                    "left_out": left_out,  # residuals beyond RESIDUAL_CAP since the last row
                }
                history.append(row)
                logger.log(row)
                acc_loss, acc_n, left_out = 0.0, 0, 0
            last = it + 1 == o.iterations
            if o.checkpoint_every and ((it + 1) % o.checkpoint_every == 0 or last):
                save(it + 1)
            if interrupt.requested and not last:
                save(it + 1)
                kept = (
                    f"checkpoint of round {it + 1} in {logger.dir}" if logger.dir else "no log_dir"
                )
                raise TrainingInterrupted(
                    f"nets: interrupted in training round {it + 1} of {o.iterations}; {kept}"
                    + ("; resume with resume=True (--option resume=true)" if logger.dir else "")
                )
    return history


def _check_finite(loss: Tensor, objective: str, round_: int, logger: TrainingLog) -> None:
    """A FloatingPointError naming the round and what is kept, if the loss is not finite."""
    if torch.isfinite(loss):
        return
    saved = logger.dir is not None and (logger.dir / CHECKPOINT).exists()
    kept = f"the checkpoint in {logger.dir} is kept" if saved else "no checkpoint"
    raise FloatingPointError(
        f"nets: the {objective} loss is {float(loss)} in training round {round_}; stopped "
        f"({kept}; try a smaller lr or more train_steps)"
    )


def adapt_eps(model: NETSModel, acceptance: list[tuple[float, float]]) -> None:
    """log eps_bin += 2 (mean acceptance in the bin - 0.574): eps_t follows the acceptance."""
    if not acceptance:
        return
    t = torch.tensor([a[0] for a in acceptance])
    a = torch.tensor([a[1] for a in acceptance], dtype=torch.float64)
    bins = time_bin(t - 1e-9)
    total = torch.zeros(BINS, dtype=torch.float64).index_add_(0, bins, a)
    count = torch.zeros(BINS, dtype=torch.float64).index_add_(0, bins, torch.ones_like(a))
    seen = count > 0
    step = torch.where(seen, 2.0 * (total / count.clamp(min=1) - TARGET_ACCEPT), 0.0)
    # bins without a step this time follow their nearest seen neighbour's change
    if seen.any():
        idx = torch.nonzero(seen).flatten()
        nearest = idx[(torch.arange(BINS)[:, None] - idx[None]).abs().argmin(1)]
        step = step[nearest]
    model.log_eps += step.to(model.log_eps.device)


def init_scales(model: NETSModel, path: NETSPath, data: Batch) -> None:
    """Loss weights and the output scale of dF/dt from the first simulation's dlog pi/dt."""
    _, dbeta = schedule(data.t, path.kind, path.power)
    dldt = (dbeta * data.ell).double()
    model.loss_var.fill_(max(float(dldt.var()), 1e-6))
    update_var(model, data.t, dldt, rate=1.0)
    model.free_energy.c.fill_(max(float(dldt.abs().mean()), 1.0))


def update_var(model: NETSModel, t: Tensor, dldt: Tensor, rate: float = 0.05) -> None:
    """Running variance of dlog pi_t/dt per time bin (the PINN loss weights)."""
    dev = model.loss_var.device
    bins, d = time_bin(t).to(dev), dldt.double().to(dev)
    s1 = torch.zeros(BINS, dtype=torch.float64, device=dev).index_add_(0, bins, d)
    s2 = torch.zeros_like(s1).index_add_(0, bins, d.square())
    c = torch.zeros_like(s1).index_add_(0, bins, torch.ones_like(d))
    ok = c > 1
    var = (s2 / c.clamp(min=1) - (s1 / c.clamp(min=1)).square()).clamp(min=1e-6)
    model.loss_var[ok] = (1 - rate) * model.loss_var[ok] + rate * var[ok]
