"""The default networks of the fields (velocity, score, denoiser) for vector events."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .embedding import Conditioning, TimeEmbedding
from .mlp import mlp
from .registry import NETWORKS, register
from .unet import UNetField

__all__ = ["MLPField", "default_net"]


@register
class MLPField(nn.Module):
    r"""A time-conditioned MLP for vector events, the default velocity, score or denoiser,

    .. math:: f(t, x) = \mathrm{MLP}([x, e(t), c]),

    e the :class:`TimeEmbedding` and c the optional conditioning (:class:`Conditioning`:
    a context vector, or a learned embedding of a label), SiLU activations.

    Arguments:
        dim: event size d; x is (batch, d) and so is the output.
        width: hidden width.
        depth: number of hidden layers.
        time_features: Fourier frequencies of the time embedding.
        cond_features: size F of the conditioning c (0: none, and ``cond`` must be None).
        classes: with K > 0, ``cond`` holds labels in [0, K), embedded in F features.

    ``times`` (1 here) is how many times the network takes, each embedded alike
    (:class:`~.flowmap.FlowMapMLP` takes two).

    Example:
        >>> net = MLPField(2, width=64, depth=2, cond_features=3)
        >>> net(torch.rand(5), torch.randn(5, 2), cond=torch.randn(5, 3)).shape
        torch.Size([5, 2])
        >>> labels = MLPField(2, width=64, depth=2, cond_features=8, classes=10)
        >>> labels(torch.rand(5), torch.randn(5, 2), cond=torch.tensor(7)).shape
        torch.Size([5, 2])
    """

    times: ClassVar[int] = 1

    def __init__(
        self,
        dim: int,
        width: int = 256,
        depth: int = 4,
        time_features: int = 16,
        cond_features: int = 0,
        classes: int = 0,
    ):
        super().__init__()
        if dim < 1 or width < 1 or depth < 1:
            raise ValueError(f"dim, width and depth must be positive, got {dim}, {width}, {depth}")
        self.config = {"dim": dim, "width": width, "depth": depth, "time_features": time_features,
                       "cond_features": cond_features, "classes": classes}  # fmt: skip
        self.conditioning = Conditioning(cond_features, classes)
        self.embed = TimeEmbedding(time_features)
        self.net = mlp(dim + self.times * self.embed.dim + cond_features, dim, width, depth)

    def forward(self, t: Tensor, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """f(t, x) for t (batch,) and x (batch, d); ``cond`` (batch, F), (F,), or labels."""
        c = self.conditioning(cond, x.shape[0], x.dtype)
        parts = [x, self.embed(t.to(x.dtype))] + ([] if c is None else [c])
        return self.net(torch.cat(parts, dim=1))


def default_net(event_shape: Sequence[int], **options: Any) -> nn.Module:
    """An :class:`MLPField` for vectors (d,), a :class:`~.unet.UNetField` for images (C, H, W),
    or the registered network named by the option ``class`` (e.g. ``"RingField"``), built
    with the event's size as its first argument.

    ``options`` are the class's keyword arguments (MLPField: width, depth, time_features,
    cond_features, classes; UNetField: width, time_features, cond_features, classes); any
    other name is a TypeError listing the valid ones.

    Example:
        >>> default_net((2,), width=64).config["width"]
        64
        >>> type(default_net((1, 8, 8))).__name__
        'UNetField'
        >>> default_net((16,), **{"class": "RingField", "width": 8}).config["sites"]
        16
    """
    shape = tuple(event_shape)
    name = options.pop("class", None)
    if name is not None:
        if name not in NETWORKS:
            raise ValueError(f"net class {name!r} is not registered; known: "
                             f"{', '.join(sorted(NETWORKS))}")  # fmt: skip
        cls, size = NETWORKS[name], next(iter(inspect.signature(NETWORKS[name]).parameters))
        if len(shape) != 1 and size == "dim":
            raise ValueError(f"{name} takes vector events (d,), got events of shape {shape}")
    elif len(shape) == 1:
        cls, size = MLPField, "dim"
    elif len(shape) == 3:
        cls, size = UNetField, "channels"
    else:
        raise ValueError(f"no default network for events of shape {shape}: pass net=")
    valid = [p for p in inspect.signature(cls).parameters if p != size]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TypeError(
            f"unknown network option(s) {unknown} for {cls.__name__}; valid: {', '.join(valid)}"
        )
    return cls(shape[0], **options)
