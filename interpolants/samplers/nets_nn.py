r"""The networks of NETS (arXiv:2410.02711): a drift b_t(x) and a free-energy rate dF_t/dt.

- :class:`DriftMLP`: b_t(x) = s * MLP([x / s, embed(t)]) for vectors, s the base's scale per
  coordinate, so that the network sees inputs and returns outputs of order one.
- :class:`BlockDrift`: one MLP shared by the d / k blocks of k coordinates, for targets
  made of independent (or weakly coupled) blocks such as many_well's pairs.
- :class:`LatticeDrift`: a periodic (circular-padding) convolutional network for fields on an
  L x L torus such as phi^4; translation-equivariant, and its cost grows like L^2, so that
  L = 16 trains on a CPU.
- :class:`FreeEnergyRate`: dF_t/dt as a small MLP of t (F_0 = 0, F_1 = -log Z_1 + log Z_0).

The drifts whose Jacobian is sparse say so by ``jacobian_sparsity()``: a colouring of the
coordinates and the pattern of possible non-zeros, so that the exact Jacobians of the
sampling run's log-determinant take one VJP per colour instead of one per coordinate
(:func:`lattice_coloring`).

The last layer of each drift is zero at initialisation: training starts from b = 0, where
NETS is annealed importance sampling.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..nn import TimeEmbedding

__all__ = ["BlockDrift", "DriftMLP", "FreeEnergyRate", "LatticeDrift", "lattice_coloring"]

#: (colours (d,), pattern (d, d)): grad b may be non-zero only where pattern is True, and no
#: two coordinates of one colour share a column of the pattern
Sparsity = tuple[Tensor, Tensor]


def lattice_coloring(L: int, radius: int) -> Sparsity:
    r"""Colours and Jacobian pattern of a map of fields on the L x L torus whose output at a
    site depends on the input within Chebyshev distance ``radius`` (a stack of r 3x3
    convolutions has radius r).

    d b_i / d x_j = 0 unless dist(i, j) <= R, so two sites at distance > 2R never have a
    non-zero in the same column. Colouring site (a, b) by (a mod m, b mod m), m the smallest
    divisor of L with m >= 2R + 1, puts same-coloured sites at least m apart on the torus; the
    VJP with the indicator of colour c then holds, at column j, the one entry d b_i / d x_j
    with i of colour c near j. So m^2 VJPs give the whole Jacobian (the column grouping of
    Curtis, Powell and Reid, J. Inst. Math. Appl. 13, 117, 1974): 64 instead of 256 at
    L = 16 for R = 3. When no such m < L exists every site has its own colour.

    Returns:
        colours (L * L,) int64 in [0, m^2) and the pattern (L * L, L * L) bool, both in the
        row-major order of the flattened field.
    """
    if L < 1 or radius < 0:
        raise ValueError(f"L must be >= 1 and radius >= 0, got {L}, {radius}")
    m = next((k for k in range(2 * radius + 1, L) if L % k == 0), L)
    a, b = torch.meshgrid(torch.arange(L), torch.arange(L), indexing="ij")
    a, b = a.flatten(), b.flatten()
    colours = (a % m) * m + b % m

    def torus(u: Tensor) -> Tensor:
        gap = (u[:, None] - u[None]).abs()
        return torch.minimum(gap, L - gap)

    pattern = torch.maximum(torus(a), torus(b)) <= radius
    return colours, pattern


def _mlp(n_in: int, width: int, depth: int, n_out: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(n_in, width), nn.SiLU()]
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), nn.SiLU()]
    last = nn.Linear(width, n_out)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(*layers, last)


class DriftMLP(nn.Module):
    r"""b_t(x) = s * MLP([x / s, embed(t)]) with SiLU activations and a zero last layer.

    Arguments:
        dim: the dimension d.
        scale: s, (d,) or a float: the typical spread of the walkers (the base's std).
        width, depth: hidden width and number of hidden layers.
        time_features: Fourier frequencies of the time embedding.
        features: random Fourier features [sin, cos](W x / s) of the input, W ~ N(0, f^2)
            (0: none). They let the network resolve structure much finer than s (Tancik et
            al., arXiv:2006.10739), e.g. 40 narrow modes spread over a box as wide as s.
        feature_scale: f.
    """

    def __init__(
        self,
        dim: int,
        scale: Tensor | float = 1.0,
        width: int = 128,
        depth: int = 3,
        time_features: int = 16,
        features: int = 0,
        feature_scale: float = 8.0,
    ):
        super().__init__()
        if dim < 1 or width < 1 or depth < 1:
            raise ValueError(f"dim, width and depth must be positive, got {dim}, {width}, {depth}")
        self.config = {"kind": "mlp", "dim": dim, "width": width, "depth": depth,
                       "features": features, "feature_scale": feature_scale}  # fmt: skip
        self.embed = TimeEmbedding(time_features, scale=2.0)
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32).expand(dim))
        g = torch.Generator().manual_seed(4321)
        self.register_buffer("freqs", torch.randn(dim, features, generator=g) * feature_scale)
        self.net = _mlp(dim + 2 * features + self.embed.dim, width, depth, dim)

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        s = self.scale.to(x.dtype)
        z = x / s
        emb = self.embed(t.to(x.dtype).expand(x.shape[0]))
        if self.freqs.shape[1]:
            arg = z @ self.freqs.to(x.dtype)
            z = torch.cat([z, arg.sin(), arg.cos()], dim=1)
        return s * self.net(torch.cat([z, emb], dim=1))


class BlockDrift(nn.Module):
    r"""b_t(x)_j = s_j * MLP([x_j / s_j, features, e_j, embed(t)]) for the blocks x_j of k
    consecutive coordinates, one MLP shared by all d / k blocks, e_j a learned embedding of
    the block's index (so blocks may differ).

    Each block's drift sees only its own block: the right inductive bias for a product of
    independent factors, whose transport is the product of the factors' transports. On
    many_well one pair is learned to ESS/N 0.91 while the plain MLP's ESS/N falls from
    0.91 (1 pair) to 0.22 (4 pairs) and 0.002 (16) (benchmarks/RESULTS_nets.md).

    Arguments:
        dim: d, a multiple of ``block``.
        block: k, coordinates per block.
        scale: s, (d,) or a float.
        width, depth, time_features, features, feature_scale: as :class:`DriftMLP`, per
            block.
        block_features: size of the block-index embedding e_j (0: none).
    """

    def __init__(
        self,
        dim: int,
        block: int = 2,
        scale: Tensor | float = 1.0,
        width: int = 128,
        depth: int = 3,
        time_features: int = 16,
        features: int = 0,
        feature_scale: float = 8.0,
        block_features: int = 8,
    ):
        super().__init__()
        if block < 1 or dim % block:
            raise ValueError(f"block must divide dim={dim}, got {block}")
        self.config = {"kind": "blocks", "dim": dim, "block": block, "width": width,
                       "depth": depth, "features": features,
                       "feature_scale": feature_scale}  # fmt: skip
        self.k, self.blocks = block, dim // block
        self.embed = TimeEmbedding(time_features, scale=2.0)
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32).expand(dim))
        g = torch.Generator().manual_seed(4321)
        self.register_buffer("freqs", torch.randn(block, features, generator=g) * feature_scale)
        self.index = nn.Parameter(0.1 * torch.randn(self.blocks, block_features, generator=g))
        n_in = block + 2 * features + block_features + self.embed.dim
        self.net = _mlp(n_in, width, depth, block)
        idx = torch.arange(dim)  # CPU tensors, built once: read at every exact Jacobian
        self._sparsity = idx % block, idx[:, None] // block == idx[None] // block

    def jacobian_sparsity(self) -> Sparsity:
        """grad b is block diagonal: colour i mod k, one VJP per position within a block."""
        return self._sparsity

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        n, s = x.shape[0], self.scale.to(x.dtype)
        z = (x / s).reshape(n, self.blocks, self.k)
        parts = [z]
        if self.freqs.shape[1]:
            arg = z @ self.freqs.to(x.dtype)
            parts += [arg.sin(), arg.cos()]
        emb = self.embed(t.to(x.dtype).expand(n))
        parts += [
            self.index.to(x.dtype).expand(n, -1, -1),
            emb[:, None].expand(-1, self.blocks, -1),
        ]
        return s * self.net(torch.cat(parts, dim=2)).reshape(x.shape)


class _FiLMConv(nn.Module):
    """A circular 3x3 convolution, SiLU, then a time-dependent scale and shift per channel."""

    def __init__(self, c_in: int, c_out: int, t_dim: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, padding_mode="circular")
        self.film = nn.Linear(t_dim, 2 * c_out)

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
        return torch.nn.functional.silu(self.conv(h)) * (1 + scale) + shift


class LatticeDrift(nn.Module):
    r"""b_t(phi) for fields phi on an L x L periodic lattice, flattened to (batch, L * L).

    Input channels phi / s, phi^3 / s^3 (the quartic force) and (``hop``) the
    nearest-neighbour sum / s; ``depth`` circular 3x3 convolutions of ``width`` channels with
    time FiLM; a zero 1x1 output convolution. Equivariant under lattice translations, and
    local: b at a site depends on the field within distance R = depth + hop, which
    :meth:`jacobian_sparsity` passes on to the exact Jacobians (at L = 16, depth 3 and
    hop=False: 64 VJPs instead of 256; with the hop channel R = 4 and no saving below L = 18).

    Arguments:
        L: the lattice side.
        scale: s, the typical field value.
        width, depth: channels and number of convolutions.
        time_features: Fourier frequencies of the time embedding.
        hop: feed the nearest-neighbour sum as an input channel (the first convolution can
            form it too; it widens the receptive field by one site).
    """

    def __init__(
        self,
        L: int,
        scale: float = 1.0,
        width: int = 32,
        depth: int = 3,
        time_features: int = 8,
        hop: bool = True,
    ):
        super().__init__()
        if L < 2 or width < 1 or depth < 1:
            raise ValueError(f"L, width and depth must be >= 2, 1, 1, got {L}, {width}, {depth}")
        self.config = {"kind": "conv", "L": L, "width": width, "depth": depth, "hop": hop}
        self.L, self.s, self.hop, self.radius = L, float(scale), hop, depth + int(hop)
        self.embed = TimeEmbedding(time_features, scale=2.0)
        t_dim = 2 * width
        self.t_mlp = nn.Sequential(nn.Linear(self.embed.dim, t_dim), nn.SiLU())
        self.layers = nn.ModuleList(
            [_FiLMConv((3 if hop else 2) if i == 0 else width, width, t_dim) for i in range(depth)]
        )
        self.out = nn.Conv2d(width, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self._sparsity = lattice_coloring(L, self.radius)  # CPU tensors, built once

    def jacobian_sparsity(self) -> Sparsity:
        """:func:`lattice_coloring` for the receptive field R = depth + hop."""
        return self._sparsity

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        phi = x.reshape(-1, 1, self.L, self.L) / self.s
        channels = [phi, phi.pow(3)]
        if self.hop:
            channels.append(sum(phi.roll(k, d) for k in (1, -1) for d in (2, 3)))
        h = torch.cat(channels, dim=1)
        emb = self.t_mlp(self.embed(t.to(x.dtype).expand(x.shape[0])))
        for layer in self.layers:
            h = layer(h, emb)
        return self.s * self.out(h).reshape(x.shape)


class FreeEnergyRate(nn.Module):
    r"""dF_t/dt = c * MLP(embed(t)), a scalar function of t; c sets the output scale.

    Arguments:
        width, depth: hidden width and layers.
        time_features: Fourier frequencies of the time embedding.
    """

    def __init__(self, width: int = 64, depth: int = 2, time_features: int = 16):
        super().__init__()
        self.embed = TimeEmbedding(time_features, scale=2.0)
        self.net = _mlp(self.embed.dim, width, depth, 1)
        self.register_buffer("c", torch.ones(()))

    def forward(self, t: Tensor) -> Tensor:
        return self.c * self.net(self.embed(t.float())).squeeze(-1)
