r"""Neal's funnel: x_0 ~ N(0, 3^2), x_{1..d-1} | x_0 ~ N(0, e^{x_0} I) (docs/benchmarks.md)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..checks import float_dtype, int_at_least, positive_float
from .base import Target, gaussian_base

__all__ = ["Funnel"]

LOG_2PI = math.log(2 * math.pi)


class Funnel(Target):
    r"""Neal's funnel in R^d (Neal, "Slice sampling", Ann. Statist. 31, 2003).

    log rho(x) = log N(x_0; 0, s^2) + sum_{i>=1} log N(x_i; 0, e^{x_0})
               = -x_0^2 / (2 s^2) - log s - (d - 1) x_0 / 2 - e^{-x_0} |x_{1:}|^2 / 2
                 - (d / 2) log 2 pi,

    normalised (log Z = 0), with s = 3 and d = 10 by default. Exact samples: x_0 = s z_0,
    x_i = e^{x_0 / 2} z_i. Closed-form gradient:
    d/dx_0 = -x_0 / s^2 - (d - 1) / 2 + e^{-x_0} |x_{1:}|^2 / 2, d/dx_i = -e^{-x_0} x_i.

    Known moments: E x_0 = 0, Var x_0 = s^2, E x_i^2 = E e^{x_0} = e^{s^2 / 2} (= 90.017 for
    s = 3). The recommended base is N(0, I), the usual choice for this target.

    Arguments:
        dim: the dimension d >= 2.
        scale: the standard deviation s of x_0.
        dtype: float32 or float64, the dtype of the samples and of the base.
    """

    def __init__(self, dim: int = 10, scale: float = 3.0, dtype: torch.dtype = torch.float32):
        int_at_least("dim", dim, 2)
        self.scale = positive_float("scale", scale)
        self.dtype = float_dtype(dtype)
        refs = {
            "log_Z": 0.0,
            "log_Z_source": "exact: normalised by construction",
            "mean": 0.0,
            "var_x0": self.scale**2,
            "second_moment_xi": math.exp(self.scale**2 / 2),
            "reference": "Neal (2003), Slice sampling, Ann. Statist. 31(3)",
        }
        super().__init__(
            self._log_prob,
            dim=dim,
            log_Z=0.0,
            sample=self._sample,
            grad_log_prob=self._grad_log_prob,
            base=gaussian_base(dim, 1.0, self.dtype),
            name="funnel",
            references=refs,
        )

    def _log_prob(self, x: Tensor) -> Tensor:
        x0, rest = x[:, 0], x[:, 1:]
        s, d = self.scale, self.dim
        log_x0 = -0.5 * (x0 / s).square() - math.log(s) - 0.5 * LOG_2PI
        log_rest = -0.5 * (d - 1) * (x0 + LOG_2PI) - 0.5 * torch.exp(-x0) * rest.square().sum(1)
        return log_x0 + log_rest

    def _grad_log_prob(self, x: Tensor) -> Tensor:
        x0, rest = x[:, :1], x[:, 1:]
        inv_var = torch.exp(-x0)
        g0 = -x0 / self.scale**2 - 0.5 * (self.dim - 1) + 0.5 * inv_var * rest.square().sum(1, True)
        return torch.cat([g0, -inv_var * rest], dim=1)

    def _sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        z = torch.randn(int_at_least("n", n, 1), self.dim, generator=generator, dtype=self.dtype)
        x0 = self.scale * z[:, :1]
        return torch.cat([x0, torch.exp(0.5 * x0) * z[:, 1:]], dim=1)
