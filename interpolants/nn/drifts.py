r"""The networks of NETS (arXiv:2410.02711): a drift b_t(x) and a free-energy rate dF_t/dt.

- :class:`DriftMLP`: b_t(x) = s * MLP([x / s, embed(t)]) for vectors, s the base's scale per
  coordinate, so that the network sees inputs and returns outputs of order one.
- :class:`BlockDrift`: one MLP shared by the d / k blocks of k coordinates, for targets
  made of independent (or weakly coupled) blocks such as many_well's pairs.
- :class:`LatticeDrift`: a periodic (circular-padding) convolutional network for fields on an
  L x L torus such as phi^4; translation-equivariant, and its cost grows like L^2, so that
  L = 16 trains on a CPU.
- :class:`FreeEnergyRate`: dF_t/dt as a small MLP of t (F_0 = 0, F_1 = -log Z_1 + log Z_0).
- :func:`build_drift`: the drift that suits a target's structure (NETS's ``net=`` option).

The drifts whose Jacobian is sparse say so by ``jacobian_sparsity()`` (block or lattice
drifts, :mod:`.lattice`), so that the exact Jacobians of the sampling run's log-determinant
take one VJP per colour instead of one per coordinate.

The last layer of each drift is zero at initialisation: training starts from b = 0, where
NETS is annealed importance sampling. Each takes an optional conditioning ``cond``
(:class:`~.embedding.Conditioning`), configured by ``cond_features`` and ``classes``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .embedding import Conditioning, TimeEmbedding, fourier_features
from .lattice import Sparsity, lattice_coloring
from .mlp import mlp
from .registry import register

__all__ = [
    "BlockDrift",
    "DriftMLP",
    "FreeEnergyRate",
    "LatticeDrift",
    "build_drift",
    "same_drift",
    "scale_option",
]


def scale_option(scale: Tensor | float) -> float | list[float]:
    """The scale s of a drift as plain data for its ``config``: a float when every
    coordinate has the same one, else the list of the (float32) values."""
    s = torch.as_tensor(scale, dtype=torch.float32).detach().flatten().cpu()
    if s.numel() and bool((s == s[0]).all()):
        return float(s[0])
    return s.tolist()


@register
class DriftMLP(nn.Module):
    r"""A drift for vectors, with SiLU activations and a zero last layer,

    .. math:: b_t(x) = s \odot \mathrm{MLP}([z, \sin(z W), \cos(z W), e(t), c]),
        \quad z = x / s,

    s the typical spread of the walkers per coordinate, e the :class:`~.embedding.
    TimeEmbedding` (scale 2), W ~ N(0, f^2) optional random Fourier features of the input
    (Tancik et al., arXiv:2006.10739) and c the optional conditioning.

    Arguments:
        dim: the dimension d.
        scale: s, (d,) or a float: the typical spread of the walkers (the base's std).
        width, depth: hidden width and number of hidden layers.
        time_features: Fourier frequencies of the time embedding.
        features: number of random Fourier features of the input (0: none). They let the
            network resolve structure much finer than s, e.g. 40 narrow modes spread over a
            box as wide as s.
        feature_scale: f.
        cond_features: size F of the conditioning c (0: none, and ``cond`` must be None).
        classes: with K > 0, ``cond`` holds labels in [0, K), embedded in F features.

    Example:
        >>> b = DriftMLP(3, scale=2.0, width=32, depth=2)
        >>> b(torch.tensor(0.5), torch.randn(10, 3)).abs().max()  # zero at initialisation
        tensor(0., grad_fn=<MaxBackward1>)
    """

    def __init__(
        self,
        dim: int,
        scale: Tensor | float | list[float] = 1.0,
        width: int = 128,
        depth: int = 3,
        time_features: int = 16,
        features: int = 0,
        feature_scale: float = 8.0,
        cond_features: int = 0,
        classes: int = 0,
    ):
        super().__init__()
        if dim < 1 or width < 1 or depth < 1:
            raise ValueError(f"dim, width and depth must be positive, got {dim}, {width}, {depth}")
        self.config = {"dim": dim, "scale": scale_option(scale), "width": width, "depth": depth,
                       "time_features": time_features, "features": features,
                       "feature_scale": feature_scale, "cond_features": cond_features,
                       "classes": classes}  # fmt: skip
        self.conditioning = Conditioning(cond_features, classes)
        self.embed = TimeEmbedding(time_features, scale=2.0)
        s = torch.as_tensor(scale, dtype=torch.float32).expand(dim).clone()  # owns its memory
        self.register_buffer("scale", s)
        g = torch.Generator().manual_seed(4321)
        self.register_buffer("freqs", torch.randn(dim, features, generator=g) * feature_scale)
        n_in = dim + 2 * features + self.embed.dim + cond_features
        self.net = mlp(n_in, dim, width, depth, zero_last=True)

    def forward(self, t: Tensor, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """b_t(x) for x (batch, d) and t () or (batch,); ``cond`` (batch, F), (F,) or
        labels."""
        s = self.scale.to(x.dtype)
        z = x / s
        c = self.conditioning(cond, x.shape[0], x.dtype)
        emb = self.embed(t.to(x.dtype).expand(x.shape[0]))
        if self.freqs.shape[1]:
            z = torch.cat([z, fourier_features(z, self.freqs)], dim=1)
        return s * self.net(torch.cat([z, emb] + ([] if c is None else [c]), dim=1))


@register
class BlockDrift(nn.Module):
    r"""A drift for the blocks x_j of k consecutive coordinates, one MLP shared by all d / k,

    .. math:: b_t(x)_j = s_j \odot \mathrm{MLP}([z_j, \sin(z_j W), \cos(z_j W), e_j, e(t), c]),
        \quad z_j = x_j / s_j,

    e_j a learned embedding of the block's index (so blocks may differ), e(t) the time
    embedding and c the optional conditioning, shared by the blocks.

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
        cond_features: size F of the conditioning c (0: none, and ``cond`` must be None).
        classes: with K > 0, ``cond`` holds labels in [0, K), embedded in F features.

    Example:
        >>> b = BlockDrift(6, block=2, width=16, depth=2)
        >>> b(torch.tensor(0.5), torch.randn(4, 6)).shape
        torch.Size([4, 6])
        >>> colours, pattern = b.jacobian_sparsity()  # block diagonal: 2 VJPs, not 6
    """

    def __init__(
        self,
        dim: int,
        block: int = 2,
        scale: Tensor | float | list[float] = 1.0,
        width: int = 128,
        depth: int = 3,
        time_features: int = 16,
        features: int = 0,
        feature_scale: float = 8.0,
        block_features: int = 8,
        cond_features: int = 0,
        classes: int = 0,
    ):
        super().__init__()
        if block < 1 or dim % block:
            raise ValueError(f"block must divide dim={dim}, got {block}")
        self.config = {"dim": dim, "block": block, "scale": scale_option(scale), "width": width,
                       "depth": depth, "time_features": time_features, "features": features,
                       "feature_scale": feature_scale, "block_features": block_features,
                       "cond_features": cond_features, "classes": classes}  # fmt: skip
        self.k, self.blocks = block, dim // block
        self.conditioning = Conditioning(cond_features, classes)
        self.embed = TimeEmbedding(time_features, scale=2.0)
        s = torch.as_tensor(scale, dtype=torch.float32).expand(dim).clone()  # owns its memory
        self.register_buffer("scale", s)
        g = torch.Generator().manual_seed(4321)
        self.register_buffer("freqs", torch.randn(block, features, generator=g) * feature_scale)
        self.index = nn.Parameter(0.1 * torch.randn(self.blocks, block_features, generator=g))
        n_in = block + 2 * features + block_features + self.embed.dim + cond_features
        self.net = mlp(n_in, block, width, depth, zero_last=True)
        idx = torch.arange(dim)  # CPU tensors, built once: read at every exact Jacobian
        self._sparsity = idx % block, idx[:, None] // block == idx[None] // block

    def jacobian_sparsity(self) -> Sparsity:
        """grad b is block diagonal: colour i mod k, one VJP per position within a block."""
        return self._sparsity

    def forward(self, t: Tensor, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """b_t(x) for x (batch, d) and t () or (batch,); ``cond`` (batch, F), (F,) or
        labels."""
        n, s = x.shape[0], self.scale.to(x.dtype)
        c = self.conditioning(cond, n, x.dtype)
        z = (x / s).reshape(n, self.blocks, self.k)
        parts = [z]
        if self.freqs.shape[1]:
            parts.append(fourier_features(z, self.freqs))
        emb = self.embed(t.to(x.dtype).expand(n))
        parts += [
            self.index.to(x.dtype).expand(n, -1, -1),
            emb[:, None].expand(-1, self.blocks, -1),
        ]
        if c is not None:
            parts.append(c[:, None].expand(-1, self.blocks, -1))
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


@register
class LatticeDrift(nn.Module):
    r"""A drift b_t(phi) for fields phi on an L x L periodic lattice, flattened to
    (batch, L * L),

    .. math:: b_t(\phi) = s\, \mathrm{conv}_{1 \times 1} \circ F_D \circ \dots \circ F_1
        ([\phi / s, \phi^3 / s^3, \textstyle\sum_{\langle j \rangle} \phi_j / s]),
        \quad F_i(h) = \mathrm{SiLU}(\mathrm{conv}_i h) (1 + \gamma_i) + \beta_i,

    with (gamma_i, beta_i) linear in h_t = SiLU(W [e(t), c] + b), the embedding of t and
    of the optional conditioning c.

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
        cond_features: size F of the conditioning c (0: none, and ``cond`` must be None).
        classes: with K > 0, ``cond`` holds labels in [0, K), embedded in F features.

    Example:
        >>> b = LatticeDrift(8, width=8, depth=2, hop=False)
        >>> b(torch.tensor(0.5), torch.randn(3, 64)).shape
        torch.Size([3, 64])
        >>> b.radius
        2
    """

    def __init__(
        self,
        L: int,
        scale: float = 1.0,
        width: int = 32,
        depth: int = 3,
        time_features: int = 8,
        hop: bool = True,
        cond_features: int = 0,
        classes: int = 0,
    ):
        super().__init__()
        if L < 2 or width < 1 or depth < 1:
            raise ValueError(f"L, width and depth must be >= 2, 1, 1, got {L}, {width}, {depth}")
        self.config = {"L": L, "scale": float(scale), "width": width, "depth": depth,
                       "time_features": time_features, "hop": hop,
                       "cond_features": cond_features, "classes": classes}  # fmt: skip
        self.L, self.s, self.hop, self.radius = L, float(scale), hop, depth + int(hop)
        self.conditioning = Conditioning(cond_features, classes)
        self.embed = TimeEmbedding(time_features, scale=2.0)
        t_dim = 2 * width
        self.t_mlp = nn.Sequential(nn.Linear(self.embed.dim + cond_features, t_dim), nn.SiLU())
        self.layers = nn.ModuleList(
            [_FiLMConv((3 if hop else 2) if i == 0 else width, width, t_dim) for i in range(depth)]
        )
        self.out = nn.Conv2d(width, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self._sparsity = lattice_coloring(L, self.radius)  # CPU tensors, built once

    def jacobian_sparsity(self) -> Sparsity:
        """:func:`~.lattice.lattice_coloring` for the receptive field R = depth + hop."""
        return self._sparsity

    def forward(self, t: Tensor, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """b_t(phi) for x (batch, L * L) and t () or (batch,); ``cond`` (batch, F), (F,) or
        labels."""
        c = self.conditioning(cond, x.shape[0], x.dtype)
        phi = x.reshape(-1, 1, self.L, self.L) / self.s
        channels = [phi, phi.pow(3)]
        if self.hop:
            channels.append(sum(phi.roll(k, d) for k in (1, -1) for d in (2, 3)))
        h = torch.cat(channels, dim=1)
        e = self.embed(t.to(x.dtype).expand(x.shape[0]))
        emb = self.t_mlp(e if c is None else torch.cat([e, c], dim=1))
        for layer in self.layers:
            h = layer(h, emb)
        return self.s * self.out(h).reshape(x.shape)


@register
class FreeEnergyRate(nn.Module):
    r"""The free-energy rate of NETS, a scalar function of t (and of the conditioning c),

    .. math:: \frac{dF_t}{dt} = \kappa\, \mathrm{MLP}([e(t), c]),

    with SiLU activations and a zero last layer; the buffer kappa (``c``, 1 at first) sets
    the output scale.

    Arguments:
        width, depth: hidden width and layers.
        time_features: Fourier frequencies of the time embedding.
        cond_features: size F of the conditioning c (0: none, and ``cond`` must be None).
        classes: with K > 0, ``cond`` holds labels in [0, K), embedded in F features.

    Example:
        >>> rate = FreeEnergyRate(width=16)
        >>> rate(torch.linspace(0, 1, 5)).shape
        torch.Size([5])
    """

    def __init__(
        self,
        width: int = 64,
        depth: int = 2,
        time_features: int = 16,
        cond_features: int = 0,
        classes: int = 0,
    ):
        super().__init__()
        self.config = {"width": width, "depth": depth, "time_features": time_features,
                       "cond_features": cond_features, "classes": classes}  # fmt: skip
        self.conditioning = Conditioning(cond_features, classes)
        self.embed = TimeEmbedding(time_features, scale=2.0)
        self.net = mlp(self.embed.dim + cond_features, 1, width, depth, zero_last=True)
        self.register_buffer("c", torch.ones(()))

    def forward(self, t: Tensor, cond: Tensor | None = None) -> Tensor:
        """dF_t/dt, (m,), for t (m,) (computed in float32); ``cond`` (m, F), (F,) or
        labels."""
        c = self.conditioning(cond, t.shape[0], torch.float32)
        e = self.embed(t.float())
        return self.c * self.net(e if c is None else torch.cat([e, c], dim=1)).squeeze(-1)


def _lattice_side(target: Any) -> int | None:
    side = getattr(target, "L", None)
    return side if isinstance(side, int) and side * side == target.dim else None


def build_drift(
    target: Any,
    net: Any,
    scale: Tensor,
    width: int | None,
    depth: int | None,
    features: int,
    feature_scale: float,
    block: int | None = None,
    net_options: dict[str, Any] | None = None,
) -> nn.Module:
    """The drift of NETS's ``net=`` option for ``target`` (``dim``, and ``L`` for a lattice or
    ``block_size`` for independent blocks).

    net=None picks by the target's structure: "conv" (:class:`LatticeDrift`) on an L x L
    lattice, "blocks" (:class:`BlockDrift`) when the target declares ``block_size``, else
    "mlp" (:class:`DriftMLP`); an ``nn.Module`` is used as given. ``net_options``: further
    keyword arguments of the network's class (``cond_features``, ``hop``, ...).

    Example:
        >>> wells = si.targets.get("many_well", n_wells=3)
        >>> type(build_drift(wells, None, torch.ones(6), 16, 2, 0, 8.0)).__name__
        'BlockDrift'
    """
    dim = target.dim
    if isinstance(net, nn.Module):
        if net_options:
            raise ValueError("net_options is for a named net; an nn.Module is used as given")
        return net
    side = _lattice_side(target)
    target_block = getattr(target, "block_size", None)
    if net is None:
        net = "conv" if side is not None else "blocks" if target_block else "mlp"
    block = block or target_block or 2
    extra = net_options or {}
    if net == "conv":
        if side is None:
            raise ValueError(f"net='conv' needs a target on an L x L lattice, dim={dim}")
        return LatticeDrift(side, float(scale.mean()), width or 32, depth or 3, **extra)
    if net == "mlp":
        return DriftMLP(dim, scale, width or 128, depth or 3, features=features,
                        feature_scale=feature_scale, **extra)  # fmt: skip
    if net == "blocks":
        return BlockDrift(dim, block, scale, width or 128, depth or 3, features=features,
                          feature_scale=feature_scale, **extra)  # fmt: skip
    raise ValueError(f"net must be 'mlp', 'conv', 'blocks', None or an nn.Module, got {net!r}")


_LEGACY_KINDS = {"mlp": "DriftMLP", "blocks": "BlockDrift", "conv": "LatticeDrift"}


def same_drift(saved: Any, drift: nn.Module) -> bool:
    """Whether the drift ``config`` saved in a NETS checkpoint is that of ``drift`` (the
    resume check). A config saved before :mod:`interpolants.nn` (``{"kind": "mlp" | "blocks" |
    "conv", ...}``, a few of the options) is compared on the class and the options it has; none
    saved (a drift without options, or an action-matching one saved before they were kept)
    passes, and loading its weights is the check left."""
    config = getattr(drift, "config", None)
    if saved is None:  # an action-matching drift saved before its Potential had a config
        return True
    if isinstance(saved, dict) and "kind" in saved and isinstance(config, dict):
        same_class = _LEGACY_KINDS.get(saved["kind"]) == type(drift).__name__
        return same_class and all(config.get(k) == v for k, v in saved.items() if k != "kind")
    return saved == config
