"""The benchmark suite behind ``interpolants bench NAME`` (definitions in BENCHMARKS.md).

Each benchmark prints a markdown table and writes ``metrics.json`` to its output folder.
Timings interleave the compared variants and report medians, since machines are shared.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .demo import demo_problem
from .integrate import odeint

__all__ = ["BENCHMARKS", "run_benchmark"]


def _median_seconds(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time of each callable, the callables interleaved within every repeat."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


class _MLPField(nn.Module):
    """b(t, x) = MLP([x, t]), 4 hidden layers of 256 (SiLU): the size of a learned 2D velocity."""

    def __init__(self, dim: int = 2, width: int = 256, depth: int = 4):
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(dim + 1, width), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(width, width), nn.SiLU()]
        self.net = nn.Sequential(*layers, nn.Linear(width, dim))

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        return self.net(torch.cat([x, t[:, None]], 1))


def _bare_euler(field: Callable[[Tensor, Tensor], Tensor], x: Tensor, steps: int) -> Tensor:
    """The limit: a hand-written Euler loop of the same field."""
    h = 1.0 / steps
    n = x.shape[0]
    for i in range(steps):
        x = x + h * field(torch.full((n,), i * h), x)
    return x


def bench_solvers(out: Path, n: int = 10_000, repeats: int = 5, steps: int = 100) -> dict[str, Any]:
    """Sampling cost per n samples of each solver on the exact demo field, accuracy against a
    tight dopri5 reference, and the overhead of the solver loop against a bare Euler loop."""
    torch.manual_seed(0)
    model, _, fields = demo_problem()
    _, _, fields64 = demo_problem(torch.float64)
    x0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = odeint(fields64.velocity, x0.double(), solver="dopri5", atol=1e-10, rtol=1e-10).x
    configs = {
        f"euler {steps}": dict(solver="euler", steps=steps),
        f"heun {steps}": dict(solver="heun", steps=steps),
        f"rk4 {steps // 4}": dict(solver="rk4", steps=max(1, steps // 4)),
        f"rk4 {steps}": dict(solver="rk4", steps=steps),
        "dopri5 1e-5": dict(solver="dopri5", atol=1e-5, rtol=1e-5),
        "dopri5 1e-3": dict(solver="dopri5", atol=1e-3, rtol=1e-3),
    }
    sols = {}
    fns = {}
    for name, kw in configs.items():

        def run(kw: dict[str, Any] = kw, name: str = name) -> None:
            with torch.no_grad():
                sols[name] = odeint(fields.velocity, x0, **kw)

        fns[name] = run
    secs = _median_seconds(fns, repeats)
    rows = {
        name: {
            "nfe": sols[name].nfe,
            "seconds": secs[name],
            "max_abs_error": float((sols[name].x.double() - ref).abs().max()),
            "rms_error": float((sols[name].x.double() - ref).square().mean().sqrt()),
        }
        for name in configs
    }
    overhead = {}
    mlp = _MLPField().eval()
    exact = fields.velocity
    for label, field in (("exact mixture field", exact), ("MLP 4x256 field", mlp)):
        fns = {
            "bare": lambda f=field: _bare_euler(f, x0, steps),
            "odeint": lambda f=field: odeint(f, x0, steps=steps, solver="euler"),
        }
        if field is exact:
            fns["transport"] = lambda: model.transport(x0, steps=steps, solver="euler")
        with torch.no_grad():
            secs = _median_seconds(fns, repeats)
        overhead[label] = {f"{k}_seconds": v for k, v in secs.items()}
        overhead[label]["ratio"] = secs["odeint"] / secs["bare"]
        if "transport" in secs:
            overhead[label]["transport_ratio"] = secs["transport"] / secs["bare"]
    return {"n": n, "repeats": repeats, "solvers": rows, "overhead": overhead}


def _format_solvers(m: dict[str, Any]) -> str:
    lines = [
        f"n = {m['n']} samples, median of {m['repeats']} interleaved repeats",
        "",
        "| solver | NFE | wall s | max abs error | RMS error |",
        "|---|---|---|---|---|",
    ]
    for name, r in m["solvers"].items():
        lines.append(
            f"| {name} | {r['nfe']} | {r['seconds']:.3f} | {r['max_abs_error']:.2e} "
            f"| {r['rms_error']:.2e} |"
        )
    lines += [
        "",
        "| field (Euler, 100 steps) | bare loop s | odeint s | ratio |",
        "|---|---|---|---|",
    ]
    for label, r in m["overhead"].items():
        extra = f" (model.transport {r['transport_ratio']:.3f}x)" if "transport_ratio" in r else ""
        lines.append(
            f"| {label} | {r['bare_seconds']:.4f} | {r['odeint_seconds']:.4f} "
            f"| {r['ratio']:.3f}x{extra} |"
        )
    return "\n".join(lines)


BENCHMARKS: dict[str, tuple[Callable[..., dict[str, Any]], Callable[[dict[str, Any]], str]]] = {
    "solvers": (bench_solvers, _format_solvers),
}


def run_benchmark(name: str, out: str | Path = "runs/bench") -> tuple[dict[str, Any], str]:
    """Run benchmark ``name``; write ``OUT/NAME/metrics.json``; return (metrics, table)."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(sorted(BENCHMARKS))}")
    fn, fmt = BENCHMARKS[name]
    folder = Path(out) / name
    folder.mkdir(parents=True, exist_ok=True)
    metrics = fn(folder)
    metrics["machine"] = {
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": date.today().isoformat(),
    }
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics, fmt(metrics)
