r"""``interpolants sample-target NAME --method M``: one sampler run on a target, on disk.

:func:`run_sample_target` builds the target, runs :func:`~interpolants.sample` (with a progress bar
where the method has one), and writes into its output folder

- ``metrics.json``: ``SampleResult.to_dict()`` plus the target, method, seed, options, wall
  seconds, the log Z error e = log Z_hat - log Z and z = e / se(log Z_hat) where log Z is
  known, the modes covered for Gaussian mixtures and the observables <|m|>, chi for phi^4;
- ``samples.pt``: the samples and log weights;
- ``summary.csv``: ``SampleResult.summary()`` (mean, sd, hdi_3%, hdi_97%, mcse_mean, mcse_sd,
  ess_bulk, ess_tail, r_hat per coordinate, rows named by the target's coordinate names);
- for a method that trains (``nets``, through its ``log_dir`` option): ``metrics.jsonl``
  (loss, ESS and log Z per logging interval) and ``checkpoint.safetensors``
  (``--option resume=true`` continues from it);
- the PNGs of :func:`~.sampler_plots.plot_result`.

The folder follows :mod:`interpolants.run_folder`: one that holds something is refused unless
the run resumes or overwrites it. When the sampler fails, ``error.json`` records the reason
(status "failed", or "interrupted" after Ctrl-C) beside any earlier results, which are left
as they were, and the error is raised again as a one-line ``ValueError``.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import math
import os
import tempfile
import textwrap
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from .. import targets as _targets
from ..run_folder import METRICS, RunFolder, file_mode, write_atomic
from ..samplers import METHODS, ConvergenceWarning, SampleResult, sample
from ..samplers.api import DISCRETE_METHODS, runner_for
from ..samplers.distributed import world
from ..train import init_distributed
from .sampler_plots import plot_result

__all__ = [
    "add_sample_target_parser",
    "format_metrics",
    "parse_options",
    "run_sample_target",
    "target_metrics",
]

DTYPES = {"float32": torch.float32, "float64": torch.float64}
SUMMARY = "summary.csv"  # SampleResult.summary(), one row per coordinate
TARGET_PREFIX = "target."  # --option target.L=16 goes to targets.get(name, L=16)


# --- options from the command line ------------------------------------------------------------


def _parse_value(text: str) -> Any:
    """A Python literal (int, float, bool, None, tuple, ...), a torch dtype name, else the text."""
    if text in DTYPES:
        return DTYPES[text]
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_options(items: list[str] | None) -> dict[str, Any]:
    """``["steps=100", "kernel=hmc", "dtype=float64"]`` -> ``{"steps": 100, ...}``.

    Values are read as Python literals where they parse as one (``100``, ``0.5``, ``None``,
    ``true``), ``float32``/``float64`` become torch dtypes, anything else stays a string.
    """
    options: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--option expects KEY=VALUE, got {item!r}")
        options[key.strip()] = _parse_value(value.strip())
    return options


def _jsonable(value: Any) -> Any:
    """A JSON-friendly copy of an option value (tensors and objects as short strings)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, torch.dtype):
        return str(value).removeprefix("torch.")
    if isinstance(value, torch.Tensor):
        return value.tolist() if value.numel() <= 16 else f"tensor{tuple(value.shape)}"
    return type(value).__name__


# --- metrics ----------------------------------------------------------------------------------


def _weighted_modes_covered(target: Any, result: SampleResult, min_fraction: float = 0.1) -> int:
    r"""Components k with n sum_{i -> k} W_i >= max(1, min_fraction w_k n), W the normalised
    weights (uniform for unweighted samples: then exactly ``GaussianMixture.modes_covered``)."""
    x = result.samples
    if result.log_weights is None:
        return target.modes_covered(x, min_fraction)
    w = torch.softmax(result.log_weights.detach().double().cpu().flatten(), 0)
    k = target.means.shape[0]
    mass = torch.zeros(k, dtype=torch.float64).index_add_(0, target.assign(x).cpu(), w)
    need = (min_fraction * target.weights.cpu().double()).clamp(min=1.0 / x.shape[0])
    return int((mass >= need).sum())


def target_metrics(target: Any, result: SampleResult) -> dict[str, Any]:
    r"""What the target lets us score: log Z error, mode coverage, observables.

    - log Z known: ``log_Z_true``, ``log_Z_error`` e = log Z_hat - log Z,
      ``log_Z_abs_error`` and ``log_Z_z`` = e / se(log Z_hat) (|z| > 3: the method misses
      log Z by more than its own error bar).
    - Gaussian mixtures: ``modes_covered`` of ``modes_total`` (weighted for AIS/SMC, see
      :func:`_weighted_modes_covered`; a tenth of a component's expected share counts).
    - phi^4 lattices: ``abs_magnetization`` <|m|> with ``abs_magnetization_stderr``, and
      ``susceptibility`` chi = V (<m^2> - <|m|>^2).
    - phi4_1d: ``positive_mode_weight`` P(mean phi > 0) with its standard error.
    """
    out: dict[str, Any] = {}
    truth = getattr(target, "log_Z", None)
    if truth is not None:
        out["log_Z_true"] = truth
        if result.log_Z is not None and math.isfinite(result.log_Z):
            err = result.log_Z - truth
            out["log_Z_error"] = err
            out["log_Z_abs_error"] = abs(err)
            se = result.log_Z_stderr
            if se is not None and math.isfinite(se) and se > 0:
                out["log_Z_z"] = err / se
    if isinstance(target, _targets.GaussianMixture):
        out["modes_covered"] = _weighted_modes_covered(target, result)
        out["modes_total"] = int(target.means.shape[0])
    if isinstance(target, _targets.Phi4):
        mean, se = result.expectation(lambda x: target.magnetization(x).abs())
        moments, _ = result.expectation(
            lambda x: torch.stack([target.magnetization(x).abs(), target.magnetization(x) ** 2], 1)
        )
        out["abs_magnetization"] = float(mean)
        out["abs_magnetization_stderr"] = float(se)
        out["susceptibility"] = float(target.dim * (moments[1] - moments[0] ** 2))
    if hasattr(target, "abs_magnetisation"):  # Ising and Potts
        out.update(_spin_metrics(target, result))
    if isinstance(target, _targets.Phi4Chain):
        mean, se = result.expectation(target.positive_mode)
        out["positive_mode_weight"] = float(mean)
        out["positive_mode_weight_stderr"] = float(se)
    return out


def _spin_metrics(target: Any, result: SampleResult) -> dict[str, Any]:
    """E|m| and the energy per site with their standard errors, chi = N (E m^2 - E|m|^2),
    and their z-scores against the target's references where it has them."""
    m = lambda x: target.magnetisation(x)  # noqa: E731
    (abs_m, sq), se = result.expectation(lambda x: torch.stack([m(x).abs(), m(x) ** 2], 1))
    energy, energy_se = result.expectation(target.energy_per_site)
    out = {"abs_magnetisation": float(abs_m), "abs_magnetisation_stderr": float(se[0]),
           "energy_per_site": float(energy), "energy_per_site_stderr": float(energy_se),
           "susceptibility": float(target.dim * (sq - abs_m**2))}  # fmt: skip
    refs = target.references
    for key in ("abs_magnetisation", "energy_per_site"):
        if key in refs:
            out[f"{key}_reference"] = refs[key]
            spread = math.hypot(out[f"{key}_stderr"], refs.get(f"{key}_stderr", 0.0))
            out[f"{key}_z"] = (out[key] - refs[key]) / spread if spread > 0 else math.nan
    if "susceptibility" in refs:
        out["susceptibility_reference"] = refs["susceptibility"]
    return out


# --- the run ----------------------------------------------------------------------------------


def _has_progress(runner: Any) -> bool:
    """Whether the method's runner takes a ``progress`` option."""
    return "progress" in inspect.signature(runner).parameters


def _one_line(err: BaseException, label: str) -> str:
    """The first line of an error, without a leading "label: ", typed unless a ValueError."""
    text = str(err).strip()
    line = text.splitlines()[0] if text else ""
    line = line.removeprefix(f"{label}: ")
    if not isinstance(err, ValueError):
        line = f"{type(err).__name__}: {line}" if line else type(err).__name__
    return line


def run_sample_target(
    name: str | _targets.Target,
    method: str,
    n: int = 1000,
    seed: int = 0,
    out: str | Path = "runs/sample-target",
    options: dict[str, Any] | None = None,
    *,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    r"""Sample the target ``name`` with ``method``; write metrics.json, samples.pt,
    summary.csv and PNGs.

    Arguments:
        name: a target name of :func:`interpolants.targets.names` (or ``gmm-d{d}-k{k}``), or
            a :class:`~interpolants.targets.Target` (a user's density).
        method: a key of :data:`~interpolants.samplers.METHODS` ("mala", "hmc", "ais", "smc",
            ...), or of ``DISCRETE_METHODS`` for a discrete target ("leaps", "metropolis",
            "swendsen-wang", ...).
        n: samples (walkers for AIS/SMC, pooled draws for MCMC).
        seed: seeds the run.
        out: the output folder (created).
        options: the method's options (see :func:`~interpolants.sample`); keys ``target.KEY`` go
            to the target's constructor instead (e.g. ``{"target.L": 16}`` for phi4).
        progress: show a progress bar where the method has one (unless ``options`` says).
        overwrite: replace the run that ``out`` holds (put back if this one fails); without
            it a folder that holds something is refused, unless ``options`` has
            ``resume=True`` (NETS: continue its training).

    Returns:
        The metrics written to ``out/metrics.json``: ``result.to_dict()``, ``target``,
        ``method``, ``seed``, ``options``, ``wall_seconds``, ``status``, ``plots`` and
        the entries of :func:`target_metrics`.

    Raises:
        ValueError: unknown target or method (the known ones are listed), bad options, or a
            target whose log_prob is not finite at the starting walkers (their indices are
            named) or has the wrong shape. A failed run writes error.json.

    Example:
        >>> m = run_sample_target("gmm40", "smc", n=1000, out="runs/gmm40-smc")
        >>> m["log_Z"], m["log_Z_stderr"], m["modes_covered"]
    """
    if not isinstance(method, str):
        raise ValueError(f"method must be a string, got {method!r}")
    options = dict(options or {})
    target_options = {
        k.removeprefix(TARGET_PREFIX): options.pop(k)
        for k in list(options)
        if k.startswith(TARGET_PREFIX)
    }
    if isinstance(name, str):
        target = _targets.get(name, **target_options)
    elif target_options:
        raise ValueError("target.* options apply to named targets only")
    else:
        target = name
    label = target.name if not isinstance(name, str) else name
    runner = runner_for(target, method)  # the discrete runner for a discrete target
    rank = world()[1]  # under torchrun every rank samples, rank 0 writes the run folder
    if progress and "progress" not in options and _has_progress(runner) and rank == 0:
        options["progress"] = True
    out = Path(out)
    folder = RunFolder(
        out, resume=bool(options.get("resume")), overwrite=overwrite, writer=rank == 0,
        hint="pass --overwrite (overwrite=True) to replace it or choose another --out; a NETS "
        "run continues its training with --option resume=true",
    )  # fmt: skip
    if "log_dir" in inspect.signature(runner).parameters:
        options.setdefault("log_dir", folder)  # nets, leaps: metrics.jsonl, checkpoints
    metrics: dict[str, Any] = {
        "target": label,
        "method": method,
        "n": n,
        "seed": seed,
        "options": _jsonable(
            {k: str(out) if v is folder else v for k, v in options.items() if k != "progress"}
        ),
        "target_options": _jsonable(target_options),
    }
    start = time.perf_counter()
    with folder.running():
        try:
            with warnings.catch_warnings():  # printed once, by format_metrics, and recorded
                warnings.simplefilter("ignore", ConvergenceWarning)
                result = sample(target, method, n=n, seed=seed, **options)
        except (ValueError, TypeError, RuntimeError) as err:
            raise ValueError(f"{label} ({method}): {_one_line(err, label)}") from err
        folder.accept()
        if not folder.writer:
            return metrics
        _write_results(folder, target, result, metrics, time.perf_counter() - start, label)
    return metrics


def _write_results(
    folder: RunFolder,
    target: Any,
    result: SampleResult,
    metrics: dict[str, Any],
    wall: float,
    label: str,
) -> None:
    """metrics.json, samples.pt and the plots of a finished run (``metrics`` is completed)."""
    out = folder.file(".").parent if folder.path is None else folder.path
    given = dict(metrics)
    metrics.clear()
    metrics.update({**result.to_dict(), **given, "status": "ok", "wall_seconds": wall})
    if result.warnings:  # failed convergence checks (MCMC): not "ok"
        metrics |= {"status": "warning", "warnings": list(result.warnings)}
    metrics |= target_metrics(target, result)
    samples = {
        "samples": result.samples.detach().cpu(),
        "log_weights": None if result.log_weights is None else result.log_weights.cpu(),
    }
    fd, tmp = tempfile.mkstemp(dir=out, prefix=".samples.", suffix=".tmp")
    os.close(fd)
    torch.save(samples, tmp)
    os.chmod(tmp, file_mode())
    os.replace(tmp, out / "samples.pt")
    folder.write_json(METRICS, metrics)  # the numbers are safe before the plots are tried
    try:
        summary = result.summary(target=target, show=False)
        write_atomic(out / SUMMARY, summary.csv())
    except Exception as err:  # nor must the table
        metrics["summary_error"] = _one_line(err, label)
    try:
        metrics["plots"] = [p.name for p in plot_result(result, target, out)]
    except Exception as err:  # a plot must not cost the run: record why it is missing
        metrics["plots"], metrics["plot_error"] = [], _one_line(err, label)
    folder.write_json(METRICS, metrics)


def format_metrics(metrics: dict[str, Any]) -> str:
    """A few readable lines: status and warnings, log Z with its error and the truth, ESS,
    R-hat, cost, coverage, plots."""
    lines = [f"{metrics.get('target')} with {metrics.get('method')}: {metrics.get('status')}"]
    if metrics.get("error"):
        lines.append(f"  error: {metrics['error']}")
    lines += [f"  warning: {w}" for w in metrics.get("warnings") or []]
    if metrics.get("log_Z") is not None:
        se = metrics.get("log_Z_stderr")
        text = f"  log Z = {metrics['log_Z']:.4f}" + (f" ± {se:.4f}" if se is not None else "")
        if "log_Z_true" in metrics:
            text += f"  (true {metrics['log_Z_true']:.4f}"
            if "log_Z_error" in metrics:
                text += f", error {metrics['log_Z_error']:+.4f}"
                if "log_Z_z" in metrics:
                    text += f", z = {metrics['log_Z_z']:+.2f}"
            text += ")"
        lines.append(text)
    if metrics.get("log_Z_upper") is not None:
        lines.append(
            f"  bounds (forward, reverse) = [{metrics['log_Z_lower']:.4f}, "
            f"{metrics['log_Z_upper']:.4f} ± {metrics.get('log_Z_upper_stderr') or 0:.4f}]"
            f"  ({metrics.get('reverse_source')} draws)"
        )
    for e in metrics.get("escalations") or []:
        upper = "none" if e.get("log_Z_upper") is None else f"{e['log_Z_upper']:.4f}"
        lines.append(
            f"  discarded after its bias check failed: kernel={e['kernel']}, "
            f"mass_matrix={e['mass_matrix']}, moves={e['moves']} gave log Z = "
            f"{e['log_Z']:.4f} (reverse bound {upper}); rerun with heavier moves"
        )
    for key, fmt in (
        ("ess", "ESS/N = {:.3f}"),
        ("acceptance_rate", "acceptance = {:.3f}"),
        ("rhat_max", "max split R-hat = {:.3f}"),
        ("rank_rhat_max", "max rank-normalised R-hat = {:.3f}"),
        ("ess_bulk_min", "min bulk ESS = {:.0f}"),
        ("ess_tail_min", "min tail ESS = {:.0f}"),
        ("iat_max", "max IAT = {:.1f}"),
        ("divergences", "divergences = {}"),
        ("levels", "levels = {:g}"),
        ("drift_gain", "drift gain = {:.3g} (ESS lost per level without the drift / with it)"),
    ):
        if metrics.get(key) is not None:
            lines.append("  " + fmt.format(metrics[key]))
    if "modes_covered" in metrics:
        lines.append(f"  modes covered = {metrics['modes_covered']} of {metrics['modes_total']}")
    if "abs_magnetization" in metrics:
        lines.append(
            f"  <|m|> = {metrics['abs_magnetization']:.4f} ± "
            f"{metrics['abs_magnetization_stderr']:.4f}, chi = {metrics['susceptibility']:.4f}"
        )
    if "evaluations" in metrics:
        lines.append(f"  target evaluations = {metrics['evaluations']}")
    if "wall_seconds" in metrics:
        lines.append(f"  wall seconds = {metrics['wall_seconds']:.2f}")
    if metrics.get("plots"):
        lines.append("  plots: " + ", ".join(metrics["plots"]))
    return "\n".join(lines)


# --- the command line -------------------------------------------------------------------------


def _command(args: argparse.Namespace) -> None:
    _, rank = init_distributed()  # under torchrun: the walkers' evaluations sharded
    out = args.out or f"runs/sample-target/{args.name}-{args.method}"
    metrics = run_sample_target(
        args.name,
        args.method,
        n=args.n,
        seed=args.seed,
        out=out,
        options=parse_options(args.option),
        progress=not args.quiet,
        overwrite=args.overwrite,
    )
    if rank == 0:
        print(format_metrics(metrics))
        print(f"metrics: {out}/metrics.json")


def method_options(method: str, discrete: bool = False) -> list[str]:
    """The options ``sample(target, method, **options)`` takes for ``method`` (on a
    discrete target when ``discrete``), with defaults: the runner's keyword arguments, and
    the fields of its method configuration (a runner's ``config_class``, e.g. NETSConfig) in
    place of ``config`` and ``**options``."""
    runner = (DISCRETE_METHODS if discrete else METHODS)[method]
    params = inspect.signature(runner).parameters
    fixed = ("target", "n", "seed", "init", "config")
    shown = []
    config_class = getattr(runner, "config_class", None)
    if config_class is not None:
        names = set(config_class.options(method))
        shown += [
            f"{f.name}={f.default!r}"
            for f in dataclasses.fields(config_class)
            if f.name in names and f.default is not dataclasses.MISSING
        ]
    for name, p in params.items():
        if name in fixed or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        default = "" if p.default is inspect.Parameter.empty else f"={p.default!r}"
        shown.append(f"{name}{default}")
    return ["init", *shown]


def _cli_options(method: str, discrete: bool = False) -> str:
    """:func:`method_options` as the command line takes them (its bar is --quiet's)."""
    return ", ".join(o for o in method_options(method, discrete) if not o.startswith("progress"))


def _epilog() -> str:
    lines = [
        "targets: " + ", ".join([*_targets.names(), "gmm-d{d}-k{k}"]),
        "  (target.KEY=VALUE options go to the target, e.g. --option target.L=16 for phi4)",
        "",
        "methods and their --option keys (KEY=VALUE, values read as Python literals):",
    ]
    for method in sorted(METHODS):
        lines.append(textwrap.fill(
            _cli_options(method), width=100, initial_indent=f"  {method}: ",
            subsequent_indent="      ",
        ))  # fmt: skip
    lines += ["", "methods of the discrete targets (ising, potts):"]
    for method in sorted(DISCRETE_METHODS):
        lines.append(textwrap.fill(
            _cli_options(method, discrete=True), width=100,
            initial_indent=f"  {method}: ", subsequent_indent="      ",
        ))  # fmt: skip
    lines += [
        "",
        "writes OUT/metrics.json (status ok or warning), samples.pt and PNGs, or error.json;",
        "a folder that already holds a run is refused unless --overwrite (or, for nets and",
        "leaps, --option resume=true).",
    ]
    return "\n".join(lines)


def add_sample_target_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``interpolants sample-target NAME --method M [...]`` on an argparse
    sub-parser collection; its handler is ``args.func``."""
    p = subparsers.add_parser(
        "sample-target",
        help="sample an unnormalised target: log Z, ESS, diagnostics, plots",
        description="Sample a named target with one method; print log Z with its error bar, "
        "the ESS and diagnostics, and write them to OUT/metrics.json.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", help="target name (listed below)")
    methods = sorted({*METHODS, *DISCRETE_METHODS})
    p.add_argument("--method", required=True, help="sampler: " + ", ".join(methods))
    p.add_argument(
        "-n", "--n", type=int, default=1000,
        help="samples: walkers for AIS/SMC/NETS/IS, pooled draws for MCMC (default 1000)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", help="output folder (default runs/sample-target/NAME-METHOD)")
    p.add_argument(
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="a method option (repeat it), e.g. steps=1000, kernel=hmc; see the list below",
    )
    p.add_argument(
        "--overwrite", action="store_true",
        help="replace the run in OUT (kept until this one succeeds)",
    )  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bar (shown by default)")
    p.set_defaults(func=_command)
    return p
