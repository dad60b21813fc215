"""``interpolants bench forecast``: probabilistic forecasting of simulated stochastic systems
(issue 22; Chen, Goldstein, Hua, Albergo, Boffi & Vanden-Eijnden, arXiv 2403.13724).

Protocol (docs/benchmarks.md, "Forecasting"): for each system of
:data:`interpolants.data.dynamics.SYSTEMS` the drift is trained as a ``model: forecast`` run
(:func:`~interpolants.app.forecast_runs.train_forecast`: the system's default lag and options,
standardised) with one budget rule for every system (steps, batch, lr, MLP width and depth,
seed); only the number of simulated pairs, of test states and of members is set per system
(:data:`SYSTEM_BUDGETS`: Lorenz-96, 264-d at dt 1e-4, is slow to simulate and gets fewer).

The baseline: a conditional flow, the same network trained on the same pairs with the same
budget, from an independent Gaussian base conditioned on x_now
(``si.couplings.Paired(x_now, start="noise")``, the linear deterministic interpolant, the
velocity), sampled by its ODE.

On fresh test states of the system (after its own burn-in), over ``lags`` lags: forecast
rollouts of ``members`` members per state (:func:`ensembles`: the drift with the interpolant's
diffusion g = sigma and with the Foellmer one, at ``sde_steps`` Euler steps and at ``nfe``
evaluations or fewer, Heun and Euler; the flow at ``nfe`` and ``sde_steps`` evaluations), two
independent ensembles of true-SDE paths (the reference and a second one), one true trajectory
per state (what is scored against) and a climatological ensemble (random states of the
system, the same for every state and lag). g = 0 is not among them: for the default
interpolant sigma(0) > 0, and from the point mass a g(0) < sigma(0) reaches a wrong law
(:func:`~interpolants.forecasting.check_diffusion` refuses it).

At every lag each ensemble gets its CRPS (fair, mean over states and entries; for two-scale
Lorenz-96 also over the K slow variables alone), spread-skill ratio and energy distance to the
reference true-SDE ensemble (mean over states), unbiased and as a V-statistic; the second true
ensemble's is the floor (finite members: 0 in expectation for the unbiased form, E|X - X'|
(2 / members) for the V-statistic, which a ratio can be taken to). At lag 1 also the energy
score and the rank histogram (:func:`~interpolants.app.forecast_eval.score_ensemble`).
Standard errors over the states are given for CRPS and energy distance.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..couplings import Paired
from ..data.dynamics import SYSTEMS
from ..forecasting import autoregress
from ..generative import GenerativeModel
from ..interpolant import Interpolant
from ..metrics import crps, spread_skill
from ..train import fit
from .forecast_eval import climatology, energy_distances, fresh_states, score_ensemble
from .forecast_runs import (
    SYSTEM_KEYS,
    ForecastPairs,
    ForecastRun,
    Normaliser,
    forecast_net,
    forecast_pairs,
    load_forecast_run,
    train_forecast,
)

__all__ = [
    "SYSTEM_BUDGETS",
    "FlowBaseline",
    "bench_forecast",
    "ensembles",
    "format_forecast",
    "score_rollouts",
    "train_flow_baseline",
]

SYSTEM_BUDGETS: dict[str, dict[str, int]] = {
    "lorenz63": {"pairs": 20_000, "chains": 100, "states": 300, "members": 50},
    "allen_cahn": {"pairs": 20_000, "chains": 100, "states": 100, "members": 50},
    "lorenz96": {"pairs": 10_000, "chains": 100, "states": 20, "members": 20},
}
"""Simulated training pairs (``chains`` paths), test states and ensemble members per system:
everything else is the same for all. Lorenz-63 (3-d, cheap) gets 300 states, so that its
spread-skill ratio is less noisy; Lorenz-96 (dt 1e-4, 500 Euler steps a lag, 264-d) half the
pairs and 20 states and members; its burn-in is its own (5)."""

REFERENCES = ("true_sde", "climatology")
"""The ensembles that are not forecasts: a second true-SDE ensemble (whose energy distance is
the floor) and climatology."""


def ensembles(nfe: int = 10, sde_steps: int = 50) -> dict[str, tuple[str, Any, str, int]]:
    """The forecast ensembles scored: name -> (model "drift" or "flow", diffusion, solver,
    steps). The drift's SDE with Heun at nfe // 2 steps makes 2 (nfe // 2) - 1 evaluations
    (its last step is Euler-Maruyama), the flow's ODE with Heun 2 (nfe // 2): at most ``nfe``
    each; Euler at ``nfe`` steps makes ``nfe``."""
    k = nfe // 2
    return {
        "interpolant": ("drift", "interpolant", "euler", sde_steps),
        "follmer": ("drift", "follmer", "euler", sde_steps),
        f"interpolant_heun{k}": ("drift", "interpolant", "heun", k),
        f"follmer_heun{k}": ("drift", "follmer", "heun", k),
        f"interpolant_euler{nfe}": ("drift", "interpolant", "euler", nfe),
        f"follmer_euler{nfe}": ("drift", "follmer", "euler", nfe),
        f"flow_heun{k}": ("flow", None, "heun", k),
        f"flow_euler{nfe}": ("flow", None, "euler", nfe),
        f"flow_heun{sde_steps // 2}": ("flow", None, "heun", sde_steps // 2),
    }


@dataclass
class FlowBaseline:
    """The conditional-flow baseline: a velocity from N(0, I) conditioned on the current state
    (standardised like the drift's run), sampled by its ODE, rolled out autoregressively."""

    model: GenerativeModel
    normaliser: Normaliser

    def rollout(
        self, cond: Tensor, lags: int, members: int, *, steps: int, solver: str,
        generator: torch.Generator | None = None,
    ) -> Tensor:  # fmt: skip
        """(lags, members, rows, *event) forecasts from states ``cond`` in the data's units."""

        def step(state: Tensor) -> Tensor:
            return self.model.sample(steps=steps, solver=solver, cond=state, generator=generator)

        paths = autoregress(step, self.normaliser.to_model(cond.float()), lags, members)
        return self.normaliser.from_model(paths)


def train_flow_baseline(config: dict[str, Any], pairs: ForecastPairs, out: Path) -> FlowBaseline:
    """The baseline of the module's description, trained into ``out`` with the drift run's
    budget (``config``: steps, batch_size, lr, seed, net)."""
    norm = Normaliser.fit(pairs.x_now)
    model = fit(
        norm.to_model(pairs.x_next), base=Paired(norm.to_model(pairs.x_now), start="noise"),
        interpolant=Interpolant("linear"), fields=("velocity",), steps=config["steps"],
        batch_size=config["batch_size"], lr=config["lr"], seed=config["seed"],
        net_options=forecast_net(config), out=out, overwrite=True, progress=False,
    )  # fmt: skip
    return FlowBaseline(model, norm)


def _se(values: Tensor) -> float:
    """The standard error of the mean of ``values`` (0 for one value)."""
    n = values.numel()
    return float(values.std() / math.sqrt(n)) if n > 1 else 0.0


def _per_state_crps(ensemble: Tensor, truth: Tensor) -> Tensor:
    """CRPS of each state (mean over its entries), (rows,)."""
    return crps(ensemble, truth, reduction="none").flatten(1).mean(1)


def _lag_scores(ens: Tensor, truth: Tensor, reference: Tensor, slow: int) -> dict[str, float]:
    """One lag's CRPS, spread-skill and energy distances (with standard errors); CRPS and
    spread-skill of the first ``slow`` entries too when ``slow`` > 0."""
    per_crps = _per_state_crps(ens, truth)
    dist, v = energy_distances(ens, reference), energy_distances(ens, reference, False)
    scores = {
        "crps": float(per_crps.mean()),
        "crps_se": _se(per_crps),
        "spread_skill": spread_skill(ens, truth),
        "energy_distance": float(dist.mean()),
        "energy_distance_se": _se(dist),
        "energy_distance_v": float(v.mean()),
        "energy_distance_v_se": _se(v),
    }
    if slow:
        part = _per_state_crps(ens[..., :slow], truth[..., :slow])
        scores["crps_slow"], scores["crps_slow_se"] = float(part.mean()), _se(part)
        scores["spread_skill_slow"] = spread_skill(ens[..., :slow], truth[..., :slow])
    return scores


def _forecasts(
    run: ForecastRun, flow: FlowBaseline | None, x0: Tensor, members: int, lags: int,
    plan: dict[str, tuple[str, Any, str, int]], gen: torch.Generator,
) -> dict[str, Tensor]:  # fmt: skip
    """The rollouts of every ensemble of ``plan`` (the flow's left out without ``flow``)."""
    paths: dict[str, Tensor] = {}
    for name, (model, diffusion, solver, steps) in plan.items():
        if model == "drift":
            paths[name] = run.rollout(x0, lags, members, diffusion=diffusion, steps=steps,
                                      solver=solver, generator=gen).double()  # fmt: skip
        elif flow is not None:
            paths[name] = flow.rollout(x0, lags, members, steps=steps, solver=solver,
                                       generator=gen).double()  # fmt: skip
    return paths


def score_rollouts(
    run: ForecastRun,
    states: int,
    members: int,
    lags: int,
    *,
    sde_steps: int = 50,
    nfe: int = 10,
    flow: FlowBaseline | None = None,
    seed: int = 1,
) -> dict[str, Any]:
    """The scores of the module's description for a trained run on a system (and the flow
    baseline when given): under ``one_lag`` (ensemble -> scores at lag 1) and ``rollout``
    (ensemble -> score -> list by lag), the floor being ``true_sde``'s energy distance."""
    system = run.system
    if system is None:
        raise ValueError("score_rollouts needs a run trained on a simulated system")
    gen = torch.Generator().manual_seed(seed)
    x0 = fresh_states(system, states, gen)
    truth = system.trajectory(x0, lags, gen)[1:]

    reference = system.ensemble_paths(x0, members, lags, gen)
    clim = climatology(fresh_states(system, members, gen), members, states, gen)
    paths = _forecasts(run, flow, x0, members, lags, ensembles(nfe, sde_steps), gen)
    paths["true_sde"] = system.ensemble_paths(x0, members, lags, gen)
    paths["climatology"] = clim[None].expand(lags, *clim.shape)
    slow = int(getattr(system, "K", 0)) if getattr(system, "J", None) else 0
    one_lag: dict[str, Any] = {}
    rollout: dict[str, Any] = {}
    for name, ens in paths.items():
        by_lag = [_lag_scores(ens[k], truth[k], reference[k], slow) for k in range(lags)]
        one_lag[name] = {**score_ensemble(ens[0], truth[0], gen), **by_lag[0]}
        rollout[name] = {key: [s[key] for s in by_lag] for key in by_lag[0]}
    return {"one_lag": one_lag, "rollout": rollout}


def _config(
    name: str, budget: dict[str, int], *, steps: int, batch: int, lr: float, width: int,
    depth: int, seed: int, increment: bool, ring: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The ``model: forecast`` config of system ``name`` under the shared budget: the MLP
    ``width`` x ``depth``, or with ``ring`` a RingField of those options on a system whose
    state lies on a ring; ``options``: the simulator's own (lag, noise, ...)."""
    data = {"system": name, "pairs": budget["pairs"], "chains": budget["chains"], "seed": seed,
            **(options or {})}  # fmt: skip
    net: dict[str, Any] = {"width": width, "depth": depth}
    if ring is not None and SYSTEMS[name]().ring_layout is not None:
        net = {"class": "RingField", **ring}
    return {"model": "forecast", "data": data, "steps": steps, "batch_size": batch, "lr": lr,
            "seed": seed, "net": net, "increment": increment}  # fmt: skip


def _bench_system(
    name: str, config: dict[str, Any], budget: dict[str, int], out: Path, *, baseline: bool,
    lags: int, sde_steps: int, nfe: int, seed: int,
) -> dict[str, Any]:  # fmt: skip
    """Train system ``name``'s drift (``out/NAME``) and flow baseline (``out/NAME-flow``) on
    one set of pairs; score them."""
    start = time.perf_counter()
    pairs = forecast_pairs(config)
    simulated = time.perf_counter()
    train_forecast(config, out / name, progress=False, overwrite=True, pairs=pairs)
    trained = time.perf_counter()
    flow = train_flow_baseline(config, pairs, out / f"{name}-flow") if baseline else None
    flow_trained = time.perf_counter()
    run = load_forecast_run(out / name)
    scores = score_rollouts(run, budget["states"], budget["members"], lags, sde_steps=sde_steps,
                            nfe=nfe, flow=flow, seed=seed + 1)  # fmt: skip
    return {
        "system": repr(run.system), "lag": run.system.lag if run.system else None, **budget,
        "simulate_seconds": simulated - start, "train_seconds": trained - simulated,
        "flow_train_seconds": flow_trained - trained,
        "eval_seconds": time.perf_counter() - flow_trained, **scores,
    }  # fmt: skip


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
    nfe: int = 10,
    baseline: bool = True,
    increment: bool = False,
    budgets: dict[str, dict[str, int]] | None = None,
    ring: dict[str, Any] | None = None,
    system_options: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Forecasts of each of ``systems`` (module docstring; docs/benchmarks.md "Forecasting"):
    the drift (the increment form with ``increment``) and, with ``baseline``, the conditional
    flow, trained ``steps`` steps of batch ``batch`` at lr ``lr`` (MLP ``width`` x ``depth``,
    or with ``ring`` (a dict of its options, e.g. ``{"width": 32}``) a
    :class:`~interpolants.nn.RingField` for the systems on a ring; seed ``seed``) on the
    system's pairs, scored at 1 lag and over a ``lags``-lag rollout
    (:func:`ensembles`: ``sde_steps`` and ``nfe`` evaluations a lag). ``budgets`` overrides
    entries of :data:`SYSTEM_BUDGETS` (pairs, chains, states, members) by system, and
    ``system_options`` the simulators' own options by system (their defaults otherwise; e.g.
    ``{"lorenz63": {"lag": 0.05}}``). The runs go to ``out/SYSTEM`` and ``out/SYSTEM-flow``."""
    systems = (systems,) if isinstance(systems, str) else tuple(systems)
    budgets = budgets or {}
    system_options = system_options or {}
    unknown = sorted(set(systems) - set(SYSTEMS)) or sorted(set(budgets) - set(systems))
    if unknown:
        raise ValueError(f"unknown system {unknown[0]!r}; known: {', '.join(sorted(SYSTEMS))}")
    for name, given in budgets.items():
        extra = sorted(set(given) - set(SYSTEM_BUDGETS[name]))
        if extra:
            raise ValueError(f"budgets: {name}: unknown key {extra[0]!r}; known: pairs, chains, "
                             "states, members")  # fmt: skip
    _check_system_options(system_options, systems)
    if not isinstance(nfe, int) or isinstance(nfe, bool) or nfe < 2:
        raise ValueError(f"nfe must be an integer >= 2, got {nfe!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    for name in systems:
        budget = {**SYSTEM_BUDGETS[name], **budgets.get(name, {})}
        config = _config(name, budget, steps=steps, batch=batch, lr=lr, width=width,
                         depth=depth, seed=seed, increment=increment, ring=ring,
                         options=system_options.get(name))  # fmt: skip
        results[name] = _bench_system(name, config, budget, out, baseline=baseline, lags=lags,
                                      sde_steps=sde_steps, nfe=nfe, seed=seed)  # fmt: skip
    return {
        "settings": {"steps": steps, "batch": batch, "lr": lr, "width": width, "depth": depth,
                     "seed": seed, "lags": lags, "sde_steps": sde_steps, "nfe": nfe,
                     "baseline": baseline, "increment": increment, "ring": ring,
                     "system_options": system_options,
                     "ensembles": {k: list(v) for k, v in ensembles(nfe, sde_steps).items()}},
        "systems": results,
    }  # fmt: skip


def _one_lag_table(name: str, r: dict[str, Any]) -> list[str]:
    floor_v = r["one_lag"]["true_sde"]["energy_distance_v"]
    slow = "crps_slow" in r["one_lag"]["true_sde"]
    lines = [
        f"{name}: {r['system']}, {r['pairs']} pairs, {r['states']} states x "
        f"{r['members']} members, train {r['train_seconds']:.0f} s (flow "
        f"{r['flow_train_seconds']:.0f} s), eval {r['eval_seconds']:.0f} s",
        f"  {'1 lag':>18} {'CRPS':>16} {'energy':>8} {'spr/skill':>9} {'E-dist':>18} "
        f"{'V/floor':>7}" + ("  CRPS slow" if slow else ""),
    ]
    for ens, s in r["one_lag"].items():
        lines.append(
            f"  {ens:>18} {s['crps']:8.4f}+-{s['crps_se']:.4f} {s['energy_score']:8.4f} "
            f"{s['spread_skill']:9.3f} {s['energy_distance']:9.4f}+-{s['energy_distance_se']:.4f}"
            f" {s['energy_distance_v'] / floor_v:7.2f}"
            + (f" {s['crps_slow']:10.4f}" if slow else "")
        )
    return lines  # fmt: skip


def _check_system_options(options: dict[str, Any], systems: tuple[str, ...]) -> None:
    """A ValueError naming ``system_options`` when it names a system not benchmarked or
    options its simulator refuses (checked by building it, before any training)."""
    for name, given in options.items():
        if name not in systems:
            raise ValueError(f"system_options: {name!r} is not among systems {list(systems)}")
        reserved = sorted(set(given) & set(SYSTEM_KEYS))
        if reserved:
            raise ValueError(f"system_options: {name}: {reserved[0]!r} is set by the benchmark")
        try:
            SYSTEMS[name](**given)
        except (TypeError, ValueError) as err:
            raise ValueError(f"system_options: {name}: {err}") from None


def format_forecast(result: dict[str, Any]) -> str:
    """The benchmark as short tables: one lag per system (true_sde's energy distance is the
    floor: 0 in expectation, its scatter the noise; V/floor: the V-statistic over the second
    true ensemble's), then CRPS, spread-skill and energy distance by lag."""
    s = result["settings"]
    net = f"MLP {s['width']}x{s['depth']}"
    if s.get("ring") is not None:
        net += f" (RingField {s['ring']} on ring systems)"
    lines = [f"forecast drift: {s['steps']} steps, batch {s['batch']}, lr {s['lr']}, {net}; "
             f"ensembles (model, diffusion, solver, steps): "
             f"{s['ensembles']}"]  # fmt: skip
    rows = (("CRPS    ", "crps", "{:.3f}"), ("spr/skl ", "spread_skill", "{:.2f}"),
            ("E-dist  ", "energy_distance", "{:.3f}"))  # fmt: skip
    for name, r in result["systems"].items():
        lines += _one_lag_table(name, r)
        lines.append(f"  rollout by lag 1..{len(r['rollout']['true_sde']['crps'])}:")
        for label, key, fmt in rows:
            for ens, v in r["rollout"].items():
                lines.append(f"    {ens:>18} {label} " + " ".join(fmt.format(x) for x in v[key]))
    return "\n".join(lines)
