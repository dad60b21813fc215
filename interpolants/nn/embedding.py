"""Inputs of the networks: Fourier features of time and of space, and the conditioning c."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["Conditioning", "TimeEmbedding", "fourier_features"]


class TimeEmbedding(nn.Module):
    r"""Random Fourier features of the time t,

    .. math:: e(t) = [t, \sin(2 \pi f_k t), \cos(2 \pi f_k t)]_{k=1}^K,
        \quad f_k \sim \mathcal{N}(0, s^2),

    with frequencies f drawn once from a fixed seed (1234), so that every embedding of the
    same K and s is the same function (a buffer of the state dict, not a parameter).

    Arguments:
        features: number of frequencies K (the embedding has 2 K + 1 entries, ``self.dim``).
        scale: the standard deviation s of the frequencies.

    Example:
        >>> embed = TimeEmbedding(16)
        >>> embed(torch.rand(5)).shape
        torch.Size([5, 33])
    """

    def __init__(self, features: int = 16, scale: float = 4.0):
        super().__init__()
        g = torch.Generator().manual_seed(1234)
        self.register_buffer("freqs", torch.randn(features, generator=g) * scale)
        self.dim = 2 * features + 1

    def forward(self, t: Tensor) -> Tensor:
        arg = 2 * math.pi * t[:, None] * self.freqs.to(t.dtype)
        return torch.cat([t[:, None], arg.sin(), arg.cos()], dim=1)


def fourier_features(z: Tensor, freqs: Tensor) -> Tensor:
    r"""Random Fourier features of a point z, [sin(z W), cos(z W)] for W = ``freqs``
    (Tancik et al., arXiv:2006.10739): with W ~ N(0, f^2) they let a network resolve
    structure on the scale 1 / f.

    Arguments:
        z: (..., d).
        freqs: W, (d, F).

    Returns:
        (..., 2 F).
    """
    arg = z @ freqs.to(z.dtype)
    return torch.cat([arg.sin(), arg.cos()], dim=-1)


class Conditioning(nn.Module):
    r"""The conditioning c that a network takes besides t and x, from its argument ``cond``:

    .. math:: c = \mathrm{cond} \in \mathbb{R}^F \ \text{(a context vector, } K = 0),
        \qquad c = E_{\mathrm{cond}} \in \mathbb{R}^F \ \text{(a label in } [0, K)),

    E a learned (K, F) embedding (``nn.Embedding``). The networks concatenate c to their input
    (MLPs, couplings) or to the input of their time MLP (U-Net, lattice drift: there c is
    added, through a linear layer, to the time embedding). A batch shares one cond of shape
    (F,) (a label of shape ()) or gives one per row, (batch, F) (labels (batch,)).

    With F = 0 (the default) there is no conditioning, no parameter, and ``cond`` must be None.

    Arguments:
        features: F, the size of c (0: no conditioning).
        classes: K, the number of labels (0: cond is a context vector of size F).

    Example:
        >>> c = Conditioning(8, classes=10)
        >>> c(torch.tensor([3, 1, 4]), batch=3).shape
        torch.Size([3, 8])
        >>> Conditioning(2)(torch.tensor([0.5, -1.0]), batch=3).shape
        torch.Size([3, 2])
    """

    def __init__(self, features: int = 0, classes: int = 0):
        super().__init__()
        for name, value in (("cond_features", features), ("classes", classes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if classes and not features:
            raise ValueError(
                f"classes={classes} needs cond_features > 0, the size of the label embedding"
            )
        self.features, self.classes = features, classes
        if classes:
            self.embedding = nn.Embedding(classes, features)

    def extra_repr(self) -> str:
        return f"features={self.features}, classes={self.classes}"

    def forward(
        self, cond: Tensor | None, batch: int, dtype: torch.dtype | None = None
    ) -> Tensor | None:
        """c, (batch, F) (in ``dtype`` if given), or None for a network without conditioning."""
        if not self.features:
            if cond is not None:
                raise ValueError(
                    "this network was built without conditioning, so cond must be None; "
                    "build it with cond_features= (a context vector) or classes= (labels)"
                )
            return None
        if cond is None:
            kind = f"labels in [0, {self.classes})" if self.classes else "a context vector"
            raise ValueError(
                f"this network was built with cond_features={self.features}, "
                f"classes={self.classes}: cond ({kind}) is required"
            )
        if not isinstance(cond, Tensor):
            raise ValueError(f"cond must be a tensor, got {type(cond).__name__}")
        if self.classes:
            if cond.is_floating_point() or cond.is_complex() or cond.dtype == torch.bool:
                raise ValueError(f"cond must hold integer labels, got dtype {cond.dtype}")
            if cond.shape not in ((), (batch,)):
                raise ValueError(
                    f"cond must be labels of shape () or ({batch},), got {tuple(cond.shape)}"
                )
            checked = cond.device.type == "cpu" and cond.numel()  # elsewhere: no device sync
            if checked and not 0 <= int(cond.min()) <= int(cond.max()) < self.classes:
                raise ValueError(f"cond must hold labels in [0, {self.classes})")
            c = self.embedding(cond.long().expand(batch))
            return c if dtype is None else c.to(dtype)
        if cond.ndim > 2 and len(cond) == batch and cond[0].numel() == self.features:
            cond = cond.flatten(1)  # an image-shaped observation, for a network on vectors
        if cond.shape not in ((self.features,), (batch, self.features)):
            raise ValueError(
                f"cond must have shape ({self.features},) or ({batch}, {self.features}), "
                f"got {tuple(cond.shape)}"
            )
        return (cond if dtype is None else cond.to(dtype)).expand(batch, self.features)
