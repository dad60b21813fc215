"""The real-posterior suite over seeds: log Z error against the reported standard error (with
the bidirectional bounds of every AIS/SMC run), whether 3 standard errors cover the truth,
and the largest posterior-mean error in posterior sds.

    OMP_NUM_THREADS=1 python benchmarks/real_posteriors.py [--seeds 5] [--n 4000]
        [--first-seed 0] [--targets eight_schools ...] [--variants default ...]
        [--json OUT.json] [--match-evaluations REF.json BASE.json]

Variants are option sets of SMC, AIS or importance sampling through a flow-MCMC transport
(``VARIANTS``); "hmc" is the library's HMC for the moments.
``--match-evaluations REF BASE`` runs each target at equal target evaluations: n becomes
n * (median evaluations of REF's rows) / (median of BASE's rows) for that target, where BASE
holds rows of the variant being run at the given n (evaluations grow about as n).
Targets: the suite of docs/benchmarks.md with exact or long-run references, the funnel and
the d = 50 mixture of 10 Gaussians (exact log Z).
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings

import torch

import interpolants as si

VARIANTS: dict[str, tuple[str, dict]] = {
    "default": ("smc", {}),
    "reverse-2000": ("smc", {"reverse_walkers": 2000}),
    "cess-0.99": ("smc", {"cess": 0.99}),  # the default since 2026-12-06 (was 0.9)
    "cess-0.999": ("smc", {"cess": 0.999}),  # about 3x denser again
    "hmc-moves": ("smc", {"kernel": "hmc", "decorrelation": 0.1, "moves": 50}),
    "flow-hmc": ("smc", {"kernel": "hmc", "mass_matrix": "flow"}),
    "flow-hmc-dec": (
        "smc",
        {"kernel": "hmc", "mass_matrix": "flow", "decorrelation": 0.1, "moves": 20},
    ),
    "ais": ("ais", {}),
    "nets": ("nets", {}),  # since 2026-12-06: SMC's ladder with the drift (steps=None)
    "nets-grid": ("nets", {"steps": 100}),  # the uniform 100-step grid, the earlier default
    "nets-features-0": ("nets", {"features": 0}),  # no random Fourier features of x
    # importance sampling through a RealNVP trained by flow-MCMC for a fixed number of rounds
    "is-1000": ("is", {"min_rounds": 1000, "max_rounds": 1000}),
    "is-3000": ("is", {"min_rounds": 3000, "max_rounds": 3000}),
    "hmc": ("hmc", {}),
}
TARGETS: dict[str, tuple[str, dict]] = {
    "eight_schools": ("eight_schools", {"centered": True}),
    "eight_schools_noncentered": ("eight_schools", {"centered": False}),
    "local_level": ("local_level", {}),
    "logistic_regression": ("logistic_regression", {}),
    "item_response": ("item_response", {"centered": True}),
    "item_response_noncentered": ("item_response", {"centered": False}),
    "funnel": ("funnel", {}),
    "gmm-d50-k10": ("gmm-d50-k10", {}),  # exact log Z = 0; NETS against SMC (issue 19's goal)
}
EXTRA = ("funnel", "gmm-d50-k10")  # run only when named: not in the suite's default list


def _escalations(info: dict) -> tuple:
    """SMC's heavier reruns: its own, or those of NETS's SMC run (``info.annealing``)."""
    return info.get("escalations") or (info.get("annealing") or {}).get("escalations") or ()


def run(name: str, variant: str, seed: int, n: int) -> dict:
    """One run's figures."""
    base, options = TARGETS[name]
    target = si.targets.get(base, **options)
    method, method_options = VARIANTS[variant]
    start = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = si.sample(target, method, n=n, seed=seed, **method_options)
    row = {"target": target.name, "variant": variant, "seed": seed, "evaluations": r.evaluations,
           "seconds": time.time() - start, "warnings": len(r.warnings),
           "escalations": len(_escalations(r.info))}  # fmt: skip
    if method == "nets":  # training points whose residual the PINN loss left out
        row["left_out"] = sum(h.get("left_out", 0) for h in r.info.get("history") or [])
        row["drift_gain"] = r.info.get("drift_gain")  # ESS lost per level without / with b
    refs = getattr(target, "references", None) or {}
    if "mean" in refs and "sd" in refs:
        m, _ = r.expectation(lambda x: x.double())
        z = (m.cpu() - torch.tensor(refs["mean"])) / torch.tensor(refs["sd"])
        row["mean_error_sd"] = float(z.abs().max())
    if r.log_Z is not None and target.log_Z is not None:
        err, se = r.log_Z - target.log_Z, r.log_Z_stderr or math.nan
        row.update(error=err, stderr=se, covered=abs(err) <= 3 * se)
        info = r.info
        if "log_Z_upper" in info:
            row.update(mc_stderr=info["log_Z_mc_stderr"],
                       upper_error=info["log_Z_upper"] - target.log_Z,
                       upper_stderr=info["log_Z_upper_stderr"])  # fmt: skip
    return row


def median_evaluations(path: str) -> dict[str, float]:
    """The median target evaluations of a results file's rows, per target."""
    with open(path) as f:
        rows = json.load(f)
    per: dict[str, list[float]] = {}
    for r in rows:
        per.setdefault(r["target"], []).append(float(r["evaluations"]))
    return {t: float(torch.tensor(v).median()) for t, v in per.items()}


def matched_n(n: int, names: list[str], ref: str, base: str) -> dict[str, int]:
    """Particles per target that spend about REF's evaluations, scaled from BASE's at n
    (a multiple of 10: SMC runs n / 10 walkers in each of its 10 batches)."""
    spent, own = median_evaluations(ref), median_evaluations(base)
    missing = [t for t in names if t not in spent or t not in own]
    if missing:
        raise SystemExit(f"--match-evaluations: no rows for {missing} in {ref} or {base}")
    return {t: 10 * max(1, round(n * spent[t] / own[t] / 10)) for t in names}


def table(rows: list[dict]) -> str:
    """Markdown: one line per (target, variant), medians and coverage over seeds."""
    out = ["| target | variant | seeds | median log Z error | median se (MC) | median upper - "
           "log Z | covered (3 se) | max mean error / sd | evaluations | seconds |",
           "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    keys = sorted({(r["target"], r["variant"]) for r in rows}, key=lambda k: (k[0], k[1]))

    def med(group: list[dict], key: str) -> float:
        values = [g[key] for g in group if key in g]
        return float(torch.tensor(values).median()) if values else math.nan

    def fmt(value: float, spec: str) -> str:
        return "" if math.isnan(value) else format(value, spec)

    for t, v in keys:
        g = [r for r in rows if r["target"] == t and r["variant"] == v]
        cov = sum(r.get("covered", False) for r in g)
        has = any("covered" in r for r in g)
        mean_err = max((r["mean_error_sd"] for r in g if "mean_error_sd" in r), default=math.nan)
        se, mc = fmt(med(g, "stderr"), ".3f"), fmt(med(g, "mc_stderr"), ".3f")
        out.append(
            f"| {t} | {v} | {len(g)} | {fmt(med(g, 'error'), '+.3f')} | "
            f"{se}{f' ({mc})' if mc else ''} | {fmt(med(g, 'upper_error'), '+.3f')} | "
            f"{f'{cov}/{len(g)}' if has else ''} | {fmt(mean_err, '.2f')} | "
            f"{med(g, 'evaluations'):.0f} | {med(g, 'seconds'):.0f} |"
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed, ...")
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--targets", nargs="+", default=[t for t in TARGETS if t not in EXTRA],
                        choices=list(TARGETS))  # fmt: skip
    parser.add_argument("--variants", nargs="+", default=["default", "hmc-moves", "hmc"],
                        choices=list(VARIANTS))  # fmt: skip
    parser.add_argument("--json", default=None)
    parser.add_argument("--table", default=None, help="only re-table the rows of this JSON")
    parser.add_argument(
        "--match-evaluations", nargs=2, metavar=("REF", "BASE"), default=None,
        help="per target, scale n so that the evaluations match REF's (see above)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.table:
        with open(args.table) as f:
            print(table(json.load(f)))
        return
    torch.set_num_threads(1)
    ns = {t: args.n for t in args.targets}
    if args.match_evaluations:
        ns = matched_n(args.n, args.targets, *args.match_evaluations)
        print("particles per target:", ns, flush=True)
    rows = []
    # seed by seed: a run cut short has every target's rows
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for name in args.targets:
            for variant in args.variants:
                rows.append(run(name, variant, seed, ns[name]))
                if ns[name] != args.n:
                    rows[-1]["variant"] = f"{variant} (n={ns[name]})"
                print(json.dumps(rows[-1]), flush=True)
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
