"""Networks described by data: the registry that safe checkpoints rebuild networks from.

A registered class (:func:`register`) whose instances keep their constructor's keyword
arguments in a ``config`` dict is written as ``{"class": name, "options": config}`` beside its
state dict (:func:`describe`) and rebuilt by :func:`build`. A network of any other class is
saved as its state dict only; the user rebuilds it (``si.load(path, net=MyNet(...))``).
"""

from __future__ import annotations

from typing import Any, TypeVar

from torch import nn

__all__ = ["NETWORKS", "build", "describe", "register"]

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
        ...     def forward(self, t, x, cond=None):
        ...         return torch.zeros_like(x)
    """
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TypeError(f"register takes an nn.Module class, got {cls!r}")
    NETWORKS[cls.__name__] = cls
    return cls


def describe(module: nn.Module) -> dict[str, Any] | None:
    """``{"class": name, "options": config}`` for a registered network, None for any other.

    Example:
        >>> net = MLPField(2, width=16, depth=2, cond_features=3)
        >>> describe(net)["options"]["cond_features"]
        3
    """
    cls = NETWORKS.get(type(module).__name__)
    config = getattr(module, "config", None)
    if cls is not type(module) or not isinstance(config, dict):
        return None
    return {"class": cls.__name__, "options": dict(config)}


def build(description: dict[str, Any]) -> nn.Module:
    """The network that :func:`describe` described (fresh weights: load the state dict next).

    Example:
        >>> copy = build(describe(net))
        >>> copy.load_state_dict(net.state_dict())
        <All keys matched successfully>
    """
    name = description.get("class")
    if name not in NETWORKS:
        raise ValueError(
            f"network class {name!r} is not registered (known: {', '.join(sorted(NETWORKS))}); "
            "register it with interpolants.nn.register, or pass the network to load"
        )
    return NETWORKS[name](**description.get("options", {}))
