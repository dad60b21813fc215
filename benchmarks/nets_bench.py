"""NETS against AIS and SMC at equal target evaluations (BENCHMARKS.md "Samplers").

Run: ``OMP_NUM_THREADS=1 python benchmarks/nets_bench.py --targets gmm40 funnel many_well
--seeds 5 --out runs/bench/nets`` (``--eps-sweep gmm40`` for the ESS/N-against-eps table).

Per target and seed: ``si.sample(target, "nets", n=N, seed=s, **PRESETS[target])``, whose
evaluations E_total (training + sampling) and E_sampling set the baselines of the same seed:
``ais K`` with K = round(E / N) linear temperatures and one MALA move per level (N K
evaluations) for E = E_total and E = E_sampling, and ``smc K`` (10 batches plus the pilot run,
1.1 N K evaluations) at E_total. The tables are those of
:func:`interpolants.samplers.bench.format_samplers`; on phi4 a second table compares <|m|>
and chi with the HMC references of ``targets/phi4.py`` in units of the combined standard error.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import interpolants as si
from interpolants.bench import machine_info
from interpolants.samplers.bench import _summarise, format_samplers
from interpolants.samplers.run import target_metrics

#: NETS options per target (the defaults elsewhere); "target" holds targets.get options.
PRESETS: dict[str, dict[str, Any]] = {
    "gmm40": {},
    "funnel": {"iterations": 40},  # shortened for time: its PINN loss did not fall in 60 rounds
    "many_well": {"iterations": 60},  # shortened for time (d = 32, exact Jacobians)
    "gmm-d50-k10": {},
    "phi4": {},
    "phi4-L16": {"target": {"L": 16}},
}


def _target(name: str) -> Any:
    opts = PRESETS.get(name, {}).get("target", {})
    return si.targets.get(name.split("-L")[0] if name.startswith("phi4") else name, **opts)


def _run(target: Any, method: str, n: int, seed: int, **options: Any) -> dict[str, Any]:
    start = time.perf_counter()
    result = si.sample(target, method, n=n, seed=seed, **options)
    wall = time.perf_counter() - start
    return {**result.to_dict(), "wall_seconds": wall, **target_metrics(target, result)}


def bench(targets: list[str], seeds: int, n: int, out: Path) -> dict[str, Any]:
    rows: dict[str, dict[str, Any]] = {}
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for name in targets:
        target = _target(name)
        options = {k: v for k, v in PRESETS.get(name, {}).items() if k != "target"}
        per: dict[str, list[dict[str, Any]]] = {}
        for seed in range(seeds):
            m = _run(target, "nets", n, seed, **options)
            total, sampling = m["evaluations"], m["sampling_evaluations"]
            k_total, k_sampling = max(1, round(total / n)), max(1, round(sampling / n))
            k_smc = max(1, round(total / (1.1 * n)))
            todo = {
                "nets": m,
                "ais, equal total": ("ais", {"steps": k_total, "moves": 1}),
                "ais, equal sampling": ("ais", {"steps": k_sampling, "moves": 1}),
                "smc, equal total": ("smc", {"steps": k_smc, "moves": 1}),
            }
            for label, job in todo.items():
                if label != "nets":
                    method, opts = job
                    job = _run(target, method, n, seed, **opts) | {"steps": opts["steps"]}
                per.setdefault(label, []).append(job)
                print(f"{name} {label} seed {seed}: log Z {job.get('log_Z')}, ESS "
                      f"{job.get('ess'):.3f}, evals {job['evaluations']}, "
                      f"{job['wall_seconds']:.0f} s", flush=True)  # fmt: skip
            (out / "partial.json").write_text(json.dumps(runs | {name: per}, indent=1))
        runs[name] = per
        rows[name] = {}
        for label, rs in per.items():
            s = _summarise(rs)
            if label == "nets":
                s["sampling_evaluations"] = statistics.median(r["sampling_evaluations"] for r in rs)
            else:
                s["steps"] = statistics.median(r["steps"] for r in rs)
            rows[name][label] = s
    return {"n": n, "seeds": seeds, "targets": targets, "rows": rows, "runs": runs}


def phi4_table(m: dict[str, Any]) -> str:
    """<|m|> and chi against the HMC references: z = (mean - ref) / sqrt(se^2 + ref_se^2)."""
    lines = []
    for name, rows in m["rows"].items():
        if not name.startswith("phi4"):
            continue
        refs = _target(name).references
        lines += [f"### {name}: observables against the HMC reference", "",
                  "| method | <abs m> | z | chi | z |", "|---|---|---|---|---|",
                  f"| HMC reference | {refs['abs_magnetization']:.4f} ± "
                  f"{refs['abs_magnetization_stderr']:.4f} | | {refs['susceptibility']:.4f} ± "
                  f"{refs['susceptibility_stderr']:.4f} | |"]  # fmt: skip
        for label, s in rows.items():
            cells = [label]
            for key in ("abs_magnetization", "susceptibility"):
                mean, se = s[key], s[f"{key}_se"] or 0.0
                z = (mean - refs[key]) / math.hypot(se, refs[f"{key}_stderr"])
                cells += [f"{mean:.4f} ± {se:.4f}", f"{z:+.1f}"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def eps_sweep(name: str, n: int, seed: int, scales: list[float], out: Path) -> str:
    """Train once, then sample with eps_t = c * (the tuned eps_t) for each c: ESS/N, log Z."""
    target = _target(name)
    trained = si.sample(target, "nets", n=n, seed=seed)
    model = trained.info["model"]
    rows = []
    for c in scales:
        r = si.sample(target, "nets", n=n, seed=seed + 1, model=model, eps_scale=c)
        rows.append({"eps_scale": c, "eps_at_t1": c * model.eps(1.0), "ess": r.ess,
                     "log_Z": r.log_Z, "log_Z_stderr": r.log_Z_stderr,
                     "acceptance": r.acceptance_rate})  # fmt: skip
    (out / f"eps_sweep_{name}.json").write_text(json.dumps(rows, indent=1))
    from interpolants.plots import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    xs = [max(r["eps_scale"], scales[1] / 4 if len(scales) > 1 else 1e-3) for r in rows]
    ax.semilogx(xs, [r["ess"] for r in rows], "o-")
    ax.set_xlabel("eps scale c (eps_t = c x tuned eps_t; leftmost point: c = 0)")
    ax.set_ylabel("ESS / N")
    ax.set_title(f"NETS on {name}, n = {n}, seed {seed + 1}")
    fig.tight_layout()
    fig.savefig(out / f"eps_sweep_{name}.png", dpi=120)
    plt.close(fig)
    head = "| c | eps_t at t = 1 | ESS/N | log Z (± se) | MALA acceptance |\n|---|---|---|---|---|"
    body = [f"| {r['eps_scale']:g} | {r['eps_at_t1']:.3g} | {r['ess']:.3f} | "
            f"{r['log_Z']:.4f} ± {r['log_Z_stderr']:.4f} | "
            f"{'–' if r['acceptance'] is None else format(r['acceptance'], '.3f')} |"
            for r in rows]  # fmt: skip
    return "\n".join([head, *body])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--targets", nargs="*", default=["gmm40", "funnel", "many_well"])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("-n", "--n", type=int, default=2000)
    p.add_argument("--out", default="runs/bench/nets")
    p.add_argument("--eps-sweep", help="a target: the ESS/N against eps table and plot")
    p.add_argument("--scales", type=float, nargs="+", default=[0, 0.1, 0.3, 1, 3, 10])
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if args.eps_sweep:
        table = eps_sweep(args.eps_sweep, args.n, 0, args.scales, out)
        (out / f"eps_sweep_{args.eps_sweep}.md").write_text(table + "\n")
        print(table)
        return
    m = bench(args.targets, args.seeds, args.n, out)
    m["machine"] = {**machine_info(), "total_seconds": time.perf_counter() - start}
    (out / "metrics.json").write_text(json.dumps(m, indent=1, default=str))
    table = format_samplers(m) + "\n\n" + phi4_table(m)
    (out / "table.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
