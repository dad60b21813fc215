r"""Gaussian mixtures as targets: ``gmm40`` and the ``gmm-d{d}-k{k}`` family (docs/benchmarks.md).

rho(x) = sum_k w_k N(x; m_k, diag(s_k^2)) is normalised (log Z = 0) and has an exact
sampler, so samplers can be scored on log Z, on sample metrics and on mode coverage.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .. import distributions
from ..checks import float_dtype, int_at_least, positive_float
from .base import Target, gaussian_base

__all__ = ["GaussianMixture", "gaussian_mixture_family", "gmm40"]

LOG_2PI = math.log(2 * math.pi)


class GaussianMixture(Target):
    r"""The target rho(x) = sum_k w_k N(x; m_k, diag(s_k^2)), normalised: log Z = 0.

    A target for the samplers (a :class:`Target`); the normalised distribution it wraps, with
    ``sample`` and ``log_prob``, is ``self.mixture``, an
    :class:`interpolants.distributions.MixtureOfGaussians`.

    ``log_prob`` follows the dtype and device of x; ``sample`` draws exactly (component,
    then Gaussian) in the dtype of ``means``; the gradient is the closed form
    grad log rho(x) = -sum_k r_k(x) (x - m_k) / s_k^2 with responsibilities r_k(x).

    Arguments:
        means: (k, d) component means.
        stds: (k,) isotropic or (k, d) per-dimension standard deviations, or one float.
        weights: (k,) non-negative weights (normalised here); None for equal weights.
        base_scale: std of the recommended Gaussian base N(0, base_scale^2 I).
        name: a label for plots and metrics.
        references: extra reference values to record.

    Example:
        >>> t = GaussianMixture(torch.tensor([[-2.0], [2.0]]), torch.tensor([0.5, 0.5]))
        >>> t.log_prob(torch.zeros(3, 1)).shape
        torch.Size([3])
    """

    def __init__(
        self,
        means: Tensor,
        stds: Tensor | float,
        weights: Tensor | None = None,
        *,
        base_scale: float = 1.0,
        name: str = "gmm",
        references: dict[str, Any] | None = None,
    ):
        means = torch.as_tensor(means)
        if not means.is_floating_point():
            means = means.to(torch.get_default_dtype())
        self.mixture = distributions.MixtureOfGaussians(means, stds, weights)
        k, d = self.mixture.means.shape
        refs = {"log_Z": 0.0, "log_Z_source": "exact: a normalised mixture", "modes": k}
        super().__init__(
            self._log_prob,
            dim=d,
            log_Z=0.0,
            sample=self.mixture.sample,
            grad_log_prob=self._grad_log_prob,
            base=gaussian_base(d, positive_float("base_scale", base_scale), self.means.dtype),
            base_scale=base_scale,
            name=name,
            references={**refs, **(references or {})},
        )

    @property
    def means(self) -> Tensor:
        """(k, d) component means."""
        return self.mixture.means

    @property
    def stds(self) -> Tensor:
        """(k, d) per-dimension standard deviations."""
        return self.mixture.stds

    @property
    def weights(self) -> Tensor:
        """(k,) normalised weights."""
        return self.mixture.weights

    def component_log_prob(self, x: Tensor) -> Tensor:
        """log w_k + log N(x; m_k, diag(s_k^2)) for every component: (n, k)."""
        self._check_x(x)
        means, stds = self.means.to(x), self.stds.to(x)
        u = (x[:, None, :] - means) / stds
        log_n = -0.5 * (u.square() + LOG_2PI).sum(-1) - stds.log().sum(-1)
        return log_n + self.weights.to(x).log()

    def _log_prob(self, x: Tensor) -> Tensor:
        return torch.logsumexp(self.component_log_prob(x), dim=1)

    def _grad_log_prob(self, x: Tensor) -> Tensor:
        r = torch.softmax(self.component_log_prob(x), dim=1)
        pull = (x[:, None, :] - self.means.to(x)) / self.stds.to(x).square()
        return -(r[:, :, None] * pull).sum(1)

    def assign(self, samples: Tensor) -> Tensor:
        """The most likely component argmax_k w_k N(x; m_k, s_k^2) of every sample: (n,)."""
        return self.component_log_prob(samples).argmax(dim=1)

    def mode_counts(self, samples: Tensor) -> Tensor:
        """How many samples each component receives under :meth:`assign`: (k,)."""
        k = self.means.shape[0]
        return torch.bincount(self.assign(samples).cpu(), minlength=k)

    def modes_covered(self, samples: Tensor, min_fraction: float = 0.1) -> int:
        r"""The number of components that receive a fair share of the samples.

        Each sample goes to its most likely component (:meth:`assign`); component k counts
        as covered when it receives at least max(1, min_fraction * w_k * n) of the n samples,
        i.e. by default a tenth of its expected share (for gmm40 and n = 2000: 5 samples).

        Arguments:
            samples: (n, d) samples to score.
            min_fraction: the threshold as a fraction of the expected count, in (0, 1].

        Returns:
            An integer between 0 and k.
        """
        if not 0 < min_fraction <= 1:
            raise ValueError(f"min_fraction must be in (0, 1], got {min_fraction!r}")
        counts = self.mode_counts(samples).to(torch.float64)
        need = (min_fraction * self.weights.cpu().double() * samples.shape[0]).clamp(min=1.0)
        return int((counts >= need).sum())


def gmm40(dtype: torch.dtype = torch.float32) -> GaussianMixture:
    r"""The 40-mode mixture in 2D of FAB (Midgley et al., arXiv:2208.01893).

    means = (U[0, 1)^{40 x 2} - 0.5) * 2 * 40, drawn in float32 from a generator seeded 0
    (the same numbers as ``torch.manual_seed(0); torch.rand(40, 2)``, without touching the
    global generator), then cast to ``dtype``; every component has per-dimension std
    softplus(1) = log(1 + e) = 1.3133 and weight 1/40. Normalised: log Z = 0.

    The recommended base is N(0, 40^2 I): one standard deviation per coordinate spans the
    box [-40, 40]^2 that holds the means, so every mode is reached by the base.

    Arguments:
        dtype: float32 or float64, the dtype of the parameters and of the samples.
    """
    dtype = float_dtype(dtype)
    generator = torch.Generator().manual_seed(0)
    means = (torch.rand(40, 2, dtype=torch.float32, generator=generator) - 0.5) * 2 * 40
    std = torch.full((40,), math.log1p(math.e), dtype=dtype)
    refs = {"box": "[-40, 40]^2", "std": math.log1p(math.e), "reference": "arXiv:2208.01893"}
    return GaussianMixture(means.to(dtype), std, base_scale=40.0, name="gmm40", references=refs)


def gaussian_mixture_family(
    d: int,
    k: int,
    seed: int = 0,
    box: float = 10.0,
    std: float = 1.0,
    dtype: torch.dtype = torch.float32,
) -> GaussianMixture:
    r"""The ``gmm-d{d}-k{k}`` mixtures: k equal-weight components N(m_j, std^2 I) in R^d.

    m = (U[0, 1)^{k x d} - 0.5) * 2 * box, drawn in float32 from a generator seeded ``seed``
    (default 0) and cast to ``dtype``. Normalised: log Z = 0. The recommended base is
    N(0, box^2 I), which covers the box [-box, box]^d of the means.

    Arguments:
        d: the dimension.
        k: the number of components.
        seed: the seed of the means.
        box: the half-width of the box of the means.
        std: the standard deviation of every component.
        dtype: float32 or float64, the dtype of the parameters and of the samples.
    """
    d, k, seed = int_at_least("d", d, 1), int_at_least("k", k, 1), int_at_least("seed", seed, 0)
    box, std = positive_float("box", box), positive_float("std", std)
    dtype = float_dtype(dtype)
    generator = torch.Generator().manual_seed(seed)
    means = (torch.rand(k, d, dtype=torch.float32, generator=generator) - 0.5) * 2 * box
    stds = torch.full((k,), std, dtype=dtype)
    refs = {"seed": seed, "box": box, "std": std}
    return GaussianMixture(
        means.to(dtype), stds, base_scale=box, name=f"gmm-d{d}-k{k}", references=refs
    )
