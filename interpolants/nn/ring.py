"""A local, translation-equivariant network for states on a ring of sites (1D fields,
two-scale systems such as Lorenz-96)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .embedding import Conditioning, TimeEmbedding
from .mlp import positive_int
from .registry import register

__all__ = ["BOUNDARIES", "RingField"]

BOUNDARIES = {"periodic": "circular", "reflect": "reflect"}
"""The ends of the ring: periodic (a ring; circular padding) or free ends (a segment whose
end values are mirrored, the discrete u_x = 0)."""


class _RingBlock(nn.Module):
    """h + conv(SiLU(FiLM(conv(SiLU(h))))): two convolutions along the sites and a
    time-dependent scale and shift per channel."""

    def __init__(self, width: int, kernel: int, t_dim: int, padding_mode: str):
        super().__init__()
        pad = kernel // 2
        self.conv1 = nn.Conv1d(width, width, kernel, padding=pad, padding_mode=padding_mode)
        self.conv2 = nn.Conv1d(width, width, kernel, padding=pad, padding_mode=padding_mode)
        self.film = nn.Linear(t_dim, 2 * width)

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        scale, shift = self.film(emb)[:, :, None].chunk(2, dim=1)
        inner = self.conv1(torch.nn.functional.silu(h)) * (1 + scale) + shift
        return h + self.conv2(torch.nn.functional.silu(inner))


@register
class RingField(nn.Module):
    r"""A local field f(t, x) for states on n sites of a ring (or of a segment with free ends),

    .. math:: f(t, x) = P \circ B_D \circ \dots \circ B_1 \circ L([x, c]),
        \quad B_i(h) = h + W_i' * \mathrm{SiLU}((1 + \gamma_i) \odot (W_i * \mathrm{SiLU}(h))
        + \beta_i),

    * a convolution along the sites (kernel ``kernel``), L and P pointwise (1 x 1) maps,
    (gamma_i, beta_i) linear in the embedding SiLU(W [e(t), c_g] + b) of t (and of a global
    conditioning c_g). Every site is treated alike (equivariant under rotations of the ring
    with ``boundary="periodic"``), and without a coarse field f at a site depends on x within
    ``radius`` = D (kernel - 1) sites:
    one network for the many sites of a field is what a 1D SPDE or a Lorenz-96 ring needs,
    where an MLP on the whole state must learn the same local law at every site separately.

    Layout of x (batch, d): the first ``coarse`` entries are a coarse field with one value per
    block of n / coarse consecutive sites (0: none), then C = (d - coarse) / n fine fields of
    n entries each, channel-major (x[coarse + c n + i] is channel c at site i). The coarse
    field enters every site of its block as an input channel, and its output is read from the
    fine features averaged over the block and passed through one block of its own on the
    coarse ring. Two-scale Lorenz-96 (K slow X_k, the K J fast Y_{j,k} in ring order) is
    ``RingField(K + K * J, sites=K * J, coarse=K)``; a 1D field on d nodes with free ends is
    ``RingField(d, boundary="reflect")``.

    Arguments:
        dim: event size d.
        sites: n (default: d - coarse, one fine channel).
        coarse: the size of the coarse field (0, or a divisor of n).
        width, depth, kernel: channels, residual blocks D and kernel size (odd).
        time_features: Fourier frequencies of the time embedding.
        boundary: ``"periodic"`` or ``"reflect"`` (:data:`BOUNDARIES`).
        cond_features: size F of the conditioning c (0: none). F = d: c is a state laid out
            like x (a forecast's current state) and enters every site as input channels,
            locally; any other F (or labels): c is global, added to the time embedding.
        classes: with K > 0, ``cond`` holds labels in [0, K), embedded in F features.

    Example:
        >>> net = RingField(8 + 8 * 4, sites=32, coarse=8, width=8, depth=2, cond_features=40)
        >>> x = torch.randn(3, 40)
        >>> net(torch.rand(3), x, cond=x).shape
        torch.Size([3, 40])
        >>> net.radius
        8
    """

    def __init__(
        self,
        dim: int,
        sites: int | None = None,
        coarse: int = 0,
        width: int = 32,
        depth: int = 3,
        kernel: int = 5,
        time_features: int = 16,
        boundary: str = "periodic",
        cond_features: int = 0,
        classes: int = 0,
    ):
        super().__init__()
        dim, width, depth, kernel = (positive_int(k, v) for k, v in
                                     (("dim", dim), ("width", width), ("depth", depth),
                                      ("kernel", kernel)))  # fmt: skip
        if isinstance(coarse, bool) or not isinstance(coarse, int) or not 0 <= coarse < dim:
            raise ValueError(f"coarse must be an integer in [0, dim), got {coarse!r}")
        n = positive_int("sites", dim - coarse if sites is None else sites)
        if (dim - coarse) % n or (coarse and n % coarse):
            raise ValueError(
                f"sites={n} must divide dim - coarse = {dim - coarse}, and coarse={coarse} "
                "must divide sites"
            )
        if kernel % 2 == 0:
            raise ValueError(f"kernel must be odd, got {kernel}")
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {tuple(BOUNDARIES)}, got {boundary!r}")
        if boundary == "reflect" and kernel // 2 >= n:
            raise ValueError(f"kernel {kernel} is too wide for {n} sites with boundary='reflect'")
        self.config = {"dim": dim, "sites": n, "coarse": coarse, "width": width, "depth": depth,
                       "kernel": kernel, "time_features": time_features, "boundary": boundary,
                       "cond_features": cond_features, "classes": classes}  # fmt: skip
        self.n, self.coarse, self.channels = n, coarse, (dim - coarse) // n
        self.local_cond = cond_features == dim and not classes
        global_features = 0 if self.local_cond else cond_features
        self.conditioning = Conditioning(global_features, classes)
        self.embed = TimeEmbedding(time_features)
        t_dim = 2 * width
        self.t_mlp = nn.Sequential(nn.Linear(self.embed.dim + global_features, t_dim), nn.SiLU())
        per_state = self.channels + (1 if coarse else 0)
        c_in = per_state * (2 if self.local_cond else 1)
        mode = BOUNDARIES[boundary]
        self.lift = nn.Conv1d(c_in, width, 1)
        self.blocks = nn.ModuleList([_RingBlock(width, kernel, t_dim, mode) for _ in range(depth)])
        self.out = nn.Conv1d(width, self.channels, 1)
        if coarse:
            c_coarse = width + (2 if self.local_cond else 1)
            self.coarse_lift = nn.Conv1d(c_coarse, width, 1)
            self.coarse_block = _RingBlock(width, 3, t_dim, mode)
            self.coarse_out = nn.Conv1d(width, 1, 1)
        self.radius = depth * (kernel - 1)

    def _channels(self, z: Tensor) -> tuple[Tensor, Tensor | None]:
        """A state (batch, d) as fine channels (batch, C (+1), n), the coarse field broadcast
        to its sites, and the coarse field (batch, 1, coarse) (None without one)."""
        fine = z[:, self.coarse :].reshape(len(z), self.channels, self.n)
        if not self.coarse:
            return fine, None
        slow = z[:, None, : self.coarse]
        spread = slow.repeat_interleave(self.n // self.coarse, dim=2)
        return torch.cat([fine, spread], dim=1), slow

    def _local(self, cond: Tensor | None, x: Tensor) -> Tensor:
        dim = self.config["dim"]
        if not isinstance(cond, Tensor) or cond.shape not in ((dim,), (len(x), dim)):
            got = tuple(cond.shape) if isinstance(cond, Tensor) else type(cond).__name__
            raise ValueError(
                f"cond must be a state of shape ({dim},) or ({len(x)}, {dim}) for this network "
                f"(cond_features={dim}, laid out like x), got {got}"
            )
        return cond.to(x.dtype).expand(len(x), dim)

    def forward(self, t: Tensor, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """f(t, x) for t () or (batch,) and x (batch, d); ``cond`` a state like x (F = d),
        (batch, F), (F,) or labels."""
        if x.ndim != 2 or x.shape[1] != self.config["dim"]:
            raise ValueError(f"x must have shape (batch, {self.config['dim']}), got "
                             f"{tuple(x.shape)}")  # fmt: skip
        h, slow = self._channels(x)
        c = None
        if self.local_cond:
            h_c, slow_c = self._channels(self._local(cond, x))
            h = torch.cat([h, h_c], dim=1)
            if slow is not None and slow_c is not None:  # the same layout: both or neither
                slow = torch.cat([slow, slow_c], dim=1)
        else:
            c = self.conditioning(cond, len(x), x.dtype)
        e = self.embed(t.to(x.dtype).expand(len(x)))
        emb = self.t_mlp(e if c is None else torch.cat([e, c], dim=1))
        h = self.lift(h)
        for block in self.blocks:
            h = block(h, emb)
        fine = self.out(h).flatten(1)
        if slow is None:
            return fine
        pooled = h.reshape(len(x), h.shape[1], self.coarse, -1).mean(-1)
        g = self.coarse_block(self.coarse_lift(torch.cat([pooled, slow], dim=1)), emb)
        return torch.cat([self.coarse_out(g).flatten(1), fine], dim=1)
