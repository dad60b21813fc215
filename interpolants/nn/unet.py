"""A small convolutional U-Net for image events (the default network of image fields)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .embedding import Conditioning, TimeEmbedding
from .mlp import mlp
from .registry import register

__all__ = ["UNetField"]


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
    r"""A small convolutional U-Net f(t, x) for (batch, C, H, W) images with H, W even.

    Two resolutions (H and H/2), residual blocks whose GroupNorm output is scaled and shifted
    by an embedding of t (FiLM), a skip connection across. The embedding is

    .. math:: h = \mathrm{MLP}([e(t), c]) = W_2\, \mathrm{SiLU}(W_t e(t) + W_c c + b_1) + b_2,

    e the :class:`TimeEmbedding` and c the optional conditioning (:class:`Conditioning`): a
    context vector or a label's embedding is added, through W_c, to the time embedding.
    With ``cond_channels`` > 0, ``cond`` is an image (batch, cond_channels, H, W) instead
    (a coupling's observation: the mask and visible pixels, an up-sampled low-resolution
    image), stacked with x along the channels at the input.

    Arguments:
        channels: image channels C.
        width: channels at full resolution (twice that at half resolution).
        time_features: Fourier frequencies of the time embedding.
        cond_features: size F of the conditioning c (0: none, and ``cond`` must be None).
        classes: with K > 0, ``cond`` holds labels in [0, K), embedded in F features.
        cond_channels: channels of an image ``cond`` stacked with x (0: none); exclusive
            with cond_features.

    Example:
        >>> net = UNetField(channels=1, width=8, cond_features=4, classes=10)
        >>> x = torch.randn(3, 1, 8, 8)
        >>> net(torch.rand(3), x, cond=torch.tensor([0, 1, 2])).shape
        torch.Size([3, 1, 8, 8])
    """

    def __init__(
        self,
        channels: int = 1,
        width: int = 32,
        time_features: int = 16,
        cond_features: int = 0,
        classes: int = 0,
        cond_channels: int = 0,
    ):
        super().__init__()
        self.config = {"channels": channels, "width": width, "time_features": time_features,
                       "cond_features": cond_features, "classes": classes,
                       "cond_channels": cond_channels}  # fmt: skip
        if cond_channels < 0 or (cond_channels and cond_features):
            raise ValueError(
                "cond_channels must be a non-negative integer, and exclusive with cond_features "
                f"(got cond_channels={cond_channels}, cond_features={cond_features})"
            )
        self.cond_channels = cond_channels
        self.conditioning = Conditioning(cond_features, classes)
        self.embed = TimeEmbedding(time_features)
        t_dim = 4 * width
        self.t_mlp = mlp(self.embed.dim + cond_features, t_dim, t_dim, depth=1)
        self.inp = nn.Conv2d(channels + cond_channels, width, 3, padding=1)
        self.down1 = _ResBlock(width, width, t_dim)
        self.pool = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.mid1 = _ResBlock(2 * width, 2 * width, t_dim)
        self.mid2 = _ResBlock(2 * width, 2 * width, t_dim)
        self.up = nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1)
        self.up1 = _ResBlock(2 * width, width, t_dim)
        self.out = nn.Sequential(
            nn.GroupNorm(min(8, width), width), nn.SiLU(), nn.Conv2d(width, channels, 3, padding=1)
        )

    def forward(self, t: Tensor, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """f(t, x) for t (batch,) and x (batch, C, H, W); ``cond`` (batch, F), (F,), or
        labels."""
        if x.ndim != 4 or x.shape[-1] % 2 or x.shape[-2] % 2:
            raise ValueError(
                f"x must have shape (batch, C, H, W) with even H, W, got {tuple(x.shape)}"
            )
        if self.cond_channels:
            x_in, c = torch.cat([x, self._image_cond(cond, x)], dim=1), None
        else:
            x_in, c = x, self.conditioning(cond, x.shape[0], x.dtype)
        e = self.embed(t.to(x.dtype))
        emb = self.t_mlp(e if c is None else torch.cat([e, c], dim=1))
        h1 = self.down1(self.inp(x_in), emb)
        h = self.mid2(self.mid1(self.pool(h1), emb), emb)
        h = self.up1(torch.cat([self.up(h), h1], dim=1), emb)
        return self.out(h)

    def _image_cond(self, cond: Tensor | None, x: Tensor) -> Tensor:
        want = (self.cond_channels, *x.shape[2:])
        if (
            not isinstance(cond, Tensor)
            or tuple(cond.shape[-3:]) != want
            or cond.ndim not in (3, 4)
        ):
            got = tuple(cond.shape) if isinstance(cond, Tensor) else type(cond).__name__
            raise ValueError(
                f"cond must be an image of shape ({x.shape[0]}, {', '.join(map(str, want))}) "
                f"for this network (cond_channels={self.cond_channels}), got {got}"
            )
        return cond.to(x.dtype).expand(x.shape[0], *want)
