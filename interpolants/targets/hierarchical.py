r"""A hierarchical normal model with a scale parameter: the eight schools (Rubin 1981), in the
centred form (funnel geometry) and the non-centred form, with exact log Z and posterior
moments by one-dimensional quadrature.

Model (posteriordb's ``eight_schools``): y_j ~ N(theta_j, sigma_j^2), theta_j ~ N(mu, tau^2),
mu ~ N(0, s_mu^2), tau ~ half-Cauchy(0, s_tau), j = 1..J (J = 8, s_mu = s_tau = 5). The
sampler sees unconstrained coordinates:

- centred: x = (mu, log tau, theta_1..J),
  log rho(x) = log N(mu; 0, s_mu^2) + log HC(tau; s_tau) + log tau
             + sum_j [log N(theta_j; mu, tau^2) + log N(y_j; theta_j, sigma_j^2)];
- non-centred: x = (mu, log tau, eta_1..J), theta_j = mu + tau eta_j,
  log rho(x) = log N(mu; 0, s_mu^2) + log HC(tau; s_tau) + log tau
             + sum_j [log N(eta_j; 0, 1) + log N(y_j; mu + tau eta_j, sigma_j^2)].

Both integrate to the same evidence Z = p(y) (the Jacobians log tau and J log tau are inside).

Exact references. Given tau, theta and mu integrate out in closed form:
y | tau ~ N(0, D + s_mu^2 1 1^T), D = diag(sigma_j^2 + tau^2), so
Z = int p(y | tau) HC(tau) tau d(log tau), a smooth one-dimensional integral (trapezoid rule
on a fine grid in log tau, float64). The posterior of mu given tau is Gaussian (precision
1/s_mu^2 + sum_j 1/(sigma_j^2 + tau^2)), and so is theta_j given (mu, tau) (precision
1/sigma_j^2 + 1/tau^2): every posterior mean and variance of the coordinates is the same
quadrature over log tau of conditional moments (:func:`eight_schools_reference`).

References:
    D. B. Rubin, Estimation in parallel randomized experiments, J. Educ. Stat. 6 (1981) 377.
    A. Gelman et al., Bayesian Data Analysis, 3rd ed., section 5.5.
    M. Magnusson et al., posteriordb (2022), arXiv:2407.04967 (``eight_schools-eight_schools_
    centered`` and ``..._noncentered``).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor

from ..checks import boolean, float_dtype, positive_int
from ..distributions import DiagonalNormal
from .base import Target, choose_base, log_half_cauchy_draws

__all__ = [
    "EIGHT_SCHOOLS_SIGMA",
    "EIGHT_SCHOOLS_Y",
    "EightSchools",
    "EightSchoolsPrior",
    "eight_schools_reference",
]

EIGHT_SCHOOLS_Y = (28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0)
EIGHT_SCHOOLS_SIGMA = (15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0)
LOG_2PI = math.log(2 * math.pi)
MU_SCALE = TAU_SCALE = 5.0  # prior scales of mu (normal) and tau (half-Cauchy)


def _log_half_cauchy(tau: Tensor, scale: float) -> Tensor:
    """log of the half-Cauchy density 2 / (pi s (1 + (tau / s)^2)) on tau > 0."""
    return math.log(2 / (math.pi * scale)) - torch.log1p((tau / scale).square())


def _log_normal(x: Tensor, mean: Tensor | float, sd: Tensor | float) -> Tensor:
    sd_t = torch.as_tensor(sd, dtype=x.dtype, device=x.device)
    return -0.5 * ((x - mean) / sd_t).square() - torch.log(sd_t) - 0.5 * LOG_2PI


@lru_cache(maxsize=8)
def eight_schools_reference(
    centered: bool = True, mu_scale: float = 5.0, tau_scale: float = 5.0, points: int = 40_001
) -> dict[str, object]:
    r"""log Z and the posterior mean and sd of every coordinate, by quadrature over u = log tau
    (module docstring): the trapezoid rule on [-20, 12] with ``points`` nodes, float64.

    Returns:
        {"log_Z", "mean" (dim,), "sd" (dim,)} for the coordinates of the chosen form.
    """
    y = torch.tensor(EIGHT_SCHOOLS_Y, dtype=torch.float64)
    s2 = torch.tensor(EIGHT_SCHOOLS_SIGMA, dtype=torch.float64).square()
    u = torch.linspace(-20.0, 12.0, points, dtype=torch.float64)
    tau = u.exp()
    v = s2[None] + tau[:, None].square()  # (K, J): Var(y_j | mu, tau)
    # p(y | tau) for y ~ N(0, D + m^2 1 1^T): Sherman-Morrison and the matrix determinant lemma
    a = 1.0 / mu_scale**2 + (1.0 / v).sum(1)  # precision of mu | y, tau
    b = (y / v).sum(1)
    quad = (y.square() / v).sum(1) - b.square() / a
    log_det = torch.log(v).sum(1) + math.log(mu_scale**2) + torch.log(a)
    log_py = -0.5 * (quad + log_det + len(y) * LOG_2PI)
    log_w = log_py + _log_half_cauchy(tau, tau_scale) + u  # the density over u = log tau
    du = float(u[1] - u[0])
    trap = torch.full_like(u, du)
    trap[[0, -1]] = du / 2
    log_z = float(torch.logsumexp(log_w + trap.log(), 0))
    post = torch.softmax(log_w + trap.log(), 0)  # weights of the nodes under p(u | y)
    mu_mean, mu_var = b / a, 1.0 / a  # mu | tau, y
    # theta_j | tau, y: E = (y_j / s_j^2 + E[mu] / tau^2) / p_j, p_j = 1/s_j^2 + 1/tau^2,
    # Var = 1 / p_j + (Var mu) (1 / (tau^2 p_j))^2
    p = 1.0 / s2[None] + 1.0 / tau[:, None].square()
    lam = 1.0 / (tau[:, None].square() * p)
    th_mean = (y[None] / s2[None]) / p + lam * mu_mean[:, None]
    th_var = 1.0 / p + lam.square() * mu_var[:, None]
    if centered:
        local_mean, local_var = th_mean, th_var
    else:  # eta = (theta - mu) / tau given tau: a linear map of the Gaussian (mu, theta)
        cov_mt = lam * mu_var[:, None]  # Cov(mu, theta_j | tau, y)
        local_mean = (th_mean - mu_mean[:, None]) / tau[:, None]
        local_var = (th_var + mu_var[:, None] - 2 * cov_mt) / tau[:, None].square()
    means = torch.cat([mu_mean[:, None], u[:, None], local_mean], 1)
    second = torch.cat([(mu_var + mu_mean.square())[:, None], u[:, None].square(),
                        local_var + local_mean.square()], 1)  # fmt: skip
    m1 = (post[:, None] * means).sum(0)
    m2 = (post[:, None] * second).sum(0)
    return {"log_Z": log_z, "mean": m1, "sd": (m2 - m1.square()).clamp(min=0).sqrt()}


class EightSchoolsPrior:
    r"""The eight-schools prior as a normalised density on the sampler's coordinates:
    mu ~ N(0, 5^2), u = log tau with tau ~ half-Cauchy(0, 5) (density HC(e^u) e^u), and
    theta_j ~ N(mu, tau^2) (centred) or eta_j ~ N(0, 1) (non-centred); exact draws by
    ancestral sampling.

    As an annealing base it makes the path p_beta = prior x likelihood^beta (likelihood
    tempering, as in SMC for Bayesian models, Chopin 2002, Biometrika 89, 539): the walkers
    start with the prior's funnel already in place, which no Gaussian base gives them.

    ``log_tau_normal=(m, s)`` puts u = log tau ~ N(m, s^2) in the half-Cauchy's place: the
    funnel without its tail (half-Cauchy draws of tau reach 1e10, and so would theta), the
    centred form's ``transport_base`` for learned transports.
    """

    def __init__(
        self,
        centered: bool = True,
        dtype: torch.dtype = torch.float32,
        log_tau_normal: tuple[float, float] | None = None,
    ):
        self.centered = boolean("centered", centered)
        self.dtype = float_dtype(dtype)
        self.event_shape = torch.Size((10,))
        if log_tau_normal is not None:
            if len(log_tau_normal) != 2:
                raise ValueError(f"log_tau_normal must be (mean, sd), got {log_tau_normal!r}")
            loc, scale = (float(v) for v in log_tau_normal)
            if not (math.isfinite(loc) and math.isfinite(scale) and scale > 0):
                raise ValueError(
                    f"log_tau_normal must be (mean, sd) with sd > 0, got {log_tau_normal!r}"
                )
            log_tau_normal = (loc, scale)
        self.log_tau_normal = log_tau_normal

    def _log_prior_u(self, u: Tensor) -> Tensor:
        """The density of u = log tau: the half-Cauchy's (with its Jacobian) or the normal's."""
        if self.log_tau_normal is None:
            return _log_half_cauchy(u.exp(), TAU_SCALE) + u
        return _log_normal(u, *self.log_tau_normal)

    def log_prob(self, x: Tensor) -> Tensor:
        if x.ndim != 2 or x.shape[1:] != self.event_shape:
            raise ValueError(f"x must have shape (n, 10), got {tuple(x.shape)}")
        mu, u, local = x[:, 0], x[:, 1], x[:, 2:]
        lp = _log_normal(mu, 0.0, MU_SCALE) + self._log_prior_u(u)
        if self.centered:
            return lp + _log_normal(local, mu[:, None], u.exp()[:, None]).sum(1)
        return lp + _log_normal(local, 0.0, 1.0).sum(1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        n = positive_int("n", n)
        mu = MU_SCALE * torch.randn(n, generator=generator, dtype=torch.float64)
        if self.log_tau_normal is None:
            u = log_half_cauchy_draws(n, TAU_SCALE, generator)
        else:
            loc, scale = self.log_tau_normal
            u = loc + scale * torch.randn(n, generator=generator, dtype=torch.float64)
        z = torch.randn(n, 8, generator=generator, dtype=torch.float64)
        local = mu[:, None] + u.exp()[:, None] * z if self.centered else z
        return torch.cat([mu[:, None], u[:, None], local], 1).to(self.dtype)


class EightSchools(Target):
    r"""The eight-schools posterior (module docstring) in d = 10 unconstrained coordinates.

    Arguments:
        centered: the centred form (mu, log tau, theta), a funnel in (log tau, theta), or the
            non-centred form (mu, log tau, eta).
        base: "prior" (:class:`EightSchoolsPrior`: annealing then tempers the likelihood)
            or "gaussian" (N(0, 5^2) for mu, N(1, 1.5^2) for log tau, N(0, 10^2) for theta
            or N(0, 1) for eta); default (None) the one measured best for the form: the
            prior for the centred form, whose neck SMC's walkers never reach from the
            Gaussian (log Z -0.6 before any rerun) and start in from the prior; the
            Gaussian for the non-centred form, where both are right and the prior's
            half-Cauchy tail makes the bias check rerun SMC at 5-20x the evaluations
            (benchmarks/RESULTS.md, "A prior as base").
        dtype: float32 or float64.

    ``log_Z`` and ``references`` (posterior mean and sd of every coordinate) are exact up to
    the quadrature's ~1e-10.

    ``transport_base``, the base of learned transports (NETS, flow-MCMC), is the Gaussian for
    the non-centred form and, for the centred form, the prior with log tau ~ N(1, 1.5^2) in
    the half-Cauchy's place (``EightSchoolsPrior(log_tau_normal=(1, 1.5))``): the funnel's
    neck is in place from the start, and no draw reaches the half-Cauchy's 1e10. NETS's
    defaults were 0.14-0.23 low from the Gaussian, and within 0.05 over five seeds from this
    base (benchmarks/RESULTS.md, "A tamed prior for learned transports").

    Example:
        >>> t = EightSchools(centered=False)
        >>> t.dim, round(t.log_Z, 4)
    """

    def __init__(
        self, centered: bool = True, base: str | None = None, dtype: torch.dtype = torch.float32
    ):
        self.centered = boolean("centered", centered)
        self.dtype = float_dtype(dtype)
        self.y = torch.tensor(EIGHT_SCHOOLS_Y, dtype=self.dtype)
        self.sigma = torch.tensor(EIGHT_SCHOOLS_SIGMA, dtype=self.dtype)
        ref = eight_schools_reference(self.centered)
        local_scale = 10.0 if self.centered else 1.0
        self.prior = EightSchoolsPrior(self.centered, self.dtype)
        gaussian = DiagonalNormal(
            torch.tensor([0.0, 1.0] + [0.0] * 8, dtype=self.dtype),
            torch.tensor([MU_SCALE, 1.5] + [local_scale] * 8, dtype=self.dtype),
        )
        if base is None:
            base = "prior" if self.centered else "gaussian"
        base = choose_base(base, self.prior, gaussian)
        # learned transports: the centred form's funnel without the half-Cauchy's tail
        self._transport_base = (
            EightSchoolsPrior(True, self.dtype, log_tau_normal=(1.0, 1.5))
            if self.centered
            else gaussian
        )
        super().__init__(
            self._log_density,
            dim=10,
            log_Z=ref["log_Z"],  # type: ignore[arg-type]
            base=base,
            name="eight_schools" + ("" if self.centered else "_noncentered"),
            references={
                "log_Z": ref["log_Z"],
                "mean": ref["mean"].tolist(),  # type: ignore[union-attr]
                "sd": ref["sd"].tolist(),  # type: ignore[union-attr]
                "coordinates": self.coordinate_names,
                "source": "exact: quadrature over log tau (eight_schools_reference)",
            },
        )

    @property
    def coordinate_names(self) -> list[str]:
        local = "theta" if self.centered else "eta"
        return ["mu", "log_tau"] + [f"{local}[{j}]" for j in range(8)]

    def _log_density(self, x: Tensor) -> Tensor:
        mu, u, local = x[:, 0], x[:, 1], x[:, 2:]
        y, sigma = self.y.to(x), self.sigma.to(x)
        theta = local if self.centered else mu[:, None] + u.exp()[:, None] * local
        like = _log_normal(y[None], theta, sigma[None]).sum(1)
        return self.prior.log_prob(x) + like
