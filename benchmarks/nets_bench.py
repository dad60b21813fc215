"""NETS against AIS and SMC at equal target evaluations (docs/benchmarks.md, "Metrics").

Run: ``OMP_NUM_THREADS=1 python benchmarks/nets_bench.py --targets gmm40 funnel many_well
--seeds 5 --out runs/bench/nets`` (``--eps-sweep gmm40`` for the ESS/N-against-eps table).

On a GPU: ``--option device=cuda log_det=exact --jobs 5`` (NETS on the GPU, its AIS/SMC
baselines on the CPU). ``--resume`` lets a run longer than one time-limited command go on
in the next: finished seeds are kept and trainings continue from their checkpoints. NETS
training is bound by kernel launches, so a few processes share one GPU well: on an H200, 10
training rounds of phi4 L = 8 took 26 s alone and 29-31 s each for 4 processes at once; but
18 processes (some with the GPU-bound exact log-det of L = 16) finished no seed in 16
minutes, so ``--jobs`` stops at 5 with device=cuda.

Per target and seed: ``si.sample(target, "nets", n=N, seed=s, **PRESETS[target])``, then
the row "nets + resampling": the same trained drift sampled again with ``resample_threshold``
(``--resampled``, default 0.5; 10 batches), its evaluations counted with the training's. The
plain run's evaluations E_total (training + sampling) and E_sampling set the baselines:
``ais K`` with K = round(E / N) linear temperatures and one MALA move per level (N K
evaluations) for E = E_total and E = E_sampling, and ``smc K`` (10 batches plus the pilot run,
1.1 N K evaluations) at E_total. The tables are those of
:func:`interpolants.app.sampler_bench.format_samplers`; on phi4 a second table compares <|m|>
and chi with the HMC references of ``targets/phi4.py`` in units of the combined standard error.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import statistics
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import torch
import yaml

import interpolants as si
from interpolants.app.machine import machine_info
from interpolants.app.sample_target import target_metrics
from interpolants.app.sampler_bench import format_samplers, summarise

#: NETS options per row name (the defaults elsewhere); "target" names the registered target
#: (default: the row name) and "target_options" its targets.get options.
PRESETS: dict[str, dict[str, Any]] = {
    "gmm40": {},
    "gmm40-steps200": {"target": "gmm40", "steps": 200},
    "funnel": {},
    # shortened for time (d = 32, exact Jacobians); the MLP drift, as the rows made before
    # many_well's default became the block drift
    "many_well": {"iterations": 100, "net": "mlp"},
    # the drift as one MLP shared by the 16 pairs of coordinates (net="blocks", block=2; the
    # library's default for many_well since it declares block_size = 2)
    "many_well-blocks": {"target": "many_well", "iterations": 100, "net": "blocks"},
    # the same with 200 sampling steps: no non-invertible Heun steps (475-721 per seed at 100)
    "many_well-blocks-steps200": {
        "target": "many_well",
        "iterations": 100,
        "net": "blocks",
        "steps": 200,
    },
    # 100 sampling steps, halved by pilot runs where the Heun map folds (refine=3)
    "many_well-blocks-refine3": {
        "target": "many_well",
        "iterations": 100,
        "net": "blocks",
        "refine": 3,
    },
    "gmm-d50-k10": {},
    "phi4": {},
    "phi4-L16": {"target": "phi4", "target_options": {"L": 16}},
    # the conv drift without the hop input channel: receptive field 3, so the exact
    # log-det's Jacobians take 64 VJPs instead of 256 (6.7x less time per step on our CPU)
    "phi4-L16-local": {
        "target": "phi4",
        "target_options": {"L": 16},
        "net_options": {"hop": False},
    },
}
_TARGET_KEYS = ("target", "target_options")
#: run_nets options that act on the sampling run (the resampled row reuses the trained drift)
_SAMPLING_KEYS = ("steps", "eps", "eps_scale", "moves", "log_det", "probes", "device", "dtype",
                  "refine", "sweep_walkers")  # fmt: skip


def _target(name: str) -> Any:
    preset = PRESETS.get(name, {})
    return si.targets.get(preset.get("target", name), **preset.get("target_options", {}))


def _run(target: Any, method: str, n: int, seed: int, **options: Any) -> dict[str, Any]:
    start = time.perf_counter()
    result = si.sample(target, method, n=n, seed=seed, **options)
    wall = time.perf_counter() - start
    metrics = {**result.to_dict(), "wall_seconds": wall, **target_metrics(target, result)}
    return metrics | {"model": result.info.get("model")}


def _seed_jobs(
    name: str,
    seed: int,
    n: int,
    extra: dict[str, Any] | None = None,
    resampled: float = 0.5,
    run_dir: Path | None = None,
) -> dict[str, dict[str, Any]]:
    """NETS on one target and seed (``PRESETS`` updated by ``extra``); the same trained drift
    again with resampling at ESS/N < ``resampled`` (10 batches; 0: no such row); then the AIS
    and SMC baselines at equal evaluations. With ``run_dir`` the training checkpoints there
    every 10 rounds and resumes from the checkpoint it finds."""
    torch.set_num_threads(1)
    target = _target(name)
    preset = PRESETS.get(name, {})
    # the uniform 100-step grid these rows were made with (NETS's default until 2026-12-06;
    # since then steps=None runs SMC's ladder with the drift, a row of its own: "steps": None)
    options = {"steps": 100} | {k: v for k, v in preset.items() if k not in _TARGET_KEYS}
    options |= extra or {}
    files = {} if run_dir is None else {"log_dir": run_dir, "resume": True, "checkpoint_every": 10}
    if set(files) & set(options):
        raise ValueError(f"--resume sets {sorted(files)} itself; drop them from --option")
    m = _run(target, "nets", n, seed, **options, **files)
    model = m.pop("model")
    total, sampling = m["evaluations"], m["sampling_evaluations"]
    k_total, k_sampling = max(1, round(total / n)), max(1, round(sampling / n))
    k_smc = max(1, round(total / (1.1 * n)))
    todo: dict[str, Any] = {"nets": m}
    if resampled > 0:
        sampling_options = {k: v for k, v in options.items() if k in _SAMPLING_KEYS}
        r = _run(target, "nets", n, seed, model=model, resample_threshold=resampled,
                 **sampling_options)  # fmt: skip
        r.pop("model")
        r["sampling_evaluations"] = r["evaluations"]
        r["evaluations"] += m["training_evaluations"]  # the drift's training, counted once more
        r["wall_seconds"] += m["training_seconds"]
        todo["nets + resampling"] = r
    todo |= {
        "ais, equal total": ("ais", {"steps": k_total, "moves": 1}),
        "ais, equal sampling": ("ais", {"steps": k_sampling, "moves": 1}),
        "smc, equal total": ("smc", {"steps": k_smc, "moves": 1}),
    }
    rows = {}
    for label, job in todo.items():
        if not label.startswith("nets"):
            method, opts = job
            job = _run(target, method, n, seed, **opts) | {"steps": opts["steps"]}
        rows[label] = job
        print(f"{name} {label} seed {seed}: log Z {job.get('log_Z')}, ESS "
              f"{job.get('ess'):.3f}, evals {job['evaluations']}, "
              f"{job['wall_seconds']:.0f} s", flush=True)  # fmt: skip
    return rows


def bench(
    targets: list[str],
    seeds: int,
    n: int,
    out: Path,
    jobs: int = 1,
    extra: dict[str, Any] | None = None,
    resampled: float = 0.5,
    first_seed: int = 0,
    resume: bool = False,
) -> dict[str, Any]:
    """Every (target, seed) of :func:`_seed_jobs`, in ``jobs`` processes (one thread each).
    Finished seeds go to ``out/partial.json`` as they end. ``resume``: seeds found there are
    not run again, and each training checkpoints in ``out/runs/TARGET/seedS`` and resumes
    from it, so that a run cut short (a time limit) goes on where it stopped."""
    seed_list = range(first_seed, first_seed + seeds)
    keys = [(name, seed) for name in targets for seed in seed_list]
    done: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
    partial_file = out / "partial.json"
    if resume:  # the seeds and checkpoints kept must come from the same settings
        settings = json.loads(json.dumps({"n": n, "options": extra or {}, "resampled": resampled},
                                         default=str))  # fmt: skip
        settings_file = out / "resume.json"
        if settings_file.exists() and json.loads(settings_file.read_text()) != settings:
            raise ValueError(f"--resume: {out} holds a run made with "
                             f"{settings_file.read_text().strip()}, not {settings}")  # fmt: skip
        settings_file.write_text(json.dumps(settings))
    if resume and partial_file.exists():
        for key, rows in json.loads(partial_file.read_text()).items():
            name, seed = key.rsplit("/", 1)
            done[(name, int(seed))] = rows
    todo = [k for k in keys if k not in done]

    def save() -> None:
        partial = {f"{k[0]}/{k[1]}": v for k, v in done.items()}
        tmp = partial_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(partial, indent=1, default=str))
        tmp.replace(partial_file)

    def job(key: tuple[str, int]) -> tuple[Any, ...]:
        run_dir = out / "runs" / key[0] / f"seed{key[1]}" if resume else None
        return (*key, n, extra, resampled, run_dir)

    if jobs > 1:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
            futures = {pool.submit(_seed_jobs, *job(key)): key for key in todo}
            for f in as_completed(futures):
                done[futures[f]] = f.result()
                save()
    else:
        for key in todo:
            done[key] = _seed_jobs(*job(key))
            save()
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for name in targets:
        per: dict[str, list[dict[str, Any]]] = {}
        for seed in seed_list:
            for label, row in done[(name, seed)].items():
                per.setdefault(label, []).append(row | {"seed": seed})
        runs[name] = per
    return {"n": n, "seeds": seeds, "targets": targets, "options": extra or {},
            "rows": _rows(runs), "runs": runs}  # fmt: skip


def _rows(runs: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, dict[str, Any]]:
    """Per target and row label: the summary over seeds (mean, se, ...) of the per-seed runs."""
    rows: dict[str, dict[str, Any]] = {}
    for name, per in runs.items():
        rows[name] = {}
        for label, rs in per.items():
            s = summarise(rs)
            if label.startswith("nets"):
                s["sampling_evaluations"] = statistics.median(r["sampling_evaluations"] for r in rs)
            else:
                s["steps"] = statistics.median(r["steps"] for r in rs)
            rows[name][label] = s
    return rows


def merge(files: list[Path], rename: dict[str, str] | None = None) -> dict[str, Any]:
    """One set of rows from metrics.json files of the same rows on other seeds (``--first-seed``
    runs made apart); ``rename`` maps a file's target name to the merged one. Refuses files of
    different n, or a seed twice (where the runs record their seed)."""
    rename = rename or {}
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    n = None
    for f in files:
        m = json.loads(Path(f).read_text())
        if n is not None and m["n"] != n:
            raise ValueError(f"merge: {f} has n={m['n']}, the others n={n}")
        n = m["n"]
        for name, per in m["runs"].items():
            merged = runs.setdefault(rename.get(name, name), {})
            old = {r.get("seed") for r in merged.get("nets", [])} - {None}
            repeated = old & {r.get("seed") for r in per["nets"]}
            if repeated:
                raise ValueError(f"merge: {f} repeats seeds {sorted(repeated)}")
            for label, rs in per.items():
                merged.setdefault(label, []).extend(rs)
    seeds = max(len(per["nets"]) for per in runs.values())
    return {"n": n, "seeds": seeds, "targets": list(runs),
            "merged_from": [str(f) for f in files], "rows": _rows(runs), "runs": runs}  # fmt: skip


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
    from interpolants.app.plots import pyplot

    plt = pyplot()
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
    p.add_argument("--first-seed", type=int, default=0, help="seeds first-seed, ...")
    p.add_argument("-n", "--n", type=int, default=2000)
    p.add_argument("--out", default="runs/bench/nets")
    p.add_argument("--jobs", type=int, default=1,
                   help="processes, one (target, seed) each (1 with device=cuda)")  # fmt: skip
    p.add_argument("--option", nargs="*", default=[], metavar="KEY=VALUE",
                   help="NETS options for every target (YAML values), over PRESETS")  # fmt: skip
    p.add_argument("--resampled", type=float, default=0.5,
                   help="the row 'nets + resampling': the trained drift again, resampling at "
                   "ESS/N below this (0: no such row)")  # fmt: skip
    p.add_argument("--eps-sweep", help="a target: the ESS/N against eps table and plot")
    p.add_argument("--scales", type=float, nargs="+", default=[0, 0.1, 0.3, 1, 3, 10])
    p.add_argument("--resume", action="store_true",
                   help="keep the seeds in OUT/partial.json; trainings checkpoint in OUT/runs "
                   "and go on from there (for time-limited sessions)")  # fmt: skip
    p.add_argument("--merge", nargs="+", metavar="METRICS_JSON",
                   help="no runs: one table from the metrics.json of runs made apart")  # fmt: skip
    p.add_argument("--rename", nargs="*", default=[], metavar="OLD=NEW",
                   help="with --merge: a file's target name to the merged one")  # fmt: skip
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if args.merge:
        m = merge([Path(f) for f in args.merge], dict(r.split("=", 1) for r in args.rename))
        (out / "metrics.json").write_text(json.dumps(m, indent=1, default=str))
        table = format_samplers(m) + "\n\n" + phi4_table(m)
        (out / "table.md").write_text(table + "\n")
        print(table)
        return
    if args.eps_sweep:
        table = eps_sweep(args.eps_sweep, args.n, 0, args.scales, out)
        (out / f"eps_sweep_{args.eps_sweep}.md").write_text(table + "\n")
        print(table)
        return
    extra = {k: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in args.option)}
    if str(extra.get("device", "cpu")).startswith("cuda") and args.jobs > 5:
        p.error("device=cuda: use --jobs 5 or fewer (more processes time-slice one GPU)")
    m = bench(args.targets, args.seeds, args.n, out, args.jobs, extra, args.resampled,
              args.first_seed, args.resume)  # fmt: skip
    m["machine"] = {**machine_info(), "total_seconds": time.perf_counter() - start}
    (out / "metrics.json").write_text(json.dumps(m, indent=1, default=str))
    table = format_samplers(m) + "\n\n" + phi4_table(m)
    (out / "table.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
