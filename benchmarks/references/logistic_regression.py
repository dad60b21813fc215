r"""Reference log Z and posterior moments of ``logistic_regression`` (breast cancer, d = 11).

Run: ``OMP_NUM_THREADS=1 python benchmarks/references/logistic_regression.py`` (under a
minute on one core; ``--draws`` changes the 10^6 draws) prints the references;
``--check [t30 hmc smc]`` instead runs the cross-checks against the constants stored in
``interpolants/targets/regression.py`` (HMC about 6 minutes on a shared core).

1. The posterior mode by Newton's method with the exact Hessian H (float64), and the
   Laplace approximation of log Z (printed for comparison).
2. Importance sampling (``importance.py``) from the multivariate Student-t with NU degrees of
   freedom, location the mode and scale matrix H^{-1}: log Z with its delta-method standard
   error, the Kish ESS, log Z of ten blocks of draws (their scatter against the error), and
   the posterior mean and sd of every coefficient with standard errors. These are the
   numbers written into ``interpolants/targets/regression.py``.
3. ``--check``: (t30) a second importance sampler (a Student-t with 30 degrees of freedom,
   another seed); (hmc) a long HMC run of the library (16 chains, 2 x 10^5 draws, dense
   metric), its means and sds against the stored ones in units of the combined standard
   error (HMC's from its effective sample size); (smc) SMC with SMC_WALKERS walkers (ten
   batches), its log Z against the stored one.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from importance import StudentT, importance, laplace_log_z, newton_mode

import interpolants as si

SEED = 20261206
NU = 10
DRAWS = 1_000_000
SMC_WALKERS = 20_000
CHECKS = ("t30", "hmc", "smc")


def target64():
    return si.targets.get("logistic_regression", dtype=torch.float64)


def laplace(target):
    """(mode, H, Laplace log Z)."""
    mode, h = newton_mode(target.log_prob, torch.zeros(target.dim, dtype=torch.float64))
    return mode, h, laplace_log_z(target.log_prob, mode, h)


def reference(draws: int = DRAWS, seed: int = SEED, nu: int = NU) -> dict[str, object]:
    target = target64()
    mode, h, _ = laplace(target)
    proposal = StudentT(mode, torch.linalg.inv(h), nu)
    return importance(target.log_prob, proposal, draws, seed)


def show(name: str, out: dict) -> None:
    blocks = torch.tensor(out["block_log_Z"])
    print(
        f"{name}: log Z = {out['log_Z']:.5f} +- {out['log_Z_stderr']:.5f}, ESS = {out['ess']:.0f} "
        f"of {out['draws']} ({out['ess'] / out['draws']:.3f}); {len(blocks)} blocks: sd "
        f"{float(blocks.std()):.5f} (expected {out['log_Z_stderr'] * math.sqrt(len(blocks)):.5f})"
    )


def stored() -> dict[str, object]:
    """The constants in the module, as tensors."""
    refs = target64().references
    out = {k: refs[k] for k in ("log_Z", "log_Z_stderr", "draws")}
    for k in ("mean", "mean_stderr", "sd", "sd_stderr"):
        out[k] = torch.tensor(refs[k], dtype=torch.float64)
    return out


def run_checks(checks: list[str]) -> None:
    """The cross-checks against the stored constants (module docstring, step 3)."""
    target = target64()
    names = target.coordinate_names
    out = stored()
    if "t30" in checks:
        start = time.time()
        other = reference(out["draws"], seed=SEED + 1, nu=30)
        show("Student-t(30) IS, another seed", other)
        z = (other["log_Z"] - out["log_Z"]) / math.hypot(other["log_Z_stderr"], out["log_Z_stderr"])
        zm = (other["mean"] - out["mean"]) / (
            other["mean_stderr"].square() + out["mean_stderr"].square()
        ).sqrt()
        zs = (other["sd"] - out["sd"]) / (
            other["sd_stderr"].square() + out["sd_stderr"].square()
        ).sqrt()
        print(
            f"  log Z difference {z:+.2f} se; largest |mean z| {float(zm.abs().max()):.2f}, "
            f"largest |sd z| {float(zs.abs().max()):.2f} ({time.time() - start:.0f} s)"
        )
    if "hmc" in checks:
        start = time.time()
        r = si.sample(target, "hmc", n=200_000, seed=SEED, chains=16, warmup=2000,
                      mass_matrix="dense")  # fmt: skip
        draws = r.chain_samples  # (draws, chains, dim)
        flat = draws.reshape(-1, target.dim)
        ess = _ess(draws)
        hm, hs = flat.mean(0), flat.std(0)
        se_m, se_s = hs / ess.sqrt(), hs / (2 * ess).sqrt()  # sd's se: Gaussian approximation
        zm = (hm - out["mean"]) / (se_m.square() + out["mean_stderr"].square()).sqrt()
        zs = (hs - out["sd"]) / (se_s.square() + out["sd_stderr"].square()).sqrt()
        print(
            f"HMC {tuple(draws.shape)}: min ESS {float(ess.min()):.0f}, warnings {r.warnings}; "
            f"largest |mean z| {float(zm.abs().max()):.2f} ({names[int(zm.abs().argmax())]}), "
            f"largest |sd z| {float(zs.abs().max()):.2f} ({names[int(zs.abs().argmax())]}); "
            f"largest |mean error| / sd {float(((hm - out['mean']) / out['sd']).abs().max()):.4f} "
            f"({time.time() - start:.0f} s)"
        )
    if "smc" in checks:
        start = time.time()
        r = si.sample(target, "smc", n=SMC_WALKERS, seed=SEED)
        z = (r.log_Z - out["log_Z"]) / math.hypot(r.log_Z_stderr, out["log_Z_stderr"])
        print(
            f"SMC, {SMC_WALKERS} walkers in 10 batches: log Z = {r.log_Z:.5f} +- "
            f"{r.log_Z_stderr:.5f}, difference {r.log_Z - out['log_Z']:+.5f} ({z:+.2f} se) "
            f"({time.time() - start:.0f} s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--draws", type=int, default=DRAWS)
    parser.add_argument("--check", nargs="*", choices=CHECKS, default=None,
                        help="only run these cross-checks against the stored constants "
                        "(all when none is named)")  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.check is not None:
        run_checks(args.check or list(CHECKS))
        return
    target = target64()
    names = target.coordinate_names
    mode, h, lap = laplace(target)
    cov = torch.linalg.inv(h)
    corr = cov / torch.outer(cov.diagonal().sqrt(), cov.diagonal().sqrt())
    off = corr - torch.eye(target.dim, dtype=torch.float64)
    i, j = divmod(int(off.abs().argmax()), target.dim)
    print(f"mode {[round(v, 4) for v in mode.tolist()]}")
    print(
        f"Laplace log Z = {lap:.5f}; largest |correlation| {float(off[i, j]):.3f} "
        f"({names[i]}, {names[j]}); condition number of H {float(torch.linalg.cond(h)):.0f}"
    )
    start = time.time()
    out = reference(args.draws)
    show(f"Student-t({NU}) IS", out)
    print(f"  ({time.time() - start:.0f} s)")
    print("coordinate | mean | se | sd | se")
    for k, name in enumerate(names):
        print(f"{name} | {float(out['mean'][k]):.5f} | {float(out['mean_stderr'][k]):.5f} | "
              f"{float(out['sd'][k]):.5f} | {float(out['sd_stderr'][k]):.5f}")  # fmt: skip
    print("constants:")
    print(f'    "log_Z": {out["log_Z"]:.5f},')
    print(f'    "log_Z_stderr": {out["log_Z_stderr"]:.5f},')
    for key in ("mean", "mean_stderr", "sd", "sd_stderr"):
        print(f'    "{key}": ({", ".join(f"{v:.5f}" for v in out[key].tolist())}),')
    print(f'    "ess": {out["ess"]:.0f},')


def _ess(chains: torch.Tensor) -> torch.Tensor:
    """Effective sample size per coordinate of (draws, chains, dim) by the library's
    integrated autocorrelation time."""
    from interpolants.samplers.diagnostics import integrated_autocorr_time

    draws, n_chains, _ = chains.shape
    return draws * n_chains / integrated_autocorr_time(chains)


if __name__ == "__main__":
    main()
