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
import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .distributions import StandardNormal, as_distribution
from .generative import GenerativeModel
from .interpolant import TIME_DISTRIBUTIONS, Interpolant, InterpolantSample, sample_times
from .losses import denoiser_loss, score_loss, velocity_loss
from .nn import default_net

__all__ = ["EMA", "TrainConfig", "fit", "init_distributed", "load_checkpoint", "save_checkpoint"]

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
        for name in ("steps", "batch_size", "log_every", "checkpoint_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
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


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """torch.save to a temporary file in the same folder, then rename: never a half file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint; a clear ValueError if it is missing or unreadable."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise ValueError(f"checkpoint {path} is corrupt or not a checkpoint ({err})") from err


def _config_dict(config: TrainConfig, interpolant: Interpolant) -> dict[str, Any]:
    out = asdict(config)
    out["fields"] = list(config.fields)
    out["interpolant"] = interpolant.spec()
    return out


def _differences(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    ignored = {"log_every", "checkpoint_every", "device"}
    keys = (set(saved) | set(now)) - ignored
    return [
        f"{k}: checkpoint {saved.get(k)!r}, now {now.get(k)!r}"
        for k in sorted(keys)
        if saved.get(k) != now.get(k)
    ]


def _batches(data: Any) -> Callable[[int, torch.Generator], Tensor]:
    """Uniform draws with replacement from a tensor or a Dataset (of x or (x, label)), or
    fresh draws ``data.sample(n, generator)`` from a sampler (e.g. :class:`~.data.Dequantized`)."""
    if callable(getattr(data, "sample", None)):
        return lambda n, g: data.sample(n, g)
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
    (the maximum-likelihood baseline: FFJORD, arXiv 1810.01367; "max entropy" in MISSION.md)."""
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
    progress: bool = False,
    **options: Any,
) -> GenerativeModel:
    r"""Learn the fields of a stochastic interpolant from samples of rho_1 (arXiv 2303.08797).

    Arguments:
        data: a Tensor (n, *event) of x1 samples, a Dataset of x1 or (x1, label), or a sampler
            with ``sample(n, generator)`` drawn afresh for every batch. Labels are read and
            not used yet: conditioning on them is API.md section 4.
        base: None for N(0, I); a Tensor/Dataset of x0 samples or a distribution.
        interpolant: the interpolant (default: linear, gamma = 0).
        fields: any of "velocity", "score", "denoiser".
        steps, batch_size, lr, seed: the optimisation; everything random is drawn from a
            generator seeded by ``seed``.
        net: None for a default network per field, a module ``net(t, x)`` (one field) or a
            dict {field: module}.
        out: a run folder for config.yaml, metrics.jsonl, checkpoint.pt; None keeps nothing.
        resume: continue from ``out/checkpoint.pt`` (same config required).
        progress: show a progress bar.
        options: any other :class:`TrainConfig` field (warmup, schedule, grad_clip, ema, ...).

    Returns:
        A :class:`GenerativeModel` whose fields are the EMA networks.
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
    draw_x1 = _batches(data)
    device = torch.device(config.device)
    gen = torch.Generator().manual_seed(seed)
    sample_x1 = draw_x1(2, gen)
    event_shape, dtype = sample_x1.shape[1:], sample_x1.dtype
    base_dist = StandardNormal(event_shape, dtype=dtype) if base is None else as_distribution(base)
    if tuple(base_dist.event_shape) != tuple(event_shape):
        raise ValueError(
            f"base events {tuple(base_dist.event_shape)} differ from "
            f"data events {tuple(event_shape)}"
        )
    nets = _make_nets(net, config, event_shape, dtype, device)
    world = _world()
    if config.batch_size % world[0]:
        raise ValueError(f"batch_size {config.batch_size} must divide by the {world[0]} processes")
    train_nets = _distributed(nets, device) if world[0] > 1 else nets
    emas = {k: EMA(m, config.ema) for k, m in nets.items()}
    params = [p for m in nets.values() for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(config))
    run = _Run(out, _config_dict(config, I), writer=world[1] == 0)
    start = 0
    if resume:
        state = run.load()
        for k, m in nets.items():
            m.load_state_dict(state["nets"][k])
            emas[k].module.load_state_dict(state["ema"][k])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        start = state["step"]
    else:
        gen.manual_seed(seed)

    def checkpoint(step: int) -> None:
        run.save(
            {
                "step": step,
                "config": run.config,
                "nets": {k: m.state_dict() for k, m in nets.items()},
                "ema": {k: e.module.state_dict() for k, e in emas.items()},
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "generator": gen.get_state(),
                "modules": {k: e.module for k, e in emas.items()},
                "interpolant": I.spec(),
                "base": base_dist,
            }
        )

    bar = _progress(progress and world[1] == 0, start, config.steps)
    window: list[float] = []
    clock = time.perf_counter()
    for step in range(start, config.steps):
        x1 = draw_x1(config.batch_size, gen).to(device)
        x0 = base_dist.sample(config.batch_size, gen).to(device)
        loss = _loss(train_nets, I, x0, x1, config, gen, world, base_dist)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"loss is {float(loss.detach())} at step {step}; "
                "stopped, keeping the last good checkpoint"
                + (f" in {run.folder}" if run.folder else "")
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(
            params, config.grad_clip if config.grad_clip > 0 else math.inf
        )
        opt.step()
        sched.step()
        for k, m in nets.items():
            emas[k].update(m, step)
        window.append(_mean_over_processes(loss.detach(), world[0]))
        done = step + 1
        if done % config.log_every == 0 or done == config.steps:
            now = time.perf_counter()
            run.log(
                {
                    "step": done,
                    "loss": sum(window) / len(window),
                    "lr": sched.get_last_lr()[0],
                    "grad_norm": float(grad_norm),
                    "steps_per_s": len(window) / (now - clock),
                }
            )
            if bar is not None:
                bar.set_postfix(loss=f"{sum(window) / len(window):.4f}")
            window, clock = [], now
        if done % config.checkpoint_every == 0 or done == config.steps:
            checkpoint(done)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return _model(
        I, {k: e.module if config.ema > 0 else nets[k] for k, e in emas.items()}, base_dist
    )


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


class _Run:
    """The run folder: config.yaml, metrics.jsonl and checkpoint.pt (or nothing when out=None)."""

    def __init__(self, out: str | Path | None, config: dict[str, Any], writer: bool = True):
        self.folder = Path(out) if out is not None else None
        self.config = config
        self.writer = writer  # only one process of a distributed run writes
        if self.folder is not None and writer:
            import yaml

            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    def load(self) -> dict[str, Any]:
        """The last checkpoint, checked against this config; metrics past it are dropped."""
        if self.folder is None:
            raise ValueError("resume=True needs out= (the run folder to resume)")
        state = load_checkpoint(self.folder / "checkpoint.pt")
        diff = _differences(state["config"], self.config)
        if diff:
            raise ValueError("checkpoint does not match this config: " + "; ".join(diff))
        metrics = self.folder / "metrics.jsonl"
        if metrics.exists() and self.writer:
            rows = [r for r in metrics.read_text().splitlines() if r.strip()]
            kept = [r for r in rows if json.loads(r)["step"] <= state["step"]]
            metrics.write_text("".join(r + "\n" for r in kept))
        return state

    def save(self, state: dict[str, Any]) -> None:
        if self.folder is not None and self.writer:
            save_checkpoint(self.folder / "checkpoint.pt", state)

    def log(self, row: dict[str, Any]) -> None:
        if self.folder is not None and self.writer:
            with open(self.folder / "metrics.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
