"""The default network of a flow map: v_{s,t}(x), a function of two times and a point."""

from __future__ import annotations

import torch
from torch import Tensor

from .fields import MLPField
from .registry import register

__all__ = ["FlowMapMLP"]


@register
class FlowMapMLP(MLPField):
    r"""The two-time velocity of a flow map for vector events,

    .. math:: v_{s,t}(x) = \mathrm{MLP}([x, e(s), e(t), c]),

    e the :class:`~.embedding.TimeEmbedding` (one set of frequencies for both times) and c the
    optional conditioning; the flow map is X_{s,t}(x) = x + (t - s) v_{s,t}(x)
    (:func:`interpolants.flowmaps.flow_map`, arXiv 2406.07507, 2505.18825).

    Arguments (those of :class:`~.fields.MLPField`):
        dim: event size d; x is (batch, d) and so is the output.
        width: hidden width.
        depth: number of hidden layers.
        time_features: Fourier frequencies of the time embedding.
        cond_features: size F of the conditioning c (0: none, and ``cond`` must be None).
        classes: with K > 0, ``cond`` holds labels in [0, K), embedded in F features.

    Example:
        >>> net = FlowMapMLP(2, width=32, depth=2)
        >>> net(torch.rand(5), torch.rand(5), torch.randn(5, 2)).shape
        torch.Size([5, 2])
    """

    times = 2  # s and t, one embedding

    def forward(self, s: Tensor, t: Tensor, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """v_{s,t}(x) for s, t (batch,) and x (batch, d); ``cond`` as :class:`~.MLPField`'s."""
        c = self.conditioning(cond, x.shape[0], x.dtype)
        parts = [x, self.embed(s.to(x.dtype)), self.embed(t.to(x.dtype))]
        return self.net(torch.cat(parts + ([] if c is None else [c]), dim=1))
