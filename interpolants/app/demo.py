"""The demos behind ``interpolants demo`` (and ``make demo``).

The main one, :func:`run_training_demo`, is the main job on its embedded default: train the
velocity of a linear interpolant from N(0, I) to the checkerboard (:data:`DEMO_CONFIG`, a few
minutes on 2 cores), then evaluate it against held-out data: test NLL against the true value
log 32, sliced W2 and MMD^2 beside their noise floors, and the PNGs (loss curve, samples against
data, density heat map).

The exact-field demo (``--exact``), :func:`run_exact_demo`: N(0, I) to a 2D Gaussian mixture
with the closed-form velocity and score. Everything is known exactly there (the fields, the
target density), so the printed figures are the errors of the solvers and estimators
themselves: sample moments and mode weights against the truth, ODE log-likelihoods against
the analytic log density, the Hutchinson estimate's bias in standard errors, and the cost of
each solver in field evaluations.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch

from ..distributions import MixtureOfGaussians
from ..fields import GaussianMixtureFields
from ..generative import GenerativeModel
from ..interpolant import Interpolant
from ..run_folder import CHECKPOINT, METRICS, RunFolder
from .plots import samples_over_density

__all__ = ["DEMO_CONFIG", "demo_problem", "run_exact_demo", "run_training_demo"]

DEMO_CONFIG: dict[str, Any] = {
    "data": "checkerboard",
    "interpolant": {"path": "linear", "gamma": "zero"},
    "fields": ["velocity"],
    "steps": 2000,
    "batch_size": 2048,
    "lr": 0.004,
    "schedule": "constant",
    "time_distribution": "late",
    "warmup": 100,
    "ema": 0.999,
    "net": {"width": 256, "depth": 4},
    "checkpoint_every": 500,
    "log_every": 50,
    "eval": {"n": 20000, "steps": 100, "solver": "heun", "nll_points": 2000},
}
"""The embedded default of ``interpolants demo``: a :mod:`.training_runs` config."""


#: what a folder that holds a run asks of the demo (it has no --resume)
REPEAT_HINT = (
    "pass --overwrite (overwrite=True) to run the demo there again, or --out another folder"
)


def run_training_demo(
    out: str | Path = "runs/demo",
    steps: int | None = None,
    seed: int = 0,
    progress: bool = True,
    evaluation: dict[str, Any] | None = None,
    *,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train :data:`DEMO_CONFIG` (with ``steps`` training steps if given) into ``out``, then
    evaluate it (:func:`~interpolants.app.training_runs.evaluate_run`, ``evaluation`` overriding the
    config's ``eval`` options); returns the metrics with the training seconds. A folder that
    already holds a run is refused unless ``overwrite``."""
    from .training_runs import evaluate_run, train_from_config

    config = {**DEMO_CONFIG, "seed": seed}
    if steps is not None:
        config["steps"] = steps
    RunFolder(out, overwrite=overwrite, hint=REPEAT_HINT)  # a used folder: the demo's options
    start = time.perf_counter()
    train_from_config(config, out, progress=progress, overwrite=overwrite)
    train_seconds = time.perf_counter() - start
    metrics = evaluate_run(out, progress=progress, **(evaluation or {}))
    return {"train_seconds": train_seconds, "train_steps": config["steps"], **metrics}


def format_training_demo(metrics: dict[str, Any], out: str | Path) -> str:
    """What the demo printed: the figures beside the values they are judged against."""
    return "\n".join(
        [
            f"checkerboard: N(0, I) -> checkerboard, linear interpolant, {metrics['train_steps']} "
            f"training steps in {metrics['train_seconds']:.0f} s",
            f"test NLL      {metrics['test_nll']:.4f} +/- {metrics['test_nll_stderr']:.4f} nats "
            f"(true {metrics['true_nll']:.4f}, gap {metrics['nll_gap']:.4f}; "
            f"{metrics['solver']} {metrics['steps']} steps)",
            f"sliced W2     {metrics['sliced_w2']:.4f} "
            f"(noise floor {metrics['sliced_w2_floor']:.4f}, "
            f"{metrics['sliced_w2'] / metrics['sliced_w2_floor']:.2f}x)",
            f"MMD^2 (V)     {metrics['mmd2']:.2e} (noise floor {metrics['mmd2_floor']:.2e}, "
            f"{metrics['mmd2'] / metrics['mmd2_floor']:.2f}x)",
            "plots: " + ", ".join(metrics["plots"]),
            f"metrics: {out}/metrics.json, checkpoint: {out}/{CHECKPOINT}",
        ]
    )


def demo_problem(
    dtype: torch.dtype = torch.float32,
) -> tuple[GenerativeModel, MixtureOfGaussians, GaussianMixtureFields]:
    """Eight unequal Gaussians on a ring of radius 4 (std 0.4), linear interpolant, N(0, I) base."""
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    means = 4 * torch.stack([angles.cos(), angles.sin()], 1)
    weights = torch.arange(1, 9, dtype=torch.float64)
    target = MixtureOfGaussians(
        means.to(dtype), torch.full((8,), 0.4, dtype=dtype), weights.to(dtype)
    )
    base = MixtureOfGaussians(torch.zeros(1, 2, dtype=dtype), torch.ones(1, 2, dtype=dtype))
    interpolant = Interpolant("linear")
    fields = GaussianMixtureFields(interpolant, base, target)
    model = GenerativeModel(interpolant, fields.velocity, score=fields.score, base=base)
    return model, target, fields


def _mode_weight_error(x: torch.Tensor, target: MixtureOfGaussians) -> float:
    """Largest |fraction of samples most likely under component k - w_k|."""
    k = target.component_log_prob(x).argmax(1)
    freq = torch.bincount(k, minlength=len(target.weights)).to(x.dtype) / len(x)
    return float((freq - target.weights).abs().max())


def _moment_errors(x: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
    return {
        "mean_error": float((x.mean(0) - ref.mean(0)).norm()),
        "cov_error": float((torch.cov(x.T) - torch.cov(ref.T)).norm()),
    }


def run_exact_demo(
    out: str | Path = "runs/demo-exact",
    n: int = 10_000,
    seed: int = 0,
    steps: int = 100,
    *,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Sample, score and plot the exact transport; write metrics.json and samples.png to ``out``
    (a folder that already holds a run is refused unless ``overwrite``)."""
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    folder = RunFolder(out, overwrite=overwrite, hint=REPEAT_HINT)
    with folder.running():
        folder.accept()
        metrics = _exact_demo(folder.file("samples.png").parent, n, seed, steps)
        folder.write_json(METRICS, metrics)
    return metrics


def _exact_demo(out: Path, n: int, seed: int, steps: int) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(seed)
    model, target, _ = demo_problem()
    truth = target.sample(n, gen)
    floor = _moment_errors(target.sample(n, gen), truth)
    metrics: dict[str, Any] = {"n": n, "seed": seed, "noise_floor": floor, "runs": {}}
    panels = {"exact samples": truth}
    runs = [
        ("ode heun", dict(solver="heun", steps=steps)),
        ("ode rk4", dict(solver="rk4", steps=max(1, steps // 4))),
        ("ode dopri5", dict(solver="dopri5", atol=1e-5, rtol=1e-5)),
        ("sde heun eps=1", dict(solver="heun", steps=steps, diffusion=1.0)),
    ]
    for name, kw in runs:
        start = time.perf_counter()
        sol = model.sample(n, generator=gen, return_info=True, **kw)
        seconds = time.perf_counter() - start
        metrics["runs"][name] = {
            "nfe": sol.nfe,
            "seconds": round(seconds, 3),
            "mode_weight_error": _mode_weight_error(sol.x, target),
            **_moment_errors(sol.x, truth),
        }
        if name in ("ode heun", "sde heun eps=1"):
            panels[name] = sol.x
    test = truth[:2000].double()
    model64, target64, _ = demo_problem(torch.float64)
    exact = model64.log_prob(test, divergence="exact", steps=steps)
    hutch = model64.log_prob(test, divergence="hutchinson", steps=steps, generator=gen)
    true_lp = target64.log_prob(test)
    diff = hutch - true_lp
    metrics["likelihood"] = {
        "exact_divergence_max_abs_error": float((exact - true_lp).abs().max()),
        "model_nll": float(-exact.mean()),
        "true_nll": float(-true_lp.mean()),
        "hutchinson_bias": float(diff.mean()),
        "hutchinson_bias_stderr": float(diff.std() / math.sqrt(len(diff))),
    }
    png = samples_over_density(panels, out / "samples.png", log_prob=target64.log_prob)
    metrics["plots"] = [str(png)]
    return metrics


def format_demo(metrics: dict[str, Any]) -> str:
    """A short table of the demo's figures."""
    lines = [
        f"exact transport N(0, I) -> 8-Gaussian ring, n = {metrics['n']}, seed = {metrics['seed']}",
        f"{'run':<16}{'NFE':>6}{'seconds':>9}{'mean err':>10}{'cov err':>9}{'mode w err':>12}",
    ]
    floor = metrics["noise_floor"]
    lines.append(
        f"{'noise floor':<16}{'':>6}{'':>9}{floor['mean_error']:>10.4f}{floor['cov_error']:>9.4f}"
    )
    for name, r in metrics["runs"].items():
        lines.append(
            f"{name:<16}{r['nfe']:>6}{r['seconds']:>9.2f}{r['mean_error']:>10.4f}"
            f"{r['cov_error']:>9.4f}{r['mode_weight_error']:>12.4f}"
        )
    lk = metrics["likelihood"]
    lines += [
        "log-likelihood (exact divergence): max |error| "
        f"{lk['exact_divergence_max_abs_error']:.2e} nats; "
        f"NLL {lk['model_nll']:.4f} vs true {lk['true_nll']:.4f}",
        f"Hutchinson estimator bias: {lk['hutchinson_bias']:+.4f} "
        f"+/- {lk['hutchinson_bias_stderr']:.4f} nats",
        "plots: " + ", ".join(metrics["plots"]),
    ]
    return "\n".join(lines)
