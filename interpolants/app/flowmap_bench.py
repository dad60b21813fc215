"""``interpolants bench flowmap``: few-step generation by flow maps on 2D toys (issue 20).

Protocol (docs/benchmarks.md, "Flow maps"): on each data set, one velocity model trained by
``si.fit`` and one flow map per method trained by ``si.fit_flow_map`` with the same budget
(steps, batch, width and depth of the MLP, learning-rate schedule, seed); every model's
samples scored by sliced W2 against the test split, less the floor (the same distance between
an independent draw of the data and the test split, same sizes). The flow maps jump
1, 2, 4, 8, 16 times; the velocity is integrated by Euler and Heun at the same NFE and by
Heun with 100 steps (the "ODE"). Training cost: ms per step of each method as a ratio to
``fit``'s, interleaved repeats, medians.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..data import load
from ..flowmaps import fit_flow_map
from ..generative import load as load_model
from ..metrics import sliced_w2
from ..nn import FlowMapMLP, MLPField
from ..train import fit

__all__ = [
    "FLOW_MAP_METHODS",
    "SELF_DISTILLATION",
    "bench_flowmap",
    "format_flowmap",
    "jump_goals",
    "plot_flowmap",
    "rescore_flowmap",
]

FLOW_MAP_METHODS = ("lagrangian", "eulerian", "progressive", "distill", "meanflow", "shortcut")
"""The methods the benchmark trains (``distill`` against the run's trained velocity)."""

SELF_DISTILLATION = ("lagrangian", "eulerian", "progressive")
"""The self-distillation methods (arXiv 2505.18825), compared with MeanFlow and shortcut."""


Draw = Callable[[torch.Generator], torch.Tensor]


def _floors(name: str, test: torch.Tensor, draws: int) -> list[float]:
    """The floor of each draw r: sliced W2 between the data drawn with seed 11 + r and the test
    split, same sizes (draw 0: the floor of ``bench checkerboard`` and ``evaluate``)."""
    return [sliced_w2(load(name, n=len(test), seed=11 + r), test) for r in range(draws)]


def _score(draw: Draw, test: torch.Tensor, floors: Sequence[float], seed: int) -> dict[str, Any]:
    """W2 - floor averaged over the draws r (samples from a generator seeded ``seed + r``
    against the test split, less floor r), with its standard error when there are several."""
    gens = [torch.Generator().manual_seed(seed + r) for r in range(len(floors))]
    w2 = [sliced_w2(draw(g), test) for g in gens]
    gaps = [w - f for w, f in zip(w2, floors, strict=True)]
    stderr = statistics.stdev(gaps) / math.sqrt(len(gaps)) if len(gaps) > 1 else None
    return {"sliced_w2": statistics.fmean(w2), "over_floor": statistics.fmean(gaps),
            "stderr": stderr}  # fmt: skip


def _velocity_rows(
    model: Any, test: torch.Tensor, floors: Sequence[float], jumps: Sequence[int],
    ode_steps: int, seed: int,
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Sliced W2 over the floor of the velocity's samples: Euler and Heun at each NFE of
    ``jumps`` (Heun: NFE / 2 steps, none at NFE 1) and Heun with ``ode_steps`` steps."""
    configs: dict[str, tuple[str, int]] = {}
    for k in jumps:
        configs[f"euler NFE {k}"] = ("euler", k)
        if k % 2 == 0:
            configs[f"heun NFE {k}"] = ("heun", k // 2)
    configs["ode"] = ("heun", ode_steps)
    rows = {}
    for name, (solver, steps) in configs.items():

        def draw(g: torch.Generator, solver: str = solver, steps: int = steps) -> torch.Tensor:
            return model.sample(len(test), steps=steps, solver=solver, generator=g)

        nfe = steps * (2 if solver == "heun" else 1)
        rows[name] = {"solver": solver, "steps": steps, "nfe": nfe,
                      **_score(draw, test, floors, seed)}  # fmt: skip
    return rows


def _jump_rows(
    fm: Any, test: torch.Tensor, floors: Sequence[float], jumps: Sequence[int], seed: int
) -> dict[str, dict[str, Any]]:
    """Sliced W2 (and over the floor) of the flow map's samples in k jumps, for k in jumps
    (keyed by str(k), as in metrics.json)."""
    rows = {}
    for k in jumps:

        def draw(g: torch.Generator, k: int = k) -> torch.Tensor:
            return fm.sample(len(test), steps=k, generator=g)

        rows[str(k)] = _score(draw, test, floors, seed)
    return rows


def _score_models(
    name: str, velocity: Any, maps: dict[str, Any], n: int, jumps: Sequence[int],
    ode_steps: int, seed: int, draws: int,
) -> dict[str, Any]:  # fmt: skip
    """The scores of one data set's velocity and flow maps, averaged over ``draws`` draws."""
    test = load(name, n=n, split="test")
    floors = _floors(name, test, draws)
    return {
        "floor": statistics.fmean(floors),
        "floors": floors,
        "velocity": _velocity_rows(velocity, test, floors, jumps, ode_steps, seed),
        "flow_maps": {m: _jump_rows(fm, test, floors, jumps, seed) for m, fm in maps.items()},
    }


def _nets(width: int, depth: int, seed: int) -> tuple[MLPField, FlowMapMLP]:
    """The velocity network and the flow-map network of one size, weights drawn from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        velocity = MLPField(2, width=width, depth=depth)
        torch.manual_seed(seed)
        return velocity, FlowMapMLP(2, width=width, depth=depth)


def _train_options(steps: int, lr: float = 1e-3) -> dict[str, Any]:
    """The loop's options shared by ``fit`` and ``fit_flow_map`` (the library's defaults
    otherwise: AdamW, cosine decay, clipping at 1, EMA 0.999)."""
    return {"warmup": max(1, min(200, steps // 10)), "lr": lr, "progress": False}


def _one_dataset(
    name: str, methods: Sequence[str], budget: dict[str, Any], jumps: Sequence[int], n: int,
    ode_steps: int, out: Path,
) -> tuple[dict[str, Any], Any]:  # fmt: skip
    """Train the velocity and every method's flow map on data set ``name``; score them.
    Returns (the data set's metrics, the trained velocity)."""
    steps, batch, seed = budget["steps"], budget["batch"], budget["seed"]
    (out / name).mkdir(parents=True, exist_ok=True)
    data = load(name, n=200_000)
    velocity_net, _ = _nets(budget["width"], budget["depth"], seed)
    start = time.perf_counter()
    velocity = fit(data, steps=steps, batch_size=batch, seed=seed, net=velocity_net,
                   **_train_options(steps, budget["lr"]))  # fmt: skip
    seconds = {"fit": time.perf_counter() - start}
    velocity.save(out / name / "velocity.pt")
    maps = {}
    for method in methods:
        _, net = _nets(budget["width"], budget["depth"], seed)
        start = time.perf_counter()
        maps[method] = fit_flow_map(
            data, method=method, steps=steps, batch_size=batch, seed=seed, net=net,
            teacher=velocity if method == "distill" else None,
            **_train_options(steps, budget["lr"]),
            **budget["method_options"].get(method, {}),
        )  # fmt: skip
        seconds[method] = time.perf_counter() - start
        maps[method].save(out / name / f"{method}.pt")
    result = _score_models(name, velocity, maps, n, jumps, ode_steps, seed, budget["draws"])
    result["train_seconds"] = seconds
    return result, velocity


def _step_costs(
    name: str, methods: Sequence[str], budget: dict[str, Any], teacher: Any, steps: int,
    repeats: int,
) -> dict[str, Any]:  # fmt: skip
    """ms per training step of ``fit`` and of each method (a whole call of ``steps`` steps,
    set-up included, as ``bench train-cost`` times ``fit``), interleaved over ``repeats``."""
    data = load(name, n=100_000)
    velocity_net, map_net = _nets(budget["width"], budget["depth"], 0)
    options = {**_train_options(steps, budget["lr"]), "warmup": 1,
               "batch_size": budget["batch"], "steps": steps}  # fmt: skip
    calls: dict[str, Callable[[], object]] = {
        "fit": lambda: fit(data, net=copy.deepcopy(velocity_net), **options)
    }
    for method in methods:
        teach = teacher if method == "distill" else None
        calls[method] = lambda m=method, t=teach: fit_flow_map(
            data, method=m, net=copy.deepcopy(map_net), teacher=t, **options,
            **budget["method_options"].get(m, {}),
        )  # fmt: skip
    times: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(repeats):
        for key, call in calls.items():
            start = time.perf_counter()
            call()
            times[key].append(time.perf_counter() - start)
    ms = {k: 1000 * statistics.median(v) / steps for k, v in times.items()}
    return {"data": name, "steps": steps, "repeats": repeats, "ms_per_step": ms,
            "ratio_to_fit": {k: v / ms["fit"] for k, v in ms.items()}}  # fmt: skip


def _self_distillation_wins(flow_maps: dict[str, Any]) -> dict[str, Any]:
    """At 1 and 2 jumps: the best self-distillation method and whether it beats both MeanFlow
    and shortcut (lower W2 - floor)."""
    best: dict[str, Any] = {}
    for k in ("1", "2"):
        own = [m for m in SELF_DISTILLATION if k in flow_maps.get(m, {})]
        peers = [m for m in ("meanflow", "shortcut") if k in flow_maps.get(m, {})]
        if own and peers:
            score = {m: flow_maps[m][k]["over_floor"] for m in own + peers}
            top = min(own, key=score.__getitem__)
            wins = all(score[top] < score[p] for p in peers)
            best[k] = {"best_self_distillation": top, "beats_meanflow_and_shortcut": wins}
    return best


def jump_goals(metrics: dict[str, Any]) -> dict[str, Any]:
    """Issue 20's goals, read off a flowmap benchmark's metrics: per data set and method, the
    k-jump sliced W2 over the floor as a ratio to the ODE's (goals: 2 jumps <= 1.5, 1 jump <= 2),
    whether it never rises with more jumps (and the largest rise), whether the best
    self-distillation method beats MeanFlow and shortcut at 1 and 2 jumps; the step-cost
    ratios to ``fit`` (goal <= 2)."""
    goals: dict[str, Any] = {}
    for name, d in metrics["datasets"].items():
        ode = d["velocity"]["ode"]["over_floor"]
        per: dict[str, Any] = {}
        for method, rows in d["flow_maps"].items():
            ks = sorted(rows, key=int)
            w = [rows[k]["over_floor"] for k in ks]
            rises = [b - a for a, b in itertools.pairwise(w)]
            per[method] = {
                f"ratio_{k}": rows[k]["over_floor"] / ode if ode > 0 and k in rows else None
                for k in ("1", "2")
            } | {
                "monotone": all(r <= 0 for r in rises),
                "largest_rise": max([0.0, *rises]),
            }
        best = _self_distillation_wins(d["flow_maps"])
        goals[name] = {"ode_over_floor": ode, "methods": per, "self_distillation": best}
    cost = metrics.get("step_cost")
    if cost:
        goals["step_cost_at_most_2x_fit"] = {
            m: r <= 2.0 for m, r in cost["ratio_to_fit"].items() if m != "fit"
        }
    return goals


def plot_flowmap(metrics: dict[str, Any], path: Path) -> Path:
    """One panel per data set: sliced W2 over the floor against the number of jumps (NFE), one
    line per flow-map method, the velocity's Euler and Heun dashed, its ODE a horizontal line."""
    from .plots import pyplot

    plt = pyplot()
    sets = metrics["datasets"]
    fig, axes = plt.subplots(1, len(sets), figsize=(6 * len(sets), 4.5), squeeze=False)
    for ax, (name, d) in zip(axes[0], sets.items(), strict=True):
        for method, rows in d["flow_maps"].items():
            ks = sorted(rows, key=int)
            ax.plot([int(k) for k in ks], [rows[k]["over_floor"] for k in ks], "o-", label=method)
        for solver in ("euler", "heun"):
            pts = [(r["nfe"], r["over_floor"]) for key, r in d["velocity"].items()
                   if key != "ode" and r["solver"] == solver]  # fmt: skip
            ax.plot(*zip(*pts, strict=True), "s--", color="grey" if solver == "euler" else "k",
                    label=f"velocity, {solver} (NFE)", alpha=0.7)  # fmt: skip
        ode = d["velocity"]["ode"]
        ax.axhline(ode["over_floor"], color="k", lw=1, ls=":",
                   label=f"velocity ODE (heun, NFE {ode['nfe']})")  # fmt: skip
        ax.set_xscale("log", base=2)
        values = [y for line in ax.get_lines() for y in line.get_ydata()]
        if min(values) > 0:  # else W2 below the floor somewhere: linear near 0
            ax.set_yscale("log")
        else:
            ax.set_yscale("symlog", linthresh=1e-3)
        ax.set_xlabel("jumps (flow maps) or NFE (velocity)")
        ax.set_ylabel("sliced W2 over the floor (W2 - floor)")
        ax.set_title(f"{name}: floor {d['floor']:.4f}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def bench_flowmap(
    out: Path,
    steps: int = 2000,
    batch: int = 1024,
    lr: float = 1e-3,
    seed: int = 0,
    width: int = 256,
    depth: int = 4,
    datasets: Sequence[str] = ("checkerboard", "8gaussians"),
    methods: Sequence[str] = FLOW_MAP_METHODS,
    jumps: Sequence[int] = (1, 2, 4, 8, 16),
    n: int = 20_000,
    ode_steps: int = 100,
    cost_steps: int = 20,
    cost_repeats: int = 5,
    draws: int = 1,
    method_options: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Flow maps against the velocity they replace (module docstring; docs/benchmarks.md):
    for each of ``datasets``, sliced W2 over the floor of every method at each of ``jumps``
    beside the velocity's Euler / Heun at the same NFE and its ``ode_steps``-step Heun; the
    training cost per step as a ratio to ``fit``'s on the first data set. ``lr`` is the
    learning rate of every training (the velocity's and the flow maps' alike). With ``draws`` > 1,
    every score is the mean over that many independent draws (samples and floor), with its
    standard error. ``method_options`` maps a method to more options of its objective (e.g.
    ``{"lagrangian": {"backward": False}}``), recorded in the metrics. Writes
    ``flowmap.png`` and ``table.md`` beside ``metrics.json``."""
    unknown = sorted(set(methods) - set(FLOW_MAP_METHODS))
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; known: {FLOW_MAP_METHODS}")
    extra = dict(method_options or {})
    if not set(extra) <= set(methods) or not all(isinstance(v, dict) for v in extra.values()):
        raise ValueError(f"method_options must map some of the methods {list(methods)} to "
                         f"dicts of their objective's options, got {extra!r}")  # fmt: skip
    budget = {"steps": steps, "batch": batch, "lr": lr, "seed": seed, "width": width,
              "depth": depth, "draws": draws, "method_options": extra}  # fmt: skip
    metrics: dict[str, Any] = {
        **budget, "n": n, "jumps": list(jumps), "ode_steps": ode_steps,
        "train_options": _train_options(steps, lr), "datasets": {},
    }  # fmt: skip
    teacher = None
    for name in datasets:
        metrics["datasets"][name], velocity = _one_dataset(
            name, methods, budget, jumps, n, ode_steps, out
        )
        teacher = teacher or velocity
    if cost_repeats > 0 and datasets:
        metrics["step_cost"] = _step_costs(
            datasets[0], methods, budget, teacher, cost_steps, cost_repeats
        )
    return _finish(metrics, out)


def _finish(metrics: dict[str, Any], out: Path) -> dict[str, Any]:
    """Add the goals; write the plot and the tables into ``out``."""
    metrics["goals"] = jump_goals(metrics)
    plot_flowmap(metrics, out / "flowmap.png")
    (out / "table.md").write_text(format_flowmap(metrics) + "\n")
    return metrics


def rescore_flowmap(folder: Path, out: Path, draws: int = 5) -> dict[str, Any]:
    """Score again the models a flowmap benchmark saved in ``folder`` (its metrics.json, and
    DATASET/velocity.pt, DATASET/METHOD.pt), averaging every score over ``draws`` independent
    draws of the samples and of the floor's data (its standard error beside it); the training
    times and step costs are carried over. Writes metrics.json, table.md and flowmap.png
    into ``out``; returns the metrics. Cost: sliced W2 dominates (POT, 500 projections: about
    6 s per call at n = 20 000 on one core, 41 calls per data set and draw with the default
    jumps), so 5 draws of the default run take about 40 minutes on one core."""
    old = json.loads((folder / "metrics.json").read_text())
    metrics = {k: v for k, v in old.items() if k not in ("datasets", "goals", "machine")}
    metrics["draws"], metrics["rescored_from"], metrics["datasets"] = draws, str(folder), {}
    for name, d in old["datasets"].items():
        velocity = load_model(folder / name / "velocity.pt")
        maps = {m: load_model(folder / name / f"{m}.pt") for m in d["flow_maps"]}
        metrics["datasets"][name] = _score_models(
            name, velocity, maps, old["n"], old["jumps"], old["ode_steps"], old["seed"], draws
        ) | {"train_seconds": d.get("train_seconds")}
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(_finish(metrics, out), indent=1) + "\n")
    return metrics


def _fmt(x: float | None, spec: str = ".4f") -> str:
    return "" if x is None else format(x, spec)


def _cell(row: dict[str, Any] | None) -> str:
    """W2 - floor, with its standard error when the score is a mean over draws."""
    if not row:
        return ""
    se = row.get("stderr")
    return _fmt(row["over_floor"]) + ("" if se is None else f" ± {se:.4f}")


def format_flowmap(m: dict[str, Any]) -> str:
    """The markdown tables of a flowmap benchmark: per data set, W2 - floor by jumps/NFE
    (rows: methods and the velocity's solvers), the goals, and the step costs."""
    ks = [str(k) for k in m["jumps"]]
    lines = [
        f"{m['steps']} steps, batch {m['batch']}, MLP {m['depth']} x {m['width']}, seed "
        f"{m['seed']}; n = {m['n']} samples against n test points; sliced W2 minus the floor"
        + (f", mean ± standard error over {m['draws']} draws" if m.get("draws", 1) > 1 else "")
        + (f"; method options {m['method_options']}" if m.get("method_options") else ""),
    ]
    for name, d in m["datasets"].items():
        ode = d["velocity"]["ode"]
        lines += ["", f"### {name} (floor {d['floor']:.4f}; velocity ODE, Heun {ode['steps']} "
                  f"steps, NFE {ode['nfe']}: W2 - floor {_cell(ode)})", "",
                  "| model | " + " | ".join(f"{k} jumps / NFE" for k in ks) + " | monotone |",
                  "|---|" + "---|" * (len(ks) + 1)]  # fmt: skip
        goals = m["goals"][name]["methods"]
        for method, rows in d["flow_maps"].items():
            cells = " | ".join(_cell(rows[k]) for k in ks)
            mono = "yes" if goals[method]["monotone"] else (
                f"no (rise {goals[method]['largest_rise']:.4f})")  # fmt: skip
            lines.append(f"| {method} | {cells} | {mono} |")
        for solver in ("euler", "heun"):
            cells = " | ".join(_cell(d["velocity"].get(f"{solver} NFE {k}")) for k in ks)
            lines.append(f"| velocity, {solver} | {cells} | |")
        lines += ["", "| method | 1 jump / ODE (goal <= 2) | 2 jumps / ODE (goal <= 1.5) |",
                  "|---|---|---|"]  # fmt: skip
        for method, g in goals.items():
            r1, r2 = _fmt(g["ratio_1"], ".2f"), _fmt(g["ratio_2"], ".2f")
            lines.append(f"| {method} | {r1} | {r2} |")
        for k, b in m["goals"][name]["self_distillation"].items():
            lines.append(f"\nAt {k} jump(s) the best self-distillation method is "
                         f"{b['best_self_distillation']}; it beats MeanFlow and shortcut: "
                         f"{'yes' if b['beats_meanflow_and_shortcut'] else 'no'}.")  # fmt: skip
    cost = m.get("step_cost")
    if cost:
        lines += ["", f"Training cost on {cost['data']} ({cost['steps']}-step calls, median of "
                  f"{cost['repeats']} interleaved repeats):", "",
                  "| trainer | ms/step | ratio to fit (goal <= 2) |", "|---|---|---|"]  # fmt: skip
        for k, ms in cost["ms_per_step"].items():
            lines.append(f"| {k} | {ms:.1f} | {cost['ratio_to_fit'][k]:.2f}x |")
    return "\n".join(lines)
