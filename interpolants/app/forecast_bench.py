"""``interpolants bench forecast``: probabilistic forecasting of simulated stochastic systems
(issue 22; Chen, Goldstein, Hua, Albergo, Boffi & Vanden-Eijnden, arXiv 2403.13724).

Protocol (docs/benchmarks.md, "Forecasting"): for each system of
:data:`interpolants.data.dynamics.SYSTEMS` the drift is trained as a ``model: forecast`` run
(:func:`~interpolants.app.forecast_runs.train_forecast`: the system's default lag and options,
standardised) with one budget rule for every system (steps, batch, lr, MLP width and depth,
seed); only the number of simulated pairs, of test states and of members is set per system
(:data:`SYSTEM_BUDGETS`: Lorenz-96, 264-d at dt 1e-4, is slow to simulate and gets fewer).

On fresh test states of the system (after its own burn-in), over ``lags`` lags: a forecast
rollout of ``members`` members per state with the interpolant's diffusion (the default) and
with the Foellmer one, two independent ensembles of true-SDE paths (the reference and a second
one), one true trajectory per state (what is scored against) and a climatological ensemble
(random states of the system, the same for every state and lag). At every lag each ensemble
gets its CRPS (fair, mean over states and entries), spread-skill ratio and energy distance to
the reference true-SDE ensemble (mean over states); the second true ensemble's energy distance
is the floor (finite members). At lag 1 also the energy score and the rank histogram
(:func:`~interpolants.app.forecast_eval.score_ensemble`). Standard errors over the states are
given for CRPS and energy distance.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..data.dynamics import SYSTEMS
from ..metrics import crps, spread_skill
from .forecast_eval import climatology, energy_distances, fresh_states, score_ensemble
from .forecast_runs import ForecastRun, load_forecast_run, train_forecast

__all__ = ["SYSTEM_BUDGETS", "bench_forecast", "format_forecast", "score_rollouts"]

SYSTEM_BUDGETS: dict[str, dict[str, int]] = {
    "lorenz63": {"pairs": 20_000, "chains": 100, "states": 100, "members": 50},
    "allen_cahn": {"pairs": 20_000, "chains": 100, "states": 100, "members": 50},
    "lorenz96": {"pairs": 10_000, "chains": 100, "states": 20, "members": 20},
}
"""Simulated training pairs (``chains`` paths), test states and ensemble members per system:
everything else is the same for all. Lorenz-96 (dt 1e-4, 500 Euler steps a lag, 264-d) gets
half the pairs and a fifth of the states and members; its burn-in is its own (5)."""

ENSEMBLES = ("interpolant", "follmer", "true_sde", "climatology")
"""The ensembles scored: the two diffusions of the trained drift, a second true-SDE ensemble
(whose energy distance is the floor) and climatology."""


def _se(values: Tensor) -> float:
    """The standard error of the mean of ``values`` (0 for one value)."""
    n = values.numel()
    return float(values.std() / math.sqrt(n)) if n > 1 else 0.0


def _per_state_crps(ensemble: Tensor, truth: Tensor) -> Tensor:
    """CRPS of each state (mean over its entries), (rows,)."""
    return crps(ensemble, truth, reduction="none").flatten(1).mean(1)


def _lag_scores(ens: Tensor, truth: Tensor, reference: Tensor) -> dict[str, float]:
    """One lag's CRPS, spread-skill and energy distance (with standard errors)."""
    per_crps = _per_state_crps(ens, truth)
    dist = energy_distances(ens, reference)
    return {
        "crps": float(per_crps.mean()),
        "crps_se": _se(per_crps),
        "spread_skill": spread_skill(ens, truth),
        "energy_distance": float(dist.mean()),
        "energy_distance_se": _se(dist),
    }


def score_rollouts(
    run: ForecastRun,
    states: int,
    members: int,
    lags: int,
    *,
    sde_steps: int = 50,
    seed: int = 1,
) -> dict[str, Any]:
    """The scores of the module's description for a trained run on a system: under
    ``one_lag`` (ensemble -> scores at lag 1) and ``rollout`` (ensemble -> score -> list by
    lag), the floor being ``true_sde``'s energy distance."""
    system = run.system
    if system is None:
        raise ValueError("score_rollouts needs a run trained on a simulated system")
    gen = torch.Generator().manual_seed(seed)
    x0 = fresh_states(system, states, gen)
    truth = system.trajectory(x0, lags, gen)[1:]

    reference = system.ensemble_paths(x0, members, lags, gen)
    clim = climatology(fresh_states(system, members, gen), members, states, gen)
    paths = {
        name: run.rollout(
            x0, lags, members, diffusion=name, steps=sde_steps, generator=gen
        ).double()
        for name in ("interpolant", "follmer")
    }
    paths["true_sde"] = system.ensemble_paths(x0, members, lags, gen)
    paths["climatology"] = clim[None].expand(lags, *clim.shape)
    one_lag: dict[str, Any] = {}
    rollout: dict[str, Any] = {}
    for name in ENSEMBLES:
        ens = paths[name]
        by_lag = [_lag_scores(ens[k], truth[k], reference[k]) for k in range(lags)]
        one_lag[name] = {**score_ensemble(ens[0], truth[0], gen), **by_lag[0]}
        rollout[name] = {key: [s[key] for s in by_lag] for key in by_lag[0]}
    return {"one_lag": one_lag, "rollout": rollout}


def _config(
    name: str, budget: dict[str, int], *, steps: int, batch: int, lr: float, width: int,
    depth: int, seed: int,
) -> dict[str, Any]:  # fmt: skip
    """The ``model: forecast`` config of system ``name`` under the shared budget."""
    data = {"system": name, "pairs": budget["pairs"], "chains": budget["chains"], "seed": seed}
    net = {"width": width, "depth": depth}
    return {"model": "forecast", "data": data, "steps": steps, "batch_size": batch, "lr": lr,
            "seed": seed, "net": net}  # fmt: skip


def bench_forecast(
    out: Path,
    *,
    systems: Sequence[str] = ("lorenz63", "allen_cahn", "lorenz96"),
    steps: int = 8000,
    batch: int = 512,
    lr: float = 2e-3,
    width: int = 128,
    depth: int = 3,
    seed: int = 0,
    lags: int = 10,
    sde_steps: int = 50,
    budgets: dict[str, dict[str, int]] | None = None,
) -> dict[str, Any]:
    """Forecasts of each of ``systems`` (module docstring; docs/benchmarks.md "Forecasting"):
    the drift trained ``steps`` steps of batch ``batch`` at lr ``lr`` (MLP ``width`` x
    ``depth``, seed ``seed``) on the system's pairs, scored at 1 lag and over a ``lags``-lag
    rollout with ``sde_steps`` Euler steps a lag. ``budgets`` overrides entries of
    :data:`SYSTEM_BUDGETS` (pairs, chains, states, members) by system. The runs go to
    ``out/SYSTEM``."""
    systems = (systems,) if isinstance(systems, str) else tuple(systems)
    budgets = budgets or {}
    unknown = sorted(set(systems) - set(SYSTEMS)) or sorted(set(budgets) - set(systems))
    if unknown:
        raise ValueError(f"unknown system {unknown[0]!r}; known: {', '.join(sorted(SYSTEMS))}")
    for name, given in budgets.items():
        extra = sorted(set(given) - set(SYSTEM_BUDGETS[name]))
        if extra:
            raise ValueError(f"budgets: {name}: unknown key {extra[0]!r}; known: pairs, chains, "
                             "states, members")  # fmt: skip
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    for name in systems:
        budget = {**SYSTEM_BUDGETS[name], **budgets.get(name, {})}
        config = _config(name, budget, steps=steps, batch=batch, lr=lr, width=width,
                         depth=depth, seed=seed)  # fmt: skip
        start = time.perf_counter()
        train_forecast(config, out / name, progress=False, overwrite=True)
        trained = time.perf_counter()
        run = load_forecast_run(out / name)
        scores = score_rollouts(run, budget["states"], budget["members"], lags,
                                sde_steps=sde_steps, seed=seed + 1)  # fmt: skip
        results[name] = {
            "system": repr(run.system), "lag": run.system.lag if run.system else None,
            **budget, "train_seconds": trained - start,
            "eval_seconds": time.perf_counter() - trained, **scores,
        }  # fmt: skip
    return {
        "settings": {"steps": steps, "batch": batch, "lr": lr, "width": width, "depth": depth,
                     "seed": seed, "lags": lags, "sde_steps": sde_steps, "solver": "euler"},
        "systems": results,
    }  # fmt: skip


def _one_lag_table(name: str, r: dict[str, Any]) -> list[str]:
    lines = [
        f"{name}: {r['system']}, {r['pairs']} pairs, {r['states']} states x "
        f"{r['members']} members, train {r['train_seconds']:.0f} s, "
        f"eval {r['eval_seconds']:.0f} s",
        f"  {'1 lag':>12} {'CRPS':>16} {'energy':>8} {'spr/skill':>9} {'E-dist':>18}",
    ]
    for ens, s in r["one_lag"].items():
        lines.append(
            f"  {ens:>12} {s['crps']:8.4f}+-{s['crps_se']:.4f} {s['energy_score']:8.4f} "
            f"{s['spread_skill']:9.3f} {s['energy_distance']:9.4f}+-{s['energy_distance_se']:.4f}"
        )
    return lines  # fmt: skip


def format_forecast(result: dict[str, Any]) -> str:
    """The benchmark as short tables: one lag per system (true_sde's energy distance is the
    floor: 0 in expectation, its scatter the noise), then CRPS, spread-skill and energy
    distance by lag."""
    s = result["settings"]
    lines = [f"forecast drift: {s['steps']} steps, batch {s['batch']}, lr {s['lr']}, MLP "
             f"{s['width']}x{s['depth']}, {s['sde_steps']} Euler SDE steps a lag"]  # fmt: skip
    rows = (("CRPS    ", "crps", "{:.3f}"), ("spr/skl ", "spread_skill", "{:.2f}"),
            ("E-dist  ", "energy_distance", "{:.3f}"))  # fmt: skip
    for name, r in result["systems"].items():
        lines += _one_lag_table(name, r)
        lines.append(f"  rollout by lag 1..{len(r['rollout']['true_sde']['crps'])}:")
        for label, key, fmt in rows:
            for ens, v in r["rollout"].items():
                lines.append(f"    {ens:>12} {label} " + " ".join(fmt.format(x) for x in v[key]))
    return "\n".join(lines)
