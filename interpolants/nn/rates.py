r"""The rate network of LEAPS (arXiv:2502.10843): a locally equivariant CTMC rate matrix.

A continuous-time Markov chain on values^dim that changes one site at a time is given by
the rates r_t(x -> tau_{i,c} x) of setting site i to the value v_c. LEAPS needs, at every
state x, both the rates out of x and the rates into x from each of its neighbours
tau_{i,c} x, and gets them from one network evaluation when the rates at site i are
a table

    r_t(x -> tau_{i,c} x) = T_t(x_{-i})[i, x_i, c],

whose entries depend on every site but i (the paper's local equivariance: changing x_i only
moves the reading position in the table). Then the rate into x from tau_{i,c} x is
T_t(x_{-i})[i, c, x_i], read from the same table. The table is ``softplus`` of a network's
output (rates >= 0, and > 0 so that every jump can be undone), built from

- a lattice (dim = L^2, periodic): a k x k convolution of the one-hot states whose centre tap
  is removed (it sees the neighbourhood of i, not i), or otherwise a dense layer with its
  diagonal blocks removed (it sees all sites but i);
- the share of each value over the other sites, (counts - onehot(x_i)) / (dim - 1), a
  global feature that does not see x_i either;
- pointwise (per-site) layers with the time embedding added: they keep the blindness to x_i.

This is a simpler network than the paper's locally equivariant convolutions, and one its
loss admits: any table that is blind to x_i is locally equivariant.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .embedding import TimeEmbedding
from .registry import register

__all__ = ["LocallyEquivariantRates"]


@register
class LocallyEquivariantRates(nn.Module):
    r"""Rates T_t(x_{-i})[i, a, c] >= 0 of a single-site CTMC on values^dim (module
    docstring).

    Arguments:
        dim: the number of sites.
        q: the number of values a site takes.
        side: L for an L x L periodic lattice (dim = L^2): a masked convolution; None: a
            masked dense layer (dim^2 q width weights: for small dim).
        width: hidden channels per site.
        depth: pointwise hidden layers after the masked layer.
        kernel: the convolution's size k (odd).
        time_features: Fourier frequencies of the time embedding.
        init_rate: every rate at initialisation (softplus of the last layer's bias).

    Example:
        >>> net = LocallyEquivariantRates(dim=16, q=2, side=4)
        >>> net(torch.rand(3), torch.randint(2, (3, 16))).shape
        torch.Size([3, 16, 2, 2])
    """

    def __init__(
        self,
        dim: int,
        q: int,
        side: int | None = None,
        width: int = 32,
        depth: int = 2,
        kernel: int = 5,
        time_features: int = 8,
        init_rate: float = 0.1,
    ):
        super().__init__()
        if side is not None and side * side != dim:
            raise ValueError(f"side must satisfy side^2 = dim ({dim}), got {side}")
        if kernel % 2 != 1 or kernel < 3:
            raise ValueError(f"kernel must be an odd integer >= 3, got {kernel}")
        self.config = {"dim": dim, "q": q, "side": side, "width": width, "depth": depth,
                       "kernel": kernel, "time_features": time_features,
                       "init_rate": init_rate}  # fmt: skip
        self.dim, self.q, self.side = dim, q, side
        if side is not None:
            self.local = nn.Conv2d(q, width, kernel, padding=kernel // 2,
                                   padding_mode="circular")  # fmt: skip
            mask = torch.ones(kernel, kernel)
            mask[kernel // 2, kernel // 2] = 0
        else:
            self.local = nn.Linear(dim * q, dim * width)
            mask = 1 - torch.eye(dim).repeat_interleave(width, 0).repeat_interleave(q, 1)
        self.register_buffer("mask", mask)
        self.embed = TimeEmbedding(time_features, scale=1.0)
        self.time = nn.Linear(self.embed.dim, width)
        self.globe = nn.Linear(q, width)
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers += [nn.SiLU(), nn.Linear(width, width)]
        self.hidden = nn.Sequential(*layers)
        self.out = nn.Linear(width, q * q)
        nn.init.zeros_(self.out.weight)
        nn.init.constant_(self.out.bias, float(torch.tensor(init_rate).expm1().log()))

    def forward(self, t: Tensor, index: Tensor) -> Tensor:
        """The rate table (n, dim, q, q) at times t (n,) and states given by their value
        indices ``index`` (n, dim) (long)."""
        n = index.shape[0]
        onehot = F.one_hot(index, self.q).float()  # (n, dim, q)
        if self.side is not None:
            img = onehot.permute(0, 2, 1).reshape(n, self.q, self.side, self.side)
            h = F.conv2d(F.pad(img, [self.local.padding[0]] * 4, mode="circular"),
                         self.local.weight * self.mask, self.local.bias)  # fmt: skip
            h = h.flatten(2).transpose(1, 2)  # (n, dim, width)
        else:
            h = F.linear(onehot.flatten(1), self.local.weight * self.mask, self.local.bias)
            h = h.view(n, self.dim, -1)
        others = (onehot.sum(1, keepdim=True) - onehot) / max(self.dim - 1, 1)
        h = h + self.globe(others) + self.time(self.embed(t.float()))[:, None]
        out = self.out(self.hidden(h))
        return F.softplus(out).view(n, self.dim, self.q, self.q)
