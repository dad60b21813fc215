"""``interpolants bench leaps``: LEAPS against AIS, SMC and Swendsen-Wang on the Ising model.

For each coupling beta and seed, LEAPS is trained and run; AIS and SMC (heat-bath sweeps,
one per level) then get the same number of target evaluations as LEAPS's sampling run, and
as its sampling and training together; Swendsen-Wang gets the latter for the observables
(thinned to at most 500 draws per chain: keeping every sweep of 64 chains at L = 16 ran out
of 24 GB).
Every method is scored against Kaufman's exact log Z and the Swendsen-Wang references of
E|m|, chi and the energy (docs/discrete.md): log Z error and its z-score, ESS/N, and the
observables' z-scores.
"""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from .. import targets as _targets
from ..samplers import SampleResult, sample

__all__ = ["bench_leaps", "format_leaps", "matched_baselines", "timed_run"]

MAX_DRAWS = 500  # Swendsen-Wang draws kept per chain (the rest of its budget thins them)


def _score(target: Any, result: SampleResult, seconds: float) -> dict[str, Any]:
    """log Z error and z-score, ESS/N, evaluations and the spin observables' errors."""
    row: dict[str, Any] = {"evaluations": result.evaluations, "seconds": seconds,
                           "ess": result.ess}  # fmt: skip
    if result.log_Z is not None:
        row["log_Z_error"] = result.log_Z - target.log_Z
        se = result.log_Z_stderr
        row["log_Z_stderr"] = se
        row["log_Z_z"] = row["log_Z_error"] / se if se else None
    refs = target.references
    m = target.magnetisation
    (abs_m, sq), (se_m, _) = result.expectation(lambda x: torch.stack([m(x).abs(), m(x) ** 2], 1))
    energy, se_e = result.expectation(target.energy_per_site)
    row["chi"] = float(target.dim * (sq - abs_m**2))
    if "abs_magnetisation" in refs:  # the Swendsen-Wang references (L = 16)
        row["abs_m_error"] = float(abs_m) - refs["abs_magnetisation"]
        spread = math.hypot(float(se_m), refs["abs_magnetisation_stderr"])
        row["abs_m_z"] = row["abs_m_error"] / spread
        row["chi_reference"] = refs["susceptibility"]
    if "energy_per_site_exact" in refs:  # from Kaufman's log Z
        row["energy_error"] = float(energy) - refs["energy_per_site_exact"]
        row["energy_z"] = row["energy_error"] / float(se_e) if float(se_e) > 0 else None
    return row


def timed_run(target: Any, method: str, n: int, seed: int, **options: Any) -> dict[str, Any]:
    """``sample(target, method, n=n, seed=seed, **options)`` timed and scored (``_score``)."""
    start = time.perf_counter()
    result = sample(target, method, n=n, seed=seed, **options)
    row = _score(target, result, time.perf_counter() - start)
    if method == "leaps":
        row["training_evaluations"] = result.info.training_evaluations
    return row


def matched_baselines(
    target: Any, leaps: dict[str, Any], n: int, seed: int, batches: int
) -> dict[str, dict[str, Any]]:
    """AIS and SMC (one heat-bath sweep per level, n walkers) scored as :func:`timed_run`, at
    the evaluations of a LEAPS row's sampling run ("=sampling") and of its sampling and
    training together ("=total")."""
    rows = {}
    sampling = leaps["evaluations"] - leaps["training_evaluations"]
    for label, budget in (("sampling", sampling), ("total", leaps["evaluations"])):
        levels = max(1, round((budget / n - 1) / 2))  # a sweep is 2 evaluations
        rows[f"ais={label}"] = timed_run(target, "ais", n, seed, steps=levels, sweeps=1)
        rows[f"smc={label}"] = timed_run(target, "smc", n, seed, steps=levels, sweeps=1,
                                         batches=batches)  # fmt: skip
    return rows


def bench_leaps(
    out: Path,
    L: int = 16,
    betas: tuple[float, ...] = (0.4407, 0.3),
    seeds: int = 3,
    n: int = 2000,
    steps: int = 100,
    train_steps: int = 1000,
    batches: int = 10,
    sweeps: int = 1,
    chains: int = 256,
) -> dict[str, Any]:
    """The runs of the module docstring; ``steps`` levels, ``train_steps`` Adam steps and
    ``sweeps`` heat-bath sweeps per level for LEAPS, ``n`` walkers per run, ``chains``
    Swendsen-Wang chains (their sweeps share the total budget)."""
    runs: list[dict[str, Any]] = []
    for beta in betas:
        target = _targets.get("ising", L=L, beta=beta)
        for seed in range(seeds):
            leaps = timed_run(target, "leaps", n, seed, steps=steps, train_steps=train_steps,
                              batches=batches, sweeps=sweeps)  # fmt: skip
            rows = {"leaps": leaps, **matched_baselines(target, leaps, n, seed, batches)}
            kept = max(10, leaps["evaluations"] // chains - 100)  # sweeps after warm-up
            thin = math.ceil(kept / MAX_DRAWS)  # keep at most MAX_DRAWS draws per chain
            rows["swendsen-wang=total"] = timed_run(target, "swendsen-wang",
                                                    chains * (kept // thin), seed,
                                                    chains=chains, warmup=100,
                                                    thin=thin)  # fmt: skip
            for method, row in rows.items():
                runs.append({"beta": beta, "seed": seed, "method": method, **row})
                error = row.get("log_Z_error")
                print(f"beta {beta} seed {seed} {method}: evaluations {row['evaluations']}, "
                      + ("" if error is None else f"log Z error {error:+.3f} +- "
                         f"{row['log_Z_stderr'] or math.nan:.3f}, ")
                      + f"ESS/N {_signed(row.get('ess'), '.3f')}, {row['seconds']:.0f} s",
                      flush=True)  # fmt: skip
    return {"L": L, "betas": list(betas), "seeds": seeds, "n": n, "steps": steps,
            "train_steps": train_steps, "sweeps": sweeps, "chains": chains,
            "runs": runs}  # fmt: skip


def _mean(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.fmean(values) if values else None


def _signed(v: float | None, fmt: str = "+.4f") -> str:
    return "-" if v is None else format(v, fmt)


def format_leaps(m: dict[str, Any]) -> str:
    """A markdown table per beta: means over seeds."""
    lines = []
    for beta in m["betas"]:
        lines += [f"\nIsing L = {m['L']}, beta = {beta} (means over {m['seeds']} seeds; LEAPS: "
                  f"{m['train_steps']} Adam steps, {m['steps']} levels, "
                  f"{m.get('sweeps', 0)} sweeps per level)\n",
                  "| method | evaluations | mean abs log Z error | mean stderr | mean abs z | "
                  "ESS/N | E abs(m) error | chi (ref) | energy error | seconds |",
                  "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        methods = dict.fromkeys(r["method"] for r in m["runs"] if r["beta"] == beta)
        for method in methods:
            rows = [r for r in m["runs"] if r["beta"] == beta and r["method"] == method]
            err = [abs(r["log_Z_error"]) for r in rows if "log_Z_error" in r]
            z = [abs(r["log_Z_z"]) for r in rows if r.get("log_Z_z") is not None]
            lines.append(
                f"| {method} | {_mean(rows, 'evaluations'):.3g} | "
                + (f"{statistics.fmean(err):.3f} | {_mean(rows, 'log_Z_stderr'):.3f} | "
                   f"{statistics.fmean(z):.2f} | " if err else "- | - | - | ")
                + f"{_mean(rows, 'ess'):.3f} | {_signed(_mean(rows, 'abs_m_error'))} | "
                f"{_mean(rows, 'chi'):.2f} ({_signed(rows[0].get('chi_reference'), '.2f')}) | "
                f"{_signed(_mean(rows, 'energy_error'))} | {_mean(rows, 'seconds'):.0f} |"
            )  # fmt: skip
    return "\n".join(lines)
