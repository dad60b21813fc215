r"""Reference log Z and posterior moments of ``item_response`` (hierarchical Rasch model,
30 students x 10 items, d = 41), both forms, by two independent methods.

Run: ``OMP_NUM_THREADS=1 python benchmarks/references/item_response.py`` (about 5 minutes on
one shared core; ``--draws`` changes the 10^6 draws of method A) prints methods A and B and
the constants; ``--check [hmc smc]`` instead runs method C against the constants stored in
``interpolants/targets/item_response.py``.

0. ``simulate`` redraws the shipped responses from their seed and the script checks that
   they equal ``ITEM_RESPONSES``.
A. (the stored numbers) Importance sampling (``importance.py``) of the centred posterior
   from a multivariate Student-t with NU degrees of freedom, 10^6 draws in float64. Neither
   form has a useful joint mode (the centred density is unbounded as sigma -> 0 with
   theta = 0; the non-centred mode sits at sigma = 7.5 with small z, far from the mass, and
   its Laplace log Z is 35 nats low), so the t is fitted instead: it starts from the
   Laplace approximation of (theta, b) given log sigma = 0 (Newton, exact Hessian) with
   sd 0.5 in log sigma, and ROUNDS rounds of ROUND_DRAWS draws match its location and scale
   matrix to the weighted mean and covariance; then it is fixed and fresh draws give the
   estimates. Each draw (u, theta, b) also gives the non-centred z = theta e^{-u}, so the
   same weights give the moments of both forms (and one log Z: the forms differ by the
   Jacobian).
B. Quadrature over u = log sigma: the trapezoid rule on [U_LO, U_HI] with spacing H, where
   at every node the conditional posterior of (theta, b) given u (log-concave: a logistic
   likelihood with Gaussian priors) is integrated by its own Student-t importance sampler
   at its own Laplace approximation. Z = int m(u) du with m(u) = int rho_c(u, theta, b);
   the moments of theta and z = theta e^{-u} come from the nodes' conditional moments.
   Standard errors from REPLICATES independent replicate runs of all the inner samplers;
   the quadrature error from the same sums on every second node (spacing 2 H).
C. ``--check``: a long HMC run (non-centred form, 16 chains, HMC_DRAWS draws, diagonal metric)
   against the stored moments of both forms, and SMC with SMC_WALKERS walkers (ten batches,
   both forms) against the stored log Z.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from importance import StudentT, adapt_student_t, importance, newton_mode

import interpolants as si
from interpolants.targets.item_response import ITEM_RESPONSES

DATA_SEED = 20261207
SEED = 20261208
NU = 10
DRAWS = 1_000_000
U_LO, U_HI, H = -5.0, 2.0, 0.05
ROUNDS, ROUND_DRAWS = 6, 50_000  # adaptation of method A's proposal
INNER = 20_000  # inner draws per node, over all replicates
REPLICATES = 5
HMC_DRAWS = 100_000
SMC_WALKERS = 20_000
CHECKS = ("hmc", "smc")
STUDENTS, ITEMS = 30, 10


def simulate(seed: int = DATA_SEED) -> np.ndarray:
    """The (30, 10) responses: difficulties b ~ N(0, 1), abilities theta ~ N(0, 1), then
    y ~ Bernoulli(sigmoid(theta_j - b_k)), all from numpy.random.default_rng(seed)."""
    rng = np.random.default_rng(seed)
    b = rng.normal(0.0, 1.0, ITEMS)
    theta = rng.normal(0.0, 1.0, STUDENTS)
    p = 1 / (1 + np.exp(-(theta[:, None] - b[None])))
    return (rng.random((STUDENTS, ITEMS)) < p).astype(int)


def both_forms(x: torch.Tensor) -> torch.Tensor:
    """Centred x = (u, theta, b) -> (u, z, b, theta) (n, 41 + 30), z = theta e^{-u}."""
    u, theta, b = x[:, :1], x[:, 1 : 1 + STUDENTS], x[:, 1 + STUDENTS :]
    return torch.cat([u, theta * torch.exp(-u), b, theta], 1)


def split_forms(v: torch.Tensor) -> dict[str, torch.Tensor]:
    """The 71 features as the coordinates of each form."""
    u, z, b, theta = v[:1], v[1 : 1 + STUDENTS], v[1 + STUDENTS : 41], v[41:]
    return {"noncentered": torch.cat([u, z, b]), "centered": torch.cat([u, theta, b])}


def joint_reference(draws: int = DRAWS, seed: int = SEED, nu: int = NU) -> dict[str, object]:
    """Method A: the t proposal starts from the conditional Laplace approximation at u = 0
    (and sd 0.5 in u), is adapted by ROUNDS rounds of moment matching, then fixed."""
    target = si.targets.get("item_response", centered=True, dtype=torch.float64)

    def cond(v: torch.Tensor) -> torch.Tensor:
        return target.log_prob(torch.cat([torch.zeros(v.shape[0], 1, dtype=v.dtype), v], 1))

    mode, h = newton_mode(cond, torch.zeros(target.dim - 1, dtype=torch.float64))
    loc = torch.cat([torch.zeros(1, dtype=torch.float64), mode])
    cov = torch.block_diag(torch.full((1, 1), 0.25, dtype=torch.float64), torch.linalg.inv(h))
    proposal, ess = adapt_student_t(target.log_prob, loc, cov, nu, ROUNDS, ROUND_DRAWS, seed)
    out = importance(target.log_prob, proposal, draws, seed + 100, features=both_forms)
    out["adaptation_ess"] = ess
    return out


def quadrature_reference(
    lo: float = U_LO, hi: float = U_HI, h: float = H, inner: int = INNER,
    replicates: int = REPLICATES, seed: int = SEED + 1,
) -> dict[str, object]:  # fmt: skip
    """Method B: log Z and the moments of both forms, with replicate standard errors."""
    target = si.targets.get("item_response", centered=True, dtype=torch.float64)
    nodes = torch.arange(round((hi - lo) / h) + 1, dtype=torch.float64) * h + lo
    gen_seed = seed
    # per node and replicate: log m(u), E[theta | u], E[theta^2 | u], E[b], E[b^2]
    log_m = torch.zeros(replicates, len(nodes), dtype=torch.float64)
    m1 = torch.zeros(replicates, len(nodes), STUDENTS + ITEMS, dtype=torch.float64)
    m2 = torch.zeros_like(m1)
    start = torch.zeros(STUDENTS + ITEMS, dtype=torch.float64)
    for i, u in enumerate(nodes.tolist()):

        def cond(v: torch.Tensor, u: float = u) -> torch.Tensor:
            full = torch.cat([torch.full((v.shape[0], 1), u, dtype=v.dtype), v], 1)
            return target.log_prob(full)

        mode, hess = newton_mode(cond, start)
        start = mode
        proposal = StudentT(mode, torch.linalg.inv(hess), NU)
        for r in range(replicates):
            gen_seed += 1
            out = importance(cond, proposal, inner // replicates, gen_seed, blocks=1)
            log_m[r, i] = out["log_Z"]
            m1[r, i] = out["mean"]
            m2[r, i] = out["sd"].square() + out["mean"].square()

    def combine(lm, a1, a2, step):
        sub = slice(None, None, step)
        lm, a1, a2, u = lm[..., sub], a1[..., sub, :], a2[..., sub, :], nodes[sub]
        trap = torch.full_like(u, h * step)
        trap[[0, -1]] /= 2
        lw = lm + trap.log()
        log_z = torch.logsumexp(lw, -1)
        w = torch.softmax(lw, -1)  # posterior weights of the nodes
        eu = torch.exp(-u)[:, None]  # z = theta e^{-u}
        theta1, theta2 = a1[..., :STUDENTS], a2[..., :STUDENTS]
        b1, b2 = a1[..., STUDENTS:], a2[..., STUDENTS:]
        feats1 = torch.cat([u.expand_as(lm)[..., None], theta1 * eu, b1, theta1], -1)
        feats2 = torch.cat([u.square().expand_as(lm)[..., None], theta2 * eu.square(), b2,
                            theta2], -1)  # fmt: skip
        mean = (w[..., None] * feats1).sum(-2)
        sd = ((w[..., None] * feats2).sum(-2) - mean.square()).clamp(min=0).sqrt()
        return log_z, mean, sd, w

    log_z, mean, sd, w = combine(log_m.logsumexp(0) - math.log(replicates), m1.mean(0),
                                 m2.mean(0), 1)  # fmt: skip
    rep_z, rep_mean, rep_sd, _ = combine(log_m, m1, m2, 1)
    coarse_z, coarse_mean, coarse_sd, _ = combine(log_m.logsumexp(0) - math.log(replicates),
                                                  m1.mean(0), m2.mean(0), 2)  # fmt: skip
    se = lambda t: t.std(0) / math.sqrt(replicates)  # noqa: E731
    return {
        "log_Z": float(log_z), "log_Z_stderr": float(se(rep_z)),
        "mean": mean, "mean_stderr": se(rep_mean), "sd": sd, "sd_stderr": se(rep_sd),
        "coarse_log_Z": float(coarse_z),
        "coarse_mean_change": float((coarse_mean - mean).abs().max()),
        "coarse_sd_change": float((coarse_sd - sd).abs().max()),
        "edge_weights": (float(w[0]), float(w[-1])),
        "nodes": len(nodes),
    }  # fmt: skip


def compare(a: dict, b: dict, what: str) -> None:
    z = (a["log_Z"] - b["log_Z"]) / math.hypot(a["log_Z_stderr"], b["log_Z_stderr"])
    print(f"{what}: log Z {a['log_Z']:.5f} +- {a['log_Z_stderr']:.5f} vs "
          f"{b['log_Z']:.5f} +- {b['log_Z_stderr']:.5f} ({z:+.2f} se)")  # fmt: skip
    for key in ("mean", "sd"):
        d = a[key] - b[key]
        zz = d / (a[f"{key}_stderr"].square() + b[f"{key}_stderr"].square()).sqrt()
        k = int(zz.abs().argmax())
        print(f"  {key}s: largest |z| {float(zz.abs().max()):.2f} (feature {k}), "
              f"largest |difference| {float(d.abs().max()):.5f}")  # fmt: skip


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:.4f}" for v in values.tolist()) + ")"


def stored() -> dict[str, torch.Tensor | float]:
    """The constants in the module as the 71 features (u, z, b, theta) of ``both_forms``."""
    c = si.targets.get("item_response", centered=True).references
    nc = si.targets.get("item_response", centered=False).references
    out: dict[str, torch.Tensor | float] = {"log_Z": c["log_Z"], "log_Z_stderr": c["log_Z_stderr"]}
    for key in ("mean", "mean_stderr", "sd", "sd_stderr"):
        out[key] = torch.tensor(nc[key] + c[key][1 : 1 + STUDENTS], dtype=torch.float64)
    return out


def run_checks(checks: list[str]) -> None:
    """Method C against the stored constants."""
    a = stored()
    if "hmc" in checks:
        start = time.time()
        nc = si.targets.get("item_response", centered=False, dtype=torch.float64)
        # run on 2026-12-05 (dense metric, then this default one): one of the 16 chains
        # stayed stuck, all its 6250 draws divergent (R-hat 1.15); not yet understood
        r = si.sample(nc, "hmc", n=HMC_DRAWS, seed=SEED, chains=16, warmup=2000)
        x = r.chain_samples.reshape(-1, nc.dim)  # (u, z, b) -> centred (u, e^u z, b)
        x = torch.cat([x[:, :1], x[:, :1].exp() * x[:, 1 : 1 + STUDENTS], x[:, 1 + STUDENTS :]], 1)
        chains = both_forms(x).reshape(*r.chain_samples.shape[:2], -1)
        from interpolants.samplers.diagnostics import integrated_autocorr_time

        ess = chains.shape[0] * chains.shape[1] / integrated_autocorr_time(chains)
        flat = chains.reshape(-1, chains.shape[-1])
        hm, hs = flat.mean(0), flat.std(0)
        hmc = {"log_Z": a["log_Z"], "log_Z_stderr": 1.0, "mean": hm, "mean_stderr": hs / ess.sqrt(),
               "sd": hs, "sd_stderr": hs / (2 * ess).sqrt()}  # fmt: skip
        print(f"C: HMC {tuple(r.chain_samples.shape)}, min ESS {float(ess.min()):.0f}, "
              f"warnings {r.warnings} ({time.time() - start:.0f} s)")  # fmt: skip
        compare(hmc, a, "HMC vs stored (log Z line not used)")
        print(f"  largest |mean error| / sd {float(((hm - a['mean']) / a['sd']).abs().max()):.4f}")
    if "smc" in checks:
        for centered in (False, True):
            start = time.time()
            t = si.targets.get("item_response", centered=centered, dtype=torch.float64)
            r = si.sample(t, "smc", n=SMC_WALKERS, seed=SEED)
            z = (r.log_Z - a["log_Z"]) / math.hypot(r.log_Z_stderr, a["log_Z_stderr"])
            print(f"C: SMC {t.name}, {SMC_WALKERS} walkers in 10 batches: log Z = {r.log_Z:.5f} "
                  f"+- {r.log_Z_stderr:.5f}, difference {r.log_Z - a['log_Z']:+.5f} ({z:+.2f} se) "
                  f"({time.time() - start:.0f} s)")  # fmt: skip


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
    redrawn = ["".join(map(str, row)) for row in simulate()]
    assert tuple(redrawn) == ITEM_RESPONSES, "the seed no longer reproduces ITEM_RESPONSES"
    print("responses reproduced from seed", DATA_SEED)
    start = time.time()
    a = joint_reference(args.draws)
    blocks = torch.tensor(a["block_log_Z"])
    print(f"A: Student-t({NU}) IS, {args.draws} draws: log Z = {a['log_Z']:.5f} +- "
          f"{a['log_Z_stderr']:.5f}, ESS {a['ess']:.0f} ({a['ess'] / args.draws:.3f}); "
          f"{len(blocks)} blocks sd {float(blocks.std()):.5f} (expected "
          f"{a['log_Z_stderr'] * math.sqrt(len(blocks)):.5f}); ESS of the adaptation rounds "
          f"{[round(e) for e in a['adaptation_ess']]} ({time.time() - start:.0f} s)")  # fmt: skip
    start = time.time()
    b = quadrature_reference()
    print(f"B: quadrature over log sigma, {b['nodes']} nodes x {INNER} inner draws: log Z = "
          f"{b['log_Z']:.5f} +- {b['log_Z_stderr']:.5f}; spacing 2H: log Z changes by "
          f"{b['coarse_log_Z'] - b['log_Z']:+.2e}, means by {b['coarse_mean_change']:.1e}, "
          f"sds by {b['coarse_sd_change']:.1e}; weights of the end nodes {b['edge_weights']} "
          f"({time.time() - start:.0f} s)")  # fmt: skip
    compare(a, b, "A vs B")
    print("constants:")
    print(f'    "log_Z": {a["log_Z"]:.5f},\n    "log_Z_stderr": {a["log_Z_stderr"]:.5f},')
    print(f'    "ess": {a["ess"]:.0f},')
    for form in ("centered", "noncentered"):
        print(f'    "{form}": {{')
        for key in ("mean", "mean_stderr", "sd", "sd_stderr"):
            print(f'        "{key}": {_fmt(split_forms(a[key])[form])},')
        print("    },")


if __name__ == "__main__":
    main()
