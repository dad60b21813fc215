r"""Unnormalised densities on a finite product space {v_0, ..., v_{q-1}}^dim.

A discrete target is known through ``log_prob`` and its single-site log ratios

    R(x)[i, c] = log rho(x with x_i = v_c) - log rho(x)    (0 where v_c = x_i),

the discrete counterpart of the gradient: Gibbs and Metropolis moves, the annealing weights
of AIS / SMC and LEAPS's rates (arXiv:2502.10843) need no other evaluation. States are float
tensors (n, dim) whose entries are among ``values`` (Ising: -1, +1; Potts: 0, ..., q - 1),
so that samples, expectations, summaries and ArviZ output work as for continuous targets.
One walker-evaluation is ``log_prob`` with its ratios (``log_prob_and_ratios``), as one is
``log_prob`` with its gradient for a continuous target.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from .base import Target

__all__ = ["DiscreteTarget", "UniformDiscrete", "value_index"]

CHUNK = 2**24  # entries of the moved states built at once by the default ratios


def value_index(x: Tensor, values: Tensor) -> Tensor:
    """The index c of each entry's value v_c: long tensor shaped like x (ValueError for an
    entry that is not among ``values``)."""
    hit = x.unsqueeze(-1) == values.to(x.dtype)
    if not bool(hit.any(-1).all()):
        bad = x[~hit.any(-1)][:3].tolist()
        raise ValueError(f"x has entries {bad} that are not among the values {values.tolist()}")
    return hit.to(torch.int64).argmax(-1)


class UniformDiscrete:
    """The uniform law on values^dim: the base p_0 of the discrete annealing paths."""

    def __init__(self, values: Tensor, dim: int):
        self.values, self.dim = values, dim

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n uniform states (n, dim)."""
        idx = torch.randint(len(self.values), (n, self.dim), generator=generator)
        return self.values[idx]

    def log_prob(self, x: Tensor) -> Tensor:
        """-dim log q at every state (n,)."""
        return torch.full(x.shape[:1], -self.dim * math.log(len(self.values)), dtype=x.dtype)

    def log_prob_and_ratios(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(log p_0, zeros (n, dim, q)): every single-site change keeps the density."""
        return self.log_prob(x), x.new_zeros((*x.shape, len(self.values)))


class DiscreteTarget(Target):
    r"""A target on values^dim, known through ``log_prob`` and ``log_prob_and_ratios``.

    Subclasses implement :meth:`log_prob_and_ratios` (the default evaluates every
    single-site change, dim (q - 1) densities per state: right for small user targets, slow
    for large ones) and set ``colours``: boolean masks (dim,) that partition the sites into
    sets whose sites are conditionally independent given the rest (a lattice's
    checkerboard), so that a Gibbs sweep updates a whole colour at once. The base is the
    uniform law on values^dim.

    Arguments:
        log_prob: callable of x (n, dim) returning (n,) unnormalised log densities.
        dim: the number of sites.
        values: the values a site takes, (q,).
        colours: the masks described above; None: every site its own colour.
        log_Z, name, references: as for :class:`Target`.
    """

    def __init__(
        self,
        log_prob,
        dim: int,
        values: Sequence[float] | Tensor,
        colours: Sequence[Tensor] | None = None,
        log_Z: float | None = None,
        name: str | None = None,
        references: dict | None = None,
        dtype: torch.dtype | None = None,
    ):
        dtype = dtype or torch.get_default_dtype()
        values = torch.as_tensor(values, dtype=dtype).flatten()
        if values.numel() < 2 or values.unique().numel() != values.numel():
            raise ValueError(f"values must hold at least two distinct values, got {values}")
        self.values = values
        base = UniformDiscrete(values, dim)
        super().__init__(log_prob, dim, log_Z=log_Z, base=base, name=name, references=references)
        if colours is None:
            colours = [torch.arange(dim) == i for i in range(dim)]
        colours = [torch.as_tensor(c, dtype=torch.bool) for c in colours]
        cover = torch.stack(colours).sum(0) if colours else torch.zeros(dim)
        if any(c.shape != (dim,) for c in colours) or not bool((cover == 1).all()):
            raise ValueError(
                f"colours must be boolean masks of shape ({dim},) that partition the sites"
            )
        self.colours = colours

    @property
    def q(self) -> int:
        """The number of values a site takes."""
        return len(self.values)

    def log_prob_and_ratios(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(log rho(x) (n,), R(x) (n, dim, q)) by evaluating every single-site change."""
        self._check_x(x)
        lp = self.log_prob(x)
        q, site = self.q, torch.arange(self.dim)
        rows = max(1, CHUNK // (self.dim * self.dim * q))  # walkers per call of log_prob
        parts = []
        for chunk in x.split(rows):
            n = chunk.shape[0]
            moved = chunk[:, None, None].expand(n, self.dim, q, self.dim).clone()
            moved[:, site, :, site] = self.values.to(x.dtype).expand(self.dim, n, q)
            parts.append(self.log_prob(moved.reshape(-1, self.dim)).reshape(n, self.dim, q))
        return lp, torch.cat(parts) - lp[:, None, None]

    def log_prob_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        raise TypeError(f"{self.name} is a discrete target: it has ratios, not a gradient")

    def grad_log_prob(self, x: Tensor) -> Tensor:
        raise TypeError(f"{self.name} is a discrete target: it has ratios, not a gradient")
