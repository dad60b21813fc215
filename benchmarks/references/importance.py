r"""Shared tools of the reference scripts for smooth, unimodal posteriors
(``logistic_regression.py``, ``item_response.py``): the posterior mode by Newton's method
with the exact Hessian, and importance sampling from a multivariate Student-t centred there.

Importance sampling. With draws x_i ~ q (a Student-t with nu degrees of freedom, location
the mode m, scale matrix the inverse Hessian of -log rho at m) and weights
w_i = rho*(x_i) Z / q(x_i) = exp(log_prob(x_i) - log q(x_i)):

- log Z_hat = log mean w, standard error sqrt(1 / ESS - 1 / n) (delta method), with the Kish
  effective sample size ESS = (sum w)^2 / sum w^2;
- self-normalised posterior moments of features f(x): mean_hat = sum w f / sum w with
  standard error sqrt(sum w^2 (f - mean_hat)^2) / sum w, and likewise the variance (the
  feature (f - mean)^2), whose error gives the sd's by se(sd) = se(var) / (2 sd).

Sums are accumulated over batches in float64, the weights scaled by a running maximum, and
the moments about the mode (so the power sums do not cancel).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

LogProb = Callable[[Tensor], Tensor]


def newton_mode(
    log_prob: LogProb, x0: Tensor, iterations: int = 100, tol: float = 1e-10
) -> tuple[Tensor, Tensor]:
    """The maximiser of log_prob (a function of (n, d) -> (n,)) from x0 (d,) by Newton steps
    with the exact Hessian (autograd), damped (Levenberg) where -Hessian is not positive
    definite and halved until log_prob does not fall; returns (mode, H = -Hessian there)."""

    def f(v: Tensor) -> Tensor:
        return log_prob(v[None])[0]

    x = x0.clone()
    for _ in range(iterations):
        g = torch.func.grad(f)(x)
        h = -torch.func.hessian(f)(x)
        shift = 0.0  # Levenberg damping where -Hessian is not positive definite
        while torch.linalg.cholesky_ex(h + shift * torch.eye(len(x), dtype=x.dtype))[1]:
            shift = max(2 * shift, 1e-3)
        step = torch.linalg.solve(h + shift * torch.eye(len(x), dtype=x.dtype), g)
        t, fx = 1.0, float(f(x))
        while float(f(x + t * step)) < fx - 1e-12 and t > 1e-8:  # backtrack
            t /= 2
        x = x + t * step
        if shift == 0.0 and float(step.abs().max()) * t < tol:
            break
    else:
        raise RuntimeError("Newton's method did not converge")
    return x, -torch.func.hessian(f)(x)


class StudentT:
    """Multivariate Student-t with location m, scale matrix S = L L^T, nu degrees of freedom."""

    def __init__(self, loc: Tensor, cov: Tensor, nu: float):
        self.loc, self.nu, self.d = loc, float(nu), loc.shape[0]
        self.chol = torch.linalg.cholesky(cov)
        self.log_norm = (
            math.lgamma((self.nu + self.d) / 2) - math.lgamma(self.nu / 2)
            - 0.5 * self.d * math.log(self.nu * math.pi) - float(self.chol.diagonal().log().sum())
        )  # fmt: skip

    def sample(self, n: int, gen: torch.Generator) -> Tensor:
        z = torch.randn(n, self.d, generator=gen, dtype=self.loc.dtype)
        # chi^2_nu = 2 Gamma(nu / 2, 1); torch's Gamma takes no generator, so draw it as the
        # sum of squares for integer nu
        k = int(self.nu)
        if k != self.nu:
            raise ValueError("nu must be an integer here")
        chi2 = torch.randn(n, k, generator=gen, dtype=self.loc.dtype).square().sum(1)
        return self.loc + (z @ self.chol.T) * torch.sqrt(self.nu / chi2)[:, None]

    def log_prob(self, x: Tensor) -> Tensor:
        dev = torch.linalg.solve_triangular(self.chol, (x - self.loc).T, upper=False)
        maha = dev.square().sum(0)
        return self.log_norm - 0.5 * (self.nu + self.d) * torch.log1p(maha / self.nu)


def importance(
    log_prob: LogProb,
    proposal: StudentT,
    draws: int,
    seed: int,
    features: Callable[[Tensor], Tensor] | None = None,
    batch: int = 20_000,
    blocks: int = 10,
) -> dict[str, object]:
    """Importance sampling of log Z and of the posterior mean and sd of ``features(x)``
    (default x), with standard errors (module docstring). ``blocks`` equal groups of batches
    also give separate log Z estimates (their scatter checks the delta-method error)."""
    features = features or (lambda x: x)
    gen = torch.Generator().manual_seed(seed)
    center = features(proposal.loc[None])[0]
    shift = None
    sums: dict[str, Tensor | float] = {}
    block_log_z: list[float] = []
    per_block = max(1, draws // (batch * blocks))
    done, k = 0, 0
    block_sum, block_n = 0.0, 0
    while done < draws:
        m = min(batch, draws - done)
        x = proposal.sample(m, gen)
        lw = log_prob(x) - proposal.log_prob(x)
        lw = torch.where(torch.isfinite(lw), lw, torch.full_like(lw, -math.inf))
        top = float(lw.max())
        if shift is None:
            shift = top
        if top > shift:  # rescale what is accumulated
            scale = math.exp(shift - top)
            for key in sums:
                sums[key] = sums[key] * (scale**2 if key.startswith("ww") else scale)
            block_sum *= scale
            shift = top
        w = torch.exp(lw - shift)
        f = features(x) - center
        ww = w.square()
        for key, value in (
            ("w", w.sum()), ("ww", ww.sum()),
            ("w1", w @ f), ("w2", w @ f.square()),
            ("ww1", ww @ f), ("ww2", ww @ f.square()),
            ("ww3", ww @ f.pow(3)), ("ww4", ww @ f.pow(4)),
        ):  # fmt: skip
            sums[key] = sums.get(key, 0.0) + value
        block_sum = block_sum * 1.0 + float(w.sum())
        block_n += m
        k += 1
        done += m
        if k % per_block == 0 or done == draws:
            block_log_z.append(math.log(block_sum / block_n) + shift)
            block_sum, block_n = 0.0, 0
    assert shift is not None
    sw, sww = float(sums["w"]), float(sums["ww"])
    ess = sw**2 / sww
    log_z = math.log(sw / draws) + shift
    m1 = sums["w1"] / sw  # mean of f - center
    m2 = sums["w2"] / sw
    var = m2 - m1.square()
    # se of the mean: sqrt(sum w^2 (g - m1)^2) / sum w, g = f - center
    mean_se = (sums["ww2"] - 2 * m1 * sums["ww1"] + m1.square() * sww).clamp(min=0).sqrt() / sw
    # se of the variance: the feature h = (g - m1)^2, mean var
    # sum w^2 (h - var)^2 = sum w^2 h^2 - 2 var sum w^2 h + var^2 sum w^2, with the power sums of g
    p = [sww, sums["ww1"], sums["ww2"], sums["ww3"], sums["ww4"]]
    wh = p[2] - 2 * m1 * p[1] + m1.square() * p[0]
    wh2 = (p[4] - 4 * m1 * p[3] + 6 * m1.square() * p[2] - 4 * m1.pow(3) * p[1]
           + m1.pow(4) * p[0])  # fmt: skip
    var_se = (wh2 - 2 * var * wh + var.square() * sww).clamp(min=0).sqrt() / sw
    sd = var.clamp(min=0).sqrt()
    return {
        "log_Z": log_z,
        "log_Z_stderr": math.sqrt(max(1 / ess - 1 / draws, 0.0)),
        "ess": ess,
        "draws": draws,
        "block_log_Z": block_log_z,
        "mean": m1 + center,
        "mean_stderr": mean_se,
        "sd": sd,
        "sd_stderr": var_se / (2 * sd),
    }


def laplace_log_z(log_prob: LogProb, mode: Tensor, hessian: Tensor) -> float:
    """The Laplace approximation log rho*(m) Z + (d/2) log 2 pi - (1/2) log det H."""
    d = mode.shape[0]
    chol = torch.linalg.cholesky(hessian)
    return (
        float(log_prob(mode[None])[0]) + 0.5 * d * math.log(2 * math.pi)
        - float(chol.diagonal().log().sum())
    )  # fmt: skip


def adapt_student_t(
    log_prob: LogProb, loc: Tensor, cov: Tensor, nu: int, rounds: int, draws: int, seed: int
) -> tuple[StudentT, list[float]]:
    """A Student-t proposal fitted by rounds of moment matching (adaptive importance
    sampling): each round draws from the current t and sets its location and scale matrix to
    the self-normalised weighted mean and covariance of the draws. Returns the last
    proposal and the Kish ESS of every round; the final estimate should use fresh draws."""
    gen = torch.Generator().manual_seed(seed)
    proposal = StudentT(loc, cov, nu)
    ess = []
    for _ in range(rounds):
        x = proposal.sample(draws, gen)
        w = torch.softmax(log_prob(x) - proposal.log_prob(x), 0)
        ess.append(float(1 / w.square().sum()))
        mean = w @ x
        dev = x - mean
        proposal = StudentT(mean, (w[:, None] * dev).T @ dev, nu)
    return proposal, ess
