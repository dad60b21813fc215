"""Training a generative model from data: ``si.fit``.

The loop draws (x0, x1, t, z), forms x_t, and descends the quadratic objectives of
:mod:`interpolants.losses` (arXiv 2303.08797) for each requested field, with AdamW, linear
warm-up then cosine decay, gradient clipping and an exponential moving average (EMA) of the
weights that the returned model samples with. Everything random comes from one
``torch.Generator`` seeded by ``seed``, whose state is checkpointed: a resumed run draws the
same batches as an uninterrupted one.
"""

from __future__ import annotations

import atexit
import copy
import dataclasses
import gc
import hashlib
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from . import checkpoints
from .distributions import StandardNormal, as_distribution
from .generative import GenerativeModel
from .interpolant import TIME_DISTRIBUTIONS, Interpolant, InterpolantSample, sample_times
from .losses import denoiser_loss, score_loss, velocity_loss
from .nn import default_net
from .run_folder import METRICS_LOG, RunFolder, TrainingInterrupted, deferred_interrupt

__all__ = ["EMA", "TrainConfig", "TrainingInterrupted", "fingerprint", "fit", "init_distributed"]

FIELDS = ("velocity", "score", "denoiser")


@dataclass
class TrainConfig:
    """Every option of a training run; written to ``config.yaml`` in the run folder."""

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

    def check(self) -> None:
        """ValueError naming the option for any value of the wrong type or range."""
        for name in ("steps", "batch_size", "log_every", "checkpoint_every", "ml_ode_steps"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("seed", "warmup"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 0:
                raise ValueError(
                    f"{name} must be a non-negative integer, got {getattr(self, name)!r}"
                )
        for name in ("lr", "weight_decay", "grad_clip", "ema", "trim"):
            value = getattr(self, name)
            if not (value is None and name == "trim") and not _is_number(value):
                raise ValueError(f"{name} must be a number, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if self.trim is not None and not 0 <= self.trim < 0.5:
            raise ValueError(f"trim must lie in [0, 0.5), got {self.trim!r}")
        if not isinstance(self.net_options, dict):
            raise ValueError(f"net options must be a mapping, got {self.net_options!r}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema must lie in [0, 1), got {self.ema!r}")
        if self.objective not in ("interpolant", "max_likelihood"):
            raise ValueError(
                f"objective must be 'interpolant' or 'max_likelihood', got {self.objective!r}"
            )
        if self.objective == "max_likelihood" and tuple(self.fields) != ("velocity",):
            raise ValueError(
                "objective 'max_likelihood' trains the velocity alone: fields=('velocity',)"
            )
        if self.time_distribution not in TIME_DISTRIBUTIONS:
            raise ValueError(
                f"time_distribution must be one of {TIME_DISTRIBUTIONS}, "
                f"got {self.time_distribution!r}"
            )
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        bad = [f for f in self.fields if f not in FIELDS]
        if bad or not self.fields:
            raise ValueError(f"fields must be a non-empty subset of {FIELDS}, got {self.fields!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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


def fingerprint(value: Any) -> Any:
    """What identifies a data set, base or tensor in a run's config: shape, dtype and the
    SHA-256 of the bytes of every tensor (a Dataset's items, a sampler's tensor attributes);
    plain values as they are. Two runs whose fingerprints agree saw the same data."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Tensor):
        raw = value.detach().cpu().contiguous()
        digest = hashlib.sha256(raw.view(torch.uint8).numpy().tobytes() if raw.numel() else b"")
        return {"shape": list(raw.shape), "dtype": str(raw.dtype).removeprefix("torch."),
                "sha256": digest.hexdigest()}  # fmt: skip
    if isinstance(value, (list, tuple)):
        return [fingerprint(v) for v in value]
    if isinstance(value, dict):
        return {str(k): fingerprint(v) for k, v in value.items()}
    if isinstance(value, TensorDataset):
        return {"class": "TensorDataset", "tensors": fingerprint(list(value.tensors))}
    if hasattr(value, "__getitem__") and hasattr(value, "__len__") and not hasattr(value, "sample"):
        h = hashlib.sha256()
        n = len(value)  # up to DATASET_ITEMS_HASHED items, evenly spread, with the length
        for i in sorted({k * n // DATASET_ITEMS_HASHED for k in range(DATASET_ITEMS_HASHED)}):
            item = value[i]
            for part in item if isinstance(item, (tuple, list)) else (item,):
                h.update(json.dumps(fingerprint(torch.as_tensor(part))).encode())
        return {"class": type(value).__name__, "len": len(value), "sha256": h.hexdigest()}
    attrs = {k: fingerprint(v) for k, v in sorted(vars(value).items()) if _plain(v)}
    return {"class": type(value).__name__, **attrs}


DATASET_ITEMS_HASHED = 1000
"""A Dataset (read item by item, maybe from disk) is fingerprinted by its length and this many
evenly spread items; tensors and TensorDatasets by all of their bytes."""


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str, Tensor, torch.Size))


def _config_dict(
    config: TrainConfig, interpolant: Interpolant, data: Any, base: Any, nets: dict[str, nn.Module]
) -> dict[str, Any]:
    """config.yaml: the options, the interpolant, what the data and base were, the networks."""
    out = asdict(config)
    out["fields"] = list(config.fields)
    try:
        out["interpolant"] = interpolant.spec()
    except ValueError:
        out["interpolant"] = repr(interpolant)
    out["data"] = fingerprint(data)
    out["base"] = fingerprint(base)
    out["networks"] = {k: f"{type(m).__module__}.{type(m).__qualname__}" for k, m in nets.items()}
    return out


def _differences(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    ignored = {"log_every", "checkpoint_every", "device", "run"}
    keys = (set(saved) | set(now)) - ignored
    return [
        f"{k}: checkpoint {_short(saved.get(k))}, now {_short(now.get(k))}"
        for k in sorted(keys)
        if saved.get(k) != now.get(k)
    ]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def as_data(data: Any, name: str = "data") -> Any:
    """Check and convert training data: a numpy array becomes a tensor, integers become
    float32; an empty set, a scalar per row, or NaN / inf values are a ValueError naming
    ``name``. A Dataset or a sampler (``sample(n, generator)``) passes unchanged."""
    if isinstance(data, np.ndarray):
        data = torch.from_numpy(np.ascontiguousarray(data))
    if isinstance(data, TensorDataset) and data.tensors:
        return TensorDataset(as_data(data.tensors[0], name), *data.tensors[1:])
    if isinstance(data, Tensor):
        if data.ndim < 2:
            raise ValueError(
                f"{name} must have shape (n, *event), got {tuple(data.shape)} (one point a row)"
            )
        if data.shape[0] == 0 or data[0].numel() == 0:
            raise ValueError(f"{name} is empty (shape {tuple(data.shape)})")
        if not data.is_floating_point():
            if data.is_complex():
                raise ValueError(f"{name} has complex dtype {data.dtype}; pass real numbers")
            data = data.float()
        bad = ~torch.isfinite(data.flatten(1)).all(1)
        if bool(bad.any()):
            rows = bad.nonzero().flatten()
            kinds = " or ".join(
                k for k, f in (("NaN", torch.isnan), ("inf", torch.isinf)) if bool(f(data).any())
            )
            raise ValueError(
                f"{name} has {kinds} in {len(rows)} row(s) (first: row {int(rows[0])}); "
                "remove or impute them"
            )
        return data
    if hasattr(data, "__len__") and not callable(getattr(data, "sample", None)) and len(data) == 0:
        raise ValueError(f"{name} is empty")
    return data


def split_holdout(
    data: Tensor, holdout: float | Tensor | None, seed: int
) -> tuple[Tensor, Tensor | None]:
    """(training rows, held-out rows): a fraction of the rows drawn by a generator seeded by
    ``seed`` (apart from the training stream), given held-out points, or none."""
    if holdout is None:
        return data, None
    if isinstance(holdout, (Tensor, np.ndarray)):
        held = as_data(torch.as_tensor(holdout), "holdout")
        if held.shape[1:] != data.shape[1:]:
            raise ValueError(
                f"holdout has events {tuple(held.shape[1:])}, data {tuple(data.shape[1:])}"
            )
        return data, held.to(data.dtype)
    if not isinstance(data, Tensor):
        raise ValueError("holdout as a fraction needs data as a tensor; pass held-out points")
    if not _is_number(holdout) or not 0 < holdout < 1:
        raise ValueError(f"holdout must be a fraction in (0, 1) or a tensor, got {holdout!r}")
    k = round(holdout * len(data))
    if not 1 <= k < len(data):
        raise ValueError(f"holdout={holdout} of {len(data)} rows leaves no training or test rows")
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    return data[perm[k:]], data[perm[:k]]


def _batches(data: Any) -> Callable[[int, torch.Generator], Tensor]:
    """Uniform draws with replacement from a tensor or a Dataset (of x or (x, label)), or
    fresh draws ``data.sample(n, generator)`` from a sampler (e.g. :class:`~.data.Dequantized`)."""
    if callable(getattr(data, "sample", None)):
        return lambda n, g: data.sample(n, g)
    if isinstance(data, TensorDataset):
        data = data.tensors[0]  # labels: read, not used yet
    if isinstance(data, Tensor):
        if data.ndim < 2:
            raise ValueError(f"data must have shape (n, *event), got {tuple(data.shape)}")
        return lambda n, g: data[torch.randint(len(data), (n,), generator=g)]
    if hasattr(data, "__getitem__") and hasattr(data, "__len__"):

        def draw(n: int, g: torch.Generator) -> Tensor:
            items = [data[int(i)] for i in torch.randint(len(data), (n,), generator=g)]
            return torch.stack([it[0] if isinstance(it, (tuple, list)) else it for it in items])

        return draw
    raise TypeError(f"data must be a Tensor or a Dataset, got {type(data).__name__}")


def _lr_lambda(config: TrainConfig) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < config.warmup:
            return (step + 1) / config.warmup
        if config.schedule == "constant":
            return 1.0
        progress = (step - config.warmup) / max(1, config.steps - config.warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _loss(
    nets: dict[str, nn.Module],
    I: Interpolant,
    x0: Tensor,
    x1: Tensor,
    config: TrainConfig,
    g: torch.Generator,
    world: tuple[int, int] = (1, 0),
    base: Any = None,
) -> Tensor:
    """The summed field objectives on this process's share of the batch.

    Every process draws the whole global batch from the same generator and keeps rows
    rank::size of it, so a run on several processes sees exactly the batch of one process.
    """
    t = sample_times(
        x0.shape[0],
        trim=config.trim or 0.0,
        generator=g,
        dtype=x0.dtype,
        device=x0.device,
        distribution=config.time_distribution,
    )
    s = I.sample(x0, x1, t, generator=g, antithetic=bool(config.antithetic))
    size, rank = world
    if config.objective == "max_likelihood":
        return _max_likelihood_loss(nets["velocity"], I, x1[rank::size], base, config, g)
    if size > 1:
        s = InterpolantSample(*(getattr(s, f.name)[rank::size] for f in dataclasses.fields(s)))
    total = x0.new_zeros(())
    for name, net in nets.items():
        pred = net(s.t, s.xt)
        if name == "velocity":
            total = total + velocity_loss(pred, s)
        elif name == "score":
            total = total + score_loss(pred, s, I)
        else:
            total = total + denoiser_loss(pred, s, I)
    return total


def _max_likelihood_loss(
    velocity: nn.Module,
    I: Interpolant,
    x1: Tensor,
    base: Any,
    config: TrainConfig,
    g: torch.Generator,
) -> Tensor:
    r"""-E log rho_1(x1) of the continuous flow dX = b dt, differentiated through the ODE solver
    (the maximum-likelihood baseline: FFJORD, arXiv 1810.01367)."""
    model = GenerativeModel(I, velocity, base=base)
    logp = model.log_prob(
        x1,
        divergence=config.ml_divergence,
        steps=config.ml_ode_steps,
        generator=g,
        create_graph=True,
    )
    return -logp.mean()


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
    resume: bool = False,
    overwrite: bool = False,
    holdout: float | Tensor | None = None,
    progress: bool | None = None,
    record: dict[str, Any] | None = None,
    **options: Any,
) -> GenerativeModel:
    r"""Learn the fields of a stochastic interpolant from samples of rho_1 (arXiv 2303.08797).

    Arguments:
        data: a Tensor or numpy array (n, *event) of x1 samples, a Dataset of x1 or
            (x1, label), or a sampler with ``sample(n, generator)`` drawn afresh for every
            batch. Integers are converted to float32; NaN or inf values are refused. Labels
            are read and not used yet.
        base: None for N(0, I); a Tensor/Dataset of x0 samples or a distribution.
        interpolant: the interpolant (default: linear, gamma = 0).
        fields: any of "velocity", "score", "denoiser".
        steps, batch_size, lr, seed: the optimisation; everything random is drawn from a
            generator seeded by ``seed``.
        net: None for a default network per field, a module ``net(t, x)`` (one field) or a
            dict {field: module}.
        out: a run folder: config.yaml (the options and a fingerprint of the data),
            metrics.jsonl, checkpoint.safetensors (every ``checkpoint_every`` steps and at
            the end), loss.png (and samples.png for 2-D data). None keeps nothing. A folder
            that already holds something is refused unless ``resume`` or ``overwrite``.
        resume: continue from ``out``'s checkpoint; refused (before anything is written)
            unless every setting that changes the result, the data included, is the same.
        overwrite: replace what ``out`` holds; the old files are put back if this run fails.
        holdout: a fraction of the rows of a tensor ``data`` kept out of training (drawn with
            ``seed``), or held-out points; written to ``out/heldout.safetensors``, where
            ``interpolants evaluate`` finds them. None: no held-out split.
        progress: a progress bar; None shows one when standard error is a terminal.
        record: plain data kept in config.yaml under ``run`` (the command line records the
            data set's description and the evaluation settings there); not compared on resume.
        options: any other :class:`TrainConfig` field (warmup, schedule, grad_clip, ema, ...).

    Returns:
        A :class:`GenerativeModel` whose fields are the EMA networks.

    Raises:
        TrainingInterrupted: on Ctrl-C, after a checkpoint of the last finished step (with
            ``out``); the message says how to resume.
    """
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(options) - names
    if unknown:
        raise TypeError(f"unknown fit option(s) {sorted(unknown)}; known: {sorted(names)}")
    config = TrainConfig(
        steps=steps, batch_size=batch_size, lr=lr, seed=seed, fields=tuple(fields), **options
    )
    config.check()
    I = interpolant or Interpolant("linear")
    if config.trim is None:
        config.trim = 0.0 if I.is_deterministic and config.fields == ("velocity",) else 1e-3
    if config.antithetic is None:
        config.antithetic = not I.is_deterministic
    world = _world()
    folder = RunFolder(out, resume=resume, overwrite=overwrite, writer=world[1] == 0)
    data = as_data(data)
    data, held = split_holdout(data, holdout, seed)
    if base is not None and not isinstance(base, torch.distributions.Distribution):
        base = as_data(base, "base") if isinstance(base, (Tensor, np.ndarray)) else base
    job = _Job.build(data, base, I, config, net, world)
    job.config_dict = _config_dict(config, I, data, base, job.nets)
    if held is not None:
        job.config_dict["holdout"] = fingerprint(held)
    if record is not None:
        job.config_dict["run"] = record
    start = job.restore(folder, resume)
    folder.accept(yaml.safe_dump(_yaml_safe(job.config_dict), sort_keys=False))
    folder.rewind("step", start)  # resumed: the lines logged after the checkpoint go
    if held is not None and folder and folder.writer:
        checkpoints.save(folder.file(HELDOUT), {"x": held}, kind="data")
    if progress is None:
        progress = sys.stderr.isatty()
    with folder.running():
        job.train(folder, start, bool(progress) and world[1] == 0)
        model = job.model()
        if folder and folder.writer:
            _run_plots(folder, model, config.objective)
    return model


HELDOUT = "heldout.safetensors"


def _yaml_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _yaml_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_yaml_safe(v) for v in value]
    return value


@dataclass
class _Job:
    """What one training run holds: the networks, their averages, the optimiser and stream."""

    data: Any
    draw_x1: Callable[[int, torch.Generator], Tensor]
    base: Any
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
        cls, data: Any, base: Any, I: Interpolant, config: TrainConfig, net: Any,
        world: tuple[int, int],
    ) -> _Job:  # fmt: skip
        draw_x1 = _batches(data)
        device = torch.device(config.device)
        gen = torch.Generator().manual_seed(config.seed)
        sample_x1 = draw_x1(2, gen)
        event_shape, dtype = sample_x1.shape[1:], sample_x1.dtype
        base_dist = (
            StandardNormal(event_shape, dtype=dtype) if base is None else as_distribution(base)
        )
        if tuple(base_dist.event_shape) != tuple(event_shape):
            raise ValueError(
                f"base events {tuple(base_dist.event_shape)} differ from "
                f"data events {tuple(event_shape)}"
            )
        nets = _make_nets(net, config, event_shape, dtype, device)
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
        return cls(data, draw_x1, base_dist, I, config, nets, train_nets, emas, opt, sched, gen,
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

    def model(self) -> GenerativeModel:
        modules = {
            k: e.module if self.config.ema > 0 else self.nets[k] for k, e in self.emas.items()
        }
        return _model(self.I, modules, self.base)

    def step(self, step: int) -> tuple[float, float]:
        """One optimiser step: (loss averaged over processes, gradient norm)."""
        config, gen = self.config, self.gen
        x1 = self.draw_x1(config.batch_size, gen).to(self.device)
        x0 = self.base.sample(config.batch_size, gen).to(self.device)
        loss = _loss(self.train_nets, self.I, x0, x1, config, gen, self.world, self.base)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"loss is {float(loss.detach())} at step {step}; stopped, keeping the last good "
                "checkpoint (try a smaller lr or more warmup)"
            )
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for m in self.nets.values() for p in m.parameters()]
        clip = config.grad_clip if config.grad_clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(params, clip)
        self.opt.step()
        self.sched.step()
        for k, m in self.nets.items():
            self.emas[k].update(m, step)
        return _mean_over_processes(loss.detach(), self.world[0]), float(grad_norm)

    def train(self, folder: RunFolder, start: int, progress: bool) -> None:
        config = self.config
        bar = _progress(progress, start, config.steps)
        window: list[float] = []
        began = clock = time.perf_counter()
        with deferred_interrupt() as interrupt:
            for step in range(start, config.steps):
                loss, grad_norm = self.step(step)
                window.append(loss)
                done = step + 1
                if done % config.log_every == 0 or done == config.steps:
                    now = time.perf_counter()
                    mean = sum(window) / len(window)
                    lr = self.sched.get_last_lr()[0]
                    folder.log({"step": done, "loss": mean, "lr": lr, "grad_norm": grad_norm,
                                "steps_per_s": len(window) / (now - clock)})  # fmt: skip
                    if bar is not None:
                        bar.set_postfix(loss=f"{mean:.4f}")
                    window, clock = [], now
                seconds = self.seconds + time.perf_counter() - began
                if done % config.checkpoint_every == 0 or done == config.steps:
                    self.checkpoint(folder, done, seconds)
                if bar is not None:
                    bar.update(1)
                if interrupt.requested and done < config.steps:
                    self.checkpoint(folder, done, seconds)
                    if bar is not None:
                        bar.close()
                    where = f"checkpoint of step {done} in {folder.path}" if folder else "no out="
                    raise TrainingInterrupted(
                        f"interrupted at step {done} of {config.steps}; {where}"
                        + ("; resume with resume=True (interpolants train ... --resume)"
                           if folder else "")
                    )  # fmt: skip
        if bar is not None:
            bar.close()


def _run_plots(folder: RunFolder, model: GenerativeModel, objective: str) -> None:
    """loss.png from metrics.jsonl, samples.png for 2-D data; a failed plot costs no run."""
    from .app.plots import loss_plot, samples_over_density

    try:
        loss_plot(folder.file(METRICS_LOG), folder.file("loss.png"), objective)
        if model.base is not None and tuple(model.base.event_shape) == (2,):
            x = model.sample(2000, steps=50, generator=torch.Generator().manual_seed(0))
            samples_over_density({"model samples (2000)": x}, folder.file("samples.png"))
    except Exception as err:  # the run is saved; say why a plot is missing
        warnings.warn(f"plots of {folder.path} not written: {err}", stacklevel=3)


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


def _make_nets(
    net: Any, config: TrainConfig, event_shape: torch.Size, dtype: torch.dtype, device: torch.device
) -> dict[str, nn.Module]:
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
            nets = {f: default_net(event_shape, **config.net_options) for f in config.fields}
    else:
        raise TypeError(
            f"net must be None, an nn.Module or a dict of them, got {type(net).__name__}"
        )
    return {k: m.to(device=device, dtype=dtype) for k, m in nets.items()}


def _model(I: Interpolant, modules: dict[str, nn.Module], base: Any) -> GenerativeModel:
    velocity = modules.get("velocity")
    if velocity is None:
        raise ValueError("sampling needs a velocity: include 'velocity' in fields")
    return GenerativeModel(
        I, velocity, score=modules.get("score"), base=base, denoiser=modules.get("denoiser")
    )


def _progress(enabled: bool, start: int, total: int) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, desc="training", unit="step")
