r"""``run_leaps``: learn the rates of a CTMC by LEAPS's loss, then anneal with them.

LEAPS (Holderrieth, Albergo & Jaakkola, arXiv:2502.10843) is the one annealing engine with
the learned chain of :mod:`.ctmc` as its transport: walkers start uniform, and at every level
t_k = k / steps they are reweighted (AIS's increment), moved by one step of the CTMC with the
exact weight of :class:`~.ctmc.CTMCStep`, resampled when their ESS/N falls below the
threshold, and optionally moved by heat-bath sweeps. Training alternates runs of the engine
with the current rates (``train_walkers`` walkers, resampled) and Adam steps on the PINN
loss over the walkers of all their levels (off-policy: no gradient through the chain).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ...nn import LocallyEquivariantRates
from ...progress import progress_bar
from ...run_folder import RunFolder
from ...targets.discrete import value_index
from ..annealing import AnnealedDensity, Resampler, anneal, log_ratio
from ..base import CountedDensity, check_int, make_generator
from ..info import LEAPSInfo
from ..result import SampleResult
from .ctmc import CTMCStep, balance, leaps_loss
from .moves import SiteMoves
from .runs import (
    DiscreteAISConfig,
    anneal_discrete,
    annealing_info,
    check_discrete,
    population_result,
)

__all__ = ["LEAPSConfig", "LEAPSModel", "run_leaps"]

LEVELS_PER_STEP = 8  # levels per Adam step; the batch is split evenly among them
GRAD_CLIP = 10.0  # the gradient's norm is clipped to this
INIT_RATE = 1.0  # the rates' symmetric part at initialisation (a Barker-like chain)


class LEAPSModel(nn.Module):
    """The learned rates of LEAPS: T_t[i, a, c] = N_t(x_{-i})[i, a, c] balance(R_t)[i, a, c]
    with N a :class:`~interpolants.nn.LocallyEquivariantRates` and the detailed-balance factor
    of :func:`~.ctmc.balance` (a symmetric N gives a chain that leaves rho_t invariant)."""

    def __init__(self, rates: nn.Module):
        super().__init__()
        self.rates = rates

    def forward(self, t: Tensor, index: Tensor, log_ratios: Tensor) -> Tensor:
        """The rate table (n, dim, q, q) at times t (n,), states ``index`` (n, dim) and the
        path's single-site log ratios there (n, dim, q)."""
        return self.rates(t, index) * balance(log_ratios.to(torch.float32))

    @classmethod
    def for_target(cls, target: Any, width: int, depth: int, kernel: int) -> LEAPSModel:
        """A new model for ``target``: a masked convolution on an L x L lattice (a target
        with ``L`` and dim = L^2), a masked dense layer otherwise."""
        side = getattr(target, "L", None)
        side = side if isinstance(side, int) and side * side == target.dim else None
        rates = LocallyEquivariantRates(target.dim, len(target.values), side, width, depth,
                                        kernel, init_rate=INIT_RATE)  # fmt: skip
        return cls(rates)


@dataclass
class LEAPSConfig(DiscreteAISConfig):
    r"""The options of LEAPS (:func:`run_leaps`), checked when built.

    Arguments:
        steps: levels t_k = k / steps (one CTMC step each).
        sweeps: heat-bath (or Metropolis, ``move``) sweeps after each level's CTMC step
            (each costs one walker-evaluation per colour of the target). 0, the CTMC alone,
            is the paper's sampler, but on Ising L = 16 at beta_c it printed log Z 0.22 low
            with an error bar of 0.03 (docs/discrete.md): hence 1.
        move: the kind of those sweeps.
        resample_threshold: resample a population below this ESS/N (0: never).
        batches: R independent populations of n / R walkers; log Z_hat's standard error is
            over them (R > 1), else the delta method (None after resampling).
        train_steps: Adam steps of the loss (0: the rates at initialisation, near AIS).
        train_walkers: walkers per training run of the engine.
        steps_per_run: Adam steps on the walkers of each training run (100: the
            train_walkers x steps states of one run serve 100 steps of the off-policy loss;
            on Ising L = 16 that trains as well as 20 with a fifth of the training evaluations,
            docs/discrete.md).
        batch_size: (level, walker) pairs per Adam step, from 8 random levels.
        lr: Adam's learning rate.
        width, depth, kernel: the rate network (:class:`~interpolants.nn.LocallyEquivariantRates`).
        model: a trained :class:`LEAPSModel` (``result.info.model``): no training.
        checkpoint_every: training runs between checkpoints in ``log_dir``.
    """

    steps: int | None = 100
    sweeps: int = 1
    resample_threshold: float = 0.5
    batches: int = 10
    train_steps: int = 1000
    train_walkers: int = 256
    steps_per_run: int = 100
    batch_size: int = 512
    lr: float = 3e-3
    width: int = 32
    depth: int = 2
    kernel: int = 5
    model: Any = None
    checkpoint_every: int = 1
    method: ClassVar[str] = "leaps"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.steps is None:
            raise ValueError("steps must be an integer >= 1 for LEAPS (its levels are fixed)")
        self.train_steps = check_int("train_steps", self.train_steps, 0)
        for name in ("train_walkers", "steps_per_run", "batch_size", "width", "depth",
                     "kernel", "checkpoint_every"):  # fmt: skip
            setattr(self, name, check_int(name, getattr(self, name)))
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if self.model is not None and not isinstance(self.model, LEAPSModel):
            raise ValueError(f"model must be a LEAPSModel, got {type(self.model).__name__}")

    def settings(self) -> dict[str, Any]:
        """The options that change a training run (a resumed one must match them; more
        ``train_steps`` extend it)."""
        keep = ("steps", "sweeps", "move", "resample_threshold", "train_walkers",
                "steps_per_run", "batch_size", "lr", "width", "depth", "kernel")  # fmt: skip
        return {k: getattr(self, k) for k in keep}


@dataclass
class _Training:
    loss: list[float]
    evaluations: int
    seconds: float


def _train(
    model: LEAPSModel, target: Any, density: CountedDensity, c: LEAPSConfig,
    generator: torch.Generator, folder: RunFolder, progress: bool,
) -> _Training:  # fmt: skip
    """Alternate engine runs with the current rates and Adam steps on the PINN loss."""
    opt = torch.optim.Adam(model.parameters(), lr=c.lr)
    losses: list[float] = []
    start, earlier = 0, 0.0
    saved = folder.checkpoint("leaps")
    if saved is not None:
        if saved["settings"] != c.settings():
            raise ValueError(f"resume refused: {folder.path} was trained with "
                             f"{saved['settings']}, now {c.settings()}")  # fmt: skip
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        generator.set_state(saved["generator"])
        density.evaluations, losses = saved["evaluations"], list(saved["loss"])
        start, earlier = saved["round"], saved["seconds"]
    folder.accept({"method": "leaps", **c.settings()})
    folder.rewind("round", None if saved is None else start)
    annealed = AnnealedDensity(density, target.base)
    rounds = math.ceil(c.train_steps / c.steps_per_run)
    levels = c.levels()
    moves = SiteMoves(c.sweeps, target.colours, target.values, c.move)
    kernel = CTMCStep(model, target.values)
    bar = progress_bar(rounds, progress, "leaps training")
    bar.update(start)
    t0 = time.perf_counter()
    for r in range(start, rounds):
        seen: list[tuple[float, Tensor, Tensor, Tensor]] = []

        def keep(t: float, state: Any, log_w: Tensor, seen: list = seen) -> None:
            seen.append((t, state.position, log_ratio(state), state.aux[3]))

        x = target.base.sample(c.train_walkers, generator)
        with torch.no_grad():
            anneal(annealed, annealed.state(x, 0.0), levels, moves, generator,
                   transport=kernel, resample=Resampler(c.resample_threshold, 1),
                   on_level=keep)  # fmt: skip
        t = torch.tensor([s for s, _, _, _ in seen])
        index = value_index(torch.stack([p for _, p, _, _ in seen]), target.values)
        ell = torch.stack([e for _, _, e, _ in seen])
        ratios = torch.stack([g for _, _, _, g in seen])
        per_level = max(2, c.batch_size // LEVELS_PER_STEP)
        for _ in range(min(c.steps_per_run, c.train_steps - r * c.steps_per_run)):
            k = torch.randint(len(seen), (LEVELS_PER_STEP, 1), generator=generator)
            w = torch.randint(c.train_walkers, (LEVELS_PER_STEP, per_level), generator=generator)
            loss = leaps_loss(model, t[k[:, 0]], index[k, w], ell[k, w], ratios[k, w])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
            opt.step()
            losses.append(float(loss.detach()))
        folder.log({"round": r + 1, "loss": losses[-1], "evaluations": density.evaluations})
        if (r + 1) % c.checkpoint_every == 0 or r + 1 == rounds:
            folder.save_checkpoint({
                "model": model.state_dict(), "optimizer": opt.state_dict(),
                "generator": generator.get_state(), "evaluations": density.evaluations,
                "loss": torch.tensor(losses), "round": r + 1, "settings": c.settings(),
                "seconds": earlier + time.perf_counter() - t0,
            }, kind="leaps")  # fmt: skip
        bar.update(1)
    bar.close()
    return _Training(losses, density.evaluations, earlier + time.perf_counter() - t0)


def run_leaps(
    target: Any,
    n: int = 2000,
    seed: int = 0,
    init: None = None,
    *,
    config: LEAPSConfig | None = None,
    dtype: torch.dtype | None = None,
    progress: bool = False,
    log_dir: str | Path | RunFolder | None = None,
    resume: bool = False,
    **options: Any,
) -> SampleResult:
    r"""LEAPS (arXiv:2502.10843) on a discrete target: train CTMC rates by the PINN loss,
    then anneal n walkers from the uniform law with them (module docstring), with the
    engine's unbiased weights, resampling and log Z_hat.

    Arguments:
        target: a :class:`~interpolants.targets.DiscreteTarget`.
        n: walkers (samples returned); a multiple of ``batches``.
        seed: seeds the run's generator (training and sampling).
        init: must be None (walkers start uniform).
        config: a :class:`LEAPSConfig`; ``options`` replace its fields.
        dtype: the walkers' dtype.
        progress: a progress bar over the training runs.
        log_dir: a run folder for metrics.jsonl (loss per training run) and checkpoints.
        resume: continue the training from ``log_dir``'s checkpoint (refused when its
            settings differ).

    Returns:
        :class:`~..result.SampleResult` with ``log_weights``, ``log_Z``, ``log_Z_stderr``;
        ``info`` is a :class:`~..info.LEAPSInfo` whose ``model`` can be passed back as
        ``model=`` to sample again without training.
    """
    check_discrete(target, "leaps")
    if init is not None:
        raise ValueError("init is not taken by method 'leaps': its walkers start uniform")
    c = LEAPSConfig.resolve(config, options)
    n = check_int("n", n)
    density = CountedDensity(target)
    generator = make_generator(seed)
    folder = log_dir if isinstance(log_dir, RunFolder) else RunFolder(log_dir, resume=resume)
    if resume and not folder:
        raise ValueError("resume=True needs log_dir (where the checkpoint is)")
    model = c.model
    training = _Training([], 0, 0.0)
    if model is None:
        torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=generator)))
        model = LEAPSModel.for_target(target, c.width, c.depth, c.kernel)
        if c.train_steps:
            training = _train(model, target, density, c, generator, folder, progress)
    model.eval()
    moves = SiteMoves(c.sweeps, target.colours, target.values, c.move)
    kernel = CTMCStep(model, target.values)
    with torch.no_grad():
        pops = anneal_discrete(target, density, n, c.batches, generator, c.levels(), moves,
                               c.resample_threshold, transport=kernel, dtype=dtype)  # fmt: skip
    info = LEAPSInfo(
        **annealing_info(pops, c, density.name, n // c.batches),
        training_evaluations=training.evaluations,
        training_seconds=training.seconds,
        training_steps=len(training.loss),
        loss_history=torch.tensor(training.loss),
        jumps_per_level=torch.tensor(kernel.record[: c.steps], dtype=torch.float64),
        model=model,
    )
    result = population_result(pops, "leaps", density, info)
    return dataclasses.replace(result, method="leaps")


run_leaps.config_class = LEAPSConfig  # type: ignore[attr-defined]
