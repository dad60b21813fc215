r"""phi^4 fields: the 2D lattice ``phi4`` and the 1D chain ``phi4_1d`` (docs/benchmarks.md)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from ..checks import finite_float, float_dtype, int_at_least, positive_float
from .base import Target, gaussian_base

__all__ = [
    "BridgeNormal",
    "ChainReference",
    "Phi4",
    "Phi4Chain",
    "chain_quadrature",
    "chain_reference",
]

LOG_2PI = math.log(2 * math.pi)


#: Reference observables of :class:`Phi4`, keyed by (L, M2, lam): means and Monte Carlo
#: standard errors. Made by ``OMP_NUM_THREADS=1 python benchmarks/references/phi4.py``
#: (2026-11-22, about 4 minutes on one core): HMC of ``si.sample`` in float64, 128 chains
#: started from 0.3 N(0, I), 1000 warm-up iterations (step size and dense (L = 8) or diagonal
#: (L = 16) mass matrix adapted, then frozen), then 4000 (L = 8) or 3000 (L = 16) draws per
#: chain. Errors: batch means over the 128 chains for <|m|> (the library's IAT-corrected MCSE
#: agrees: 1.17e-4 and 0.92e-4), jackknife over chains for chi = V (<m^2> - <|m|>^2) and
#: chi_2 = V <m^2>. Diagnostics: split R-hat of |m| and m^2 <= 1.001, integrated
#: autocorrelation times of |m| 1.7 (L = 8) and 3.1 (L = 16) draws, no divergent
#: transitions, and every chain changed the sign of m (no Z2 sticking at these parameters).
_PHI4_REFERENCES: dict[tuple[int, float, float], dict] = {
    (8, -4.0, 8.0): {
        "abs_magnetization": 0.086956,
        "abs_magnetization_stderr": 0.000121,
        "susceptibility": 0.25848,
        "susceptibility_stderr": 0.00080,
        "two_point_susceptibility": 0.7424,
        "two_point_susceptibility_stderr": 0.0019,
        "observables_source": "HMC, 128 chains x 4000 draws; benchmarks/references/phi4.py",
        "date": "2026-11-22",
    },
    (16, -4.0, 8.0): {
        "abs_magnetization": 0.043366,
        "abs_magnetization_stderr": 0.000093,
        "susceptibility": 0.2687,
        "susceptibility_stderr": 0.0012,
        "two_point_susceptibility": 0.7501,
        "two_point_susceptibility_stderr": 0.0030,
        "observables_source": "HMC, 128 chains x 3000 draws; benchmarks/references/phi4.py",
        "date": "2026-11-22",
    },
}


#: The weight of the positive mode P(S > 0), S = mean_i phi_i, of :class:`Phi4Chain`, keyed by
#: (N, a, |b|, beta) for b > 0 (the weight at -b is 1 minus it). Made by
#: ``OMP_NUM_THREADS=1 python benchmarks/references/phi4_1d.py`` (2026-11-22, about 3 minutes
#: on one core): the characteristic function E[exp(i t S)] by the transfer operator on the grid
#: of :func:`chain_reference`, then P(S > 0) by the Gil-Pelaez integral with a Gaussian
#: smoothing eps = 0.1 of the indicator (Gauss-Legendre, 200 nodes). Its error is below 1e-8:
#: eps = 0.05, twice the nodes and a coarser grid (resolution 0.75) change it by at most
#: 2e-9, and the same characteristic function gives E[S] equal to chain_reference's to 1e-9.
#: Independent check (same script): thermodynamic integration in b of E_+[S] measured by HMC
#: within the positive mode, log(P_+ / P_-)(b) = -(beta / a) int_{-b}^{b} E_+[S] db'.
_CHAIN_POSITIVE_WEIGHTS: dict[tuple[int, float, float, float], dict] = {
    (100, 0.1, 0.001, 20.0): {
        "weight": 0.42268576,
        "stderr": 1e-8,
        "source": "transfer-operator characteristic function (exact quadrature); "
        "benchmarks/references/phi4_1d.py, 2026-11-22",
        "check": "HMC thermodynamic integration in b: 0.42272 +- 0.00002",
    },
    (100, 0.1, 0.01, 20.0): {
        "weight": 0.04239364,
        "stderr": 1e-8,
        "source": "transfer-operator characteristic function (exact quadrature); "
        "benchmarks/references/phi4_1d.py, 2026-11-22",
        "check": "HMC thermodynamic integration in b: 0.04244 +- 0.00003",
    },
}


def _weighted_mean(values: Tensor, log_weights: Tensor | None) -> Tensor:
    if log_weights is None:
        return values.mean()
    return (torch.softmax(log_weights.to(values), 0) * values).sum()


class Phi4(Target):
    r"""The phi^4 theory on a periodic L x L lattice (Albergo, Kanwar & Shanahan, arXiv:1904.12072).

    S(phi) = sum_x [ M2 phi_x^2 + lam phi_x^4
                     + sum_mu (2 phi_x^2 - phi_x phi_{x+mu} - phi_x phi_{x-mu}) ],
    log rho(phi) = -S(phi), for phi in R^{L*L} (row-major x = (row, column), reshaped inside).
    The kinetic term equals sum_x sum_mu (phi_{x+mu} - phi_x)^2. Closed-form gradient:
    dS/dphi_x = 2 M2 phi_x + 4 lam phi_x^3 + sum_mu (4 phi_x - 2 phi_{x+mu} - 2 phi_{x-mu}).

    Observables, with m = (1/V) sum_x phi_x and V = L^2: the magnetisation per configuration
    (:meth:`magnetization`), <|m|>, and the susceptibility chi = V (<m^2> - <|m|>^2)
    (:meth:`susceptibility`; the connected susceptibility of |m|, the usual lattice
    definition where the Z2 symmetry can break; V <m^2> is the two-point susceptibility
    chi_2 of arXiv:1904.12072 when <phi> = 0).

    log Z is unknown. Reference observables (``self.references``) for L = 8 and L = 16 at
    M2 = -4, lam = 8: <|m|>, chi and chi_2 = V <m^2> with Monte Carlo standard errors from long
    HMC runs (:data:`_PHI4_REFERENCES`, ``benchmarks/references/phi4.py``). Note that M2 + 4 = 0
    cancels the quadratic term, so these parameters lie on the symmetric side: <|m|> falls
    roughly like 1/L and HMC chains flip the sign of m freely. The recommended base is N(0, I).

    Arguments:
        L: the lattice side (>= 2); the dimension is L * L.
        M2: the mass term (default -4).
        lam: the quartic coupling (default 8, > 0).
        dtype: float32 or float64, the dtype of the base.
    """

    def __init__(
        self, L: int = 8, M2: float = -4.0, lam: float = 8.0, dtype: torch.dtype = torch.float32
    ):
        self.L = int_at_least("L", L, 2)
        self.M2, self.lam = finite_float("M2", M2), positive_float("lam", lam)
        refs = {"log_Z": None, "reference": "arXiv:1904.12072"}
        refs.update(
            _PHI4_REFERENCES.get(
                (self.L, self.M2, self.lam),
                {"observables": "not measured for these parameters (see _PHI4_REFERENCES)"},
            )
        )
        super().__init__(
            self._log_prob,
            dim=L * L,
            log_Z=None,
            grad_log_prob=self._grad_log_prob,
            base=gaussian_base(L * L, 1.0, float_dtype(dtype)),
            name="phi4",
            references=refs,
        )

    def _field(self, x: Tensor) -> Tensor:
        return x.reshape(-1, self.L, self.L)

    def action(self, x: Tensor) -> Tensor:
        """S(phi) per configuration: (n,)."""
        self._check_x(x)
        phi = self._field(x)
        kinetic = sum(
            2 * phi.square() - phi * phi.roll(1, d) - phi * phi.roll(-1, d) for d in (1, 2)
        )
        local = self.M2 * phi.square() + self.lam * phi.pow(4)
        return (local + kinetic).flatten(1).sum(1)

    def _log_prob(self, x: Tensor) -> Tensor:
        return -self.action(x)

    def _grad_log_prob(self, x: Tensor) -> Tensor:
        phi = self._field(x)
        hop = sum(phi.roll(1, d) + phi.roll(-1, d) for d in (1, 2))
        dS = 2 * self.M2 * phi + 4 * self.lam * phi.pow(3) + 8 * phi - 2 * hop
        return -dS.flatten(1)

    def magnetization(self, x: Tensor) -> Tensor:
        """m = (1/V) sum_x phi_x per configuration: (n,)."""
        self._check_x(x)
        return x.mean(1)

    def abs_magnetization(self, x: Tensor, log_weights: Tensor | None = None) -> Tensor:
        """<|m|> over the samples (self-normalised when log importance weights are given)."""
        return _weighted_mean(self.magnetization(x).abs(), log_weights)

    def susceptibility(self, x: Tensor, log_weights: Tensor | None = None) -> Tensor:
        """chi = V (<m^2> - <|m|>^2) over the samples (self-normalised with log weights)."""
        m = self.magnetization(x)
        mean_sq = _weighted_mean(m.square(), log_weights)
        return self.dim * (mean_sq - _weighted_mean(m.abs(), log_weights).square())


class BridgeNormal:
    r"""The discrete Brownian bridge: the Gaussian on R^N with density

    q(x) ∝ exp(-(k/2) sum_{i=0}^{N} (x_{i+1} - x_i)^2),  x_0 = x_{N+1} = 0,

    i.e. N(0, (k T)^{-1}) with T = tridiag(-1, 2, -1), det T = N + 1, so
    log q(x) = -(k/2) sum_i (x_{i+1} - x_i)^2 + (N/2) log(k / 2 pi) + log(N + 1) / 2.
    Covariance: C_ij = min(i, j) (N + 1 - max(i, j)) / ((N + 1) k). Exact samples: a random
    walk S_i = xi_1 + ... + xi_i with xi ~ N(0, 1/k), pinned at the far end,
    x_i = S_i - i S_{N+1} / (N + 1) (the walk is the Cholesky factor of the bridge).

    Arguments:
        N: the number of free sites.
        stiffness: k > 0.
        dtype: float32 or float64, the dtype of the samples.
    """

    def __init__(self, N: int, stiffness: float, dtype: torch.dtype = torch.float32):
        self.N = int_at_least("N", N, 1)
        self.stiffness = positive_float("stiffness", stiffness)
        self.dtype = float_dtype(dtype)
        self.event_shape = torch.Size((N,))

    def precision(self) -> Tensor:
        """k T, (N, N) in float64."""
        off = torch.ones(self.N - 1, dtype=torch.float64)
        T = 2 * torch.eye(self.N, dtype=torch.float64) - off.diag(1) - off.diag(-1)
        return self.stiffness * T

    def covariance(self) -> Tensor:
        """(k T)^{-1}, (N, N) in float64."""
        i = torch.arange(1, self.N + 1, dtype=torch.float64)
        lo, hi = torch.minimum(i[:, None], i), torch.maximum(i[:, None], i)
        return lo * (self.N + 1 - hi) / ((self.N + 1) * self.stiffness)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        n = int_at_least("n", n, 1)
        steps = torch.randn(n, self.N + 1, generator=generator, dtype=torch.float64)
        walk = (steps / math.sqrt(self.stiffness)).cumsum(1)
        pin = torch.arange(1, self.N + 1, dtype=torch.float64) / (self.N + 1)
        return (walk[:, :-1] - pin * walk[:, -1:]).to(self.dtype)

    def log_prob(self, x: Tensor) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.N:
            raise ValueError(f"x must have shape (n, {self.N}), got {tuple(x.shape)}")
        jumps = torch.nn.functional.pad(x, (1, 1)).diff(dim=1)
        log_norm = 0.5 * self.N * (math.log(self.stiffness) - LOG_2PI) + 0.5 * math.log(self.N + 1)
        return -0.5 * self.stiffness * jumps.square().sum(1) + log_norm


class ChainReference(NamedTuple):
    """Exact (quadrature) reference values of a 1D chain: log Z and the mean profile E[phi_i]."""

    log_Z: float
    mean_profile: Tensor  # (N,) float64
    grid_step: float
    grid_range: float


def chain_quadrature(
    N: int, coupling: float, site_log_weight: Callable[[Tensor], Tensor], step: float, R: float
) -> ChainReference:
    """log int exp(-coupling sum_{i=0}^N (phi_{i+1} - phi_i)^2 + sum_i w(phi_i)) dphi with
    phi_0 = phi_{N+1} = 0, by the rectangle rule on the grid [-R, R] of spacing ``step``,
    one site at a time (transfer operator), and the marginal means by forward-backward."""
    g = torch.arange(-R, R + step / 2, step, dtype=torch.float64)
    K = torch.exp(-coupling * (g[:, None] - g).square())
    site = torch.exp(site_log_weight(g) + math.log(step))
    end = torch.exp(-coupling * g.square())
    forward, log_scale = [end * site], 0.0
    for _ in range(N - 1):
        v = site * (K @ forward[-1])
        log_scale += math.log(float(v.sum()))
        forward.append(v / v.sum())
    total = float((forward[-1] * end).sum())
    backward = [end]
    for _ in range(N - 1):
        v = K @ (site * backward[-1])
        backward.append(v / v.sum())
    means = []
    for f, b in zip(forward, reversed(backward), strict=True):
        p = f * b
        means.append(float((g * p).sum() / p.sum()))
    log_Z = log_scale + math.log(total)
    return ChainReference(log_Z, torch.tensor(means, dtype=torch.float64), step, R)


@functools.lru_cache(maxsize=16)
def chain_reference(
    N: int = 100, a: float = 0.1, b: float = 0.0, beta: float = 20.0, resolution: float = 1.0
) -> ChainReference:
    r"""log Z and E[phi_i] of ``phi4_1d`` by transfer-operator quadrature in float64.

    Z = int exp(-beta U) is a chain of N one-dimensional integrals against the Gaussian
    kernel exp(-beta (a N / 2) (phi' - phi)^2); each is done by the rectangle rule on a grid
    of spacing h = sigma / (8 * resolution), sigma = (beta a N)^{-1/2} the kernel width,
    over [-R, R] with R = 1.5 + 10 sqrt((N + 1) / (4 beta a N)) (ten standard deviations of
    the bridge's middle site beyond the wells at +-1). For smooth integrands the rule
    converges faster than any power of h; the tests check that halving h and widening R
    change log Z by less than 1e-8.
    """
    coupling = beta * a * N / 2

    def site_log_weight(phi: Tensor) -> Tensor:
        return -beta / (a * N) * ((1 - phi.square()).square() / 4 + b * phi)

    step = 1 / (8 * resolution * math.sqrt(2 * coupling))
    R = 1.5 + 10 * math.sqrt((N + 1) / (8 * coupling))
    return chain_quadrature(N, coupling, site_log_weight, step, R)


class Phi4Chain(Target):
    r"""The 1D phi^4 field of Gabrie, Rotskoff & Vanden-Eijnden (arXiv:2105.12603, 2107.08001).

    U(phi) = (a N / 2) sum_{i=0}^{N} (phi_{i+1} - phi_i)^2
             + (1 / (a N)) sum_{i=1}^{N} [ (1 - phi_i^2)^2 / 4 + b phi_i ],
    phi_0 = phi_{N+1} = 0 (Dirichlet), log rho(phi) = -beta U(phi); defaults N = 100,
    a = 0.1, b = 0, beta = 20. Two modes, phi near +1 or near -1 away from the ends, with
    equal weights when b = 0. Closed-form gradient:
    dU/dphi_i = a N (2 phi_i - phi_{i-1} - phi_{i+1}) + (phi_i^3 - phi_i + b) / (a N).

    The recommended base is the Gaussian of the quadratic part, :class:`BridgeNormal` with
    stiffness beta a N (also ``self.bridge``).

    References (``self.references``): log Z and the mean profile E[phi_i] by transfer-operator
    quadrature (:func:`chain_reference`, exact to about 1e-8 in log Z), computed when the grid
    has at most 4000 points; the weight of the positive mode P(mean phi > 0) is 1/2 by symmetry
    when b = 0, and for N = 100, a = 0.1, beta = 20 and b = +-0.001, +-0.01 it is the
    transfer-operator value of :data:`_CHAIN_POSITIVE_WEIGHTS`; otherwise None.

    Arguments:
        N: the number of sites.
        a, b, beta: the parameters of U (a, beta > 0).
        dtype: float32 or float64, the dtype of the base.
    """

    def __init__(
        self,
        N: int = 100,
        a: float = 0.1,
        b: float = 0.0,
        beta: float = 20.0,
        dtype: torch.dtype = torch.float32,
    ):
        self.N = int_at_least("N", N, 1)
        self.a, self.beta, self.b = (
            positive_float("a", a),
            positive_float("beta", beta),
            finite_float("b", b),
        )
        self.bridge = BridgeNormal(N, self.beta * self.a * N, float_dtype(dtype))
        refs = self._references()
        super().__init__(
            self._log_prob,
            dim=N,
            log_Z=refs["log_Z"],
            grad_log_prob=self._grad_log_prob,
            base=self.bridge,
            name="phi4_1d",
            references=refs,
        )

    def _references(self) -> dict:
        refs: dict = {"reference": "arXiv:2105.12603, arXiv:2107.08001"}
        measured = _CHAIN_POSITIVE_WEIGHTS.get((self.N, self.a, abs(self.b), self.beta))
        if self.b == 0:
            refs["positive_mode_weight"] = 0.5
            refs["positive_mode_weight_source"] = "exact: phi -> -phi symmetry at b = 0"
        elif measured is not None:
            # phi -> -phi maps b to -b, so the weight at -b is 1 minus the weight at b
            weight = measured["weight"] if self.b > 0 else 1 - measured["weight"]
            refs["positive_mode_weight"] = weight
            refs["positive_mode_weight_stderr"] = measured["stderr"]
            refs["positive_mode_weight_source"] = measured["source"]
            refs["positive_mode_weight_check"] = measured["check"]
        else:
            refs["positive_mode_weight"] = None
            refs["positive_mode_weight_source"] = (
                "not measured for these parameters (see _CHAIN_POSITIVE_WEIGHTS)"
            )
        width = 2 * (1.5 + 10 * math.sqrt((self.N + 1) / (4 * self.beta * self.a * self.N)))
        points = width * 8 * math.sqrt(self.beta * self.a * self.N)
        if points > 4000:
            refs["log_Z"] = None
            refs["log_Z_source"] = "grid too fine here: call chain_reference(N, a, b, beta)"
            return refs
        ref = chain_reference(self.N, self.a, self.b, self.beta)
        refs["log_Z"] = ref.log_Z
        refs["log_Z_source"] = "transfer-operator quadrature in float64 (chain_reference)"
        refs["mean_field"] = float(ref.mean_profile.mean())
        return refs

    def energy(self, x: Tensor) -> Tensor:
        """U(phi) per configuration: (n,)."""
        self._check_x(x)
        jumps = torch.nn.functional.pad(x, (1, 1)).diff(dim=1)
        aN = self.a * self.N
        local = (1 - x.square()).square() / 4 + self.b * x
        return 0.5 * aN * jumps.square().sum(1) + local.sum(1) / aN

    def _log_prob(self, x: Tensor) -> Tensor:
        return -self.beta * self.energy(x)

    def _grad_log_prob(self, x: Tensor) -> Tensor:
        padded = torch.nn.functional.pad(x, (1, 1))
        aN = self.a * self.N
        lap = 2 * x - padded[:, :-2] - padded[:, 2:]
        return -self.beta * (aN * lap + (x.pow(3) - x + self.b) / aN)

    def mean_field(self, x: Tensor) -> Tensor:
        """(1/N) sum_i phi_i per configuration: (n,)."""
        self._check_x(x)
        return x.mean(1)

    def positive_mode(self, x: Tensor) -> Tensor:
        """1 where the mean field is positive, else 0: (n,); its mean is the positive mode's
        weight."""
        return (self.mean_field(x) > 0).to(x.dtype)
