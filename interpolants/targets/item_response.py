r"""A hierarchical item-response (Rasch) model: 30 students answer 10 items, with the
students' abilities drawn from a population of unknown spread, ``item_response`` (d = 41),
in the centred form (a funnel in the spread) and the non-centred form.

Model (Rasch 1960; the one-parameter logistic IRT model with a hierarchical ability prior):

    sigma ~ half-Cauchy(0, 1),  theta_j | sigma ~ N(0, sigma^2)  (j = 1..30, abilities),
    b_k ~ N(0, 2^2)  (k = 1..10, difficulties),
    y_jk | theta, b ~ Bernoulli(sigmoid(theta_j - b_k)).

The responses (:data:`ITEM_RESPONSES`, 300 zeros and ones, 52% correct) are fixed: they were
simulated once by ``benchmarks/references/item_response.py`` (``simulate``) with
``numpy.random.default_rng(20261207)``: difficulties b_k ~ N(0, 1), abilities
theta_j ~ N(0, 1) (sigma = 1), then y_jk as above; the script checks that it reproduces them.

The sampler sees unconstrained coordinates:

- centred: x = (log sigma, theta_1..30, b_1..10),
  log rho(x) = log HC(sigma; 1) + log sigma + sum_j log N(theta_j; 0, sigma^2)
             + sum_k log N(b_k; 0, 4) + sum_jk [y_jk eta_jk - log(1 + exp(eta_jk))],
  eta_jk = theta_j - b_k;
- non-centred: x = (log sigma, z_1..30, b_1..10), theta_j = sigma z_j, with
  sum_j log N(z_j; 0, 1) in place of the ability prior.

Both integrate to the same evidence Z = p(y) (the Jacobian 30 log sigma is inside).

References (:data:`ITEM_RESPONSE_REFERENCES`, made by ``benchmarks/references/item_response.py``):
log Z and the posterior mean and sd of every coordinate of both forms, by importance sampling
of the centred posterior with 10^6 draws (float64) from a multivariate Student-t (10 degrees
of freedom) fitted by adaptive moment matching (neither form has a useful joint mode for a
Laplace approximation: the centred density is unbounded as sigma -> 0, and the non-centred
mode lies at sigma = 7.5, away from the mass), with delta-method standard errors; each draw
also gives z = theta / sigma, so the same weights give the non-centred moments. Checked
against a second method, a quadrature over log sigma whose every node integrates the
(log-concave) conditional posterior of (theta, b) by its own Student-t importance sampler at
its Laplace approximation, and against long HMC (moments) and SMC (log Z) runs of this
library.

References:
    G. Rasch, Probabilistic Models for Some Intelligence and Attainment Tests (1960).
    A. Gelman, J. Hill, Data Analysis Using Regression and Multilevel/Hierarchical Models
    (2007), section 14.3 (multilevel item-response models).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn.functional import softplus

from ..checks import boolean, float_dtype, positive_int
from ..distributions import DiagonalNormal
from .base import Target, choose_base, log_half_cauchy_draws

__all__ = [
    "ITEM_RESPONSES",
    "ITEM_RESPONSE_REFERENCES",
    "ItemResponse",
    "ItemResponsePrior",
    "item_response_matrix",
]

#: Row j: the answers of student j to the 10 items (1 = correct); see the module docstring.
ITEM_RESPONSES = (
    "0000000010", "1110100111", "0110110101", "1111110011", "0010101000", "1101110110",
    "0001100010", "0010111111", "0010011101", "1000001010", "0010100011", "1110111011",
    "1110111111", "0011000001", "1110011111", "0010111011", "0000001001", "1110101111",
    "0010001111", "1001111111", "0000101000", "0010000001", "0000101010", "1011111010",
    "1000000010", "1111000010", "0000010000", "0111111111", "1110101111", "0111101110",
)  # fmt: skip
SIGMA_SCALE = 1.0  # half-Cauchy scale of the abilities' sd
DIFFICULTY_SCALE = 2.0  # prior sd of the difficulties
LOG_2PI = math.log(2 * math.pi)

#: Printed by ``OMP_NUM_THREADS=1 python benchmarks/references/item_response.py``
#: (2026-12-05, one shared core): method A of the script, 10^6 draws, ESS 326 826 (0.33 of the
#: draws; ten blocks of 10^5 scatter by 0.0032 in log Z, expected 0.0045). Method B (quadrature
#: over log sigma, 141 nodes x 2 x 10^4 inner draws, 5 replicates): log Z -199.93895 +- 0.00227,
#: +1.25 combined se from A; over the 71 means (both forms) the largest |z| is 4.11 (b[6]) and
#: the largest difference 0.0046, over the sds 4.67 (z[3]) and 0.0061 (about 1% of an sd;
#: B's errors come from 5 replicates, so its z are t-distributed with 4 degrees of freedom).
#: ``--check``: SMC with 20 000 walkers, centred -199.90224 +- 0.01989 (+1.67 se), non-centred
#: -200.06259 +- 0.03783 (-3.35 se: SMC's error bar is too small or it is biased there, since A
#: and B agree to 0.003); the long HMC run (16 chains) had one chain stuck for all its draws
#: (every transition divergent), so it gives no check; the default HMC run (4 chains, n = 4000)
#: is within 0.11 posterior sds of every stored mean.
ITEM_RESPONSE_REFERENCES: dict[str, object] = {
    "log_Z": -199.93559,
    "log_Z_stderr": 0.00144,
    "ess": 326_826,
    "draws": 1_000_000,
    "source": "importance sampling of the centred posterior, Student-t(10) fitted by "
    "adaptive moment matching, 10^6 draws; benchmarks/references/item_response.py, 2026-12-05",
    "centered": {
        "mean": (
            0.1448, -1.6271, 0.6468, 0.2778, 1.0448, -0.7982, 0.6492, -0.7990, 0.6480, -0.0761,
            -0.7970, -0.4327, 1.0449, 1.4903, -0.7975, 1.0448, 0.2823, -1.1908, 1.0453, -0.0771,
            1.0445, -1.1898, -1.1915, -0.7999, 0.6499, -1.1906, -0.0760, -1.6263, 1.4921, 1.0459,
            0.6466, 0.3545, 0.5257, -0.8455, 1.0657, -0.6641, 0.3563, -0.4902, 0.3553, -1.2313,
            -0.4891,
        ),
        "mean_stderr": (
            0.0007, 0.0014, 0.0011, 0.0010, 0.0011, 0.0010, 0.0011, 0.0011, 0.0011, 0.0010, 0.0011,
            0.0010, 0.0012, 0.0016, 0.0011, 0.0013, 0.0010, 0.0012, 0.0012, 0.0010, 0.0012, 0.0013,
            0.0012, 0.0011, 0.0010, 0.0011, 0.0010, 0.0015, 0.0015, 0.0012, 0.0011, 0.0008, 0.0008,
            0.0008, 0.0009, 0.0008, 0.0009, 0.0008, 0.0008, 0.0009, 0.0008,
        ),
        "sd": (
            0.2089, 0.7459, 0.6462, 0.6268, 0.6818, 0.6447, 0.6474, 0.6469, 0.6473, 0.6224, 0.6452,
            0.6264, 0.6845, 0.7521, 0.6460, 0.6854, 0.6273, 0.6854, 0.6837, 0.6220, 0.6850, 0.6840,
            0.6833, 0.6452, 0.6465, 0.6826, 0.6216, 0.7448, 0.7517, 0.6829, 0.6465, 0.4569, 0.4619,
            0.4752, 0.4832, 0.4680, 0.4586, 0.4615, 0.4581, 0.4965, 0.4623,
        ),
        "sd_stderr": (
            0.0009, 0.0012, 0.0008, 0.0007, 0.0010, 0.0008, 0.0008, 0.0008, 0.0008, 0.0007, 0.0008,
            0.0007, 0.0009, 0.0024, 0.0008, 0.0010, 0.0008, 0.0009, 0.0009, 0.0007, 0.0009, 0.0009,
            0.0009, 0.0008, 0.0008, 0.0009, 0.0007, 0.0012, 0.0022, 0.0009, 0.0008, 0.0005, 0.0006,
            0.0006, 0.0006, 0.0005, 0.0007, 0.0006, 0.0005, 0.0010, 0.0006,
        ),
    },
    "noncentered": {
        "mean": (
            0.1448, -1.3926, 0.5556, 0.2386, 0.8963, -0.6874, 0.5583, -0.6876, 0.5564, -0.0658,
            -0.6855, -0.3730, 0.8960, 1.2733, -0.6867, 0.8956, 0.2430, -1.0222, 0.8964, -0.0667,
            0.8956, -1.0211, -1.0231, -0.6886, 0.5582, -1.0232, -0.0657, -1.3921, 1.2756, 0.8976,
            0.5555, 0.3545, 0.5257, -0.8455, 1.0657, -0.6641, 0.3563, -0.4902, 0.3553, -1.2313,
            -0.4891,
        ),
        "mean_stderr": (
            0.0007, 0.0012, 0.0012, 0.0011, 0.0010, 0.0010, 0.0011, 0.0011, 0.0012, 0.0010, 0.0011,
            0.0010, 0.0011, 0.0011, 0.0010, 0.0012, 0.0011, 0.0011, 0.0010, 0.0011, 0.0010, 0.0011,
            0.0010, 0.0010, 0.0010, 0.0011, 0.0010, 0.0011, 0.0012, 0.0011, 0.0010, 0.0008, 0.0008,
            0.0008, 0.0009, 0.0008, 0.0009, 0.0008, 0.0008, 0.0009, 0.0008,
        ),
        "sd": (
            0.2089, 0.6104, 0.5601, 0.5484, 0.5803, 0.5580, 0.5614, 0.5604, 0.5619, 0.5448, 0.5586,
            0.5464, 0.5826, 0.6156, 0.5601, 0.5832, 0.5476, 0.5808, 0.5812, 0.5442, 0.5823, 0.5794,
            0.5794, 0.5579, 0.5592, 0.5804, 0.5434, 0.6099, 0.6154, 0.5814, 0.5603, 0.4569, 0.4619,
            0.4752, 0.4832, 0.4680, 0.4586, 0.4615, 0.4581, 0.4965, 0.4623,
        ),
        "sd_stderr": (
            0.0009, 0.0010, 0.0011, 0.0010, 0.0008, 0.0007, 0.0010, 0.0009, 0.0011, 0.0008, 0.0009,
            0.0008, 0.0008, 0.0009, 0.0008, 0.0012, 0.0010, 0.0008, 0.0008, 0.0009, 0.0008, 0.0008,
            0.0007, 0.0007, 0.0007, 0.0008, 0.0008, 0.0008, 0.0009, 0.0008, 0.0008, 0.0005, 0.0006,
            0.0006, 0.0006, 0.0005, 0.0007, 0.0006, 0.0005, 0.0010, 0.0006,
        ),
    },
}  # fmt: skip


def item_response_matrix(dtype: torch.dtype = torch.float64) -> Tensor:
    """The responses as a (30, 10) tensor of zeros and ones."""
    return torch.tensor([[float(c) for c in row] for row in ITEM_RESPONSES], dtype=dtype)


def _log_normal(x: Tensor, sd: Tensor | float) -> Tensor:
    sd_t = torch.as_tensor(sd, dtype=x.dtype, device=x.device)
    return -0.5 * (x / sd_t).square() - torch.log(sd_t) - 0.5 * LOG_2PI


class ItemResponsePrior:
    r"""The item-response prior as a normalised density on the sampler's coordinates:
    u = log sigma with sigma ~ half-Cauchy(0, 1) (density HC(e^u) e^u), theta_j ~ N(0, sigma^2)
    (centred) or z_j ~ N(0, 1) (non-centred), b_k ~ N(0, 2^2); exact draws by ancestral
    sampling. As an annealing base: likelihood tempering (see
    :class:`~.hierarchical.EightSchoolsPrior`)."""

    def __init__(
        self, centered: bool = True, students: int = 30, items: int = 10,
        dtype: torch.dtype = torch.float32,
    ):  # fmt: skip
        self.centered, self.students, self.items = bool(centered), students, items
        self.dtype = float_dtype(dtype)
        self.event_shape = torch.Size((1 + students + items,))

    def log_prob(self, x: Tensor) -> Tensor:
        if x.ndim != 2 or x.shape[1:] != self.event_shape:
            raise ValueError(f"x must have shape (n, {self.event_shape[0]}), got {tuple(x.shape)}")
        u, local, b = x[:, 0], x[:, 1 : 1 + self.students], x[:, 1 + self.students :]
        sigma = u.exp()
        lp = (math.log(2 / (math.pi * SIGMA_SCALE)) - torch.log1p((sigma / SIGMA_SCALE).square())
              + u + _log_normal(b, DIFFICULTY_SCALE).sum(1))  # fmt: skip
        if self.centered:
            return lp + _log_normal(local, sigma[:, None]).sum(1)
        return lp + _log_normal(local, 1.0).sum(1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        n = positive_int("n", n)
        u = log_half_cauchy_draws(n, SIGMA_SCALE, generator)
        z = torch.randn(n, self.students, generator=generator, dtype=torch.float64)
        b = DIFFICULTY_SCALE * torch.randn(n, self.items, generator=generator, dtype=torch.float64)
        local = u.exp()[:, None] * z if self.centered else z
        return torch.cat([u[:, None], local, b], 1).to(self.dtype)


class ItemResponse(Target):
    r"""The item-response posterior (module docstring) in d = 41 coordinates
    (log sigma, 30 abilities or their standardised values, 10 difficulties).

    ``log_Z`` is the importance-sampling estimate of :data:`ITEM_RESPONSE_REFERENCES`
    (standard error in ``references["log_Z_stderr"]``); the references hold the posterior
    mean and sd of every coordinate of the chosen form with their errors.

    Arguments:
        centered: the centred form (log sigma, theta, b), a funnel in (log sigma, theta), or
            the non-centred form (log sigma, z, b) with theta = sigma z.
        base: the recommended base: "gaussian" (the default: N(0, 1) for log sigma,
            N(0, 1.5^2) for theta (centred) or N(0, 1) for z (non-centred), N(0, 1.5^2) for
            the difficulties) or "prior" (:class:`ItemResponsePrior`: annealing then tempers
            the likelihood). The default SMC ran faster from the Gaussian at equal accuracy:
            the 300 responses make the likelihood strong, so the tempered path from the
            prior is long (benchmarks/RESULTS.md, "A prior as base").
        dtype: float32 or float64.
    """

    def __init__(
        self, centered: bool = True, base: str = "gaussian", dtype: torch.dtype = torch.float32
    ):
        self.centered = boolean("centered", centered)
        self.dtype = float_dtype(dtype)
        self.y = item_response_matrix(self.dtype)
        students, items = self.y.shape
        self.students, self.items = students, items
        local = 1.5 if centered else 1.0
        self.prior = ItemResponsePrior(centered, students, items, self.dtype)
        gaussian = DiagonalNormal(
            torch.zeros(1 + students + items, dtype=self.dtype),
            torch.tensor([1.0] + [local] * students + [1.5] * items, dtype=self.dtype),
        )
        base = choose_base(base, self.prior, gaussian)
        self._transport_base = gaussian
        form = "centered" if centered else "noncentered"
        refs: dict[str, object] = {}
        if ITEM_RESPONSE_REFERENCES:
            refs = {
                k: v
                for k, v in ITEM_RESPONSE_REFERENCES.items()
                if k not in ("centered", "noncentered")
            }
            refs.update({k: list(v) for k, v in ITEM_RESPONSE_REFERENCES[form].items()})  # type: ignore[union-attr]
        refs["coordinates"] = self.coordinate_names
        super().__init__(
            self._log_density,
            dim=1 + students + items,
            log_Z=refs.get("log_Z"),  # type: ignore[arg-type]
            base=base,
            name="item_response" + ("" if centered else "_noncentered"),
            references=refs,
        )

    @property
    def coordinate_names(self) -> list[str]:
        local = "theta" if self.centered else "z"
        return (["log_sigma"] + [f"{local}[{j}]" for j in range(self.students)]
                + [f"b[{k}]" for k in range(self.items)])  # fmt: skip

    def _log_density(self, x: Tensor) -> Tensor:
        u, local, b = x[:, 0], x[:, 1 : 1 + self.students], x[:, 1 + self.students :]
        theta = local if self.centered else u.exp()[:, None] * local
        eta = theta[:, :, None] - b[:, None, :]  # (n, students, items)
        like = (self.y.to(x) * eta - softplus(eta)).sum((1, 2))
        return self.prior.log_prob(x) + like
