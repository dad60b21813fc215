"""The one multi-layer perceptron builder of the package."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from torch import nn

__all__ = ["mlp", "positive_int"]


def positive_int(name: str, value: Any) -> int:
    """``value`` as an int (anything with ``__index__`` but a bool), else a ValueError naming
    it."""
    if not isinstance(value, bool):
        try:
            if operator.index(value) >= 1:
                return operator.index(value)
        except TypeError:
            pass
    raise ValueError(f"{name} must be a positive integer, got {value!r}")


def mlp(
    in_features: int,
    out_features: int,
    width: int = 64,
    depth: int = 2,
    activation: Callable[[], nn.Module] = nn.SiLU,
    zero_last: bool = False,
) -> nn.Sequential:
    r"""A multi-layer perceptron of ``depth`` hidden layers of ``width`` features,

    .. math:: h_0 = x, \quad h_i = a(W_i h_{i-1} + b_i) \ (1 \le i \le D),
        \quad y = W_{D+1} h_D + b_{D+1},

    as ``nn.Sequential(Linear, a, Linear, a, ..., Linear)``: the entries 0, 2, ..., 2D are the
    linear layers, created in that order (so the weights follow from the seed), and the state
    dict keys ``0.weight``, ..., ``{2D}.bias`` are those of every MLP of the package.

    Arguments:
        in_features: size of x.
        out_features: size of y.
        width: hidden features.
        depth: hidden layers D (>= 1).
        activation: the constructor of the activation a (a module class such as ``nn.SiLU``).
        zero_last: start the last layer at zero (y = 0 at initialisation: a drift starts at
            b = 0, a coupling at the identity).

    Example:
        >>> net = mlp(3, 2, width=16, depth=2)
        >>> net(torch.randn(5, 3)).shape
        torch.Size([5, 2])
        >>> [type(m).__name__ for m in net]
        ['Linear', 'SiLU', 'Linear', 'SiLU', 'Linear']
    """
    in_features, out_features, width, depth = (
        positive_int(name, value)
        for name, value in (
            ("in_features", in_features),
            ("out_features", out_features),
            ("width", width),
            ("depth", depth),
        )
    )
    layers: list[nn.Module] = [nn.Linear(in_features, width), activation()]
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), activation()]
    last = nn.Linear(width, out_features)
    if zero_last:
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
    return nn.Sequential(*layers, last)
