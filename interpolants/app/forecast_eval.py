"""The evaluation of a forecast run and the ``forecast`` command: ensembles and rollouts of a
trained run from current states, scored against the truth where the run knows its system.

The evaluation (``metrics.json``) draws ``eval.states`` held-out current states (fresh states
of a simulated system, or the held-out pairs of the user's files), forecasts ``eval.members``
members one lag ahead with the interpolant's diffusion and the Foellmer one, and scores them
against the true next state: CRPS, energy score, spread-skill ratio and rank histogram, beside
a climatological ensemble (random states) and, for a system, the true SDE's own ensemble, with
the energy distance of each forecast ensemble to the true one beside its floor (two true
ensembles). A system's run adds a rollout of ``eval.lags`` lags (Foellmer) scored lag by lag
against a true trajectory from each state.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import checkpoints
from .. import data as datasets
from ..data.dynamics import StochasticDynamics
from ..metrics import crps, energy_distance, energy_score, rank_histogram, spread_skill
from ..run_folder import METRICS, METRICS_LOG, write_atomic
from .forecast_runs import (
    HELDOUT_PAIRS,
    ForecastRun,
    forecast_eval_settings,
    load_forecast_run,
    parse_diffusion,
)

__all__ = [
    "OUT_FORMATS",
    "climatology",
    "energy_distances",
    "evaluate_forecast_run",
    "format_forecast_metrics",
    "fresh_states",
    "run_forecast",
    "score_ensemble",
]

OUT_FORMATS = (".npz", ".safetensors")
"""The files ``forecast --out`` writes."""


def fresh_states(system: StochasticDynamics, n: int, generator: torch.Generator) -> Tensor:
    """n independent states of the system on its attractor (one path each, after its burn-in)."""
    return system.advance(system.initial(n, generator), system.burn_in, generator)


def score_ensemble(ensemble: Tensor, truth: Tensor, generator: torch.Generator) -> dict[str, Any]:
    """CRPS (fair, mean over states and entries), energy score (over each state's event, mean
    over states), spread-skill ratio and rank histogram of ``ensemble`` (members, rows, *event)
    against ``truth`` (rows, *event)."""
    dims = truth.ndim - 1
    return {
        "crps": float(crps(ensemble, truth)),
        "energy_score": float(energy_score(ensemble, truth, dims=dims)),
        "spread_skill": spread_skill(ensemble, truth),
        "rank_histogram": rank_histogram(ensemble, truth, generator).tolist(),
    }


def energy_distances(ensembles: Tensor, reference: Tensor, unbiased: bool = True) -> Tensor:
    """The energy distance of each state's ensemble (members, rows, *event) to the
    reference's, one per state (rows,); ``unbiased=False``: the V-statistic
    (:func:`~interpolants.metrics.energy_distance`)."""
    rows = ensembles.shape[1]
    return torch.tensor([energy_distance(ensembles[:, i], reference[:, i], unbiased)
                         for i in range(rows)], dtype=torch.float64)  # fmt: skip


def climatology(pool: Tensor, members: int, rows: int, generator: torch.Generator) -> Tensor:
    """A climatological ensemble: ``members`` random rows of ``pool``, the same for every
    state, (members, rows, *event)."""
    pick = torch.randperm(len(pool), generator=generator)[:members]
    chosen = pool[pick]
    return chosen[:, None].expand(len(chosen), rows, *pool.shape[1:])


def _test_states(
    folder: Path, run: ForecastRun, ev: dict[str, Any], gen: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    """(current states, their true next states, a pool of climatological states), float64."""
    n = ev["states"]
    if run.system is not None:
        states = fresh_states(run.system, n, gen)
        return (
            states,
            run.system.advance(states, generator=gen),
            fresh_states(run.system, ev["members"], gen),
        )
    if not (folder / HELDOUT_PAIRS).exists():
        raise ValueError(
            f"{folder} has no {HELDOUT_PAIRS} (the held-out pairs, written when training "
            "ends): finish the run (--resume) to evaluate it"
        )
    held = checkpoints.load(folder / HELDOUT_PAIRS, kind="data")
    x_now, x_next = held["x_now"].double(), held["x_next"].double()
    if len(x_now) < 4:
        raise ValueError(f"{folder}: {len(x_now)} held-out pairs are too few to evaluate on")
    half = len(x_now) // 2
    k = min(n, half)
    return x_now[:k], x_next[:k], x_next[half:]  # climatology from the other held-out rows


def evaluate_forecast_run(folder: str | Path, **overrides: Any) -> dict[str, Any]:
    """Score a trained forecast run (see the module's description); writes ``metrics.json``
    and the PNGs (``rank_histogram.png``; a system's run also ``forecast_fans.png`` and
    ``lag_scores.png``) into the run folder. ``overrides``: settings of ``eval``."""
    folder = Path(folder)
    run = load_forecast_run(folder)
    ev = forecast_eval_settings({**(run.record.get("eval") or {}), **overrides}, "evaluate")
    gen = torch.Generator().manual_seed(ev["seed"])
    states, truth, pool = _test_states(folder, run, ev, gen)
    m, options = ev["members"], {"steps": ev["steps"], "solver": ev["solver"], "generator": gen}
    spec = run.record.get("data") or {}
    result: dict[str, Any] = {
        "data": spec.get("system", "held-out pairs"), "states": len(states), "members": m,
        "steps": ev["steps"], "solver": ev["solver"],
        "normalised": run.normaliser.mean is not None, "one_lag": {},
    }  # fmt: skip
    ensembles = {}
    for name in ("interpolant", "follmer"):
        ens = run.rollout(states, 1, m, diffusion=name, **options)[0].double()
        ensembles[name] = ens
        result["one_lag"][name] = score_ensemble(ens, truth, gen)
    clim = climatology(pool, m, len(states), gen)
    result["one_lag"]["climatology"] = score_ensemble(clim, truth, gen)
    if run.system is not None:
        true = run.system.ensemble(states, m, gen)
        result["one_lag"]["true_sde"] = score_ensemble(true, truth, gen)
        again = run.system.ensemble(states, m, gen)
        for name, ens in ensembles.items():
            result["one_lag"][name]["energy_distance"] = float(energy_distances(ens, true).mean())
        result["energy_distance_floor"] = float(energy_distances(again, true).mean())
        result |= _rollout_scores(run, states, ev, gen)
    plots = _evaluation_plots(folder, result, run, states)
    result["plots"] = [str(p) for p in plots]
    write_atomic(folder / METRICS, json.dumps(result, indent=2))
    return result


def _rollout_scores(
    run: ForecastRun, states: Tensor, ev: dict[str, Any], gen: torch.Generator
) -> dict[str, Any]:
    """CRPS and spread-skill by lag of a Foellmer rollout from ``states`` against a true
    trajectory from each, beside the CRPS of a climatological ensemble and of the true SDE's
    own ensemble of paths (the best attainable)."""
    assert run.system is not None
    lags, m = ev["lags"], ev["members"]
    paths = run.rollout(states, lags, m, diffusion="follmer", steps=ev["steps"],
                        solver=ev["solver"], generator=gen).double()  # fmt: skip
    traj = run.system.trajectory(states, lags, gen)[1:]
    clim = climatology(fresh_states(run.system, m, gen), m, len(states), gen)
    true = run.system.ensemble_paths(states, m, lags, gen)
    return {
        "rollout": {
            "diffusion": "follmer",
            "lags": lags,
            "crps": [float(crps(paths[k], traj[k])) for k in range(lags)],
            "spread_skill": [spread_skill(paths[k], traj[k]) for k in range(lags)],
            "crps_climatology": [float(crps(clim, traj[k])) for k in range(lags)],
            "crps_true_sde": [float(crps(true[k], traj[k])) for k in range(lags)],
        },
        "_paths": paths,
        "_trajectory": traj,
    }


def _evaluation_plots(
    folder: Path, result: dict[str, Any], run: ForecastRun, states: Tensor
) -> list[Path]:
    from .forecast_plots import forecast_fans, lag_scores, rank_histograms
    from .plots import loss_plot

    plots = []
    loss = loss_plot(folder / METRICS_LOG, folder / "loss.png")
    if loss is not None:
        plots.append(loss)
    one = result["one_lag"]
    names = [n for n in ("interpolant", "follmer", "true_sde") if n in one]
    hists = {f"{n} (1 lag)": one[n]["rank_histogram"] for n in names}
    plots.append(rank_histograms(hists, folder / "rank_histogram.png"))
    paths, traj = result.pop("_paths", None), result.pop("_trajectory", None)
    if paths is not None:
        labels = _coordinate_labels(run)
        plots.append(forecast_fans(paths, traj, states, folder / "forecast_fans.png",
                                   labels=labels))  # fmt: skip
        roll = result["rollout"]
        plots.append(lag_scores(roll["crps"], roll["spread_skill"], folder / "lag_scores.png",
                                references={"climatology": roll["crps_climatology"],
                                            "true SDE": roll["crps_true_sde"]}))  # fmt: skip
    return plots


def _coordinate_labels(run: ForecastRun) -> list[str] | None:
    if run.system is not None and run.system.dim == 3:
        return ["x", "y", "z"]
    return None


def format_forecast_metrics(result: dict[str, Any]) -> str:
    """The evaluation as a short table (what ``train`` and ``evaluate`` print)."""
    lines = [f"forecasts of {result['states']} states ({result['data']}), {result['members']} "
             f"members, {result['steps']} {result['solver']} steps"]  # fmt: skip
    lines.append(f"{'1 lag':>14} {'CRPS':>8} {'energy':>8} {'spread/skill':>12} {'E-dist':>8}")
    for name, s in result["one_lag"].items():
        ed = s.get("energy_distance")
        dist = "" if ed is None else f"{ed:8.4f}"
        lines.append(f"{name:>14} {s['crps']:8.4f} {s['energy_score']:8.4f} "
                     f"{s['spread_skill']:12.3f} {dist:>8}")  # fmt: skip
    if "energy_distance_floor" in result:
        lines.append(f"energy distance floor (two true ensembles): "
                     f"{result['energy_distance_floor']:.4f}")  # fmt: skip
    roll = result.get("rollout")
    if roll:
        lines.append(f"rollout ({roll['diffusion']}) by lag 1..{roll['lags']}:")
        lines.append("  CRPS         " + " ".join(f"{v:.3f}" for v in roll["crps"]))
        lines.append("  true SDE     " + " ".join(f"{v:.3f}" for v in roll["crps_true_sde"]))
        lines.append("  climatology  " + " ".join(f"{v:.3f}" for v in roll["crps_climatology"]))
        lines.append("  spread/skill " + " ".join(f"{v:.2f}" for v in roll["spread_skill"]))
    lines.append("plots: " + ", ".join(result.get("plots", [])))
    return "\n".join(lines)


def _read_states(path: str, run: ForecastRun) -> Tensor:
    """The current states of ``--cond FILE``, checked against the run's events."""
    try:
        x, _ = datasets.read_file(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"--cond: file {path} does not exist") from None
    except ValueError as err:
        raise ValueError(f"--cond: {err}") from None
    event = run.event_shape
    size = math.prod(event)
    if x.ndim == 1 and x.numel() == size and size > 1:
        x = x[None]  # a single state
    if tuple(x.shape[1:]) != event:
        if x.ndim >= 2 and math.prod(x.shape[1:]) == size:
            return x.reshape(len(x), *event)
        raise ValueError(
            f"--cond: {path} holds rows of shape {tuple(x.shape[1:])}; this model forecasts "
            f"states of shape {event} (one state per row)"
        )
    return x


def _check_out(out: Path, overwrite: bool) -> None:
    if out.suffix.lower() not in OUT_FORMATS:
        raise ValueError(f"--out: {out} must end in {' or '.join(OUT_FORMATS)}")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"--out: folder {out.parent} does not exist")
    if out.exists() and not overwrite:
        raise ValueError(f"--out: {out} exists; pass --overwrite to replace it, or another --out")


def _write(out: Path, tensors: dict[str, Tensor]) -> None:
    """The tensors into ``out`` (.npz or .safetensors), atomically."""
    tmp = out.with_name(f".{out.name}.tmp")
    if out.suffix.lower() == ".npz":
        with open(tmp, "wb") as f:
            np.savez(f, **{k: v.detach().cpu().numpy() for k, v in tensors.items()})
    else:
        from safetensors.torch import save_file

        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
    tmp.replace(out)


def run_forecast(
    folder: str | Path,
    cond: str | None = None,
    members: int = 50,
    lags: int = 1,
    diffusion: Any = "follmer",
    out: str | Path | None = None,
    *,
    rows: int = 10,
    seed: int = 0,
    steps: int = 100,
    solver: str = "euler",
    overwrite: bool = False,
) -> dict[str, Any]:
    """Ensembles (``lags`` = 1) or rollouts of a trained forecast run from the current states
    in ``cond`` (a .npy/.npz/.pt/.csv file), or without it from ``rows`` fresh states of the
    run's system, written to ``out`` (default DIR/forecast.npz; .npz or .safetensors) as
    ``forecast`` (lags, members, rows, *event) beside ``cond`` and, for a system, ``truth``
    (lags, rows, *event: a true trajectory from each state; then also PNGs beside ``out`` and
    the CRPS and spread-skill ratio by lag). Returns a summary."""
    for key, value in (("members", members), ("lags", lags), ("rows", rows), ("steps", steps)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"--{key}: expected a positive integer, got {value!r}")
    if solver not in ("euler", "heun"):
        raise ValueError(f"--solver: expected euler or heun, got {solver!r}")
    folder = Path(folder)
    run = load_forecast_run(folder)
    diffusion = parse_diffusion(diffusion)
    run.check_diffusion(diffusion)
    path = Path(out) if out is not None else folder / "forecast.npz"
    _check_out(path, overwrite)
    gen = torch.Generator().manual_seed(seed)
    if cond is not None:
        states = _read_states(cond, run)
    elif run.system is None:
        raise ValueError(
            "--cond is required: this run was trained on your pairs (there is no system to "
            "draw current states from)"
        )
    else:
        states = fresh_states(run.system, rows, gen).float()
    paths = run.rollout(states, lags, members, diffusion, steps=steps, solver=solver,
                        generator=gen)  # fmt: skip
    tensors = {"forecast": paths, "cond": states.float()}
    summary: dict[str, Any] = {"out": str(path), "shape": list(paths.shape), "plots": []}
    if run.system is not None:
        traj = run.system.trajectory(states.double(), lags, gen)[1:]
        tensors["truth"] = traj.float()
        summary |= _forecast_scores(paths.double(), traj, states, path, run, gen)
    _write(path, tensors)
    return summary


def _forecast_scores(
    paths: Tensor, traj: Tensor, states: Tensor, out: Path, run: ForecastRun,
    gen: torch.Generator,
) -> dict[str, Any]:  # fmt: skip
    """The forecast command's scores and plots against the true trajectories."""
    from .forecast_plots import forecast_fans, lag_scores, rank_histograms

    stem = out.with_suffix("")
    plots = [forecast_fans(paths, traj, states.double(), f"{stem}_fans.png",
                           labels=_coordinate_labels(run))]  # fmt: skip
    if paths.shape[1] < 2:
        return {"plots": [str(p) for p in plots]}
    scores = {
        "crps": [float(crps(paths[k], traj[k])) for k in range(len(paths))],
        "spread_skill": [spread_skill(paths[k], traj[k]) for k in range(len(paths))],
    }
    hist = rank_histogram(paths[0], traj[0], gen).tolist()
    plots.append(rank_histograms({"lag 1": hist}, f"{stem}_rank_histogram.png"))
    plots.append(lag_scores(scores["crps"], scores["spread_skill"], f"{stem}_lag_scores.png"))
    return {**scores, "plots": [str(p) for p in plots]}
