"""Default networks for the fields: time-conditioned MLPs for vectors, a small U-Net for images.

Every network is called as ``net(t, x)`` with t of shape (batch,) and returns a tensor shaped
like x, the signature of a velocity, score or denoiser.

Saved models describe their networks by data, not by pickled code: a registered class
(:func:`register`) with a ``config`` dict of its keyword arguments is written as
``{"class": name, "options": config}`` beside its state dict and rebuilt by :func:`build`.
A network of any other class is saved as its state dict only; the user rebuilds it
(``si.load(path, net=MyNet(...))``).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

__all__ = [
    "NETWORKS",
    "MLPField",
    "TimeEmbedding",
    "UNetField",
    "build",
    "default_net",
    "describe",
    "register",
]

NETWORKS: dict[str, type[nn.Module]] = {}
"""Network classes a saved model may name, by class name (see :func:`register`)."""

M = TypeVar("M", bound=type[nn.Module])


def register(cls: M) -> M:
    """Let saved models name ``cls``: its instances must keep their constructor's keyword
    arguments in a ``config`` dict, so that ``cls(**config)`` rebuilds the architecture.

    Example:
        >>> @register
        ... class Zero(nn.Module):
        ...     def __init__(self, dim: int):
        ...         super().__init__()
        ...         self.config = {"dim": dim}
        ...     def forward(self, t, x):
        ...         return torch.zeros_like(x)
    """
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TypeError(f"register takes an nn.Module class, got {cls!r}")
    NETWORKS[cls.__name__] = cls
    return cls


def describe(module: nn.Module) -> dict[str, Any] | None:
    """``{"class": name, "options": config}`` for a registered network, None for any other."""
    cls = NETWORKS.get(type(module).__name__)
    config = getattr(module, "config", None)
    if cls is not type(module) or not isinstance(config, dict):
        return None
    return {"class": cls.__name__, "options": dict(config)}


def build(description: dict[str, Any]) -> nn.Module:
    """The network that :func:`describe` described (fresh weights: load the state dict next)."""
    name = description.get("class")
    if name not in NETWORKS:
        raise ValueError(
            f"network class {name!r} is not registered (known: {', '.join(sorted(NETWORKS))}); "
            "register it with interpolants.nn.register, or pass the network to load"
        )
    return NETWORKS[name](**description.get("options", {}))


class TimeEmbedding(nn.Module):
    r"""Random Fourier features of t: [t, sin(2 pi f_k t), cos(2 pi f_k t)], fixed f_k ~ N(0, s^2).

    Arguments:
        features: number of frequencies (the embedding has 2 * features + 1 entries).
        scale: the standard deviation s of the frequencies.
    """

    def __init__(self, features: int = 16, scale: float = 4.0):
        super().__init__()
        g = torch.Generator().manual_seed(1234)
        self.register_buffer("freqs", torch.randn(features, generator=g) * scale)
        self.dim = 2 * features + 1

    def forward(self, t: Tensor) -> Tensor:
        arg = 2 * math.pi * t[:, None] * self.freqs.to(t.dtype)
        return torch.cat([t[:, None], arg.sin(), arg.cos()], dim=1)


@register
class MLPField(nn.Module):
    """net(t, x) = MLP([x, embed(t)]) for x of shape (batch, dim), SiLU activations.

    Arguments:
        dim: event size.
        width: hidden width.
        depth: number of hidden layers.
        time_features: Fourier frequencies of the time embedding.
    """

    def __init__(self, dim: int, width: int = 256, depth: int = 4, time_features: int = 16):
        super().__init__()
        if dim < 1 or width < 1 or depth < 1:
            raise ValueError(f"dim, width and depth must be positive, got {dim}, {width}, {depth}")
        self.config = {"dim": dim, "width": width, "depth": depth, "time_features": time_features}
        self.embed = TimeEmbedding(time_features)
        layers: list[nn.Module] = [nn.Linear(dim + self.embed.dim, width), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(width, width), nn.SiLU()]
        layers.append(nn.Linear(width, dim))
        self.net = nn.Sequential(*layers)

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        return self.net(torch.cat([x, self.embed(t.to(x.dtype))], dim=1))


class _ResBlock(nn.Module):
    """Two 3x3 convolutions with GroupNorm, SiLU and a time-dependent scale and shift (FiLM)."""

    def __init__(self, c_in: int, c_out: int, t_dim: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(8, c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.film = nn.Linear(t_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(min(8, c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(torch.nn.functional.silu(self.norm1(x)))
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        return self.skip(x) + self.conv2(torch.nn.functional.silu(h))


@register
class UNetField(nn.Module):
    """A small convolutional U-Net for (batch, C, H, W) images with H, W divisible by 2.

    Two resolutions (H and H/2), residual blocks conditioned on t, a skip connection across.

    Arguments:
        channels: image channels C.
        width: channels at full resolution (twice that at half resolution).
        time_features: Fourier frequencies of the time embedding.
    """

    def __init__(self, channels: int = 1, width: int = 32, time_features: int = 16):
        super().__init__()
        self.config = {"channels": channels, "width": width, "time_features": time_features}
        self.embed = TimeEmbedding(time_features)
        t_dim = 4 * width
        self.t_mlp = nn.Sequential(
            nn.Linear(self.embed.dim, t_dim), nn.SiLU(), nn.Linear(t_dim, t_dim)
        )
        self.inp = nn.Conv2d(channels, width, 3, padding=1)
        self.down1 = _ResBlock(width, width, t_dim)
        self.pool = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.mid1 = _ResBlock(2 * width, 2 * width, t_dim)
        self.mid2 = _ResBlock(2 * width, 2 * width, t_dim)
        self.up = nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1)
        self.up1 = _ResBlock(2 * width, width, t_dim)
        self.out = nn.Sequential(
            nn.GroupNorm(min(8, width), width), nn.SiLU(), nn.Conv2d(width, channels, 3, padding=1)
        )

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[-1] % 2 or x.shape[-2] % 2:
            raise ValueError(
                f"x must have shape (batch, C, H, W) with even H, W, got {tuple(x.shape)}"
            )
        emb = self.t_mlp(self.embed(t.to(x.dtype)))
        h1 = self.down1(self.inp(x), emb)
        h = self.mid2(self.mid1(self.pool(h1), emb), emb)
        h = self.up1(torch.cat([self.up(h), h1], dim=1), emb)
        return self.out(h)


def default_net(event_shape: Sequence[int], **options: int) -> nn.Module:
    """An MLP for vectors (d,), a U-Net for images (C, H, W).

    ``options`` are the class's keyword arguments (MLPField: width, depth, time_features;
    UNetField: width, time_features); any other name is a TypeError listing the valid ones.
    """
    shape = tuple(event_shape)
    if len(shape) == 1:
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
