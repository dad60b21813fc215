r"""``interpolants free-energy TARGET_A TARGET_B --method bar``: Delta F = -log(Z_b / Z_a)
between two named targets (:func:`interpolants.free_energy`), printed as delta_F +- stderr and
written to OUT/metrics.json (a :mod:`interpolants.run_folder` folder: one that holds a run is
refused unless --overwrite; a failed run writes error.json).

Target options: ``--a-option KEY=VALUE`` for target a, ``--b-option`` for b, ``--target-option``
for both (e.g. ``phi4 phi4 --target-option L=8 --a-option lam=8 --b-option lam=7``); method
options: ``--option KEY=VALUE`` (the fields of :class:`FreeEnergyConfig` the method reads).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path
from typing import Any

from .. import targets as _targets
from ..run_folder import METRICS, RunFolder
from ..samplers.free_energy import METHODS, FreeEnergyConfig, free_energy
from .sample_target import parse_options

__all__ = ["add_free_energy_parser", "run_free_energy"]


def _jsonable_options(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, (int, float, str, bool, type(None))) else str(v)
            for k, v in options.items()}  # fmt: skip


def run_free_energy(
    name_a: str,
    name_b: str,
    method: str = "bar",
    n: int = 2000,
    seed: int = 0,
    out: str | Path = "runs/free-energy",
    options: dict[str, Any] | None = None,
    options_a: dict[str, Any] | None = None,
    options_b: dict[str, Any] | None = None,
    *,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Build the two named targets, estimate Delta F with ``method`` and write
    OUT/metrics.json: the result's numbers (:meth:`FreeEnergyResult.to_dict`), the targets,
    their options, the method options, seed, wall seconds and, where both log Z are known, the
    exact Delta F, the error and its z-score. Returns those metrics."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; methods: {', '.join(METHODS)}")
    options = dict(options or {})
    FreeEnergyConfig.check_names(options, method)
    target_a = _targets.get(name_a, **(options_a or {}))
    target_b = _targets.get(name_b, **(options_b or {}))
    folder = RunFolder(
        Path(out), overwrite=overwrite, hint="pass --overwrite or choose another --out"
    )
    metrics: dict[str, Any] = {
        "target_a": name_a,
        "target_b": name_b,
        "target_a_options": _jsonable_options(options_a or {}),
        "target_b_options": _jsonable_options(options_b or {}),
        "options": _jsonable_options(options),
        "seed": seed,
    }
    start = time.perf_counter()
    with folder.running():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = free_energy(target_a, target_b, method=method, n=n, seed=seed, **options)
        folder.accept()
        metrics |= result.to_dict()
        metrics["wall_seconds"] = time.perf_counter() - start
        if target_a.log_Z is not None and target_b.log_Z is not None:
            exact = target_a.log_Z - target_b.log_Z
            metrics["delta_F_exact"] = exact
            metrics["error"] = result.delta_F - exact
            if result.stderr > 0:
                metrics["z"] = metrics["error"] / result.stderr
        metrics["status"] = "warning" if result.warnings else "ok"
        folder.write_json(METRICS, metrics)
    return metrics


def format_result(metrics: dict[str, Any]) -> str:
    """One line: Delta F +- stderr, the method, evaluations (and the exact value where known)."""
    line = (
        f"delta_F = {metrics['delta_F']:.6g} +- {metrics['stderr']:.2g} "
        f"({metrics['method']}, {metrics['direction']}, n={metrics['n']}, "
        f"{metrics['evaluations']} evaluations)"
    )
    if "delta_F_exact" in metrics:
        line += f"; exact {metrics['delta_F_exact']:.6g}"
    return line


def _command(args: argparse.Namespace) -> None:
    shared = parse_options(args.target_option)
    out = args.out or f"runs/free-energy/{args.target_a}-{args.target_b}-{args.method}"
    metrics = run_free_energy(
        args.target_a,
        args.target_b,
        args.method,
        n=args.n,
        seed=args.seed,
        out=out,
        options=parse_options(args.option),
        options_a={**shared, **parse_options(args.a_option)},
        options_b={**shared, **parse_options(args.b_option)},
        overwrite=args.overwrite,
    )
    print(format_result(metrics))
    for w in metrics.get("warnings") or []:
        print(f"  warning: {w}")
    print(f"metrics: {out}/metrics.json")


def add_free_energy_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``interpolants free-energy TARGET_A TARGET_B --method M [...]``."""
    options = "\n".join(
        f"  {m}: {', '.join(o for o in FreeEnergyConfig.options(m) if o != 'transport')}"
        for m in METHODS
    )
    p = subparsers.add_parser(
        "free-energy",
        help="free-energy difference -log(Z_b / Z_a) between two targets (BAR, Jarzynski, "
        "escorted)",
        description="Estimate Delta F = -log(Z_b / Z_a) between two named targets from their "
        "equilibrium draws; print delta_F +- stderr and write OUT/metrics.json.",
        epilog=f"method options (--option KEY=VALUE; docs/free_energy.md):\n{options}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target_a", metavar="TARGET_A", help="target name of state a")
    p.add_argument("target_b", metavar="TARGET_B", help="target name of state b")
    p.add_argument("--method", default="bar", choices=METHODS, help="estimator (default bar)")
    p.add_argument("-n", "--n", type=int, default=2000, help="draws of each target (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", help="output folder (default runs/free-energy/A-B-METHOD)")
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="a method option")
    p.add_argument("--target-option", action="append", metavar="KEY=VALUE",
                   help="an option of both targets, e.g. L=8")  # fmt: skip
    p.add_argument("--a-option", action="append", metavar="KEY=VALUE",
                   help="an option of target a, e.g. lam=8")  # fmt: skip
    p.add_argument("--b-option", action="append", metavar="KEY=VALUE",
                   help="an option of target b, e.g. lam=7")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace the run in OUT")
    p.set_defaults(func=_command)
    return p
