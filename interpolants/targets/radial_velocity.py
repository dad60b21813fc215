r"""The posterior of a one-planet Keplerian orbit given radial velocities: ``radial_velocity``.

Model (all times in days, velocities in m/s): for an orbit of period P, semi-amplitude K,
eccentricity e, argument of periastron omega, mean longitude lambda at the reference time
t_ref and systemic offset gamma,

    M(t) = 2 pi (t - t_ref) / P + lambda - omega          (mean anomaly)
    E - e sin E = M                                        (Kepler's equation)
    cos nu = (cos E - e) / (1 - e cos E),  sin nu = sqrt(1 - e^2) sin E / (1 - e cos E)
    v(t) = gamma + K [cos(nu + omega) + e cos omega],

and each observation v_j ~ N(v(t_j), sigma_j^2 + s^2) with optional jitter s.

The data shipped with the package (``radial_velocity.csv``, 16 epochs over 190 days, errors
1.5 to 3.5 m/s, t_ref = 97.9602 d) were generated once by
``benchmarks/make_radial_velocity_data.py`` (seed 20170101) from :data:`TRUE_PARAMETERS`:
random nights with a random time of night (strong one-day aliases), Gaussian noise of the
stated errors, no jitter.
"""

from __future__ import annotations

import math
from importlib import resources
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..checks import boolean, float_dtype, int_at_least, positive_float
from .base import Target

__all__ = [
    "PRIOR",
    "TRUE_PARAMETERS",
    "OrbitParameters",
    "OrbitPrior",
    "RVData",
    "RadialVelocity",
    "load_radial_velocity_data",
    "radial_velocity_model",
    "solve_kepler",
]

LOG_2PI = math.log(2 * math.pi)

#: The orbit the shipped data were drawn from (P, t in days; K, gamma in m/s; angles in radians;
#: phase = mean longitude lambda = M0 + omega at t_ref), with no jitter (s = 0).
TRUE_PARAMETERS = {
    "P": 14.6,
    "K": 6.0,
    "e": 0.3,
    "omega": 2.0,
    "phase": 1.0,
    "gamma": -4.0,
    "jitter": 0.0,
}

#: The default prior: ln P ~ U(ln P_min, ln P_max); K (cos lambda, sin lambda) ~ N(0, K_scale^2 I)
#: (K Rayleigh, lambda uniform); e ~ U(0, e_max), omega ~ U(0, 2 pi); gamma ~ N(0, gamma_scale^2);
#: ln s ~ N(log_jitter_mean, log_jitter_std^2) with s in m/s.
PRIOR = {
    "P_min": 1.0,
    "P_max": 1000.0,
    "K_scale": 20.0,
    "e_max": 0.9,
    "gamma_scale": 20.0,
    "log_jitter_mean": 0.0,
    "log_jitter_std": 1.0,
}


#: Reference values of the default :class:`RadialVelocity` target (shipped data, :data:`PRIOR`,
#: no jitter), by The Joker's method: ``OMP_NUM_THREADS=1 python
#: benchmarks/references/radial_velocity.py`` (2026-11-22, 15 minutes on one shared core).
#: 2e8 draws of the nonlinear parameters (P, lambda, e, omega) from the prior; the offset and
#: the amplitude (gamma Gaussian, K Rayleigh) are integrated out in closed form, giving the
#: marginal likelihood m (checked against a 2D quadrature of ``log_likelihood`` to 1e-5).
#: log Z = log mean m over the draws, standard error by the delta method (10 blocks of 2e7
#: draws scatter by 0.015). Rejection with probability m / m_max (m_max by Nelder-Mead, at
#: P = 14.4938 d) accepted 1392 independent posterior draws; the Kish effective number of
#: the 2e8 weighted draws is 7568. Mode weights: importance-weighted over all draws, with
#: delta-method errors (the fractions of accepted draws agree: 0.919 +- 0.007,
#: 0.060 +- 0.006, 0.021 +- 0.004; no accepted draw lies outside the three windows).
#: Quantiles: of the accepted periods, bootstrap errors; the 5% quantile lies in the one-day
#: alias (whose weight, 0.063, exceeds 0.05); its bootstrap sd (0.57 d) comes from the few
#: resamples in which it jumps to the 3.9-d mode.
_JOKER_REFERENCES = {
    "log_Z": -54.783,
    "log_Z_stderr": 0.012,
    "log_Z_source": "prior sampling with (K, gamma) integrated out (The Joker), 2e8 draws; "
    "benchmarks/references/radial_velocity.py, 2026-11-22",
    "period_quantiles": {0.05: 1.0757, 0.5: 14.4712, 0.95: 14.6123},
    "period_quantiles_stderr": {0.05: 0.57, 0.5: 0.0034, 0.95: 0.0057},
    "mode_weights": {"13 < P < 16.5": 0.9191, "1.05 < P < 1.1": 0.0628, "3.6 < P < 4.2": 0.0177},
    "mode_weights_stderr": {
        "13 < P < 16.5": 0.0024,
        "1.05 < P < 1.1": 0.0022,
        "3.6 < P < 4.2": 0.0010,
    },
    "posterior_median_e": 0.259,
    "accepted_draws": 1392,
    "effective_draws": 7568,
    "date": "2026-11-22",
}


class RVData(NamedTuple):
    """Radial-velocity observations: times (days), velocities and their errors (m/s), (n_obs,)."""

    time: Tensor
    rv: Tensor
    rv_err: Tensor


class OrbitParameters(NamedTuple):
    """Physical parameters, each (n,): P (days), K (m/s), e, omega (rad), phase = mean
    longitude lambda at t_ref (rad), gamma (m/s), jitter s (m/s; zeros without jitter)."""

    P: Tensor
    K: Tensor
    e: Tensor
    omega: Tensor
    phase: Tensor
    gamma: Tensor
    jitter: Tensor


def load_radial_velocity_data() -> RVData:
    """The synthetic data set shipped with the package, in float64."""
    path = resources.files("interpolants.targets").joinpath("radial_velocity.csv")
    with resources.as_file(path) as file:
        table = np.loadtxt(file, delimiter=",", comments="#", dtype=np.float64)
    return RVData(*(torch.from_numpy(np.ascontiguousarray(c)) for c in table.T))


def solve_kepler(M: Tensor, e: Tensor, iterations: int = 12) -> Tensor:
    r"""The eccentric anomaly E with E - e sin E = M, for 0 <= e < 1 (broadcast).

    M is reduced to [-pi, pi); Newton's method E <- E - (E - e sin E - M) / (1 - e cos E)
    starts from E = M + 0.85 e sign(sin M) (Danby) and runs a fixed number of steps without
    gradient tracking; one last Newton step from the detached root carries the gradient,
    which is then exact by the implicit function theorem: dE/dM = 1 / (1 - e cos E),
    dE/de = sin E / (1 - e cos E). The result lies in the same branch as the reduced M; the
    default 12 steps reach machine precision for all e <= 0.999 (checked on a fine grid of M).
    """
    M = torch.remainder(M + math.pi, 2 * math.pi) - math.pi
    with torch.no_grad():
        Md, ed = M.detach(), e.detach()
        E = Md + 0.85 * ed * torch.sign(torch.sin(Md))
        for _ in range(iterations):
            E = E - (E - ed * torch.sin(E) - Md) / (1 - ed * torch.cos(E))
    return E - (E - e * torch.sin(E) - M) / (1 - e * torch.cos(E))


def _polar(w: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Radius, cosine and sine of the angle of 2-vectors w (..., 2); angle 0 at the origin,
    with finite gradients there."""
    r2 = w.square().sum(-1)
    nonzero = r2 > 0
    r = torch.where(nonzero, r2, torch.ones_like(r2)).sqrt()
    cos = torch.where(nonzero, w[..., 0] / r, torch.ones_like(r))
    sin = torch.where(nonzero, w[..., 1] / r, torch.zeros_like(r))
    return torch.where(nonzero, r, torch.zeros_like(r)), cos, sin


def _tanh_over_r(r2: Tensor) -> Tensor:
    """tanh(r) / r as a smooth function of r^2 (series below r^2 = 1e-6)."""
    small = r2 < 1e-6
    r = torch.where(small, torch.ones_like(r2), r2).sqrt()
    return torch.where(small, 1 - r2 / 3 + 2 * r2.square() / 15, torch.tanh(r) / r)


def _log_cosh_sq(r2: Tensor) -> Tensor:
    """log cosh(r) as a smooth function of r^2."""
    small = r2 < 1e-6
    r = torch.where(small, torch.ones_like(r2), r2).sqrt()
    log_cosh = r + torch.log1p(torch.exp(-2 * r)) - math.log(2)
    return torch.where(small, r2 / 2 - r2.square() / 12, log_cosh)


def _keplerian(
    P: Tensor, v: Tensor, e: Tensor, h: Tensor, gamma: Tensor, time: Tensor, t_ref: float
) -> Tensor:
    """v(t) from P, v = K (cos lambda, sin lambda), e, h ∝ (cos omega, sin omega), gamma (n,...).

    K cos(nu + omega) is written v_1 cos(theta) - v_2 sin(theta) with
    theta = nu - M + 2 pi (t - t_ref) / P, which is smooth in v through K = 0 for e = 0.
    """
    K, cos_l, sin_l = _polar(v)
    _, cos_w, sin_w = _polar(h)
    P, K, e, gamma, cos_w, sin_w = (a[:, None] for a in (P, K, e, gamma, cos_w, sin_w))
    drift = 2 * math.pi * (time - t_ref) / P
    M = drift + torch.atan2(sin_l, cos_l)[:, None] - torch.atan2(sin_w, cos_w)
    E = solve_kepler(M, e.expand_as(M))
    nu = torch.atan2(torch.sqrt(1 - e.square()) * torch.sin(E), torch.cos(E) - e)
    theta = nu - M + drift
    return gamma + v[:, :1] * torch.cos(theta) - v[:, 1:] * torch.sin(theta) + K * e * cos_w


def radial_velocity_model(p: OrbitParameters, time: Tensor, t_ref: float) -> Tensor:
    """v(t) = gamma + K [cos(nu + omega) + e cos omega] for every parameter set: (n, n_obs)."""
    v = torch.stack([p.K * torch.cos(p.phase), p.K * torch.sin(p.phase)], 1)
    h = torch.stack([torch.cos(p.omega), torch.sin(p.omega)], 1)
    return _keplerian(p.P, v, p.e, h, p.gamma, time, t_ref)


class OrbitPrior:
    r"""The prior as a normalised density on the unconstrained coordinates x in R^{6 or 7}.

    x = (u_P, K cos lambda, K sin lambda, u_1, u_2, gamma[, ln s]) with
    ln P = ln P_min + (ln P_max - ln P_min) sigmoid(u_P) and
    sqrt(e) (cos omega, sin omega) = sqrt(e_max) tanh(|u|) u / |u|. Its log density,
    including the log-Jacobians of these maps, is
    log sigmoid(u_P) + log sigmoid(-u_P)                    (ln P uniform)
    - |v|^2 / (2 K_scale^2) - log(2 pi K_scale^2)           (v = K (cos lambda, sin lambda))
    - log pi - 2 log cosh|u| + log(tanh|u| / |u|)           (e, omega uniform)
    + log N(gamma; 0, gamma_scale^2) [+ log N(ln s; mean, std^2)].
    """

    def __init__(
        self, jitter: bool = False, prior: dict | None = None, dtype: torch.dtype = torch.float32
    ):
        self.jitter = bool(jitter)
        self.prior = {**PRIOR, **(prior or {})}
        self.dtype = float_dtype(dtype)
        self.event_shape = torch.Size((7 if jitter else 6,))

    def log_prob(self, x: Tensor) -> Tensor:
        c = self.prior
        if x.ndim != 2 or x.shape[1:] != self.event_shape:
            raise ValueError(f"x must have shape (n, {self.event_shape[0]}), got {tuple(x.shape)}")
        lp = torch.nn.functional.logsigmoid(x[:, 0]) + torch.nn.functional.logsigmoid(-x[:, 0])
        lp = lp - x[:, 1:3].square().sum(1) / (2 * c["K_scale"] ** 2)
        lp = lp - math.log(2 * math.pi * c["K_scale"] ** 2)
        r2 = x[:, 3:5].square().sum(1)
        lp = lp - math.log(math.pi) - 2 * _log_cosh_sq(r2) + _tanh_over_r(r2).log()
        lp = lp + _normal_log_pdf(x[:, 5], 0.0, c["gamma_scale"])
        if self.jitter:
            lp = lp + _normal_log_pdf(x[:, 6], c["log_jitter_mean"], c["log_jitter_std"])
        return lp

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        c, n = self.prior, int_at_least("n", n, 1)
        u = torch.rand(n, 3, generator=generator, dtype=torch.float64)
        z = torch.randn(n, 4, generator=generator, dtype=torch.float64)
        u_P = torch.logit(u[:, 0])
        r, omega = torch.atanh(u[:, 1].sqrt()), 2 * math.pi * u[:, 2]
        columns = [u_P, c["K_scale"] * z[:, 0], c["K_scale"] * z[:, 1]]
        columns += [r * torch.cos(omega), r * torch.sin(omega), c["gamma_scale"] * z[:, 2]]
        if self.jitter:
            columns.append(c["log_jitter_mean"] + c["log_jitter_std"] * z[:, 3])
        return torch.stack(columns, 1).to(self.dtype)

    def to_physical(self, x: Tensor) -> OrbitParameters:
        """The physical parameters of unconstrained points x (n, dim)."""
        c = self.prior
        lo, hi = math.log(c["P_min"]), math.log(c["P_max"])
        P = torch.exp(lo + (hi - lo) * torch.sigmoid(x[:, 0]))
        K, cos_l, sin_l = _polar(x[:, 1:3])
        r2 = x[:, 3:5].square().sum(1)
        e = c["e_max"] * (_tanh_over_r(r2).square() * r2)
        _, cos_w, sin_w = _polar(x[:, 3:5])
        jitter = x[:, 6].exp() if self.jitter else torch.zeros_like(P)
        omega, phase = torch.atan2(sin_w, cos_w), torch.atan2(sin_l, cos_l)
        return OrbitParameters(P, K, e, omega, phase, x[:, 5], jitter)

    def from_physical(self, p: OrbitParameters) -> Tensor:
        """The unconstrained points of physical parameters (inverse of :meth:`to_physical`)."""
        c = self.prior
        lo, hi = math.log(c["P_min"]), math.log(c["P_max"])
        u_P = torch.logit((torch.log(p.P) - lo) / (hi - lo))
        r = torch.atanh(torch.sqrt(p.e / c["e_max"]))
        columns = [u_P, p.K * torch.cos(p.phase), p.K * torch.sin(p.phase)]
        columns += [r * torch.cos(p.omega), r * torch.sin(p.omega), p.gamma]
        if self.jitter:
            columns.append(torch.log(p.jitter))
        return torch.stack(columns, 1)


def _normal_log_pdf(x: Tensor, mean: float, std: float) -> Tensor:
    return -0.5 * ((x - mean) / std).square() - math.log(std) - 0.5 * LOG_2PI


class RadialVelocity(Target):
    r"""Posterior of one planet's Keplerian orbit given radial velocities (docs/benchmarks.md).

    log rho(x) = log L(theta(x)) + log pi(x): the Gaussian log-likelihood, with
    var_j = sigma_j^2 + s^2,
    log L = -(1/2) sum_j [ (v_j - v(t_j; theta))^2 / var_j + log(2 pi var_j) ]
    of the model in the module docstring, plus the log prior density on the unconstrained
    coordinates x (:class:`OrbitPrior`, normalised, log-Jacobians included). So Z is the
    Bayesian evidence and log Z does not depend on the parametrisation.

    Coordinates (dim 6, or 7 with jitter): x = (u_P, K cos lambda, K sin lambda, u_1, u_2,
    gamma[, ln s]). K (cos lambda, sin lambda) makes the model linear in x_1, x_2 for circular
    orbits and smooth through K = 0; (u_1, u_2) map to sqrt(e)(cos omega, sin omega) =
    sqrt(e_max) tanh|u| u/|u|, smooth through e = 0; t_ref is the middle of the data's time
    span. :meth:`to_physical` and :meth:`from_physical` convert. Priors: :data:`PRIOR`. The
    log-uniform period prior over [1, 1000] days and the sparse sampling of the data make
    the posterior multimodal in period: on the shipped data, local maxima of log rho lie at
    P = 14.49 d (log rho = -51.20; the truth is 14.6 d), at its one-day alias P = 1.0755 d
    (-55.12) and at P = 3.87 d (e = 0.68, -54.98); the reference run below puts 6.3% of the
    mass in the alias and 1.8% near 3.9 d. The recommended base is the prior
    (:class:`OrbitPrior`, exact sampler and density).

    References: The Joker (Price-Whelan et al. 2017, arXiv:1610.07602) for brute-force prior
    sampling with rejection, the reference method here. For the default target (shipped data,
    default prior, no jitter) ``self.references`` holds log Z (the evidence) with its standard
    error, the period quantiles and the posterior weights of the period modes measured that
    way (:data:`_JOKER_REFERENCES`); ``self.log_Z`` stays None, as these are estimates.

    Arguments:
        jitter: whether to fit a jitter s added in quadrature to the errors.
        data: an :class:`RVData` of your own; the shipped data set when None.
        prior: overrides of the :data:`PRIOR` entries.
        t_ref: the reference time of lambda; the middle of the data's time span when None.
        dtype: float32 or float64, the dtype of the base.
    """

    def __init__(
        self,
        jitter: bool = False,
        data: RVData | None = None,
        prior: dict | None = None,
        t_ref: float | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        jitter = boolean("jitter", jitter)
        self.data = _check_data(load_radial_velocity_data() if data is None else data)
        self.prior = OrbitPrior(jitter, _check_prior(prior), dtype)
        time = self.data.time
        self.t_ref = float(0.5 * (time.min() + time.max())) if t_ref is None else float(t_ref)
        refs = {
            "log_Z": None,
            "log_Z_source": "not measured for this data set, prior or jitter setting",
            "true_parameters": dict(TRUE_PARAMETERS),
            "reference": "arXiv:1610.07602",
        }
        if not jitter and data is None and not prior and t_ref is None:
            refs.update(
                {k: v.copy() if isinstance(v, dict) else v for k, v in _JOKER_REFERENCES.items()}
            )
        super().__init__(
            self._log_prob,
            dim=7 if jitter else 6,
            base=self.prior,
            name="radial_velocity",
            references=refs,
        )

    @property
    def coordinate_names(self) -> list[str]:
        """The unconstrained coordinates (class docstring): u_P, K cos lambda, K sin lambda,
        u_1, u_2, gamma[, ln s]."""
        names = ["u_P", "K_cos_lambda", "K_sin_lambda", "u_1", "u_2", "gamma"]
        return names + (["log_s"] if self.prior.jitter else [])

    def to_physical(self, x: Tensor) -> OrbitParameters:
        """Physical parameters of unconstrained points x (n, dim)."""
        self._check_x(x)
        return self.prior.to_physical(x)

    def from_physical(self, params: OrbitParameters) -> Tensor:
        """Unconstrained points of physical parameters."""
        return self.prior.from_physical(params)

    def log_likelihood(self, x: Tensor) -> Tensor:
        """log L(theta(x)): (n,)."""
        p = self.to_physical(x)
        time, rv, err = (v.to(x) for v in self.data)
        model = _keplerian(p.P, x[:, 1:3], p.e, x[:, 3:5], p.gamma, time, self.t_ref)
        residual = rv - model
        var = err.square() + p.jitter[:, None].square()
        return -0.5 * (residual.square() / var + torch.log(2 * math.pi * var)).sum(1)

    def _log_prob(self, x: Tensor) -> Tensor:
        return self.log_likelihood(x) + self.prior.log_prob(x)


def _check_data(data: RVData) -> RVData:
    data = RVData(*(torch.as_tensor(v, dtype=torch.float64) for v in data))
    n = data.time.shape
    if len(n) != 1 or n[0] < 1 or data.rv.shape != n or data.rv_err.shape != n:
        raise ValueError("data must be three 1D tensors (time, rv, rv_err) of the same length")
    if not torch.all(data.rv_err > 0):
        raise ValueError("data.rv_err must be positive")
    return data


def _check_prior(prior: dict | None) -> dict:
    prior = dict(prior or {})
    unknown = sorted(set(prior) - set(PRIOR))
    if unknown:
        raise ValueError(f"prior: unknown entries {unknown}; known: {sorted(PRIOR)}")
    for key, value in prior.items():
        if key != "log_jitter_mean":
            positive_float(f"prior[{key!r}]", value)
    merged = {**PRIOR, **prior}
    if not merged["P_min"] < merged["P_max"] or not merged["e_max"] < 1:
        raise ValueError("prior: need P_min < P_max and e_max < 1")
    return prior
