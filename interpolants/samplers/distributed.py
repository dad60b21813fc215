r"""Sampling across processes: the collectives the samplers use under a process group.

Under ``torchrun --nproc_per_node=K`` (a process group joined with
:func:`interpolants.train.init_distributed`: gloo on CPU, nccl on GPU), every sampler runs on
K ranks and returns, on every rank, the :class:`~.result.SampleResult` of the whole
population, equal to one process's run with the same ``n`` and ``seed``. Without a process
group (or with K = 1) every function here is a no-op.

The design, and why:

- **What is sharded: the target's evaluations.** :class:`~.base.CountedDensity` (the one place
  every sampler evaluates log rho* and its gradient) evaluates on each rank only that rank's
  contiguous block of walkers (:func:`shard`) and all-gathers the log densities and
  gradients in rank order (:func:`evaluate_sharded`). That is the cost that dominates on the
  targets worth several processes (a likelihood over a data set, a lattice, a physics
  model); the moves' own arithmetic (O(n d) per step) is repeated on every rank. Other
  row-wise work goes through :func:`map_rows` (flow importance sampling's log rho* of its
  draws).
- **One stream, shared.** Every rank draws every random number of the whole population from
  the run's one seeded generator (:func:`~.base.make_generator`), so all ranks hold the same
  walkers, take the same adaptive decisions (the next temperature from the ESS, the step size
  from the mean acceptance, the mass matrix from the walkers' covariance, SMC's resampling)
  and the run is the one-process run, bit for bit where the target's log density of a row
  does not depend on the batch it is evaluated in (elementwise and row-wise arithmetic; a
  matrix product may round differently in another batch size: SMC's walkers then differ from
  one process's by ~1e-12 on the benchmark's logistic regression, log Z by 1e-13 relative).
  A stream per rank, seeded by (seed, rank), would make two processes equal to one only in
  law, and every adaptive decision would need a collective; drawing the noise of n walkers
  costs next to nothing beside n target evaluations.
- **Resampling indices from rank 0.** The indices every rank draws are the same, by the shared
  stream and the same all-gathered weights; they are nevertheless broadcast from rank 0
  (:func:`broadcast_from_rank0`), so that the ranks' populations cannot part at a resampling
  step even if a rank's arithmetic differed in the last bit (unlike GPUs in one run).
- **log Z.** The log weights of all walkers are on every rank (they are built from the
  all-gathered log densities), so log Z = logsumexp(log w) - log n is the same number on
  every rank; :func:`log_mean_exp_across` is the collective for weights that a caller
  holds per rank (each its own block).
- **Networks: data-parallel.** NETS's drift (PINN loss) and flow-MCMC's transports train on
  batches every rank draws whole from the shared stream; each rank differentiates its rows'
  share and the gradients are summed (:func:`sum_gradients`, which says why not the DDP
  wrapper): the same steps as one process up to float32 rounding. NETS's action-matching
  loss trains replicated (the same on every rank, not split).
- **Files.** Rank 0 writes (``RunFolder(writer=rank == 0)``: NETS's log and checkpoint, the
  command line's run folder); the others read (a resumed checkpoint).

The rule for n walkers on K ranks (:func:`shard`): contiguous blocks in rank order, the first
n mod K ranks one walker more (numpy's ``array_split``). With fewer walkers than ranks each
rank evaluates all of them (no communication), which keeps targets from ever seeing an empty
batch.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterable, Iterator

import torch
from torch import Tensor

__all__ = [
    "all_gather_rows",
    "broadcast_from_rank0",
    "evaluate_sharded",
    "local_evaluation",
    "log_mean_exp_across",
    "map_rows",
    "shard",
    "sum_across",
    "sum_gradients",
    "world",
]

_LOCAL = [False]  # inside local_evaluation(): every rank evaluates its own batch


def world() -> tuple[int, int]:
    """(number of processes, this rank): (1, 0) unless torch.distributed is initialised."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def shard(n: int, size: int | None = None, rank: int | None = None) -> slice:
    """The walkers rank ``rank`` of ``size`` owns among ``n``: a contiguous block, the first
    n mod size ranks one more (default: this process's rank and world size)."""
    if size is None or rank is None:
        size, rank = world()
    if n < 0 or not 0 <= rank < size:
        raise ValueError(f"no shard of n={n} walkers for rank {rank} of {size}")
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def _comm_device(t: Tensor) -> torch.device:
    """Where a collective runs: nccl needs the rank's GPU, gloo the CPU."""
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        if t.is_cuda:
            return t.device
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def all_gather_rows(local: Tensor, n: int) -> Tensor:
    """The rows of all ranks, concatenated in rank order: rank r holds rows ``shard(n)`` of
    the (n, ...) result. Without a process group ``local`` itself."""
    size, rank = world()
    if size == 1:
        return local
    import torch.distributed as dist

    own = shard(n, size, rank)
    if local.shape[0] != own.stop - own.start:
        raise ValueError(f"rank {rank} holds {local.shape[0]} rows; its shard of n={n} is {own}")
    block = math.ceil(n / size)
    device = _comm_device(local)
    padded = local.new_zeros((block, *local.shape[1:]), device=device)
    padded[: local.shape[0]] = local.to(device)
    parts = [torch.empty_like(padded) for _ in range(size)]
    dist.all_gather(parts, padded)
    rows = [p[: len(range(n)[shard(n, size, r)])] for r, p in enumerate(parts)]
    return torch.cat(rows).to(local.device)


def broadcast_from_rank0(t: Tensor) -> Tensor:
    """Rank 0's ``t`` on every rank (same shape and dtype everywhere); a no-op alone."""
    size, _ = world()
    if size == 1:
        return t
    import torch.distributed as dist

    moved = t.to(_comm_device(t)).contiguous()
    dist.broadcast(moved, src=0)
    return moved.to(t.device)


def log_mean_exp_across(local_log_w: Tensor, n: int) -> Tensor:
    """log((1 / n) sum_i w_i) over the log weights of all ranks, rank r holding rows
    ``shard(n)``: a logsumexp of the all-gathered weights (exact, not a mean of per-rank
    estimates), the same float on every rank."""
    return torch.logsumexp(all_gather_rows(local_log_w, n), 0) - math.log(n)


def sum_across(value: Tensor) -> Tensor:
    """The sum of ``value`` over the ranks (every rank gets it); ``value`` alone."""
    size, _ = world()
    if size == 1:
        return value
    import torch.distributed as dist

    moved = value.detach().to(_comm_device(value)).clone()
    dist.all_reduce(moved)
    return moved.to(value.device)


def sum_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Replace every parameter's gradient by its sum over the ranks (one all-reduce of the
    flattened gradients); a no-op alone.

    The data-parallel training of the samplers' networks: each rank differentiates
    sum_{i in its rows} loss_i / B of a global batch of B rows every rank drew from the shared
    stream, so the summed gradient is the gradient of the batch mean, as in one process, up to
    the order of the float additions. This is what DistributedDataParallel's reducer does;
    its wrapper is not used because the losses differentiate the networks through calls other
    than ``forward`` (``log_prob``, the free energy) and, for NETS's PINN loss, through a
    Jacobian built with ``create_graph=True``, a double backward that DDP does not support
    (pytorch/pytorch#47562, #63812)."""
    size, _ = world()
    if size == 1:
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if grads:
        flat = sum_across(torch.cat([g.flatten() for g in grads]))
        for g, part in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
            g.copy_(part.view_as(g))


@contextlib.contextmanager
def local_evaluation() -> Iterator[None]:
    """Inside: :func:`evaluate_sharded` evaluates each rank's own batch without collectives
    (DistributedDataParallel training, where the ranks' batches differ)."""
    before = _LOCAL[0]
    _LOCAL[0] = True
    try:
        yield
    finally:
        _LOCAL[0] = before


def map_rows(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``fn(x)`` for a row-wise ``fn`` (row i of the result depends on row i of x alone), each
    rank applying it to its :func:`shard` of the rows and the results all-gathered; every rank
    must call it with the same ``x``. Alone, inside :func:`local_evaluation`, or with fewer
    rows than ranks: ``fn(x)``."""
    size, _ = world()
    n = x.shape[0]
    if size == 1 or _LOCAL[0] or n < size:
        return fn(x)
    return all_gather_rows(fn(x[shard(n)]), n)


def evaluate_sharded(
    evaluate: Callable[[Tensor], tuple[Tensor, Tensor]], x: Tensor
) -> tuple[Tensor, Tensor]:
    """``evaluate(x)`` -> (log density (n,), gradient (n, dim)) by :func:`map_rows`: each rank
    its rows, one all-gather of both."""

    def both(rows: Tensor) -> Tensor:
        lp, g = evaluate(rows)
        return torch.cat([lp[:, None].to(g.dtype), g.flatten(1)], 1)

    size, _ = world()
    if size == 1 or _LOCAL[0] or x.shape[0] < size:
        return evaluate(x)
    out = map_rows(both, x)
    # the gradient's shape, or a discrete target's ratios (n, dim, q)
    return out[:, 0].to(x.dtype), out[:, 1:].reshape(x.shape[0], x.shape[1], -1).squeeze(-1)
