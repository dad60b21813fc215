r"""Reference posterior summaries and evidence of ``radial_velocity`` (The Joker's method).

Run: ``OMP_NUM_THREADS=1 python benchmarks/references/radial_velocity.py`` (15 minutes on a
shared core for the default 2e8 draws; default target:
shipped data, default prior, no jitter; ``--draws`` prior draws, ``--quick`` for a smoke run).

Method (Price-Whelan et al. 2017, arXiv:1610.07602). The model is linear in the offset gamma
and the amplitude K once the nonlinear parameters theta = (P, lambda, e, omega) are fixed:
v(t_j) = gamma + K f_j(theta) with f_j = cos(nu_j + omega) + e cos omega. Under the prior of
the target (:data:`PRIOR`), theta is ln P ~ U(ln 1, ln 1000), lambda, omega ~ U(0, 2 pi),
e ~ U(0, 0.9), independent of gamma ~ N(0, 20^2) and of K, which is Rayleigh with scale 20
(K (cos lambda, sin lambda) ~ N(0, 20^2 I)). So the marginal likelihood

    m(theta) = int int L(theta, K, gamma) p(K) p(gamma) dK dgamma

is closed-form: gamma integrates out as a Gaussian, and the K integral of
K exp(-(K - mu)^2 / 2v) over K >= 0 is v exp(-z^2 / 2) + mu sqrt(2 pi v) Phi(z), z = mu / sqrt(v).
(:func:`log_marginal` is checked against a 2D quadrature of the target's own
``log_likelihood`` over (K, gamma) at a few theta, printed.)

1. Draw ``--draws`` theta from the prior in batches (vectorised, float64, fixed seed).
2. Evidence: Z = E_prior[m(theta)], so log Z = log mean m with the delta-method standard
   error sd(m) / (sqrt(n) mean m) (the prior is normalised, log-Jacobians included, so this is
   the log Z of the target's unnormalised log_prob).
3. Rejection: accept theta with probability m(theta) / m_max, m_max the maximum of m found
   by Nelder-Mead from the best draws (and at least the best draw), so the accepted theta are
   exact independent posterior draws of (P, lambda, e, omega). Reported: the number
   accepted, the Kish effective number of all draws (sum m)^2 / sum m^2, the period quantiles
   of the accepted draws (bootstrap standard errors), and the posterior weights of the
   period modes, both as the fraction of accepted draws (binomial errors) and as the
   importance-weighted fraction over all draws (delta-method errors).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from scipy.optimize import minimize

from interpolants.targets import get
from interpolants.targets.radial_velocity import PRIOR, OrbitParameters

SEED = 20240603
DRAWS = 200_000_000
BATCH = 50_000
CUT = 25.0  # nats below the best draw: drawn 2e8 times, such draws give 0.003 acceptances
#: period windows (days) of the modes seen in the accepted draws
MODES = {"P~14.5": (13.0, 16.5), "P~1.075": (1.05, 1.10), "P~3.9": (3.6, 4.2)}
QUANTILES = (0.05, 0.5, 0.95)


def draw_theta(n: int, gen: torch.Generator) -> torch.Tensor:
    """(n, 4) prior draws of (ln P, lambda, e, omega), float64."""
    u = torch.rand(n, 4, generator=gen, dtype=torch.float64)
    lo, hi = math.log(PRIOR["P_min"]), math.log(PRIOR["P_max"])
    return torch.stack(
        [lo + (hi - lo) * u[:, 0], 2 * math.pi * u[:, 1], PRIOR["e_max"] * u[:, 2],
         2 * math.pi * u[:, 3]],
        1,
    )  # fmt: skip


def _log_h(z: torch.Tensor) -> torch.Tensor:
    """log(phi(z) + z Phi(z)), phi and Phi the standard normal pdf and cdf, stably."""
    log_phi = -0.5 * z.square() - 0.5 * math.log(2 * math.pi)
    direct = torch.special.ndtr(z) * z + log_phi.exp()
    mills = math.sqrt(math.pi / 2) * torch.special.erfcx(-z / math.sqrt(2))  # Phi / phi
    tail = log_phi + torch.log(torch.clamp(1 + z * mills, min=1e-300))
    return torch.where(z > -1, torch.log(direct.clamp(min=1e-300)), tail)


def orbit_shape(theta: torch.Tensor, time_: torch.Tensor, t_ref: float) -> torch.Tensor:
    """f_j = cos(nu_j + omega) + e cos omega, (n, n_obs) float64, for theta (n, 4).

    The mean anomaly is formed and reduced to [-pi, pi) in float64; Kepler's equation is then
    solved by Newton's method in float32 (Danby's start) until every correction is below
    1e-5 rad (about 6 steps; the float32 rounding of f, about 1e-7, changes log m by less
    than 1e-5), and nu enters through cos nu = (cos E - e) / (1 - e cos E),
    sin nu = sqrt(1 - e^2) sin E / (1 - e cos E).
    """
    P = theta[:, :1].exp()
    lam, e, omega = theta[:, 1:2], theta[:, 2:3], theta[:, 3:4]
    M = 2 * math.pi * (time_ - t_ref) / P + lam - omega
    M = (torch.remainder(M + math.pi, 2 * math.pi) - math.pi).float()
    e32 = e.float()
    E = M + 0.85 * e32 * torch.sign(torch.sin(M))
    for _ in range(30):
        sin_E, cos_E = torch.sin(E), torch.cos(E)
        step = (E - e32 * sin_E - M) / (1 - e32 * cos_E)
        E = E - step
        if float(step.abs().max()) < 1e-5:
            break
    sin_E, cos_E = torch.sin(E).double(), torch.cos(E).double()
    denom = 1 - e * cos_E
    cos_nu, sin_nu = (cos_E - e) / denom, torch.sqrt(1 - e.square()) * sin_E / denom
    return cos_nu * torch.cos(omega) - sin_nu * torch.sin(omega) + e * torch.cos(omega)


def log_marginal(theta: torch.Tensor, data, t_ref: float) -> torch.Tensor:
    """log m(theta) for theta (n, 4) = (ln P, lambda, e, omega): (n,)."""
    time_, y, err = data
    f = orbit_shape(theta, time_, t_ref)
    w = 1 / err.square()
    s_k, s_g = PRIOR["K_scale"], PRIOR["gamma_scale"]
    Sw, Sy, Syy = float(w.sum()), float((w * y).sum()), float((w * y * y).sum())
    Sf, Sff, Sfy = (w * f).sum(1), (w * f * f).sum(1), (w * f * y).sum(1)
    H00, H01, H11 = Sw + 1 / s_g**2, Sf, Sff + 1 / s_k**2
    det = H00 * H11 - H01.square()
    mu_g = (H11 * Sy - H01 * Sfy) / det
    mu_k = (H00 * Sfy - H01 * Sy) / det
    Q = Syy - (Sy * mu_g + Sfy * mu_k)
    v = H00 / det
    z = mu_k / v.sqrt()
    const = -0.5 * float(torch.log(2 * math.pi / w).sum())
    const += -2 * math.log(s_k) - 0.5 * math.log(2 * math.pi * s_g**2)
    return (
        const
        - 0.5 * Q
        + 0.5 * math.log(2 * math.pi / H00)
        + v.log()
        + 0.5 * math.log(2 * math.pi)
        + _log_h(z)
    )


def quadrature_check(target, theta: torch.Tensor) -> list[tuple[float, float]]:
    """(closed form, 2D quadrature of the target's likelihood x prior over K, gamma) at theta.

    The quadrature is the rectangle rule on a 401 x 401 grid over +-12 conditional standard
    deviations around the least-squares (K, gamma), with K >= 0, using the target's own
    ``log_likelihood`` (its Kepler solver and parametrisation)."""
    out = []
    s_k, s_g = PRIOR["K_scale"], PRIOR["gamma_scale"]
    time_, y, err = target.data
    for row in theta:
        f = orbit_shape(row[None], time_, target.t_ref)[0]
        A = torch.stack([torch.ones_like(f), f], 1) / err[:, None]
        H = A.T @ A + torch.diag(torch.tensor([1 / s_g**2, 1 / s_k**2], dtype=torch.float64))
        mean = torch.linalg.solve(H, A.T @ (y / err))
        sd = torch.linalg.inv(H).diagonal().sqrt()
        g = torch.linspace(float(mean[0] - 12 * sd[0]), float(mean[0] + 12 * sd[0]), 401)
        K = torch.linspace(
            max(1e-9, float(mean[1] - 12 * sd[1])), max(1e-8, float(mean[1] + 12 * sd[1])), 401
        )
        KK, GG = torch.meshgrid(K.double(), g.double(), indexing="ij")
        n = KK.numel()
        p = OrbitParameters(
            row[0].exp().expand(n), KK.flatten(), row[2].expand(n), row[3].expand(n),
            row[1].expand(n), GG.flatten(), torch.zeros(n, dtype=torch.float64),
        )  # fmt: skip
        x = target.from_physical(p)
        log_prior = (
            KK.log() - 2 * math.log(s_k) - KK.square() / (2 * s_k**2)
            - 0.5 * math.log(2 * math.pi * s_g**2) - GG.square() / (2 * s_g**2)
        ).flatten()  # fmt: skip
        integrand = target.log_likelihood(x) + log_prior
        cell = float((K[1] - K[0]) * (g[1] - g[0]))
        quad = float(torch.logsumexp(integrand, 0)) + math.log(cell)
        closed = float(log_marginal(row[None], target.data, target.t_ref)[0])
        out.append((closed, quad))
    return out


def maximise(start: torch.Tensor, data, t_ref: float) -> tuple[float, torch.Tensor]:
    """Nelder-Mead on log m from each start row (e kept in [0, e_max)); best (value, theta)."""
    e_max = PRIOR["e_max"]

    def negative(z: np.ndarray) -> float:
        th = torch.tensor(z, dtype=torch.float64)[None].clone()
        th[0, 2] = e_max * torch.sigmoid(th[0, 2])
        return -float(log_marginal(th, data, t_ref)[0])

    best, arg = -math.inf, start[0]
    for row in start:
        z0 = row.clone()
        z0[2] = torch.logit(torch.clamp(row[2] / e_max, 1e-6, 1 - 1e-6))
        res = minimize(negative, z0.numpy(), method="Nelder-Mead",
                       options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000})  # fmt: skip
        if -res.fun > best:
            best, arg = -res.fun, torch.tensor(res.x, dtype=torch.float64)
            arg[2] = e_max * torch.sigmoid(arg[2])
    return best, arg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=DRAWS)
    parser.add_argument("--quick", action="store_true", help="a smoke run (2 million draws)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    draws = 2_000_000 if args.quick else args.draws
    target = get("radial_velocity", dtype=torch.float64)
    data, t_ref = target.data, target.t_ref
    gen = torch.Generator().manual_seed(SEED)

    t0 = time.time()
    # streaming sums: per batch log sum m and log sum m^2; keep the draws within CUT nats of
    # the best (they carry all but a negligible part of the weight and of the acceptances)
    lse, lse2, counts, kept_th, kept_lm, best = [], [], [], [], [], -math.inf
    for start in range(0, draws, BATCH):
        th = draw_theta(min(BATCH, draws - start), gen)
        lm = log_marginal(th, data, t_ref)
        lse.append(torch.logsumexp(lm, 0))
        lse2.append(torch.logsumexp(2 * lm, 0))
        counts.append(lm.shape[0])
        best = max(best, float(lm.max()))
        sel = lm > best - CUT
        kept_th.append(th[sel])
        kept_lm.append(lm[sel])
    seconds = time.time() - t0
    th_k, lm_k = torch.cat(kept_th), torch.cat(kept_lm)
    sel = lm_k > best - CUT
    th_k, lm_k = th_k[sel], lm_k[sel]
    lse, lse2 = torch.stack(lse), torch.stack(lse2)
    counts_t = torch.tensor(counts, dtype=torch.float64)

    n = sum(counts)
    log_sum = float(torch.logsumexp(lse, 0))
    log_sum2 = float(torch.logsumexp(lse2, 0))
    log_Z = log_sum - math.log(n)
    ess = math.exp(2 * log_sum - log_sum2)
    # var(m) / mean(m)^2 = n sum m^2 / (sum m)^2 - 1
    se_log_Z = math.sqrt(max(n / ess - 1, 0.0) / (n - 1))
    block_log_Z = torch.stack([
        torch.logsumexp(lse[i::10], 0) - counts_t[i::10].sum().log() for i in range(10)
    ])  # fmt: skip
    best_seen = best

    order = torch.argsort(lm_k, descending=True)
    chosen: list[int] = []  # the best draws at 10 distinct periods start the optimiser
    for i in order.tolist():
        if all(abs(float(th_k[i, 0] - th_k[j, 0])) > 0.01 for j in chosen):
            chosen.append(i)
        if len(chosen) == 10:
            break
    starts = th_k[chosen]
    log_m_max, arg_max = maximise(starts, data, t_ref)
    log_m_max = max(log_m_max, best_seen)

    u = torch.rand(lm_k.shape[0], generator=gen, dtype=torch.float64)
    accepted = th_k[u.log() < lm_k - log_m_max]
    P_acc = accepted[:, 0].exp()
    P_k = th_k[:, 0].exp()

    print(f"radial_velocity (shipped data, default prior, no jitter): {n} prior draws")
    print(f"  time {seconds:.0f} s for the draws")
    print(f"  log Z = {log_Z:.5f} +- {se_log_Z:.5f} (delta method)")
    print(f"  log Z over 10 blocks: sd/sqrt(10) = {float(block_log_Z.std()) / math.sqrt(10):.5f}")
    print(f"  Kish effective number of draws (sum m)^2 / sum m^2 = {ess:.1f}")
    print(f"  log m_max = {log_m_max:.5f} (best draw {best_seen:.5f}), at ln P, lambda, e, omega")
    print(f"    = {[round(float(v), 5) for v in arg_max]} (P = {math.exp(arg_max[0]):.5f} d)")
    left_out = 1 - float(torch.exp(torch.logsumexp(lm_k, 0) - log_sum))
    print(
        f"  kept {lm_k.shape[0]} draws within {CUT} nats of the best"
        f" (weight left out {left_out:.1e})"
    )
    print(f"  accepted: {accepted.shape[0]} of {n} (rate {accepted.shape[0] / n:.3g})")
    boot = torch.Generator().manual_seed(SEED + 1)
    qs = torch.tensor(QUANTILES, dtype=torch.float64)
    q = torch.quantile(P_acc, qs)
    reps = torch.stack([
        torch.quantile(P_acc[torch.randint(len(P_acc), (len(P_acc),), generator=boot)], qs)
        for _ in range(500)
    ])  # fmt: skip
    for level, value, se in zip(QUANTILES, q, reps.std(0), strict=True):
        print(f"  period quantile {level:.2f}: {float(value):.4f} +- {float(se):.4f} d")
    wk = torch.exp(lm_k - best_seen)
    total = math.exp(log_sum - best_seen)
    total2 = math.exp(log_sum2 - 2 * best_seen)
    for name, (lo, hi) in MODES.items():
        inside = ((P_acc > lo) & (P_acc < hi)).double()
        p_acc = float(inside.mean())
        se_acc = math.sqrt(p_acc * (1 - p_acc) / len(P_acc))
        ind = ((P_k > lo) & (P_k < hi)).double()
        p_w = float((wk * ind).sum()) / total
        # delta method for the self-normalised weight (all other draws have f = 0)
        rest = max(total2 - float(wk.square().sum()), 0.0)
        se_w = math.sqrt(float((wk.square() * (ind - p_w).square()).sum()) + p_w**2 * rest)
        se_w /= total
        print(
            f"  mode {name} ({lo} < P < {hi}): accepted fraction {p_acc:.4f} +- {se_acc:.4f}; "
            f"weighted {p_w:.4f} +- {se_w:.4f}"
        )
    inside_any = torch.zeros(len(P_acc), dtype=torch.bool)
    for lo, hi in MODES.values():
        inside_any |= (P_acc > lo) & (P_acc < hi)
    print(f"  accepted outside these windows: {int((~inside_any).sum())}")
    print(f"  posterior median e (accepted): {float(accepted[:, 2].median()):.4f}")
    check = quadrature_check(target, torch.cat([arg_max[None], th_k[order[:2]]]))
    for closed, quad in check:
        print(f"  check log m: closed form {closed:.6f}, 2D quadrature {quad:.6f}")


if __name__ == "__main__":
    main()
