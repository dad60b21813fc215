r"""The sampler benchmark of docs/benchmarks.md: AIS and SMC on gmm40, funnel, many_well, phi4.

Rows, each run with ``seeds`` seeds and ``n`` walkers, interleaved (every seed runs all the
methods of a target in turn, so a busy machine slows them alike):

- ``ais K``: annealed importance sampling over K linear temperatures, one MALA move per level;
- ``smc K``: SMC on the same fixed schedule and moves, plus systematic resampling when
  ESS / m < 0.5, in R = 10 independent batches of m = n / 10 walkers (the library default),
  never rerun with heavier moves (``escalate=0``: the fixed design is the row's point): at a
  given K the two spend the same n K target evaluations (and their bias checks' own);
- ``smc adaptive``: SMC with the library defaults (temperatures by conditional ESS 0.9 from
  a pilot run, 5 MALA moves per level, 10 batches);
- on phi4 (log Z unknown) also ``hmc``: the reference observables from Markov chains.

Scores (docs/benchmarks.md, "Metrics"): the log Z error e = log Z_hat - log Z as mean and
standard error over seeds, |e| likewise, the method's own standard error (mean over seeds),
how many seeds land within 2 of their own standard errors, and z = mean(e) / se_pooled with
se_pooled = sqrt(mean(se^2) / seeds) the error bar of the mean of the seeds' estimates if the
reported errors were right (|z| > 3: the method misses log Z beyond its error bars). Also
ESS / N, modes covered (gmm40, of 40), <|m|> and chi = V (<m^2> - <|m|>^2) on phi4, target
evaluations and the median wall seconds per run.

Run it with ``python -m interpolants.app.sampler_bench --out runs/bench/samplers``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import targets as _targets
from ..samplers import sample
from .machine import machine_info
from .sample_target import target_metrics
from .sampler_plots import plot_log_weights, plot_samples

__all__ = ["bench_samplers", "format_samplers", "main", "summarise"]

HMC_REFERENCE = {"chains": 64, "draws_per_chain": 1000, "warmup": 500}


def _configs(steps: Sequence[int]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Row label -> (method, options)."""
    rows: dict[str, tuple[str, dict[str, Any]]] = {}
    for k in steps:
        rows[f"ais K={k}"] = ("ais", {"steps": k, "moves": 1})
    for k in steps:
        rows[f"smc K={k}"] = ("smc", {"steps": k, "moves": 1, "escalate": 0})
    rows["smc adaptive"] = ("smc", {})
    return rows


def _mean_se(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and standard error of the mean (None where undefined)."""
    v = [x for x in values if x is not None and math.isfinite(x)]
    if not v:
        return None, None
    se = statistics.stdev(v) / math.sqrt(len(v)) if len(v) > 1 else None
    return statistics.fmean(v), se


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate the per-seed metrics of one (target, row)."""
    s: dict[str, Any] = {"seeds": len(runs)}
    for key in ("log_Z", "log_Z_error", "log_Z_abs_error", "ess", "modes_covered"):
        s[key], s[f"{key}_se"] = _mean_se([r.get(key) for r in runs])
    for key in ("abs_magnetization", "susceptibility"):
        s[key], s[f"{key}_se"] = _mean_se([r.get(key) for r in runs])
    log_z = [r["log_Z"] for r in runs if r.get("log_Z") is not None]
    s["log_Z_sd"] = statistics.stdev(log_z) if len(log_z) > 1 else None
    ses = [r["log_Z_stderr"] for r in runs if r.get("log_Z_stderr") is not None]
    s["log_Z_stderr"] = statistics.fmean(ses) if ses else None
    errs = [(r.get("log_Z_error"), r.get("log_Z_stderr")) for r in runs]
    errs = [(e, se) for e, se in errs if e is not None and se is not None]
    if errs and len(errs) == len(runs):
        s["within_2se"] = sum(abs(e) <= 2 * se for e, se in errs)
        pooled = math.sqrt(statistics.fmean([se**2 for _, se in errs]) / len(errs))
        s["z"] = s["log_Z_error"] / pooled if pooled > 0 else None
    s["evaluations"] = statistics.median([r["evaluations"] for r in runs])
    s["wall_seconds"] = statistics.median([r["wall_seconds"] for r in runs])
    if runs and "modes_total" in runs[0]:
        s["modes_total"] = runs[0]["modes_total"]
    return s


def _one_run(target: Any, method: str, n: int, seed: int, options: dict[str, Any]) -> tuple:
    start = time.perf_counter()
    result = sample(target, method, n=n, seed=seed, **options)
    wall = time.perf_counter() - start
    metrics = {**result.to_dict(), "wall_seconds": wall, **target_metrics(target, result)}
    return result, metrics


def bench_samplers(
    out: Path,
    seeds: int = 5,
    steps: Sequence[int] = (100, 1000),
    targets: Sequence[str] = ("gmm40", "funnel", "many_well", "phi4"),
    n: int = 1000,
    progress: bool = False,
) -> dict[str, Any]:
    r"""AIS and SMC at K = ``steps`` fixed levels and adaptive SMC on each target, ``seeds``
    seeds each (module docstring); phi4 at L = 8 also gets an HMC reference.

    Arguments:
        out: folder for the seed-0 plots (samples over the density, log-weight histograms).
        seeds: seeds 0..seeds-1 per row.
        steps: the fixed numbers of temperatures K compared.
        targets: target names (:func:`interpolants.targets.get`).
        n: walkers per run (1000: the whole default benchmark took 16 minutes on one torch
            thread of a shared 2-core machine).
        progress: print one line per finished run.

    Returns:
        ``{"n", "seeds", "steps", "rows": {target: {row: summary}}, "runs": {...}}`` with the
        per-seed metrics under ``runs`` and the aggregates of :func:`summarise` under ``rows``.
    """
    out = Path(out)
    configs = _configs(steps)
    rows: dict[str, dict[str, Any]] = {}
    per_seed: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for name in targets:
        target = _targets.get(name)
        todo = dict(configs)
        if isinstance(target, _targets.Phi4):
            h = HMC_REFERENCE
            todo["hmc (reference)"] = (
                "hmc",
                {"chains": h["chains"], "warmup": h["warmup"]},
            )
        per_seed[name] = {label: [] for label in todo}
        for seed in range(seeds):
            for label, (method, options) in todo.items():
                m = n
                if method == "hmc":
                    m = HMC_REFERENCE["chains"] * HMC_REFERENCE["draws_per_chain"]
                result, metrics = _one_run(target, method, m, seed, options)
                per_seed[name][label].append(metrics)
                if seed == 0:
                    stem = out / "plots" / f"{name}-{label.replace(' ', '_').replace('=', '')}"
                    if target.dim == 2:
                        plot_samples(result, target, f"{stem}-samples.png")
                    if result.log_weights is not None:
                        plot_log_weights(result, f"{stem}-log_weights.png")
                if progress:
                    print(
                        f"{name:10s} {label:16s} seed {seed}: log Z {metrics.get('log_Z')} "
                        f"({metrics['wall_seconds']:.1f} s)",
                        flush=True,
                    )
        rows[name] = {label: summarise(runs) for label, runs in per_seed[name].items()}
    return {
        "n": n,
        "seeds": seeds,
        "steps": list(steps),
        "targets": list(targets),
        "hmc_reference": HMC_REFERENCE,
        "rows": rows,
        "runs": per_seed,
    }


# --- the table ----------------------------------------------------------------------------


def _pm(mean: float | None, se: float | None, digits: int = 3) -> str:
    if mean is None:
        return "–"
    return f"{mean:.{digits}f}" + ("" if se is None else f" ± {se:.{digits}f}")


def _num(v: float | None, fmt: str = ".3f") -> str:
    return "–" if v is None else format(v, fmt)


def _miss(s: dict[str, Any]) -> str:
    z = s.get("z")
    if z is None:
        return "–"
    return f"{z:+.1f}" + (" **misses**" if abs(z) > 3 else "")


def format_samplers(m: dict[str, Any]) -> str:
    """Markdown tables of :func:`bench_samplers`: one per target."""
    parts = [
        f"n = {m['n']} walkers per run, {m['seeds']} seeds per row (0..{m['seeds'] - 1}); "
        "MALA moves, diagonal preconditioner from the walkers, linear schedules; "
        "SMC in 10 batches of n/10. Errors are e = log Z_hat - log Z; ± is the standard "
        "error over seeds; 'own se' is the method's reported standard error (mean over "
        "seeds); z = mean(e) / sqrt(mean(own se^2) / seeds), |z| > 3 marked as a miss.",
    ]
    for name, rows in m["rows"].items():
        known = any(r.get("log_Z_error") is not None for r in rows.values())
        modes = any(r.get("modes_covered") is not None for r in rows.values())
        phi4 = any(r.get("abs_magnetization") is not None for r in rows.values())
        head = ["method", "evaluations", "wall s"]
        if known:
            head += ["log Z error", "abs error", "own se", "seeds within 2 se", "z"]
        else:
            head += ["log Z (± se)", "sd over seeds", "own se"]
        head += ["ESS/N"]
        if modes:
            head += ["modes covered"]
        if phi4:
            head += ["<abs m>", "chi"]
        lines = [f"### {name}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for label, s in rows.items():
            cells = [label, f"{round(s['evaluations']):,}", _num(s["wall_seconds"], ".2f")]
            if known:
                cells += [
                    _pm(s["log_Z_error"], s["log_Z_error_se"]),
                    _pm(s["log_Z_abs_error"], s["log_Z_abs_error_se"]),
                    _num(s["log_Z_stderr"]),
                    f"{s.get('within_2se', '–')}/{s['seeds']}",
                    _miss(s),
                ]
            else:
                cells += [
                    _pm(s["log_Z"], s["log_Z_se"]),
                    _num(s["log_Z_sd"]),
                    _num(s["log_Z_stderr"]),
                ]
            cells += [_pm(s["ess"], s["ess_se"], 2)]
            if modes:
                total = s.get("modes_total")
                cells += [_pm(s["modes_covered"], s["modes_covered_se"], 1) + f" / {total}"]
            if phi4:
                cells += [
                    _pm(s["abs_magnetization"], s["abs_magnetization_se"], 4),
                    _pm(s["susceptibility"], s["susceptibility_se"], 4),
                ]
            lines.append("| " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m interpolants.app.sampler_bench``: run, write OUT/metrics.json, print it."""
    p = argparse.ArgumentParser(prog="python -m interpolants.app.sampler_bench")
    p.add_argument("--out", default="runs/bench/samplers")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--steps", type=int, nargs="+", default=[100, 1000])
    p.add_argument("--targets", nargs="+", default=["gmm40", "funnel", "many_well", "phi4"])
    p.add_argument("-n", "--n", type=int, default=1000)
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    metrics = bench_samplers(out, args.seeds, args.steps, args.targets, args.n, progress=True)
    metrics["machine"] = {**machine_info(), "total_seconds": time.perf_counter() - start}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    table = format_samplers(metrics)
    (out / "table.md").write_text(table + "\n")
    print(table)
    print(f"\ntotal {metrics['machine']['total_seconds']:.0f} s; metrics: {out}/metrics.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
