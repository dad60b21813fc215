"""Training a generative model from data: ``si.fit``.

One loop over a coupling and an objective: at every step it draws rows of the data, the
coupling (:mod:`interpolants.couplings`) turns them into end points (x0, x1, cond) and the
objective (:mod:`interpolants.losses`: the quadratic objectives of arXiv 2303.08797, or the
maximum-likelihood baseline) gives the loss, descended with AdamW, linear warm-up then cosine
decay, gradient clipping and an exponential moving average (EMA) of the weights that the
returned model samples with. A new coupling or objective is an object passed to ``fit``: the
loop, the EMA, the distributed training and the checkpoints stay as they are.

Everything random comes from one ``torch.Generator`` seeded by ``seed``, whose state is
checkpointed: a resumed run draws the same batches as an uninterrupted one.
"""

from __future__ import annotations

import atexit
import copy
import dataclasses
import gc
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from . import checkpoints
from .checks import is_int, is_number
from .couplings import Coupling, Independent, Paired, as_coupling
from .data import DataBatch, as_data, batch_sampler, fingerprint, holdout_rows, split_holdout
from .generative import GenerativeModel
from .interpolant import Interpolant
from .losses import EVERY_ROW, InterpolantObjective, LossTerms, MaxLikelihood, Objective
from .nn import default_net
from .progress import progress_bar
from .run_folder import RunFolder, TrainingInterrupted, deferred_interrupt

__all__ = ["EMA", "TrainConfig", "TrainingInterrupted", "fingerprint", "fit", "init_distributed"]

HELDOUT = "heldout.safetensors"
OBJECTIVE_OPTIONS = ("time_distribution", "trim", "antithetic", "ml_ode_steps", "ml_divergence")
"""The options that build the objective from the config; an objective object carries them."""


@dataclass
class TrainConfig:
    """Every option of a training run; written to ``config.yaml`` in the run folder.

    ``objective``, ``fields`` and the options of :data:`OBJECTIVE_OPTIONS` build the objective
    (:meth:`build_objective`); the rest are the loop's.
    """

    steps: int = 5000
    batch_size: int = 1024
    lr: float = 1e-3
    seed: int = 0
    fields: tuple[str, ...] = ("velocity",)
    weight_decay: float = 0.0
    warmup: int = 100
    schedule: str = "cosine"  # or "constant"
    grad_clip: float = 1.0
    ema: float = 0.999  # 0 disables the average
    trim: float | None = None  # time trimming; None: 1e-3 when gamma > 0 or score/denoiser
    time_distribution: str = "uniform"  # or "logit-normal", "late", "early" (sample_times)
    antithetic: bool | None = None  # None: on when gamma > 0
    log_every: int = 100
    checkpoint_every: int = 1000
    device: str = "cpu"
    net_options: dict[str, Any] = field(default_factory=dict)  # of the default network
    objective: str = "interpolant"  # or "max_likelihood": the baseline, through the ODE
    ml_ode_steps: int = 10  # Heun steps of the likelihood ODE (max_likelihood only)
    ml_divergence: str = "hutchinson"  # or "exact" (max_likelihood only)
    label_dropout: float = 0.1  # data with labels: P(label -> null label), for guidance
    classes: int | None = None  # data with labels: K (None: the largest label + 1)

    def check(self) -> None:
        """ValueError naming the option for any value of the wrong type or range (the
        objective's options are checked by :meth:`build_objective`)."""
        for name in ("steps", "batch_size", "log_every", "checkpoint_every"):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("seed", "warmup"):
            if not is_int(getattr(self, name)) or getattr(self, name) < 0:
                raise ValueError(
                    f"{name} must be a non-negative integer, got {getattr(self, name)!r}"
                )
        for name in ("lr", "weight_decay", "grad_clip", "ema"):
            value = getattr(self, name)
            if isinstance(value, str):  # YAML 1.1 reads 1e-3 (without a point) as text
                try:
                    setattr(self, name, float(value))
                except ValueError:
                    pass
            if not is_number(getattr(self, name)):
                raise ValueError(f"{name} must be a number, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if not is_number(self.label_dropout) or not 0 <= self.label_dropout < 1:
            raise ValueError(
                f"label_dropout must be a number in [0, 1), got {self.label_dropout!r}"
            )
        if self.classes is not None and (not is_int(self.classes) or self.classes < 1):
            raise ValueError(f"classes must be a positive integer, got {self.classes!r}")
        if not isinstance(self.net_options, dict):
            raise ValueError(f"net options must be a mapping, got {self.net_options!r}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema must lie in [0, 1), got {self.ema!r}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        try:
            device = torch.device(self.device)
        except (RuntimeError, TypeError) as err:
            raise ValueError(
                f"device must be 'cpu', 'cuda' or 'cuda:N', got {self.device!r}"
            ) from err
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {self.device!r} is not available on this machine (no CUDA)")

    def build_objective(self) -> Objective:
        """The objective these options describe; ValueError naming a bad option."""
        if self.objective == "interpolant":
            return InterpolantObjective(
                self.fields, self.time_distribution, self.trim, self.antithetic
            )
        if self.objective == "max_likelihood":
            if tuple(self.fields) != ("velocity",):
                raise ValueError(
                    "objective 'max_likelihood' trains the velocity alone: fields=('velocity',)"
                )
            return MaxLikelihood(self.ml_ode_steps, self.ml_divergence)
        raise ValueError(
            "objective must be 'interpolant', 'max_likelihood' or an Objective object, "
            f"got {self.objective!r}"
        )

    def record(self, objective: Objective) -> None:
        """Take the settings of ``objective`` (given, or bound to the interpolant) into the
        options, so that config.yaml records them."""
        self.fields, self.objective = tuple(objective.fields), objective.name
        if isinstance(objective, InterpolantObjective):
            self.time_distribution = objective.time_distribution
            self.trim, self.antithetic = objective.trim, objective.antithetic
        elif isinstance(objective, MaxLikelihood):
            self.ml_ode_steps, self.ml_divergence = objective.ode_steps, objective.divergence


def _settings(
    objective: str | Objective, fields: Any, options: dict[str, Any], **loop: Any
) -> tuple[TrainConfig, Objective]:
    """The run's options and its objective: built from the options, or given as an object
    (then the options that build one are refused, and its settings are recorded)."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(options) - names
    if unknown:
        raise TypeError(f"unknown fit option(s) {sorted(unknown)}; known: {sorted(names)}")
    if not isinstance(objective, Objective):
        config = TrainConfig(fields=tuple(fields), objective=objective, **loop, **options)
        config.check()
        return config, config.build_objective()
    given = sorted(set(options) & set(OBJECTIVE_OPTIONS))
    if given:
        raise ValueError(f"{given} belong to the objective: set them on {objective!r}")
    if tuple(fields) not in (("velocity",), tuple(objective.fields)):
        raise ValueError(
            f"fields={tuple(fields)!r}, but the objective trains {tuple(objective.fields)!r}"
        )
    config = TrainConfig(fields=tuple(objective.fields), **loop, **options)
    config.check()
    config.record(objective)
    return config, objective


class EMA:
    """theta_ema <- d_n theta_ema + (1 - d_n) theta after step n, on a frozen copy of a module.

    d_n = min(decay, (1 + n) / (10 + n)) warms the average up, so that short runs are not
    dominated by the initial weights.
    """

    def __init__(self, module: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(module).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, module: nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for avg, p in zip(self.module.parameters(), module.parameters(), strict=True):
            avg.lerp_(p, 1 - d)
        for avg, b in zip(self.module.buffers(), module.buffers(), strict=True):
            avg.copy_(b)


def _differences(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    ignored = {"log_every", "checkpoint_every", "device", "run"}
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    # an option added since the checkpoint was written, at its default, is no difference
    added = {k for k in set(now) - set(saved) if k in defaults and now[k] == defaults[k]}
    keys = (set(saved) | set(now)) - ignored - added
    return [
        f"{k}: checkpoint {_short(saved.get(k))}, now {_short(now.get(k))}"
        for k in sorted(keys)
        if saved.get(k) != now.get(k)
    ]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _lr_lambda(config: TrainConfig) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < config.warmup:
            return (step + 1) / config.warmup
        if config.schedule == "constant":
            return 1.0
        progress = (step - config.warmup) / max(1, config.steps - config.warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _config_dict(config: TrainConfig, job: _Job, data: Any, base: Any) -> dict[str, Any]:
    """config.yaml: the options, the interpolant, what the data and base (or coupling) were,
    the networks, and the fingerprint of an objective object that the options do not rebuild."""
    out = asdict(config)
    out["fields"] = list(config.fields)
    try:
        out["interpolant"] = job.I.spec()
    except ValueError:
        out["interpolant"] = repr(job.I)
    out["data"] = fingerprint(data)
    out["base"] = fingerprint(base)
    rebuilt = config.objective in ("interpolant", "max_likelihood") and (
        config.build_objective().bind(job.I, job.coupling) == job.objective
    )
    if not rebuilt:
        out["objective_options"] = fingerprint(job.objective)
    out["networks"] = {
        k: f"{type(m).__module__}.{type(m).__qualname__}" for k, m in job.nets.items()
    }
    return out


def fit(
    data: Any,
    base: Any = None,
    interpolant: Interpolant | None = None,
    fields: tuple[str, ...] | list[str] = ("velocity",),
    steps: int = 5000,
    batch_size: int = 1024,
    lr: float = 1e-3,
    seed: int = 0,
    net: nn.Module | dict[str, nn.Module] | None = None,
    out: str | Path | None = None,
    *,
    objective: str | Objective = "interpolant",
    resume: bool = False,
    overwrite: bool = False,
    holdout: float | Tensor | None = None,
    progress: bool | None = None,
    record: dict[str, Any] | None = None,
    on_end: Callable[[GenerativeModel, Path | None], Any] | None = None,
    **options: Any,
) -> GenerativeModel:
    r"""Learn the fields of a stochastic interpolant from samples of rho_1 (arXiv 2303.08797).

    Arguments:
        data: a Tensor or numpy array (n, *event) of x1 samples, a Dataset of x1 or
            (x1, label), or a sampler with ``sample(n, generator)`` drawn afresh for every
            batch. Integers are converted to float32; NaN or inf values are refused. Labels
            reach the coupling (the independent coupling does not use them).
        base: None for N(0, I); a Tensor/Dataset of x0 samples or a distribution (drawn
            independently of x1: :class:`~interpolants.couplings.Independent`); or a
            :class:`~interpolants.couplings.Coupling`, which gives (x0, x1, cond) per batch.
        interpolant: the interpolant (default: linear, gamma = 0).
        fields: any of "velocity", "score", "denoiser".
        steps, batch_size, lr, seed: the optimisation; everything random is drawn from a
            generator seeded by ``seed``.
        net: None for a default network per field, a module ``net(t, x)`` (one field) or a
            dict {field: module}; called ``net(t, x, cond=cond)`` when the coupling conditions.
        out: a run folder: config.yaml (the options and a fingerprint of the data),
            metrics.jsonl, checkpoint.safetensors (every ``checkpoint_every`` steps and at
            the end). None keeps nothing. A folder that already holds something is refused
            unless ``resume`` or ``overwrite``.
        objective: "interpolant" (the quadratic objectives of ``fields``), "max_likelihood"
            (the baseline through the ODE), or an :class:`~interpolants.losses.Objective`
            object (which then carries ``fields`` and its own options).
        resume: continue from ``out``'s checkpoint; refused (before anything is written)
            unless every setting that changes the result, the data included, is the same.
        overwrite: replace what ``out`` holds; the old files are put back if this run fails.
        holdout: a fraction of the rows of a tensor ``data`` kept out of training (drawn with
            ``seed``), or held-out points; written to ``out/heldout.safetensors``, where
            ``interpolants evaluate`` finds them. None: no held-out split.
        progress: a progress bar; None shows one when standard error is a terminal.
        record: plain data kept in config.yaml under ``run`` (the command line records the
            data set's description and the evaluation settings there); not compared on resume.
        on_end: ``on_end(model, out)``, called once the run has finished and is saved (on the
            first process of a distributed run). Default with ``out=``: the package's plot
            writer ``interpolants.app.plots.plot_run`` (:data:`DEFAULT_ON_END`: loss.png and,
            for 2-D data, samples.png); pass ``on_end=lambda model, out: None`` for none.
        options: any other :class:`TrainConfig` field (warmup, schedule, grad_clip, ema,
            trim, time_distribution, antithetic, ml_ode_steps, ml_divergence, ...).

    Returns:
        A :class:`GenerativeModel` whose fields are the EMA networks, or the model that the
        objective makes of them (:meth:`~interpolants.losses.Objective.model`; the flow maps'
        :class:`~interpolants.flowmaps.FlowMapModel`).

    Raises:
        TrainingInterrupted: on Ctrl-C, after a checkpoint of the last finished step (with
            ``out``); the message says how to resume.
    """
    config, goal = _settings(
        objective, fields, options, steps=steps, batch_size=batch_size, lr=lr, seed=seed
    )
    I = interpolant or Interpolant("linear")
    world = _world()
    folder = RunFolder(out, resume=resume, overwrite=overwrite, writer=world[1] == 0)
    data = as_data(data)
    coupling = as_coupling(base)
    if isinstance(coupling, Paired) and coupling.x0_data is not None:
        kept = holdout_rows(len(data), holdout, seed)  # the x0 rows of the training rows
        if kept is not None:
            coupling = coupling.rows(kept)
    data, held = split_holdout(data, holdout, seed)
    if isinstance(base, (Tensor, np.ndarray)):
        base = as_data(base, "base")
    job = _Job.build(data, coupling, goal, I, config, net, world)
    config.record(job.objective)
    job.config_dict = _config_dict(config, job, data, base)
    if held is not None:
        job.config_dict["holdout"] = fingerprint(held)
    if record is not None:
        job.config_dict["run"] = record
    start = job.restore(folder, resume)
    folder.accept(job.config_dict)
    folder.rewind("step", start)  # resumed: the lines logged after the checkpoint go
    if held is not None and folder and folder.writer:
        checkpoints.save(folder.file(HELDOUT), {"x": held}, kind="data")
    if progress is None:
        progress = sys.stderr.isatty()
    with folder.running():
        job.train(folder, start, bool(progress) and world[1] == 0)
        model = job.model()
    hook = on_end if on_end is not None else (DEFAULT_ON_END if folder else None)
    if hook is not None and world[1] == 0:
        hook(model, folder.path)
    return model


DEFAULT_ON_END: Callable[[GenerativeModel, Path | None], Any] | None = None
"""What :func:`fit` calls after a run with ``out=`` when ``on_end`` is not given. The package's
``__init__`` (the one place where library and app are put together) sets it to the app's plot
writer, ``interpolants.app.plots.plot_run``, so that ``si.fit(out=...)`` writes loss.png (and
samples.png for 2-D data) while this module imports nothing of the app."""


@dataclass
class _Job:
    """What one training run holds: the data's draws, the coupling and objective, the
    networks, their averages, the optimiser and the random stream."""

    draw: Callable[[int, torch.Generator], DataBatch]
    coupling: Coupling
    objective: Objective
    I: Interpolant
    config: TrainConfig
    nets: dict[str, nn.Module]
    train_nets: dict[str, nn.Module]
    emas: dict[str, EMA]
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    gen: torch.Generator
    world: tuple[int, int]
    device: torch.device
    config_dict: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0  # training seconds of the run before a resume

    @classmethod
    def build(
        cls, data: Any, coupling: Coupling, objective: Objective, I: Interpolant,
        config: TrainConfig, net: Any, world: tuple[int, int],
    ) -> _Job:  # fmt: skip
        draw = batch_sampler(data)
        device = torch.device(config.device)
        gen = torch.Generator().manual_seed(config.seed)
        example = draw(2, gen)
        coupling = _with_labels(coupling, objective, data, example, config).bind(example)
        objective = objective.bind(I, coupling)
        event_shape, dtype = example.x1.shape[1:], example.x1.dtype
        options = {**coupling.net_options(tuple(event_shape)), **config.net_options}
        nets = _make_nets(net, config, event_shape, dtype, device, options)
        if config.batch_size % world[0]:
            raise ValueError(
                f"batch_size {config.batch_size} must divide by the {world[0]} processes"
            )
        train_nets = _distributed(nets, device) if world[0] > 1 else nets
        emas = {k: EMA(m, config.ema) for k, m in nets.items()}
        params = [p for m in nets.values() for p in m.parameters()]
        opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(config))
        gen.manual_seed(config.seed)
        return cls(draw, coupling, objective, I, config, nets, train_nets, emas, opt, sched, gen,
                   world, device)  # fmt: skip

    def restore(self, folder: RunFolder, resume: bool) -> int:
        """The step to start from: 0, or the checkpoint's once it matches this run."""
        if not resume:
            return 0
        if not folder:
            raise ValueError("resume=True needs out= (the run folder to resume)")
        state = folder.checkpoint()
        if state is None:
            raise FileNotFoundError(f"no checkpoint to resume in {folder.path}")
        diff = _differences(state["config"], self.config_dict)
        if diff:
            raise ValueError(
                f"resume refused: {folder.path} was trained with other settings: " + "; ".join(diff)
            )
        for k, m in self.nets.items():
            m.load_state_dict(state["nets"][k])
            self.emas[k].module.load_state_dict(state["ema"][k])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.gen.set_state(state["generator"])
        self.seconds = state.get("seconds", 0.0)
        return int(state["step"])

    def checkpoint(self, folder: RunFolder, step: int, seconds: float) -> None:
        if not folder:
            return
        folder.save_checkpoint({
            "step": step,
            "seconds": seconds,
            "config": self.config_dict,
            "nets": {k: m.state_dict() for k, m in self.nets.items()},
            "ema": {k: e.module.state_dict() for k, e in self.emas.items()},
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "generator": self.gen.get_state(),
            "model": self.model().state(),
        })  # fmt: skip

    def model(self) -> Any:
        """The objective's model of the EMA networks (a GenerativeModel unless it says)."""
        modules = {
            k: e.module if self.config.ema > 0 else self.nets[k] for k, e in self.emas.items()
        }
        made = self.objective.model(self.I, modules, self.coupling)
        return made if made is not None else _model(self.I, modules, self.coupling)

    def step(self, step: int) -> tuple[float, float, dict[str, float]]:
        """One optimiser step: (loss averaged over processes, gradient norm, the objective's
        logged terms averaged over processes).

        Every process draws the whole global batch from the same generator and evaluates
        rows rank::size of it, so a run on several processes sees exactly the batch of one.
        """
        size, rank = self.world
        batch = self.draw(self.config.batch_size, self.gen)
        pair = self.coupling.sample(batch, self.gen).to(self.device)
        rows = slice(rank, None, size) if size > 1 else EVERY_ROW
        loss = self.objective.loss(self.train_nets, self.I, pair, self.gen, rows)
        terms = loss.logs if isinstance(loss, LossTerms) else {}
        loss = loss.loss if isinstance(loss, LossTerms) else loss
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"loss is {float(loss.detach())} at step {step}; stopped, keeping the last good "
                "checkpoint (try a smaller lr or more warmup)"
            )
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for m in self.nets.values() for p in m.parameters()]
        clip = self.config.grad_clip if self.config.grad_clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(params, clip)
        self.opt.step()
        self.sched.step()
        for k, m in self.nets.items():
            self.emas[k].update(m, step)
        logs = {k: _mean_over_processes(v.detach(), size) for k, v in terms.items()}
        return _mean_over_processes(loss.detach(), size), float(grad_norm), logs

    def train(self, folder: RunFolder, start: int, progress: bool) -> None:
        config = self.config
        bar = progress_bar(config.steps, progress, "training")
        bar.update(start)
        window: list[dict[str, float]] = []
        began = clock = time.perf_counter()
        with deferred_interrupt() as interrupt:
            for step in range(start, config.steps):
                loss, grad_norm, logs = self.step(step)
                window.append({"loss": loss, **logs})
                done = step + 1
                if done % config.log_every == 0 or done == config.steps:
                    now = time.perf_counter()
                    means = {k: sum(row[k] for row in window) / len(window) for k in window[0]}
                    lr = self.sched.get_last_lr()[0]
                    folder.log({"step": done, **means, "lr": lr, "grad_norm": grad_norm,
                                "steps_per_s": len(window) / (now - clock)})  # fmt: skip
                    bar.set_postfix(loss=f"{means['loss']:.4f}")
                    window, clock = [], now
                seconds = self.seconds + time.perf_counter() - began
                if done % config.checkpoint_every == 0 or done == config.steps:
                    self.checkpoint(folder, done, seconds)
                bar.update(1)
                if interrupt.requested and done < config.steps:
                    self.checkpoint(folder, done, seconds)
                    bar.close()
                    where = f"checkpoint of step {done} in {folder.path}" if folder else "no out="
                    raise TrainingInterrupted(
                        f"interrupted at step {done} of {config.steps}; {where}"
                        + ("; resume with resume=True (interpolants train ... --resume)"
                           if folder else "")
                    )  # fmt: skip
        bar.close()


def _world() -> tuple[int, int]:
    """(number of processes, this rank): (1, 0) unless torch.distributed is initialised."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def init_distributed() -> tuple[int, int]:
    """Join the process group that ``torchrun`` describes in the environment (gloo on CPU,
    nccl on GPU); a no-op for a single process. Returns (processes, rank)."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        # left to the interpreter's teardown, a DDP wrapper kept alive by a reference cycle
        # is destroyed mid-teardown and the rank aborts (std::terminate, SIGABRT) after its
        # work is done: 5 of 44 two-rank runs on our CPU, 0 of 84 with this exit hook
        atexit.register(_leave_process_group)
    return _world()


def _leave_process_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        gc.collect()  # DistributedDataParallel wrappers left in reference cycles go first
        dist.destroy_process_group()


def _distributed(nets: dict[str, nn.Module], device: torch.device) -> dict[str, nn.Module]:
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" and device.index is not None else None
    return {k: DistributedDataParallel(m, device_ids=ids) for k, m in nets.items()}


def _mean_over_processes(value: Tensor, size: int) -> float:
    if size > 1:
        import torch.distributed as dist

        value = value.clone()
        dist.all_reduce(value)
        value /= size
    return float(value)


def _with_labels(
    coupling: Coupling, objective: Objective, data: Any, example: DataBatch, config: TrainConfig
) -> Coupling:
    """The independent coupling conditioned on the data's labels (classifier-free guidance's
    label dropout included) when the data come with labels and the objective conditions."""
    if example.label is None:
        if config.classes is not None:
            raise ValueError(f"classes={config.classes} given, but the data have no labels")
        return coupling
    if not isinstance(coupling, Independent) or coupling.classes or not objective.conditions:
        return coupling  # labels are not what this coupling or objective conditions on
    classes = config.classes or _count_classes(data)
    return coupling.with_labels(classes, config.label_dropout)


def _count_classes(data: Any) -> int:
    """The largest label of a labelled data set, plus one."""
    if isinstance(data, TensorDataset):
        labels = data.tensors[1]
    else:
        labels = torch.stack([torch.as_tensor(data[i][1]) for i in range(len(data))])
    if labels.is_floating_point() and not bool((labels == labels.round()).all()):
        raise ValueError("labels must be integers (class indices); got fractional values")
    if int(labels.min()) < 0:
        raise ValueError(f"labels must be non-negative class indices, got {int(labels.min())}")
    return int(labels.max()) + 1


def _make_nets(
    net: Any, config: TrainConfig, event_shape: torch.Size, dtype: torch.dtype,
    device: torch.device, options: dict[str, Any],
) -> dict[str, nn.Module]:  # fmt: skip
    if isinstance(net, dict):
        missing = [f for f in config.fields if f not in net]
        if missing:
            raise ValueError(f"net dict lacks modules for fields {missing}")
        nets = {f: net[f] for f in config.fields}
    elif isinstance(net, nn.Module):
        if len(config.fields) != 1:
            raise ValueError("one net given for several fields: pass net={field: module}")
        nets = {config.fields[0]: net}
    elif net is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            nets = {f: default_net(event_shape, **options) for f in config.fields}
    else:
        raise TypeError(
            f"net must be None, an nn.Module or a dict of them, got {type(net).__name__}"
        )
    return {k: m.to(device=device, dtype=dtype) for k, m in nets.items()}


def _model(I: Interpolant, modules: dict[str, nn.Module], coupling: Coupling) -> GenerativeModel:
    velocity = modules.get("velocity")
    if velocity is None:
        raise ValueError("sampling needs a velocity: include 'velocity' in fields")
    return GenerativeModel(
        I, velocity, score=modules.get("score"), base=coupling, denoiser=modules.get("denoiser")
    )
